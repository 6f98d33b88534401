"""The rest of the driver's surface: robot_description, TF, /clock, joint_states,
controller_state, feedback and query_state, seen from another process over DDS."""
from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
from control_msgs.msg import JointTrajectoryControllerState
from control_msgs.srv import QueryTrajectoryState
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from reverse_digital_twin.client import answer_of, make_trajectory, wait_for
from reverse_digital_twin.core.paths import resolve_mesh_uris
from reverse_digital_twin.core.robot_model import parse_urdf
from reverse_digital_twin.nodes.ros_common import CLOCK_QOS, LATCHED_QOS, TF_QOS, seconds
from reverse_digital_twin.nodes.ros_common import TF_STATIC_LISTENER_QOS

pytestmark = pytest.mark.integration


class Collector:
    """Subscribe and keep every message (thread-safe)."""

    def __init__(self, node, msg_type, topic, qos):
        self.node = node
        self.messages = []
        self._lock = threading.Lock()
        self.sub = node.create_subscription(msg_type, topic, self._on, qos)

    def _on(self, msg):
        with self._lock:
            self.messages.append(msg)

    def wait(self, count=1, timeout=10.0):
        return wait_for(lambda: len(self.messages) >= count, timeout)

    def close(self):
        self.node.destroy_subscription(self.sub)


@pytest.fixture
def collect(robot):
    made = []

    def make(msg_type, name, qos=10):
        c = Collector(robot.node, msg_type, robot.topic(name) if not name.startswith('/')
                      else name, qos)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def test_robot_description_is_latched_urdf(robot, collect):
    desc = collect(String, 'robot_description', LATCHED_QOS)
    assert desc.wait(), 'no robot_description for a late subscriber (must be transient local)'
    published = desc.messages[0].data
    # the robot's URDF, its meshes named by absolute file:// URIs that exist (any viewer finds
    # them; pybullet_data's Panda names its meshes package://meshes/...)
    assert parse_urdf(published).joints == robot.model.joints
    assert published == resolve_mesh_uris(robot.model.urdf_xml, Path(robot.model.source).parent)
    meshes = re.findall(r'<mesh[^>]*filename="([^"]*)"', published)
    assert all(m.startswith('file:///') and Path(m[len('file://'):]).is_file() for m in meshes)
    assert bool(meshes) == (robot.name == 'panda'), meshes  # rdt_arm6 is built of primitives


def test_tf_covers_every_link(robot, collect):
    tf = collect(TFMessage, 'tf', TF_QOS)
    static = collect(TFMessage, 'tf_static', TF_STATIC_LISTENER_QOS)
    assert tf.wait(3) and static.wait()
    dynamic = {(t.header.frame_id, t.child_frame_id) for m in tf.messages for t in m.transforms}
    expected = {(j.parent, j.child) for j in robot.model.movable_joints}
    assert expected <= dynamic

    def latched_pairs():  # every latching publisher's message: the sim node's, the camera's
        return {(t.header.frame_id, t.child_frame_id) for m in list(static.messages)
                for t in m.transforms}
    assert wait_for(lambda: ('world', robot.model.root_link) in latched_pairs(), 10)
    latched = latched_pairs()
    assert {(j.parent, j.child) for j in robot.model.fixed_joints} <= latched
    # every link is reachable from the world frame
    children = {c for _, c in dynamic | latched}
    assert set(robot.model.links) <= children | {robot.model.root_link}


def test_clock_advances_with_simulated_time(robot, collect):
    clock = collect(Clock, '/clock', CLOCK_QOS)
    assert clock.wait(20)
    times = [seconds(m.clock) for m in clock.messages]
    assert times[-1] > times[0]
    assert all(b >= a for a, b in zip(times, times[1:]))


def test_joint_states_as_joint_state_broadcaster_publishes_them(robot, collect):
    js = collect(JointState, 'joint_states')
    assert js.wait(10)
    msg = js.messages[-1]
    assert set(robot.joints) <= set(msg.name)
    assert set(msg.name) == {j.name for j in robot.model.movable_joints}
    assert len(msg.position) == len(msg.velocity) == len(msg.effort) == len(msg.name)
    stamps = [seconds(m.header.stamp) for m in js.messages]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), 'stamps must increase'


def test_controller_state_and_feedback_during_motion(at_home, collect):
    robot = at_home
    state = collect(JointTrajectoryControllerState, 'joint_trajectory_controller/controller_state')
    waypoints = [robot.pose(0.2), robot.pose(0.0)]
    outcome = robot.move(waypoints, [1.0, 2.0])
    assert outcome.status_name == 'SUCCEEDED', outcome
    assert state.wait(50)
    msg = state.messages[-1]
    n = len(robot.joints)
    assert list(msg.joint_names) == robot.joints
    assert len(msg.reference.positions) == len(msg.feedback.positions) == n
    assert len(msg.error.positions) == len(msg.output.positions) == n
    np.testing.assert_allclose(np.array(msg.reference.positions) - msg.feedback.positions,
                               msg.error.positions, atol=1e-9)
    if hasattr(msg, 'speed_scaling_factor'):
        assert msg.speed_scaling_factor == 1.0
    feedback = [f.feedback for f in outcome.feedback]
    assert len(feedback) >= 20, 'feedback at 20 Hz over a 2 s goal'
    assert all(list(f.joint_names) == robot.joints for f in feedback)
    if hasattr(feedback[0], 'index'):
        indices = [f.index for f in feedback]
        assert indices[0] == 0 and indices[-1] == 1 and indices == sorted(indices)


def test_query_state_samples_the_active_trajectory(at_home):
    robot = at_home
    client = robot.node.create_client(
        QueryTrajectoryState, f'{robot.controller}/query_state')
    try:
        assert client.wait_for_service(timeout_sec=10)
        target = robot.pose(0.1)
        pending = robot.client.send_async(make_trajectory(robot.joints, [target], [1.0]))
        assert robot.client.wait_result(pending, 15).status_name == 'SUCCEEDED'
        request = QueryTrajectoryState.Request()
        request.time = robot.client.latest().header.stamp
        response = answer_of(client, request, 10.0)
        assert response is not None, 'no answer from query_state'
        assert response.success, response.message
        assert list(response.name) == robot.joints
        np.testing.assert_allclose(response.position, target, atol=1e-9)
    finally:
        robot.node.destroy_client(client)
