"""Unit tests for core/goal.py: the checks joint_trajectory_controller makes on a goal.

Every refused goal must come with a reason (a string); an acceptable goal gives None. The
stricter checks (NaN/inf, negative times, duplicated joints, URDF limits) are this project's
additions. No ROS.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal, ValidationRules
from reverse_digital_twin.core.goal import to_controller_order, validate_goal
from reverse_digital_twin.core.robot_model import JointLimits

JOINTS = tuple(f'j{i}' for i in range(3))
LIMITS = {'j0': JointLimits(-1.0, 1.0, 2.0, 10.0),
          'j1': JointLimits(-2.0, 0.5, 2.0, 10.0),
          'j2': JointLimits()}  # continuous: unbounded
NOW = 1000.0


def rules(**kw) -> ValidationRules:
    kw.setdefault('limits', LIMITS)
    return ValidationRules(joints=JOINTS, **kw)


def goal(points=None, names=JOINTS, stamp=0.0) -> TrajectoryGoal:
    if points is None:
        points = [GoalPoint(0.5, [0.1, -0.2, 0.3]), GoalPoint(1.0, [0.2, -0.3, 0.4])]
    return TrajectoryGoal(list(names), points, stamp)


def check(g: TrajectoryGoal, **kw) -> str | None:
    return validate_goal(g, rules(**kw), NOW)


def refused(g: TrajectoryGoal, **kw) -> str:
    reason = check(g, **kw)
    assert isinstance(reason, str) and reason, 'goal should have been refused with a reason'
    return reason


def test_valid_goal_is_accepted():
    assert check(goal()) is None


def test_valid_goal_with_velocities_and_accelerations():
    pts = [GoalPoint(0.5, [0.1, -0.2, 0.3], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0]),
           GoalPoint(1.0, [0.2, -0.3, 0.4], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])]
    assert check(goal(pts)) is None


def test_first_point_may_have_zero_time():
    assert check(goal([GoalPoint(0.0, [0, 0, 0]), GoalPoint(1.0, [0.1, 0.1, 0.1])])) is None


# --------------------------------------------------------------------------- joints
@pytest.mark.parametrize('names', [JOINTS[:2], JOINTS + ('j3',)])
def test_wrong_joint_count_refused_without_partial_goals(names):
    pts = [GoalPoint(1.0, [0.0] * len(names))]
    refused(goal(pts, names))


def test_partial_goal_allowed():
    pts = [GoalPoint(1.0, [0.1, 0.2])]
    assert check(goal(pts, ('j2', 'j0')), allow_partial_joints_goal=True) is None


def test_partial_goal_with_unknown_joint_refused():
    pts = [GoalPoint(1.0, [0.1, 0.2])]
    assert 'elbow' in refused(goal(pts, ('j0', 'elbow')), allow_partial_joints_goal=True)


@pytest.mark.parametrize('partial', [False, True])
def test_empty_joint_names_refused(partial):
    refused(goal([GoalPoint(1.0, [])], names=()), allow_partial_joints_goal=partial)


def test_empty_points_refused():
    refused(goal(points=[]))


def test_unknown_joint_refused_and_named():
    reason = refused(goal(names=('j0', 'wrist_9', 'j2')))
    assert 'wrist_9' in reason


def test_duplicated_joint_names_refused():
    reason = refused(goal(names=('j0', 'j0', 'j2')))
    assert 'j0' in reason and 'duplicat' in reason.lower()


def test_jumbled_joint_order_accepted():
    assert check(goal(names=('j2', 'j0', 'j1'))) is None


# --------------------------------------------------------------------------- end velocity
def test_nonzero_last_velocity_refused_when_not_allowed():
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], [0.0, 0.3, 0.0])]
    reason = refused(goal(pts))
    assert 'j1' in reason


def test_nonzero_last_velocity_accepted_when_allowed():
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], [0.0, 0.3, 0.0])]
    assert check(goal(pts), allow_nonzero_velocity_at_trajectory_end=True) is None


def test_nonzero_velocity_before_the_last_point_is_fine():
    pts = [GoalPoint(0.5, [0.0, 0.0, 0.0], [0.2, 0.2, 0.2]),
           GoalPoint(1.0, [0.1, 0.1, 0.1], [0.0, 0.0, 0.0])]
    assert check(goal(pts)) is None


def test_last_velocity_within_float_epsilon_counts_as_zero():
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], [1e-20, -1e-20, 0.0])]
    assert check(goal(pts)) is None


# --------------------------------------------------------------------------- timing
def test_stamp_whose_end_is_in_the_past_refused():
    refused(goal(stamp=NOW - 5.0))  # ends at NOW - 4


def test_stamp_in_the_past_with_end_in_the_future_accepted():
    assert check(goal(stamp=NOW - 0.5)) is None  # ends at NOW + 0.5


def test_future_stamp_accepted():
    assert check(goal(stamp=NOW + 10.0)) is None


def test_zero_stamp_means_now():
    assert check(goal(stamp=0.0)) is None


@pytest.mark.parametrize('times', [(1.0, 1.0), (1.0, 0.5), (0.0, 0.0)],
                         ids=['equal', 'decreasing', 'both-zero'])
def test_non_increasing_time_from_start_refused(times):
    pts = [GoalPoint(t, [0.1, 0.1, 0.1]) for t in times]
    refused(goal(pts))


def test_non_increasing_time_in_later_points_refused():
    pts = [GoalPoint(t, [0.1, 0.1, 0.1]) for t in (0.5, 1.0, 1.5, 1.2)]
    assert '3' in refused(goal(pts))


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize('which', [0, 1])
def test_non_finite_time_from_start_refused(bad, which):
    times = [0.5, 1.0]
    times[which] = bad
    refused(goal([GoalPoint(t, [0.1, 0.1, 0.1]) for t in times]))


@pytest.mark.parametrize('times', [(-2.0,), (-1.0, 0.5), (-3.0, -2.0)],
                         ids=['single', 'first', 'all'])
def test_negative_time_from_start_refused(times):
    """Found by fuzzing (tests/fuzzing.py): a lone point at -2 s was predicted safe and the
    controller would jump to it at once. Stricter than upstream."""
    reason = refused(goal([GoalPoint(t, [0.1, 0.1, 0.1]) for t in times]))
    assert 'negative time_from_start' in reason and 'Point 0' in reason


# --------------------------------------------------------------------------- sizes and effort
@pytest.mark.parametrize('field,values', [
    ('positions', [0.1, 0.1]),
    ('positions', [0.1, 0.1, 0.1, 0.1]),
    ('positions', []),
    ('velocities', [0.0, 0.0]),
    ('accelerations', [0.0]),
    ('accelerations', [0.0, 0.0, 0.0, 0.0]),
])
def test_size_mismatch_refused(field, values):
    fields = {'positions': [0.1, 0.1, 0.1], field: values}
    pts = [GoalPoint(0.5, **fields), GoalPoint(1.0, [0.2, 0.2, 0.2])]
    reason = refused(goal(pts))
    assert field in reason


def test_size_mismatch_at_later_point_refused():
    pts = [GoalPoint(0.5, [0.1, 0.1, 0.1]), GoalPoint(1.0, [0.2, 0.2])]
    assert '#1' in refused(goal(pts))


def test_empty_velocities_and_accelerations_are_fine():
    pts = [GoalPoint(0.5, [0.1, 0.1, 0.1], [], []), GoalPoint(1.0, [0.2, 0.2, 0.2])]
    assert check(goal(pts)) is None


def test_effort_without_effort_interface_refused():
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], effort=[1.0, 1.0, 1.0])]
    assert 'effort' in refused(goal(pts))


def test_effort_with_effort_interface_accepted():
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], effort=[1.0, 1.0, 1.0])]
    assert check(goal(pts), has_effort_command_interface=True) is None


def test_effort_of_wrong_size_refused():
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], effort=[1.0])]
    refused(goal(pts), has_effort_command_interface=True)


# --------------------------------------------------------------------------- stricter checks
@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf], ids=['nan', '+inf', '-inf'])
@pytest.mark.parametrize('field', ['positions', 'velocities', 'accelerations'])
def test_non_finite_values_refused(field, bad):
    values = [0.0, 0.0, 0.0]
    values[1] = bad
    fields = {'positions': [0.1, 0.1, 0.1], field: values}
    pts = [GoalPoint(0.5, **fields), GoalPoint(1.0, [0.2, 0.2, 0.2])]
    reason = refused(goal(pts))
    assert 'j1' in reason and 'non-finite' in reason


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_non_finite_values_in_last_point_velocity_refused(bad):
    # The end-velocity check must not let a NaN slip through as 'not moving'.
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], [0.0, 0.0, bad])]
    refused(goal(pts))
    refused(goal(pts), allow_nonzero_velocity_at_trajectory_end=True)


def test_non_finite_effort_refused():
    pts = [GoalPoint(1.0, [0.1, 0.1, 0.1], effort=[0.0, math.nan, 0.0])]
    refused(goal(pts), has_effort_command_interface=True)


@pytest.mark.parametrize('joint,value,bounds', [
    ('j0', 1.5, '[-1.0000, 1.0000]'),
    ('j0', -1.01, '[-1.0000, 1.0000]'),
    ('j1', 0.6, '[-2.0000, 0.5000]'),
])
def test_position_outside_urdf_limits_refused(joint, value, bounds):
    positions = {'j0': 0.0, 'j1': 0.0, 'j2': 0.0}
    positions[joint] = value
    pts = [GoalPoint(0.5, [0.0, 0.0, 0.0]), GoalPoint(1.0, [positions[j] for j in JOINTS])]
    reason = refused(goal(pts))
    assert joint in reason
    assert bounds in reason


def test_limits_checked_by_name_in_jumbled_order():
    names = ('j1', 'j2', 'j0')
    pts = [GoalPoint(1.0, [0.0, 0.0, 1.5])]  # j0 = 1.5 is outside [-1, 1]
    assert 'j0' in refused(goal(pts, names))
    pts = [GoalPoint(1.0, [0.0, 1.5, 0.0])]  # j2 is continuous: anything goes
    assert check(goal(pts, names)) is None


def test_position_at_the_limits_accepted():
    assert check(goal([GoalPoint(1.0, [1.0, -2.0, 100.0])])) is None


def test_position_limits_not_enforced_when_disabled():
    assert check(goal([GoalPoint(1.0, [5.0, 5.0, 5.0])]), enforce_position_limits=False) is None


def test_joint_without_limits_is_unbounded():
    assert check(goal([GoalPoint(1.0, [0.0, 0.0, 1e6])]), limits={}) is None


# --------------------------------------------------------------------------- reordering
def test_to_controller_order_maps_by_name():
    names = ('j2', 'j0', 'j1')
    pts = [GoalPoint(0.5, [2.0, 0.0, 1.0], [0.2, 0.0, 0.1], [0.02, 0.0, 0.01]),
           GoalPoint(1.0, [2.5, 0.5, 1.5])]
    g = goal(pts, names)
    assert check(g, limits={}) is None
    out = to_controller_order(g, JOINTS, np.array([9.0, 9.0, 9.0]))
    assert [p.time_from_start for p in out] == [0.5, 1.0]
    assert_allclose(out[0].positions, [0.0, 1.0, 2.0])
    assert_allclose(out[0].velocities, [0.0, 0.1, 0.2])
    assert_allclose(out[0].accelerations, [0.0, 0.01, 0.02])
    assert_allclose(out[1].positions, [0.5, 1.5, 2.5])
    assert out[1].velocities is None and out[1].accelerations is None and out[1].effort is None


def test_partial_goal_fills_missing_joints():
    g = goal([GoalPoint(0.5, [0.4], [0.3]), GoalPoint(1.0, [0.8], [0.0])], names=('j1',))
    assert check(g, allow_partial_joints_goal=True, limits={}) is None
    fill = np.array([-0.7, 0.0, 0.25])
    out = to_controller_order(g, JOINTS, fill)
    assert_allclose(out[0].positions, [-0.7, 0.4, 0.25])
    assert_allclose(out[1].positions, [-0.7, 0.8, 0.25])
    assert_allclose(out[0].velocities, [0.0, 0.3, 0.0])  # missing joints: zero velocity
    assert_allclose(fill, [-0.7, 0.0, 0.25])  # the fill array is not modified


def test_effort_is_reordered():
    g = goal([GoalPoint(1.0, [0.0, 0.0, 0.0], effort=[3.0, 1.0, 2.0])], names=('j2', 'j0', 'j1'))
    out = to_controller_order(g, JOINTS, np.zeros(3))
    assert_allclose(out[0].effort, [1.0, 2.0, 3.0])
