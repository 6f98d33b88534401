"""When a command takes effect on hardware with a command latency, physics step by physics step.

A controller computes a command at control-cycle time ``t`` (its stamp); the hardware feels it
from ``t + latency`` on. Physics advances in fixed steps of ``dt`` (step ``s`` spans
``[s*dt, (s+1)*dt)``), and ``t + latency`` generally falls inside one. The rule, shared by the
twin's predictions (:class:`~reverse_digital_twin.core.prediction.Predictor`) and the replay of
recorded commands that calibration fits:

* a step that a command's moment of effect falls into is driven by the **time-weighted mean**
  of the commands acting during it: the one in force at the step's start for the share of the
  step before the moment, the new one for the rest (several within one step: each for its
  share). So a rollout changes continuously with the latency, and a least-squares fit can find
  a latency between two steps;
* from the next step on the new command acts alone;
* a latency longer than the command period queues commands: each still takes effect at its
  own ``t + latency``, in order;
* a moment within :data:`BOUNDARY_TOLERANCE` of a step boundary counts as on it (the command
  drives that whole step), so a latency of k control periods gives exactly the k-cycle delay of
  integer bookkeeping, float rounding notwithstanding.

Times are seconds relative to the start of step 0. Plain Python and numpy; no PyBullet, no rclpy.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: s: a moment of effect this close to a step boundary is on the boundary.
BOUNDARY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Switch:
    """Where a command takes over: inside physics step ``step``, for the last ``weight`` of it.

    ``weight`` is in (0, 1]; 1.0 means from the start of ``step`` (the command drives the whole
    step). ``position`` is the same moment in steps: ``step + 1 - weight``.
    """

    step: int
    weight: float

    @property
    def position(self) -> float:
        return self.step + 1.0 - self.weight


def switch_point(command_time: float, latency: float, dt: float) -> Switch:
    """The physics step in which a command stamped ``command_time`` takes effect, and its share.

    Args:
        command_time: s, when the controller computed the command (relative to step 0).
        latency: s >= 0, from that stamp to the command's effect on the hardware.
        dt: s > 0, the physics step.

    Raises:
        ValueError: a non-finite time, a negative latency or a non-positive step.
    """
    _check(latency, dt)
    if not math.isfinite(command_time):
        raise ValueError(f'command time must be finite, got {command_time}')
    return _switch((command_time + latency) / dt, BOUNDARY_TOLERANCE / dt)


def _check(latency: float, dt: float) -> None:
    if not (math.isfinite(latency) and latency >= 0.0):
        raise ValueError(f'command latency must be a finite number >= 0 s, got {latency}')
    if not (math.isfinite(dt) and dt > 0.0):
        raise ValueError(f'physics step must be a finite number > 0 s, got {dt}')


def _switch(x: float, tolerance: float) -> Switch:
    """``x``: the moment of effect in steps."""
    nearest = round(x)
    if abs(x - nearest) <= tolerance:
        return Switch(int(nearest), 1.0)
    step = math.floor(x)
    return Switch(int(step), float(step + 1 - x))


class CommandSchedule:
    """Which commands drive each physics step, for commands stamped at ``command_times``.

    Args:
        command_times: (K,) s, non-decreasing: when each command was computed, relative to the
            start of step 0 (commands before it, e.g. the one in force at the start, are
            negative).
        latency: s >= 0 from a command's stamp to its effect.
        dt: s > 0, the physics step.

    Command index -1 stands for whatever acted before command 0 took effect (e.g. the hold
    at the start); commands at the same moment: the later one wins.
    """

    def __init__(self, command_times: Sequence[float] | np.ndarray, latency: float,
                 dt: float) -> None:
        _check(latency, dt)
        times = np.asarray(command_times, dtype=float).reshape(-1)
        if not np.all(np.isfinite(times)):
            raise ValueError('command times must be finite')
        if len(times) > 1 and np.any(np.diff(times) < 0.0):
            raise ValueError('command times must be non-decreasing')
        self.latency = float(latency)
        self.dt = float(dt)
        tolerance = BOUNDARY_TOLERANCE / dt
        #: moment of effect of each command, in steps, snapped to step boundaries
        self.positions: list[float] = [_switch(x, tolerance).position
                                       for x in ((times + latency) / dt).tolist()]

    def __len__(self) -> int:
        return len(self.positions)

    def switch(self, index: int) -> Switch:
        """Where command ``index`` takes effect."""
        position = self.positions[index]
        step = math.floor(position)
        return Switch(step, 1.0 - (position - step))

    def in_force(self, step: int) -> int:
        """The command acting at the start of ``step`` (-1: none has taken effect yet)."""
        return bisect.bisect_right(self.positions, float(step)) - 1

    def shares(self, step: int) -> tuple[tuple[int, float], ...]:
        """The commands acting during ``step`` and the share of the step each has.

        ((index, share), ...) in time order; the shares are > 0 and sum to 1. One entry: that
        command drives the whole step; two: the time-weighted mean of the old and the new.
        """
        first = self.in_force(step)
        end = bisect.bisect_left(self.positions, float(step + 1))  # commands switching inside
        out: list[tuple[int, float]] = []
        start, current = float(step), first
        for k in range(first + 1, end):
            position = self.positions[k]
            if position > start:
                out.append((current, position - start))
                start = position
            current = k
        out.append((current, step + 1.0 - start))
        return tuple(out)


def step_shares(command_times: Sequence[float] | np.ndarray, latency: float, dt: float,
                step: int) -> tuple[tuple[int, float], ...]:
    """:meth:`CommandSchedule.shares` of one step (build a CommandSchedule for many steps)."""
    return CommandSchedule(command_times, latency, dt).shares(step)


def blend(old: np.ndarray, new: np.ndarray, weight: float) -> np.ndarray:
    """The time-weighted mean ``weight * new + (1 - weight) * old``; exactly ``new`` (and
    ``old``) at weight 1 (0)."""
    if weight >= 1.0:
        return new
    if weight <= 0.0:
        return old
    return weight * np.asarray(new, dtype=float) + (1.0 - weight) * np.asarray(old, dtype=float)
