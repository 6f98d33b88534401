"""Emulated controller: joint_trajectory_controller + joint_state_broadcaster over the sim.

Exposes, under its node name (default ``joint_trajectory_controller``) and namespace, exactly
what ros2_control exposes: ``~/follow_joint_trajectory``, ``~/joint_trajectory``,
``~/controller_state``, ``~/query_state``, plus ``joint_states`` and ``dynamic_joint_states``.
Each physics state from the sim node runs one control cycle of the core control law and
sends the command back on ``physics/joint_commands``. Hosted in the hardware's own process (the
stand-in driver, as ros2_control_node hosts its controllers), the hardware loop calls
:meth:`EmulatedController.control_cycle` directly instead: read, update and write in one loop.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from control_msgs.action import FollowJointTrajectory
from control_msgs.msg import DynamicJointState, InterfaceValue, JointTrajectoryControllerState
from control_msgs.srv import QueryTrajectoryState
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from reverse_digital_twin.core.controller import CycleResult, ErrorCode, PREEMPTED_MESSAGE
from reverse_digital_twin.core.controller import TrajectoryController
from reverse_digital_twin.core.controller_config import CONTROLLER_PARAMETERS, controller_config
from reverse_digital_twin.core.controller_config import joint_parameters
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal_lifecycle import GoalOutcome, GoalStatus, SingleGoalSlot
from reverse_digital_twin.core.goal_lifecycle import report
from reverse_digital_twin.core.robot_model import parse_urdf
from reverse_digital_twin.core.tolerances import apply_goal_tolerances
from reverse_digital_twin.core.trajectory import JointSample
from reverse_digital_twin.nodes.side_executor import SideExecutor
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS, PHYSICS_QOS, SYSTEM_DEFAULT_QOS
from reverse_digital_twin.nodes.ros_common import declare, goal_from_msg, point_msg, seconds
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, to_time
from reverse_digital_twin.nodes.ros_common import declare_niceness, tolerance_requests


@dataclass
class ControllerGoal:
    """What the control loop decided for the active goal, reported at the monitor rate."""

    pending: GoalOutcome | None = None


PREEMPTED = GoalOutcome(GoalStatus.ABORTED, int(ErrorCode.INVALID_GOAL), PREEMPTED_MESSAGE)


class EmulatedController(Node):
    """joint_trajectory_controller's interface and behaviour, driving the PyBullet twin."""

    def __init__(self, **kwargs) -> None:
        super().__init__('joint_trajectory_controller', **kwargs)
        joints = self.declare_parameter(
            'joints', Parameter.Type.STRING_ARRAY,
            _descriptor('Joints this controller commands, in its own order', read_only=True))
        if joints.type_ == Parameter.Type.NOT_SET or not joints.value:
            raise ConfigError(f'{self.get_fully_qualified_name()}: parameter joints is not set; '
                              'list the controlled joints (see config/*.yaml)')
        self.joints = tuple(joints.value)
        declared = {'joints': self.joints}
        for name, (default, text) in {**CONTROLLER_PARAMETERS,
                                      **joint_parameters(self.joints)}.items():
            declared[name] = declare(self, name, default, text, read_only=True)
        declare_niceness(self)
        check_unknown_parameters(self)
        self.command_interfaces = tuple(declared['command_interfaces'])
        self.state_interfaces = tuple(declared['state_interfaces'])
        self.update_rate = float(declared['update_rate'])
        self.frame_id = declared['frame_id']
        self._config_values = declared  # never rclpy's own _parameters
        # fail at start on bad values, not at the first goal
        controller_config(declared, None, self.get_fully_qualified_name())
        self.core: TrajectoryController | None = None
        self._inactive_reason = 'waiting for robot_description'
        self._state_index: list[int] | None = None
        self._state_names: list[str] = []
        self._last_time: float | None = None
        self._last_cycle: CycleResult | None = None
        self.goals: SingleGoalSlot[ControllerGoal] = SingleGoalSlot(Future)
        # The control cycle may run in the hardware loop's thread (in_process); goals, cancels
        # and streamed trajectories arrive in the executor's: one lock around the core.
        self._lock = threading.RLock()

        # The control cycle answers each physics state on a thread of its own (see
        # side_executor): on this node's executor every state would wake the action server,
        # services and timers too, and the sim waits for the command.
        self._physics: SideExecutor | None = SideExecutor(self, 'physics')
        self._command_pub = self._physics.node.create_publisher(
            JointState, self.resolve_topic_name('physics/joint_commands'), PHYSICS_QOS)
        self._joint_states_pub = self.create_publisher(JointState, 'joint_states',
                                                       SYSTEM_DEFAULT_QOS)
        self._dynamic_pub = self.create_publisher(DynamicJointState, 'dynamic_joint_states',
                                                  SYSTEM_DEFAULT_QOS)
        self._state_pub = self.create_publisher(JointTrajectoryControllerState,
                                                '~/controller_state', SYSTEM_DEFAULT_QOS)
        self.create_subscription(String, 'robot_description', self._on_description, LATCHED_QOS)
        self._physics.subscribe(JointState, self.resolve_topic_name('physics/joint_states'),
                                self._on_physics_state, PHYSICS_QOS)
        self.create_subscription(JointTrajectory, '~/joint_trajectory', self._on_trajectory,
                                 SYSTEM_DEFAULT_QOS)
        self._action_server = ActionServer(
            self, FollowJointTrajectory, '~/follow_joint_trajectory', self._execute,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel)
        self.create_service(QueryTrajectoryState, '~/query_state', self._on_query_state)
        # Results and feedback go out on a wall-clock timer, as upstream's action monitor does.
        self.create_timer(1.0 / float(declared['action_monitor_rate']), self._monitor,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

    def run_in_process(self) -> None:
        """The hardware loop in this process calls :meth:`control_cycle` itself: no physics
        topics between the two (nothing to be late on a busy machine)."""
        if self._physics is not None:
            self._physics.stop()  # never started: destroys its executor and helper node
        self._physics = self._command_pub = None

    def start(self) -> None:
        """Answer physics states (the node is fully configured by now)."""
        if self._physics is not None:
            self._physics.start()

    def stop(self) -> None:
        if self._physics is not None:
            self._physics.stop()

    # --- configuration from the robot description -------------------------------------------
    def _on_description(self, msg: String) -> None:
        with self._lock:
            self._configure(msg)

    def _configure(self, msg: String) -> None:
        try:
            model = parse_urdf(msg.data, 'robot_description')
            model.check_joints(self.joints, f'{self.get_fully_qualified_name()} joints')
        except ConfigError as exc:
            self._inactive_reason = str(exc)
            self.core = None
            self.get_logger().error(f'cannot activate: {exc}')
            return
        self.core = TrajectoryController(
            controller_config(self._config_values, model, self.get_fully_qualified_name()))
        self._inactive_reason = 'waiting for the first joint state from the sim'
        self.get_logger().info(f'configured for {model.name}: joints {list(self.joints)}, '
                               f'command interfaces {list(self.command_interfaces)}')

    @property
    def active(self) -> bool:
        return self.core is not None and self._last_cycle is not None

    # --- control cycle ------------------------------------------------------------------------
    def _on_physics_state(self, msg: JointState) -> None:
        command = self.control_cycle(msg)
        if command is not None and self._command_pub is not None:
            self._command_pub.publish(command)

    def control_cycle(self, msg: JointState) -> JointState | None:
        """One cycle on a measured state: the command answering it (stamped with the state's
        stamp), or None while the controller is inactive. Publishes the joint states, the
        dynamic joint states and the controller state of the cycle."""
        with self._lock:
            return self._cycle(msg)

    def _cycle(self, msg: JointState) -> JointState | None:
        if self.core is None:
            return None
        if list(msg.name) != self._state_names:
            missing = [j for j in self.joints if j not in msg.name]
            if missing:
                self.get_logger().error(f'physics/joint_states lacks joints {missing}',
                                        throttle_duration_sec=5.0)
                return None
            self._state_names = list(msg.name)
            self._state_index = [self._state_names.index(j) for j in self.joints]
        now = seconds(msg.header.stamp)
        period = 1.0 / self.update_rate
        idx = self._state_index
        positions = np.array([msg.position[i] for i in idx])
        velocities = np.array([msg.velocity[i] for i in idx]) \
            if 'velocity' in self.state_interfaces and msg.velocity else np.zeros(len(idx))
        measured = JointSample(positions, velocities, np.zeros(len(idx)))
        if self._last_time is not None:
            if now < self._last_time - 1e-9:
                self._on_time_jump(now, measured)
            elif now - self._last_time > max(0.5, 20 * period):
                self._on_reconnect(now - self._last_time, measured)
            elif now > self._last_time:
                period = now - self._last_time
        self._last_time = now
        cycle = self.core.update(now, measured, period)
        self._last_cycle = cycle
        active = self.goals.active
        if cycle.outcome is not None and active is not None and active.data.pending is None:
            status = GoalStatus.SUCCEEDED if cycle.outcome.succeeded else GoalStatus.ABORTED
            active.data.pending = GoalOutcome(status, int(cycle.outcome.error_code),
                                              cycle.outcome.error_string)
            if not cycle.outcome.succeeded:
                self.get_logger().error(cycle.outcome.error_string)
        self._publish_joint_states(msg)
        self._publish_controller_state(msg, cycle)
        return self._command_msg(msg, cycle)

    def _on_time_jump(self, now: float, measured: JointSample) -> None:
        """Sim time went backwards (a reset): abort the goal and hold, never wait to catch up."""
        self.get_logger().warning(f'time jumped back from {self._last_time:.3f} s to {now:.3f} s; '
                                  'holding position')
        self._abort_active('Aborted: simulated time jumped backwards (sim reset)')
        self.core.hold(measured)

    def _on_reconnect(self, gap: float, measured: JointSample) -> None:
        """States resumed after a gap (hardware restarted): hold where the arm is now, never
        drive it back to where it was before (as ros2_control does on re-activation)."""
        self.get_logger().warning(f'joint states resumed after {gap:.2f} s; holding the measured '
                                  'position, no earlier command is resent')
        self._abort_active(f'Aborted: the hardware stopped reporting for {gap:.2f} s')
        self.core.hold(measured)

    def _abort_active(self, text: str) -> None:
        active = self.goals.active
        if active is not None and active.data.pending is None:
            active.data.pending = GoalOutcome(GoalStatus.ABORTED, int(ErrorCode.INVALID_GOAL),
                                              text)

    def _command_msg(self, state: JointState, cycle: CycleResult) -> JointState:
        cmd = JointState()
        cmd.header.stamp = state.header.stamp  # echoes the cycle it answers (lockstep)
        cmd.name = list(self.joints)
        c = cycle.command
        if c.positions is not None:
            cmd.position = c.positions.tolist()
        if c.velocities is not None:
            cmd.velocity = c.velocities.tolist()
        if c.efforts is not None:
            cmd.effort = c.efforts.tolist()
        return cmd

    def _publish_joint_states(self, state: JointState) -> None:
        out = JointState()
        out.header.stamp = state.header.stamp
        out.header.frame_id = self.frame_id
        out.name = list(state.name)
        n = len(state.name)
        nan = [math.nan] * n
        out.position = list(state.position) or nan
        out.velocity = list(state.velocity) or nan
        out.effort = list(state.effort) or nan
        self._joint_states_pub.publish(out)
        dyn = DynamicJointState()
        dyn.header = out.header
        dyn.joint_names = out.name
        dyn.interface_values = [
            InterfaceValue(interface_names=['position', 'velocity', 'effort'],
                           values=[out.position[i], out.velocity[i], out.effort[i]])
            for i in range(n)]
        self._dynamic_pub.publish(dyn)

    def _publish_controller_state(self, state: JointState, cycle: CycleResult) -> None:
        msg = JointTrajectoryControllerState()
        msg.header.stamp = state.header.stamp
        msg.joint_names = list(self.joints)
        traj = self.core.active_trajectory if self.core else None
        since = cycle.time - traj.start_time \
            if traj is not None and traj.start_time is not None else 0.0
        msg.reference = point_msg(cycle.reference, since)
        has_vel = 'velocity' in self.state_interfaces
        msg.feedback = point_msg(cycle.feedback, velocities=has_vel, accelerations=False)
        msg.error = point_msg(cycle.error, velocities=has_vel, accelerations=False)
        c = cycle.command
        msg.output.positions = [] if c.positions is None else c.positions.tolist()
        msg.output.velocities = [] if c.velocities is None else c.velocities.tolist()
        msg.output.effort = [] if c.efforts is None else c.efforts.tolist()
        if hasattr(msg, 'speed_scaling_factor'):
            msg.speed_scaling_factor = 1.0
        self._state_pub.publish(msg)

    # --- topic interface ----------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        """~/joint_trajectory: replaces the trajectory; an active goal is judged on it."""
        with self._lock:
            self._take_trajectory(msg)

    def _take_trajectory(self, msg: JointTrajectory) -> None:
        if not self.active:
            self.get_logger().error(f'Trajectory ignored: controller is not running '
                                    f'({self._inactive_reason})')
            return
        goal = goal_from_msg(msg)
        reason = self.core.validate(goal, self._now())
        if reason is not None:
            self.get_logger().error(f'Trajectory ignored: {reason}')
            return
        self.core.accept(goal)

    # --- action interface ---------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_goal(self, request: FollowJointTrajectory.Goal) -> GoalResponse:
        with self._lock:
            return self._judge_goal(request)

    def _judge_goal(self, request: FollowJointTrajectory.Goal) -> GoalResponse:
        if not self.active:
            self.get_logger().error(f'Goal rejected: Controller is not running '
                                    f'({self._inactive_reason})')
            return GoalResponse.REJECT
        reason = self.core.validate(goal_from_msg(request.trajectory), self._now())
        if reason is not None:
            self.get_logger().error(f'Goal rejected: {reason}')
            return GoalResponse.REJECT
        self.get_logger().info('Received new action goal')
        return GoalResponse.ACCEPT

    def _on_accepted(self, handle: ServerGoalHandle) -> None:
        request = handle.request
        tolerances, why = apply_goal_tolerances(
            self.core.config.default_tolerances, self.joints,
            tolerance_requests(request.path_tolerance), tolerance_requests(request.goal_tolerance),
            seconds(request.goal_time_tolerance))
        if why is not None:
            self.get_logger().warning(f'Goal tolerances ignored, using the defaults: {why}')
        with self._lock:
            self.core.accept(goal_from_msg(request.trajectory), tolerances)
            self.goals.accept(handle, ControllerGoal(), PREEMPTED)
        handle.execute()

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        if self.goals.is_active(handle):
            self.get_logger().info(
                'Canceling active action goal because cancel callback received.')
            with self._lock:
                self.core.hold()
        return CancelResponse.ACCEPT

    async def _execute(self, handle: ServerGoalHandle) -> FollowJointTrajectory.Result:
        record = self.goals.record_for(handle)
        outcome = PREEMPTED if record is None else await record.done  # preempted before start
        report(handle, outcome)
        return FollowJointTrajectory.Result(error_code=outcome.error_code,
                                            error_string=outcome.error_string)

    def _monitor(self) -> None:
        with self._lock:
            self._report_active()

    def _report_active(self) -> None:
        record = self.goals.active
        if record is None:
            return
        if record.handle.is_cancel_requested:
            self.goals.cancel(record)
        elif record.data.pending is not None:
            self.goals.finish(record, record.data.pending)
        elif self._last_cycle is not None and record.handle.is_active:
            cycle = self._last_cycle
            fb = FollowJointTrajectory.Feedback()
            fb.header.stamp = to_time(cycle.time)
            fb.joint_names = list(self.joints)
            fb.desired = point_msg(cycle.reference)
            fb.actual = point_msg(cycle.feedback, accelerations=False)
            fb.error = point_msg(cycle.error, accelerations=False)
            if hasattr(fb, 'index'):  # control_msgs >= 6.3 (Kilted); absent in Jazzy
                fb.index = cycle.index
            record.handle.publish_feedback(fb)

    def _on_query_state(self, request, response):
        with self._lock:
            return self._answer_query(request, response)

    def _answer_query(self, request, response):
        traj = self.core.active_trajectory if self.core else None
        t = seconds(request.time)
        if traj is None or not traj.started:
            response.success, response.message = False, 'No active trajectory'
            return response
        sample = traj.sample(t)
        if sample is None:
            response.success = False
            response.message = 'Requested time is before the start of the active trajectory'
            return response
        response.success = True
        response.name = list(self.joints)
        response.position = sample.state.positions.tolist()
        response.velocity = sample.state.velocities.tolist()
        response.acceleration = sample.state.accelerations.tolist()
        return response


def _descriptor(description: str, read_only: bool = False):
    from rcl_interfaces.msg import ParameterDescriptor  # noqa: PLC0415
    return ParameterDescriptor(description=description, read_only=read_only)


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin emulated_controller --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(EmulatedController, args)


if __name__ == '__main__':
    raise SystemExit(main())
