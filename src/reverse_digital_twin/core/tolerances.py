"""Path and goal tolerances, with joint_trajectory_controller's defaulting rules.

Defaults come from the controller's ``constraints`` parameters; a goal may override them per
joint: a value > 0 replaces the default, 0 keeps it and -1 removes the tolerance. A goal with an
invalid entry (unknown joint, other negative value) silently falls back to the defaults, like
the real controller (the node logs why).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class StateTolerance:
    """Allowed |error| per component; 0 means 'not checked'. rad, rad/s, rad/s^2 (or m...)."""

    position: float = 0.0
    velocity: float = 0.0
    acceleration: float = 0.0


@dataclass(frozen=True)
class SegmentTolerances:
    """Tolerances of one trajectory, per joint in controller order."""

    state: tuple[StateTolerance, ...]
    goal: tuple[StateTolerance, ...]
    goal_time: float = 0.0  # s after the end; 0 = wait for the goal tolerance forever


@dataclass(frozen=True)
class JointToleranceRequest:
    """One entry of a goal's path_tolerance / goal_tolerance (control_msgs/JointTolerance)."""

    name: str
    position: float = 0.0
    velocity: float = 0.0
    acceleration: float = 0.0


@dataclass(frozen=True)
class Violation:
    """A tolerance that was exceeded: which joint, which component, by how much."""

    joint: str
    component: str  # 'position' | 'velocity' | 'acceleration'
    error: float
    tolerance: float

    def describe(self) -> str:
        unit = {'position': 'rad', 'velocity': 'rad/s', 'acceleration': 'rad/s^2'}[self.component]
        return (f'joint {self.joint} {self.component} error {self.error:+.4f} {unit} exceeds '
                f'tolerance {self.tolerance:.4f} {unit}')


def default_tolerances(joints: Sequence[str], trajectory: Mapping[str, float],
                       goal: Mapping[str, float], stopped_velocity_tolerance: float,
                       goal_time: float) -> SegmentTolerances:
    """Build the defaults from the constraints.* parameters (missing joints: 0 = unchecked)."""
    return SegmentTolerances(
        state=tuple(StateTolerance(position=trajectory.get(j, 0.0)) for j in joints),
        goal=tuple(StateTolerance(position=goal.get(j, 0.0), velocity=stopped_velocity_tolerance)
                   for j in joints),
        goal_time=goal_time)


def _override(current: float, requested: float) -> float | None:
    if requested > 0.0:
        return requested
    if requested == 0.0:
        return current
    if requested == -1.0:
        return 0.0
    return None  # invalid


def apply_goal_tolerances(defaults: SegmentTolerances, joints: Sequence[str],
                          path: Sequence[JointToleranceRequest],
                          goal: Sequence[JointToleranceRequest],
                          goal_time_tolerance: float) -> tuple[SegmentTolerances, str | None]:
    """Merge a goal's tolerances into the defaults.

    Returns:
        (tolerances to use, None) or (defaults, why the goal's tolerances were ignored).
    """
    merged = {'state': list(defaults.state), 'goal': list(defaults.goal)}
    for kind, requests in (('state', path), ('goal', goal)):
        for req in requests:
            if req.name not in joints:
                return defaults, f'{kind} tolerance names unknown joint {req.name!r}'
            i = list(joints).index(req.name)
            tol = merged[kind][i]
            values = {}
            for comp in ('position', 'velocity', 'acceleration'):
                value = _override(getattr(tol, comp), getattr(req, comp))
                if value is None or not math.isfinite(getattr(req, comp)):
                    return defaults, (f'{kind} tolerance of joint {req.name!r} has an invalid '
                                      f'{comp} {getattr(req, comp)} (use > 0, 0 or -1)')
                values[comp] = value
            merged[kind][i] = replace(tol, **values)
    goal_time = _override(defaults.goal_time, goal_time_tolerance)
    if goal_time is None or not math.isfinite(goal_time_tolerance):
        return defaults, f'invalid goal_time_tolerance {goal_time_tolerance}'
    return SegmentTolerances(tuple(merged['state']), tuple(merged['goal']), goal_time), None


def check_tolerances(joints: Sequence[str], tolerances: Sequence[StateTolerance],
                     position_error: np.ndarray, velocity_error: np.ndarray | None = None,
                     acceleration_error: np.ndarray | None = None) -> Violation | None:
    """First violated tolerance, or None. Velocity/acceleration only when errors are given."""
    for i, tol in enumerate(tolerances):
        for comp, errors in (('position', position_error), ('velocity', velocity_error),
                             ('acceleration', acceleration_error)):
            limit = getattr(tol, comp)
            if errors is None or limit <= 0.0:
                continue
            if abs(errors[i]) > limit:
                return Violation(joints[i], comp, float(errors[i]), limit)
    return None
