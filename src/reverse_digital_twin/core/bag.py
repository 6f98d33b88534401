"""Recordings as rosbag2 bags: a directory with ``metadata.yaml`` and MCAP files.

Written the way rosbag2 (Jazzy/Kilted, metadata version 9) writes them with its MCAP storage
plugin, so ``ros2 bag info``, ``ros2 bag play``, Foxglove and rosbags read them: MCAP profile
``ros2``, one schema per type (encoding ``ros2msg``: the type's ``.msg`` text followed by every
type it uses, as rosbag2 concatenates them), one channel per topic (message encoding ``cdr``,
``offered_qos_profiles`` and ``topic_type_hash`` in its metadata) and a ``rosbag2`` metadata
record in each file, so that a single ``.mcap`` opens on its own too.

The MCAP files are written by the ``mcap`` library; the messages arrive already serialized
(CDR bytes, as a raw subscription delivers them), so recording never deserializes. Reading
(:func:`read_bag`) goes through rosbags, an independent implementation. No rclpy here: the
recorder node is the adapter.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

#: rosbag2's metadata version this writer follows (Jazzy and Kilted write 9).
METADATA_VERSION = 9
STORAGE_IDENTIFIER = 'mcap'
#: RMW_DURATION_INFINITE in ns, as QoS durations report "no limit".
INFINITE_NS = 2**63 - 1
LIBRARY = 'reverse_digital_twin (mcap python writer)'
_DELIMITER = '=' * 80 + '\n'
_PRIMITIVES = frozenset({'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16',
                         'uint16', 'int32', 'uint32', 'int64', 'uint64', 'string'})
#: A field's type at the start of a .msg line ("std_msgs/Header header", "Point[] points"),
#: the rule rosbag2's message definition source uses to find dependencies.
_MSG_FIELD_TYPE = re.compile(r'(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+')
_IDL_INCLUDE = re.compile(r'(?:^|\n)#include\s+(?:"|<)([a-zA-Z0-9_/]+)\.idl(?:"|>)')
_NAME = r'[a-zA-Z][a-zA-Z0-9_]*'
_TYPE_NAME = re.compile(rf'^({_NAME})/(?:({_NAME})/)?({_NAME})$')


class BagError(Exception):
    """A bag that cannot be written or read; the message says which and why, in one line."""


# --- QoS ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Qos:
    """A QoS profile as rosbag2 stores offered profiles (policy names as rmw spells them:
    keep_last, reliable, best_effort, transient_local, automatic, unknown, ...)."""

    history: str = 'keep_last'
    depth: int = 10
    reliability: str = 'reliable'
    durability: str = 'volatile'
    deadline_ns: int = 0
    lifespan_ns: int = 0
    liveliness: str = 'system_default'
    liveliness_lease_duration_ns: int = 0
    avoid_ros_namespace_conventions: bool = False

    def as_metadata(self) -> dict[str, Any]:
        """The profile in metadata version 9's layout (policy names, {sec, nsec} times)."""
        return {
            'history': self.history,
            'depth': int(self.depth),
            'reliability': self.reliability,
            'durability': self.durability,
            'deadline': _rmw_time(self.deadline_ns),
            'lifespan': _rmw_time(self.lifespan_ns),
            'liveliness': self.liveliness,
            'liveliness_lease_duration': _rmw_time(self.liveliness_lease_duration_ns),
            'avoid_ros_namespace_conventions': bool(self.avoid_ros_namespace_conventions),
        }


def _rmw_time(ns: int) -> dict[str, int]:
    sec, nsec = divmod(max(int(ns), 0), 1_000_000_000)
    return {'sec': sec, 'nsec': nsec}


def _dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


# --- message definitions ----------------------------------------------------------------------

