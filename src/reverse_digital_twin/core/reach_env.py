"""A Gymnasium reaching environment over the twin's own core: no ROS, the twin's physics and
the emulated controller's control law.

:class:`ReachEnv` puts any configured robot in a world built exactly as the planner's
predictions build theirs (:class:`~reverse_digital_twin.core.prediction.Predictor`: the same
URDF, scene, physics rate, motors, self-collision filter and command timing), and runs the
predictor's own rollout loop: each control cycle measures, runs
:class:`~reverse_digital_twin.core.controller.TrajectoryController` and steps the physics, so a
policy trained here meets the controller it will meet through the driver interface. One action
is one message on the controller's ``joint_trajectory`` topic
(:class:`~reverse_digital_twin.core.reach_task.ReachTask`: targets reached in
``action_period``); it replaces the trajectory at the next control cycle, as a message that
arrives between two updates does, and ``cycles_per_action`` cycles later the policy acts again.

An episode: a start pose and a goal drawn from the episode's seed (both clear of the scene and
of the robot itself by ``clearance``, and the straight joint-space move between them clear too,
so every goal can be reached), at most ``max_steps`` actions; it ends when the goal is reached
(at it for ``hold_steps`` actions in a row: :class:`~.reach_task.Reached`), on a collision
(any contact the predictor counts, the scene's and the robot's own), or when a scenario's
emergency stop ends the run. Reward: progress towards the goal (``progress`` per
``error_scale`` of distance: potential-based, it cannot be farmed), ``near`` x (1 - distance /
error_scale) within error_scale of it (precision pays), ``at_goal`` per action at the goal,
``success`` once reached (plus what the remaining actions at the goal would earn, so that
hovering near the goal never pays more than arriving), minus a small cost per step and per
squared action and minus ``collision`` on a contact.

Domain randomisation: a scenario file (``scenario``: a shipped name or a path, see
core/scenario.py) drawn once per episode from the episode's seed - payload, joint friction and
damping, sensor noise and dropouts, command latency and loss, and whatever else the file holds -
and encoder calibration offsets drawn uniformly in +-``offset_range`` rad per joint (the scenario
format has no offsets): measured = true + offset, commands act in the true frame, as on the
stand-in. Same seed, same episode, bit for bit: the world is restored from one saved state each
reset and every random number comes from the environment's generator.

Optional camera observations (``camera``: a camera of the scene file): a dict observation
``{'state', 'rgb', 'depth'}`` with the camera's RGB (uint8) and depth (float32 m along the optical
axis, far plane where nothing is hit), rendered at each step at ``camera_size``.

Registered as ``ReverseTwin/Reach-v0`` when this module is imported;
:func:`make_vector_env` runs several in worker processes (``gymnasium.vector.AsyncVectorEnv``).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from reverse_digital_twin.core import camera as geometry
from reverse_digital_twin.core.controller import Command, CycleResult, TrajectoryController
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.physics import PhysicsWorld, render_rgb
from reverse_digital_twin.core.planning import DEFAULT_SELF_CLEARANCE, CollisionChecker
from reverse_digital_twin.core.prediction import Predictor
from reverse_digital_twin.core.prediction import Rollout as PredictorRollout
from reverse_digital_twin.core.reach_task import Reached, ReachSettings, ReachTask
from reverse_digital_twin.core.scenario import Scenario, ScenarioRun, load_scenario
from reverse_digital_twin.core.trajectory import JointSample

ENV_ID = 'ReverseTwin/Reach-v0'
#: Joint-space resolution (rad | m) at which the straight move from start to goal is checked.
SEGMENT_RESOLUTION = 0.05
#: Start/goal pairs tried before a reset gives up (a robot boxed in by its scene).
SAMPLING_ATTEMPTS = 500


@dataclass(frozen=True)
class RewardSettings:
    """The reward's weights (see the module docstring)."""

    progress: float = 2.5
    near: float = 0.2
    at_goal: float = 0.5
    time: float = 0.01
    action: float = 0.01
    success: float = 5.0
    collision: float = 10.0


