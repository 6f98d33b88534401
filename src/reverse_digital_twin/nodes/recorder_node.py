"""Recorder node: the twin's topics into a rosbag2 bag (MCAP), as ``ros2 bag record`` would.

A thin adapter over :mod:`reverse_digital_twin.core.bag`: finds each topic's type and its
publishers' QoS in the graph (waiting for topics that are not there yet; one that never comes
is reported, the others are recorded anyway), subscribes raw with a QoS every publisher
matches, and hands the CDR bytes with their arrival time to the bag writer. Never
deserializes, except the client goals' status in per-goal mode (one file per goal).
"""
from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rclpy.exceptions import InvalidTopicNameException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from rclpy.topic_endpoint_info import TopicEndpointInfo
from rclpy.validate_full_topic_name import validate_full_topic_name

from reverse_digital_twin.core.bag import BagError, BagWriter, Qos, default_bag_name
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.recording import GoalEnds
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, declare
from reverse_digital_twin.stack import TwinNames

NODE_NAME = 'rdt_recorder'
#: Messages a subscription buffers while the recorder is busy (1 s of a 100 Hz stream).
QUEUE_DEPTH = 100
_NAMES = TwinNames()


def check_topic_names(names: Sequence[str]) -> list[str]:
    """Fully qualified, valid topic names (relative ones taken from the root), or ConfigError
    naming the first bad one and why."""
    out = []
    for name in names:
        full = name if name.startswith('/') else f'/{name}'
        try:
            validate_full_topic_name(full)
        except InvalidTopicNameException as exc:
            reason = str(exc).splitlines()[0].removeprefix('Invalid topic name: ').rstrip(':')
            raise ConfigError(f'topic {name!r}: {reason}') from None
        if full not in out:
            out.append(full)
    return out


def offered_qos(info: TopicEndpointInfo) -> Qos:
    """A publisher's QoS as the graph reports it, for the bag's metadata."""
    profile = info.qos_profile
    return Qos(history=profile.history.name.lower(), depth=int(profile.depth),
               reliability=profile.reliability.name.lower(),
               durability=profile.durability.name.lower(),
               deadline_ns=profile.deadline.nanoseconds, lifespan_ns=profile.lifespan.nanoseconds,
               liveliness=profile.liveliness.name.lower(),
               liveliness_lease_duration_ns=profile.liveliness_lease_duration.nanoseconds,
               avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


def request_qos(publishers: Sequence[TopicEndpointInfo]) -> QoSProfile:
    """A QoS every publisher matches (rosbag2's rule): reliable only if all offer it, transient
    local only if all do (then their last messages arrive too)."""
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                  for p in publishers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=QUEUE_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                      else DurabilityPolicy.VOLATILE)


def _message_class(type_name: str) -> Any:
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