def _share_directory(package: str) -> Path:
    """The package's share directory: the ament index first (a sourced distro, a colcon
    workspace, the venv via AMENT_PREFIX_PATH), then this interpreter's prefix."""
    try:
        from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415
        return Path(get_package_share_directory(package))
    except (ImportError, LookupError, OSError, ValueError):  # no ament index, or not in it
        candidate = Path(sys.prefix) / 'share' / package
        if candidate.is_dir():
            return candidate
    raise BagError(f'no interface package {package!r} found (is it installed, and '
                   'AMENT_PREFIX_PATH set?)')


def _split_type(type_name: str) -> tuple[str, str, str]:
    match = _TYPE_NAME.match(type_name)
    if match is None:
        raise BagError(f'message type {type_name!r} is not understood: use package/msg/Type')
    package, namespace, name = match.groups()
    return package, namespace or 'msg', name


def _definition_file(type_name: str, extension: str) -> tuple[str, str] | None:
    """(package, text) of the type's .msg or .idl file, or None when there is none."""
    package, namespace, name = _split_type(type_name)
    path = _share_directory(package) / namespace / f'{name}{extension}'
    if not path.is_file():
        return None
    return package, path.read_text()


@lru_cache(maxsize=None)
def message_definition(type_name: str) -> tuple[str, str]:
    """(encoding, text): the full definition of a message type as rosbag2 stores it.

    The type's ``.msg`` file followed, depth first, by each type it uses not yet included, each
    after a line of 80 ``=`` and ``MSG: pkg/Type`` (rosbag2_cpp's LocalMessageDefinitionSource);
    ``ros2idl`` from the ``.idl`` files when a ``.msg`` is missing. Read from the installed
    interface packages, so this project's own types work like any other.
    """
    for extension, encoding in (('.msg', 'ros2msg'), ('.idl', 'ros2idl')):
        if _definition_file(type_name, extension) is None:
            continue
        seen: set[str] = set()

        def text_of(name: str, depth: int = 50) -> str:
            found = _definition_file(name, extension)
            if found is None:
                raise BagError(f'no {extension} definition of {name!r} (needed by '
                               f'{type_name})')
            if depth <= 0:
                raise BagError(f'{type_name}: definitions nest too deeply')
            package, text = found
            result = text
            for dependency in sorted(_dependencies(text, package, extension)):
                if dependency not in seen:
                    seen.add(dependency)
                    header = 'MSG: ' if extension == '.msg' else 'IDL: '
                    body = text_of(dependency, depth - 1)
                    result += f'\n{_DELIMITER}{header}{dependency}\n{body}'
            return result

        text = text_of(type_name)
        if extension == '.idl':
            text = f'{_DELIMITER}IDL: {type_name}\n{text}'
        return encoding, text
    raise BagError(f'no definition of message type {type_name!r} found (.msg or .idl in the '
                   f'share directory of {type_name.split("/")[0]!r})')


def _dependencies(text: str, package: str, extension: str) -> set[str]:
    if extension == '.idl':
        return set(_IDL_INCLUDE.findall(text))
    out = set()
    for name in _MSG_FIELD_TYPE.findall(text):
        if name not in _PRIMITIVES:
            out.add(name if '/' in name else f'{package}/{name}')
    return out


@lru_cache(maxsize=None)
def type_description_hash(type_name: str) -> str:
    """The type's RIHS01 hash from its installed type description (``<Type>.json``), as
    rosbag2 records it; '' where the distro generates none (before Iron)."""
    import json  # noqa: PLC0415
    package, namespace, name = _split_type(type_name)
    path = _share_directory(package) / namespace / f'{name}.json'
    try:
        hashes = json.loads(path.read_text()).get('type_hashes', [])
    except (OSError, ValueError):
        return ''
    return next((h.get('hash_string', '') for h in hashes if h.get('type_name') == type_name),
                '')


# --- writing ---------------------------------------------------------------------------------

def default_bag_name(when: datetime | None = None) -> str:
    """rosbag2's default bag name: ``rosbag2_YYYY_MM_DD-HH_MM_SS`` in local time."""
    return (when or datetime.now()).strftime('rosbag2_%Y_%m_%d-%H_%M_%S')


