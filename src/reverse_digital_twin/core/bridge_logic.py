"""The bridge's decisions, without ROS: where goals go, when a switch is allowed, when the
hardware counts as lost, when it has left the predicted path.

The bridge node feeds these objects with times and states and acts on their answers; every
rule here is unit-tested on its own.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from reverse_digital_twin.core.deadlines import wall_deadline


#: The bridge's tunable numbers and what each must be: (lowest, lowest allowed itself, highest).
TUNABLE_RANGES: dict[str, tuple[float, bool, float]] = {
    'start_tolerance': (0.0, False, math.inf),
    'divergence_threshold': (0.0, False, math.inf),
    'divergence_time_slack': (0.0, True, math.inf),
    'prediction_timeout': (0.0, False, math.inf),
    'prediction_min_speed': (0.0, False, math.inf),
    'prediction_timeout_cap': (0.0, False, math.inf),
    'max_start_delay': (0.0, True, math.inf),
    'min_success_probability': (0.0, True, 1.0),
    'sweep_rollouts': (1.0, True, math.inf),
    'hardware_lookahead': (0.0, True, math.inf),
}


def tunable_error(name: str, value: float) -> str | None:
    """Why ``value`` cannot be the bridge's parameter ``name`` (None: it can). One rule for the
    start-up parameters and ``ros2 param set``: NaN, infinities and out-of-range values would
    silently disable a watch or hang a goal."""
    low, inclusive, high = TUNABLE_RANGES[name]
    v = float(value)
    if math.isfinite(v) and (v >= low if inclusive else v > low) and v <= high:
        return None
    low_text = f'>= {low:g}' if inclusive else f'> {low:g}'
    high_text = '' if math.isinf(high) else f' and <= {high:g}'
    return f'{name} must be a finite number {low_text}{high_text}, got {value}'


class Target(str, Enum):
    """Where goals go."""

    SIM = 'sim'  # the twin's emulated controller
    HARDWARE = 'hardware'  # the robot's driver (or the stand-in)
    SHADOW = 'shadow'  # the hardware executes; measured states are checked against the twin

    @property
    def uses_hardware(self) -> bool:
        return self is not Target.SIM

    @classmethod
    def parse(cls, name: str) -> 'Target':
        try:
            return cls(name.strip().lower())
        except ValueError:
            raise ValueError(f'unknown target {name!r}; choose one of '
                             f'{[t.value for t in cls]}') from None


class TargetSwitch:
    """Active target, hardware arming, and the rules for changing them.

    The bridge's service and its parameters both go through :meth:`request_switch` and
    :meth:`request_arm`, so the two paths refuse the same things with the same words.
    """

    def __init__(self, target: Target = Target.SIM, armed: bool = False) -> None:
        self.target = target
        self.armed = armed
        self.goal_active = False
        if target.uses_hardware and not armed:
            raise ValueError(f'target {target.value!r} needs the hardware armed '
                             '(hardware_armed: true)')

    def check_switch(self, target: Target, hardware_silence: float = 0.0,
                     hardware_deadline: float = math.inf) -> str | None:
        """Why a switch to `target` is refused now, or None.

        ``hardware_silence`` is how long the hardware's joint states have been silent and
        ``hardware_deadline`` how long they may be before the hardware counts as lost.
        """
        if self.goal_active and target is not self.target:
            return (f'refused to switch to {target.value}: a goal is executing on '
                    f'{self.target.value}; switch between goals')
        if target.uses_hardware and not self.armed:
            return (f'refused to switch to {target.value}: the hardware is not armed '
                    '(call ~/arm_hardware with data: true, or set hardware_armed)')
        if target.uses_hardware and hardware_silence > hardware_deadline:
            return (f'refused to switch to {target.value}: no joint states from the hardware '
                    f'for {hardware_silence:.2f} s')
        return None

    def request_switch(self, name: str, hardware_silence: float = 0.0,
                       hardware_deadline: float = math.inf) -> tuple[Target | None, str | None]:
        """Switch to the target called `name`: (new target, None) or (None, why not)."""
        try:
            target = Target.parse(name)
        except ValueError as exc:
            return None, str(exc)
        reason = self.check_switch(target, hardware_silence, hardware_deadline)
        if reason is not None:
            return None, reason
        self.target = target
        return target, None

    def switch(self, target: Target) -> str | None:
        reason = self.check_switch(target)
        if reason is None:
            self.target = target
        return reason

    def request_arm(self, armed: bool) -> str | None:
        """Arm or disarm: None, or why not (disarming while goals go to the hardware)."""
        if not armed and self.target.uses_hardware:
            return (f'refused to disarm while the target is {self.target.value}; switch to '
                    'sim first')
        self.armed = bool(armed)
        return None

    def disarm(self) -> None:
        """Drop hardware readiness (hardware lost); goals fall back to needing a re-arm."""
        self.armed = False


class StalenessMonitor:
    """Decides when a joint-state stream has stopped, from the gaps actually measured.

    The deadline is ``factor`` times the 99th percentile of recent gaps, but never below
    ``minimum``: a 100 Hz stream trips after ``minimum``, a slow 10 Hz stream after ~0.5 s, and
    one scheduling hiccup does not stretch the deadline for long. DDS liveliness takes ~20 s to
    notice a dead publisher, far too late for a moving arm.
    """

    def __init__(self, minimum: float = 0.2, factor: float = 5.0, window: int = 200) -> None:
        self.minimum = minimum
        self.factor = factor
        self._gaps: deque[float] = deque(maxlen=window)
        self.last: float | None = None

    def arrived(self, now: float) -> None:
        if self.last is not None and now > self.last:
            self._gaps.append(now - self.last)
        self.last = now

    @property
    def deadline(self) -> float:
        if not self._gaps:
            return max(self.minimum, 1.0)
        gaps = sorted(self._gaps)
        return max(self.minimum, self.factor * gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))])

    def silence(self, now: float) -> float:
        return math.inf if self.last is None else now - self.last

    def stale(self, now: float) -> bool:
        return self.silence(now) > self.deadline

    def reset(self) -> None:
        self._gaps.clear()
        self.last = None

    def lost(self, now: float, witness: 'StalenessMonitor | None', fallback: float) -> bool:
        """Stale, and the silence is the stream's own, not a stall of the process watching it.

        A process that was not scheduled for a while (a busy 2-core machine, a long GIL hold)
        sees every stream fall silent at once, then catches up. So a stream counts as lost only
        once a ``witness`` stream received by the same process has delivered a message after
        this stream's deadline had passed; without such proof, after ``fallback`` s of silence
        (the witness itself may be gone).
        """
        if not self.stale(now):
            return False
        if witness is None or witness.last is None or self.silence(now) > fallback:
            return True
        return witness.last > self.last + self.deadline


def execution_timeout(duration: float, goal_time: float = 0.0, scale: float = 1.1,
                      margin: float = 0.5) -> float:
    """How long to wait for a result before declaring the target dead (MoveIt's rule)."""
    return scale * (duration + goal_time) + margin


@dataclass(frozen=True)
class StartTime:
    """When a goal starts, read from its ``header.stamp`` in the bridge's clock.

    A client of a real robot stamps "start 0.5 s from now" in its own clock; the target behind
    the bridge may run on sim time or wall time. The bridge turns the stamp into a delay and
    restamps the goal in the target's clock (:meth:`target_stamp`).
    """

    delay: float  # s from now; 0 for an unstamped goal ("start now"), < 0 if already begun
    stamped: bool

    @staticmethod
    def read(stamp: float, now: float, duration: float,
             max_delay: float) -> tuple['StartTime | None', str | None]:
        """(start, None), or (None, why the start time is refused)."""
        if stamp == 0.0:
            return StartTime(0.0, False), None
        if not math.isfinite(stamp):
            return None, f'header.stamp {stamp} is not a time'
        delay = stamp - now
        if delay > max_delay:
            return None, (f'the trajectory starts {delay:.1f} s in the future (header.stamp), '
                          f'more than the bridge allows ({max_delay:g} s, parameter '
                          'max_start_delay); is the stamp in the right clock?')
        if delay + duration < 0.0:
            return None, (f'the trajectory ended {-(delay + duration):.1f} s ago (header.stamp '
                          '+ the last time_from_start is in the past); stamp it with the '
                          'current time or leave it 0 to start now')
        return StartTime(delay, True), None

    def target_stamp(self, target_now: float, elapsed: float) -> float:
        """The start in the target's clock: its time now plus what is left of the delay.

        ``elapsed`` is the time that passed since the delay was read.
        """
        return target_now + self.delay - elapsed


def prediction_deadline(duration: float, delay: float, settling: float, base: float,
                        min_speed: float, cap: float) -> float:
    """How long the bridge waits for the twin's verdict (wall s).

    A rollout simulates the start delay, the trajectory and the settling; the planner gives
    it (simulated / min_speed + its allowance, capped) before answering "timed out", by the
    same rule (:func:`~reverse_digital_twin.core.deadlines.wall_deadline`).
    """
    simulated = max(delay, 0.0) + max(duration, 0.0) + max(settling, 0.0)
    return wall_deadline(simulated, max(min_speed, 1e-6), base, cap)


def start_deviation(first_positions: Sequence[float], measured: Sequence[float],
                    joints: Sequence[str], tolerance: float) -> str | None:
    """Why a trajectory's first point (meant as 'now') is too far from the measured state."""
    if tolerance <= 0:
        return None
    err = np.abs(np.asarray(first_positions, float) - np.asarray(measured, float))
    worst = int(np.argmax(err))
    if err[worst] > tolerance:
        return (f'the trajectory starts {err[worst]:.4f} rad away from the measured state at '
                f'joint {joints[worst]} (start tolerance {tolerance:.4f} rad); nothing was moved')
    return None


@dataclass(frozen=True)
class DivergenceEvent:
    """The measured hardware state left the predicted one."""

    joint: str
    error: float  # measured - predicted, rad
    threshold: float
    time: float  # s into the goal
    measured: np.ndarray
    predicted: np.ndarray

    def describe(self) -> str:
        return (f'joint {self.joint} diverged from the twin\'s prediction by '
                f'{self.error:+.4f} rad '
                f'(threshold {self.threshold:.4f}) at {self.time:.2f} s into the goal')


class DivergenceMonitor:
    """Compares measured joint positions with the predicted trajectory, time-aligned.

    ``time_slack`` absorbs what is left of the time misalignment between the prediction and the
    hardware (the control cycle the hardware started the goal in, its command latency where the
    twin does not know it): the error is taken at the one time shift within ±slack that fits
    all joints best. One shift for all joints, because a late robot is late in every joint:
    a joint that falls behind while the others keep time (a payload pulling it down) is not
    excused by the slack.
    """

    #: The shifts tried within ±slack are this far apart (s).
    SHIFT_STEP = 0.001

    def __init__(self, joints: Sequence[str], times: np.ndarray, positions: np.ndarray,
                 threshold: float, time_slack: float = 0.1) -> None:
        if len(times) == 0:
            raise ValueError('empty prediction')
        self.joints = list(joints)
        self.times = np.asarray(times, float)
        self.positions = np.asarray(positions, float)
        self.threshold = threshold
        self.time_slack = max(0.0, float(time_slack))
        steps = int(math.ceil(self.time_slack / self.SHIFT_STEP))
        self._shifts = np.linspace(-self.time_slack, self.time_slack, 2 * steps + 1)
        self.max_error = 0.0
        self.max_error_at: tuple[str, float] = ('', 0.0)  # (joint, time into the goal)

    def predicted_at(self, t: float | np.ndarray) -> np.ndarray:
        """The predicted positions at time t (one row per time when t is an array)."""
        ts = np.clip(np.atleast_1d(np.asarray(t, float)), self.times[0], self.times[-1])
        rows = np.stack([np.interp(ts, self.times, self.positions[:, j])
                         for j in range(self.positions.shape[1])], axis=1)
        return rows if np.ndim(t) else rows[0]

    def check(self, t: float, measured: Sequence[float]) -> DivergenceEvent | None:
        measured = np.asarray(measured, float)
        errors = measured[None, :] - self.predicted_at(t + self._shifts)
        best = errors[int(np.argmin(np.abs(errors).max(axis=1)))]
        worst = int(np.argmax(np.abs(best)))
        if abs(best[worst]) > self.max_error:
            self.max_error, self.max_error_at = float(abs(best[worst])), (self.joints[worst], t)
        if abs(best[worst]) > self.threshold:
            return DivergenceEvent(self.joints[worst], float(best[worst]), self.threshold, t,
                                   measured, self.predicted_at(t))
        return None
