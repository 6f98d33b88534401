"""Predict what a trajectory will do before the real robot gets it.

A :class:`Predictor` owns its own PyBullet world (same URDF, scene and physics rate as the
live twin) and rolls a trajectory out in it through the same control law as the emulated
controller (:class:`~reverse_digital_twin.core.controller.TrajectoryController`), free-running
as fast as the machine allows. The result is a :class:`Verdict`: safe or not, and why, in
terms a person can act on (which link hits what, when and where, the robot's own links
included; which joint exceeds which limit; what the controller would report). Every predict()
starts from the same saved world state, so the same question always gets the bit-identical
answer.

Self-collision: the prediction world has PyBullet's self-collision on, except for the link
pairs that touch by design (:mod:`~reverse_digital_twin.core.self_collision`: adjacent links
and pairs already touching in the home pose). That adds no work per step in Python (PyBullet's
broadphase finds the pairs) and changes nothing until two links touch, which is unsafe anyway.
The live twin keeps its dynamics: self-collision stays off there.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Protocol

import numpy as np

from reverse_digital_twin.core.command_latency import Switch, blend, switch_point
from reverse_digital_twin.core.controller import Command, ControllerConfig, CycleResult
from reverse_digital_twin.core.controller import ErrorCode, Outcome, TrajectoryController
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal import TrajectoryGoal
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.physics import MotorSettings, PhysicsWorld
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.core.scene import Scene
from reverse_digital_twin.core.self_collision import HOME_CONTACT_MARGIN, ignored_link_pairs
from reverse_digital_twin.core.tolerances import SegmentTolerances, check_tolerances
from reverse_digital_twin.core.trajectory import JointSample

#: A position this far outside the URDF limits counts as a violation (rad or m); below it is
#: solver noise at a limit stop.
POSITION_LIMIT_SLACK = 1e-3
#: A motor is saturated in a control cycle when its effort, averaged over the cycle's physics
#: steps, reaches this fraction of the URDF effort limit: it pushed at the limit in one direction
#: the whole cycle. (PyBullet's stiff position motors hit the limit for single steps, back and
#: forth, on every new target; that is not pushing against anything.) ...
EFFORT_SATURATION = 0.999
#: ... for this long (s): the arm pushes against something or is too heavy for the motor.
#: Shorter saturation is normal: a trajectory's velocity step (linear segments) makes the stiff
#: motors of light wrist joints push at their limit for a few cycles.
EFFORT_SATURATION_TIME = 0.25
#: The prediction world steps at the live physics rate / this: half the physics work. An unsafe
#: verdict is confirmed by a rollout at the live rate (Predictor.predict), so refusals are
#: exact and only "safe" rests on the coarse world. benchmarks/bench_prediction.py measures the
#: parity with full-rate rollouts on >= 200 seeded random goals (a third of them unsafe);
#: this may only stay while predict_parity stays >= 0.995 on every robot of config/ (measured:
#: 1.000 on rdt_arm6 and on the Panda, 210 goals each; the Panda was at 0.990 without the
#: confirmation of unsafe verdicts).
DEFAULT_PHYSICS_DECIMATION = 2
#: PyBullet also reports contact points that are still apart (up to a few mm while a link
#: approaches); only points at least this deep (m) are collisions.
MIN_CONTACT_DEPTH = 0.0
#: m: a robot link this close to a scene object counts as hitting it. "Safe" rests on the coarse
#: world (see DEFAULT_PHYSICS_DECIMATION), whose arm can stop microns short of an obstacle that
#: the live physics then touches (a policy steering into the pillar did: 10 um); the margin
#: covers that. Self-contacts keep MIN_CONTACT_DEPTH (links at rest can sit closer).
SCENE_CONTACT_MARGIN = 0.001
#: A goal's success does not end its prediction: the controller reports it once the arm is
#: within the goal tolerance at the trajectory's end (without a velocity command interface it
#: checks no velocity), and the arm then still moves on to the held last point (a policy's
#: 50 ms steps ended 12 mrad short, at 1.5 rad/s, and the rest of the way touched the pillar).
#: The rollout goes on until every joint is slower than SETTLED_SPEED (rad/s or m/s) for
#: SETTLED_CYCLES control cycles in a row, within the horizon after the end.
SETTLED_SPEED = 0.005
SETTLED_CYCLES = 3


@dataclass(frozen=True)
class PredictedCollision:
    """First contact of one (robot link, other) pair during the rollout.

    ``time`` and ``position`` are those of the first contact; ``depth`` is the deepest
    penetration of this pair over the whole rollout (m), because that is what tells how bad it is.
    """

    link: str
    other: str  # scene object name, or another robot link (self-collision)
    time: float  # s after the start of the prediction
    position: tuple[float, float, float]  # world frame (m)
    depth: float  # m


@dataclass(frozen=True)
class LimitViolation:
    """First time one joint exceeds one kind of URDF limit."""

    joint: str
    kind: str  # 'position' | 'velocity' | 'effort'
    time: float  # s after the start of the prediction
    value: float  # rad, rad/s, N*m (m, m/s, N for prismatic joints)
    limit: float


@dataclass(frozen=True, eq=False)
class Verdict:
    """What the twin predicts for a trajectory, and why it is (un)safe."""

    safe: bool
    reasons: tuple[str, ...]  # one actionable line each; empty when safe
    collisions: tuple[PredictedCollision, ...]  # first contact per (link, other) pair, by time
    limit_violations: tuple[LimitViolation, ...]  # first per (joint, kind), by time
    outcome: Outcome | None  # what the controller would report; None: no end within the horizon
    max_tracking_error: float  # max |reference - measured| position over the rollout
    max_tracking_error_joint: str
    joints: tuple[str, ...]  # controller joint order (columns of positions / velocities)
    times: np.ndarray  # (T,) s after the start of the prediction, one per control cycle
    positions: np.ndarray  # (T, n) predicted measured positions
    velocities: np.ndarray  # (T, n) predicted measured velocities
    duration: float  # simulated s
    computation_time: float  # wall s

    @property
    def rejected(self) -> bool:
        """The controller would refuse the goal outright (nothing was rolled out)."""
        return not self.safe and len(self.times) == 0

    @property
    def summary(self) -> str:
        return '\n'.join(self.reasons) or 'safe'

    @property
    def final_positions(self) -> np.ndarray:
        """Predicted measured positions at the end; NaN when nothing was rolled out."""
        return self.positions[-1] if len(self.positions) else np.full(len(self.joints), np.nan)

    @property
    def final_velocities(self) -> np.ndarray:
        """Predicted measured velocities at the end; NaN when nothing was rolled out."""
        return self.velocities[-1] if len(self.velocities) else np.full(len(self.joints), np.nan)


class WhatIfSession(Protocol):
    """One prediction under a :class:`WhatIf`: hooks the rollout calls, in simulated time ``t``
    (s after the start of the prediction)."""

    #: s of command latency on top of the predictor's own (0: none)
    extra_command_latency: float
    #: what the what-if did that makes the goal fail (e.g. an emergency stop), one line each
    reasons: list[str]

    def measure(self, t: float, positions: np.ndarray,
                velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the controller sees of the measured state (sensor noise, dropouts)."""

    def command(self, t: float, command: Command) -> Command:
        """The command that reaches the robot in place of the controller's (command loss)."""

    def before_step(self, t: float, world: PhysicsWorld) -> None:
        """Change the world before the control period from ``t`` (an obstacle appears...)."""

    def done(self, t: float) -> bool:
        """The rollout ends now, without an outcome (e.g. after an emergency stop)."""

    def end(self) -> None:
        """Undo every change to the world: the next prediction must not feel this one."""


