"""The planner's ``~/move_to`` action: go to joint positions or an end-effector pose, safely.

Not a node: the planner node creates one :class:`MoveToServer` on itself. A goal goes through
three stages, reported as feedback:

``planning``
    The target (joint positions, or a pose solved by collision-free inverse kinematics in the
    planner's private world of the twin's scene), a collision-free path to it searched by OMPL
    with a clearance margin, shortened, and timed within velocity, acceleration and jerk limits
    by Ruckig (:func:`~reverse_digital_twin.core.planning.plan_motion`), on a thread of its own.
    A target in collision, out of limits or unreachable, or a search that times out, aborts the
    goal with the reason.
``predicting``
    The planner's prediction workers roll the motion out first; an unsafe verdict aborts the
    goal and nothing moves.
``executing``
    The motion goes as a FollowJointTrajectory goal to the bridge, which predicts it once more
    against the active target and routes it to the twin or the hardware; its feedback becomes
    progress and its result is the goal's result.

Validation errors (unknown joints, size mismatch, NaN, out of limits, unreachable pose, a
velocity_scaling outside (0, 1]) abort with INVALID_GOAL and a clear message, before anything is
sent. A cancel cancels the bridge's goal.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from action_msgs.msg import GoalStatus as ActionStatus
from control_msgs.action import FollowJointTrajectory
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.task import Future
from sensor_msgs.msg import JointState

from rdt_interfaces.action import MoveTo

from reverse_digital_twin.core.controller import ErrorCode
from reverse_digital_twin.core.goal_lifecycle import GoalOutcome, GoalRecord, GoalStatus
from reverse_digital_twin.core.goal_lifecycle import SingleGoalSlot, report
from reverse_digital_twin.core.goal import TrajectoryGoal
from reverse_digital_twin.core.planning import PlanningError, plan_motion, solve_free_ik
from reverse_digital_twin.core.prediction import Verdict
from reverse_digital_twin.core.prediction_pool import PredictionRequest
from reverse_digital_twin.nodes.awaiting import await_within, in_thread
from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS, trajectory_from_goal
from reverse_digital_twin.nodes.verdict_msg import verdict_msg

if TYPE_CHECKING:
    from reverse_digital_twin.nodes.planner_node import PlannerNode

#: velocity_scaling when the goal leaves it at 0.
DEFAULT_VELOCITY_SCALING = 0.5
#: IK: extra starts when the current state does not converge (deterministic).
IK_RESTARTS = 5
#: No result from the bridge within scale x duration + margin (wall s): the bridge is gone.
RESULT_TIMEOUT_SCALE = 3.0
RESULT_TIMEOUT_MARGIN = 15.0
#: With start_joint_states: a message older than this (wall s) is not used as the start.
START_STATE_MAX_AGE = 0.5


@dataclass(frozen=True)
class PlanningSettings:
    """How ~/move_to searches its paths (the planner's ``planning.*`` parameters)."""

    clearance: float  # m, robot to scene objects
    self_clearance: float  # m, robot link to robot link
    timeout: float  # s of wall time for one search
    seed: int  # the same request gets the same path


PREEMPTED = GoalOutcome(GoalStatus.ABORTED, int(ErrorCode.INVALID_GOAL),
                        'Preempted by a new move_to goal; the motion was stopped')


@dataclass
class MoveToGoal:
    """A move_to goal's own state: the bridge goal it runs as, and the twin's verdict."""

    bridge_goal: object | None = None  # ClientGoalHandle at the bridge
    bridge_done: bool = False  # the bridge reported its result
    verdict: Verdict | None = None


class MoveToServer:
    """Serves ``~/move_to`` (rdt_interfaces/action/MoveTo) on the planner node.

    Args:
        node: the planner node (its controller configuration, IK world, twin state and
            prediction pool).
        bridge_controller: where motions go, as a controller name whose
            ``<name>/follow_joint_trajectory`` is served: the bridge (default), or the twin's own
            emulated controller (e.g. ``joint_trajectory_controller``, relative to the node's
            namespace) when running without a bridge.
        start_joint_states: '' (default): motions start from the twin's measured state
            (``node.twin_state()``). A joint_states topic, e.g. the bridge's ``/joint_states``
            (the active target's): motions start from its latest message when it is fresh
            (:data:`START_STATE_MAX_AGE`) and names every controller joint, so that a motion
            for the hardware starts where the hardware is, not where the idle twin is.
    """

    def __init__(self, node: 'PlannerNode',
                 bridge_controller: str = '/joint_trajectory_controller',
                 start_joint_states: str = '') -> None:
        self.node = node
        self.bridge_controller = bridge_controller.rstrip('/') or '/joint_trajectory_controller'
        # The action server awaits the bridge while executing: its callbacks (goal, cancel,
        # execute) and the bridge client's answers must not wait on each other or on the node's
        # default group.
        self._planning = threading.Lock()
        self._server_group = ReentrantCallbackGroup()
        self._client_group = ReentrantCallbackGroup()
        self._bridge = ActionClient(node, FollowJointTrajectory,
                                    f'{self.bridge_controller}/follow_joint_trajectory',
                                    callback_group=self._client_group)
        self.goals: SingleGoalSlot[MoveToGoal] = SingleGoalSlot(Future, self._on_finished)
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._start_msg: tuple[float, JointState] | None = None  # (wall time, message)
        self._subscription = None
        if start_joint_states:
            self._subscription = node.create_subscription(
                JointState, start_joint_states, self._on_joint_states, SYSTEM_DEFAULT_QOS,
                callback_group=self._client_group)
        self._server = ActionServer(node, MoveTo, '~/move_to', self._execute,
                                    goal_callback=self._on_goal,
                                    handle_accepted_callback=self._on_accepted,
                                    cancel_callback=self._on_cancel,
                                    callback_group=self._server_group)

    def destroy(self) -> None:
        self._server.destroy()
        self._bridge.destroy()
        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)

    # --- callbacks ------------------------------------------------------------------------------
    def _on_joint_states(self, msg: JointState) -> None:
        self._start_msg = (self._now(), msg)

    def _now(self) -> float:
        return self._wall.now().nanoseconds * 1e-9

    def _start_state(self) -> tuple[dict[str, float], dict[str, float]]:
        """Positions and velocities (joint -> value) the motion starts from."""
        node = self.node
        state = node.twin_state()  # one snapshot: replaced at every twin joint state
        positions = dict(state.positions) if state is not None else {}
        velocities = dict(state.velocities) if state is not None else {}
        latest = self._start_msg
        if latest is not None and self._now() - latest[0] <= START_STATE_MAX_AGE:
            msg = latest[1]
            index = {n: i for i, n in enumerate(msg.name)}
            joints = node.controller_config.joints
            if all(j in index and index[j] < len(msg.position) for j in joints):
                for j in joints:
                    positions[j] = float(msg.position[index[j]])
                    velocities[j] = float(msg.velocity[index[j]]) \
                        if len(msg.velocity) == len(msg.name) else 0.0
        return positions, velocities

    def _on_goal(self, request: MoveTo.Goal) -> GoalResponse:
        return GoalResponse.ACCEPT  # every refusal comes back as a result with its reason

    def _on_accepted(self, handle: ServerGoalHandle) -> None:
        """One motion at a time: a new goal preempts the running one (which stops)."""
        self.goals.accept(handle, MoveToGoal(), PREEMPTED)
        handle.execute()

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        record = self.goals.record_for(handle)
        if record is not None and record.data.bridge_goal is not None:
            record.data.bridge_goal.cancel_goal_async()
        return CancelResponse.ACCEPT

    def _on_finished(self, record: GoalRecord['MoveToGoal']) -> None:
        """A motion that ends before the bridge reports (preempted, timed out) is stopped."""
        data = record.data
        if data.bridge_goal is not None and not data.bridge_done:
            data.bridge_goal.cancel_goal_async()
        outcome = record.outcome
        text = outcome.error_string
        line = f'move_to {outcome.status.value}: {text}' if text \
            else f'move_to {outcome.status.value}'
        if outcome.status is GoalStatus.SUCCEEDED:  # one call site per severity (rclpy insists)
            self.node.get_logger().info(line)
        else:
            self.node.get_logger().error(line)

    def _feedback(self, handle: ServerGoalHandle, stage: str, progress: float) -> None:
        if handle.is_active:
            handle.publish_feedback(MoveTo.Feedback(stage=stage,
                                                    progress=float(min(max(progress, 0.0), 1.0))))

    def _end(self, record: GoalRecord['MoveToGoal'], status: GoalStatus, code: int, text: str,
             verdict: Verdict | None = None) -> None:
        """End the goal once (a preemption may have ended it already)."""
        if verdict is not None:
            record.data.verdict = verdict
        if status is GoalStatus.CANCELED and not record.handle.is_cancel_requested:
            status = GoalStatus.ABORTED
        self.goals.finish(record, GoalOutcome(status, int(code), text))

    def _result_msg(self, record: GoalRecord['MoveToGoal']) -> MoveTo.Result:
        outcome = record.outcome
        result = MoveTo.Result(error_code=outcome.error_code, error_string=outcome.error_string)
        if record.data.verdict is not None:
            result.verdict = verdict_msg(record.data.verdict, self.node.twin_time())
        return result

    # --- the goal -------------------------------------------------------------------------------
    async def _execute(self, handle: ServerGoalHandle) -> MoveTo.Result:
        record = self.goals.record_for(handle)
        if record is None:  # preempted before it started
            report(handle, PREEMPTED)
            return MoveTo.Result(error_code=PREEMPTED.error_code,
                                 error_string=PREEMPTED.error_string)
        if not record.finished:
            await self._move(record)
        report(handle, record.outcome)
        return self._result_msg(record)

    async def _move(self, record: GoalRecord['MoveToGoal']) -> None:
        """Plan, predict, execute through the bridge; ends ``record`` on every path."""
        handle = record.handle
        node = self.node
        config = node.controller_config
        request: MoveTo.Goal = handle.request
        joints = list(config.joints)
        self._feedback(handle, 'planning', 0.0)
        measured, velocities = self._start_state()
        missing = [j for j in joints if j not in measured]
        if missing:
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'no state for joints {missing} yet (is the twin running?); '
                             'nothing moved')
        start = np.array([measured[j] for j in joints])
        limits = config.limits or {j.name: j.limits for j in node.model.movable_joints}
        try:
            scaling = self._velocity_scaling(request.velocity_scaling)

            def plan() -> TrajectoryGoal:  # IK and the path search take up to seconds
                with self._planning:  # one search at a time in the one private world
                    target = self._target(request, joints, start)
                    settings = node.planning
                    return plan_motion(node.ik_world, start, target, joints, limits,
                                       velocity_scaling=scaling, timeout=settings.timeout,
                                       seed=settings.seed, checker=node.checker)
            trajectory = await in_thread(node, plan, 'move_to_planning')
        except PlanningError as exc:
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'Planning failed ({exc.reason}), nothing moved: {exc}')
        except ValueError as exc:
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'Invalid goal, nothing moved: {exc}')
        duration = trajectory.points[-1].time_from_start
        if handle.is_cancel_requested:
            return self._end(record, GoalStatus.CANCELED, ErrorCode.SUCCESSFUL,
                             'Canceled while planning; nothing moved')

        self._feedback(handle, 'predicting', 0.0)
        try:
            verdict = await node.predict(PredictionRequest(trajectory, measured, velocities,
                                                           now=node.twin_time()))
        except ValueError as exc:  # the measured state is not usable (non-finite)
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'Could not predict the motion, nothing moved: {exc}')
        node.get_logger().info(
            f'move_to: {duration:.2f} s motion predicted in '
            f'{verdict.computation_time * 1e3:.0f} ms: '
            f'{"safe" if verdict.safe else verdict.summary}')
        if not verdict.safe:
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'The twin refused the motion, nothing moved: {verdict.summary}',
                             verdict)
        if handle.is_cancel_requested:
            return self._end(record, GoalStatus.CANCELED, ErrorCode.SUCCESSFUL,
                             'Canceled before execution; nothing moved', verdict)

        self._feedback(handle, 'executing', 0.0)
        if not self._bridge.server_is_ready():
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'{self.bridge_controller}/follow_joint_trajectory is not '
                             'available (is the bridge running?); nothing moved', verdict)
        started: list[float] = []

        def on_feedback(_message) -> None:
            if started:
                self._feedback(handle, 'executing', (node.twin_time() - started[0]) / duration)

        bridge_goal = await self._bridge.send_goal_async(
            FollowJointTrajectory.Goal(trajectory=trajectory_from_goal(trajectory)),
            feedback_callback=on_feedback)
        if bridge_goal is None or not bridge_goal.accepted:
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'{self.bridge_controller} rejected the motion (see its log: its '
                             'own prediction against the active target, or the hardware not '
                             'armed); nothing moved', verdict)
        started.append(node.twin_time())
        record.data.bridge_goal = bridge_goal
        if record.finished or handle.is_cancel_requested:  # preempted or cancelled meanwhile
            bridge_goal.cancel_goal_async()
        timeout = RESULT_TIMEOUT_SCALE * duration + RESULT_TIMEOUT_MARGIN
        answered, response = await await_within(node, bridge_goal.get_result_async(), timeout,
                                                self._wall, self._client_group)
        record.data.bridge_done = answered
        if record.finished:
            return
        if not answered:  # _on_finished cancels the bridge goal
            return self._end(record, GoalStatus.ABORTED, ErrorCode.INVALID_GOAL,
                             f'no result from {self.bridge_controller} within '
                             f'{RESULT_TIMEOUT_SCALE * duration + RESULT_TIMEOUT_MARGIN:.1f} s; '
                             'its goal was cancelled', verdict)
        result = response.result
        if response.status == ActionStatus.STATUS_SUCCEEDED \
                and result.error_code == FollowJointTrajectory.Result.SUCCESSFUL:
            self._feedback(handle, 'executing', 1.0)
            return self._end(record, GoalStatus.SUCCEEDED, result.error_code, result.error_string,
                             verdict)
        status = GoalStatus.CANCELED if response.status == ActionStatus.STATUS_CANCELED \
            else GoalStatus.ABORTED
        text = result.error_string or (
            'Canceled: the motion was stopped where it was' if status is GoalStatus.CANCELED
            else f'{self.bridge_controller} aborted the motion')
        return self._end(record, status, result.error_code, text, verdict)

    # --- planning -------------------------------------------------------------------------------
    @staticmethod
    def _velocity_scaling(value: float) -> float:
        if value == 0.0:
            return DEFAULT_VELOCITY_SCALING
        if not (math.isfinite(value) and 0.0 < value <= 1.0):
            raise ValueError(f'velocity_scaling must be in (0, 1] (0 means '
                             f'{DEFAULT_VELOCITY_SCALING}), got {value}')
        return float(value)

    def _target(self, request: MoveTo.Goal, joints: list[str], start: np.ndarray) -> np.ndarray:
        """The goal positions of the controller joints, from joint positions or a pose."""
        names, positions = list(request.joint_names), list(request.positions)
        if positions:
            return self._joint_target(names, positions, joints, start)
        if names:
            raise ValueError(f'joint_names {names} given without positions')
        return self._pose_target(request, joints, start)

    @staticmethod
    def _joint_target(names: list[str], positions: list[float], joints: list[str],
                      start: np.ndarray) -> np.ndarray:
        if not names:  # the controller's joint order
            if len(positions) != len(joints):
                raise ValueError(f'{len(positions)} positions without joint_names; give one per '
                                 f'controller joint {joints}, or name them')
            names = joints
        if len(names) != len(positions):
            raise ValueError(f'{len(names)} joint_names but {len(positions)} positions')
        unknown = [n for n in names if n not in joints]
        if unknown:
            raise ValueError(f'unknown joints {unknown}; the controller joints are {joints}')
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f'duplicated joints {duplicated}')
        target = start.copy()  # joints left out keep their position
        for name, value in zip(names, positions):
            if not math.isfinite(value):
                raise ValueError(f'position of joint {name} is not finite: {value}')
            target[joints.index(name)] = value
        return target

    def _pose_target(self, request: MoveTo.Goal, joints: list[str],
                     start: np.ndarray) -> np.ndarray:
        world = self.node.ik_world
        pose = request.pose.pose
        position = [pose.position.x, pose.position.y, pose.position.z]
        o = pose.orientation
        quaternion = [o.x, o.y, o.z, o.w]
        orientation = None if not any(quaternion) else quaternion  # all zero: position only
        tip = request.tip_link or world.tip_link
        return solve_free_ik(world, tip, position, orientation, joints, start,
                             frame=request.pose.header.frame_id, attempts=IK_RESTARTS + 1,
                             checker=self.node.checker)