@dataclass
class TopicRecord:
    """One recorded topic: what metadata.yaml says about it."""

    name: str
    type: str
    qos: tuple[Qos, ...] = ()
    type_hash: str = ''
    count: int = 0

    def as_metadata(self) -> dict[str, Any]:
        return {
            'topic_metadata': {
                'name': self.name,
                'type': self.type,
                'serialization_format': 'cdr',
                'offered_qos_profiles': [q.as_metadata() for q in self.qos],
                'type_description_hash': self.type_hash,
            },
            'message_count': self.count,
        }


@dataclass
class FileRecord:
    """One .mcap file of the bag: its span and message count."""

    path: Path
    start: int = 0  # ns, first log time
    end: int = 0  # ns, last log time
    count: int = 0

    def as_metadata(self) -> dict[str, Any]:
        return {
            'path': self.path.name,
            'starting_time': {'nanoseconds_since_epoch': self.start},
            'duration': {'nanoseconds': self.end - self.start},
            'message_count': self.count,
        }


@dataclass
class _OpenFile:
    record: FileRecord
    writer: Any  # mcap.writer.Writer
    stream: Any
    schemas: dict[str, int] = field(default_factory=dict)  # type -> schema id
    channels: dict[str, int] = field(default_factory=dict)  # topic -> channel id


