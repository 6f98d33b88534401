"""The control law of joint_trajectory_controller, without ROS.

One :class:`TrajectoryController` per controller. Each control cycle the caller passes the
measured joint state and the time; the controller samples the active trajectory, checks the
path/goal tolerances, and returns the command for the hardware (or the physics) plus any goal
outcome. The emulated controller node wraps it in ROS; the predictor runs it in a forked world.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from reverse_digital_twin.core.goal import TrajectoryGoal, ValidationRules, to_controller_order
from reverse_digital_twin.core.goal import validate_goal
from reverse_digital_twin.core.robot_model import JointLimits
from reverse_digital_twin.core.tolerances import SegmentTolerances, StateTolerance
from reverse_digital_twin.core.tolerances import check_tolerances
from reverse_digital_twin.core.trajectory import JointSample, Trajectory, TrajectoryPoint

COMMAND_INTERFACES = ('position', 'velocity', 'acceleration', 'effort')
STATE_INTERFACES = ('position', 'velocity', 'acceleration')


class ErrorCode(IntEnum):
    """control_msgs/action/FollowJointTrajectory result codes."""

    SUCCESSFUL = 0
    INVALID_GOAL = -1
    INVALID_JOINTS = -2
    OLD_HEADER_TIMESTAMP = -3
    PATH_TOLERANCE_VIOLATED = -4
    GOAL_TOLERANCE_VIOLATED = -5


SUCCESS_MESSAGE = 'Goal successfully reached!'
PREEMPTED_MESSAGE = 'Current goal preempted by new incoming action.'


@dataclass(frozen=True)
class PidGains:
    """gains.<joint>.* of joint_trajectory_controller (velocity/effort command only)."""

    p: float = 0.0
    i: float = 0.0
    d: float = 0.0
    i_clamp: float = math.inf
    ff_velocity_scale: float = 0.0


@dataclass(frozen=True)
class ControllerConfig:
    """Everything the control law needs, from parameters and the URDF."""

    joints: tuple[str, ...]
    command_interfaces: tuple[str, ...] = ('position',)
    state_interfaces: tuple[str, ...] = ('position', 'velocity')
    limits: dict[str, JointLimits] = field(default_factory=dict)
    continuous_joints: frozenset[str] = frozenset()
    allow_partial_joints_goal: bool = False
    allow_nonzero_velocity_at_trajectory_end: bool = False
    interpolation_method: str = 'splines'
    interpolate_from_desired_state: bool = False
    enforce_position_limits: bool = True  # stricter than upstream: refuse goals beyond limits
    tolerances: SegmentTolerances | None = None
    gains: dict[str, PidGains] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.joints:
            raise ValueError("'joints' is empty: list the joints this controller commands")
        if len(set(self.joints)) != len(self.joints):
            raise ValueError(f"'joints' has duplicates: {list(self.joints)}")
        bad = [c for c in self.command_interfaces if c not in COMMAND_INTERFACES]
        if bad or not self.command_interfaces:
            raise ValueError(f"'command_interfaces' {list(self.command_interfaces)} invalid; "
                             f'choose from {list(COMMAND_INTERFACES)}')
        bad = [s for s in self.state_interfaces if s not in STATE_INTERFACES]
        if bad or 'position' not in self.state_interfaces:
            raise ValueError(f"'state_interfaces' {list(self.state_interfaces)} invalid; they "
                             f'must include position and come from {list(STATE_INTERFACES)}')
        if self.interpolation_method not in ('splines', 'none'):
            raise ValueError(f"'interpolation_method' is {self.interpolation_method!r}; use "
                             "'splines' or 'none'")

    @property
    def default_tolerances(self) -> SegmentTolerances:
        if self.tolerances is not None:
            return self.tolerances
        n = len(self.joints)
        return SegmentTolerances((StateTolerance(),) * n,
                                 (StateTolerance(velocity=0.01),) * n, 0.0)

    @property
    def position_only(self) -> bool:
        return tuple(self.command_interfaces) == ('position',)


@dataclass(frozen=True)
class Command:
    """What to write to the command interfaces; None for interfaces the controller lacks."""

    positions: np.ndarray | None = None
    velocities: np.ndarray | None = None
    efforts: np.ndarray | None = None


@dataclass(frozen=True)
class Outcome:
    """How a trajectory ended, in FollowJointTrajectory terms."""

    error_code: ErrorCode
    error_string: str

    @property
    def succeeded(self) -> bool:
        return self.error_code == ErrorCode.SUCCESSFUL


@dataclass(frozen=True)
class CycleResult:
    """Everything one control cycle produced (for commands, feedback and controller_state)."""

    time: float
    reference: JointSample
    feedback: JointSample
    error: JointSample
    command: Command
    index: int
    outcome: Outcome | None = None


class TrajectoryController:
    """joint_trajectory_controller's control law as a plain object.

    Usage per cycle: ``result = controller.update(now, measured, period)``; write
    ``result.command`` to the hardware. ``accept()`` replaces the trajectory; ``hold()``
    stops at the measured position (cancel, tolerance aborts).
    """

    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        self.rules = ValidationRules(
            joints=tuple(config.joints), limits=dict(config.limits),
            allow_partial_joints_goal=config.allow_partial_joints_goal,
            allow_nonzero_velocity_at_trajectory_end=(
                config.allow_nonzero_velocity_at_trajectory_end),
            has_effort_command_interface='effort' in config.command_interfaces,
            enforce_position_limits=config.enforce_position_limits)
        n = len(config.joints)
        self._wrap = np.array([j in config.continuous_joints for j in config.joints])
        self._trajectory: Trajectory | None = None
        self._tolerances: SegmentTolerances = config.default_tolerances
        self._monitoring = False  # tolerances checked for the active trajectory
        self._last_measured: JointSample | None = None
        self._last_reference: JointSample | None = None
        self._last_command: Command | None = None
        self._integral = np.zeros(n)
        self._gains = [config.gains.get(j, PidGains()) for j in config.joints]

    # --- goals ------------------------------------------------------------------------------
    def validate(self, goal: TrajectoryGoal, now: float) -> str | None:
        """Why this trajectory would be refused, or None."""
        return validate_goal(goal, self.rules, now)

    def accept(self, goal: TrajectoryGoal, tolerances: SegmentTolerances | None = None) -> None:
        """Replace the active trajectory with a validated goal; it starts at the next update."""
        fill = self._current_positions()
        points = to_controller_order(goal, self.config.joints, fill)
        self._trajectory = Trajectory(points, start_time=goal.stamp or None,
                                      interpolate=self.config.interpolation_method == 'splines')
        self._tolerances = tolerances or self.config.default_tolerances
        self._monitoring = True

    def hold(self, measured: JointSample | None = None) -> None:
        """Hold the measured position (what the real controller does on cancel and aborts).

        Args:
            measured: a fresh measurement to hold (after the hardware came back); default: the
                last one seen. Forgets the last command, so nothing stale is sent again.
        """
        if measured is not None:
            self._last_measured = measured
            self._last_command = None
            self._last_reference = None
        positions = self._current_positions(measured=True)
        if positions is None:
            self._trajectory = None
            return
        n = len(positions)
        self._trajectory = Trajectory([TrajectoryPoint(0.0, positions, np.zeros(n), np.zeros(n))])
        self._monitoring = False

    @property
    def has_trajectory(self) -> bool:
        return self._trajectory is not None

    @property
    def active_trajectory(self) -> Trajectory | None:
        return self._trajectory

    def _current_positions(self, measured: bool = False) -> np.ndarray | None:
        if not measured and self._last_command is not None \
                and self._last_command.positions is not None:
            return self._last_command.positions.copy()
        if self._last_measured is not None:
            return self._last_measured.positions.copy()
        return None

    # --- control cycle ----------------------------------------------------------------------
    def update(self, now: float, measured: JointSample, period: float) -> CycleResult:
        """Run one control cycle at time ``now`` (s) with the measured state."""
        self._last_measured = measured
        if self._trajectory is None:
            self.hold()
        traj = self._trajectory
        assert traj is not None
        first_sample = not traj.started
        if first_sample:
            start = measured
            if self.config.interpolate_from_desired_state and self._last_reference is not None:
                start = self._last_reference
            traj.start_from(now, JointSample(start.positions, start.velocities,
                                             np.zeros_like(start.positions)))
        sample = traj.sample(now)
        if sample is None:  # stamped in the future: keep the last command until it starts
            reference = self._last_reference or JointSample.at_rest(measured.positions)
            command = self._last_command or Command(positions=measured.positions.copy())
            return CycleResult(now, reference, measured, self._error(reference, measured),
                               command, 0)
        reference = sample.state
        error = self._error(reference, measured)
        ahead = traj.sample(now + period) or sample
        command = self._command(ahead.state, reference, error, period)
        outcome = self._check(now, traj, sample.past_end, error, first_sample) \
            if self._monitoring else None
        if outcome is not None and not outcome.succeeded:
            self.hold()
            assert self._trajectory is not None
            self._trajectory.start_from(now, measured)
            held = self._trajectory.sample(now)
            assert held is not None
            command = self._command(held.state, held.state, self._error(held.state, measured),
                                    period)
        self._last_reference = reference
        self._last_command = command
        return CycleResult(now, reference, measured, error, command, sample.index, outcome)

    def _error(self, reference: JointSample, measured: JointSample) -> JointSample:
        dp = reference.positions - measured.positions
        if self._wrap.any():
            wrapped = (dp + math.pi) % (2 * math.pi) - math.pi
            dp = np.where(self._wrap, wrapped, dp)
        return JointSample(dp, reference.velocities - measured.velocities,
                           reference.accelerations - measured.accelerations)

    def _check(self, now: float, traj: Trajectory, past_end: bool,
               error: JointSample, first_sample: bool = False) -> Outcome | None:
        joints = self.config.joints
        # Velocity errors only mean something with a velocity state and a velocity or effort
        # command; acceleration errors need an acceleration state and command (as upstream).
        states, commands = self.config.state_interfaces, self.config.command_interfaces
        vel_err = error.velocities if 'velocity' in states and (
            'velocity' in commands or 'effort' in commands) else None
        acc_err = error.accelerations if 'acceleration' in states and \
            'acceleration' in commands else None
        # Path tolerance: before the last point, and on the very first sample even if that is
        # already past the end (a single point at time 0), as upstream.
        start = traj.start_time if traj.start_time is not None else now
        if not past_end or first_sample:
            violation = check_tolerances(joints, self._tolerances.state, error.positions,
                                         vel_err, acc_err)
            if violation is not None:
                self._monitoring = False
                return Outcome(ErrorCode.PATH_TOLERANCE_VIOLATED,
                               f'Aborted due to path tolerance violation: {violation.describe()} '
                               f'at {now - start:.3f} s into the trajectory')
        if not past_end:
            return None
        violation = check_tolerances(joints, self._tolerances.goal, error.positions, vel_err,
                                     acc_err)
        if violation is None:
            self._monitoring = False
            return Outcome(ErrorCode.SUCCESSFUL, SUCCESS_MESSAGE)
        late = now - traj.end_time
        if self._tolerances.goal_time > 0.0 and late > self._tolerances.goal_time:
            self._monitoring = False
            return Outcome(ErrorCode.GOAL_TOLERANCE_VIOLATED,
                           f'Aborted due to goal_time_tolerance exceeding by '
                           f'{late - self._tolerances.goal_time:.3f} seconds: '
                           f'{violation.describe()}')
        return None

    def _command(self, ahead: JointSample, reference: JointSample, error: JointSample,
                 period: float) -> Command:
        interfaces = self.config.command_interfaces
        if 'position' in interfaces:
            velocities = ahead.velocities.copy() if 'velocity' in interfaces else None
            return Command(positions=ahead.positions.copy(), velocities=velocities)
        # Velocity- or effort-only: feed-forward velocity plus a PID on the position error.
        out = np.zeros(len(self.config.joints))
        for i, g in enumerate(self._gains):
            self._integral[i] = float(np.clip(self._integral[i] + error.positions[i] * period,
                                              -g.i_clamp, g.i_clamp))
            out[i] = (g.ff_velocity_scale * reference.velocities[i] + g.p * error.positions[i]
                      + g.i * self._integral[i] + g.d * error.velocities[i])
        if 'velocity' in interfaces:
            return Command(velocities=out)
        return Command(efforts=out)
