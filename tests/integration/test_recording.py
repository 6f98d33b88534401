"""`rdt record` against the running twin graph: a real subprocess recording real DDS traffic
while goals run on the stand-in in shadow mode; the bag is read back with rosbags alone.

Names come from TwinNames; every wait is on a condition with a deadline.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest
import yaml
from control_msgs.action import FollowJointTrajectory
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader
from trajectory_msgs.msg import JointTrajectory

from reverse_digital_twin.client import BackgroundNode, make_trajectory, wait_for
from reverse_digital_twin.core.bag import read_bag

pytestmark = pytest.mark.integration
Result = FollowJointTrajectory.Result
TYPES = {  # what each default topic carries
    'sim_joint_states': 'sensor_msgs/msg/JointState',
    'hardware_joint_states': 'sensor_msgs/msg/JointState',
    'hardware_controller_state': 'control_msgs/msg/JointTrajectoryControllerState',
    'hardware_joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
    'predicted_joint_states': 'sensor_msgs/msg/JointState',
    'verdicts': 'rdt_interfaces/msg/Verdict',
    'divergence': 'rdt_interfaces/msg/Divergence',
    'status': 'rdt_interfaces/msg/BridgeStatus',
    'goal_status': 'action_msgs/msg/GoalStatusArray',
}


class Recording:
    """A running `rdt record ...` whose output is collected line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'reverse_digital_twin.cli', 'record', *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip('\n'))

    @property
    def output(self) -> str:
        return '\n'.join(self.lines)

    def wait_line(self, text: str, timeout: float) -> bool:
        return wait_for(lambda: any(text in line for line in self.lines), timeout, poll=0.05)

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl-C, as in a terminal; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def test_a_missing_topic_is_reported_and_the_rest_recorded(twin, tmp_path):
    """The recorder node in this process: a topic that never appears is reported, not a
    crash; the others are recorded until the duration has passed."""
    from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415
    from rclpy.parameter import Parameter  # noqa: PLC0415

    from reverse_digital_twin.nodes.recorder_node import Recorder  # noqa: PLC0415
    from reverse_digital_twin.record_cli import summary  # noqa: PLC0415
    topics = [twin.names.hardware_joint_states, '/no/such_topic']
    node = Recorder(shutdown_when_done=False, parameter_overrides=[
        Parameter('output', value=str(tmp_path / 'short')), Parameter('topics', value=topics),
        Parameter('duration', value=3.0)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert wait_for(lambda: node.done, 30)
        missing = node.missing()
    finally:
        executor.shutdown()
        spinner.join(10)
        node.stop()
        node.destroy_node()
    assert missing == {'/no/such_topic': 'no such topic in the graph'}
    text = summary(node.bag, missing)
    assert '/no/such_topic' in text and 'not recorded: no such topic in the graph' in text
    counts = Counter(topic for topic, _, _ in read_bag(tmp_path / 'short'))
    assert list(counts) == [twin.names.hardware_joint_states]
    assert counts[twin.names.hardware_joint_states] > 10  # 100 Hz once subscribed (if not starved)


def test_recording_a_shadow_session_goal_by_goal(fresh, tmp_path):
    """Two client goals in shadow mode (the second made to diverge) and a streamed trajectory
    between them: every default topic is in the bag with its type, time-ordered, one file per
    goal, and each file opens on its own."""
    twin = fresh
    names = twin.names
    out = tmp_path / 'session'
    assert twin.arm(True).success and twin.switch('shadow').success
    latency = twin.commander.perturbation(timeout=30)['command_latency']
    recording = Recording(str(out), '--per-goal')
    # the streamed trajectory's publisher and its watcher on a node of their own: destroying
    # entities under the shared test node's spinning executor can upset it
    side = BackgroundNode('rdt_test_recording')
    stream = side.node.create_publisher(JointTrajectory, names.joint_trajectory, 10)
    forwarded: list = []
    side.node.create_subscription(JointTrajectory, names.hardware_joint_trajectory,
                                  forwarded.append, 10)
    try:
        assert recording.wait_line('recording all 9 topics', 40), recording.output
        first = twin.send([twin.pose(0.2)], [1.0])
        # (SUCCEEDED unless a starved stand-in stalls: the recording is what is tested here)
        assert first.accepted and first.status_name in ('SUCCEEDED', 'ABORTED'), first
        assert twin.arm(True).success and twin.switch('shadow').success  # (still, after a stall)
        assert wait_for(lambda: stream.get_subscription_count() > 0, 10)
        stream.publish(make_trajectory(twin.joints, [twin.pose(0.1)], [1.0]))
        assert wait_for(lambda: forwarded, 15), 'the bridge forwarded no streamed trajectory'
        twin.divergences.clear()
        # reality lags: the bridge stops the goal
        twin.commander.set_perturbation(timeout=30, command_latency=0.4)
        second = twin.send([twin.pose(0.5)], [1.0])
        assert second.status_name == 'ABORTED', second
        diverged = second.error_code == Result.PATH_TOLERANCE_VIOLATED  # (or a starved stand-in)
        assert not diverged or wait_for(lambda: twin.divergences, 5)
        # the recorder has taken both goal ends (a busy machine delays it)
        assert recording.wait_line('ended: session_1.mcap', 30), recording.output
        assert recording.stop() == 0, recording.output
    finally:
        recording.kill()
        side.close()
        twin.commander.set_perturbation(timeout=30, command_latency=latency)
        twin.switch('sim')
    assert 'rdt record: wrote' in recording.output and 'Traceback' not in recording.output

    expected = {getattr(names, key): kind for key, kind in TYPES.items()}
    assert set(expected) == set(names.recorded_topics)
    with Reader(out) as reader:
        assert {t: i.msgtype for t, i in reader.topics.items()} == expected
        counts = {t: i.msgcount for t, i in reader.topics.items()}
    assert all(n > 0 for t, n in counts.items() if t != names.divergence or diverged), counts
    assert counts[names.verdicts] == 3, counts  # two goals and one streamed trajectory
    assert counts[names.hardware_joint_trajectory] == 1, counts
    seconds = yaml.safe_load((out / 'metadata.yaml').read_text())[
        'rosbag2_bagfile_information']['duration']['nanoseconds'] * 1e-9
    # the stand-in publishes at 100 Hz; on a loaded machine it keeps pace with a slow controller
    assert counts[names.hardware_joint_states] > 25 * seconds, (counts, seconds)

    messages = list(read_bag(out))
    times = [t for _, t, _ in messages]
    assert times == sorted(times), 'log times not in order'
    by_topic: dict[str, list] = {}
    for topic, _, msg in messages:
        by_topic.setdefault(topic, []).append(msg)
    assert len(by_topic[names.hardware_controller_state][-1].output.positions) == 6
    assert [v.safe for v in by_topic[names.verdicts]] == [True, True, True]
    if diverged:
        assert by_topic[names.divergence][-1].joint in twin.joints

    # one file per goal, named in custom_data, plus what came after the last goal
    info = yaml.safe_load((out / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    files = [f['path'] for f in info['files']]
    goals = {key.removeprefix('rdt.goals.'): value
             for key, value in info['custom_data'].items() if key.startswith('rdt.goals.')}
    # (a third file holds what followed the last goal, if the recorder took any before Ctrl-C)
    assert files in (['session_0.mcap', 'session_1.mcap'],
                     ['session_0.mcap', 'session_1.mcap', 'session_2.mcap']), files
    assert sorted(goals) == files[:2] and len(set(goals.values())) == 2, goals
    for name, goal in goals.items():
        with AnyReader([out / name]) as reader:
            topics = {c.topic for c in reader.connections}
            assert topics == set(expected)
            statuses = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                        if c.topic == names.goal_status]
        ended = {_uuid(s.goal_info.goal_id.uuid) for s in statuses[-1].status_list
                 if s.status in (4, 5, 6)}
        assert goal in ended, (name, goal, ended)
    assert sum(f['message_count'] for f in info['files']) == info['message_count']


def _uuid(raw) -> str:
    import uuid  # noqa: PLC0415
    return str(uuid.UUID(bytes=bytes(bytearray(raw))))
