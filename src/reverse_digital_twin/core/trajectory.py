"""Joint trajectories and their interpolation, as joint_trajectory_controller does it.

A trajectory is a list of waypoints in the controller's joint order, with times relative to a
start time. It is sampled with splines whose degree depends on what both ends of a segment
carry: positions only -> linear, + velocities -> cubic, + accelerations -> quintic. Before the
first waypoint the trajectory blends from the state in which it was picked up. Pure numpy:
the emulated controller and the predictor share this module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class TrajectoryPoint:
    """One waypoint, arrays of shape (n_joints,) in controller joint order, SI units."""

    time_from_start: float
    positions: Array
    velocities: Array | None = None
    accelerations: Array | None = None
    effort: Array | None = None


@dataclass(frozen=True)
class JointSample:
    """A joint-space state: positions, velocities and accelerations, each (n_joints,)."""

    positions: Array
    velocities: Array
    accelerations: Array

    @staticmethod
    def at_rest(positions: Array) -> 'JointSample':
        n = len(positions)
        return JointSample(np.array(positions, dtype=float), np.zeros(n), np.zeros(n))


@dataclass(frozen=True)
class TrajectorySample:
    """Result of sampling a trajectory at one time."""

    state: JointSample
    index: int  # index of the waypoint being approached (the last one once past the end)
    past_end: bool  # sample time is at or after the last waypoint


def _segment(t: float, duration: float, p0: Array, v0: Array | None, a0: Array | None,
             p1: Array, v1: Array | None, a1: Array | None) -> JointSample:
    """Interpolate one segment at time t in [0, duration]."""
    n = len(p0)
    if duration <= 0.0:
        return JointSample(p1.copy(), np.zeros(n) if v1 is None else v1.copy(),
                           np.zeros(n) if a1 is None else a1.copy())
    t = min(max(t, 0.0), duration)
    T = duration
    if v0 is not None and v1 is not None and a0 is not None and a1 is not None:
        c0, c1, c2 = p0, v0, a0 / 2.0
        dp = p1 - p0
        c3 = (20 * dp - (8 * v1 + 12 * v0) * T - (3 * a0 - a1) * T ** 2) / (2 * T ** 3)
        c4 = (-30 * dp + (14 * v1 + 16 * v0) * T + (3 * a0 - 2 * a1) * T ** 2) / (2 * T ** 4)
        c5 = (12 * dp - 6 * (v1 + v0) * T + (a1 - a0) * T ** 2) / (2 * T ** 5)
        pos = c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * c5))))
        vel = c1 + t * (2 * c2 + t * (3 * c3 + t * (4 * c4 + t * 5 * c5)))
        acc = 2 * c2 + t * (6 * c3 + t * (12 * c4 + t * 20 * c5))
        return JointSample(pos, vel, acc)
    if v0 is not None and v1 is not None:
        dp = p1 - p0
        c2 = (3 * dp - (2 * v0 + v1) * T) / T ** 2
        c3 = (-2 * dp + (v0 + v1) * T) / T ** 3
        pos = p0 + t * (v0 + t * (c2 + t * c3))
        vel = v0 + t * (2 * c2 + t * 3 * c3)
        acc = 2 * c2 + t * 6 * c3
        return JointSample(pos, vel, acc)
    slope = (p1 - p0) / T
    return JointSample(p0 + slope * t, slope, np.zeros(n))


class Trajectory:
    """A trajectory being executed: waypoints plus the state and time it starts from.

    Args:
        points: waypoints with strictly increasing time_from_start (validated upstream).
        start_time: absolute time (s) of time_from_start = 0, or None to start at the time of
            the first sample (a header stamp of zero).
        interpolate: False reproduces interpolation_method 'none' (hold the next waypoint).
    """

    def __init__(self, points: list[TrajectoryPoint], start_time: float | None = None,
                 interpolate: bool = True) -> None:
        if not points:
            raise ValueError('a trajectory needs at least one point')
        self.points = points
        self.start_time = start_time
        self.interpolate = interpolate
        self._state_before: JointSample | None = None
        self._time_before = 0.0

    @property
    def started(self) -> bool:
        return self._state_before is not None

    def start_from(self, time: float, state: JointSample) -> None:
        """Fix the state the trajectory blends from (the state when it was picked up)."""
        self._state_before = state
        self._time_before = time
        if self.start_time is None:
            self.start_time = time

    @property
    def end_time(self) -> float:
        assert self.start_time is not None, 'trajectory not started'
        return self.start_time + self.points[-1].time_from_start

    def sample(self, time: float) -> TrajectorySample | None:
        """Sample at an absolute time; None before the time it was picked up."""
        if self._state_before is None or self.start_time is None:
            raise RuntimeError('call start_from() before sampling')
        if time < self._time_before:
            return None
        points = self.points
        first = points[0]
        t_first = self.start_time + first.time_from_start
        if time < t_first:
            before = self._state_before
            if not self.interpolate:  # upstream holds the pick-up state until point 0
                return TrajectorySample(before, 0, False)
            # The blend into the first waypoint uses the first waypoint's degree; a missing
            # velocity/acceleration on the current state counts as zero.
            v0 = before.velocities if first.velocities is not None else None
            a0 = before.accelerations if first.accelerations is not None else None
            # Upstream blends from the pick-up time even when the stamp lies in the future.
            t0 = self._time_before
            return TrajectorySample(
                _segment(time - t0, t_first - t0, before.positions, v0, a0, first.positions,
                         first.velocities, first.accelerations), 0, False)
        rel = time - self.start_time
        if not self.interpolate:
            for i in range(len(points) - 1):
                if rel < points[i + 1].time_from_start:
                    return TrajectorySample(_at_point(points[i + 1]), i + 1, False)
            return TrajectorySample(_at_point(points[-1]), len(points) - 1, True)
        return interpolate_waypoints(points, rel)


def _at_point(p: TrajectoryPoint) -> JointSample:
    n = len(p.positions)
    return JointSample(p.positions.copy(),
                       np.zeros(n) if p.velocities is None else p.velocities.copy(),
                       np.zeros(n) if p.accelerations is None else p.accelerations.copy())


def interpolate_waypoints(points: list[TrajectoryPoint], rel: float) -> TrajectorySample:
    """The waypoints' splines at ``rel`` s after their start, for ``rel`` at or after the first
    waypoint's time (before it, a trajectory blends from where it was picked up)."""
    for i in range(len(points) - 1):
        a, b = points[i], points[i + 1]
        if rel < b.time_from_start:
            return TrajectorySample(
                _segment(rel - a.time_from_start, b.time_from_start - a.time_from_start,
                         a.positions, a.velocities, a.accelerations,
                         b.positions, b.velocities, b.accelerations), i + 1, False)
    return TrajectorySample(_at_point(points[-1]), len(points) - 1, True)
