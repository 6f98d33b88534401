"""What a client of a real robot does, through the bridge: stamped goals, long goals, a refused
goal while another runs, and streamed trajectories on the topic.

Real processes over real DDS; the client talks to /joint_trajectory_controller only.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from control_msgs.action import FollowJointTrajectory
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from reverse_digital_twin.client import make_trajectory, wait_for
from reverse_digital_twin.nodes.ros_common import to_duration, to_time

Result = FollowJointTrajectory.Result
pytestmark = pytest.mark.integration


def _wall_now(twin) -> float:
    return twin.node.get_clock().now().nanoseconds * 1e-9


class ArrivalWatch:
    """Records when the twin's joint states first come within reach of a target."""

    def __init__(self, twin, target: np.ndarray, tolerance: float = 0.01) -> None:
        self.target = target
        self.tolerance = tolerance
        self.reached_at: float | None = None
        self._lock = threading.Lock()
        self._node = twin.node
        self._joints = twin.joints
        self._sub = twin.node.create_subscription(JointState, twin.names.sim_joint_states,
                                                  self._on_state, 10)

    def _on_state(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        q = np.array([msg.position[index[j]] for j in self._joints])
        with self._lock:
            if self.reached_at is None and np.abs(q - self.target).max() < self.tolerance:
                self.reached_at = time.monotonic()

    def close(self) -> None:
        self._node.destroy_subscription(self._sub)


def test_a_goal_stamped_in_the_clients_wall_clock_starts_after_its_delay(fresh):
    """A client of a real robot stamps 'start 0.8 s from now' in wall time; the twin runs on
    sim time. The bridge translates: as upstream, the arm blends from where it is into the
    first point, which it reaches at stamp + time_from_start; the next goal still works."""
    twin = fresh
    target = twin.pose(0.2)
    watch = ArrivalWatch(twin, target)
    try:
        trajectory = make_trajectory(twin.joints, [target], [1.0])
        sent = time.monotonic()
        trajectory.header.stamp = to_time(_wall_now(twin) + 0.8)
        outcome = twin.client.send(trajectory, timeout=20)
        assert outcome.status_name == 'SUCCEEDED', outcome
        assert watch.reached_at is not None
        assert watch.reached_at - sent > 1.45, \
            f'reached the point {watch.reached_at - sent:.2f} s after sending, not at 1.8 s'
    finally:
        watch.close()
    outcome = twin.send([twin.home], [1.0])  # nothing wedged
    assert outcome.status_name == 'SUCCEEDED', outcome


def test_absurd_start_times_are_refused_with_the_reason(fresh):
    twin = fresh
    future = make_trajectory(twin.joints, [twin.pose(0.2)], [1.0])
    future.header.stamp = to_time(_wall_now(twin) + 3600.0)
    outcome = twin.client.send(future, timeout=20)
    assert outcome.status_name == 'ABORTED' and outcome.error_code == Result.INVALID_GOAL
    assert 'in the future' in outcome.error_string and 'max_start_delay' in outcome.error_string
    past = make_trajectory(twin.joints, [twin.pose(0.2)], [1.0])
    past.header.stamp = to_time(_wall_now(twin) - 3600.0)
    outcome = twin.client.send(past, timeout=20)
    assert outcome.status_name == 'REJECTED'  # as upstream: the goal ended before it came
    start = twin.sim.received
    assert wait_for(lambda: twin.sim.received > start + 20, 5)
    assert np.abs(twin.positions(twin.sim) - twin.home).max() < 2e-3, 'something moved'
    outcome = twin.send([twin.pose(0.1)], [1.0])
    assert outcome.status_name == 'SUCCEEDED', outcome


@pytest.mark.slow
def test_a_long_goal_is_predicted_and_accepted(fresh):
    """Painting or inspection paths run for minutes: a 200 s, 2000-point goal is accepted
    (predicted, not timed out); cancelling it holds the arm."""
    twin = fresh
    times = np.linspace(0.1, 200.0, 2000)
    phase = 2 * np.pi * times / 40.0
    first_joint = np.eye(len(twin.joints))[0]
    waypoints = [twin.home + 0.15 * np.sin(p) * first_joint for p in phase]
    pending = twin.client.send_async(make_trajectory(twin.joints, waypoints, times))
    assert pending.responded.wait(120), 'no answer to a 200 s goal'
    assert pending.outcome.accepted, 'the 200 s goal was rejected'
    assert wait_for(lambda: np.abs(twin.positions(twin.sim) - twin.home).max() > 0.01, 10)
    pending.handle.cancel_goal_async()
    outcome = twin.client.wait_result(pending, 20)
    assert outcome.status_name == 'CANCELED', outcome


def test_a_refused_goal_leaves_the_running_goal_alone(fresh):
    """Deliberate: a goal the twin refuses changes nothing, so the goal already running
    continues to its end (see the README's differences table)."""
    twin = fresh
    target = twin.pose(0.3)
    first = twin.client.send_async(make_trajectory(twin.joints, [target], [3.0]))
    assert first.responded.wait(10) and first.outcome.accepted
    start = twin.positions(twin.sim)
    assert wait_for(lambda: np.abs(twin.positions(twin.sim) - start).max() > 0.02, 10)
    unsafe = twin.home.copy()
    unsafe[0] = 1.57  # sweeps the arm through the pillar of the default scene
    refused = twin.client.send(make_trajectory(twin.joints, [unsafe], [2.0]), timeout=20)
    assert refused.status_name == 'ABORTED' and refused.error_code == Result.INVALID_GOAL
    assert 'The twin refused the goal' in refused.error_string
    assert 'left alone and continues' in refused.error_string
    outcome = twin.client.wait_result(first, 20)
    assert outcome.status_name == 'SUCCEEDED', outcome
    assert np.abs(twin.positions(twin.sim) - target).max() < 0.02


def test_streamed_trajectories_are_followed_and_unsafe_ones_dropped(fresh):
    """A teleoperation-style stream on the topic: one point 0.2 s ahead per message at 20 Hz.
    The arm follows; a message into the obstacle is dropped and nothing moves for it."""
    twin = fresh
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = twin.node.create_publisher(JointTrajectory, twin.names.joint_trajectory,
                                     qos)
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 10)
        amplitude, period = 0.2, 2.0
        t0 = time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < 3.0:
            t = time.monotonic() - t0
            q = twin.home.copy()
            # away from the pillar (a positive sweep of the first joint reaches it)
            q[0] -= amplitude * abs(np.sin(np.pi * (t + 0.2) / period))
            pub.publish(JointTrajectory(joint_names=twin.joints, points=[JointTrajectoryPoint(
                positions=q.tolist(), time_from_start=to_duration(0.2))]))
            peak = max(peak, abs(twin.positions(twin.sim)[0] - twin.home[0]))
            wait_for(lambda: time.monotonic() - t0 > t + 0.05, 0.1, poll=0.005)
        assert peak > 0.1, f'the arm did not follow the stream (peak {peak:.3f} rad)'
        # back home, then an unsafe message: dropped, nothing moves
        outcome = twin.send([twin.home], [1.0])
        assert outcome.status_name == 'SUCCEEDED', outcome
        # succeeded within the 0.02 rad goal tolerance: let the arm settle before watching it
        assert wait_for(lambda: np.abs(twin.positions(twin.sim) - twin.home).max() < 1e-3, 10), \
            f'the arm did not settle at home: {twin.positions(twin.sim) - twin.home}'
        unsafe = twin.home.copy()
        unsafe[0] = 1.57
        before = twin.positions(twin.sim)
        start = twin.sim.received
        pub.publish(JointTrajectory(joint_names=twin.joints, points=[JointTrajectoryPoint(
            positions=unsafe.tolist(), time_from_start=to_duration(2.0))]))
        assert wait_for(lambda: twin.sim.received > start + 100, 10)
        assert np.abs(twin.positions(twin.sim) - before).max() < 2e-3, 'the unsafe stream moved'
    finally:
        twin.node.destroy_publisher(pub)