class Recorder(Node):
    """Records topics into a new bag until stopped (``stop()`` writes metadata.yaml)."""

    def __init__(self, shutdown_when_done: bool = True, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        output = declare(self, 'output', '',
                         'Bag directory to create (must not exist); empty: '
                         'rosbag2_YYYY_MM_DD-HH_MM_SS in the working directory', True)
        topics = declare(self, 'topics', list(_NAMES.recorded_topics),
                         'Topics to record (fully qualified, or relative to the node\'s '
                         'namespace)', True)
        self.per_goal = bool(declare(self, 'per_goal', False,
                                     'One .mcap file per client goal: a new file starts when '
                                     'a goal ends', True))
        self.goal_status_topic = declare(self, 'goal_status_topic', _NAMES.goal_status,
                                         'The client action\'s _action/status topic (per_goal)',
                                         True)
        self.duration = float(declare(self, 'duration', 0.0,
                                      'Wall seconds to record, then stop; 0 = until stopped',
                                      True))
        self.discovery_timeout = float(declare(
            self, 'discovery_timeout', 10.0,
            'Wall seconds after which topics not seen yet are reported (they are still '
            'looked for)', True))
        check_unknown_parameters(self)
        try:
            self.topics = check_topic_names([self.resolve_topic_name(t) for t in topics])
            self.goal_status_topic = check_topic_names([self.goal_status_topic])[0]
        except InvalidTopicNameException as exc:
            raise ConfigError(f'topics: {str(exc).splitlines()[0]}') from None
        if not self.topics:
            raise ConfigError('topics: no topic to record')
        try:
            self.bag = BagWriter(Path(output or default_bag_name()))
        except BagError as exc:
            raise ConfigError(str(exc)) from None
        self.started = time.time_ns()
        self.done = False  # the duration has passed
        self.problems: dict[str, str] = {}  # topic -> why it is not recorded (yet)
        self._wanted = list(self.topics)
        if self.per_goal and self.goal_status_topic not in self._wanted:
            self._wanted.append(self.goal_status_topic)  # followed, not recorded
        self._recording: dict[str, Subscription] = {}
        self._goals = GoalEnds(self.started)
        self._status_class: Any = None
        self._closed = False
        self._reported_missing = False
        self._shutdown_when_done = shutdown_when_done
        self._timer = self.create_timer(0.1, self._discover)
        self.get_logger().info(f'recording into {self.bag.path}'
                               + (' (one file per goal)' if self.per_goal else ''))

    # --- discovery ----------------------------------------------------------------------------
    def _discover(self) -> None:
        elapsed = (time.time_ns() - self.started) * 1e-9
        if self.duration > 0 and elapsed >= self.duration and not self.done:
            self.done = True
            if self._shutdown_when_done:
                self.context.try_shutdown()
            return
        pending = [t for t in self._wanted if t not in self._recording]
        if not pending:
            return
        types = dict(self.get_topic_names_and_types())
        for topic in pending:
            self._try_subscribe(topic, types.get(topic, []))
        missing = [t for t in self._wanted if t not in self._recording]
        if missing and not self._reported_missing and elapsed >= self.discovery_timeout:
            self._reported_missing = True
            self.get_logger().warning('not recording (still looking): ' + '; '.join(
                f'{t} ({self.problems.get(t, "not seen")})' for t in missing))

    def _try_subscribe(self, topic: str, types: list[str]) -> None:
        if not types:
            self.problems[topic] = 'no such topic in the graph'
            return
        if len(types) > 1:
            self.problems[topic] = f'published with several types: {", ".join(types)}'
            return
        publishers = self.get_publishers_info_by_topic(topic)
        if not publishers:
            self.problems[topic] = 'no publisher'
            return
        type_name = types[0]
        try:
            message_class = _message_class(type_name)
            if topic in self.topics:
                graph_hash = publishers[0].topic_type_hash
                self.bag.add_topic(topic, type_name, [offered_qos(p) for p in publishers],
                                   str(graph_hash) if graph_hash.version == 1 else '')
        except (ImportError, AttributeError, ValueError, BagError) as exc:
            self.problems[topic] = f'type {type_name} unusable: {exc}'
            return
        if topic == self.goal_status_topic:
            self._status_class = message_class
        self._recording[topic] = self.create_subscription(
            message_class, topic, lambda data, info, t=topic: self._on_message(t, data, info),
            request_qos(publishers), raw=True)
        self.problems.pop(topic, None)
        self.get_logger().info(f'recording {topic} ({type_name})' if topic in self.topics
                               else f'following {topic} ({type_name}) for goal ends')

    @property
    def ready(self) -> bool:
        """Every topic subscribed and matched with a publisher."""
        return all(t in self._recording and self._recording[t].get_publisher_count() > 0
                   for t in self._wanted)

    def missing(self) -> dict[str, str]:
        """Topics not recorded (yet) -> why."""
        return {t: self.problems.get(t, 'not seen') for t in self.topics
                if t not in self._recording}

    # --- recording ----------------------------------------------------------------------------
    def _on_message(self, topic: str, data: bytes, info: dict) -> None:
        if self._closed:
            return
        # as rosbag2: the middleware's receive and send times (not when Python got to it)
        received = info.get('received_timestamp') or time.time_ns()
        if topic in self.topics:
            self.bag.write(topic, data, received, info.get('source_timestamp') or received,
                           info.get('publication_sequence_number') or 0)
        if self.per_goal and topic == self.goal_status_topic:
            self._on_goal_status(data, received)

    def _on_goal_status(self, data: bytes, received: int) -> None:
        from rclpy.serialization import deserialize_message  # noqa: PLC0415
        msg = deserialize_message(data, self._status_class)
        ended = self._goals.update(
            (str(uuid.UUID(bytes=bytes(bytearray(s.goal_info.goal_id.uuid)))), int(s.status),
             s.goal_info.stamp.sec * 1_000_000_000 + s.goal_info.stamp.nanosec)
            for s in msg.status_list)
        if ended:  # the goal's file: everything received until its end was announced
            finished = self.bag.split(at=received + 1)
            if finished is not None:
                self.bag.set_custom_data(f'rdt.goals.{finished.path.name}', ','.join(ended))
                self.get_logger().info(f'goal {", ".join(ended)} ended: {finished.path.name}')

    def stop(self) -> Path:
        """Finish the bag (metadata.yaml); its directory. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self.bag.close()
        return self.bag.path


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin recorder --ros-args -p output:=my_bag ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(Recorder, args)


if __name__ == '__main__':
    raise SystemExit(main())
