"""Bridge node: the driver interface clients talk to, in front of the twin and the hardware.

Serves ``~/follow_joint_trajectory`` (node name = the controller name clients already use),
asks the twin for a verdict on every goal, refuses unsafe ones with the reason in
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
from action_msgs.msg import GoalStatus
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
from reverse_digital_twin.core.bridge_logic import TargetSwitch, execution_timeout
from reverse_digital_twin.core.bridge_logic import start_deviation
from reverse_digital_twin.core.controller import ErrorCode, PREEMPTED_MESSAGE
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS, SYSTEM_DEFAULT_QOS
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, declare, seconds

Result = FollowJointTrajectory.Result


@dataclass
class TargetLink:
    """Clients and state of one target's driver interface."""

    name: str  # 'sim' | 'hardware'
    controller: str
    action: ActionClient
    joint_states: JointState | None = None
    monitor: StalenessMonitor = field(default_factory=StalenessMonitor)


@dataclass
class Execution:
    """One client goal on its way through the bridge."""

    client: ServerGoalHandle
    done: Future
    target: Target
    link: TargetLink | None = None
    target_goal: object | None = None  # ClientGoalHandle
    forwarded: float = 0.0  # wall time the goal was sent to the target (watchdogs start)
    started: float = 0.0  # wall time the target accepted it (time zero of the prediction)
    timeout: float = math.inf
    divergence: DivergenceMonitor | None = None
    verdict: Verdict | None = None


