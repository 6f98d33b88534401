"""Planner node: the twin's predictions and motions, in a process of their own.

Answers ``~/predict_trajectory`` (rdt_interfaces/srv/PredictTrajectory) from a pool of worker
processes (:mod:`reverse_digital_twin.core.prediction_pool`), each rolling goals out in its own
PyBullet world with the twin's robot, scene, rates, motors and controller configuration, so
the twin's physics never waits on a prediction and several predictions run at once. A request
without a start state starts from the twin's latest measured state (its ``joint_states``).
Serves ``~/move_to`` (rdt_interfaces/action/MoveTo, :mod:`.move_to`): plan, predict, and send
the motion to the bridge like any other client.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import JointState

from rdt_interfaces.srv import PredictTrajectory

from reverse_digital_twin.core.controller_config import controller_config
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.paths import resolve
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.prediction import Verdict
from reverse_digital_twin.core.prediction_pool import DeadlinePolicy, PredictionError
from reverse_digital_twin.core.prediction_pool import PredictionPool, PredictionRequest
from reverse_digital_twin.core.prediction_pool import PredictorSpec, failed_verdict
from reverse_digital_twin.core.prediction_pool import start_forkserver
from reverse_digital_twin.core.robot_model import load_robot_model
from reverse_digital_twin.core.scene import Scene, load_scene
from reverse_digital_twin.core.tolerances import apply_goal_tolerances
from reverse_digital_twin.core.planning import DEFAULT_CLEARANCE, DEFAULT_SELF_CLEARANCE
from reverse_digital_twin.core.planning import DEFAULT_TIMEOUT, CollisionChecker
from reverse_digital_twin.core.scenario import Scenario, load_scenario
from reverse_digital_twin.core.sweep import SweepError, SweepJob, run_sweep, sweep_outcome
from reverse_digital_twin.nodes.awaiting import in_thread
from reverse_digital_twin.nodes.move_to import MoveToServer, PlanningSettings
from reverse_digital_twin.nodes.side_executor import SideExecutor
from reverse_digital_twin.nodes.ros_common import CALIBRATION_PARAMETER, declare_calibration
from reverse_digital_twin.nodes.ros_common import declare_motor_settings
from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS, check_unknown_parameters
from reverse_digital_twin.nodes.ros_common import declare, goal_from_msg, seconds
from reverse_digital_twin.nodes.ros_common import tolerance_requests
from reverse_digital_twin.nodes.verdict_msg import verdict_msg
from reverse_digital_twin.stack import PLANNER_NODE
from reverse_digital_twin.ros_params import read_node_parameters


def contact_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``'link:other, ...'`` -> ((link, other), ...), refusing malformed items."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(','))):
        link, sep, other = item.partition(':')
        if not sep or not link or not other:
            raise ConfigError(f"parameter prediction.allowed_contacts: {item!r} is not "
                              "'robot_link:other'")
        pairs.append((link, other))
    return tuple(pairs)


@dataclass(frozen=True)
class TwinState:
    """The twin's latest measured state (joint -> value) and its stamp (the twin's clock, s)."""

    positions: dict[str, float]
    velocities: dict[str, float]
    stamp: float


class PlannerNode(Node):
    """Predictions in worker processes kept in step with the twin; ``~/move_to`` motions."""

    def __init__(self, **kwargs) -> None:
        super().__init__(PLANNER_NODE, **kwargs)
        urdf = declare(self, 'robot_description_file', '',
                       "The twin's URDF (or .xacro): absolute, relative to the working directory "
                       'or the package share, pybullet_data:<path> or package://<pkg>/<path>',
                       read_only=True)
        scene_file = declare(self, 'scene_file', '',
                             "The twin's scene YAML (empty: robot alone)", read_only=True)
        physics_rate = float(declare(self, 'physics_rate', 1000.0,
                                     "The twin's physics steps per simulated second (Hz)", True))
        update_rate = float(declare(self, 'update_rate', 100.0,
                                    "The twin's control cycles per simulated second (Hz)", True))
        lockstep = bool(declare(self, 'lockstep', False,
                                'Whether the twin runs in lockstep (a command then acts in its '
                                'own cycle, else one cycle later)', True))
        motors = declare_motor_settings(self, "The twin's ")
        controller_file = declare(
            self, 'controller_parameters_file', '',
            'Parameter file whose controller section the predictions mirror', read_only=True)
        controller_name = declare(self, 'controller_name', 'joint_trajectory_controller',
                                  'Node name of that controller section', read_only=True)
        allowed = declare(self, 'prediction.allowed_contacts', '',
                          "Comma-separated 'robot_link:other' pairs that are not collisions "
                          '(fnmatch patterns); the root link may always touch its support',
                          read_only=True)
        workers = declare(self, 'prediction.workers', 2,
                          'Prediction worker processes (predictions answered in parallel)', True)
        min_speed = float(declare(
            self, 'prediction.min_speed', 1.0,
            'Slowest rollout speed assumed (simulated s per wall s): a prediction taking '
            'longer than (duration + start delay + settling) / min_speed + 2 s is killed', True))
        max_time = float(declare(self, 'prediction.max_time', 600.0,
                                 'Hard cap on the wall time of one prediction (s)', True))
        twin_joint_states = declare(
            self, 'twin_joint_states', 'joint_states',
            "The twin's joint_states: predictions without a start state start from the latest",
            read_only=True)
        bridge_controller = declare(
            self, 'bridge_controller', '/joint_trajectory_controller',
            'Where ~/move_to sends its motions: the bridge (or a controller without one)',
            read_only=True)
        move_start = declare(
            self, 'move_to_start_joint_states', '/joint_states',
            "joint_states a ~/move_to motion starts from (the bridge relays the active "
            "target's); '' = the twin's own state", read_only=True)
        self.planning = PlanningSettings(
            clearance=float(declare(
                self, 'planning.clearance', DEFAULT_CLEARANCE,
                '~/move_to paths keep robot links this far from scene objects (m)', True)),
            self_clearance=float(declare(
                self, 'planning.self_clearance', DEFAULT_SELF_CLEARANCE,
                '~/move_to paths keep robot links this far from each other (m)', True)),
            timeout=float(declare(
                self, 'planning.timeout', DEFAULT_TIMEOUT,
                'Wall time a ~/move_to path search may take before it gives up (s)', True)),
            seed=int(declare(self, 'planning.seed', 0,
                             'Seed of the path search: the same request gets the same path',
                             True)))
        for name, value, least in (('planning.clearance', self.planning.clearance, 0.0),
                                   ('planning.self_clearance', self.planning.self_clearance,
                                    0.0),
                                   ('planning.timeout', self.planning.timeout, 1e-3)):
            if not (value >= least and math.isfinite(value)):
                raise ConfigError(f'parameter {name} must be a finite number >= {least:g}, '
                                  f'got {value}')
        self._allowed_contacts = contact_pairs(allowed)
        sweep_file = declare(
            self, 'sweep.scenario_file', '',
            "Scenario file (or a name from config/scenarios) of the risk sweeps the bridge asks "
            "for with min_success_probability ('' = none: such goals are refused)",
            read_only=True)
        self.sweep_seed = int(declare(self, 'sweep.seed', 0,
                                      'Seed of the risk sweeps: the same goal gets the same '
                                      'draws', True))
        self.sweep_workers = int(declare(self, 'sweep.workers', 2,
                                         'Worker processes of a risk sweep', True))
        if self.sweep_workers < 1:
            raise ConfigError(f'parameter sweep.workers must be >= 1, got {self.sweep_workers}')
        self.scenario: Scenario | None = None
        if sweep_file:
            try:
                self.scenario = load_scenario(sweep_file)
            except ConfigError as exc:
                raise ConfigError(f'parameter sweep.scenario_file: {exc}') from None
        for name, value in (('physics_rate', physics_rate), ('update_rate', update_rate)):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f'parameter {name} must be a positive number of Hz, got {value}')
        if not urdf:
            raise ConfigError('parameter robot_description_file is empty: set it to the twin\'s '
                              'URDF (the graph passes the sim node\'s)')
        if not controller_file:
            raise ConfigError('parameter controller_parameters_file is empty: the predictions '
                              'mirror that file\'s controller section')
        urdf_path = resolve(urdf, 'robot_description_file')
        self.model = load_robot_model(urdf_path)
        scene = load_scene(resolve(scene_file, 'scene_file')) if scene_file else Scene()
        self.joints = [j.name for j in self.model.movable_joints]
        initial = {j: float(declare(self, f'initial_positions.{j}', 0.0,
                                    f"Position of {j} at the twin's start (rad or m)", True))
                   for j in self.joints}
        self.calibration = declare_calibration(
            self, self.joints, 'predictions model the hardware with it: its payload, extra '
            'damping and friction, command latency (replacing the one-cycle delay without '
            'lockstep) and encoder offsets (start states and predicted positions are measured '
            'ones)')
        check_unknown_parameters(self)
        self.controller_config = controller_config(
            read_node_parameters(resolve(controller_file, 'controller_parameters_file'),
                                 controller_name), self.model,
            f'{controller_file} [{controller_name}]')
        spec = PredictorSpec(self.model, str(urdf_path), scene, physics_rate, update_rate,
                             self.controller_config, motors,
                             command_delay_cycles=0 if lockstep else 1,
                             allowed_contacts=contact_pairs(allowed),
                             initial_positions=initial,
                             hardware=None if self.calibration is None
                             else self.calibration.hardware)
        try:
            deadline = DeadlinePolicy(min_speed=min_speed, max_time=max_time)
        except ConfigError as exc:
            raise ConfigError(f'parameters prediction.min_speed/max_time: {exc}') from None
        self.pool = PredictionPool(spec, workers=workers, deadline=deadline)
        self._spec = spec
        if self.scenario is not None:
            try:
                self.scenario.check_robot(self.model, list(self.controller_config.joints),
                                          list(self.controller_config.command_interfaces))
            except ConfigError as exc:
                raise ConfigError(f'parameter sweep.scenario_file: {exc}') from None
        self._ik_args = (self.model, str(urdf_path), scene, physics_rate, motors, initial)
        self._ik_world: PhysicsWorld | None = None
        self._checker: CollisionChecker | None = None
        self._initial = initial
        self._state: TwinState | None = None
        self._state_lock = threading.Lock()
        self._state_ready = threading.Event()  # set by the twin's first state
        group = ReentrantCallbackGroup()  # predictions answer concurrently
        # The twin's 100 Hz joint states on a thread of their own (see side_executor): on this
        # node's multi-threaded executor each would wake every entity of it
        self._twin_state = SideExecutor(self, 'twin_state')
        self._twin_state.subscribe(JointState, self.resolve_topic_name(twin_joint_states),
                                   self._on_twin_state, SYSTEM_DEFAULT_QOS)
        self._start_args = (group, bridge_controller, move_start)
        self.move_to: MoveToServer | None = None
        self.get_logger().info(
            f'{self.model.name}: {workers} prediction worker(s), predictions start from '
            f'{self.resolve_topic_name(twin_joint_states)} when a request has no start state')
        if self.calibration is not None:
            hardware = self.calibration.hardware
            self.get_logger().info(
                f'predictions model the hardware of calibration '
                f'{self.get_parameter(CALIBRATION_PARAMETER).value}: payload '
                f'{hardware.payload_mass:g} kg, command latency '
                f'{hardware.command_latency * 1e3:.2f} ms, encoder offsets '
                f'{ {j: v for j, v in hardware.joint_offsets.items() if v} or "none"}, '
                f'friction { {j: v for j, v in hardware.joint_friction.items() if v} or "none"}')

    def start(self) -> None:
        """Launch the workers (each builds its world), then serve."""
        self.pool.start()
        self._twin_state.start()
        group, bridge_controller, move_start = self._start_args
        self.create_service(PredictTrajectory, '~/predict_trajectory', self._on_predict,
                            callback_group=group)
        self.move_to = MoveToServer(self, bridge_controller, move_start)
        self.get_logger().info(f'{self.pool.size} prediction worker(s) ready')

    def stop(self) -> None:
        self._twin_state.stop()
        if self.move_to is not None:
            self.move_to.destroy()
        self.pool.close()
        if self._ik_world is not None:
            self._ik_world.close()

    @property
    def ik_world(self) -> PhysicsWorld:
        """A private world for ~/move_to's inverse kinematics and path search, built on first
        use."""
        if self._ik_world is None:
            self._ik_world = PhysicsWorld(*self._ik_args)
        return self._ik_world

    @property
    def checker(self) -> CollisionChecker:
        """Collision and clearance checks of ~/move_to paths in :attr:`ik_world` (the twin's
        scene; the contacts predictions allow are allowed here too)."""
        if self._checker is None:
            self._checker = CollisionChecker(
                self.ik_world, list(self.controller_config.joints), self.planning.clearance,
                self.planning.self_clearance, self._allowed_contacts, home=self._initial)
        return self._checker

    # --- the twin's state -----------------------------------------------------------------------
    def _on_twin_state(self, msg: JointState) -> None:
        with_velocity = len(msg.velocity) == len(msg.name)
        state = TwinState(dict(zip(msg.name, map(float, msg.position))),
                          dict(zip(msg.name, map(float, msg.velocity))) if with_velocity else {},
                          seconds(msg.header.stamp))
        with self._state_lock:
            self._state = state
        self._state_ready.set()

    def twin_state(self) -> TwinState | None:
        """The twin's latest measured state; None before the first message."""
        with self._state_lock:
            return self._state

    def twin_time(self) -> float:
        """The twin's clock at its latest state (s); 0 before the first message."""
        state = self.twin_state()
        return state.stamp if state is not None else 0.0

    # --- predictions ----------------------------------------------------------------------------
    async def predict(self, request: PredictionRequest) -> Verdict:
        """The pool's verdict, awaited without blocking the executor.

        Raises PredictionError for a request the workers cannot predict (bad start state)."""
        done: Future = Future(executor=self.executor)
        done.add_done_callback(lambda _: None)  # completing it wakes the executor
        pending: ConcurrentFuture = self.pool.submit(request)
        pending.add_done_callback(lambda f: done.set_result(f))
        return (await done).result()

    async def _on_predict(self, request: PredictTrajectory.Request,
                          response: PredictTrajectory.Response) -> PredictTrajectory.Response:
        """Roll the trajectory out from the given, or the twin's latest, state."""
        joints = self.controller_config.joints
        verdict: Verdict | None = None
        start_error = None
        if request.start_state.name:
            start = request.start_state
            start_error = start_state_error(start)
            positions = dict(zip(start.name, map(float, start.position)))
            velocities = dict(zip(start.name, map(float, start.velocity))) \
                if start.velocity else {}
            now = seconds(start.header.stamp)
        else:
            state = self.twin_state()
            if state is None:  # just started: the twin's first state may be on its way
                await in_thread(self, lambda: self._state_ready.wait(FIRST_STATE_WAIT),
                                'first_twin_state')
                state = self.twin_state()
            if state is None:
                verdict = failed_verdict(joints, 'no state from the twin yet (is the sim '
                                         'running?); the goal was not checked')
            else:
                positions, velocities, now = state.positions, state.velocities, state.stamp
        if verdict is None:
            tolerances, why = apply_goal_tolerances(
                self.controller_config.default_tolerances, joints,
                tolerance_requests(request.path_tolerance),
                tolerance_requests(request.goal_tolerance),
                seconds(request.goal_time_tolerance))
            if why is not None:
                self.get_logger().warning(f'prediction uses the default tolerances: {why}')
            goal = goal_from_msg(request.trajectory)
            prediction = PredictionRequest(goal, positions, velocities, tolerances, now)
            too_long = self.pool.deadline.beyond_max_time(
                prediction, self.controller_config.default_tolerances.goal_time)
            if start_error is not None or too_long is not None:
                verdict = failed_verdict(joints, start_error or too_long)
            else:
                try:
                    verdict = await self.predict(prediction)
                except PredictionError as exc:
                    verdict = failed_verdict(joints, f'could not predict the goal: {exc}')
            if request.sweep_rollouts > 0:
                if not verdict.safe:
                    response.sweep_summary = 'not swept: the nominal prediction is unsafe'
                elif self.scenario is None:
                    response.sweep_summary = 'the planner has no sweep.scenario_file'
                else:
                    job = SweepJob(self._spec, self.scenario, goal, positions,
                                   self.sweep_seed, tolerances)
                    try:
                        results, _ = await in_thread(self, lambda: run_sweep(
                            job, int(request.sweep_rollouts), self.sweep_workers),
                            'risk_sweep')
                    except (ConfigError, SweepError) as exc:
                        response.sweep_summary = f'the sweep failed: {exc}'
                    else:
                        response.success_probability, response.sweep_summary = \
                            sweep_outcome(results, self.scenario.name, self.sweep_seed)
        response.verdict = verdict_msg(verdict, self.twin_time())
        self.get_logger().info(
            f'predicted {verdict.duration:.2f} s in {verdict.computation_time * 1e3:.0f} ms: '
            f'{"safe" if verdict.safe else verdict.summary}'
            + (f'; {response.sweep_summary}' if response.sweep_summary else ''))
        return response


def start_state_error(state: JointState) -> str | None:
    """Why a request's start state cannot be a start (arrays not one value per name), or
    None. Without it, the joints a short ``position`` leaves out would start from the
    twin's initial positions, and a prediction from a state nobody measured be called safe."""
    n = len(state.name)
    for field_name in ('position', 'velocity'):
        size = len(getattr(state, field_name))
        if size != n and (field_name == 'position' or size):
            return (f'the start state has {size} {field_name} values for {n} joint names '
                    f'{list(state.name)}; the goal was not checked')
    return None


#: s a prediction without a start state waits for the twin's first state (a planner just started)
FIRST_STATE_WAIT = 5.0


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin planner --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    start_forkserver()  # before rclpy's signal handlers: the workers ignore Ctrl-C
    return run_node(PlannerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
