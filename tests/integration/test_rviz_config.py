"""The shipped rviz configurations against the live graphs they are launched with.

For each launch mode, the graph runs as real processes; the .rviz file is parsed, every
display's topic is resolved as rviz2 resolves it when the launch file starts it (its namespace
and remappings, from stack.rviz_spec, the launch files' one source), and the test asserts that
the topic is published with the type the display subscribes to and with a QoS the display's
settings match. A RobotModel's frames (its TF prefix included) must be on TF, connected to the
fixed frame. So a renamed topic, a changed QoS or a moved frame fails here, not in a user's
rviz.
"""
from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.core.robot_model import parse_urdf
from reverse_digital_twin.launch_support import rviz_arguments
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import RVIZ_CONFIGS, RvizSpec, rviz_spec, sim_graph, twin_graph

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ROBOT = 'rdt_arm6'
#: The sim graph runs in a namespace: the relative topics of its config must follow it.
SIM_NAMESPACE = 'lab'

#: Display class -> (the property naming its topic, the message type it subscribes to).
TOPIC_DISPLAYS = {
    'rviz_default_plugins/RobotModel': ('Description Topic', 'std_msgs/msg/String'),
    'rviz_default_plugins/MarkerArray': ('Topic', 'visualization_msgs/msg/MarkerArray'),
    'rviz_default_plugins/Marker': ('Topic', 'visualization_msgs/msg/Marker'),
    'rviz_default_plugins/Image': ('Topic', 'sensor_msgs/msg/Image'),
    'rviz_default_plugins/PointCloud2': ('Topic', 'sensor_msgs/msg/PointCloud2'),
}
#: Displays without a topic of their own.
NO_TOPIC = {'rviz_default_plugins/Grid', 'rviz_default_plugins/TF', 'rviz_common/Group'}
TFMESSAGE = 'tf2_msgs/msg/TFMessage'
#: What rviz2's tf2 listener subscribes with: /tf reliable volatile, /tf_static transient local.
TF_SUBSCRIPTIONS = {'/tf': ('Reliable', 'Volatile'),
                    '/tf_static': ('Reliable', 'Transient Local')}
#: rviz2's defaults for a display's QoS properties left out of a config (rclcpp::QoS(5)).
DEFAULT_RELIABILITY, DEFAULT_DURABILITY = 'Reliable', 'Volatile'


@dataclass(frozen=True)
class Subscription:
    """One topic a display subscribes to, as configured."""

    display: str
    cls: str
    topic: str  # as written in the config
    type: str
    reliability: str  # rviz's names: Reliable | Best Effort | System Default
    durability: str  # Transient Local | Volatile | System Default


def displays(config: dict) -> list[dict]:
    """Every display of a configuration, inside display groups too."""
    out = []

    def walk(items: list[dict] | None) -> None:
        for item in items or ():
            out.append(item)
            walk(item.get('Displays'))
    walk(config['Visualization Manager'].get('Displays'))
    return out


def subscriptions(config: dict) -> list[Subscription]:
    """What each display subscribes to; an unknown display class with a topic is an error
    (add it to TOPIC_DISPLAYS so that it is checked)."""
    out = []
    for display in displays(config):
        cls, name = display['Class'], display.get('Name', display['Class'])
        if cls == 'rviz_default_plugins/TF':
            out += [Subscription(name, cls, topic, TFMESSAGE, *qos)
                    for topic, qos in TF_SUBSCRIPTIONS.items()]
            continue
        if cls == 'rviz_default_plugins/RobotModel' \
                and display.get('Description Source', 'Topic') != 'Topic':
            continue
        if cls not in TOPIC_DISPLAYS:
            assert cls in NO_TOPIC and 'Topic' not in display, \
                f'display {name!r}: class {cls} is not checked by this test'
            continue
        key, msg_type = TOPIC_DISPLAYS[cls]
        topic = display.get(key)
        assert isinstance(topic, dict) and topic.get('Value'), \
            f'display {name!r}: no {key} Value'
        out.append(Subscription(name, cls, topic['Value'], msg_type,
                                topic.get('Reliability Policy', DEFAULT_RELIABILITY),
                                topic.get('Durability Policy', DEFAULT_DURABILITY)))
    # every display that draws TF-placed data needs TF too (rviz's frame manager)
    if not any(s.cls == 'rviz_default_plugins/TF' for s in out):
        out += [Subscription('(frame manager)', 'tf2', topic, TFMESSAGE, *qos)
                for topic, qos in TF_SUBSCRIPTIONS.items()]
    return out


