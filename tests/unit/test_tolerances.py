"""Unit tests for core/tolerances.py: defaults, goal overrides and tolerance checks.

Rules of joint_trajectory_controller: a goal value > 0 replaces the default, 0 keeps it, -1
removes it; an invalid entry (unknown joint, other negative value) makes the whole goal fall
back to the defaults. A tolerance of 0 is not checked. No ROS.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from reverse_digital_twin.core.tolerances import JointToleranceRequest, SegmentTolerances
from reverse_digital_twin.core.tolerances import StateTolerance, Violation, apply_goal_tolerances
from reverse_digital_twin.core.tolerances import check_tolerances, default_tolerances

JOINTS = tuple(f'j{i}' for i in range(3))


@pytest.fixture
def defaults() -> SegmentTolerances:
    return default_tolerances(JOINTS, trajectory={'j0': 0.1, 'j1': 0.2},
                              goal={'j0': 0.01, 'j2': 0.03}, stopped_velocity_tolerance=0.05,
                              goal_time=2.0)


def apply(defaults, path=(), goal=(), goal_time_tolerance=0.0):
    return apply_goal_tolerances(defaults, JOINTS, list(path), list(goal), goal_time_tolerance)


# --------------------------------------------------------------------------- defaults
def test_defaults_from_parameters(defaults):
    assert defaults.state == (StateTolerance(position=0.1), StateTolerance(position=0.2),
                              StateTolerance())
    assert defaults.goal == (StateTolerance(position=0.01, velocity=0.05),
                             StateTolerance(position=0.0, velocity=0.05),
                             StateTolerance(position=0.03, velocity=0.05))
    assert defaults.goal_time == 2.0


def test_defaults_ignore_parameters_for_other_joints():
    tol = default_tolerances(JOINTS, {'other': 1.0}, {'other': 1.0}, 0.0, 0.0)
    assert all(t == StateTolerance() for t in tol.state + tol.goal)
    assert tol.goal_time == 0.0


# --------------------------------------------------------------------------- overrides
def test_no_overrides_keeps_defaults(defaults):
    merged, reason = apply(defaults)
    assert reason is None
    assert merged == defaults


def test_positive_value_replaces(defaults):
    merged, reason = apply(defaults, path=[JointToleranceRequest('j1', position=0.5)],
                           goal=[JointToleranceRequest('j2', position=0.07, velocity=0.2,
                                                       acceleration=1.5)])
    assert reason is None
    assert merged.state[1] == StateTolerance(position=0.5)
    assert merged.goal[2] == StateTolerance(position=0.07, velocity=0.2, acceleration=1.5)
    # Other joints untouched.
    assert merged.state[0] == defaults.state[0] and merged.goal[0] == defaults.goal[0]


def test_zero_keeps_default(defaults):
    merged, reason = apply(defaults, path=[JointToleranceRequest('j0')],
                           goal=[JointToleranceRequest('j0', position=0.0, velocity=0.0)])
    assert reason is None
    assert merged.state[0].position == 0.1
    assert merged.goal[0] == StateTolerance(position=0.01, velocity=0.05)


def test_minus_one_removes(defaults):
    merged, reason = apply(defaults, path=[JointToleranceRequest('j1', position=-1)],
                           goal=[JointToleranceRequest('j0', position=-1, velocity=-1)])
    assert reason is None
    assert merged.state[1].position == 0.0
    assert merged.goal[0] == StateTolerance(position=0.0, velocity=0.0)


def test_mixed_components_in_one_request(defaults):
    merged, reason = apply(defaults, goal=[JointToleranceRequest('j2', position=-1, velocity=0,
                                                                 acceleration=3.0)])
    assert reason is None
    assert merged.goal[2] == StateTolerance(position=0.0, velocity=0.05, acceleration=3.0)


def test_defaults_object_is_not_modified(defaults):
    before = defaults
    apply(defaults, path=[JointToleranceRequest('j0', position=9.0)])
    assert defaults == before and defaults.state[0].position == 0.1


@pytest.mark.parametrize('kind', ['path', 'goal'])
def test_unknown_joint_falls_back_to_defaults(defaults, kind):
    requests = {kind: [JointToleranceRequest('j0', position=0.3),
                       JointToleranceRequest('elbow', position=0.3)]}
    merged, reason = apply(defaults, **requests)
    assert merged == defaults  # the valid entry before it is dropped too
    assert reason is not None and 'elbow' in reason


@pytest.mark.parametrize('value', [-2.0, -0.5, math.nan, math.inf])
@pytest.mark.parametrize('component', ['position', 'velocity', 'acceleration'])
@pytest.mark.parametrize('kind', ['path', 'goal'])
def test_invalid_value_falls_back_to_defaults(defaults, kind, component, value):
    requests = {kind: [JointToleranceRequest('j1', **{component: value})]}
    merged, reason = apply(defaults, **requests)
    assert merged == defaults
    assert reason is not None and 'j1' in reason and component in reason


@pytest.mark.parametrize('requested,expected', [(0.0, 2.0), (0.5, 0.5), (7.0, 7.0), (-1.0, 0.0)])
def test_goal_time_tolerance_override(defaults, requested, expected):
    merged, reason = apply(defaults, goal_time_tolerance=requested)
    assert reason is None
    assert merged.goal_time == expected


@pytest.mark.parametrize('requested', [-2.0, -0.1, math.nan, math.inf])
def test_invalid_goal_time_tolerance_falls_back(defaults, requested):
    merged, reason = apply(defaults, path=[JointToleranceRequest('j0', position=0.4)],
                           goal_time_tolerance=requested)
    assert merged == defaults
    assert reason is not None and 'goal_time_tolerance' in reason


# --------------------------------------------------------------------------- checks
TOL = (StateTolerance(position=0.1, velocity=0.5),
       StateTolerance(position=0.0, velocity=0.2, acceleration=1.0),
       StateTolerance(position=0.05))


def test_within_tolerances_is_none():
    assert check_tolerances(JOINTS, TOL, np.array([0.09, 5.0, -0.05]),
                            np.array([0.4, -0.2, 99.0]), np.array([0.0, 1.0, 99.0])) is None


def test_position_violation_reported():
    v = check_tolerances(JOINTS, TOL, np.array([0.0, 0.0, -0.06]))
    assert v == Violation('j2', 'position', -0.06, 0.05)
    text = v.describe()
    assert 'j2' in text and 'position' in text and '0.0500' in text


def test_first_violation_in_joint_order():
    v = check_tolerances(JOINTS, TOL, np.array([0.2, 0.0, 0.2]))
    assert v is not None and v.joint == 'j0'


def test_position_checked_before_velocity_of_same_joint():
    v = check_tolerances(JOINTS, TOL, np.array([0.2, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert v is not None and (v.joint, v.component) == ('j0', 'position')


def test_zero_tolerance_is_not_checked():
    # j1 has position tolerance 0: any position error passes.
    assert check_tolerances(JOINTS, TOL, np.array([0.0, 1e6, 0.0])) is None


def test_velocity_skipped_without_velocity_errors():
    assert check_tolerances(JOINTS, TOL, np.zeros(3), None) is None
    v = check_tolerances(JOINTS, TOL, np.zeros(3), np.array([0.0, -0.3, 0.0]))
    assert v == Violation('j1', 'velocity', -0.3, 0.2)
    assert 'rad/s' in v.describe()


def test_acceleration_only_with_acceleration_errors():
    assert check_tolerances(JOINTS, TOL, np.zeros(3), np.zeros(3), None) is None
    v = check_tolerances(JOINTS, TOL, np.zeros(3), np.zeros(3), np.array([0.0, 2.0, 0.0]))
    assert v == Violation('j1', 'acceleration', 2.0, 1.0)


def test_error_equal_to_tolerance_passes():
    assert check_tolerances(JOINTS, TOL, np.array([0.1, 0.0, -0.05])) is None


def test_violation_error_is_a_float():
    v = check_tolerances(JOINTS, TOL, np.array([0.5, 0.0, 0.0]))
    assert type(v.error) is float and v.error == pytest.approx(0.5)
