"""Datasets of episodes: rosbag2 bags of MCAP files, one file per episode, with an index.

A dataset is a directory that ``ros2 bag info``/``play``, Foxglove and rosbags open as a bag
(``metadata.yaml`` and ``<name>_<k>.mcap``, written by :class:`~reverse_digital_twin.core.bag.
BagWriter`, the recorder's writer), plus ``index.json``: for each episode its file, steps,
return, success and goal, and which topic holds which stream. Every message is a ROS 2 message
with its full schema in the file, so a dataset from the Gymnasium environment, from a risk
sweep or recorded from the live stack reads the same way:

==================  ===============================  =================================
stream              type                             one message per
==================  ===============================  =================================
``observation``     std_msgs/msg/Float32MultiArray   policy step
``action``          std_msgs/msg/Float32MultiArray   policy step
``reward``          std_msgs/msg/Float64             policy step
``goal``            sensor_msgs/msg/JointState       episode (position: the goal)
``joint_states``    sensor_msgs/msg/JointState       measured (or predicted) state
``command``         trajectory_msgs/msg/JointTrajectory  command sent to the controller
``image``           sensor_msgs/msg/Image            camera frame (rgb8)
``verdicts``        rdt_interfaces/msg/Verdict       the twin's prediction of a command
==================  ===============================  =================================

Log times are the episode's own (simulated or received) times, episodes one after the other;
the k-th reward belongs to the k-th step (a reward is known only after the step's effect, so
a live recording logs it later).
:func:`read_episodes` yields each episode as numpy arrays (for training). Writing serializes
with rosbags from the installed message definitions (the ones the schemas carry); no rclpy.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from reverse_digital_twin.core.bag import BagError, BagWriter, message_definition, read_bag

FORMAT = 'rdt-dataset'
VERSION = 1
INDEX_FILE = 'index.json'
#: ns between the end of one episode and the start of the next in the log.
EPISODE_GAP_NS = 1_000_000_000
#: Message type of each stream.
STREAM_TYPES = {
    'observation': 'std_msgs/msg/Float32MultiArray',
    'action': 'std_msgs/msg/Float32MultiArray',
    'reward': 'std_msgs/msg/Float64',
    'goal': 'sensor_msgs/msg/JointState',
    'joint_states': 'sensor_msgs/msg/JointState',
    'command': 'trajectory_msgs/msg/JointTrajectory',
    'image': 'sensor_msgs/msg/Image',
    'verdicts': 'rdt_interfaces/msg/Verdict',
}
_DELIMITER = '\n' + '=' * 80 + '\n'


class DatasetError(Exception):
    """A dataset that cannot be written or read; the message says which and why."""


@dataclass(frozen=True)
class Streams:
    """The topic of each stream (:data:`STREAM_TYPES`), as the live stack names them: a
    dataset written from the environment uses the names a recording of the stack has."""

    observation: str
    action: str
    reward: str
    goal: str
    joint_states: str
    command: str
    image: str
    verdicts: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Mapping[str, str]) -> 'Streams':
        names = {f.name for f in fields(Streams)}
        missing = sorted(names - set(data))
        if missing:
            raise DatasetError(f'index: streams lack {missing}')
        return Streams(**{k: str(data[k]) for k in names})


# --- serialization ---------------------------------------------------------------------------

def _split_definition(type_name: str, text: str) -> dict[str, str]:
    """A concatenated rosbag2 definition -> {pkg/msg/Type: its own .msg text}."""
    sections = text.split(_DELIMITER)
    out = {type_name: sections[0]}
    for section in sections[1:]:
        head, _, body = section.partition('\n')
        name = head.removeprefix('MSG: ').strip()
        package, _, short = name.partition('/')
        out[f'{package}/msg/{short.split("/")[-1]}'] = body
    return out


@lru_cache(maxsize=None)
def _typestore(type_names: tuple[str, ...]) -> Any:
    """A rosbags typestore of exactly the installed definitions the bag's schemas carry."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore  # noqa: PLC0415
    store = get_typestore(Stores.EMPTY)
    found: dict[str, Any] = {}
    for type_name in type_names:
        encoding, text = message_definition(type_name)
        if encoding != 'ros2msg':
            raise DatasetError(f'{type_name}: only .msg definitions are supported, got '
                               f'{encoding}')
        for name, body in _split_definition(type_name, text).items():
            if name not in found:
                found.update(get_types_from_msg(body, name))
    store.register(found)
    return store


