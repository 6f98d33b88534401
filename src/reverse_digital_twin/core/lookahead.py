"""Bounded look-ahead: give the hardware a goal a little at a time.

A real driver runs outside our graph. Given a whole goal, it finishes it even when the bridge
that watches it (divergence, watchdogs, cancels) has died. So the bridge gives the hardware's
controller only the next ``horizon`` seconds of a goal, each part ending in a stop on the goal's
own path, and keeps replacing that part with a longer one (a new goal on the same start stamp,
which the controller takes as a preemption). While the bridge lives, the stop is never reached
and the hardware follows the goal exactly: every part reproduces the goal's splines over the
time it covers. When the bridge is gone, the hardware runs out of goal within the horizon and
stops on the path the twin checked.

The parts are plain :class:`~reverse_digital_twin.core.goal.TrajectoryGoal` waypoints in the
goal's own joint order, times relative to the goal's start, so the node only converts them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reverse_digital_twin.core.goal import GoalPoint
from reverse_digital_twin.core.trajectory import TrajectoryPoint, interpolate_waypoints

#: Waypoints of the stop at the end of a part: enough for the controller's splines to stay on
#: the goal's path while slowing down.
STOP_POINTS = 4
#: A part starts at the last goal waypoint this much of the horizon before the controller's
#: estimated time, so the controller is always past the part's first waypoint when it takes it.
BACK_FRACTION = 0.25
#: Share of the horizon between two parts.
EXTEND_EVERY = 0.25
#: A part is extended no later than this share of the horizon before the hardware would start
#: its stop; later, the motion is given up (the next part could arrive mid-stop).
EXTEND_DEADLINE = 0.1
#: What the giver of parts does next (see LookAhead.next_step).
EXTEND, RAN_OUT = 'extend', 'ran_out'


@dataclass(frozen=True)
class JointStart:
    """A measured state of the goal's joints, in its order (velocities zero when unknown)."""

    positions: Sequence[float]
    velocities: Sequence[float]


@dataclass(frozen=True)
class Part:
    """What the hardware is given at once.

    ``full_speed_until``: goal time up to which the part follows the goal; after it the part
    slows to a stop on the goal's path, at goal time ``stops_at``. A final part is the rest of
    the goal, unchanged.
    """

    points: list[GoalPoint]
    final: bool
    full_speed_until: float
    stops_at: float


def _array(values: Sequence[float]) -> np.ndarray | None:
    return np.array(values, dtype=float) if len(values) else None


def _goal_point(t: float, positions: np.ndarray, velocities: np.ndarray | None,
                accelerations: np.ndarray | None, effort: np.ndarray | None) -> GoalPoint:
    return GoalPoint(float(t), positions.tolist(),
                     () if velocities is None else velocities.tolist(),
                     () if accelerations is None else accelerations.tolist(),
                     () if effort is None else effort.tolist())


