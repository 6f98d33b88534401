"""A FollowJointTrajectory client as MoveIt uses the driver, for scripts, the demo and tests.

Nothing here knows about the twin: it talks to ``<controller>/follow_joint_trajectory`` and
reads ``joint_states``, so it works unchanged against ros2_control's real controller.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from dataclasses import dataclass, field

from action_msgs.msg import GoalStatus
from control_msgs.action import FollowJointTrajectory
from control_msgs.msg import JointTolerance
from rclpy.action import ActionClient
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS, to_duration

#: s: how long a client waits, before its first goal, for the action server to answer it at all
HEARD_TIMEOUT = 10.0

STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: 'SUCCEEDED', GoalStatus.STATUS_ABORTED: 'ABORTED',
                GoalStatus.STATUS_CANCELED: 'CANCELED', GoalStatus.STATUS_UNKNOWN: 'UNKNOWN'}
ERROR_NAMES = {getattr(FollowJointTrajectory.Result, n): n for n in (
    'SUCCESSFUL', 'INVALID_GOAL', 'INVALID_JOINTS', 'OLD_HEADER_TIMESTAMP',
    'PATH_TOLERANCE_VIOLATED', 'GOAL_TOLERANCE_VIOLATED')}


class SpinSafeActionClient(ActionClient):
    """rclpy's ActionClient, safe to create while another thread spins the node.

    rclpy 9 adds the client to the node's waitables before it creates the client's lock, so an
    executor iterating the node meanwhile fails with "'ActionClient' object has no attribute
    '_lock'". The lock is made first here (rclpy then replaces it with its own).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)


@dataclass
class GoalOutcome:
    """What became of a goal: rejected, or a terminal status with the result."""

    accepted: bool
    status: int = GoalStatus.STATUS_UNKNOWN
    error_code: int | None = None
    error_string: str = ''
    feedback: list = field(default_factory=list)

    @property
    def status_name(self) -> str:
        return 'REJECTED' if not self.accepted else STATUS_NAMES.get(self.status, str(self.status))

    @property
    def error_name(self) -> str:
        return ERROR_NAMES.get(self.error_code, str(self.error_code))


def make_trajectory(joints: Sequence[str], positions: Sequence[Sequence[float]],
                    times: Sequence[float]) -> JointTrajectory:
    """A JointTrajectory with positions only (linear segments, as a simple script sends)."""
    traj = JointTrajectory(joint_names=list(joints))
    for q, t in zip(positions, times):
        traj.points.append(JointTrajectoryPoint(positions=[float(v) for v in q],
                                                time_from_start=to_duration(t)))
    return traj


def tolerances(joints: Sequence[str], position: float) -> list[JointTolerance]:
    return [JointTolerance(name=j, position=position) for j in joints]