def incompatible(sub: Subscription, publisher: Any) -> str:
    """Why a publisher's QoS does not serve the display's request ('' when it does)."""
    offered = publisher.qos_profile
    if sub.reliability == 'Reliable' and offered.reliability == ReliabilityPolicy.BEST_EFFORT:
        return 'the display asks for Reliable, the publisher offers best effort'
    if sub.durability == 'Transient Local' \
            and offered.durability == DurabilityPolicy.VOLATILE:
        return 'the display asks for Transient Local, the publisher is volatile'
    return ''


def load(config_name: str) -> dict:
    return yaml.safe_load((ROOT / 'config' / config_name).read_text())


@dataclass
class Live:
    """A running graph and the rviz that its launch file would start beside it."""

    mode: str
    spec: RvizSpec
    stack: Stack


def _graph(mode: str):
    return twin_graph(ROBOT, hardware='standin') if mode == 'twin' \
        else sim_graph(ROBOT, SIM_NAMESPACE)


@pytest.fixture(scope='module', params=sorted(RVIZ_CONFIGS))
def live(request, ros_node: Node, tmp_path_factory) -> Iterator[Live]:
    mode = request.param
    spec = rviz_spec(mode, SIM_NAMESPACE if mode == 'sim' else '')
    log = open(tmp_path_factory.mktemp(f'rviz_{mode}') / 'nodes.log', 'w')  # noqa: SIM115
    stack = Stack(_graph(mode), echo=log).start()
    try:
        topics = {spec.resolve(s.topic) for s in subscriptions(load(spec.config))}
        if not wait_for(lambda: all(ros_node.get_publishers_info_by_topic(t) for t in topics)
                        or bool(stack.dead()), 60.0):
            missing = sorted(t for t in topics if not ros_node.get_publishers_info_by_topic(t))
            pytest.fail(f'{mode} graph: nothing publishes {missing} within 60 s')
        assert not stack.dead(), [p.describe_exit() for p in stack.dead()]
        yield Live(mode, spec, stack)
    finally:
        stack.stop()
        log.close()


def problems(spec: RvizSpec, config: dict, node: Node) -> list[str]:
    """Each display topic that is unpublished, of another type, or offered with a QoS the
    display's settings do not match, in the live graph."""
    out = []
    for sub in subscriptions(config):
        topic = spec.resolve(sub.topic)
        publishers = node.get_publishers_info_by_topic(topic)
        if not publishers:
            out.append(f'{sub.display}: nothing publishes {topic}')
            continue
        for publisher in publishers:
            where = f'{sub.display}: {topic} from {publisher.node_namespace}/' \
                    f'{publisher.node_name}'
            if publisher.topic_type != sub.type:
                out.append(f'{where} is {publisher.topic_type}, the display reads {sub.type}')
            reason = incompatible(sub, publisher)
            if reason:
                out.append(f'{where}: {reason}')
    return out


def test_every_display_topic_is_published_with_its_type_and_a_matching_qos(live, ros_node):
    found = problems(live.spec, load(live.spec.config), ros_node)
    assert not found, f'{live.spec.config} in {live.mode} mode:\n' + '\n'.join(found)


def test_a_config_that_rotted_is_caught(live, ros_node):
    """The check finds each kind of rot: a renamed topic, a display of another type on a
    topic, a QoS the publisher does not offer."""
    config = load(live.spec.config)
    by_class = {d['Class']: d for d in displays(config)}
    by_class['rviz_default_plugins/Image']['Topic']['Reliability Policy'] = 'Reliable'
    by_class['rviz_default_plugins/PointCloud2']['Topic']['Value'] = 'table_camera/cloud'
    robot = by_class['rviz_default_plugins/RobotModel']
    robot['Description Topic']['Durability Policy'] = 'Transient Local'
    config['Visualization Manager']['Displays'].append({
        'Class': 'rviz_default_plugins/Image', 'Name': 'Not an image',
        'Topic': {'Value': robot['Description Topic']['Value']}})
    found = '\n'.join(problems(live.spec, config, ros_node))
    assert 'asks for Reliable, the publisher offers best effort' in found
    assert f"nothing publishes {live.spec.resolve('table_camera/cloud')}" in found
    assert 'is std_msgs/msg/String, the display reads sensor_msgs/msg/Image' in found
    assert 'Transient Local' not in found  # robot_description is latched: that one is fine


class FrameWatch:
    """The TF frames on rviz's (remapped) /tf and /tf_static, with their parents."""

    def __init__(self, node: Node, spec: RvizSpec) -> None:
        self.node = node
        self.parents: dict[str, str] = {}
        self.lock = threading.Lock()
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subs = [node.create_subscription(TFMessage, spec.resolve('/tf'), self._on, 100),
                     node.create_subscription(TFMessage, spec.resolve('/tf_static'), self._on,
                                              latched)]

    def _on(self, msg: TFMessage) -> None:
        with self.lock:
            for t in msg.transforms:
                self.parents[t.child_frame_id] = t.header.frame_id

    def root(self, frame: str) -> str:
        with self.lock:
            for _ in range(64):
                if frame not in self.parents:
                    return frame
                frame = self.parents[frame]
        return ''

    def close(self) -> None:
        for sub in self.subs:
            self.node.destroy_subscription(sub)


