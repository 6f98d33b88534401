"""FollowJointTrajectory against the emulated controller, from a client in another process.

Each test runs for both robots (this project's rdt_arm6 at the root namespace, the Panda from
pybullet_data under /sim), over real DDS, with the real PyBullet world behind it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from control_msgs.action import FollowJointTrajectory
from control_msgs.msg import JointTolerance
from trajectory_msgs.msg import JointTrajectory

from reverse_digital_twin.client import make_trajectory, wait_for
from reverse_digital_twin.nodes.ros_common import to_duration, to_time

Result = FollowJointTrajectory.Result
pytestmark = pytest.mark.integration


def test_three_point_trajectory_reaches_the_last_point(at_home):
    robot = at_home
    waypoints = [robot.pose(0.3), robot.pose(-0.15), robot.pose(0.2)]
    outcome = robot.move(waypoints, [1.0, 2.0, 3.0])
    assert outcome.status == GoalStatus.STATUS_SUCCEEDED, outcome
    assert outcome.error_code == Result.SUCCESSFUL
    assert outcome.error_string == 'Goal successfully reached!'
    assert outcome.feedback, 'no feedback during a 3 s goal'
    # The controller judged the goal within its tolerance; with position commands it does not
    # wait for the joints to stop (as upstream), so a lagging wrist may swing through once more
    # (seen on the Panda on a loaded machine): the arm must come to rest at the last point.
    assert wait_for(lambda: np.abs(robot.positions() - waypoints[-1]).max() < 0.02, 5.0), \
        f'final error {np.abs(robot.positions() - waypoints[-1])} exceeds the goal ' \
        'tolerance 0.02 rad'


def test_joints_in_any_order_are_mapped_by_name(at_home):
    robot = at_home
    target = robot.pose(0.2)
    order = list(reversed(range(len(robot.joints))))
    traj = make_trajectory([robot.joints[i] for i in order], [[target[i] for i in order]], [1.5])
    outcome = robot.client.send(traj, timeout=15)
    assert outcome.status == GoalStatus.STATUS_SUCCEEDED, outcome
    assert robot.wait_messages(3)
    assert np.abs(robot.positions() - target).max() < 0.02


def _goal(robot, mutate) -> JointTrajectory:
    traj = make_trajectory(robot.joints, [robot.pose(0.2), robot.pose(0.1)], [1.0, 2.0])
    mutate(traj)
    return traj


def _set(point, field, index, value):
    values = list(getattr(point, field))
    values[index] = value
    setattr(point, field, values)


BAD_GOALS = {
    'unknown joint': lambda t: setattr(t, 'joint_names', t.joint_names[:-1] + ['no_such_joint']),
    'missing joint': lambda t: (setattr(t, 'joint_names', t.joint_names[:-1]),
                                [setattr(p, 'positions', list(p.positions)[:-1])
                                 for p in t.points]),
    'duplicated joint': lambda t: setattr(t, 'joint_names',
                                          [t.joint_names[0]] + t.joint_names[:-1]),
    'too few positions': lambda t: setattr(t.points[1], 'positions',
                                           list(t.points[1].positions)[:-1]),
    'too many velocities': lambda t: setattr(t.points[0], 'velocities',
                                             [0.0] * (len(t.joint_names) + 1)),
    'empty trajectory': lambda t: setattr(t, 'points', []),
    'empty joint names': lambda t: (setattr(t, 'joint_names', []),
                                    [setattr(p, 'positions', []) for p in t.points]),
    'time not increasing': lambda t: setattr(t.points[1], 'time_from_start',
                                             t.points[0].time_from_start),
    'time decreasing': lambda t: setattr(t.points[1], 'time_from_start', to_duration(0.5)),
    'nonzero final velocity': lambda t: setattr(t.points[1], 'velocities',
                                                [0.1] * len(t.joint_names)),
    'end time in the past': lambda t: setattr(t.header, 'stamp', to_time(0.5)),
    'effort without effort interface': lambda t: setattr(t.points[1], 'effort',
                                                         [1.0] * len(t.joint_names)),
    'NaN position': lambda t: _set(t.points[1], 'positions', 0, math.nan),
    'inf position': lambda t: _set(t.points[0], 'positions', 1, math.inf),
    'NaN velocity': lambda t: setattr(t.points[0], 'velocities',
                                      [math.nan] * len(t.joint_names)),
    'position beyond URDF limit': lambda t: _set(t.points[1], 'positions', 0, 1000.0),
    # found by fuzzing: the controller would jump to a point due before the goal starts
    'negative time': lambda t: (setattr(t, 'points', t.points[:1]),
                                setattr(t.points[0], 'time_from_start', to_duration(-2.0))),
}


@pytest.mark.parametrize('case', sorted(BAD_GOALS))
def test_bad_goal_is_rejected_and_nothing_moves(robot, case):
    if case == 'end time in the past':
        # needs sim time to have passed the stamp + duration; 0.5 s + 2 s
        assert wait_for(lambda: robot.client.latest().header.stamp.sec >= 3, 30)
    before = robot.positions()
    traj = _goal(robot, BAD_GOALS[case])
    outcome = robot.client.send(traj, timeout=10)
    assert not outcome.accepted, f'{case}: goal accepted ({outcome})'
    robot.assert_still(before)


def test_bad_topic_trajectory_is_ignored(robot):
    before = robot.positions()
    pub = robot.node.create_publisher(JointTrajectory, f'{robot.controller}/joint_trajectory', 10)
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 10)
        pub.publish(_goal(robot, BAD_GOALS['NaN position']))
        robot.assert_still(before)
    finally:
        robot.node.destroy_publisher(pub)


def test_topic_trajectory_moves_the_arm(at_home):
    robot = at_home
    target = robot.pose(0.15)
    pub = robot.node.create_publisher(JointTrajectory, f'{robot.controller}/joint_trajectory', 10)
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 10)
        pub.publish(make_trajectory(robot.joints, [target], [1.0]))
        assert wait_for(lambda: np.abs(robot.positions() - target).max() < 0.01, 10), \
            f'arm at {robot.positions()}, expected {target}'
    finally:
        robot.node.destroy_publisher(pub)


def test_new_goal_preempts_the_active_one(at_home):
    robot = at_home
    first = robot.client.send_async(make_trajectory(robot.joints, [robot.pose(0.4)], [4.0]))
    moving = robot.positions()
    assert wait_for(lambda: np.abs(robot.positions() - moving).max() > 0.02, 10)
    target = robot.pose(-0.1)
    second = robot.client.send_async(make_trajectory(robot.joints, [target], [2.0]))
    old = robot.client.wait_result(first, timeout=10)
    assert old.status == GoalStatus.STATUS_ABORTED, old
    assert old.error_code == Result.INVALID_GOAL
    assert 'preempted' in old.error_string
    new = robot.client.wait_result(second, timeout=15)
    assert new.status == GoalStatus.STATUS_SUCCEEDED, new
    assert robot.wait_messages(3)
    assert np.abs(robot.positions() - target).max() < 0.02


def test_cancel_ends_canceled_and_holds_position(at_home):
    robot = at_home
    target = robot.pose(0.5)
    pending = robot.client.send_async(make_trajectory(robot.joints, [target], [4.0]))
    start = robot.positions()
    assert wait_for(lambda: np.abs(robot.positions() - start).max() > 0.05, 10)
    assert pending.responded.wait(5) and pending.outcome.accepted
    pending.handle.cancel_goal_async()
    outcome = robot.client.wait_result(pending, timeout=10)
    assert outcome.status == GoalStatus.STATUS_CANCELED, outcome
    assert outcome.error_code == Result.SUCCESSFUL
    at_cancel = robot.positions()
    assert np.abs(at_cancel - target).max() > 0.1, 'the arm went on to the goal after the cancel'
    # The hold stops a moving arm as a real one stops: it settles by a few mrad (a light wrist
    # under a saturating motor, most), then stays put
    readings = [at_cancel]

    def settled() -> bool:
        robot.wait_messages(10)
        readings.append(robot.positions())
        return bool(np.abs(readings[-1] - readings[-2]).max() < 5e-4)
    assert wait_for(settled, 5.0), 'the arm did not come to rest after the cancel'
    held = robot.positions()
    assert np.abs(held - at_cancel).max() < 0.02, \
        f'the arm went on after the cancel: {np.abs(held - at_cancel).round(4)} rad'
    robot.assert_still(held, tolerance=1e-3, messages=50)


def test_path_tolerance_violation_aborts_and_holds(at_home):
    """A trajectory whose path tolerance cannot be met (too fast for the joint velocity
    limits, which the sim enforces) aborts with PATH_TOLERANCE_VIOLATED and holds."""
    robot = at_home
    target = robot.pose(1.0)
    outcome = robot.move([target], [0.1],
                         path_tolerance=[JointTolerance(name=j, position=0.05)
                                         for j in robot.joints])
    assert outcome.status == GoalStatus.STATUS_ABORTED, outcome
    assert outcome.error_code == Result.PATH_TOLERANCE_VIOLATED
    assert 'path tolerance' in outcome.error_string
    assert any(j in outcome.error_string for j in robot.joints), outcome.error_string
    stopped = robot.positions()
    assert np.abs(stopped - target).max() > 0.3, 'the arm should have stopped short of the goal'
    # It was moving at its velocity limit: let it brake, then it must stay put.
    assert robot.wait_messages(30)
    held = robot.positions()
    assert np.abs(held - stopped).max() < 0.05, 'the arm kept going after the abort'
    robot.assert_still(held, messages=50)


def test_goal_tolerance_violation_aborts(at_home):
    """A goal tolerance tighter than the arm can settle to within goal_time_tolerance."""
    robot = at_home
    target = robot.pose(0.6)
    outcome = robot.move([target], [0.3],
                         path_tolerance=[JointTolerance(name=j, position=-1.0)
                                         for j in robot.joints],
                         goal_tolerance=[JointTolerance(name=j, position=1e-4)
                                         for j in robot.joints],
                         goal_time_tolerance=0.01)
    assert outcome.status == GoalStatus.STATUS_ABORTED, outcome
    assert outcome.error_code == Result.GOAL_TOLERANCE_VIOLATED
    assert 'goal_time_tolerance' in outcome.error_string