class BagWriter:
    """Writes one rosbag2 bag (a new directory) of already-serialized CDR messages.

    ``split()`` ends the current ``.mcap`` file; the next message starts the next one
    (``<bag>_0.mcap``, ``<bag>_1.mcap``, ... as rosbag2 names them). ``close()`` finishes the
    last file and writes ``metadata.yaml``. Thread-safe; also a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], *, chunk_compression: str = 'none',
                 custom_data: Mapping[str, str] | None = None, split_grace: float = 1.0
                 ) -> None:
        """``split_grace``: seconds of log time a file ended by ``split(at=...)`` stays open
        for messages logged before ``at`` that arrive late (a busy recorder takes messages
        out of order across topics)."""
        from mcap.writer import CompressionType  # noqa: PLC0415
        self.path = Path(path)
        compressions = {'none': CompressionType.NONE, 'zstd': CompressionType.ZSTD,
                        'lz4': CompressionType.LZ4}
        if chunk_compression not in compressions:
            raise BagError(f'chunk compression {chunk_compression!r}: use one of '
                           f'{", ".join(compressions)}')
        self._compression = compressions[chunk_compression]
        self._grace = int(split_grace * 1e9)
        if self.path.exists():
            raise BagError(f'{self.path} exists already; a recording never overwrites')
        try:
            self.path.mkdir(parents=True)
        except OSError as exc:
            raise BagError(f'cannot create {self.path}: {exc.strerror or exc}') from None
        self.topics: dict[str, TopicRecord] = {}
        self.files: list[FileRecord] = []
        self.custom_data: dict[str, str] = dict(custom_data or {})
        self._lock = threading.Lock()
        self._open: _OpenFile | None = None  # the file new messages go to
        self._ending: _OpenFile | None = None  # split at _ending_at, still taking late ones
        self._ending_at = 0
        self._closed = False
        self._open_file()  # a bag that never gets a message still is a bag

    # public API ------------------------------------------------------------------------------
    def add_topic(self, name: str, type_name: str, qos: Sequence[Qos] = (),
                  type_hash: str = '') -> None:
        """Declare a topic before writing to it. The definition comes from the installed
        interface packages; ``type_hash`` ('' = from the installed type description) is what
        the publishers announce."""
        if not name.startswith('/'):
            raise BagError(f'topic {name!r}: use the fully qualified name (/...)')
        message_definition(type_name)  # fail now, with the reason, not at the first message
        with self._lock:
            self._check_open()
            if name in self.topics:
                if self.topics[name].type != type_name:
                    raise BagError(f'topic {name} is recorded as {self.topics[name].type}, not '
                                   f'{type_name}')
                return
            self.topics[name] = TopicRecord(name, type_name, tuple(qos),
                                            type_hash or type_description_hash(type_name))
            for current in (self._ending, self._open):
                if current is not None:
                    self._register(current, self.topics[name])

    def write(self, topic: str, data: bytes, log_time: int, publish_time: int | None = None,
              sequence: int = 0) -> None:
        """Append one serialized message; ``log_time`` (ns since the epoch) is when it was
        received, ``publish_time`` when it was sent (default: the log time), ``sequence`` the
        publisher's sequence number (0: unknown).

        Log times never decrease within a file: a message taken after a later-received one
        (callbacks of several topics run in their own order) is logged at that one's time, so
        every reader, also one that reads a file front to back, sees them in time order.
        """
        with self._lock:
            self._check_open()
            record = self.topics.get(topic)
            if record is None:
                raise BagError(f'topic {topic} was not added to the bag')
            if self._ending is not None and log_time < self._ending_at:
                current = self._ending  # received before the split: belongs to that file
            else:
                if self._ending is not None and log_time >= self._ending_at + self._grace:
                    self._finish(self._ending)
                current = self._open or self._open_file()
            if current.record.count:
                log_time = max(log_time, current.record.end)
            current.writer.add_message(current.channels[topic], log_time, bytes(data),
                                       log_time if publish_time is None else publish_time,
                                       sequence & 0xFFFFFFFF)
            span = current.record
            if span.count == 0:
                span.start = log_time
            span.end = log_time
            span.count += 1
            record.count += 1

    def split(self, at: int | None = None) -> FileRecord | None:
        """End the current file if it holds messages; the next message starts a new one.

        With ``at`` (a log time, ns), messages logged before it still go to the ending file
        while they arrive within the grace period. Returns the ending file, or None.
        """
        with self._lock:
            self._check_open()
            if self._open is None or self._open.record.count == 0:
                return None
            if self._ending is not None:
                self._finish(self._ending)
            ending, self._open = self._open, None
            if at is None:
                self._finish(ending)
            else:  # the files' spans must not overlap
                self._ending, self._ending_at = ending, max(at, ending.record.end + 1)
            return ending.record

    def set_custom_data(self, key: str, value: str) -> None:
        """A key/value pair for metadata.yaml's ``custom_data`` (strings, as rosbag2 keeps
        them)."""
        with self._lock:
            self.custom_data[str(key)] = str(value)

    def close(self) -> Path:
        """Finish the files and write metadata.yaml; the bag's directory. Idempotent."""
        with self._lock:
            if self._closed:
                return self.path
            if self._ending is not None:
                self._finish(self._ending)
            if self._open is not None:
                if self._open.record.count == 0 and len(self.files) > 1:
                    self._discard(self._open)  # an empty file after a split adds nothing
                else:
                    self._finish(self._open)
            self._closed = True
            text = _dump_yaml({'rosbag2_bagfile_information': self._metadata()})
            temporary = self.path / 'metadata.yaml.tmp'
            temporary.write_text(text)
            temporary.replace(self.path / 'metadata.yaml')
            return self.path

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # what was recorded is kept, also after an error

    # internals -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise BagError(f'{self.path} is closed')

    def _open_file(self) -> _OpenFile:
        from mcap.writer import Writer  # noqa: PLC0415
        path = self.path / f'{self.path.name}_{len(self.files)}.mcap'
        stream = path.open('xb')
        writer = Writer(stream, compression=self._compression, enable_crcs=True)
        writer.start(profile='ros2', library=LIBRARY)
        self.files.append(FileRecord(path))
        self._open = _OpenFile(self.files[-1], writer, stream)
        for record in self.topics.values():
            self._register(self._open, record)
        return self._open

    def _register(self, current: _OpenFile, record: TopicRecord) -> None:
        schema_id = current.schemas.get(record.type)
        if schema_id is None:  # one schema per type, as rosbag2
            encoding, text = message_definition(record.type)
            schema_id = current.writer.register_schema(record.type, encoding, text.encode())
            current.schemas[record.type] = schema_id
        offered = _dump_yaml([q.as_metadata() for q in record.qos]) if record.qos else ''
        current.channels[record.name] = current.writer.register_channel(
            record.name, 'cdr', schema_id,
            {'offered_qos_profiles': offered, 'topic_type_hash': record.type_hash})

    def _finish(self, current: _OpenFile) -> None:
        if current is self._ending:
            self._ending = None
        if current is self._open:
            self._open = None
        # as rosbag2's MCAP plugin: the bag's metadata (so far) inside each file
        current.writer.add_metadata('rosbag2', {'serialized_metadata': _dump_yaml(
            self._metadata())})
        current.writer.finish()
        current.stream.close()

    def _discard(self, current: _OpenFile) -> None:
        self._open = None
        current.stream.close()
        current.record.path.unlink()
        self.files.remove(current.record)

    def _metadata(self) -> dict[str, Any]:
        """metadata.yaml's rosbag2_bagfile_information, in rosbag2's field order."""
        spans = [f for f in self.files if f.count]
        start = min((f.start for f in spans), default=0)
        end = max((f.end for f in spans), default=0)
        return {
            'version': METADATA_VERSION,
            'storage_identifier': STORAGE_IDENTIFIER,
            'duration': {'nanoseconds': end - start},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': self.message_count,
            'topics_with_message_count': [t.as_metadata() for t in self.topics.values()],
            'compression_format': '',
            'compression_mode': '',
            'relative_file_paths': [f.path.name for f in self.files],
            'files': [f.as_metadata() for f in self.files],
            'custom_data': dict(self.custom_data),
            'ros_distro': os.environ.get('ROS_DISTRO', ''),
        }