class _Rollout(PredictorRollout):
    """The predictor's rollout - command timing (delay, latency, lost commands), the what-if
    hooks, contacts - without what only a verdict needs: the record of every cycle, the
    running maximum of the tracking error, the URDF limit checks (the task's targets are
    within the limits) and effort saturation (read after every physics step, it costs as much
    as the physics; a reaching episode ends on the contact itself)."""

    def cycle(self, controller: TrajectoryController) -> CycleResult:
        """Measure, run the control law, queue the command (Predictor's cycle, unrecorded)."""
        p = self.p
        self.t = p.world.time
        state = p.world.read_state(p._joint_list)
        seen = (p._measured(state.positions), state.velocities)
        if self.session is not None:  # what the controller sees: offsets, noise, dropouts
            seen = self.session.measure(self.t, *seen)
            self.ended_early = self.session.done(self.t)
        result = controller.update(self.now + self.t, p._sample(*seen), p.period)
        self.pending.append(result.command if self.session is None
                            else self.session.command(self.t, result.command))
        return result

    def _step_cycle(self, switches: list[tuple[int, Command]]) -> None:
        """Step one control period, applying the (delayed) command switches in their steps."""
        n, world = self.p.steps_per_cycle, self.p.world
        if switches:
            self._advance(n, 0, switches)
        else:
            world.step(n)
        for _, command in switches:  # a switch in the cycle's last step
            self._apply(command)
        switches.clear()
        return None