class MessageEncoder:
    """CDR bytes of ROS 2 messages given as nested dicts (missing fields take their zero)."""

    def __init__(self, type_names: Sequence[str] = tuple(STREAM_TYPES.values())) -> None:
        self.store = _typestore(tuple(sorted(set(type_names))))

    def encode(self, type_name: str, values: Mapping[str, Any]) -> bytes:
        return bytes(self.store.serialize_cdr(self.build(type_name, values), type_name))

    def build(self, type_name: str, values: Mapping[str, Any]) -> Any:
        from rosbags.interfaces import Nodetype  # noqa: PLC0415
        fielddefs = self.store.fielddefs[type_name][1]
        unknown = set(values) - {name for name, _ in fielddefs}
        if unknown:
            raise DatasetError(f'{type_name} has no field(s) {sorted(unknown)}')
        kwargs = {}
        for name, (node, detail) in fielddefs:
            kwargs[name] = self._value(node, detail, values.get(name), Nodetype)
        return self.store.types[type_name](**kwargs)

    def _value(self, node: Any, detail: Any, value: Any, nodetype: Any) -> Any:
        if node == nodetype.BASE:
            base = detail[0]
            if base == 'string':
                return '' if value is None else str(value)
            if base == 'bool':
                return bool(value) if value is not None else False
            if base.startswith('float'):
                return float(value) if value is not None else 0.0
            return int(value) if value is not None else 0
        if node == nodetype.NAME:
            return self.build(detail, value or {})
        (inner, inner_detail), size = detail
        items = [] if value is None else value
        if inner == nodetype.BASE and inner_detail[0] not in ('string', 'bool'):
            kind = {'byte': 'uint8', 'char': 'uint8'}.get(inner_detail[0], inner_detail[0])
            array = np.asarray(items, dtype=kind).ravel()
            if node == nodetype.ARRAY and array.size != size:
                array = np.resize(array, size) if array.size else np.zeros(size, dtype=kind)
            return array
        out = [self._value(inner, inner_detail, v, nodetype) for v in items]
        if node == nodetype.ARRAY:
            out += [self._value(inner, inner_detail, None, nodetype)] * (size - len(out))
        return out


def stamp(ns: int) -> dict[str, int]:
    """builtin_interfaces/Time of a time in ns."""
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return {'sec': sec, 'nanosec': nanosec}


def duration(seconds: float) -> dict[str, int]:
    """builtin_interfaces/Duration of a time in s."""
    sec = math.floor(seconds)
    return {'sec': int(sec), 'nanosec': int(round((seconds - sec) * 1e9)) % 1_000_000_000}


def float_array(values: Any, label: str) -> dict[str, Any]:
    """A std_msgs/Float32MultiArray of a vector, one labelled dimension."""
    data = np.asarray(values, dtype=np.float32).ravel()
    return {'layout': {'dim': [{'label': label, 'size': int(data.size), 'stride': 1}]},
            'data': data}