class TrajectoryClient:
    """Blocking helpers over an rclpy node that some executor spins in another thread."""

    def __init__(self, node: Node, controller: str = '/joint_trajectory_controller',
                 joint_states: str = '/joint_states') -> None:
        self.node = node
        self.action_name = f'{controller.rstrip("/")}/follow_joint_trajectory'
        self.action = SpinSafeActionClient(node, FollowJointTrajectory, self.action_name)
        self._heard = False  # the action server has answered this client (wait_until_heard)
        self._lock = threading.Lock()
        self._latest: JointState | None = None
        self.history: list[JointState] = []
        self.record = False
        self.received = 0  # joint_states messages so far (tests wait on it)
        self._subscription = node.create_subscription(JointState, joint_states,
                                                      self._on_joint_states, SYSTEM_DEFAULT_QOS)

    def close(self) -> None:
        """Release the action client and the subscription (the node lives on)."""
        self.action.destroy()
        self.node.destroy_subscription(self._subscription)

    def _on_joint_states(self, msg: JointState) -> None:
        with self._lock:
            self._latest = msg
            self.received += 1
            if self.record:
                self.history.append(msg)

    def forget_server(self) -> None:
        """The action server may have restarted: make sure it hears the next goal (a new
        server's first goals can be lost while it discovers this client)."""
        self._heard = False

    def latest(self) -> JointState | None:
        with self._lock:
            return self._latest

    def positions(self, joints: Sequence[str]) -> list[float] | None:
        msg = self.latest()
        if msg is None:
            return None
        index = {n: i for i, n in enumerate(msg.name)}
        return [msg.position[index[j]] for j in joints]

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the action server exists and joint states arrive."""
        deadline = time.monotonic() + timeout
        if not self.action.wait_for_server(timeout_sec=timeout):
            return False
        return wait_for(lambda: self.latest() is not None, deadline - time.monotonic())

    def send(self, trajectory: JointTrajectory, timeout: float = 30.0,
             path_tolerance: list[JointTolerance] | None = None,
             goal_tolerance: list[JointTolerance] | None = None,
             goal_time_tolerance: float | None = None,
             on_accepted: Callable | None = None) -> GoalOutcome:
        """Send a goal and wait for its end; ``on_accepted(goal_handle)`` runs once accepted."""
        handle = self.send_async(trajectory, path_tolerance, goal_tolerance, goal_time_tolerance)
        return self.wait_result(handle, timeout, on_accepted)

    def send_async(self, trajectory: JointTrajectory,
                   path_tolerance: list[JointTolerance] | None = None,
                   goal_tolerance: list[JointTolerance] | None = None,
                   goal_time_tolerance: float | None = None) -> '_PendingGoal':
        goal = FollowJointTrajectory.Goal(trajectory=trajectory)
        goal.path_tolerance = path_tolerance or []
        goal.goal_tolerance = goal_tolerance or []
        if goal_time_tolerance is not None:
            goal.goal_time_tolerance = to_duration(goal_time_tolerance)
        if not self._heard:
            self._heard = wait_until_heard(self.node, FollowJointTrajectory, self.action_name,
                                           HEARD_TIMEOUT)
        pending = _PendingGoal()
        future = self.action.send_goal_async(goal, feedback_callback=pending.feedback.append)
        future.add_done_callback(pending.on_response)
        return pending

    def wait_result(self, pending: '_PendingGoal', timeout: float = 30.0,
                    on_accepted: Callable | None = None) -> GoalOutcome:
        deadline = time.monotonic() + timeout
        if not pending.responded.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError('no goal response from the action server')
        if not pending.outcome.accepted:
            return pending.outcome
        if on_accepted is not None:
            on_accepted(pending.handle)
        if not pending.finished.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f'goal did not finish within {timeout} s')
        return pending.outcome


class _PendingGoal:
    """Bookkeeping of one goal across the executor's callbacks."""

    def __init__(self) -> None:
        self.responded = threading.Event()
        self.finished = threading.Event()
        self.outcome = GoalOutcome(accepted=False)
        self.feedback: list = []
        self.handle = None

    def on_response(self, future) -> None:
        self.handle = future.result()
        self.outcome = GoalOutcome(accepted=bool(self.handle.accepted), feedback=self.feedback)
        self.responded.set()
        if self.handle.accepted:
            self.handle.get_result_async().add_done_callback(self.on_result)

    def on_result(self, future) -> None:
        response = future.result()
        self.outcome.status = response.status
        self.outcome.error_code = response.result.error_code
        self.outcome.error_string = response.result.error_string
        self.finished.set()


