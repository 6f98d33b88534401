"""Trajectory goals as plain data, and the checks joint_trajectory_controller makes on them.

The node converts a trajectory_msgs/JointTrajectory into a :class:`TrajectoryGoal` and asks
:func:`validate_goal` for a reason to refuse it. The checks are the real controller's, in its
order, followed by stricter ones the real controller lacks (NaN/inf, negative times, duplicated
joints, URDF position limits) because a bad value must never reach the physics.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reverse_digital_twin.core.robot_model import JointLimits
from reverse_digital_twin.core.trajectory import TrajectoryPoint

FLOAT_EPSILON = float(np.finfo(np.float64).eps)
_FIELDS = (('positions', 'position'), ('velocities', 'velocity'),
           ('accelerations', 'acceleration'), ('effort', 'effort'))


@dataclass(frozen=True)
class GoalPoint:
    """A waypoint as received, in the goal's own joint order; empty lists mean 'not given'."""

    time_from_start: float
    positions: Sequence[float] = ()
    velocities: Sequence[float] = ()
    accelerations: Sequence[float] = ()
    effort: Sequence[float] = ()


@dataclass(frozen=True)
class TrajectoryGoal:
    """A trajectory as received: header stamp (s, 0 = start now), joint names, waypoints."""

    joint_names: Sequence[str]
    points: Sequence[GoalPoint]
    stamp: float = 0.0


@dataclass(frozen=True)
class ValidationRules:
    """What the controller accepts; mirrors joint_trajectory_controller parameters."""

    joints: tuple[str, ...]
    limits: dict[str, JointLimits] = field(default_factory=dict)
    allow_partial_joints_goal: bool = False
    allow_nonzero_velocity_at_trajectory_end: bool = False
    has_effort_command_interface: bool = False
    #: Stricter than the real controller: refuse positions outside the URDF limits.
    enforce_position_limits: bool = True


def validate_goal(goal: TrajectoryGoal, rules: ValidationRules, now: float) -> str | None:
    """Return why the controller refuses this goal, or None if it is acceptable.

    Args:
        goal: the received trajectory.
        rules: the controller's configuration.
        now: the controller clock (s), for the 'end time in the past' check.
    """
    names = list(goal.joint_names)
    n_ctrl = len(rules.joints)
    if not rules.allow_partial_joints_goal and len(names) != n_ctrl:
        return (f'Joints on incoming trajectory don\'t match the controller joints: the goal has '
                f'{len(names)} joints {names}, the controller {n_ctrl} {list(rules.joints)} '
                '(allow_partial_joints_goal is false)')
    if not names:
        return 'Empty joint names on incoming trajectory.'
    if not goal.points:
        return 'Empty trajectory received: it has no points.'
    unknown = [n for n in names if n not in rules.joints]
    if unknown:
        return (f'Incoming joint {unknown[0]} doesn\'t match the controller\'s joints '
                f'{list(rules.joints)}')
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        return f'Joint names are duplicated on incoming trajectory: {duplicated}'
    last = goal.points[-1]
    if not rules.allow_nonzero_velocity_at_trajectory_end and len(last.velocities):
        moving = [(names[i], v) for i, v in enumerate(last.velocities)
                  if i < len(names) and math.isfinite(v) and abs(v) > FLOAT_EPSILON]
        if moving:
            return (f'Velocity of last trajectory point of joint {moving[0][0]} is not zero: '
                    f'{moving[0][1]:.6g} (allow_nonzero_velocity_at_trajectory_end is false)')
    for i, p in enumerate(goal.points):
        if not math.isfinite(p.time_from_start):
            return f'Point {i} has a non-finite time_from_start ({p.time_from_start}).'
        # Stricter than joint_trajectory_controller, which would jump to such a point at once
        if p.time_from_start < 0.0:
            return (f'Point {i} has a negative time_from_start ({p.time_from_start:.6g} s): it '
                    'would be due before the trajectory starts. Nothing was moved.')
    if goal.stamp != 0.0 and goal.stamp + last.time_from_start < now:
        return (f'Received trajectory with non-zero start time ({goal.stamp:.3f} s) that ends in '
                f'the past ({goal.stamp + last.time_from_start:.3f} s < now {now:.3f} s)')
    for i in range(1, len(goal.points)):
        t_prev, t = goal.points[i - 1].time_from_start, goal.points[i].time_from_start
        if t <= t_prev:
            return (f'Time between points {i - 1} and {i} is not strictly increasing, it is '
                    f'{t_prev:.6g} and {t:.6g} respectively')
    n = len(names)
    for i, p in enumerate(goal.points):
        if len(p.positions) != n:
            return (f'Mismatch between joint_names size ({n}) and positions ({len(p.positions)}) '
                    f'at point #{i}.')
        if len(p.velocities) and len(p.velocities) != n:
            return (f'Mismatch between joint_names size ({n}) and velocities '
                    f'({len(p.velocities)}) at point #{i}.')
        if len(p.accelerations) and len(p.accelerations) != n:
            return (f'Mismatch between joint_names size ({n}) and accelerations '
                    f'({len(p.accelerations)}) at point #{i}.')
        if len(p.effort) and not rules.has_effort_command_interface:
            return 'Trajectory point contains effort, but no effort command interface exists.'
        if len(p.effort) and len(p.effort) != n:
            return (f'Mismatch between joint_names size ({n}) and effort ({len(p.effort)}) '
                    f'at point #{i}.')
    # Stricter than joint_trajectory_controller from here on.
    for i, p in enumerate(goal.points):
        for field_name, label in _FIELDS:
            for j, v in enumerate(getattr(p, field_name)):
                if not math.isfinite(v):
                    return (f'Point {i} has a non-finite {label} for joint {names[j]}: {v}. '
                            'Nothing was moved.')
    if rules.enforce_position_limits:
        for i, p in enumerate(goal.points):
            for j, v in enumerate(p.positions):
                lim = rules.limits.get(names[j])
                if lim is not None and lim.position_bounded() and not lim.lower <= v <= lim.upper:
                    return (f'Point {i} puts joint {names[j]} at {v:.4f}, outside its URDF limits '
                            f'[{lim.lower:.4f}, {lim.upper:.4f}]. Nothing was moved.')
    return None


def to_controller_order(goal: TrajectoryGoal, joints: Sequence[str],
                        fill_positions: np.ndarray) -> list[TrajectoryPoint]:
    """Reorder a validated goal into the controller's joint order.

    Joints missing from a partial goal keep ``fill_positions`` (the current command) with zero
    velocity and acceleration, as joint_trajectory_controller does.
    """
    index = [list(goal.joint_names).index(j) if j in goal.joint_names else -1 for j in joints]
    n = len(joints)

    def arrange(values: Sequence[float], fill: np.ndarray | None) -> np.ndarray | None:
        if len(values) == 0:
            return None
        out = np.zeros(n) if fill is None else np.array(fill, dtype=float)
        for k, src in enumerate(index):
            if src >= 0:
                out[k] = values[src]
        return out

    points = []
    for p in goal.points:
        points.append(TrajectoryPoint(
            time_from_start=p.time_from_start,
            positions=arrange(p.positions, fill_positions),
            velocities=arrange(p.velocities, None),
            accelerations=arrange(p.accelerations, None),
            effort=arrange(p.effort, None)))
    return points
