"""core/bag.py writes bags that an independent implementation reads as rosbag2 bags.

Messages are built as rclpy messages, serialized by rosbags from the installed .msg files and
checked against rclpy's own deserializer (so the bytes are what ROS puts on the wire); then
written with BagWriter and read back with rosbags (Reader on the directory, AnyReader on the
directory and on each .mcap alone, using only the definitions stored in the bag) and with
mcap_ros2's decoder (the parser Foxglove uses). No ROS graph: nothing is published.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from control_msgs.msg import JointTrajectoryControllerState
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Nodetype
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectoryPoint

from rdt_interfaces.msg import Collision, Verdict
from reverse_digital_twin.core.bag import INFINITE_NS, BagError, BagWriter, Qos
from reverse_digital_twin.core.bag import default_bag_name, message_definition, read_bag
from reverse_digital_twin.core.bag import type_description_hash
from reverse_digital_twin.core.recording import GoalEnds

JS, STATE, VERDICT = ('sensor_msgs/msg/JointState',
                      'control_msgs/msg/JointTrajectoryControllerState',
                      'rdt_interfaces/msg/Verdict')
SENSOR_QOS = Qos('unknown', 0, 'best_effort', 'volatile', INFINITE_NS, INFINITE_NS, 'automatic',
                 INFINITE_NS)
LATCHED_QOS = Qos('keep_last', 1, 'reliable', 'transient_local')


def share(package: str) -> Path:
    from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415
    return Path(get_package_share_directory(package))


@pytest.fixture(scope='module')
def store():
    """rosbags types parsed from the installed .msg files (not from any bag)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    found: dict = {}
    for package in ('control_msgs', 'rdt_interfaces'):
        for path in sorted((share(package) / 'msg').glob('*.msg')):
            found.update(get_types_from_msg(path.read_text(), f'{package}/msg/{path.stem}'))
    typestore.register(found)
    return typestore


def cdr(store, type_name: str, msg) -> bytes:
    """The CDR bytes of an rclpy message, serialized by rosbags; rclpy must read them back."""
    data = bytes(store.serialize_cdr(_convert(store, type_name, msg), type_name))
    assert deserialize_message(data, type(msg)) == msg, 'rosbags and rclpy disagree'
    return data


def _convert(store, type_name: str, msg):
    """An rclpy message as the rosbags message of the same type."""
    def value(node, detail, v):
        if node == Nodetype.BASE:
            return v
        if node == Nodetype.NAME:
            return _convert(store, detail, v)
        (inner, inner_detail), _ = detail
        if inner == Nodetype.BASE and inner_detail[0] != 'string':
            base = inner_detail[0]
            kind = {'byte': 'uint8', 'char': 'uint8'}.get(base, base)
            return np.array(list(v), dtype=kind)
        return [value(inner, inner_detail, e) for e in v]
    fields = store.fielddefs[type_name][1]
    return store.types[type_name](**{name: value(node, detail, getattr(msg, name))
                                     for name, (node, detail) in fields})


def joint_state(i: int) -> JointState:
    msg = JointState(name=['a', 'b'], position=[0.1 * i, -0.2], velocity=[1.0, 2.0],
                     effort=[])
    msg.header.stamp.sec, msg.header.frame_id = i, 'base_link'
    return msg


def controller_state(i: int) -> JointTrajectoryControllerState:
    return JointTrajectoryControllerState(
        joint_names=['a', 'b'], output=JointTrajectoryPoint(positions=[float(i), 0.5]),
        reference=JointTrajectoryPoint(positions=[1.0, 2.0], velocities=[0.0, 0.1]))


def verdict() -> Verdict:
    msg = Verdict(safe=False, summary='collision: wrist hits obstacle',
                  collisions=[Collision(link='wrist', other='obstacle', time=0.22, depth=0.01)],
                  max_tracking_error=0.004, duration=4.5)
    msg.final_state.name, msg.final_state.position = ['a'], [0.3]
    msg.predicted_trajectory.joint_names = ['a']
    msg.predicted_trajectory.points = [JointTrajectoryPoint(positions=[0.1 * k])
                                       for k in range(3)]
    return msg


