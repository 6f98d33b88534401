"""Bridge node: the driver interface clients talk to, in front of the twin and the hardware.

Serves ``~/follow_joint_trajectory`` (node name = the controller name clients already use),
asks the twin's planner for a verdict on every goal, refuses unsafe ones with the reason in
``error_string``, and forwards the rest to the active target's own driver interface: the twin's
emulated controller (``sim``), the hardware driver (``hardware``), or the hardware with its
measured states checked against the twin's prediction (``shadow``). Feedback, results and
cancels are relayed; ``joint_states`` and ``~/controller_state`` are relayed from the active
target. Watchdogs abort the client's goal when the hardware stops answering.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from action_msgs.msg import GoalStatus as ActionStatus
from control_msgs.action import FollowJointTrajectory
from control_msgs.msg import JointTrajectoryControllerState
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from rdt_interfaces.msg import BridgeStatus, Divergence, Verdict
from rdt_interfaces.srv import PredictTrajectory, SwitchTarget

from reverse_digital_twin.core.bridge_logic import DivergenceMonitor, StalenessMonitor, Target
from reverse_digital_twin.core.bridge_logic import StartTime, TargetSwitch, execution_timeout
from reverse_digital_twin.core.bridge_logic import TUNABLE_RANGES, prediction_deadline
from reverse_digital_twin.core.bridge_logic import start_deviation, tunable_error
from reverse_digital_twin.core.controller import ErrorCode, PREEMPTED_MESSAGE
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal import TrajectoryGoal
from reverse_digital_twin.core.goal_lifecycle import GoalOutcome, GoalRecord, GoalStatus
from reverse_digital_twin.core.goal_lifecycle import SingleGoalSlot, report
from reverse_digital_twin.core.lookahead import EXTEND, RAN_OUT, JointStart, LookAhead, Part
from reverse_digital_twin.nodes.awaiting import await_within
from reverse_digital_twin.nodes.ros_common import CALIBRATION_PARAMETER, declare_calibration
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS, SYSTEM_DEFAULT_QOS
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, declare, seconds
from reverse_digital_twin.nodes.ros_common import goal_from_msg, to_time, trajectory_from_goal
from reverse_digital_twin.nodes.state_relay import StateRelay
from reverse_digital_twin.stack import TwinNames

Result = FollowJointTrajectory.Result
_NAMES = TwinNames()
#: Settling the twin simulates after a trajectory's end when the goal sets no goal_time.
DEFAULT_SETTLING = 1.0
#: rad: the divergence threshold without a calibration or an explicit value.
DEFAULT_DIVERGENCE_THRESHOLD = 0.05
#: s: the time slack of the divergence watch, likewise (an uncalibrated twin does not know the
#: hardware's command latency).
DEFAULT_DIVERGENCE_TIME_SLACK = 0.1
#: s: a first prediction unanswered this long is requested once more (see _predict)
FIRST_ANSWER_WAIT = 2.0
#: Requests of one prediction at most while the planner has not answered yet (see _predict).
MAX_ASKS = 3
#: s: what starting a sweep's worker processes may take, added to the wait for a verdict
SWEEP_STARTUP = 30.0
#: s: hardware joint states silent longer than this (or the liveness deadline) refuse a switch.
SWITCH_SILENCE_LIMIT = 1.0
#: s: an unstamped goal given to the hardware in parts starts this long after its first part
#: is sent. The controller would start it on arrival, a time the bridge knows only to within
#: the messaging delay; every part must share one start time, so the bridge stamps it.
START_LEAD = 0.05
#: A refused goal's message says what happened to the goal that was running.
REFUSED_WHILE_RUNNING = ' (the goal already running was left alone and continues)'


@dataclass
class TargetLink:
    """Clients and state of one target's driver interface."""

    name: str  # 'sim' | 'hardware'
    controller: str
    action: ActionClient
    joint_states: JointState | None = None
    arrival: float = 0.0  # steady time the last joint state arrived
    monitor: StalenessMonitor = field(default_factory=StalenessMonitor)

    def clock_at(self, steady: float) -> float | None:
        """The target's own clock (its joint_states stamps) at a steady time of the bridge."""
        if self.joint_states is None:
            return None
        return seconds(self.joint_states.header.stamp) + (steady - self.arrival)


@dataclass
class Screening:
    """What the goal callback learnt about a goal before accepting it."""

    start: StartTime | None
    refusal: str | None = None  # accepted only to be refused with this reason
    verdict: Verdict | None = None
    read_at: float = 0.0  # steady time the start delay was read
    origin: float = 0.0  # steady time of the prediction's t = 0 (its start state's arrival)
    origin_stamp: float = 0.0  # the same in the target's clock (its start state's stamp)
    success_probability: float = -1.0  # from the sweep asked for a hardware goal; -1: none
    sweep_summary: str = ''


@dataclass
class StreamParts:
    """A streamed trajectory given to the hardware in parts (hardware_lookahead), as goals
    are: the message as checked, its cut, its start in the target's clock (every part's
    stamp), the part the target runs and the trajectory time it was cut at."""

    link: TargetLink
    trajectory: JointTrajectory
    lookahead: LookAhead
    stamp: float
    part: Part
    cut_at: float


@dataclass
class Execution:
    """One client goal on its way through the bridge (the data of its GoalRecord)."""

    target: Target
    screening: Screening
    link: TargetLink | None = None
    target_goal: object | None = None  # ClientGoalHandle
    superseded: object | None = None  # the preempted goal's target goal, until this one runs
    forwarded: float = 0.0  # steady time the goal was sent to the target (watchdogs start)
    started: float = 0.0  # steady time the target accepted it
    started_stamp: float = 0.0  # the same in the target's clock (0: unknown)
    timeout: float = math.inf
    divergence: DivergenceMonitor | None = None
    stop_target: bool = True  # on an early end, cancel the target's goal (it then holds)
    last_checked: JointState | None = None  # the measured state divergence last looked at
    # A goal given to the hardware in parts (hardware_lookahead): the cut, the part the target
    # runs, the goal's start in the target's clock (every part's stamp), the goal time the
    # part was cut at, parts sent so far, and whether one is on its way.
    lookahead: LookAhead | None = None
    part: Part | None = None
    part_stamp: float = 0.0
    part_elapsed: float = 0.0
    parts_sent: int = 0
    extending: bool = False
    extend_sent: float = 0.0  # steady time the part on its way was sent

    @property
    def verdict(self) -> Verdict | None:
        return self.screening.verdict

    def prediction_time(self, now: float, stamp: float = 0.0) -> float:
        """Time into the prediction (its t = 0 is its start state) of a measurement.

        On the target's own clock when the measurement is stamped (``stamp``): the arrival
        times of joint states jitter with DDS and the bridge's scheduling, their stamps do not.
        Otherwise on the bridge's steady clock (``now``, the arrival).
        """
        stamped_goal = self.screening.start is not None and self.screening.start.stamped
        if stamp > 0.0:
            origin = self.screening.origin_stamp if stamped_goal else self.started_stamp
            if origin > 0.0:
                return stamp - origin
        return now - (self.screening.origin if stamped_goal else self.started)