class WhatIf(Protocol):
    """A change to one prediction: what if the payload were heavier, a joint locked, an
    obstacle appeared? (:class:`reverse_digital_twin.core.scenario.ScenarioDraw` is one.)"""

    def begin(self, predictor: 'Predictor', goal: TrajectoryGoal,
              start_positions: Mapping[str, float]) -> WhatIfSession:
        """Change the predictor's world for one rollout; the session undoes it (end())."""


class Predictor:
    """Rolls trajectories out in a private physics world through the controller's control law.

    Args:
        model: the robot model (joint names, limits, root link).
        urdf_path: the URDF PyBullet loads (the live twin's).
        scene: the live twin's scene (None: the robot alone).
        physics_rate: physics steps per simulated second (Hz), as the live twin.
        update_rate: control cycles per simulated second (Hz), as the live controller.
        config: the live controller's configuration (joints, interfaces, tolerances, limits).
        motors: how commands drive the joints, as in the live twin.
        command_delay_cycles: 0 models the live sim in lockstep (a command computed at cycle k
            acts from cycle k); 1 models it without lockstep (it acts from cycle k + 1).
            Ignored with ``hardware``: its command latency replaces it.
        allowed_contacts: (robot link, other) pairs that are not collisions, e.g. a gripper on
            the part it is meant to touch; ``*`` (fnmatch patterns) allowed on either side. The
            root link's contacts (with what the robot stands on) are always allowed.
        velocity_margin: a velocity counts as over the limit above limit * velocity_margin
            (the motors' velocity cap is soft in PyBullet).
        horizon_after_end: how long after the trajectory end to wait for the controller's
            outcome when the goal_time tolerance is shorter (s).
        initial_positions: positions of joints that predict() is not told about (e.g. fingers
            the controller does not command), as in the live twin; others start at 0. Also the
            home pose in which touching link pairs are exempt from self-collision.
        self_collision: check the robot's links against each other (the default).
        physics_decimation: step the prediction world at physics_rate / this (1: the live
            twin's rate; None: :data:`DEFAULT_PHYSICS_DECIMATION` where a control cycle has a
            multiple of it in live steps, else 1). Position motor gains are converted so that
            a motor closes the same share of its error per live-rate time (PyBullet's gain is
            per step). See DEFAULT_PHYSICS_DECIMATION for why it is allowed.
        hardware: the twin's model of the hardware (e.g. a calibration's), None: the nominal
            twin. Its payload, extra damping and friction go into the prediction worlds
            (:meth:`Perturbation.apply_to`); its encoder offsets make the start positions
            given to predict() measured ones (true = measured - offset) and every position
            the controller sees and the verdict reports measured (true + offset; position
            limits are checked on the true positions, where the URDF's apply); its command
            latency delays each command from its control cycle's time t to t + latency, by
            :mod:`~reverse_digital_twin.core.command_latency`'s rule (the physics step the
            moment falls into gets the time-weighted mean of the old and new command).
            Sensor noise is not modelled.
    """

    def __init__(self, model: RobotModel, urdf_path: str, scene: Scene | None,
                 physics_rate: float, update_rate: float, config: ControllerConfig,
                 motors: MotorSettings = MotorSettings(), command_delay_cycles: int = 0,
                 allowed_contacts: Iterable[tuple[str, str]] = (),
                 velocity_margin: float = 1.05, horizon_after_end: float = 1.0,
                 initial_positions: Mapping[str, float] | None = None,
                 self_collision: bool = True, physics_decimation: int | None = None,
                 hardware: Perturbation | None = None) -> None:
        for name, value in (('physics_rate', physics_rate), ('update_rate', update_rate)):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f'{name} must be a positive number of Hz, got {value}')
        if update_rate > physics_rate:
            raise ConfigError(f'update_rate ({update_rate} Hz) exceeds physics_rate '
                              f'({physics_rate} Hz): the controller cannot run faster than the '
                              'physics')
        if physics_decimation is None:
            live_steps = round(physics_rate / update_rate)
            physics_decimation = DEFAULT_PHYSICS_DECIMATION \
                if live_steps % DEFAULT_PHYSICS_DECIMATION == 0 else 1
        if int(physics_decimation) != physics_decimation or physics_decimation < 1:
            raise ConfigError(f'physics_decimation must be an integer >= 1, got '
                              f'{physics_decimation}')
        if update_rate > physics_rate / physics_decimation:
            raise ConfigError(f'update_rate ({update_rate} Hz) exceeds the prediction physics '
                              f'rate ({physics_rate} / {physics_decimation} Hz)')
        if command_delay_cycles < 0:
            raise ConfigError(f'command_delay_cycles must be >= 0, got {command_delay_cycles}')
        if not (velocity_margin > 0 and math.isfinite(velocity_margin)):
            raise ConfigError(f'velocity_margin must be a positive factor, got {velocity_margin}')
        if not (horizon_after_end >= 0 and math.isfinite(horizon_after_end)):
            raise ConfigError(f'horizon_after_end must be >= 0 s, got {horizon_after_end}')
        model.check_joints(list(config.joints), 'predictor controller joints')
        self.model = model
        self.config = config
        self.physics_decimation = int(physics_decimation)
        original_motors = motors
        self.physics_rate = float(physics_rate) / self.physics_decimation  # of this world
        if self.physics_decimation > 1:  # same error decay per live-rate time, see above
            motors = replace(motors, position_gain=1.0 - (1.0 - motors.position_gain)
                             ** self.physics_decimation)
        self.update_rate = float(update_rate)
        self.period = 1.0 / self.update_rate
        self.steps_per_cycle = max(1, round(self.physics_rate / self.update_rate))
        self.command_delay_cycles = int(command_delay_cycles)
        self.velocity_margin = float(velocity_margin)
        self.horizon_after_end = float(horizon_after_end)
        self.allowed_contacts: tuple[tuple[str, str], ...] = tuple(
            (str(a), str(b)) for a, b in allowed_contacts)
        self._joints = tuple(config.joints)
        self._joint_list = list(self._joints)
        movable = {j.name: j for j in model.movable_joints}
        self._limits = [movable[j].limits for j in self._joints]
        self._units = [('m', 'm/s', 'N') if movable[j].type == 'prismatic'
                       else ('rad', 'rad/s', 'N*m') for j in self._joints]
        self.world = PhysicsWorld(model, urdf_path, scene, self.physics_rate, motors,
                                  initial_positions, self_collision=self_collision)
        self._robot_links = frozenset(model.links)
        self.ignored_link_pairs: frozenset[frozenset[str]] = frozenset()
        if self_collision:
            home = [(a, b) for a, b, _ in self.world.link_pairs_within(HOME_CONTACT_MARGIN)]
            self.ignored_link_pairs = frozenset(ignored_link_pairs(model, home))
            for pair in sorted(tuple(sorted(p)) for p in self.ignored_link_pairs):
                self.world.ignore_link_pair(*pair)
        self._movable = self.world.movable_joints
        self._indices = [self.world.joint_index[j] for j in self._joints]
        self._torque_joints = self._joints if 'effort' in config.command_interfaces else ()
        # A motor saturates in a cycle when its mean effort over the cycle's n steps reaches
        # EFFORT_SATURATION * limit; as no step exceeds the limit, every step then is at least
        # this floor, so a cycle stops reading a joint's effort after its first step below it.
        n = self.steps_per_cycle
        self._effort_floor = [
            n * EFFORT_SATURATION * lim.effort - (n - 1) * lim.effort * (1.0 + 1e-6)
            if math.isfinite(lim.effort) else math.inf for lim in self._limits]
        self.hardware = hardware
        #: encoder offsets of the controller joints (measured = true + offset); None: none
        self._offsets: np.ndarray | None = None
        self._start_offsets: dict[str, float] = {}  # joint -> offset, any movable joint
        if hardware is None:  # integer cycles: a command acts from the start of a cycle
            switch = Switch(self.command_delay_cycles * self.steps_per_cycle, 1.0)
        else:
            hardware.apply_to(self.world)
            self._start_offsets = {j: float(v) for j, v in hardware.joint_offsets.items() if v}
            if self._start_offsets:
                self._offsets = np.array([self._start_offsets.get(j, 0.0) for j in self._joints])
            # Command k is computed at the start of cycle k, on a physics step boundary
            switch = switch_point(0.0, hardware.command_latency, self.world.dt)
        #: a command computed in cycle k takes effect in cycle k + _delay_cycles, in that
        #: cycle's physics step _switch_step, for the last _switch_weight of the step
        self._delay_cycles, self._switch_step = divmod(switch.step, self.steps_per_cycle)
        self._switch_weight = switch.weight
        self._initial_state = self.world.save_state()
        # An unsafe verdict of the coarse world is confirmed at the live rate (see predict)
        self._full_rate: Predictor | None = None
        if self.physics_decimation > 1:
            self._full_rate = Predictor(
                model, urdf_path, scene, physics_rate, update_rate, config, original_motors,
                command_delay_cycles, allowed_contacts, velocity_margin, horizon_after_end,
                initial_positions, self_collision, physics_decimation=1, hardware=hardware)

    # --- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        self.world.close()
        if self._full_rate is not None:
            self._full_rate.close()

    def __enter__(self) -> 'Predictor':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- prediction -------------------------------------------------------------------------
    def predict(self, goal: TrajectoryGoal, start_positions: Mapping[str, float],
                start_velocities: Mapping[str, float] | None = None,
                tolerances: SegmentTolerances | None = None, now: float = 0.0,
                what_if: WhatIf | None = None) -> Verdict:
        """Roll ``goal`` out from the given state and judge it.

        Args:
            goal: the trajectory as the controller would receive it.
            start_positions: joint -> position where the robot is now (joints left out keep
                the predictor's initial positions).
            start_velocities: joint -> velocity now (default: at rest).
            tolerances: the goal's tolerances merged with the defaults (None: the defaults).
            now: the controller clock at the start (s), so that a nonzero header stamp means
                what it will mean live. Times in the verdict are relative to it.
            what_if: changes to this one prediction (a scenario draw: payload, locked joint,
                sensor noise, an obstacle appearing...); undone afterwards, so the next
                prediction is as if this one had not been made. None: the plain prediction.

        With a physics decimation, a safe verdict is the coarse world's, and an unsafe one is
        rolled out again at the live physics rate and that verdict returned (its
        computation_time includes both): a refusal always gives the exact reason.
        """
        wall0 = time.perf_counter()
        verdict = self._predict(goal, start_positions, start_velocities, tolerances, now, wall0,
                                what_if)
        if verdict.safe or verdict.rejected or self._full_rate is None:
            return verdict
        return self._full_rate._predict(goal, start_positions, start_velocities, tolerances,
                                        now, wall0, what_if)

    def _predict(self, goal: TrajectoryGoal, start_positions: Mapping[str, float],
                 start_velocities: Mapping[str, float] | None,
                 tolerances: SegmentTolerances | None, now: float, wall0: float,
                 what_if: WhatIf | None = None) -> Verdict:
        """One rollout in this predictor's world; see predict()."""
        joints = self._joints
        n = len(joints)
        controller = TrajectoryController(self.config)
        reason = controller.validate(goal, now)
        if reason is not None:
            return Verdict(False, (f'the controller would reject the goal: {reason}',), (), (),
                           None, 0.0, '', joints, np.zeros(0), np.zeros((0, n)),
                           np.zeros((0, n)), 0.0, time.perf_counter() - wall0)
        session = None if what_if is None else what_if.begin(self, goal, start_positions)
        latency = (self._delay_cycles, self._switch_step, self._switch_weight)
        try:
            if session is not None and session.extra_command_latency:
                self._add_command_latency(session.extra_command_latency)
            start = self._reset(start_positions, start_velocities or {})
            # The controller has been holding the start pose before the goal arrives: one
            # virtual hold cycle gives it the command a partial goal fills in, as live.
            controller.update(now - self.period, start, self.period)
            controller.accept(goal, tolerances)
            tol = tolerances or self.config.default_tolerances
            t_begin = goal.stamp or now
            end = t_begin + goal.points[-1].time_from_start
            horizon = max(tol.goal_time, self.horizon_after_end)
            last_time = end + horizon - now + 1e-9  # relative to now
            rollout = Rollout(self, now, session)
            decided: CycleResult | None = None  # the cycle the controller gave its outcome in
            still = 0  # consecutive cycles at rest since then
            while True:
                cycle = rollout.cycle(controller)
                if decided is None and cycle.outcome is not None:
                    decided = cycle
                if decided is not None:
                    # A success leaves the arm where the goal tolerance let it be, possibly
                    # still moving: the hardware goes on to the held last point, and that
                    # motion is checked too (contacts, limits) until the arm is at rest.
                    still = still + 1 if rollout.at_rest() else 0
                    if not decided.outcome.succeeded or still >= SETTLED_CYCLES:
                        break
                if rollout.t + self.period > last_time or rollout.ended_early:
                    break
                rollout.step()
            return rollout.verdict(decided or cycle, tol, horizon, time.perf_counter() - wall0)
        finally:
            self._delay_cycles, self._switch_step, self._switch_weight = latency
            if session is not None:
                session.end()

    def _add_command_latency(self, extra: float) -> None:
        """Delay commands by ``extra`` s more than this predictor models (a what-if's latency),
        by the same rule as the hardware model's latency (see __init__)."""
        base = self.hardware.command_latency if self.hardware is not None \
            else self.command_delay_cycles * self.period
        switch = switch_point(0.0, base + extra, self.world.dt)
        self._delay_cycles, self._switch_step = divmod(switch.step, self.steps_per_cycle)
        self._switch_weight = switch.weight

    def _reset(self, positions: Mapping[str, float],
               velocities: Mapping[str, float]) -> JointSample:
        """Put the world back to its saved state, then the robot at the start state, holding.

        ``positions`` are measured ones (true + the hardware model's offsets); the returned
        sample is the measured state too.
        """
        unknown = sorted((set(positions) | set(velocities)) - set(self._movable))
        if unknown:
            raise ValueError(f'start state names unknown joints {unknown}; movable joints: '
                             f'{self._movable}')
        bad = [j for j, v in (*positions.items(), *velocities.items())
               if not math.isfinite(float(v))]
        if bad:
            raise ValueError(f'start state is not finite for joints {sorted(set(bad))}')
        world = self.world
        world.restore_state(self._initial_state)
        world.steps = 0
        current = dict(zip(self._movable, world.joint_positions(self._movable)))
        offsets = self._start_offsets  # measured -> true (x - 0.0 is x: exact without any)
        true = {n: q - offsets.get(n, 0.0) for n, q in positions.items()}
        world.reset_joints({n: true.get(n, current[n]) for n in self._movable},
                           {n: velocities.get(n, 0.0) for n in self._movable})
        # Motor targets are not part of the saved state: every joint holds its start position.
        held = world.read_state(self._movable)
        world.apply_command(self._movable, positions=held.positions.tolist())
        state = world.read_state(list(self._joints))
        return self._sample(self._measured(state.positions), state.velocities)

    def _measured(self, positions: np.ndarray) -> np.ndarray:
        """True positions of the controller joints as the encoders report them."""
        return positions if self._offsets is None else positions + self._offsets

    def _sample(self, positions: np.ndarray, velocities: np.ndarray) -> JointSample:
        """The measured state as the controller sees it (velocity only with that interface)."""
        n = len(self._joints)
        v = velocities if 'velocity' in self.config.state_interfaces else np.zeros(n)
        return JointSample(positions, v, np.zeros(n))

    def _allowed(self, link: str, other: str) -> bool:
        if other in self._robot_links:  # self-contact: only pairs touching by design
            if frozenset((link, other)) in self.ignored_link_pairs:
                return True
        else:
            root = self.model.root_link
            if link == root or other == root:  # what the robot stands on
                return True
        return any(fnmatchcase(link, a) and fnmatchcase(other, b)
                   for a, b in self.allowed_contacts)