class Bridge(Node):
    """The reverse twin's gate and router, with the joint_trajectory_controller interface."""

    def __init__(self, **kwargs) -> None:
        super().__init__('joint_trajectory_controller', **kwargs)
        sim_ctrl = declare(self, 'sim_controller', '/sim/joint_trajectory_controller',
                           'The twin\'s emulated controller (fully qualified)', True)
        hw_ctrl = declare(self, 'hardware_controller', '/hw/joint_trajectory_controller',
                          'The hardware driver\'s trajectory controller (fully qualified), e.g. '
                          '/scaled_joint_trajectory_controller for a UR', True)
        sim_js = declare(self, 'sim_joint_states', '/sim/joint_states',
                         'joint_states of the twin', True)
        hw_js = declare(self, 'hardware_joint_states', '/hw/joint_states',
                        'joint_states of the hardware', True)
        self.predict_service = declare(self, 'predict_service',
                                       '/sim/pybullet_sim/predict_trajectory',
                                       'The twin\'s prediction service', True)
        target = declare(self, 'target', 'sim', 'Active target: sim | hardware | shadow')
        armed = bool(declare(self, 'hardware_armed', False,
                             'Allow goals to reach the hardware (needed for hardware/shadow)'))
        self.predict = bool(declare(self, 'predict', True,
                                    'Predict every goal with the twin and refuse unsafe ones'))
        self.start_tolerance = float(declare(
            self, 'start_tolerance', 0.01,
            'Max distance (rad) between a first point at time 0 and the measured state'))
        self.divergence_threshold = float(declare(
            self, 'divergence_threshold', 0.05,
            'Shadow mode: max |measured - predicted| (rad) before the hardware is stopped'))
        self.divergence_time_slack = float(declare(
            self, 'divergence_time_slack', 0.1,
            'Shadow mode: time misalignment (s) tolerated between measurement and prediction'))
        self.timeout_scale = float(declare(self, 'execution_timeout_scale', 1.1,
                                           'Result deadline = scale x duration + margin', True))
        self.timeout_margin = float(declare(self, 'execution_timeout_margin', 0.5,
                                            'Result deadline = scale x duration + margin (s)',
                                            True))
        stale_min = float(declare(self, 'joint_state_timeout_min', 0.2,
                                  'Hardware lost when joint states pause longer than '
                                  'max(this, factor x 99th percentile of recent gaps) (s)',
                                  True))
        stale_factor = float(declare(self, 'joint_state_timeout_factor', 5.0,
                                     'See joint_state_timeout_min', True))
        sim_stale_min = float(declare(
            self, 'sim_joint_state_timeout_min', 1.0,
            'Like joint_state_timeout_min, for the twin (a slow twin is not a lost robot) (s)',
            True))
        self.prediction_timeout = float(declare(self, 'prediction_timeout', 10.0,
                                                'Wall seconds to wait for the twin\'s verdict'))
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
        self._execution: Execution | None = None
        self._verdicts: dict[int, Verdict] = {}  # goal request id -> verdict, until accepted
        self._last_event = 'started'
        self._predict_client = self.create_client(PredictTrajectory, self.predict_service,
                                                  callback_group=self._clients_group)
        self._joint_states_pub = self.create_publisher(JointState, 'joint_states',
                                                       SYSTEM_DEFAULT_QOS)
        self._state_pub = self.create_publisher(JointTrajectoryControllerState,
                                                '~/controller_state', SYSTEM_DEFAULT_QOS)
        self._status_pub = self.create_publisher(BridgeStatus, '~/status', LATCHED_QOS)
        self._divergence_pub = self.create_publisher(Divergence, '~/divergence',
                                                     SYSTEM_DEFAULT_QOS)
        self._predicted_pub = self.create_publisher(JointState, '~/predicted_joint_states',
                                                    SYSTEM_DEFAULT_QOS)
        self._topic_pubs = {name: self.create_publisher(
            JointTrajectory, f'{link.controller}/joint_trajectory', SYSTEM_DEFAULT_QOS)
            for name, link in self.links.items()}
        for name, topic in (('sim', sim_js), ('hardware', hw_js)):
            self.create_subscription(JointState, topic,
                                     lambda msg, n=name: self._on_joint_states(n, msg),
                                     SYSTEM_DEFAULT_QOS)
            self.create_subscription(
                JointTrajectoryControllerState,
                f'{self.links[name].controller}/controller_state',
                lambda msg, n=name: self._on_controller_state(n, msg), SYSTEM_DEFAULT_QOS)
        self.create_subscription(JointTrajectory, '~/joint_trajectory', self._on_trajectory,
                                 SYSTEM_DEFAULT_QOS)
        # Clients wait for this action server: offer it only once the twin can answer.
        self._server: ActionServer | None = None
        self._ready_timer = self.create_timer(0.05, self._serve_when_ready, clock=Clock(
            clock_type=ClockType.STEADY_TIME))
        self.create_service(SwitchTarget, '~/switch_target', self._on_switch)
        self.create_service(SetBool, '~/arm_hardware', self._on_arm)
        self._syncing = False  # True while the node mirrors a service call into its parameters
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(0.01, self._watch, clock=self._wall)
        self._publish_status('started')
        self.get_logger().info(f'target {self.switch.target.value}; sim {sim_ctrl}, hardware '
                               f'{hw_ctrl}')

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
        self._server = ActionServer(
            self, FollowJointTrajectory, '~/follow_joint_trajectory', self._execute,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel)
        self.get_logger().info(f'ready: {self.get_fully_qualified_name()}/follow_joint_trajectory '
                               f'routes to {self.switch.target.value}')

    # --- helpers ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._wall.now().nanoseconds * 1e-9

    def _active_link(self, target: Target | None = None) -> TargetLink:
        target = target or self.switch.target
        return self.links['hardware' if target.uses_hardware else 'sim']

    def _publish_status(self, event: str) -> None:
        self._last_event = event
        hw = self.links['hardware']
        msg = BridgeStatus(active_target=self.switch.target.value,
                           hardware_armed=self.switch.armed,
                           hardware_alive=not hw.monitor.stale(self._now()),
                           goal_active=self._execution is not None, last_event=event)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    # --- state relays -------------------------------------------------------------------------
    def _on_joint_states(self, name: str, msg: JointState) -> None:
        link = self.links[name]
        link.joint_states = msg
        link.monitor.arrived(self._now())
        if link is self._active_link():
            self._joint_states_pub.publish(msg)
        execution = self._execution
        if execution is not None and execution.divergence is not None \
                and execution.link is link and execution.started > 0:
            self._check_divergence(execution, msg)

    def _on_controller_state(self, name: str, msg: JointTrajectoryControllerState) -> None:
        if self.links[name] is self._active_link():
            self._state_pub.publish(msg)

    def _measured(self, link: TargetLink, joints: list[str]) -> list[float] | None:
        msg = link.joint_states
        if msg is None:
            return None
        index = {n: i for i, n in enumerate(msg.name)}
        if any(j not in index for j in joints):
            return None
        return [msg.position[index[j]] for j in joints]

    # --- switching ------------------------------------------------------------------------------
    def _on_switch(self, request: SwitchTarget.Request, response: SwitchTarget.Response):
        try:
            target = Target.parse(request.target)
        except ValueError as exc:
            response.success, response.message = False, str(exc)
        else:
            reason = self._check_hardware_alive(target) or self.switch.switch(target)
            response.success = reason is None
            response.message = reason or f'now routing goals to {target.value}'
            if reason is None:
                self._sync_parameter('target', target.value)
                self._publish_status(f'switched to {target.value}')
        response.active_target = self.switch.target.value
        self.get_logger().info(f'switch to {request.target!r}: {response.message}')
        return response

    def _check_hardware_alive(self, target: Target) -> str | None:
        hw = self.links['hardware']
        if target.uses_hardware and hw.monitor.stale(self._now()):
            return (f'refused to switch to {target.value}: no joint states from the hardware '
                    f'({hw.controller}) for {hw.monitor.silence(self._now()):.2f} s')
        return None

    def _on_arm(self, request: SetBool.Request, response: SetBool.Response):
        if not request.data and self.switch.target.uses_hardware:
            response.success = False
            response.message = (f'cannot disarm while the target is {self.switch.target.value};'
                                ' switch to sim first')
        else:
            self.switch.armed = bool(request.data)
            self._sync_parameter('hardware_armed', self.switch.armed)
            response.success = True
            response.message = 'hardware armed' if self.switch.armed else 'hardware disarmed'
            self._publish_status(response.message)
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
            if p.name == 'target':
                try:
                    target = Target.parse(str(p.value))
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                reason = self._check_hardware_alive(target) or self.switch.switch(target)
                if reason is not None:
                    return SetParametersResult(successful=False, reason=reason)
                self._publish_status(f'switched to {target.value}')
            elif p.name == 'hardware_armed':
                if not p.value and self.switch.target.uses_hardware:
                    return SetParametersResult(successful=False,
                                               reason='switch to sim before disarming')
                self.switch.armed = bool(p.value)
                self._publish_status('hardware armed' if p.value else 'hardware disarmed')
            elif p.name in ('predict', 'start_tolerance', 'divergence_threshold',
                            'divergence_time_slack', 'prediction_timeout'):
                setattr(self, p.name, p.value)
        return SetParametersResult(successful=True)

    # --- goals ----------------------------------------------------------------------------------
    async def _on_goal(self, request: FollowJointTrajectory.Goal) -> GoalResponse:
        """Reject what the target controller would reject (the twin's controller decides)."""
        link = self._active_link()
        if not link.action.server_is_ready():
            self.get_logger().error(f'Goal rejected: the {link.name} controller '
                                    f'{link.controller} is not available')
            return GoalResponse.REJECT
        if self.switch.target.uses_hardware and not self.switch.armed:
            self.get_logger().error('Goal rejected: the hardware is not armed')
            return GoalResponse.REJECT
        if not self.predict:
            return GoalResponse.ACCEPT
        verdict = await self._predict(request, link)
        if verdict is None:
            return GoalResponse.REJECT
        if verdict.predicted_error_code == int(ErrorCode.INVALID_GOAL):
            self.get_logger().error(f'Goal rejected: {verdict.summary}')
            return GoalResponse.REJECT
        self._verdicts[id(request)] = verdict
        return GoalResponse.ACCEPT

    async def _predict(self, request: FollowJointTrajectory.Goal,
                       link: TargetLink) -> Verdict | None:
        if not self._predict_client.service_is_ready():
            self.get_logger().error(f'Goal rejected: the twin\'s prediction service '
                                    f'{self.predict_service} is not available')
            return None
        query = PredictTrajectory.Request(trajectory=request.trajectory,
                                          path_tolerance=request.path_tolerance,
                                          goal_tolerance=request.goal_tolerance,
                                          goal_time_tolerance=request.goal_time_tolerance)
        if link.joint_states is not None:
            query.start_state = link.joint_states  # the forked world starts where the target is
        answer: Future = Future()
        call = self._predict_client.call_async(query)
        call.add_done_callback(lambda done: answer.done() or answer.set_result(done.result()))

        def give_up() -> None:
            timer.cancel()
            if not answer.done():
                answer.set_result(None)
        timer = self.create_timer(self.prediction_timeout, give_up, clock=self._wall,
                                  callback_group=self._clients_group)
        response = await answer
        timer.cancel()
        self.destroy_timer(timer)
        if response is None:
            self._predict_client.remove_pending_request(call)
            self.get_logger().error(f'Goal rejected: the twin gave no verdict within '
                                    f'{self.prediction_timeout:g} s')
            return None
        return response.verdict

    def _on_accepted(self, handle: ServerGoalHandle) -> None:
        previous = self._execution
        if previous is not None:
            # Stop the target too: if the new goal is refused, nothing may keep moving.
            self._finish(previous, 'aborted', int(ErrorCode.INVALID_GOAL), PREEMPTED_MESSAGE)
        verdict = self._verdicts.pop(id(handle.request), None)
        self._verdicts.clear()  # verdicts of goals that never got here are stale
        self._execution = Execution(handle, Future(), self.switch.target, verdict=verdict)
        self.switch.goal_active = True
        self._publish_status('goal accepted')
        handle.execute()

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        execution = self._execution
        if execution is not None and execution.client is handle \
                and execution.target_goal is not None:
            execution.target_goal.cancel_goal_async()
        return CancelResponse.ACCEPT

    async def _execute(self, handle: ServerGoalHandle) -> FollowJointTrajectory.Result:
        execution = self._execution
        if execution is None or execution.client is not handle:
            handle.abort()
            return Result(error_code=int(ErrorCode.INVALID_GOAL), error_string=PREEMPTED_MESSAGE)
        reason = self._refusal(execution)
        if reason is not None:
            self._finish(execution, 'aborted', int(ErrorCode.INVALID_GOAL), reason)
        else:
            # Forward in its own task: a target that never answers must not keep the client's
            # goal from ending when a watchdog gives up on it.
            self.executor.create_task(self._forward, execution)
        status, code, text = await execution.done
        {'succeeded': handle.succeed, 'canceled': handle.canceled}.get(status, handle.abort)()
        return Result(error_code=code, error_string=text)

    def _refusal(self, execution: Execution) -> str | None:
        """Why this accepted goal must not move anything (bad start, unsafe verdict)."""
        trajectory = execution.client.request.trajectory
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
        verdict = execution.verdict
        if verdict is None and self.predict:
            return 'no verdict from the twin for this goal; nothing was moved'
        if verdict is not None and not verdict.safe:
            return f'The twin refused the goal, nothing moved: {verdict.summary}'
        return None

    async def _forward(self, execution: Execution) -> None:
        request = execution.client.request
        link = self._active_link(execution.target)
        execution.link = link
        goal = FollowJointTrajectory.Goal(
            trajectory=request.trajectory, path_tolerance=request.path_tolerance,
            goal_tolerance=request.goal_tolerance, goal_time_tolerance=request.goal_time_tolerance)
        verdict = execution.verdict
        duration = seconds(request.trajectory.points[-1].time_from_start)
        if verdict is not None:  # the twin knows when the controller will report (settling)
            duration = max(duration, verdict.duration)
        # The deadline runs from sending, so a driver that never even answers is caught too.
        execution.timeout = execution_timeout(duration, seconds(request.goal_time_tolerance),
                                              self.timeout_scale, self.timeout_margin)
        execution.forwarded = self._now()
        goal_handle = await link.action.send_goal_async(
            goal, feedback_callback=lambda fb: self._relay_feedback(execution, fb))
        if execution.done.done():  # preempted or aborted meanwhile
            if goal_handle.accepted:
                goal_handle.cancel_goal_async()
            return
        if not goal_handle.accepted:
            self._finish(execution, 'aborted', int(ErrorCode.INVALID_GOAL),
                         f'the {link.name} controller {link.controller} rejected the goal '
                         '(see its log); nothing moved', stop_target=False)
            return
        execution.target_goal = goal_handle
        execution.started = self._now()
        if execution.target is Target.SHADOW and verdict is not None \
                and verdict.predicted_trajectory.points:
            pt = verdict.predicted_trajectory
            execution.divergence = DivergenceMonitor(
                list(pt.joint_names), np.array([seconds(p.time_from_start) for p in pt.points]),
                np.array([p.positions for p in pt.points]), self.divergence_threshold,
                self.divergence_time_slack)
        if execution.client.is_cancel_requested:
            goal_handle.cancel_goal_async()
        goal_handle.get_result_async().add_done_callback(
            lambda future: self._on_target_result(execution, future))

    def _relay_feedback(self, execution: Execution, message) -> None:
        if self._execution is execution and execution.client.is_active:
            execution.client.publish_feedback(message.feedback)

    def _on_target_result(self, execution: Execution, future: Future) -> None:
        response = future.result()
        status = {GoalStatus.STATUS_SUCCEEDED: 'succeeded',
                  GoalStatus.STATUS_CANCELED: 'canceled'}.get(response.status, 'aborted')
        self._finish(execution, status, response.result.error_code,
                     response.result.error_string, stop_target=False)

    def _finish(self, execution: Execution, status: str, code: int, text: str,
                stop_target: bool = True) -> None:
        """End the client's goal once; optionally cancel the target's goal (it then holds)."""
        if stop_target and execution.target_goal is not None:
            execution.target_goal.cancel_goal_async()
        if not execution.done.done():
            execution.done.set_result((status, code, text))
            if status != 'succeeded':
                self.get_logger().error(f'goal {status}: {text}')
        if self._execution is execution:
            self._execution = None
            self.switch.goal_active = False
            self._publish_status(f'goal {status}')

    # --- watchdogs ------------------------------------------------------------------------------
    def _watch(self) -> None:
        execution = self._execution
        if execution is None or execution.link is None or execution.forwarded == 0.0:
            return
        now = self._now()
        link = execution.link
        if link.monitor.stale(now):
            self._hardware_lost(execution, (
                f'no joint states from the {link.name} target ({link.controller}) for '
                f'{link.monitor.silence(now):.2f} s (deadline {link.monitor.deadline:.2f} s)'))
        elif now - execution.forwarded > execution.timeout:
            self._hardware_lost(execution, (
                f'no result from {link.controller} within {execution.timeout:.2f} s '
                f'({self.timeout_scale:g} x duration + {self.timeout_margin:g} s)'))

    def _hardware_lost(self, execution: Execution, why: str) -> None:
        link = execution.link
        if link is not None and link.name == 'hardware':
            self.switch.disarm()  # a lost robot must be re-armed by a person
            self._sync_parameter('hardware_armed', False)
        self._finish(execution, 'aborted', int(ErrorCode.INVALID_GOAL),
                     f'Aborted: {why}. The target is treated as lost; its goal was cancelled and '
                     'will not be resent' + ('; re-arm the hardware before the next goal'
                                             if link is not None and link.name == 'hardware'
                                             else ''))

    def _check_divergence(self, execution: Execution, msg: JointState) -> None:
        monitor = execution.divergence
        measured = self._measured(execution.link, monitor.joints)
        if measured is None:
            return
        t = self._now() - execution.started
        predicted = JointState(name=monitor.joints,
                               position=monitor.predicted_at(t).tolist())
        predicted.header.stamp = msg.header.stamp
        self._predicted_pub.publish(predicted)
        event = monitor.check(t, measured)
        if event is None:
            return
        report = Divergence(joint=event.joint, error=event.error, threshold=event.threshold,
                            time_into_goal=event.time, joint_names=monitor.joints,
                            measured=event.measured.tolist(), predicted=event.predicted.tolist())
        report.header.stamp = msg.header.stamp
        self._divergence_pub.publish(report)
        self._finish(execution, 'aborted', int(ErrorCode.PATH_TOLERANCE_VIOLATED),
                     f'Aborted: {event.describe()}; the hardware goal was cancelled and the '
                     'hardware holds its position')

    # --- topic interface ------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        """~/joint_trajectory: predicted like a goal, then forwarded to the active target."""
        link = self._active_link()
        if self.switch.target.uses_hardware and not self.switch.armed:
            self.get_logger().error('Trajectory ignored: the hardware is not armed')
            return
        if not self.predict:
            self._topic_pubs[link.name].publish(msg)
            return
        request = FollowJointTrajectory.Goal(trajectory=msg)

        async def predict_then_forward() -> None:
            verdict = await self._predict(request, link)
            if verdict is None:
                return
            if not verdict.safe:
                self.get_logger().error(f'Trajectory ignored, nothing moved: {verdict.summary}')
                return
            self._topic_pubs[link.name].publish(msg)
        self.executor.create_task(predict_then_forward)


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin bridge --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(Bridge, args)


if __name__ == '__main__':
    raise SystemExit(main())