@pytest.fixture
def recorded(tmp_path, store):
    """A bag of three topics over two files (split after the fifth joint state)."""
    t0 = time.time_ns()
    path = tmp_path / 'run'
    with BagWriter(path, custom_data={'purpose': 'test'}) as bag:
        bag.add_topic('/js', JS, [SENSOR_QOS])
        bag.add_topic('/hw/controller_state', STATE)
        bag.add_topic('/verdicts', VERDICT, [LATCHED_QOS])
        for i in range(10):
            bag.write('/js', cdr(store, JS, joint_state(i)), t0 + i * 10_000_000)
            bag.write('/hw/controller_state', cdr(store, STATE, controller_state(i)),
                      t0 + i * 10_000_000 + 1)
            if i == 4:
                bag.write('/verdicts', cdr(store, VERDICT, verdict()), t0 + 45_000_000)
                assert bag.split().count == 11
    return path, t0


def test_the_directory_reads_as_a_rosbag2_bag(recorded):
    path, t0 = recorded
    with Reader(path) as reader:
        assert {t: (i.msgtype, i.msgcount) for t, i in reader.topics.items()} == {
            '/js': (JS, 10), '/hw/controller_state': (STATE, 10), '/verdicts': (VERDICT, 1)}
        assert reader.message_count == 21 and reader.start_time == t0
        assert reader.duration == 90_000_001 + 1  # rosbags counts the last nanosecond
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
        assert qos['/js'][0].reliability.name == 'BEST_EFFORT'
        assert qos['/verdicts'][0].durability.name == 'TRANSIENT_LOCAL'
        assert qos['/hw/controller_state'] == []


def test_messages_come_back_in_time_order_with_their_values(recorded):
    path, t0 = recorded
    messages = list(read_bag(path))
    times = [t for _, t, _ in messages]
    assert len(messages) == 21 and times == sorted(times) and times[0] == t0
    states = [m for topic, _, m in messages if topic == '/js']
    assert [s.header.stamp.sec for s in states] == list(range(10))
    assert np.allclose(states[3].position, [0.3, -0.2]) and states[3].name == ['a', 'b']
    assert states[3].header.frame_id == 'base_link'
    outputs = [m.output.positions[0] for topic, _, m in messages
               if topic == '/hw/controller_state']
    assert outputs == [float(i) for i in range(10)]
    (_, _, got), = [m for m in messages if m[0] == '/verdicts']
    assert not got.safe and got.summary == 'collision: wrist hits obstacle'
    assert got.collisions[0].link == 'wrist' and got.collisions[0].depth == 0.01
    assert len(got.predicted_trajectory.points) == 3 and list(got.final_state.name) == ['a']


def test_each_mcap_file_opens_on_its_own(recorded):
    path, _ = recorded
    files = sorted(path.glob('*.mcap'))
    assert [f.name for f in files] == ['run_0.mcap', 'run_1.mcap']
    counts = []
    for file in files:
        with AnyReader([file]) as reader:
            assert {c.topic: c.msgtype for c in reader.connections} == {
                '/js': JS, '/hw/controller_state': STATE, '/verdicts': VERDICT}
            topics = [c.topic for c, _, _ in reader.messages()]
            counts.append({t: topics.count(t) for t in set(topics)})
            for connection, _, raw in reader.messages():
                reader.deserialize(raw, connection.msgtype)
    assert counts == [{'/js': 5, '/hw/controller_state': 5, '/verdicts': 1},
                      {'/js': 5, '/hw/controller_state': 5}]
    assert [t for t, _, _ in read_bag(files[1], ['/js'])] == ['/js'] * 5


def test_metadata_yaml_is_rosbag2s(recorded):
    path, t0 = recorded
    info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert list(info) == ['version', 'storage_identifier', 'duration', 'starting_time',
                          'message_count', 'topics_with_message_count', 'compression_format',
                          'compression_mode', 'relative_file_paths', 'files', 'custom_data',
                          'ros_distro']
    assert info['version'] == 9 and info['storage_identifier'] == 'mcap'
    assert info['starting_time'] == {'nanoseconds_since_epoch': t0}
    assert info['duration'] == {'nanoseconds': 90_000_001} and info['message_count'] == 21
    assert info['relative_file_paths'] == ['run_0.mcap', 'run_1.mcap']
    assert [(f['path'], f['message_count']) for f in info['files']] == [
        ('run_0.mcap', 11), ('run_1.mcap', 10)]
    assert info['files'][1]['starting_time']['nanoseconds_since_epoch'] == t0 + 50_000_000
    assert info['custom_data'] == {'purpose': 'test'}
    assert (info['compression_format'], info['compression_mode']) == ('', '')
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    js = topics['/js']['topic_metadata']
    assert js == {'name': '/js', 'type': JS, 'serialization_format': 'cdr',
                  'offered_qos_profiles': [{
                      'history': 'unknown', 'depth': 0, 'reliability': 'best_effort',
                      'durability': 'volatile',
                      'deadline': {'sec': 9223372036, 'nsec': 854775807},
                      'lifespan': {'sec': 9223372036, 'nsec': 854775807},
                      'liveliness': 'automatic',
                      'liveliness_lease_duration': {'sec': 9223372036, 'nsec': 854775807},
                      'avoid_ros_namespace_conventions': False}],
                  'type_description_hash': type_description_hash(JS)}
    assert js['type_description_hash'].startswith('RIHS01_')
    assert topics['/verdicts']['message_count'] == 1