def verdict_fields(verdict: Any, stamp_ns: int) -> dict[str, Any]:
    """rdt_interfaces/Verdict fields of a core.prediction.Verdict (as the planner sends it)."""
    joints = list(verdict.joints)
    out: dict[str, Any] = {
        'safe': bool(verdict.safe), 'summary': '' if verdict.safe else verdict.summary,
        'max_tracking_error': float(verdict.max_tracking_error),
        'max_tracking_error_joint': verdict.max_tracking_error_joint,
        'duration': float(verdict.duration), 'computation_time': float(verdict.computation_time),
        'collisions': [{'link': c.link, 'other': c.other, 'time': float(c.time),
                        'position': dict(zip('xyz', map(float, c.position))),
                        'depth': float(c.depth)} for c in verdict.collisions],
        'limit_violations': [{'joint': v.joint, 'kind': v.kind, 'time': float(v.time),
                              'value': float(v.value), 'limit': float(v.limit)}
                             for v in verdict.limit_violations],
        'predicted_trajectory': {'joint_names': joints, 'points': [
            {'positions': p, 'velocities': v, 'time_from_start': duration(max(float(t), 0.0))}
            for t, p, v in zip(verdict.times, verdict.positions, verdict.velocities)]},
    }
    if verdict.outcome is not None:
        out['predicted_error_code'] = int(verdict.outcome.error_code)
        out['predicted_error_string'] = verdict.outcome.error_string
    if len(verdict.times):
        out['final_state'] = {'header': {'stamp': stamp(stamp_ns)}, 'name': joints,
                              'position': verdict.final_positions,
                              'velocity': verdict.final_velocities}
    return out


# --- writing ---------------------------------------------------------------------------------

@dataclass
class EpisodeEntry:
    """One episode in the index."""

    episode: int
    file: str
    steps: int
    episode_return: float
    success: bool
    outcome: str = ''
    reason: str = ''
    seed: int | None = None
    goal: list[float] = field(default_factory=list)
    start_ns: int = 0
    duration: float = 0.0  # s from the first message to the last
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data['return'] = data.pop('episode_return')
        return data

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> 'EpisodeEntry':
        values = dict(data)
        values['episode_return'] = float(values.pop('return', 0.0))
        known = {f.name for f in fields(EpisodeEntry)}
        return EpisodeEntry(**{k: v for k, v in values.items() if k in known})


def write_index(path: Path, header: Mapping[str, Any], entries: Sequence[EpisodeEntry]) -> Path:
    """index.json of a dataset directory: the header (format, source, robot, joints, streams,
    ...) and the episodes. Written whole, then moved into place."""
    data = {'format': FORMAT, 'version': VERSION, **header,
            'episodes': [e.as_dict() for e in entries]}
    data['summary'] = summarize(entries)
    target = Path(path) / INDEX_FILE
    temporary = target.with_suffix('.json.tmp')
    temporary.write_text(json.dumps(data, indent=1, default=_json_default) + '\n')
    temporary.replace(target)
    return target


def summarize(entries: Sequence[EpisodeEntry]) -> dict[str, Any]:
    """Episodes, steps, success rate and mean return."""
    count = len(entries)
    return {'episodes': count, 'steps': int(sum(e.steps for e in entries)),
            'success_rate': (sum(e.success for e in entries) / count) if count else None,
            'mean_return': (float(np.mean([e.episode_return for e in entries]))
                            if count else None)}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


def read_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A dataset's index.json (DatasetError when it is missing or not one)."""
    target = Path(path) / INDEX_FILE
    if not target.is_file():
        raise DatasetError(f'{path}: not a dataset (no {INDEX_FILE})')
    try:
        data = json.loads(target.read_text())
    except ValueError as exc:
        raise DatasetError(f'{target}: not JSON: {exc}') from None
    if data.get('format') != FORMAT:
        raise DatasetError(f'{target}: format {data.get("format")!r}, expected {FORMAT!r}')
    if int(data.get('version', 0)) > VERSION:
        raise DatasetError(f'{target}: version {data["version"]} is newer than this reader '
                           f'({VERSION})')
    return data