def _latched_string(node: Node, topic: str) -> str:
    got: list[String] = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = node.create_subscription(String, topic, got.append, qos)
    try:
        assert wait_for(lambda: got, 10.0), f'no robot description on {topic}'
        return got[0].data
    finally:
        node.destroy_subscription(sub)


def test_robot_models_find_their_frames_on_tf_down_to_the_fixed_frame(live, ros_node):
    """Each RobotModel (the ghost's 'TF Prefix: twin' included) finds a frame for every link
    of its description, connected to the fixed frame; so do the camera images and clouds."""
    config = load(live.spec.config)
    fixed = config['Visualization Manager']['Global Options']['Fixed Frame']
    frames = FrameWatch(ros_node, live.spec)
    try:
        expected: dict[str, str] = {}  # frame -> display
        for display in displays(config):
            if display['Class'] != 'rviz_default_plugins/RobotModel':
                continue
            topic = live.spec.resolve(display['Description Topic']['Value'])
            model = parse_urdf(_latched_string(ros_node, topic), topic)
            prefix = str(display.get('TF Prefix') or '').strip('/')
            for link in model.links:
                expected[f'{prefix}/{link}' if prefix else link] = display['Name']
        assert expected, 'no RobotModel display'
        if live.mode == 'twin':
            assert any(f.startswith('twin/') for f in expected), 'no ghost RobotModel'
        assert wait_for(lambda: all(frames.root(f) == fixed for f in expected), 10.0), \
            {f: (d, frames.root(f)) for f, d in expected.items() if frames.root(f) != fixed}
        for sub in subscriptions(config):
            if sub.cls in ('rviz_default_plugins/Image', 'rviz_default_plugins/PointCloud2'):
                frame = _one_message_frame(ros_node, live.spec.resolve(sub.topic), sub.type)
                assert wait_for(lambda: frames.root(frame) == fixed, 10.0), \
                    f'{sub.display}: frame {frame!r} is not connected to {fixed!r} on TF'
    finally:
        frames.close()


def _one_message_frame(node: Node, topic: str, type_name: str) -> str:
    """The header frame of one message of a sensor topic (best effort, as rviz reads it)."""
    package, _, name = type_name.split('/')
    msg_class = getattr(__import__(f'{package}.msg', fromlist=[name]), name)
    got: list = []
    sub = node.create_subscription(msg_class, topic, got.append, qos_profile_sensor_data)
    try:
        assert wait_for(lambda: got, 20.0), f'no message on {topic}'
        assert got[0].header.frame_id, f'{topic}: empty frame_id'
        if type_name.endswith('PointCloud2'):
            fields = {f.name for f in got[0].fields}
            assert {'x', 'y', 'z', 'rgb'} <= fields, fields  # rviz's RGB8 transformer
            assert got[0].width * got[0].height > 0
        return got[0].header.frame_id
    finally:
        node.destroy_subscription(sub)


def test_each_launch_file_starts_rviz_as_the_spec_says():
    """twin.launch.py and sim.launch.py take rviz's config, namespace and remappings from
    stack.rviz_spec (what the live checks above use), and nothing else."""
    for launch_file, mode in (('twin.launch.py', 'twin'), ('sim.launch.py', 'sim')):
        tree = ast.parse((ROOT / 'launch' / launch_file).read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, 'id', '') == 'rviz_spec']
        assert len(calls) == 1 and ast.literal_eval(calls[0].args[0]) == mode, launch_file
        assert 'remappings' not in (ROOT / 'launch' / launch_file).read_text()
    twin = rviz_spec('twin')
    assert twin.config == 'rdt.rviz' and twin.resolve('/tf') == '/sim/tf'
    assert twin.resolve('prediction/markers') == '/sim/prediction/markers'
    assert rviz_arguments(twin)['namespace'] == 'sim'
    assert rviz_arguments(twin)['remappings'] == [('/tf', '/sim/tf'),
                                                  ('/tf_static', '/sim/tf_static')]
    root = rviz_spec('sim')
    assert root.resolve('robot_description') == '/robot_description' and not root.remappings
    assert rviz_spec('sim', SIM_NAMESPACE).resolve('/tf_static') == f'/{SIM_NAMESPACE}/tf_static'
    for name in RVIZ_CONFIGS.values():  # both files are installed with the package
        assert (ROOT / 'config' / name).is_file()
        assert "data('config', '*.rviz')" in (ROOT / 'setup.py').read_text()