class Rollout:
    """The bookkeeping of one prediction: records, first events, running maxima (public: the
    reaching environment runs the same loop, core/reach_env.py)."""

    def __init__(self, predictor: Predictor, now: float,
                 session: WhatIfSession | None = None) -> None:
        self.p = predictor
        self.now = now
        self.session = session  # a what-if's hooks (Predictor.predict), None: none
        self.ended_early = False  # the what-if ended the rollout (e.g. an emergency stop)
        n = len(predictor._joints)
        self.t = 0.0
        self.times: list[float] = []
        self.positions: list[np.ndarray] = []
        self.velocities: list[np.ndarray] = []
        self.collisions: dict[tuple[str, str], PredictedCollision] = {}
        self.depths: dict[tuple[str, str], float] = {}
        self.violations: dict[tuple[str, str], LimitViolation] = {}
        self.saturated = np.zeros(n, dtype=int)  # consecutive saturated cycles per joint
        self.saturated_since = np.zeros(n)
        self.saturated_value = np.zeros(n)
        self.max_error = 0.0
        self.max_error_joint = ''
        self.pending: deque[Command] = deque()
        self.command_errors: list[str] = []
        #: the command in force, what a switch inside a physics step blends from (only kept
        #: when commands switch inside steps); at first the hold at the true start positions
        self.applied: Command | None = None
        if predictor._switch_weight < 1.0:
            self.applied = Command(positions=np.array(
                predictor.world.joint_positions(predictor._joint_list)))
        limits = predictor._limits
        self.lower = np.array([lim.lower for lim in limits]) - POSITION_LIMIT_SLACK
        self.upper = np.array([lim.upper for lim in limits]) + POSITION_LIMIT_SLACK
        self.vmax = np.array([lim.velocity for lim in limits]) * predictor.velocity_margin
        self.emax = np.array([lim.effort for lim in limits]) * EFFORT_SATURATION
        self.any_saturated = False  # some self.saturated count may be nonzero

    def cycle(self, controller: TrajectoryController) -> CycleResult:
        """One control cycle: measure, check limits, run the control law, queue the command."""
        p, world = self.p, self.p.world
        self.t = world.time
        state = world.read_state(p._joint_list)
        measured = p._measured(state.positions)
        self.times.append(self.t)
        self.positions.append(measured)
        self.velocities.append(state.velocities)
        self._check_limits(state.positions, state.velocities)  # the URDF's limits: true
        seen = (measured, state.velocities)
        if self.session is not None:  # what the controller sees: noise, dropouts
            seen = self.session.measure(self.t, measured, state.velocities)
            self.ended_early = self.session.done(self.t)
        result = controller.update(self.now + self.t, p._sample(*seen), p.period)
        errors = np.abs(result.error.positions).tolist()  # plain floats: cheaper for 6 values
        worst = max(errors)
        if worst > self.max_error:
            self.max_error, self.max_error_joint = worst, p._joints[errors.index(worst)]
        self.pending.append(result.command if self.session is None
                            else self.session.command(self.t, result.command))
        return result

    def at_rest(self) -> bool:
        """Every joint slower than SETTLED_SPEED in the latest cycle (true velocities)."""
        return float(np.abs(self.velocities[-1]).max(initial=0.0)) < SETTLED_SPEED

    def step(self) -> None:
        """Apply the (possibly delayed) command, advance one control period, check contacts.

        The command due in this cycle takes effect at the start of its physics step
        ``Predictor._switch_step``; a switch inside a step (weight < 1) drives that step with
        the time-weighted mean of the command in force and the new one
        (:mod:`~reverse_digital_twin.core.command_latency`).
        """
        p, world = self.p, self.p.world
        if self.session is not None:
            self.session.before_step(self.t, world)
        switches: list[tuple[int, Command]] = []  # (physics step of the cycle, command)
        if len(self.pending) > p._delay_cycles:
            command = self.pending.popleft()
            r, weight = p._switch_step, p._switch_weight
            if r == 0 and weight == 1.0:  # the integer-cycle rule: before the first step
                self._apply(command)
            elif weight == 1.0:
                switches.append((r, command))
            else:
                switches += [(r, _blend(self.applied, command, weight)), (r + 1, command)]
        self._check_effort(self._step_cycle(switches))
        self._check_contacts(world.time)

    def _apply(self, command: Command) -> None:
        """Write a command to the world (the live sim refuses a bad one too and keeps the
        last); with a latency, remember it as the command in force."""
        p, world = self.p, self.p.world
        try:
            world.apply_command(
                p._joint_list,
                positions=None if command.positions is None else command.positions.tolist(),
                velocities=None if command.velocities is None else command.velocities.tolist(),
                efforts=None if command.efforts is None else command.efforts.tolist())
        except ValueError as exc:
            if not self.command_errors:
                self.command_errors.append(
                    f'the sim would refuse a command at {world.time:.2f} s and hold: {exc}')
            return
        if self.applied is not None:
            self.applied = command

    def _advance(self, count: int, done: int, switches: list[tuple[int, Command]]) -> int:
        """Step ``count`` physics steps from step ``done`` of the cycle, applying each switch
        before its step; the steps done after."""
        world, end = self.p.world, done + count
        while done < end:
            while switches and switches[0][0] <= done:
                self._apply(switches.pop(0)[1])
            chunk = min(switches[0][0], end) - done if switches else end - done
            world.step(chunk)
            done += chunk
        return done

    def _step_cycle(self, switches: list[tuple[int, Command]]) -> np.ndarray | None:
        """Step one control period, applying the switches (physics step, command) before their
        steps; the mean effort per joint over its steps where it may be saturated, else 0;
        None when no joint may be.

        Efforts are summed over every physics step: a single sample cannot tell a motor
        pushing against something from one chattering at the limit. A joint's effort is read
        only while every step so far reached the saturation floor (Predictor._effort_floor):
        below it once, the mean cannot reach the threshold. Usually no joint is near it after
        the first step, and the rest of the cycle steps without reading anything. A cycle with
        a command switch inside is the same n steps with other commands: the floor argument
        holds step by step.
        """
        p, world = self.p, self.p.world
        n = p.steps_per_cycle
        indices, torque_joints, floor = p._indices, p._torque_joints, p._effort_floor
        if switches:
            done = self._advance(1, 0, switches)
        else:
            world.step(1)
            done = 1
        sums = world.efforts(indices, torque_joints)
        live = [i for i, e in enumerate(sums) if abs(e) >= floor[i]]
        while live and done < n:
            if switches:
                done = self._advance(1, done, switches)
            else:
                world.step(1)
                done += 1
            efforts = world.efforts(indices, torque_joints)
            for i in live:
                sums[i] += efforts[i]
            live = [i for i in live if abs(efforts[i]) >= floor[i]]
        if done < n:
            if switches:
                self._advance(n - done, done, switches)
            else:
                world.step(n - done)
        for _, command in switches:  # the new command after a switch in the cycle's last step
            self._apply(command)
        switches.clear()
        if not live:
            return None
        mean = np.zeros(len(sums))
        for i in live:
            mean[i] = sums[i] / n
        return mean

    def _check_contacts(self, t: float) -> None:
        objects = self.p.world.object_ids
        for link, other, position, depth in self.p.world.contacts():
            least = -SCENE_CONTACT_MARGIN if other in objects else MIN_CONTACT_DEPTH
            if depth < least or self.p._allowed(link, other):
                continue
            key = (link, other)
            if key not in self.collisions and (other, link) in self.collisions:
                key = (other, link)  # a self-collision seen from the other link
            if key not in self.collisions:
                self.collisions[key] = PredictedCollision(
                    link, other, t, tuple(float(x) for x in position), float(depth))
                self.depths[key] = float(depth)
            else:
                self.depths[key] = max(self.depths[key], float(depth))

    def _check_limits(self, q: np.ndarray, v: np.ndarray) -> None:
        p = self.p
        if (q - self.lower).min() >= 0.0 and (self.upper - q).min() >= 0.0 \
                and (self.vmax - np.abs(v)).min() >= 0.0:
            return  # the usual case, in three vector operations
        for i in np.flatnonzero((q < self.lower) | (q > self.upper)):
            lim = p._limits[i]
            bound = lim.lower if q[i] < self.lower[i] else lim.upper
            self._violation(i, 'position', float(q[i]), bound)
        for i in np.flatnonzero(np.abs(v) > self.vmax):
            self._violation(i, 'velocity', float(v[i]), p._limits[i].velocity)

    def _check_effort(self, effort: np.ndarray | None) -> None:
        """``effort``: mean over the physics steps of the cycle that started at ``self.t``
        (None: no joint saturated)."""
        p, t = self.p, self.t
        if effort is None:
            if self.any_saturated:
                self.saturated[:] = 0
                self.any_saturated = False
            return
        self.any_saturated = True
        saturated = np.abs(effort) >= self.emax
        for i in range(len(saturated)):
            if not saturated[i]:
                self.saturated[i] = 0
                continue
            if self.saturated[i] == 0:
                self.saturated_since[i], self.saturated_value[i] = t, effort[i]
            self.saturated[i] += 1
            if self.saturated[i] * p.period >= EFFORT_SATURATION_TIME - 1e-9:
                self._violation(i, 'effort', float(self.saturated_value[i]),
                                p._limits[i].effort, float(self.saturated_since[i]))

    def _violation(self, i: int, kind: str, value: float, limit: float,
                   t: float | None = None) -> None:
        key = (self.p._joints[i], kind)
        if key not in self.violations:
            self.violations[key] = LimitViolation(key[0], kind, self.t if t is None else t,
                                                  value, float(limit))

    # --- the verdict ------------------------------------------------------------------------
    def verdict(self, last: CycleResult, tolerances: SegmentTolerances, horizon: float,
                wall: float) -> Verdict:
        p = self.p
        collisions = sorted(
            (PredictedCollision(c.link, c.other, c.time, c.position, self.depths[key])
             for key, c in self.collisions.items()), key=lambda c: (c.time, c.link, c.other))
        violations = sorted(self.violations.values(),
                            key=lambda v: (v.time, p._joints.index(v.joint), v.kind))
        reasons = [_describe_collision(c) for c in collisions]
        reasons += [self._describe_violation(v) for v in violations]
        reasons += self.command_errors
        if self.session is not None:
            reasons += self.session.reasons
        outcome = last.outcome
        if outcome is None:
            if not self.ended_early:  # else the what-if said why (its reasons)
                reasons.append(self._describe_no_outcome(last, tolerances, horizon))
        elif not outcome.succeeded:
            reasons.append(f'the controller would abort: {outcome.error_string}')
        safe = not reasons and outcome is not None and outcome.error_code == ErrorCode.SUCCESSFUL
        n = len(p._joints)
        return Verdict(
            safe=safe, reasons=tuple(reasons), collisions=tuple(collisions),
            limit_violations=tuple(violations), outcome=outcome,
            max_tracking_error=self.max_error, max_tracking_error_joint=self.max_error_joint,
            joints=p._joints, times=np.array(self.times),
            positions=np.array(self.positions).reshape(-1, n),
            velocities=np.array(self.velocities).reshape(-1, n),
            duration=p.world.time, computation_time=wall)

    def _describe_violation(self, v: LimitViolation) -> str:
        i = self.p._joints.index(v.joint)
        pos, vel, eff = self.p._units[i]
        if v.kind == 'position':
            lim = self.p._limits[i]
            return (f'position limit: {v.joint} reaches {v.value:+.3f} {pos} at {v.time:.2f} s, '
                    f'outside its limits [{lim.lower:.3f}, {lim.upper:.3f}] {pos}')
        if v.kind == 'velocity':
            return (f'velocity limit: {v.joint} moves at {v.value:+.2f} {vel} at {v.time:.2f} s, '
                    f'over its limit {v.limit:.2f} {vel}')
        span = EFFORT_SATURATION_TIME
        return (f'effort limit: {v.joint} saturates at {v.value:+.1f} {eff} (limit '
                f'{v.limit:.1f} {eff}) from {v.time:.2f} s for >= {span * 1000:.0f} ms: it is '
                'pushing against something or carrying too much')

    def _describe_no_outcome(self, last: CycleResult, tolerances: SegmentTolerances,
                             horizon: float) -> str:
        config = self.p.config
        states, commands = config.state_interfaces, config.command_interfaces
        vel_err = last.error.velocities if 'velocity' in states and (
            'velocity' in commands or 'effort' in commands) else None
        violation = check_tolerances(config.joints, tolerances.goal, last.error.positions,
                                     vel_err)
        why = f': {violation.describe()}' if violation is not None else ''
        return (f'the controller would not report an outcome within {horizon:.2f} s after the '
                f'trajectory end (predicted up to {self.t:.2f} s){why}')