def test_each_file_is_a_ros2_mcap_that_foxglove_decodes(recorded, store):
    from mcap.reader import make_reader  # noqa: PLC0415
    from mcap_ros2.decoder import DecoderFactory  # noqa: PLC0415
    path, _ = recorded
    for file in sorted(path.glob('*.mcap')):
        with file.open('rb') as stream:
            reader = make_reader(stream, decoder_factories=[DecoderFactory()])
            assert reader.get_header().profile == 'ros2'
            summary = reader.get_summary()
            assert {s.name: s.encoding for s in summary.schemas.values()} == {
                JS: 'ros2msg', STATE: 'ros2msg', VERDICT: 'ros2msg'}
            assert all(s.data.decode() == message_definition(s.name)[1]
                       for s in summary.schemas.values())
            for channel in summary.channels.values():
                assert channel.message_encoding == 'cdr'
                assert set(channel.metadata) == {'offered_qos_profiles', 'topic_type_hash'}
            (record,) = [m for m in reader.iter_metadata() if m.name == 'rosbag2']
            assert yaml.safe_load(record.metadata['serialized_metadata'])['version'] == 9
            decoded = [(c.topic, m) for _, c, _, m in reader.iter_decoded_messages()]
        assert decoded and all(m.joint_names == ['a', 'b'] for t, m in decoded
                               if t == '/hw/controller_state')
        assert all(m.collisions[0].other == 'obstacle' for t, m in decoded if t == '/verdicts')


def test_message_definitions_concatenate_dependencies_as_rosbag2_does():
    installed = (share('sensor_msgs') / 'msg/JointState.msg').read_text()
    encoding, text = message_definition(JS)
    assert encoding == 'ros2msg' and text.startswith(installed)
    separator = '\n' + '=' * 80 + '\nMSG: '
    sections = text.split(separator)
    names = [s.split('\n', 1)[0] for s in sections[1:]]
    assert names == ['std_msgs/Header', 'builtin_interfaces/Time']
    _, verdict_text = message_definition(VERDICT)
    names = [s.split('\n', 1)[0] for s in verdict_text.split(separator)[1:]]
    assert len(names) == len(set(names))  # each dependency once
    assert {'rdt_interfaces/Collision', 'geometry_msgs/Point', 'std_msgs/Header',
            'trajectory_msgs/JointTrajectoryPoint', 'builtin_interfaces/Duration'} <= set(names)


def test_a_split_without_new_messages_adds_no_file_and_an_empty_bag_is_a_bag(tmp_path, store):
    with BagWriter(tmp_path / 'empty') as bag:
        bag.add_topic('/js', JS)
        assert bag.split() is None
    with Reader(tmp_path / 'empty') as reader:
        assert reader.message_count == 0 and list(reader.topics) == ['/js']
    with BagWriter(tmp_path / 'tail') as bag:
        bag.add_topic('/js', JS)
        bag.write('/js', cdr(store, JS, joint_state(1)), 5)
        bag.split()
    written = sorted(p.name for p in (tmp_path / 'tail').iterdir())
    assert written == ['metadata.yaml', 'tail_0.mcap']