class _Session:
    """One episode's what-if hooks for the predictor's rollout: a scenario draw's
    (:class:`ScenarioRun`) and the episode's encoder offsets."""

    def __init__(self, run: ScenarioRun | None, offsets: np.ndarray | None) -> None:
        self.run = run
        self.offsets = offsets
        self.extra_command_latency = run.extra_command_latency if run is not None else 0.0
        self.reasons: list[str] = run.reasons if run is not None else []

    def measure(self, t: float, positions: np.ndarray,
                velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.offsets is not None:
            positions = positions + self.offsets
        if self.run is not None:
            positions, velocities = self.run.measure(t, positions, velocities)
        return positions, velocities

    def command(self, t: float, command: Command) -> Command:
        return command if self.run is None else self.run.command(t, command)

    def before_step(self, t: float, world: PhysicsWorld) -> None:
        if self.run is not None:
            self.run.before_step(t, world)

    def done(self, t: float) -> bool:
        return self.run is not None and self.run.done(t)

    def end(self) -> None:
        if self.run is not None:
            self.run.end()


class ReachEnv(gymnasium.Env):
    """Reach a goal with a configured robot, through the emulated controller.

    Args:
        robot: a robot configuration (name under config/ or a parameter file).
        goal_kind: 'joints' or 'tip' (overrides ``settings.goal_kind``).
        scenario: a scenario file for domain randomisation (name or path); None: nominal.
        seed: seed of the first reset when it is given none.
        camera: a camera of the robot's scene to observe (None: joint state only).
        camera_size: (width, height) of its images.
        max_steps: actions per episode at most.
        offset_range: rad; encoder offsets drawn uniformly in +- this per joint and episode.
        settings: the task's numbers (:class:`ReachSettings` or a dict of its fields).
        reward: the reward's weights.
        physics_decimation: the Predictor's: 1 (default) steps at the live twin's physics rate,
            the one the policy will meet; None: the coarser rate of the planner's predictions
            (faster, less faithful).
        clearance: m; start poses, goals and the move between them keep this from the scene.
        render_mode: None or 'rgb_array' (a view of the whole world).
    """

    metadata = {'render_modes': ['rgb_array'], 'render_fps': 20}

    def __init__(self, robot: str = 'rdt_arm6', goal_kind: str | None = None,
                 scenario: str | None = None, seed: int | None = None,
                 camera: str | None = None, camera_size: tuple[int, int] = (80, 60),
                 max_steps: int = 60, offset_range: float = 0.0,
                 settings: ReachSettings | dict | None = None,
                 reward: RewardSettings | None = None, physics_decimation: int | None = 1,
                 clearance: float = 0.02, render_mode: str | None = None) -> None:
        from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415 - file access
        from reverse_digital_twin.sweep_cli import predictor_spec  # noqa: PLC0415 - one source
        if render_mode not in (None, 'rgb_array'):
            raise ConfigError(f"render_mode {render_mode!r}: use None or 'rgb_array'")
        if int(max_steps) != max_steps or max_steps < 1:
            raise ConfigError(f'max_steps: expected an integer >= 1, got {max_steps!r}')
        if not (math.isfinite(offset_range) and offset_range >= 0):
            raise ConfigError(f'offset_range: expected a number >= 0 (rad), got {offset_range!r}')
        if isinstance(settings, dict):
            settings = ReachSettings.from_dict(settings)
        settings = settings or ReachSettings()
        if goal_kind is not None:
            settings = ReachSettings.from_dict({**settings.as_dict(), 'goal_kind': goal_kind})
        self.render_mode = render_mode
        self.max_steps = int(max_steps)
        self.offset_range = float(offset_range)
        self.rewards = reward or RewardSettings()
        setup = load_robot(robot)
        self.task = ReachTask.from_setup(robot, setup, settings)
        spec = predictor_spec(setup)
        self.config = spec.config
        if tuple(self.config.joints) != self.task.joints:
            raise ConfigError(f'{setup.config}: controller joints {list(self.config.joints)} '
                              f'differ from the task joints {list(self.task.joints)}')
        self.predictor = Predictor(
            spec.model, spec.urdf_path, spec.scene, spec.physics_rate, spec.update_rate,
            spec.config, spec.motors, command_delay_cycles=spec.command_delay_cycles,
            allowed_contacts=spec.allowed_contacts, initial_positions=spec.initial_positions,
            physics_decimation=physics_decimation)
        if self.predictor._full_rate is not None:  # confirms unsafe verdicts: not needed here
            self.predictor._full_rate.close()
            self.predictor._full_rate = None
        if abs(self.predictor.update_rate - self.task.control_rate) > 1e-9:
            raise ConfigError(f'{setup.config}: the sim update_rate '
                              f'({self.predictor.update_rate} Hz) differs from the '
                              f"controller's ({self.task.control_rate} Hz)")
        self.world = self.predictor.world
        self._latency = (self.predictor._delay_cycles, self.predictor._switch_step,
                         self.predictor._switch_weight)
        self.scenario: Scenario | None = None
        if scenario is not None:
            self.scenario = load_scenario(scenario)
            self.scenario.check_robot(spec.model, list(self.config.joints),
                                      self.config.command_interfaces)
        self._checker = CollisionChecker(self.world, self.task.joints, clearance=clearance,
                                         self_clearance=min(clearance, DEFAULT_SELF_CLEARANCE),
                                         allowed_contacts=spec.allowed_contacts)
        self._query = self._checker.default_query()
        self._camera = self._camera_setup(spec.scene, camera, camera_size)

        n = self.task.action_size
        self.action_space = spaces.Box(-1.0, 1.0, (n,), np.float32)
        state = spaces.Box(-np.inf, np.inf, (self.task.observation_size,), np.float32)
        if self._camera is None:
            self.observation_space = state
        else:
            w, h = self._camera['size']
            self.observation_space = spaces.Dict({
                'state': state,
                'rgb': spaces.Box(0, 255, (h, w, 3), np.uint8),
                'depth': spaces.Box(0.0, self._camera['far'], (h, w), np.float32)})
        self._default_seed = seed
        self._seeded = False
        self._controller: TrajectoryController | None = None
        self._rollout: _Rollout | None = None
        self._session: _Session | None = None
        self._seen: JointSample | None = None
        self.goal = np.zeros(self.task.goal_size)
        self.goal_positions = self.task.home.copy()
        self.draw_description = 'nominal'
        self._steps = 0
        self._distance = 0.0
        self._reached = Reached(self.task)

    # --- the Gymnasium interface ----------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """A new episode. ``options``: ``start`` (joint positions) and/or ``goal`` (in the
        task's goal units) instead of drawn ones."""
        if seed is None and not self._seeded:
            seed = self._default_seed
        super().reset(seed=seed)
        self._seeded = True
        self._end_episode()
        options = options or {}
        rng = self.np_random
        start, goal_q = self._draw_start_goal(rng, options.get('start'), options.get('goal'))
        self.goal_positions = goal_q
        self.goal = self.task.goal_of(goal_q) if options.get('goal') is None \
            else np.asarray(options['goal'], dtype=float)
        if self.goal.shape != (self.task.goal_size,):
            raise ValueError(f'goal: expected {self.task.goal_size} values, got '
                             f'{self.goal.shape}')
        draw_seed = int(rng.integers(2 ** 31))
        offsets = rng.uniform(-self.offset_range, self.offset_range, self.task.action_size) \
            if self.offset_range > 0 else None
        joints = list(self.task.joints)
        p = self.predictor
        measured = p._reset(dict(zip(joints, start.tolist())), {})
        run = None
        self.draw_description = 'nominal'
        if self.scenario is not None:
            duration = self.max_steps * self.task.action_period
            draw = self.scenario.draw(draw_seed, joints, duration)
            path = TrajectoryGoal(joints, [GoalPoint(duration, goal_q.tolist())])
            run = draw.begin(p, path, dict(zip(joints, start.tolist())))
            self.draw_description = draw.describe()
        self._session = _Session(run, offsets) if run is not None or offsets is not None \
            else None
        if self._session is not None and self._session.extra_command_latency:
            p._add_command_latency(self._session.extra_command_latency)
        if offsets is not None:
            measured = JointSample(measured.positions + offsets, measured.velocities,
                                   measured.accelerations)
        self._controller = TrajectoryController(self.config)
        self._controller.update(-p.period, measured, p.period)  # it held the start pose
        self._rollout = _Rollout(p, 0.0, self._session)
        self._seen = self._rollout.cycle(self._controller).feedback
        self._steps = 0
        self._reached.reset()
        self._distance = self.task.distance(self._seen.positions, self.goal)
        return self._observation(), self._info(False, False)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._rollout is None or self._controller is None or self._seen is None:
            raise RuntimeError('call reset() before step()')
        task, rollout, controller = self.task, self._rollout, self._controller
        a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        targets = task.targets_from_action(a, self._seen.positions)
        # What the policy node publishes on joint_trajectory, taken as the controller takes it
        message = TrajectoryGoal(task.joints, [GoalPoint(task.action_period, targets.tolist())])
        if controller.validate(message, rollout.now + rollout.t) is None:
            controller.accept(message)
        result = None
        for _ in range(task.cycles_per_action):
            rollout.step()
            result = rollout.cycle(controller)
            if rollout.collisions or rollout.ended_early:
                break
        assert result is not None
        self._seen = result.feedback
        self._steps += 1
        collision = bool(rollout.collisions)
        self._reached.update(self._seen.positions, self.goal)
        at_goal = not collision and self._reached.count > 0
        success = not collision and self._reached.reached
        distance = task.distance(self._seen.positions, self.goal)
        w = self.rewards
        reward = (w.progress * (self._distance - distance) / task.error_scale - w.time
                  - w.action * float(np.mean(a * a))
                  + w.near * max(0.0, 1.0 - distance / task.error_scale))
        if at_goal:
            reward += w.at_goal
        if success:  # plus what staying at the goal would still have earned: never worth less
            reward += w.success + (self.max_steps - self._steps) * (w.at_goal + w.near)
        if collision:
            reward -= w.collision
        self._distance = distance
        terminated = success or collision
        truncated = not terminated and (self._steps >= self.max_steps or rollout.ended_early)
        return self._observation(), float(reward), terminated, truncated, \
            self._info(success, collision)

    def render(self) -> np.ndarray | None:
        if self.render_mode != 'rgb_array':
            return None
        return render_rgb(self.world, 320, 240)

    def close(self) -> None:
        self._end_episode()
        if getattr(self, 'predictor', None) is not None:
            self.predictor.close()
            self.predictor = None  # type: ignore[assignment]
        super().close()

    # --- parts ----------------------------------------------------------------------------------
    @property
    def positions(self) -> np.ndarray:
        """The joint positions the controller measured last (the policy's view)."""
        assert self._seen is not None, 'call reset() first'
        return self._seen.positions.copy()

    @property
    def true_positions(self) -> np.ndarray:
        """The joint positions in the world now (no offsets, no noise)."""
        return np.array(self.world.joint_positions(list(self.task.joints)))

    def _draw_start_goal(self, rng: np.random.Generator, start: Any,
                         goal: Any) -> tuple[np.ndarray, np.ndarray]:
        """(start, goal joint positions): given, or drawn clear of collisions with a clear
        straight move between them."""
        task = self.task
        if start is not None:
            start = np.asarray(start, dtype=float)
            if start.shape != (task.action_size,):
                raise ValueError(f'start: expected {task.action_size} joint positions')
        if goal is not None:  # a goal given in goal units: aim for it from wherever
            fixed = start if start is not None else task.home.copy()
            return fixed, fixed.copy() if task.goal_kind == 'tip' else \
                np.asarray(goal, dtype=float)
        low_s, high_s = task.sampling_bounds(task.settings.start_range)
        low_g, high_g = task.sampling_bounds(task.settings.goal_range)
        checker, query = self._checker, self._query
        for _ in range(SAMPLING_ATTEMPTS):
            q0 = start if start is not None else rng.uniform(low_s, high_s)
            q1 = rng.uniform(low_g, high_g)
            if task.success(q0, task.goal_of(q1)):
                continue  # already there: not a task
            if checker.violation(q1, query) is not None \
                    or (start is None and checker.violation(q0, query) is not None):
                continue
            if checker.segment_violation(q0, q1, SEGMENT_RESOLUTION, query) is not None:
                continue
            return q0, q1
        raise RuntimeError(f'no clear start and goal found in {SAMPLING_ATTEMPTS} draws: '
                           'is the robot boxed in by its scene? (goal_range, clearance)')

    def _end_episode(self) -> None:
        """Undo the episode's changes to the world (the draw's dynamics, obstacle, latency)."""
        if self._session is not None:
            self._session.end()
            self._session = None
        p = getattr(self, 'predictor', None)
        if p is not None:
            p._delay_cycles, p._switch_step, p._switch_weight = self._latency
        self._rollout = None

    def _observation(self) -> Any:
        assert self._seen is not None
        state = self.task.observation(self._seen.positions, self._seen.velocities, self.goal)
        if self._camera is None:
            return state
        rgb, depth = self._render_camera()
        return {'state': state, 'rgb': rgb, 'depth': depth}

    def _info(self, success: bool, collision: bool) -> dict[str, Any]:
        info: dict[str, Any] = {'success': bool(success), 'collision': bool(collision),
                                'distance': float(self._distance), 'steps': self._steps}
        if collision and self._rollout is not None:
            first = min(self._rollout.collisions.values(), key=lambda c: c.time)
            info['contact'] = f'{first.link} hits {first.other}'
        return info

    # --- the camera -----------------------------------------------------------------------------
    @staticmethod
    def _camera_setup(scene: Any, name: str | None,
                      size: tuple[int, int]) -> dict[str, Any] | None:
        if name is None:
            return None
        cameras = {c.name: c for c in (scene.cameras if scene is not None else ())}
        if name not in cameras:
            raise ConfigError(f'camera {name!r} is not in the scene; its cameras: '
                              f'{sorted(cameras)}')
        spec = cameras[name]
        w, h = (int(v) for v in size)
        if w < 1 or h < 1:
            raise ConfigError(f'camera_size: expected (width, height) >= 1, got {size!r}')
        return {'spec': spec, 'size': (w, h), 'far': float(spec.far),
                'rotation': geometry.rotation_from_rpy(spec.orientation_rpy),
                'projection': geometry.projection_matrix(spec.fov, w / h, spec.near, spec.far)}

    def _render_camera(self) -> tuple[np.ndarray, np.ndarray]:
        """The camera's RGB and depth (m, far plane where nothing is hit) now."""
        cam = self._camera
        assert cam is not None
        spec = cam['spec']
        if spec.link:
            position, quaternion = self.world.link_frame_pose(spec.link)
            position, rotation = geometry.mounted_pose(
                position, geometry.rotation_from_quaternion(quaternion), spec.position,
                cam['rotation'])
        else:
            position, rotation = np.asarray(spec.position, dtype=float), cam['rotation']
        w, h = cam['size']
        rgb, buffer = self.world.render(geometry.view_matrix(position, rotation),
                                        cam['projection'], w, h)
        depth = geometry.depth_from_buffer(buffer, spec.near, spec.far)
        return np.ascontiguousarray(rgb), np.minimum(depth, np.float32(spec.far))


def evaluate(env: ReachEnv, act: Callable[[np.ndarray], np.ndarray],
             seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One episode per seed with a deterministic policy (``act``: observation -> action, e.g.
    :meth:`reverse_digital_twin.core.policy.Policy.act`); the last info of each, with
    ``seed``, ``return`` and the draw's description."""
    results = []
    for seed in seeds:
        obs, info = env.reset(seed=int(seed))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            total += reward
            done = terminated or truncated
        results.append({**info, 'seed': int(seed), 'return': total,
                        'draw': env.draw_description})
    return results


def make_vector_env(n: int, context: str | None = 'forkserver',
                    **kwargs: Any) -> gymnasium.vector.AsyncVectorEnv:
    """``n`` :class:`ReachEnv` (same arguments) in worker processes, stepped in parallel.

    'forkserver' (the default) starts workers from a clean process: forking one that holds
    PyBullet worlds or threads is unsafe. ``reset(seed=s)`` seeds worker i with s + i.
    """
    if int(n) != n or n < 1:
        raise ValueError(f'n: expected an integer >= 1, got {n!r}')
    return gymnasium.vector.AsyncVectorEnv(
        [functools.partial(ReachEnv, **kwargs) for _ in range(int(n))], context=context)


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point='reverse_digital_twin.core.reach_env:ReachEnv')