class DatasetWriter:
    """Writes episodes into a new dataset directory, one MCAP file each, and the index.

    Times passed in are seconds from the episode's start and must not decrease (a bag's log
    times do not); each episode is logged after the previous one. ``close()`` (or the context
    manager) finishes the bag and writes the index.
    """

    def __init__(self, path: str | os.PathLike[str], streams: Streams, *, source: str,
                 robot: str, joints: Sequence[str], info: Mapping[str, Any] | None = None,
                 start_ns: int | None = None) -> None:
        self.path = Path(path)
        self.streams = streams
        self.joints = list(joints)
        self.header = {'source': source, 'robot': robot, 'joints': self.joints,
                       'streams': streams.as_dict(), 'created': time.time(),
                       'info': dict(info or {})}
        self.encoder = MessageEncoder()
        try:
            self.bag = BagWriter(self.path, custom_data={'rdt.dataset': INDEX_FILE})
        except BagError as exc:
            raise DatasetError(str(exc)) from None
        self.entries: list[EpisodeEntry] = []
        self._base = time.time_ns() if start_ns is None else int(start_ns)
        self._episode: EpisodeEntry | None = None
        self._last_ns = self._base
        self._rewards: list[float] = []

    # --- episodes -------------------------------------------------------------------------------
    def begin_episode(self, goal: Sequence[float], seed: int | None = None,
                      info: Mapping[str, Any] | None = None,
                      goal_names: Sequence[str] | None = None) -> int:
        """Start the next episode (its goal is its first message); its index."""
        if self._episode is not None:
            raise DatasetError('begin_episode while an episode is open: end_episode first')
        start = self._last_ns + (EPISODE_GAP_NS if self.entries else 0)
        values = [float(v) for v in goal]
        self._episode = EpisodeEntry(len(self.entries), '', 0, 0.0, False, seed=seed,
                                     goal=values, start_ns=start, info=dict(info or {}))
        self._rewards = []
        names = list(goal_names) if goal_names is not None else (
            self.joints if len(values) == len(self.joints) else ['x', 'y', 'z'][:len(values)])
        self._write('goal', 0.0, {'header': {'stamp': stamp(start)}, 'name': names,
                                  'position': values})
        return self._episode.episode

    def step(self, t: float, observation: Any, action: Any, reward: float | None = None
             ) -> None:
        """One policy step at ``t`` s: what the policy saw, what it did, what it got."""
        self._open()
        self._write('observation', t, float_array(observation, 'observation'))
        self._write('action', t, float_array(action, 'action'))
        if reward is not None:
            self._write('reward', t, {'data': float(reward)})
            self._rewards.append(float(reward))
        self._episode.steps += 1

    def joint_state(self, t: float, positions: Any, velocities: Any = (),
                    efforts: Any = ()) -> None:
        """A measured (or predicted) joint state of the controller joints at ``t`` s."""
        self._open()
        self._write('joint_states', t, {
            'header': {'stamp': stamp(self._ns(t))}, 'name': self.joints,
            'position': np.asarray(positions, float), 'velocity': np.asarray(velocities, float),
            'effort': np.asarray(efforts, float)})

    def command(self, t: float, times: Sequence[float], positions: Sequence[Sequence[float]],
                joints: Sequence[str] | None = None) -> None:
        """A trajectory sent to the controller at ``t`` s (header stamp 0: start now, as a
        streamed command is sent)."""
        self._open()
        self._write('command', t, {'joint_names': list(joints or self.joints), 'points': [
            {'positions': np.asarray(p, float), 'time_from_start': duration(tf)}
            for tf, p in zip(times, positions)]})

    def image(self, t: float, rgb: np.ndarray, frame_id: str = '') -> None:
        """A camera frame (H, W, 3) uint8, as sensor_msgs/Image rgb8."""
        self._open()
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise DatasetError(f'image: expected (H, W, 3) rgb, got shape {rgb.shape}')
        height, width, _ = rgb.shape
        self._write('image', t, {'header': {'stamp': stamp(self._ns(t)), 'frame_id': frame_id},
                                 'height': height, 'width': width, 'encoding': 'rgb8',
                                 'is_bigendian': 0, 'step': width * 3, 'data': rgb.ravel()})

    def verdict(self, t: float, values: Mapping[str, Any]) -> None:
        """The twin's verdict (rdt_interfaces/Verdict fields, see :func:`verdict_fields`)."""
        self._open()
        self._write('verdicts', t, values)

    def end_episode(self, success: bool, outcome: str = '', reason: str = '',
                    **info: Any) -> EpisodeEntry:
        """Close the episode's file; its index entry."""
        entry = self._open()
        entry.success = bool(success)
        entry.outcome = outcome or ('success' if success else 'failure')
        entry.reason = reason
        entry.episode_return = float(sum(self._rewards))
        entry.duration = (self._last_ns - entry.start_ns) * 1e-9
        entry.info.update(info)
        record = self.bag.split()
        entry.file = record.path.name if record is not None else ''
        self.bag.set_custom_data(f'rdt.episode.{entry.file}', json.dumps(
            {'episode': entry.episode, 'success': entry.success, 'steps': entry.steps,
             'return': entry.episode_return}))
        self.entries.append(entry)
        self._episode = None
        return entry

    def close(self) -> Path:
        """Finish the bag (an open episode is ended unfinished) and write the index."""
        if self._episode is not None:
            self.end_episode(False, 'stopped', 'the dataset was closed during the episode')
        self.bag.close()
        write_index(self.path, self.header, self.entries)
        return self.path

    def __enter__(self) -> 'DatasetWriter':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------
    def _open(self) -> EpisodeEntry:
        if self._episode is None:
            raise DatasetError('no episode is open: begin_episode first')
        return self._episode

    def time_ns(self, t: float) -> int:
        """The log time (ns) of ``t`` s into the open episode."""
        return self._open().start_ns + max(int(round(t * 1e9)), 0)

    _ns = time_ns

    def _write(self, stream: str, t: float, values: Mapping[str, Any]) -> None:
        topic = getattr(self.streams, stream)
        type_name = STREAM_TYPES[stream]
        if topic not in self.bag.topics:
            self.bag.add_topic(topic, type_name)
        log_time = max(self._ns(t), self._last_ns)
        self.bag.write(topic, self.encoder.encode(type_name, values), log_time)
        self._last_ns = log_time