class Bridge(Node):
    """The reverse twin's gate and router, with the joint_trajectory_controller interface."""

    def __init__(self, **kwargs) -> None:
        super().__init__('joint_trajectory_controller', **kwargs)
        sim_ctrl = declare(self, 'sim_controller', _NAMES.sim_controller,
                           'The twin\'s emulated controller (fully qualified)', True)
        hw_ctrl = declare(self, 'hardware_controller', _NAMES.hardware_controller,
                          'The hardware driver\'s trajectory controller (fully qualified), e.g. '
                          '/scaled_joint_trajectory_controller for a UR', True)
        sim_js = declare(self, 'sim_joint_states', _NAMES.sim_joint_states,
                         'joint_states of the twin', True)
        hw_js = declare(self, 'hardware_joint_states', _NAMES.hardware_joint_states,
                        'joint_states of the hardware', True)
        self.predict_service = declare(self, 'predict_service', _NAMES.predict_trajectory,
                                       'The twin planner\'s prediction service', True)
        target = declare(self, 'target', 'sim', 'Active target: sim | hardware | shadow')
        armed = bool(declare(self, 'hardware_armed', False,
                             'Allow goals to reach the hardware (needed for hardware/shadow)'))
        self.predict = bool(declare(self, 'predict', True,
                                    'Predict every goal with the twin and refuse unsafe ones'))
        self.start_tolerance = float(declare(
            self, 'start_tolerance', 0.01,
            'Max distance (rad) between a first point at time 0 and the measured state'))
        # A calibration proposes the threshold: it becomes the parameter's default, so a value
        # given explicitly (robot YAML, -p, launch, ros2 param set) still wins, as for any
        # other default.
        calibration = declare_calibration(
            self, None, 'its divergence_threshold and divergence_time_slack become the defaults '
            'of these parameters (a value given explicitly wins)')
        default_threshold = DEFAULT_DIVERGENCE_THRESHOLD if calibration is None \
            else calibration.divergence_threshold
        self.divergence_threshold = float(declare(
            self, 'divergence_threshold', default_threshold,
            'Shadow mode: max |measured - predicted| (rad) before the hardware is stopped '
            f'(default: the calibration\'s when calibration_file is set, else '
            f'{DEFAULT_DIVERGENCE_THRESHOLD:g})'))
        default_slack = DEFAULT_DIVERGENCE_TIME_SLACK \
            if calibration is None or calibration.divergence_time_slack is None \
            else calibration.divergence_time_slack
        self.divergence_time_slack = float(declare(
            self, 'divergence_time_slack', default_slack,
            'Shadow mode: time misalignment (s) tolerated between measurement and prediction, '
            'one shift for all joints (default: the calibration\'s when calibration_file sets '
            f'one, else {DEFAULT_DIVERGENCE_TIME_SLACK:g})'))
        self.goal_time = float(declare(
            self, 'goal_time', 0.0,
            "The targets' constraints.goal_time (s): a goal whose goal_time_tolerance is 0 may "
            'take this long after its end to reach its goal tolerance or fail (the graph '
            "passes the twin's controller section's)"))
        self.timeout_scale = float(declare(self, 'execution_timeout_scale', 1.1,
                                           'Result deadline = scale x duration + margin', True))
        self.timeout_margin = float(declare(self, 'execution_timeout_margin', 0.5,
                                            'Result deadline = scale x duration + margin (s)',
                                            True))
        stale_min = float(declare(self, 'joint_state_timeout_min', 0.05,
                                  'Hardware lost when joint states pause longer than '
                                  'max(this, factor x 99th percentile of recent gaps) (s)',
                                  True))
        stale_factor = float(declare(self, 'joint_state_timeout_factor', 5.0,
                                     'See joint_state_timeout_min', True))
        sim_stale_min = float(declare(
            self, 'sim_joint_state_timeout_min', 1.0,
            'Like joint_state_timeout_min, for the twin (a slow twin is not a lost robot) (s)',
            True))
        self.prediction_timeout = float(declare(
            self, 'prediction_timeout', 10.0,
            'Wall seconds to wait for the twin\'s verdict, plus the simulated time of the goal '
            'divided by prediction_min_speed'))
        self.prediction_min_speed = float(declare(
            self, 'prediction_min_speed', 1.0,
            'Slowest prediction the bridge waits for, in simulated seconds per wall second'))
        self.prediction_timeout_cap = float(declare(
            self, 'prediction_timeout_cap', 610.0,
            'Longest wait for a verdict (wall s), whatever the goal\'s length'))
        self.max_start_delay = float(declare(
            self, 'max_start_delay', 60.0,
            'A goal whose header.stamp lies further in the future (s) is refused'))
        self.min_success_probability = float(declare(
            self, 'min_success_probability', 0.0,
            'A goal reaches the hardware only if a sweep of sweep_rollouts draws of the '
            "planner's scenario (its sweep.scenario_file) predicts at least this share of "
            'successes (0 = no sweep)'))
        self.sweep_rollouts = int(declare(
            self, 'sweep_rollouts', 20,
            'Rollouts of the sweep behind min_success_probability'))
        self.hardware_lookahead = float(declare(
            self, 'hardware_lookahead', 1.0,
            'Seconds of a goal the hardware is given ahead of its execution: a longer goal is '
            'sent in parts that the bridge keeps extending, each ending in a stop on the '
            "goal's path, so that the hardware stops within 1.5 x this when the bridge dies "
            '(0 = the whole goal at once, as a plain client would)'))
        for name in TUNABLE_RANGES:
            reason = tunable_error(name, getattr(self, name))
            if reason is not None:
                raise ConfigError(f'parameter {reason}')
        check_unknown_parameters(self)
        try:
            self.switch = TargetSwitch(Target.parse(target), armed)
        except ValueError as exc:
            raise ConfigError(f'{self.get_fully_qualified_name()}: parameter target: {exc}') \
                from None
        # The goal callback awaits the twin's verdict while the action server holds its
        # callback group: the clients must live in another group or their answers never run.
        self._clients_group = ReentrantCallbackGroup()
        self.links = {
            'sim': TargetLink('sim', sim_ctrl, ActionClient(
                self, FollowJointTrajectory, f'{sim_ctrl}/follow_joint_trajectory',
                callback_group=self._clients_group),
                monitor=StalenessMonitor(sim_stale_min, stale_factor)),
            'hardware': TargetLink('hardware', hw_ctrl, ActionClient(
                self, FollowJointTrajectory, f'{hw_ctrl}/follow_joint_trajectory',
                callback_group=self._clients_group),
                monitor=StalenessMonitor(stale_min, stale_factor)),
        }
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.goals: SingleGoalSlot[Execution] = SingleGoalSlot(Future, self._on_goal_finished)
        self._screened: list[tuple[FollowJointTrajectory.Goal, Screening]] = []
        self._starting: list[GoalRecord[Execution]] = []  # accepted, execute not yet called
        self._stream_pending: JointTrajectory | None = None  # newest streamed trajectory
        # Goals accepted so far: a streamed trajectory still being predicted when a goal is
        # accepted is older than that goal, and must not replace it at the target afterwards
        self._goals_accepted = 0
        self._stream_epoch = 0  # _goals_accepted when the pending streamed message arrived
        self._stream_busy = False
        self._planner_answered = False  # see _predict
        self._last_decision: Future | None = None  # the latest goal request's, see _on_goal
        self._predict_client = self.create_client(PredictTrajectory, self.predict_service,
                                                  callback_group=self._clients_group)
        # joint_states of the active target, relayed on a thread of their own
        self._relay = StateRelay(self, {'sim': sim_js, 'hardware': hw_js},
                                 lambda: self._active_link().name, self._on_joint_states)
        self._relay.also_relay(JointTrajectoryControllerState, {
            name: f'{link.controller}/controller_state' for name, link in self.links.items()},
            self.resolve_topic_name('~/controller_state'))
        self._status_pub = self.create_publisher(BridgeStatus, '~/status', LATCHED_QOS)
        self._divergence_pub = self.create_publisher(Divergence, '~/divergence',
                                                     SYSTEM_DEFAULT_QOS)
        self._predicted_pub = self.create_publisher(JointState, '~/predicted_joint_states',
                                                    SYSTEM_DEFAULT_QOS)
        self._verdict_pub = self.create_publisher(Verdict, '~/verdicts', SYSTEM_DEFAULT_QOS)
        self._topic_pubs = {name: self.create_publisher(
            JointTrajectory, f'{link.controller}/joint_trajectory', SYSTEM_DEFAULT_QOS)
            for name, link in self.links.items()}
        self.create_subscription(JointTrajectory, '~/joint_trajectory', self._on_trajectory,
                                 SYSTEM_DEFAULT_QOS)
        # Clients wait for this action server: offer it only once the twin can answer.
        self._server: ActionServer | None = None
        self._ready_timer = self.create_timer(0.05, self._serve_when_ready, clock=self._wall)
        self.create_service(SwitchTarget, '~/switch_target', self._on_switch)
        self.create_service(SetBool, '~/arm_hardware', self._on_arm)
        self._syncing = False  # True while the node mirrors a service call into its parameters
        self._warned: set[str] = set()  # warnings given once
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # The watchdogs run at 100 Hz while a goal is out at a target, and not at all between
        # goals (an idle wake-up of this executor costs as much as a relayed message).
        self._watch_timer = self.create_timer(0.01, self._watch, clock=self._wall)
        self._watch_timer.cancel()
        # A streamed trajectory longer than hardware_lookahead is extended by this timer,
        # which runs only meanwhile.
        self._stream_parts: StreamParts | None = None
        self._stream_timer = self.create_timer(0.01, self._keep_stream_ahead, clock=self._wall)
        self._stream_timer.cancel()
        self._publish_status('started')
        self.get_logger().info(f'target {self.switch.target.value}; sim {sim_ctrl}, hardware '
                               f'{hw_ctrl}')
        if calibration is not None:
            source = 'from the calibration' \
                if self.divergence_threshold == calibration.divergence_threshold \
                else f'parameter divergence_threshold; the calibration proposes ' \
                     f'{calibration.divergence_threshold:g} rad'
            self.get_logger().info(
                f'calibration {self.get_parameter(CALIBRATION_PARAMETER).value}: divergence '
                f'threshold {self.divergence_threshold:g} rad ({source}), time slack '
                f'{self.divergence_time_slack:g} s')

    def start(self) -> None:
        """Start relaying joint states (the node is fully configured by now)."""
        self._relay.start()

    def stop(self) -> None:
        self._relay.stop()

    def _serve_when_ready(self) -> None:
        waiting = []
        if self.predict and not self._predict_client.service_is_ready():
            waiting.append(f'the prediction service {self.predict_service}')
        link = self._active_link()
        if not link.action.server_is_ready():
            waiting.append(f'the {link.name} controller {link.controller}')
        if waiting:
            self.get_logger().info(f'waiting for {" and ".join(waiting)}',
                                   throttle_duration_sec=5.0)
            return
        self._ready_timer.cancel()
        self.destroy_timer(self._ready_timer)
        # Reentrant: a goal request waits for its prediction, and cancels, result requests and
        # other goals' requests (which the action server takes in the same callback) must not
        # wait behind it. _on_goal keeps the goals' decisions in order.
        self._server = ActionServer(
            self, FollowJointTrajectory, '~/follow_joint_trajectory', self._execute,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel, callback_group=ReentrantCallbackGroup())
        self.get_logger().info(f'ready: {self.get_fully_qualified_name()}/follow_joint_trajectory '
                               f'routes to {self.switch.target.value}')

    # --- helpers ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._wall.now().nanoseconds * 1e-9

    def _active_link(self, target: Target | None = None) -> TargetLink:
        target = target or self.switch.target
        return self.links['hardware' if target.uses_hardware else 'sim']

    def _publish_status(self, event: str) -> None:
        hw = self.links['hardware']
        msg = BridgeStatus(active_target=self.switch.target.value,
                           hardware_armed=self.switch.armed,
                           hardware_alive=not hw.monitor.stale(self._now()),
                           goal_active=self.goals.active is not None, last_event=event)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    # --- state relays -------------------------------------------------------------------------
    def _on_joint_states(self, name: str, msg: JointState) -> None:
        """Every joint state of both targets, on the relay's thread: note it, nothing more
        (liveness and divergence are judged on the main thread, by :meth:`_watch`)."""
        link = self.links[name]
        now = self._now()
        link.joint_states = msg
        link.arrival = now
        link.monitor.arrived(now)

    @staticmethod
    def _measured(link: TargetLink, joints: list[str]) -> list[float] | None:
        state = Bridge._measured_start(link, joints)
        return None if state is None else list(state.positions)

    @staticmethod
    def _measured_start(link: TargetLink, joints: list[str]) -> JointStart | None:
        """The measured state of ``joints``, velocities zero where the target gives none."""
        msg = link.joint_states
        if msg is None:
            return None
        index = {n: i for i, n in enumerate(msg.name)}
        if any(j not in index for j in joints):
            return None
        velocities = [msg.velocity[index[j]] if len(msg.velocity) == len(msg.name) else 0.0
                      for j in joints]
        return JointStart([msg.position[index[j]] for j in joints], velocities)

    # --- switching and arming: one rule set for the services and the parameters ---------------
    def _switch_to(self, name: str) -> str | None:
        hw = self.links['hardware']
        now = self._now()
        # Switching asks whether the hardware is there at all, not whether it stopped
        # mid-motion: a scheduling hiccup of a few hundred ms must not refuse it.
        target, reason = self.switch.request_switch(
            name, hw.monitor.silence(now), max(hw.monitor.deadline, SWITCH_SILENCE_LIMIT))
        if target is not None:
            self._publish_status(f'switched to {target.value}')
        return reason

    def _arm(self, armed: bool) -> str | None:
        reason = self.switch.request_arm(armed)
        if reason is None:
            self._publish_status('hardware armed' if armed else 'hardware disarmed')
        return reason

    def _on_switch(self, request: SwitchTarget.Request, response: SwitchTarget.Response):
        reason = self._switch_to(request.target)
        response.success = reason is None
        response.message = reason or f'now routing goals to {self.switch.target.value}'
        if reason is None:
            self._sync_parameter('target', self.switch.target.value)
        response.active_target = self.switch.target.value
        self.get_logger().info(f'switch to {request.target!r}: {response.message}')
        return response

    def _on_arm(self, request: SetBool.Request, response: SetBool.Response):
        reason = self._arm(bool(request.data))
        response.success = reason is None
        response.message = reason or ('hardware armed' if self.switch.armed
                                      else 'hardware disarmed')
        if reason is None:
            self._sync_parameter('hardware_armed', self.switch.armed)
        return response

    def _sync_parameter(self, name: str, value) -> None:
        self._syncing = True
        try:
            self.set_parameters([Parameter(name, value=value)])
        finally:
            self._syncing = False

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        if self._syncing:
            return SetParametersResult(successful=True)
        for p in params:
            reason = None
            if p.name == 'target':
                reason = self._switch_to(str(p.value))
            elif p.name == 'hardware_armed':
                reason = self._arm(bool(p.value))
            elif p.name == 'predict':
                self.predict = p.value
            elif p.name in TUNABLE_RANGES:
                reason = tunable_error(p.name, p.value)
                if reason is None:
                    setattr(self, p.name, p.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # --- goals ----------------------------------------------------------------------------------
    async def _on_goal(self, request: FollowJointTrajectory.Goal) -> GoalResponse:
        """Goals are predicted side by side but decided in the order they came: a goal is
        answered only after the one before it, so an older goal whose prediction took longer is
        never accepted after a newer one, and never preempts it."""
        before, mine = self._last_decision, Future(executor=self.executor)
        self._last_decision = mine
        try:
            response = await self._screen_goal(request)
            if before is not None and not before.done():
                await before
            return response
        finally:
            # The action server sends this goal's answer and accepts it before the next
            # request's task resumes (set_result only schedules it).
            mine.set_result(None)

    async def _screen_goal(self, request: FollowJointTrajectory.Goal) -> GoalResponse:
        """Reject what the target controller would reject (the twin's controller decides)."""
        link = self._active_link()
        if not link.action.server_is_ready():
            self.get_logger().error(f'Goal rejected: the {link.name} controller '
                                    f'{link.controller} is not available')
            return GoalResponse.REJECT
        if self.switch.target.uses_hardware and not self.switch.armed:
            self.get_logger().error('Goal rejected: the hardware is not armed')
            return GoalResponse.REJECT
        trajectory = request.trajectory
        duration = seconds(trajectory.points[-1].time_from_start) if trajectory.points else 0.0
        read_at = self._now()
        start, why = StartTime.read(seconds(trajectory.header.stamp),
                                    self.get_clock().now().nanoseconds * 1e-9, duration,
                                    self.max_start_delay)
        if start is None and 'in the past' in (why or ''):
            # upstream rejects a goal that ended before it arrived (OLD_HEADER_TIMESTAMP)
            self.get_logger().error(f'Goal rejected: {why}')
            return GoalResponse.REJECT
        screening = Screening(start, why, read_at=read_at)
        if start is not None and self.predict:
            verdict = await self._predict(trajectory, request, link, screening)
            if verdict is None:
                return GoalResponse.REJECT
            if verdict.predicted_error_code == int(ErrorCode.INVALID_GOAL):
                self.get_logger().error(f'Goal rejected: {verdict.summary}')
                return GoalResponse.REJECT
            screening.verdict = verdict
        self._screened.append((request, screening))
        del self._screened[:-16]  # screenings of goals rclpy never handed over
        return GoalResponse.ACCEPT

    def _restamped(self, trajectory: JointTrajectory, link: TargetLink,
                   screening: Screening) -> JointTrajectory:
        """The trajectory with its start in the target's clock (unchanged when unstamped)."""
        start = screening.start
        if start is None or not start.stamped:
            return trajectory
        target_now = link.clock_at(screening.read_at)
        if target_now is None:
            return trajectory
        out = JointTrajectory(joint_names=trajectory.joint_names, points=trajectory.points)
        out.header.frame_id = trajectory.header.frame_id
        out.header.stamp = to_time(max(start.target_stamp(target_now, 0.0), 1e-9))
        return out

    async def _predict(self, trajectory: JointTrajectory, request: FollowJointTrajectory.Goal,
                       link: TargetLink, screening: Screening) -> Verdict | None:
        """The twin's verdict on the trajectory from the target's measured state, or None.

        ``request`` carries the tolerances. The wait scales with the goal's simulated time,
        so long goals (painting, welding, inspection paths) are predicted, not timed out.
        """
        if not self._predict_client.service_is_ready():
            self.get_logger().error(f'Goal rejected: the twin\'s prediction service '
                                    f'{self.predict_service} is not available')
            return None
        query = PredictTrajectory.Request(
            trajectory=self._restamped(trajectory, link, screening),
            path_tolerance=request.path_tolerance, goal_tolerance=request.goal_tolerance,
            goal_time_tolerance=request.goal_time_tolerance)
        if link.joint_states is not None:
            query.start_state = link.joint_states  # the forked world starts where the target is
            screening.origin = link.arrival
            screening.origin_stamp = seconds(link.joint_states.header.stamp)
        duration = seconds(trajectory.points[-1].time_from_start) if trajectory.points else 0.0
        settling = seconds(query.goal_time_tolerance) or DEFAULT_SETTLING
        timeout = prediction_deadline(duration, screening.start.delay if screening.start
                                      else 0.0, settling, self.prediction_timeout,
                                      self.prediction_min_speed, self.prediction_timeout_cap)
        if self.min_success_probability > 0.0 and link.name == 'hardware':
            # the sweep's rollouts too, on the planner's sweep workers (two, or more)
            query.sweep_rollouts = int(self.sweep_rollouts)
            timeout += (duration + settling) / self.prediction_min_speed \
                * self.sweep_rollouts / 2 + SWEEP_STARTUP
        # Until a planner process has answered once, a request can reach it before its
        # response writer has discovered our reader, or before it serves at all (a planner
        # restarting): the request or its answer is then lost. Ask again after a moment, then
        # after twice that, and so on, and take whichever request is answered first: the
        # earlier ones stay pending, so a long prediction that was received is never thrown
        # away for a copy queued behind it (a 200 s goal went unanswered that way).
        calls = [self._predict_client.call_async(query)]
        first: Future = Future()

        def on_answer(done: Future) -> None:
            if not first.done():
                first.set_result(done.result())
        calls[0].add_done_callback(on_answer)
        answered, response = False, None
        remaining, wait = timeout, FIRST_ANSWER_WAIT
        while not self._planner_answered and remaining > wait and len(calls) < MAX_ASKS:
            answered, response = await await_within(self, first, wait, self._wall,
                                                    self._clients_group)
            if answered:
                break
            calls.append(self._predict_client.call_async(query))
            calls[-1].add_done_callback(on_answer)
            remaining -= wait
            wait *= 2
        if not answered:
            answered, response = await await_within(self, first, remaining, self._wall,
                                                    self._clients_group)
        for call in calls:
            if not call.done():
                self._predict_client.remove_pending_request(call)
        if not answered:
            # The planner may be gone and come back as a new process, whose first answer can
            # be lost like the first one's: ask again next time.
            self._planner_answered = False
            self.get_logger().error(f'Goal rejected: the twin gave no verdict within '
                                    f'{timeout:.1f} s')
            return None
        self._planner_answered = True
        self._verdict_pub.publish(response.verdict)  # for recordings: every verdict received
        screening.success_probability = response.success_probability
        screening.sweep_summary = response.sweep_summary
        return response.verdict

    def _take_screening(self, request) -> Screening:
        for i, (screened, screening) in enumerate(self._screened):
            if screened is request:
                del self._screened[i]
                return screening
        return Screening(None, 'no verdict from the twin for this goal; nothing was moved')

    def _on_accepted(self, handle: ServerGoalHandle) -> None:
        screening = self._take_screening(handle.request)
        execution = Execution(self.switch.target, screening)
        refusal = self._refusal(handle.request, execution)
        if refusal is not None:
            # A refused goal changes nothing: the goal already running keeps running.
            if self.goals.active is not None:
                refusal += REFUSED_WHILE_RUNNING
            screening.refusal = refusal
            record = self.goals.detached(handle, execution)
        else:
            previous = self.goals.active
            if previous is not None:
                # The new goal preempts the old one at the target itself (as a controller
                # does); should it never get there, the old target goal is cancelled.
                execution.superseded = previous.data.target_goal
                previous.data.stop_target = False
            record = self.goals.accept(handle, execution, GoalOutcome(
                GoalStatus.ABORTED, int(ErrorCode.INVALID_GOAL), PREEMPTED_MESSAGE))
            self._goals_accepted += 1
            self.switch.goal_active = True
            self._publish_status('goal accepted')
        self._starting.append(record)
        handle.execute()

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        record = self.goals.record_for(handle)
        if record is not None and record.data.target_goal is not None:
            record.data.target_goal.cancel_goal_async()
        return CancelResponse.ACCEPT

    async def _execute(self, handle: ServerGoalHandle) -> FollowJointTrajectory.Result:
        record = next((r for r in self._starting if r.handle is handle), None)
        if record is not None:
            self._starting.remove(record)
        if record is None or record.finished:  # preempted before it started
            outcome = record.outcome if record is not None else GoalOutcome(
                GoalStatus.ABORTED, int(ErrorCode.INVALID_GOAL), PREEMPTED_MESSAGE)
            report(handle, outcome)
            return Result(error_code=outcome.error_code, error_string=outcome.error_string)
        refusal = record.data.screening.refusal
        if refusal is not None:
            self.goals.abort(record, int(ErrorCode.INVALID_GOAL), refusal)
        else:
            # Forward in its own task: a target that never answers must not keep the client's
            # goal from ending when a watchdog gives up on it.
            self.executor.create_task(self._forward, record)
        outcome: GoalOutcome = await record.done
        report(handle, outcome)
        return Result(error_code=outcome.error_code, error_string=outcome.error_string)

    def _refusal(self, request: FollowJointTrajectory.Goal, execution: Execution) -> str | None:
        """Why this accepted goal must not move anything (start time, bad start, unsafe)."""
        screening = execution.screening
        if screening.refusal is not None:
            return screening.refusal
        trajectory = request.trajectory
        link = self._active_link(execution.target)
        joints = list(trajectory.joint_names)
        first = trajectory.points[0]
        if seconds(first.time_from_start) == 0.0:  # a first point meant as 'now'
            measured = self._measured(link, joints)
            if measured is None:
                return f'no joint states from the {link.name} target to check the start against'
            reason = start_deviation(first.positions, measured, joints, self.start_tolerance)
            if reason is not None:
                return reason
        verdict = screening.verdict
        if verdict is None and self.predict:
            return 'no verdict from the twin for this goal; nothing was moved'
        if verdict is not None and not verdict.safe:
            return f'The twin refused the goal, nothing moved: {verdict.summary}'
        if verdict is not None and link.name == 'hardware' \
                and self.min_success_probability > 0.0:
            p = screening.success_probability
            if p < 0.0:
                return (f'The twin refused the goal, nothing moved: no risk sweep '
                        f'({screening.sweep_summary or "the planner ran none"}), and '
                        f'min_success_probability is {self.min_success_probability:g}')
            if p < self.min_success_probability:
                return (f'The twin refused the goal, nothing moved: a risk sweep predicts '
                        f'success in {p:.0%} of its rollouts, below min_success_probability '
                        f'{self.min_success_probability:g} ({screening.sweep_summary})')
        return None

    def _parts_for(self, trajectory: JointTrajectory, link: TargetLink
                   ) -> tuple[LookAhead | None, float, float, str | None]:
        """How a checked trajectory goes to ``link``: (the look-ahead that cuts it into parts,
        its start in the target's clock, the target's clock now, None), or (None, 0, 0, None)
        to send it whole, or (None, 0, 0, why it cannot be timed). Goals and streamed
        trajectories alike: the hardware is given at most ``hardware_lookahead`` s ahead."""
        whole = (None, 0.0, 0.0, None)
        if link.name != 'hardware' or not self.hardware_lookahead > 0.0:
            return whole
        lookahead = LookAhead(goal_from_msg(trajectory).points, self.hardware_lookahead,
                              self._measured_start(link, list(trajectory.joint_names)))
        if not lookahead.bounded:
            return whole
        target_now = link.clock_at(self._now())
        if target_now is None:
            return (None, 0.0, 0.0, f'no joint states from the {link.name} target to time the '
                    'parts by (hardware_lookahead)')
        if link.joint_states is not None and seconds(link.joint_states.header.stamp) == 0.0:
            if 'unstamped' not in self._warned:  # no time in them
                self._warned.add('unstamped')
                self.get_logger().warning(
                    f'the {link.name} joint states carry no time stamps: trajectories go to '
                    'it whole, hardware_lookahead cannot bound them')
            return whole
        stamp = seconds(trajectory.header.stamp) or target_now + START_LEAD
        return lookahead, stamp, target_now, None

    async def _forward(self, record: GoalRecord[Execution]) -> None:
        execution = record.data
        request = record.handle.request
        link = self._active_link(execution.target)
        execution.link = link
        trajectory = self._restamped(request.trajectory, link, execution.screening)
        goal = FollowJointTrajectory.Goal(
            trajectory=trajectory, path_tolerance=request.path_tolerance,
            goal_tolerance=request.goal_tolerance, goal_time_tolerance=request.goal_time_tolerance)
        self._stream_parts = None  # a goal replaces a streamed trajectory, as upstream
        lookahead, stamp, target_now, why = self._parts_for(trajectory, link)
        if why is not None:
            self.goals.abort(record, int(ErrorCode.INVALID_GOAL), f'{why}; nothing moved')
            return
        if lookahead is not None:
            execution.lookahead, execution.part_stamp = lookahead, stamp
            execution.part_elapsed = target_now - stamp
            execution.part = lookahead.part(execution.part_elapsed)
            goal.trajectory = _part_trajectory(trajectory, execution.part, stamp)
        verdict = execution.verdict
        duration = seconds(request.trajectory.points[-1].time_from_start)
        start = execution.screening.start
        if start is not None:
            duration += max(start.delay, 0.0)
        if verdict is not None:  # the twin knows when the controller will report (settling)
            duration = max(duration, verdict.duration)
        # The deadline runs from sending, so a driver that never even answers is caught too.
        # as upstream: the request's goal_time_tolerance, else the controller's goal_time
        goal_time = seconds(request.goal_time_tolerance) or self.goal_time
        execution.timeout = execution_timeout(duration, goal_time, self.timeout_scale,
                                              self.timeout_margin)
        execution.forwarded = self._now()
        self._watch_timer.reset()
        execution.parts_sent = 1
        goal_handle = await link.action.send_goal_async(
            goal, feedback_callback=lambda fb: self._relay_feedback(record, fb))
        superseded, execution.superseded = execution.superseded, None
        if record.finished:  # preempted or aborted meanwhile
            if goal_handle.accepted and execution.stop_target:
                goal_handle.cancel_goal_async()
            return
        if not goal_handle.accepted:
            if superseded is not None:
                superseded.cancel_goal_async()  # the old motion must not go on unowned
            execution.stop_target = False
            self.goals.abort(record, int(ErrorCode.INVALID_GOAL),
                             f'the {link.name} controller {link.controller} rejected the goal '
                             '(see its log); nothing moved')
            return
        execution.target_goal = goal_handle
        execution.started = self._now()
        # The controller took the goal between sending and the answer: the midpoint, in the
        # target's clock, is the prediction's t = 0 for a goal that starts on arrival.
        execution.started_stamp = execution.part_stamp or link.clock_at(
            0.5 * (execution.forwarded + execution.started)) or 0.0
        if execution.target is Target.SHADOW and verdict is not None \
                and verdict.predicted_trajectory.points:
            pt = verdict.predicted_trajectory
            execution.divergence = DivergenceMonitor(
                list(pt.joint_names), np.array([seconds(p.time_from_start) for p in pt.points]),
                np.array([p.positions for p in pt.points]), self.divergence_threshold,
                self.divergence_time_slack)
        if record.handle.is_cancel_requested:
            goal_handle.cancel_goal_async()
        self._on_result_of(record, goal_handle, 1)

    def _extend(self, record: GoalRecord[Execution], elapsed: float) -> None:
        """Send the goal's next part, cut ``elapsed`` s into it (see hardware_lookahead)."""
        execution = record.data
        if record.finished or record.handle.is_cancel_requested:
            return
        execution.extending, execution.extend_sent = True, self._now()
        self.executor.create_task(self._send_part, record, elapsed)

    async def _send_part(self, record: GoalRecord[Execution], elapsed: float) -> None:
        execution = record.data
        request = record.handle.request
        link = execution.link
        assert execution.lookahead is not None and link is not None
        part = execution.lookahead.part(elapsed)
        goal = FollowJointTrajectory.Goal(
            trajectory=_part_trajectory(request.trajectory, part, execution.part_stamp),
            path_tolerance=request.path_tolerance, goal_tolerance=request.goal_tolerance,
            goal_time_tolerance=request.goal_time_tolerance)
        execution.parts_sent += 1
        index = execution.parts_sent
        try:
            handle = await link.action.send_goal_async(
                goal, feedback_callback=lambda fb: self._relay_feedback(record, fb))
        finally:
            execution.extending = False
        if record.finished or record.handle.is_cancel_requested:
            if handle.accepted:  # nobody would watch it: the hardware holds instead
                handle.cancel_goal_async()
            return
        if not handle.accepted:
            execution.stop_target = False  # the part it has ends in a stop on the path
            self.goals.abort(record, int(ErrorCode.INVALID_GOAL), (
                f'the {link.name} controller {link.controller} rejected the next part of the '
                "goal (see its log); the hardware slows to a stop on the goal's path"))
            return
        execution.target_goal, execution.part, execution.part_elapsed = handle, part, elapsed
        self._on_result_of(record, handle, index)

    def _on_result_of(self, record: GoalRecord[Execution], handle, index: int) -> None:
        final = record.data.part is None or record.data.part.final
        handle.get_result_async().add_done_callback(
            lambda future: self._on_target_result(record, future, index, final))

    def _relay_feedback(self, record: GoalRecord[Execution], message) -> None:
        if not record.finished and record.handle.is_active:
            record.handle.publish_feedback(message.feedback)

    def _on_target_result(self, record: GoalRecord[Execution], future: Future, index: int,
                          final: bool) -> None:
        response = future.result()
        execution = record.data
        newer = index < execution.parts_sent  # a later part of the goal was sent
        if newer and response.status == ActionStatus.STATUS_ABORTED \
                and response.result.error_string == PREEMPTED_MESSAGE:
            return  # replaced by the goal's next part, as asked
        if not final and response.status == ActionStatus.STATUS_SUCCEEDED:
            execution.stop_target = False
            self._ran_out(record)
            return
        status = {ActionStatus.STATUS_SUCCEEDED: GoalStatus.SUCCEEDED,
                  ActionStatus.STATUS_CANCELED: GoalStatus.CANCELED}.get(response.status,
                                                                         GoalStatus.ABORTED)
        # The target's goal has ended by itself; a later part on its way is stopped too.
        execution.stop_target = newer
        self.goals.finish(record, GoalOutcome(status, response.result.error_code,
                                              response.result.error_string))

    def _ran_out(self, record: GoalRecord[Execution]) -> None:
        """The hardware reached (or is about to reach) the stop at the end of its part."""
        execution = record.data
        assert execution.part is not None and execution.link is not None
        why = (f'the {execution.link.name} controller {execution.link.controller} did not take '
               f'the goal\'s next part within {self._now() - execution.extend_sent:.2f} s') \
            if execution.extending else 'the bridge fell behind giving the hardware its parts'
        self.goals.abort(record, int(ErrorCode.INVALID_GOAL), (
            f'Aborted: {why} (the hardware had the goal up to its '
            f'{execution.part.full_speed_until:.2f} s point; hardware_lookahead '
            f"{self.hardware_lookahead:g} s); the hardware slows to a stop on the goal's path "
            f'at its {execution.part.stops_at:.2f} s point. Send the rest of the goal again, or '
            'raise hardware_lookahead on a busy machine'))

    def _on_goal_finished(self, record: GoalRecord[Execution]) -> None:
        """Every client goal ends here once: stop its target goal if still running, log."""
        execution = record.data
        if execution.stop_target and execution.target_goal is not None:
            execution.target_goal.cancel_goal_async()
        outcome = record.outcome
        if outcome is not None and outcome.status is not GoalStatus.SUCCEEDED:
            self.get_logger().error(f'goal {outcome.status.value}: {outcome.error_string}')
        if execution.divergence is not None:  # the margin the watch had, to tune it by
            monitor = execution.divergence
            self.get_logger().info(
                f'shadow goal ended: largest divergence {monitor.max_error * 1e3:.2f} mrad '
                f'(joint {monitor.max_error_at[0]} at {monitor.max_error_at[1]:.2f} s) '
                f'(threshold {monitor.threshold * 1e3:.2f} mrad, time slack '
                f'{monitor.time_slack * 1e3:.0f} ms)')
        if self.goals.active is None and self.switch.goal_active:
            self.switch.goal_active = False
            self._publish_status(f'goal {outcome.status.value if outcome else "ended"}')

    # --- watchdogs ------------------------------------------------------------------------------
    def _watch(self) -> None:
        record = self.goals.active
        if record is None:
            self._watch_timer.cancel()  # reset when the next goal is sent to a target
            return
        execution = record.data
        if execution.link is None or execution.forwarded == 0.0:
            return
        now = self._now()
        link = execution.link
        msg = link.joint_states
        if execution.divergence is not None and execution.started > 0 and msg is not None \
                and msg is not execution.last_checked:
            execution.last_checked = msg
            self._check_divergence(record, msg, link.arrival)
            if record.finished:
                return
        witness = self.links['sim' if link.name == 'hardware' else 'hardware'].monitor
        if link.monitor.lost(now, witness, self.links['sim'].monitor.minimum):
            self._target_lost(record, (
                f'no joint states from the {link.name} target ({link.controller}) for '
                f'{link.monitor.silence(now):.2f} s (deadline {link.monitor.deadline:.2f} s)'))
        elif now - execution.forwarded > execution.timeout:
            self._target_lost(record, (
                f'no result from {link.controller} within {execution.timeout:.2f} s '
                f'({self.timeout_scale:g} x duration + {self.timeout_margin:g} s)'))
        elif execution.part is not None and not execution.part.final \
                and execution.target_goal is not None:
            self._keep_ahead(record, now)

    def _keep_ahead(self, record: GoalRecord[Execution], now: float) -> None:
        """Extend a goal given in parts, or abort it when the hardware is about to stop."""
        execution = record.data
        assert execution.part is not None and execution.lookahead is not None
        target_now = execution.link.clock_at(now) if execution.link is not None else None
        if target_now is None:
            return
        elapsed = target_now - execution.part_stamp
        step = execution.lookahead.next_step(execution.part, execution.part_elapsed, elapsed)
        if step == RAN_OUT:
            execution.stop_target = False  # let it stop on the path rather than at once
            self._ran_out(record)
        elif step == EXTEND and not execution.extending:
            self._extend(record, elapsed)

    def _target_lost(self, record: GoalRecord[Execution], why: str) -> None:
        link = record.data.link
        hardware = link is not None and link.name == 'hardware'
        if hardware:
            self.switch.disarm()  # a lost robot must be re-armed by a person
            self._sync_parameter('hardware_armed', False)
        self.goals.abort(record, int(ErrorCode.INVALID_GOAL),
                         f'Aborted: {why}. The target is treated as lost; its goal was cancelled '
                         'and will not be resent' + ('; re-arm the hardware before the next goal'
                                                     if hardware else ''))

    def _check_divergence(self, record: GoalRecord[Execution], msg: JointState,
                          now: float) -> None:
        execution = record.data
        monitor = execution.divergence
        measured = self._measured(execution.link, monitor.joints)
        if measured is None:
            return
        t = execution.prediction_time(now, seconds(msg.header.stamp))
        predicted = JointState(name=monitor.joints,
                               position=monitor.predicted_at(t).tolist())
        predicted.header.stamp = msg.header.stamp
        self._predicted_pub.publish(predicted)
        event = monitor.check(t, measured)
        if event is None:
            return
        report_msg = Divergence(joint=event.joint, error=event.error, threshold=event.threshold,
                                time_into_goal=event.time, joint_names=monitor.joints,
                                measured=event.measured.tolist(),
                                predicted=event.predicted.tolist())
        report_msg.header.stamp = msg.header.stamp
        self._divergence_pub.publish(report_msg)
        self.goals.abort(record, int(ErrorCode.PATH_TOLERANCE_VIOLATED),
                         f'Aborted: {event.describe()}; the hardware goal was cancelled and the '
                         'hardware holds its position')

    # --- topic interface ------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        """~/joint_trajectory: each message is predicted, then forwarded if safe.

        Streamed commands (teleoperation, servoing, a policy) arrive faster than a rollout
        may answer; a newer message replaces the trajectory anyway, so only the newest waiting
        message is predicted next and superseded ones are dropped unpredicted (never sent).
        """
        link = self._active_link()
        if self.switch.target.uses_hardware and not self.switch.armed:
            self.get_logger().error('Trajectory ignored: the hardware is not armed')
            return
        if not self.predict:
            self._send_stream(msg, link)
            return
        self._stream_pending, self._stream_epoch = msg, self._goals_accepted
        if not self._stream_busy:
            self._stream_busy = True
            self.executor.create_task(self._stream)

    async def _stream(self) -> None:
        try:
            while self._stream_pending is not None:
                msg, self._stream_pending = self._stream_pending, None
                epoch = self._stream_epoch
                link = self._active_link()
                duration = seconds(msg.points[-1].time_from_start) if msg.points else 0.0
                read_at = self._now()
                start, why = StartTime.read(seconds(msg.header.stamp),
                                            self.get_clock().now().nanoseconds * 1e-9,
                                            duration, self.max_start_delay)
                if start is None:
                    self.get_logger().error(f'Trajectory ignored, nothing moved: {why}')
                    continue
                screening = Screening(start, read_at=read_at)
                verdict = await self._predict(msg, FollowJointTrajectory.Goal(), link,
                                              screening)
                if verdict is None:
                    continue
                if not verdict.safe:
                    self.get_logger().error(
                        f'Trajectory ignored, nothing moved: {verdict.summary}')
                    continue
                if link is not self._active_link():
                    self.get_logger().error('Trajectory ignored: the target changed while it '
                                            'was predicted')
                    continue
                if epoch != self._goals_accepted:
                    self.get_logger().warning('Trajectory ignored: a goal accepted while it was '
                                              'predicted is newer')
                    continue
                self._send_stream(self._restamped(msg, link, screening), link)
        finally:
            self._stream_busy = False

    def _send_stream(self, trajectory: JointTrajectory, link: TargetLink) -> None:
        """A checked streamed trajectory to its target: to the hardware in parts when it is
        longer than hardware_lookahead (then kept ahead by _keep_stream_ahead), else whole."""
        self._stream_parts = None  # a newer message replaces the trajectory
        lookahead, stamp, target_now, why = self._parts_for(trajectory, link)
        if why is not None:
            self.get_logger().error(f'Trajectory ignored, nothing moved: {why}')
            return
        if lookahead is None:
            self._topic_pubs[link.name].publish(trajectory)
            return
        part = lookahead.part(target_now - stamp)
        self._stream_parts = StreamParts(link, trajectory, lookahead, stamp, part,
                                         target_now - stamp)
        self._topic_pubs[link.name].publish(_part_trajectory(trajectory, part, stamp))
        self._stream_timer.reset()

    def _keep_stream_ahead(self) -> None:
        """Give the hardware the next part of the streamed trajectory in time, or stop giving
        when too late (the hardware then slows to a stop on the checked path)."""
        parts = self._stream_parts
        if parts is not None and (parts.link is not self._active_link()
                                  or not self.switch.armed):
            self.get_logger().warning(
                'streamed trajectory no longer extended (the target changed or the hardware '
                'was disarmed): the hardware slows to a stop on its path at its '
                f'{parts.part.stops_at:.2f} s point')
            parts = self._stream_parts = None
        if parts is None or parts.part.final:
            self._stream_timer.cancel()
            return
        target_now = parts.link.clock_at(self._now())
        if target_now is None:
            return
        elapsed = target_now - parts.stamp
        step = parts.lookahead.next_step(parts.part, parts.cut_at, elapsed)
        if step == RAN_OUT:
            self._stream_parts = None
            self.get_logger().error(
                'streamed trajectory stopped: the bridge fell behind giving the hardware its '
                f'parts (it had the trajectory up to its {parts.part.full_speed_until:.2f} s '
                f'point; hardware_lookahead {self.hardware_lookahead:g} s); the hardware slows '
                f'to a stop on its path at its {parts.part.stops_at:.2f} s point. Send the rest '
                'again, or raise hardware_lookahead on a busy machine')
        elif step == EXTEND:
            parts.part, parts.cut_at = parts.lookahead.part(elapsed), elapsed
            self._topic_pubs[parts.link.name].publish(
                _part_trajectory(parts.trajectory, parts.part, parts.stamp))


def _part_trajectory(trajectory: JointTrajectory, part: Part, stamp: float) -> JointTrajectory:
    """One part of a goal as the trajectory its target is sent: the goal's start stamp."""
    out = trajectory_from_goal(TrajectoryGoal(list(trajectory.joint_names), part.points, stamp))
    out.header.frame_id = trajectory.header.frame_id
    return out


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin bridge --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(Bridge, args)


if __name__ == '__main__':
    raise SystemExit(main())
