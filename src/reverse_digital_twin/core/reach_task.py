"""The reaching task: what a reaching policy observes, what its actions mean, when it is done.

One :class:`ReachTask` is shared by the Gymnasium environment (core/reach_env.py, training and
evaluation) and by the policy node that streams the policy's targets to a robot, so that sim
and ROS agree on every number: the observation layout, the scaling of the actions, the control
rates and the success test. Everything robot-specific comes from the robot's configuration
(joints, URDF limits, home pose, controller rate); nothing is named in code. No ROS, no
PyBullet, no torch: numpy, and the URDF model for the tip's forward kinematics.

**Actions** are ``len(joints)`` numbers in [-1, 1] (clipped), one per controller joint, each a
fraction of the joint's :attr:`ReachTask.max_speed`: the joint position targets are

    targets = clip(positions + action * max_speed * action_period, URDF lower, URDF upper)

relative to the measured positions the observation was made from. A policy streams them as a
``trajectory_msgs/JointTrajectory`` on the controller's ``joint_trajectory`` topic: the
controller joints, one point, ``positions = targets``, ``time_from_start = action_period``
(:attr:`ReachTask.action_period`: ``cycles_per_action`` control cycles at the controller's
``update_rate``), header stamp 0 (start now). The controller interpolates from its measured
state to the targets at its own rate, and the next message replaces the trajectory, again
from the measured state (so a joint moves at up to ``max_speed``: about 0.7 x at 100 Hz and 5
cycles per action, the measured state lagging the command). The environment applies every
action exactly so, through the emulated controller's control law.

**Observations** (float32, :attr:`ReachTask.observation_size` values), for ``n`` joints:

- goal kind ``'joints'`` (the goal: ``n`` joint positions):
  ``[(q - home) / goal_range, v / velocity_limit, (goal - home) / goal_range,
  (goal - q) / error_scale]`` - 4n values;
- goal kind ``'tip'`` (the goal: a tip position, 3 values in the world frame, m):
  ``[(q - home) / goal_range, v / velocity_limit, (tip - home_tip) / position_scale,
  (goal - home_tip) / position_scale, (goal - tip) / error_scale]`` - 2n + 9 values,
  ``tip`` being the tip link's origin at ``q`` (forward kinematics of the URDF, the robot where
  the scene puts it).

``q``, ``v`` are the measured joint positions and velocities (the controller's view: encoder
offsets and noise included), in controller joint order.

**Success** (:meth:`ReachTask.success`): every joint within ``tolerance`` rad (m) of the goal
(``'joints'``) or the tip within ``tolerance`` m of it (``'tip'``), and, when velocities are
given, no joint faster than ``settle_velocity``. **Reached**: success (positions only) after
``hold_steps`` actions in a row: the arm arrived and stays, it did not pass through
(:class:`Reached` counts them, for the environment and the policy node alike).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.kinematics import Kinematics, tip_link
from reverse_digital_twin.core.robot_model import RobotModel

if TYPE_CHECKING:
    from reverse_digital_twin.robot_setup import RobotSetup

GOAL_KINDS = ('joints', 'tip')
#: Velocity limit used for scaling (rad/s | m/s) where the URDF gives none.
UNLIMITED_VELOCITY = 10.0
#: Position limits used for sampling where the URDF gives none (continuous joints): home +- this.
UNBOUNDED_RANGE = math.pi


@dataclass(frozen=True)
class ReachSettings:
    """The task's numbers: what a policy was trained with, saved in its file to rebuild the task.

    Attributes:
        goal_kind: 'joints' (a joint-space goal) or 'tip' (a tip position goal).
        cycles_per_action: control cycles per action (the policy rate is the controller's
            update_rate / this; 5 at 100 Hz: 20 Hz, inside the 10-50 Hz streamed trajectories
            are meant for).
        speed_fraction: the joint speed at |action| = 1, as a fraction of the URDF velocity
            limit (below 1: the controller's path tolerance and the velocity limit keep a
            margin).
        goal_range: rad (m): goals are drawn within home +- this (and the URDF limits).
        start_range: rad (m): start poses are drawn within home +- this.
        tolerance: rad (m) per joint ('joints') or m at the tip ('tip'); None: the kind's
            default (0.03 rad, 0.02 m).
        settle_velocity: rad/s (m/s): the fastest joint speed that counts as arrived.
        hold_steps: actions in a row the arm must be at the goal (:meth:`ReachTask.success`
            without velocities) to have reached it: it arrived and stays, not passed through.
        error_scale: the goal error's scale in the observation; None: the kind's default
            (0.25 rad, 0.1 m).
        position_scale: m, the scale of tip positions in the observation ('tip').
    """

    goal_kind: str = 'joints'
    cycles_per_action: int = 5
    speed_fraction: float = 0.5
    goal_range: float = 0.8
    start_range: float = 0.3
    tolerance: float | None = None
    settle_velocity: float = 0.2
    hold_steps: int = 5
    error_scale: float | None = None
    position_scale: float = 0.5

    def __post_init__(self) -> None:
        if self.goal_kind not in GOAL_KINDS:
            raise ConfigError(f'reach task goal_kind: {self.goal_kind!r}; use one of '
                              f'{list(GOAL_KINDS)}')
        if isinstance(self.cycles_per_action, bool) or int(self.cycles_per_action) \
                != self.cycles_per_action or self.cycles_per_action < 1:
            raise ConfigError(f'reach task cycles_per_action: expected an integer >= 1, got '
                              f'{self.cycles_per_action!r}')
        for name in ('speed_fraction', 'goal_range', 'settle_velocity', 'position_scale'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f'reach task {name}: expected a number > 0, got {value!r}')
        for name in ('tolerance', 'error_scale'):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float))
                                          and math.isfinite(value) and value > 0):
                raise ConfigError(f'reach task {name}: expected a number > 0 or None, got '
                                  f'{value!r}')
        if isinstance(self.hold_steps, bool) or int(self.hold_steps) != self.hold_steps \
                or self.hold_steps < 1:
            raise ConfigError(f'reach task hold_steps: expected an integer >= 1, got '
                              f'{self.hold_steps!r}')
        if not (math.isfinite(self.start_range) and self.start_range >= 0):
            raise ConfigError(f'reach task start_range: expected a number >= 0, got '
                              f'{self.start_range!r}')

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> 'ReachSettings':
        """Rebuild from :meth:`as_dict` (a policy file's meta); unknown keys are refused."""
        known = {f.name for f in fields(ReachSettings)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f'reach task settings: unknown keys {unknown}; known: '
                              f'{sorted(known)}')
        return ReachSettings(**dict(data))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReachTask:
    """Observation layout, action meaning and success test of reaching for one robot.

    Args:
        robot: the robot's configuration (a name under config/ or a path), as recorded in a
            policy file.
        model: its URDF model.
        joints: the controller's joints (action and observation order).
        home: their home positions.
        control_rate: the controller's update_rate (Hz).
        settings: the task's numbers.
        base_position, base_orientation_rpy: where the scene puts the robot (tip goals).
        other_positions: positions of movable joints the controller does not command (e.g. a
            gripper's fingers), for the tip's forward kinematics.
    """

    def __init__(self, robot: str, model: RobotModel, joints: Sequence[str],
                 home: Sequence[float], control_rate: float,
                 settings: ReachSettings = ReachSettings(),
                 base_position: Sequence[float] = (0.0, 0.0, 0.0),
                 base_orientation_rpy: Sequence[float] = (0.0, 0.0, 0.0),
                 other_positions: Mapping[str, float] | None = None) -> None:
        if not (control_rate > 0 and math.isfinite(control_rate)):
            raise ConfigError(f'reach task: control_rate must be a positive number of Hz, got '
                              f'{control_rate}')
        self.robot = str(robot)
        self.model = model
        self.joints: tuple[str, ...] = tuple(joints)
        model.check_joints(list(self.joints), 'reach task joints')
        self.settings = settings
        self.goal_kind = settings.goal_kind
        self.control_rate = float(control_rate)
        self.cycles_per_action = int(settings.cycles_per_action)
        limits = [model.joint(j).limits for j in self.joints]
        self.home = np.array(home, dtype=float)
        if self.home.shape != (len(self.joints),):
            raise ConfigError(f'reach task: {len(self.home)} home positions for '
                              f'{len(self.joints)} joints')
        #: URDF position limits; targets are clipped to them
        self.lower = np.array([lim.lower for lim in limits], dtype=float)
        self.upper = np.array([lim.upper for lim in limits], dtype=float)
        self.velocity_limit = np.array([lim.velocity if math.isfinite(lim.velocity)
                                        else UNLIMITED_VELOCITY for lim in limits])
        #: rad/s (m/s) per joint at |action| = 1
        self.max_speed = settings.speed_fraction * self.velocity_limit
        self.tolerance = float(settings.tolerance if settings.tolerance is not None
                               else 0.03 if self.goal_kind == 'joints' else 0.02)
        self.error_scale = float(settings.error_scale if settings.error_scale is not None
                                 else 0.25 if self.goal_kind == 'joints' else 0.1)
        self.tip_link = tip_link(model)
        self._kinematics = Kinematics(model, base_position, base_orientation_rpy)
        self._others = {k: float(v) for k, v in (other_positions or {}).items()
                        if k not in self.joints}
        self.home_tip = self.tip_position(self.home)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_robot(cls, robot: str, settings: ReachSettings | None = None,
                   **overrides: Any) -> 'ReachTask':
        """The task for a configured robot (a name under config/ or a parameter file):
        its controller's joints and update_rate, URDF limits, home pose and scene placement.
        ``overrides`` replace fields of ``settings`` (e.g. ``goal_kind='tip'``)."""
        from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415 - file access
        return cls.from_setup(robot, load_robot(robot), settings, **overrides)

    @classmethod
    def from_setup(cls, robot: str, setup: 'RobotSetup', settings: ReachSettings | None = None,
                   **overrides: Any) -> 'ReachTask':
        """:meth:`from_robot` for a configuration already read (``robot`` names it)."""
        settings = replace(settings or ReachSettings(), **overrides)
        scene = setup.scene()
        rate = float(setup.controller.get('update_rate', setup.sim.get('update_rate', 100.0)))
        initial = setup.initial_positions
        return cls(robot, setup.model(), setup.joints, setup.home, rate, settings,
                   scene.robot_position if scene else (0.0, 0.0, 0.0),
                   scene.robot_orientation_rpy if scene else (0.0, 0.0, 0.0),
                   {j: q for j, q in initial.items() if j not in setup.joints})

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> 'ReachTask':
        """The task a policy was trained for, from its file's meta (:meth:`meta`): the same
        robot configuration and settings; its joints must be the ones recorded."""
        task = cls.from_robot(str(meta['robot']), ReachSettings.from_dict(meta['task']))
        recorded = tuple(meta.get('joints', task.joints))
        if recorded != task.joints:
            raise ConfigError(f'the policy was trained for joints {list(recorded)}, robot '
                              f'{task.robot!r} has {list(task.joints)}')
        return task

    def meta(self) -> dict[str, Any]:
        """What rebuilds this task (:meth:`from_meta`), for a policy file."""
        return {'robot': self.robot, 'joints': list(self.joints),
                'control_rate': self.control_rate, 'task': self.settings.as_dict()}

    # --- sizes and rates ------------------------------------------------------------------------
    @property
    def action_size(self) -> int:
        return len(self.joints)

    @property
    def goal_size(self) -> int:
        return len(self.joints) if self.goal_kind == 'joints' else 3

    @property
    def observation_size(self) -> int:
        n = len(self.joints)
        return 4 * n if self.goal_kind == 'joints' else 2 * n + 9

    @property
    def action_period(self) -> float:
        """s between actions: ``time_from_start`` of the streamed point."""
        return self.cycles_per_action / self.control_rate

    @property
    def policy_rate(self) -> float:
        """Actions per second (Hz)."""
        return self.control_rate / self.cycles_per_action

    # --- the contract -------------------------------------------------------------------------
    def observation(self, positions: np.ndarray, velocities: np.ndarray,
                    goal: np.ndarray) -> np.ndarray:
        """The policy's input (float32, see the module docstring for the layout)."""
        q = np.asarray(positions, dtype=float)
        v = np.asarray(velocities, dtype=float)
        g = np.asarray(goal, dtype=float)
        self._check(q, 'positions')
        self._check(v, 'velocities')
        if g.shape != (self.goal_size,):
            raise ValueError(f'goal: expected {self.goal_size} values ({self.goal_kind} goal), '
                             f'got shape {g.shape}')
        scale = self.settings.goal_range
        parts = [(q - self.home) / scale, v / self.velocity_limit]
        if self.goal_kind == 'joints':
            parts += [(g - self.home) / scale, (g - q) / self.error_scale]
        else:
            tip = self.tip_position(q)
            ps = self.settings.position_scale
            parts += [(tip - self.home_tip) / ps, (g - self.home_tip) / ps,
                      (g - tip) / self.error_scale]
        return np.concatenate(parts).astype(np.float32)

    def targets_from_action(self, action: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Joint position targets for one action (see the module docstring), in controller
        joint order, within the URDF limits."""
        a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        q = np.asarray(positions, dtype=float)
        self._check(a, 'action')
        self._check(q, 'positions')
        if not np.all(np.isfinite(a)):
            raise ValueError(f'action is not finite: {a.tolist()}')
        return np.clip(q + a * self.max_speed * self.action_period, self.lower, self.upper)

    def success(self, positions: np.ndarray, goal: np.ndarray,
                velocities: np.ndarray | None = None) -> bool:
        """At the goal within the tolerance (and settled, when velocities are given)."""
        q = np.asarray(positions, dtype=float)
        g = np.asarray(goal, dtype=float)
        if self.goal_kind == 'joints':
            reached = float(np.max(np.abs(g - q))) <= self.tolerance
        else:
            reached = float(np.linalg.norm(g - self.tip_position(q))) <= self.tolerance
        if not reached or velocities is None:
            return reached
        return float(np.max(np.abs(np.asarray(velocities, dtype=float)))) \
            <= self.settings.settle_velocity

    def distance(self, positions: np.ndarray, goal: np.ndarray) -> float:
        """How far from the goal: joint-space Euclidean (rad) or tip distance (m)."""
        q = np.asarray(positions, dtype=float)
        g = np.asarray(goal, dtype=float)
        if self.goal_kind == 'joints':
            return float(np.linalg.norm(g - q))
        return float(np.linalg.norm(g - self.tip_position(q)))

    def goal_of(self, positions: np.ndarray) -> np.ndarray:
        """The goal that means "be at these joint positions": the positions themselves, or
        where the tip is there."""
        q = np.asarray(positions, dtype=float)
        return q.copy() if self.goal_kind == 'joints' else self.tip_position(q)

    def tip_position(self, positions: np.ndarray) -> np.ndarray:
        """World position (3,) m of the tip link's origin at these controller positions."""
        return self._kinematics.link_path(self.tip_link, self.joints,
                                          np.asarray(positions, dtype=float)[None, :],
                                          self._others)[0]

    def sampling_bounds(self, around: float) -> tuple[np.ndarray, np.ndarray]:
        """(low, high): home +- ``around`` within the URDF limits (home +- UNBOUNDED_RANGE
        where the URDF gives none)."""
        lower = np.where(np.isfinite(self.lower), self.lower, self.home - UNBOUNDED_RANGE)
        upper = np.where(np.isfinite(self.upper), self.upper, self.home + UNBOUNDED_RANGE)
        return np.maximum(self.home - around, lower), np.minimum(self.home + around, upper)

    def _check(self, values: np.ndarray, what: str) -> None:
        if values.shape != (len(self.joints),):
            raise ValueError(f'{what}: expected {len(self.joints)} values (joints '
                             f'{list(self.joints)}), got shape {values.shape}')


class Reached:
    """Counts the actions in a row at the goal; reached after ``hold_steps`` of them."""

    def __init__(self, task: ReachTask) -> None:
        self.task = task
        self.count = 0

    def update(self, positions: np.ndarray, goal: np.ndarray) -> bool:
        """After an action: at the goal now? Returns whether the goal is reached."""
        self.count = self.count + 1 if self.task.success(positions, goal) else 0
        return self.reached

    @property
    def reached(self) -> bool:
        return self.count >= self.task.settings.hold_steps

    def reset(self) -> None:
        self.count = 0