class LookAhead:
    """Cuts one goal into parts of at most ``horizon`` seconds ahead of its execution.

    Args:
        points: the goal's waypoints (validated: increasing times, consistent fields).
        horizon: seconds of the goal the hardware may be ahead of the bridge; 0 or inf: the
            whole goal at once (no bound).
        start: the state the controller will start the goal from (measured, in the goal's
            joint order), or None. A goal whose first waypoint lies later than time 0 begins
            with a blend from that state, which the parts must also cut: the state becomes a
            waypoint at time 0 (with the first waypoint's fields, so the blend keeps its
            spline degree).

    A part cut at goal time ``t`` slows down over ``horizon`` seconds along the path, as the
    time law s(tau) = t + tau - tau^2 / (2 horizon): it stops at goal time ``t + horizon / 2``
    with a deceleration along the path of the goal's speed at ``t`` over the horizon.
    """

    def __init__(self, points: Sequence[GoalPoint], horizon: float,
                 start: JointStart | None = None) -> None:
        if not points:
            raise ValueError('a goal needs at least one waypoint')
        self.points = list(points)
        first = self.points[0]
        if start is not None and first.time_from_start > 0.0:
            n = len(start.positions)
            self.points.insert(0, GoalPoint(
                0.0, list(start.positions),
                list(start.velocities) if first.velocities else (),
                [0.0] * n if first.accelerations else (),
                first.effort))
        self.horizon = float(horizon)
        self._waypoints = [TrajectoryPoint(p.time_from_start, np.array(p.positions, float),
                                           _array(p.velocities), _array(p.accelerations),
                                           _array(p.effort)) for p in self.points]
        self._times = np.array([p.time_from_start for p in self.points])
        self.has_velocities = self._waypoints[-1].velocities is not None
        self.has_accelerations = self._waypoints[-1].accelerations is not None
        self.has_effort = self._waypoints[-1].effort is not None

    @property
    def bounded(self) -> bool:
        """True when the goal does not fit in one part: it is streamed."""
        return self.horizon > 0.0 and math.isfinite(self.horizon) \
            and self._times[0] + 1.5 * self.horizon < self._times[-1]

    @property
    def duration(self) -> float:
        return float(self._times[-1])

    def part(self, elapsed: float) -> Part:
        """The part to give the hardware when it is ``elapsed`` s into the goal (may be < 0)."""
        if not self.bounded:
            return Part(self.points, True, self.duration, self.duration)
        first = int(np.searchsorted(self._times, elapsed - BACK_FRACTION * self.horizon,
                                    side='right')) - 1
        first = max(first, 0)
        # Never cut before the first waypoint: before it the controller blends from where it
        # picked the goal up, which only the controller knows.
        cut = max(elapsed + self.horizon, float(self._times[0]))
        stop = cut + 0.5 * self.horizon
        if stop >= self._times[-1]:
            return Part(self.points[first:], True, self.duration, self.duration)
        inside = [p for p in self.points[first:] if p.time_from_start < cut]
        return Part(inside + self._stop_from(cut), False, cut, stop)

    def next_step(self, part: Part, cut_at: float, elapsed: float) -> str | None:
        """What to do when the hardware is ``elapsed`` s into the goal and runs ``part``, cut
        at ``cut_at``: EXTEND (give it the next part), RAN_OUT (too late: it is about to slow
        down, so the motion is given up and the hardware stops on the path), or None (wait).
        The one pacing rule of goals and streamed trajectories."""
        if part.final:
            return None
        if elapsed >= part.full_speed_until - EXTEND_DEADLINE * self.horizon:
            return RAN_OUT
        if elapsed - cut_at >= EXTEND_EVERY * self.horizon:
            return EXTEND
        return None

    def _stop_from(self, cut: float) -> list[GoalPoint]:
        """Waypoints slowing down from goal time ``cut`` to a stop, on the goal's path."""
        d = self.horizon
        out = []
        for k in range(STOP_POINTS + 1):
            tau = d * k / STOP_POINTS
            s = cut + tau - tau * tau / (2.0 * d)  # goal time reached
            rate = 1.0 - tau / d  # ds/dtau
            state = interpolate_waypoints(self._waypoints, s).state
            last = k == STOP_POINTS
            velocities = accelerations = None
            if self.has_velocities:
                velocities = np.zeros_like(state.velocities) if last \
                    else state.velocities * rate
            if self.has_accelerations:  # the slowing starts just after the cut
                accelerations = state.accelerations if k == 0 else \
                    np.zeros_like(state.accelerations) if last else \
                    state.accelerations * rate * rate - state.velocities / d
            out.append(_goal_point(cut + tau, state.positions, velocities, accelerations,
                                   self._effort_at(s)))
        return out

    def _effort_at(self, s: float) -> np.ndarray | None:
        if not self.has_effort:
            return None
        efforts = np.array([p.effort for p in self._waypoints])
        return np.array([np.interp(s, self._times, efforts[:, j])
                         for j in range(efforts.shape[1])])
