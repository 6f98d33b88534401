"""Hardware faults seen through the bridge: the stand-in dies mid-goal and comes back."""
from __future__ import annotations

import time

import numpy as np
import pytest
from control_msgs.action import FollowJointTrajectory

from reverse_digital_twin.client import make_trajectory, wait_for

from .conftest import Twin

Result = FollowJointTrajectory.Result
pytestmark = pytest.mark.integration


def test_standin_killed_mid_goal_aborts_and_nothing_is_replayed(ros_node, tmp_path):
    twin = Twin(ros_node, 'rdt_arm6', tmp_path)
    try:
        assert twin.arm(True).success and twin.switch('hardware').success
        target = twin.pose(0.5)
        pending = twin.client.send_async(make_trajectory(twin.joints, [target], [4.0]))
        start = twin.positions(twin.hw)
        assert wait_for(lambda: np.abs(twin.positions(twin.hw) - start).max() > 0.05, 10)
        killed_at = time.monotonic()
        standin = twin.stack.process('standin_robot')
        standin.signal(9)
        outcome = twin.client.wait_result(pending, timeout=10)
        reaction = time.monotonic() - killed_at
        assert outcome.status_name == 'ABORTED', outcome
        assert 'no joint states from the hardware' in outcome.error_string
        assert 'will not be resent' in outcome.error_string
        assert reaction < 2.0, f'the client waited {reaction:.2f} s for the abort'
        # Hardware lost -> disarmed: a new goal is refused until a person re-arms it.
        assert wait_for(lambda: twin.statuses and not twin.statuses[-1].hardware_armed, 5)
        refused = twin.client.send(make_trajectory(twin.joints, [twin.home], [2.0]), timeout=10)
        assert not refused.accepted
        # The stand-in comes back (at its start pose, a fresh process): nothing drives it.
        twin.stack.restart('standin_robot')
        count = twin.hw.received
        assert wait_for(lambda: twin.hw.received > count + 10, 30), 'the stand-in did not return'
        back = twin.positions(twin.hw)
        count = twin.hw.received
        assert wait_for(lambda: twin.hw.received > count + 100, 10)
        moved = np.abs(twin.positions(twin.hw) - back).max()
        assert moved < 5e-3, f'after the restart the arm moved by {moved} rad without a goal'
    finally:
        twin.close()


def test_hung_driver_is_caught_by_the_execution_timeout(ros_node, tmp_path):
    """A driver that stops answering while the bridge is told to trust joint states for a
    minute: MoveIt's rule (1.1 x duration + 0.5 s) still ends the client's goal."""
    twin = Twin(ros_node, 'rdt_arm6', tmp_path,
                overrides={'bridge': {'joint_state_timeout_min': 60.0}})
    controller = None
    try:
        assert twin.arm(True).success and twin.switch('hardware').success
        pending = twin.client.send_async(make_trajectory(twin.joints, [twin.pose(0.2)], [1.0]))
        assert pending.responded.wait(10) and pending.outcome.accepted
        # the driver's process (the stand-in and the controller it hosts)
        controller = twin.stack.process('standin_robot')
        controller.signal(19)  # SIGSTOP: alive but hung, no result will ever come
        sent = time.monotonic()
        outcome = twin.client.wait_result(pending, timeout=15)
        assert outcome.status_name == 'ABORTED', outcome
        assert 'no result from /hw/joint_trajectory_controller within' in outcome.error_string
        assert time.monotonic() - sent < 10
    finally:
        if controller is not None:
            controller.signal(18)  # SIGCONT so that it can be stopped
        twin.close()


def test_a_hung_twin_means_goals_are_rejected_not_run_blind(ros_node, tmp_path):
    """The twin's predictions (the planner process) hang: goals are refused, never run."""
    twin = Twin(ros_node, 'rdt_arm6', tmp_path, overrides={'bridge': {'prediction_timeout': 1.0}})
    sim = None
    try:
        sim = twin.stack.process('planner')
        sim.signal(19)  # SIGSTOP: the twin cannot answer
        asked = time.monotonic()
        outcome = twin.client.send(make_trajectory(twin.joints, [twin.pose(0.1)], [1.0]),
                                   timeout=15)
        assert not outcome.accepted
        assert time.monotonic() - asked < 5
        bridge = next(p for p in twin.stack.processes if p.name == '/joint_trajectory_controller')
        assert wait_for(lambda: any('no verdict within' in line
                                    for line in list(bridge.tail)), 5), list(bridge.tail)
    finally:
        if sim is not None:
            sim.signal(18)
        twin.close()