def _blend(old: Command | None, new: Command, weight: float) -> Command:
    """The time-weighted mean of two commands for one physics step (``weight``: new's share).

    A position command without velocities holds them at 0. Commands that drive the joints
    differently (the position hold before a first effort command) cannot be mixed: the step
    gets the one that covers most of it.
    """
    if old is None:
        return new
    fields = ('positions', 'velocities', 'efforts')
    a = [getattr(old, f) for f in fields]
    b = [getattr(new, f) for f in fields]
    if a[0] is not None and b[0] is not None:  # position commands, velocity feed-forward
        if a[1] is None and b[1] is not None:
            a[1] = np.zeros_like(b[1])
        elif b[1] is None and a[1] is not None:
            b[1] = np.zeros_like(a[1])
    if any((x is None) != (y is None) for x, y in zip(a, b)):
        return new if weight >= 0.5 else old
    return Command(*(None if x is None else blend(x, y, weight) for x, y in zip(a, b)))


def _describe_collision(c: PredictedCollision) -> str:
    x, y, z = c.position
    depth = f', {c.depth * 1000:.1f} mm deep' if c.depth >= 0.0005 else ''
    return (f'collision: {c.link} hits {c.other} at {c.time:.2f} s after the start, at '
            f'({x:.3f}, {y:.3f}, {z:.3f}) m in the world frame{depth}')