# --- reading ---------------------------------------------------------------------------------

def read_bag(path: str | os.PathLike[str], topics: Iterable[str] | None = None
             ) -> Iterator[tuple[str, int, Any]]:
    """(topic, log time in ns, message) of every message of a bag, in log-time order
    (within each file; files follow one another, and BagWriter's files do not overlap).

    ``path`` is a bag directory (with metadata.yaml) or one ``.mcap`` file of it; ``topics``
    limits the topics (each must be in the bag). Messages are rosbags message objects built
    from the definitions stored in the bag, so no ROS install is needed to read; their fields
    carry the ROS names (``msg.header.stamp.sec``, ``msg.position``).
    """
    bag = Path(path)
    if not bag.exists():
        raise BagError(f'{bag}: no such bag (neither a directory nor a file)')
    if bag.is_dir() and not (bag / 'metadata.yaml').is_file():
        raise BagError(f'{bag}: not a rosbag2 bag (no metadata.yaml)')
    if bag.is_file() and bag.suffix != '.mcap':
        raise BagError(f'{bag}: not a bag (expected a bag directory or an .mcap file)')
    wanted = None if topics is None else list(topics)
    return _messages(bag, wanted)


def _messages(bag: Path, wanted: list[str] | None) -> Iterator[tuple[str, int, Any]]:
    from rosbags.highlevel import AnyReader  # noqa: PLC0415
    try:
        with AnyReader([bag]) as reader:
            connections = reader.connections
            if wanted is not None:
                missing = sorted(set(wanted) - {c.topic for c in connections})
                if missing:
                    raise BagError(f'{bag}: no topic {", ".join(missing)} in the bag (it has '
                                   f'{", ".join(sorted({c.topic for c in connections}))})')
                connections = [c for c in connections if c.topic in wanted]
                if not connections:
                    return
            for connection, timestamp, raw in reader.messages(connections=connections):
                yield connection.topic, timestamp, reader.deserialize(raw, connection.msgtype)
    except BagError:
        raise
    except Exception as exc:  # rosbags' reader errors: a damaged or foreign file
        if type(exc).__module__.startswith('rosbags'):
            raise BagError(f'{bag}: cannot read it: {exc}') from None
        raise