def wait_for(condition: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    """Poll a condition until it holds or the timeout passes; True if it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def wait_until_heard(node: Node, action_type: Any, action: str, timeout: float) -> bool:
    """Wait until an action server answers this process at all; True if it did.

    A goal sent before the server has discovered the client's reply reader is accepted and
    runs, but its response is lost (DDS, volatile): the client waits forever for a goal that
    moves the arm. A goal cannot be sent twice, so this asks something harmless until it is
    answered: the result of a goal id that does not exist, which rclpy's and rclcpp's action
    servers answer at once with STATUS_UNKNOWN. Call it from a thread the executor is not
    running (it waits on the executor's answers).
    """
    srv = action_type.Impl.GetResultService
    probe = node.create_client(srv, f'{action}/_action/get_result')
    deadline = time.monotonic() + timeout
    try:
        if not wait_for(probe.service_is_ready, timeout, poll=0.01):
            return False
        request = srv.Request()
        request.goal_id.uuid = list(uuid.uuid4().bytes)
        wait = 0.25
        while time.monotonic() < deadline:
            future = probe.call_async(request)
            if wait_for(future.done, min(wait, max(0.0, deadline - time.monotonic())),
                        poll=0.002):
                return True
            probe.remove_pending_request(future)
            wait = min(2 * wait, 2.0)
        return False
    finally:
        node.destroy_client(probe)


#: s: a first request unanswered this long is sent again (see answer_of)
FIRST_ANSWER_WAIT = 1.0


def answer_of(client: Any, request: Any, timeout: float, resend: bool = True) -> Any | None:
    """The response to ``request`` on a ready service client, or None after ``timeout`` s.

    A new client's request can reach the server before the server's response writer has
    discovered the client's reader: the answer is then lost (DDS, volatile), and on a loaded
    machine discovery can take seconds (``ros2 param list`` hangs the same way). With ``resend``
    the request is sent again after FIRST_ANSWER_WAIT s, then after twice that, and so on (a
    slow answer is not asked for again and again): only for idempotent services (parameters,
    switch, arm, predict). Call it from a thread the executor is not running.
    """
    deadline = time.monotonic() + timeout
    future = client.call_async(request)
    wait = FIRST_ANSWER_WAIT
    while resend and deadline - time.monotonic() > 0 and not wait_for(
            future.done, min(wait, max(0.0, deadline - time.monotonic())), poll=0.002):
        client.remove_pending_request(future)
        future = client.call_async(request)
        wait *= 2
    if not wait_for(future.done, max(0.0, deadline - time.monotonic()), poll=0.002):
        client.remove_pending_request(future)
        return None
    return future.result()


def call_service(node: Node, srv_type: Any, name: str, request: Any, timeout: float) -> Any:
    """One call of an idempotent service with a deadline, as ``ros2 service call`` makes it
    (a client made and destroyed around it, the request sent again until first answered).

    Raises TimeoutError naming the service when it is missing or silent.
    """
    client = node.create_client(srv_type, name)
    deadline = time.monotonic() + timeout
    try:
        # Polling, not wait_for_service: a timed-out wait_for_service aborts the interpreter
        # at exit (rclpy, Kilted).
        if not wait_for(client.service_is_ready, timeout, poll=0.01):
            raise TimeoutError(f'{name} is not available within {timeout:g} s')
        response = answer_of(client, request, max(0.0, deadline - time.monotonic()))
        if response is None:
            raise TimeoutError(f'no answer from {name} within {timeout:g} s')
        return response
    finally:
        node.destroy_client(client)


class BackgroundNode:
    """An rclpy node spun in a daemon thread, for scripts, demos and tests (a context manager).

    Call rclpy.init() first; closing shuts the executor down and destroys the node.
    """

    def __init__(self, name: str) -> None:
        import rclpy  # noqa: PLC0415
        from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._closing = False
        self._thread = threading.Thread(target=self._spin, daemon=True, name=name)
        self._thread.start()

    def _spin(self) -> None:
        """Spin until closed. Entities destroyed while the executor waits (a client closing its
        action client or subscription from another thread) make rclpy raise from the wait set
        for that one pass; the next pass no longer has them."""
        from rclpy._rclpy_pybind11 import InvalidHandle, RCLError  # noqa: PLC0415
        from rclpy.executors import ExternalShutdownException  # noqa: PLC0415
        while not self._closing:
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except (InvalidHandle, RCLError):
                continue
            except (ExternalShutdownException, RuntimeError):
                return  # rclpy shut down, or the executor was shut down

    def close(self) -> None:
        self._closing = True
        self.executor.shutdown()
        # A spin thread still inside rcl when the interpreter exits aborts the process
        # ("terminate called without an active exception"): wait for it to leave.
        self._thread.join(timeout=5.0)
        self.node.destroy_node()

    def __enter__(self) -> Node:
        return self.node

    def __exit__(self, *exc: object) -> None:
        self.close()


_COMMANDER = ('MoveOutcome', 'TwinCommander', 'TwinError')


def __getattr__(name: str):
    """TwinCommander (switch, arm, predict, move, perturb) lives in commander.py beside this
    driver client; importing it from here works without a circular import."""
    if name in _COMMANDER:
        from reverse_digital_twin import commander  # noqa: PLC0415
        return getattr(commander, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