# --- reading ---------------------------------------------------------------------------------

@dataclass
class Episode:
    """One episode as arrays, for training and analysis.

    Steps (one per policy action): ``step_times`` (s from the episode's start),
    ``observations`` (T, obs), ``actions`` (T, act), ``rewards`` (T,; NaN where none was
    logged). States: ``state_times``, ``positions``, ``velocities`` (S, joints). Commands:
    ``command_times`` and ``targets`` (C, joints; the last point of each). Images:
    ``image_times`` and ``images`` (K, H, W, 3 uint8). ``verdicts``: one dict per verdict
    (time, safe, summary, collisions, duration, ...).
    """

    index: int
    file: Path
    joints: list[str]
    goal: np.ndarray
    success: bool
    outcome: str
    reason: str
    seed: int | None
    episode_return: float
    step_times: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    state_times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    command_times: np.ndarray
    targets: np.ndarray
    image_times: np.ndarray
    images: np.ndarray
    verdicts: list[dict[str, Any]]
    info: dict[str, Any]

    @property
    def steps(self) -> int:
        return len(self.step_times)


def read_episodes(path: str | os.PathLike[str], images: bool = True) -> Iterator[Episode]:
    """Each episode of a dataset, in order, read with rosbags from the MCAP files alone
    (their embedded schemas; no ROS install needed). ``images=False`` skips the frames."""
    root = Path(path)
    index = read_index(root)
    streams = Streams.from_dict(index['streams'])
    joints = list(index.get('joints', []))
    for data in index['episodes']:
        entry = EpisodeEntry.from_dict(data)
        file = root / entry.file
        if not file.is_file():
            raise DatasetError(f'{root}: episode {entry.episode}: no file {entry.file}')
        yield _read_episode(file, entry, streams, joints, images)