def test_messages_received_before_a_split_but_taken_late_stay_in_its_file(tmp_path, store):
    data = cdr(store, JS, joint_state(1))
    with BagWriter(tmp_path / 'late', split_grace=0.5) as bag:
        bag.add_topic('/js', JS)
        bag.add_topic('/hw/controller_state', STATE)
        bag.write('/js', data, 100)
        assert bag.split(at=200).path.name == 'late_0.mcap'
        bag.write('/js', data, 210)  # after the split: the next file
        bag.write('/hw/controller_state', cdr(store, STATE, controller_state(1)), 150)  # late
        bag.write('/js', data, 200 + 500_000_000)  # the grace is over: file 0 is finished
    files = yaml.safe_load((tmp_path / 'late' / 'metadata.yaml').read_text())[
        'rosbag2_bagfile_information']['files']
    assert [(f['path'], f['message_count']) for f in files] == [('late_0.mcap', 2),
                                                                ('late_1.mcap', 2)]
    times = [t for _, t, _ in read_bag(tmp_path / 'late')]
    assert times == [100, 150, 210, 200 + 500_000_000]


def test_a_message_taken_out_of_order_is_logged_at_the_time_before_it(tmp_path, store):
    data = cdr(store, JS, joint_state(1))
    with BagWriter(tmp_path / 'order') as bag:
        bag.add_topic('/js', JS)
        for log_time in (100, 300, 250, 400):
            bag.write('/js', data, log_time, publish_time=log_time - 5)
    with (tmp_path / 'order' / 'order_0.mcap').open('rb') as stream:  # front to back
        from mcap.reader import make_reader  # noqa: PLC0415
        messages = [m for _, _, m in make_reader(stream).iter_messages(log_time_order=False)]
    assert [m.log_time for m in messages] == [100, 300, 300, 400]
    assert [m.publish_time for m in messages] == [95, 295, 245, 395]  # as sent


def test_writing_refuses_what_it_cannot_do_with_the_reason(tmp_path):
    (tmp_path / 'taken').mkdir()
    with pytest.raises(BagError, match='exists already'):
        BagWriter(tmp_path / 'taken')
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(BagError, match='cannot create'):
            BagWriter(locked / 'bag')
    bag = BagWriter(tmp_path / 'ok')
    with pytest.raises(BagError, match="no interface package 'no_such_msgs'"):
        bag.add_topic('/x', 'no_such_msgs/msg/Thing')
    with pytest.raises(BagError, match='not understood'):
        bag.add_topic('/x', 'JointState')
    with pytest.raises(BagError, match='was not added'):
        bag.write('/y', b'\0\1\0\0', 1)
    bag.add_topic('/js', JS)
    with pytest.raises(BagError, match='is recorded as sensor_msgs/msg/JointState'):
        bag.add_topic('/js', VERDICT)
    bag.close()
    with pytest.raises(BagError, match='closed'):
        bag.write('/js', b'', 1)


def test_reading_says_what_is_wrong_with_the_path(tmp_path, recorded):
    with pytest.raises(BagError, match='no such bag'):
        read_bag(tmp_path / 'missing')
    (tmp_path / 'plain').mkdir()
    with pytest.raises(BagError, match='no metadata.yaml'):
        read_bag(tmp_path / 'plain')
    (tmp_path / 'notes.txt').write_text('hi')
    with pytest.raises(BagError, match='not a bag'):
        read_bag(tmp_path / 'notes.txt')
    (tmp_path / 'broken.mcap').write_bytes(b'not mcap at all')
    with pytest.raises(BagError, match='cannot read it'):
        list(read_bag(tmp_path / 'broken.mcap'))
    with pytest.raises(BagError, match='no topic /nope in the bag'):
        list(read_bag(recorded[0], ['/nope']))
    assert list(read_bag(recorded[0], [])) == []


def test_default_bag_name_is_rosbag2s():
    from datetime import datetime  # noqa: PLC0415
    assert default_bag_name(datetime(2025, 3, 4, 5, 6, 7)) == 'rosbag2_2025_03_04-05_06_07'


def test_goal_ends_counts_each_goal_once_and_ignores_goals_that_ended_before():
    ends = GoalEnds(since=1000)
    assert ends.update([('old', 4, 10), ('g1', 2, 2000)]) == []  # latched: ended before
    assert ends.update([('old', 4, 10), ('g1', 2, 2000)]) == []
    assert ends.update([('old', 4, 10), ('g1', 6, 2000), ('g2', 1, 3000)]) == ['g1']
    assert ends.update([('g1', 6, 2000), ('g2', 4, 3000)]) == ['g2']
    assert ends.update([('g1', 6, 2000), ('g2', 4, 3000), ('g3', 5, 4000)]) == ['g3']
    assert ends.update([('early', 5, 500)]) == []  # accepted before the recording, never seen