def _read_episode(file: Path, entry: EpisodeEntry, streams: Streams, joints: list[str],
                  want_images: bool) -> Episode:
    topic_stream = {topic: name for name, topic in streams.as_dict().items()}
    if not want_images:
        topic_stream.pop(streams.image, None)
    columns: dict[str, list] = {name: [] for name in STREAM_TYPES}
    for topic, log_time, msg in _messages(file, set(topic_stream)):
        columns[topic_stream[topic]].append(((log_time - entry.start_ns) * 1e-9, msg))
    steps = min(len(columns['observation']), len(columns['action']))
    step_times = np.array([t for t, _ in columns['observation'][:steps]], dtype=float)
    observations = _stack([m.data for _, m in columns['observation'][:steps]], np.float32)
    actions = _stack([m.data for _, m in columns['action'][:steps]], np.float32)
    rewards = np.full(steps, np.nan)
    for k, (_, msg) in enumerate(columns['reward'][:steps]):  # the k-th belongs to step k
        rewards[k] = float(msg.data)
    states = [(t, _in_order(m, joints)) for t, m in columns['joint_states']]
    states = [(t, s) for t, s in states if s is not None]
    state_times = np.array([t for t, _ in states], dtype=float)
    positions = _stack([s[0] for _, s in states], float, len(joints))
    velocities = _stack([s[1] for _, s in states], float, len(joints))
    commands = [(t, _command_targets(m, joints)) for t, m in columns['command']]
    commands = [(t, c) for t, c in commands if c is not None]
    images = [(t, _rgb(m)) for t, m in columns['image']]
    images = [(t, i) for t, i in images if i is not None]
    verdicts = [_verdict_dict(t, m) for t, m in columns['verdicts']]
    goal = np.asarray(entry.goal, dtype=float)
    if not len(goal) and columns['goal']:
        goal = np.asarray(columns['goal'][0][1].position, dtype=float)
    return Episode(
        entry.episode, file, joints, goal, entry.success, entry.outcome, entry.reason,
        entry.seed, entry.episode_return, step_times, observations, actions, rewards,
        state_times, positions, velocities,
        np.array([t for t, _ in commands], dtype=float),
        _stack([c for _, c in commands], float, len(joints)),
        np.array([t for t, _ in images], dtype=float),
        np.stack([i for _, i in images]) if images else np.zeros((0, 0, 0, 3), np.uint8),
        verdicts, dict(entry.info))


def _messages(file: Path, topics: set[str]) -> Iterator[tuple[str, int, Any]]:
    from rosbags.highlevel import AnyReader  # noqa: PLC0415
    with AnyReader([file]) as reader:
        present = {c.topic for c in reader.connections}
    wanted = sorted(topics & present)
    if not wanted:
        return iter(())
    return read_bag(file, wanted)


def _stack(rows: list, dtype: Any, width: int | None = None) -> np.ndarray:
    if not rows:
        return np.zeros((0, width or 0), dtype=dtype)
    return np.stack([np.asarray(r, dtype=dtype) for r in rows])


def _in_order(msg: Any, joints: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    names = list(msg.name)
    index = {n: i for i, n in enumerate(names)}
    if any(j not in index for j in joints):
        return None
    position = np.asarray(msg.position, dtype=float)
    velocity = np.asarray(msg.velocity, dtype=float)
    q = np.array([position[index[j]] for j in joints])
    v = np.array([velocity[index[j]] for j in joints]) if len(velocity) == len(names) \
        else np.full(len(joints), np.nan)
    return q, v


def _command_targets(msg: Any, joints: list[str]) -> np.ndarray | None:
    names = list(msg.joint_names)
    if not msg.points or any(j not in names for j in joints):
        return None
    last = np.asarray(msg.points[-1].positions, dtype=float)
    return np.array([last[names.index(j)] for j in joints])


def _rgb(msg: Any) -> np.ndarray | None:
    if msg.encoding not in ('rgb8', 'bgr8'):
        return None
    data = np.asarray(msg.data, dtype=np.uint8)
    image = data.reshape(msg.height, msg.step)[:, :msg.width * 3].reshape(
        msg.height, msg.width, 3)
    return image[..., ::-1].copy() if msg.encoding == 'bgr8' else image.copy()


def _verdict_dict(t: float, msg: Any) -> dict[str, Any]:
    return {'time': t, 'safe': bool(msg.safe), 'summary': msg.summary,
            'collisions': [(c.link, c.other, float(c.time)) for c in msg.collisions],
            'limit_violations': [(v.joint, v.kind, float(v.time)) for v in msg.limit_violations],
            'predicted_error_code': int(msg.predicted_error_code),
            'duration': float(msg.duration),
            'max_tracking_error': float(msg.max_tracking_error)}
