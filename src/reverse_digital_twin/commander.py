"""TwinCommander: every operation on a running twin graph, in one place.

The CLI, the demo, the benchmarks and the tests switch the bridge's target, arm the hardware,
ask for predictions, move through the planner and perturb the stand-in through this class, so
the calls (and the graph's names, all from :class:`~reverse_digital_twin.stack.TwinNames`) are
written once. Like :class:`~reverse_digital_twin.client.TrajectoryClient` it works over an rclpy
node that an executor spins in another thread; every call has a timeout and fails with a
:class:`TwinError` that says what to check.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from action_msgs.msg import GoalStatus
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rdt_interfaces.action import MoveTo
from rdt_interfaces.msg import BridgeStatus, Divergence, Verdict
from rdt_interfaces.srv import PredictTrajectory, SwitchTarget
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from reverse_digital_twin.client import GoalOutcome, SpinSafeActionClient, TrajectoryClient
from reverse_digital_twin.client import answer_of, wait_for, wait_until_heard
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS
from reverse_digital_twin.stack import TwinNames

TARGETS = ('sim', 'hardware', 'shadow')


class TwinError(RuntimeError):
    """A twin operation failed: service missing, no answer in time, or a refusal."""


def _hint() -> str:
    return f'is `rdt up` running? (ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")})'


@dataclass
class MoveOutcome(GoalOutcome):
    """What became of a MoveTo goal (the planner's verdict included when it refused)."""

    verdict: Verdict | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == GoalStatus.STATUS_SUCCEEDED and self.error_code == 0


class TwinCommander:
    """Switch, arm, predict, move, status and stand-in perturbations of a running twin graph.

    ``client`` drives the bridge as any driver client would; ``sim`` and ``hardware`` watch the
    two targets directly (their controllers and joint states), for checks and measurements.
    """

    def __init__(self, node: Node, names: TwinNames | None = None,
                 timeout: float = 10.0) -> None:
        self.node = node
        self.names = names or TwinNames()
        self.timeout = timeout
        n = self.names
        self._views: dict[str, TrajectoryClient] = {}
        self._lock = threading.Lock()
        self._services: dict[str, Any] = {}
        self._answered: set[str] = set()  # services that have answered this commander once
        self._move: ActionClient | None = None
        self._move_name = ''
        self.statuses: list[BridgeStatus] = []
        self.divergences: list[Divergence] = []
        self._subscriptions = [
            node.create_subscription(BridgeStatus, n.status, self._on_status, LATCHED_QOS),
            node.create_subscription(Divergence, n.divergence, self.divergences.append, 10)]

    # The three views are made on first use: each listens to 100 Hz joint states, which a
    # commander that only switches or arms (rdt switch, the web view) has no use for.
    @property
    def client(self) -> TrajectoryClient:
        """The bridge, driven as any driver client drives it."""
        return self._view('client', self.names.bridge, self.names.joint_states)

    @property
    def sim(self) -> TrajectoryClient:
        """The twin's own controller and joint states."""
        return self._view('sim', self.names.sim_controller, self.names.sim_joint_states)

    @property
    def hardware(self) -> TrajectoryClient:
        """The hardware's controller and joint states."""
        return self._view('hardware', self.names.hardware_controller,
                          self.names.hardware_joint_states)

    def _view(self, key: str, controller: str, joint_states: str) -> TrajectoryClient:
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = self._views[key] = TrajectoryClient(self.node, controller, joint_states)
            return view

    def _on_status(self, msg: BridgeStatus) -> None:
        with self._lock:
            self.statuses.append(msg)

    def close(self) -> None:
        """Release every client and subscription (the node lives on)."""
        for view in self._views.values():
            view.close()
        self._views.clear()
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        for client in self._services.values():
            self.node.destroy_client(client)
        self._services.clear()
        if self._move is not None:
            self._move.destroy()
            self._move = None

    # --- readiness ---------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 60.0, hardware: bool = False,
                   alive: Callable[[], str | None] | None = None) -> None:
        """Wait for the bridge's action server, the predict service and joint states (and the
        hardware's with ``hardware``). Raises TwinError naming what is missing.

        ``alive()`` may return a reason to give up early (e.g. a node process died).
        """
        deadline = time.monotonic() + timeout
        # A node may have come back (restarted): its servers have not answered this commander
        # yet, so first requests to them are sent again until they do (see call)
        self._answered.clear()
        views = [(self.client, self.names.bridge), (self.sim, self.names.sim_controller)]
        with self._lock:
            for view in self._views.values():
                view.forget_server()
        if hardware:
            views.append((self.hardware, self.names.hardware_controller))
        checks: list[tuple[str, Callable[[], bool]]] = [
            (f'{name}/follow_joint_trajectory + joint states', _ready(view))
            for view, name in views]
        checks += [(self.names.predict_trajectory,
                    lambda: self._service(PredictTrajectory, self.names.predict_trajectory)
                    .service_is_ready()),
                   (self.names.switch_target,
                    lambda: self._service(SwitchTarget, self.names.switch_target)
                    .service_is_ready())]
        missing = [name for name, _ in checks]
        while True:
            missing = [name for name, check in checks if not check()]
            if not missing:
                return
            reason = alive() if alive is not None else None
            if reason:
                raise TwinError(reason)
            if time.monotonic() >= deadline:
                raise TwinError(f'not ready within {timeout:g} s: no {", ".join(missing)}; '
                                f'{_hint()}')
            time.sleep(0.05)

    # --- services ------------------------------------------------------------------------------
    def _service(self, srv_type: type, name: str):
        client = self._services.get(name)
        if client is None:
            client = self.node.create_client(srv_type, name)
            self._services[name] = client
        return client

    def call(self, srv_type: type, name: str, request: Any, timeout: float | None = None) -> Any:
        """Call a service and wait for the answer; TwinError if it is missing or silent."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        client = self._service(srv_type, name)
        # Polling, not wait_for_service: a timed-out wait_for_service aborts the interpreter
        # at exit (rclpy, Kilted).
        if not wait_for(client.service_is_ready, timeout, poll=0.01):
            raise TwinError(f'{name} is not available: {_hint()}')
        # Until a service has answered once, its request is sent again (see answer_of): every
        # service the commander calls (switch, arm, predict, parameters) is idempotent.
        response = answer_of(client, request, max(0.0, deadline - time.monotonic()),
                             resend=name not in self._answered)
        if response is None:
            raise TwinError(f'no answer from {name} within {timeout:g} s')
        self._answered.add(name)
        return response

    def switch(self, target: str, check: bool = False,
               timeout: float | None = None) -> SwitchTarget.Response:
        """Route goals to sim | hardware | shadow (between goals; hardware needs arming).

        Returns the bridge's reply; with ``check`` a refusal raises TwinError with its reason.
        """
        if target not in TARGETS:
            raise ValueError(f'target must be one of {TARGETS}, got {target!r}')
        reply = self.call(SwitchTarget, self.names.switch_target,
                          SwitchTarget.Request(target=target), timeout)
        if check and not reply.success:
            raise TwinError(f'switch to {target} refused: {reply.message}')
        return reply

    def arm(self, armed: bool = True, check: bool = False,
            timeout: float | None = None) -> SetBool.Response:
        """Allow (or with ``armed=False`` forbid) goals to reach the hardware."""
        reply = self.call(SetBool, self.names.arm_hardware, SetBool.Request(data=armed), timeout)
        if check and not reply.success:
            raise TwinError(f'{"arm" if armed else "disarm"} refused: {reply.message}')
        return reply

    def disarm(self, check: bool = False, timeout: float | None = None) -> SetBool.Response:
        return self.arm(False, check, timeout)

    def predict(self, trajectory: JointTrajectory, start_state: JointState | None = None,
                timeout: float = 30.0) -> Verdict:
        """The twin's verdict on a trajectory (from its current state unless given one)."""
        request = PredictTrajectory.Request(trajectory=trajectory)
        if start_state is not None:
            request.start_state = start_state
        return self.call(PredictTrajectory, self.names.predict_trajectory, request,
                         timeout).verdict

    def status(self, timeout: float = 0.0) -> BridgeStatus | None:
        """The latest BridgeStatus (latched), waiting up to ``timeout`` for a first one."""
        wait_for(lambda: bool(self.statuses), timeout)
        with self._lock:
            return self.statuses[-1] if self.statuses else None

    def wait_status(self, condition: Callable[[BridgeStatus], bool],
                    timeout: float = 5.0) -> BridgeStatus | None:
        """Wait until the latest status satisfies ``condition``; it, or None on timeout."""
        if wait_for(lambda: (s := self.status()) is not None and condition(s), timeout):
            return self.status()
        return None

    # --- parameters ----------------------------------------------------------------------------
    def get_parameters(self, node: str, names: Sequence[str],
                       timeout: float | None = None) -> dict[str, Any]:
        """Values of a node's parameters (fully qualified node name), as Python values."""
        reply = self.call(GetParameters, f'{node}/get_parameters',
                          GetParameters.Request(names=list(names)), timeout)
        return {n: parameter_value_to_python(v) for n, v in zip(names, reply.values)}

    def set_parameters(self, node: str, values: Mapping[str, Any],
                       timeout: float | None = None) -> None:
        """Set parameters of a node; TwinError with the node's reasons if it refuses any."""
        request = SetParameters.Request(parameters=[
            Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        reply = self.call(SetParameters, f'{node}/set_parameters', request, timeout)
        refused = [f'{name}: {r.reason}' for name, r in zip(values, reply.results)
                   if not r.successful]
        if refused:
            raise TwinError(f'{node} refused ' + '; '.join(refused))

    def perturbation(self, timeout: float | None = None) -> dict[str, Any]:
        """The stand-in's perturbations (``perturbation.*`` without the prefix)."""
        node = self.names.standin
        listed = self.call(ListParameters, f'{node}/list_parameters',
                           ListParameters.Request(prefixes=['perturbation'], depth=0), timeout)
        names = list(listed.result.names)
        values = self.get_parameters(node, names, timeout)
        return {k.removeprefix('perturbation.'): v for k, v in values.items()}

    def set_perturbation(self, timeout: float | None = None, **values: Any) -> None:
        """Change the stand-in's perturbations live, e.g. ``payload_mass=25.0``."""
        self.set_parameters(self.names.standin,
                            {f'perturbation.{k}': v for k, v in values.items()}, timeout)

    # --- motion --------------------------------------------------------------------------------
    def move(self, positions: Sequence[float] | None = None, joint_names: Sequence[str] = (),
             position: Sequence[float] | None = None,
             quaternion: Sequence[float] = (0.0, 0.0, 0.0, 0.0), frame: str = '',
             tip_link: str = '', velocity_scaling: float = 0.5, timeout: float = 120.0,
             on_feedback: Callable[[Any], None] | None = None,
             action: str | None = None) -> MoveOutcome:
        """Let the planner plan, predict and execute a motion to joint positions or a tip
        position (+ orientation; a zero quaternion means any). Cancels the goal if the wait
        ends early (timeout, Ctrl-C). ``action``: another planner's move_to (default
        TwinNames.move_to)."""
        goal = MoveTo.Goal(velocity_scaling=float(velocity_scaling))
        if positions is not None:
            goal.joint_names = list(joint_names)
            goal.positions = [float(v) for v in positions]
        elif position is not None:
            goal.pose.header.frame_id = frame
            p, q = goal.pose.pose.position, goal.pose.pose.orientation
            p.x, p.y, p.z = (float(v) for v in position)
            q.x, q.y, q.z, q.w = (float(v) for v in quaternion)
            goal.tip_link = tip_link
        else:
            raise ValueError('move needs joint positions or a tip position')
        action = action or self.names.move_to
        if self._move is None or self._move_name != action:
            if self._move is not None:
                self._move.destroy()
            self._move, self._move_name = SpinSafeActionClient(self.node, MoveTo, action), action
        deadline = time.monotonic() + timeout
        if not wait_for(self._move.server_is_ready, min(self.timeout, timeout), poll=0.01):
            raise TwinError(f'no action server {action}: {_hint()}')
        outcome = MoveOutcome(accepted=False)

        def feedback(message: Any) -> None:
            outcome.feedback.append(message.feedback)
            if on_feedback is not None:
                on_feedback(message.feedback)
        if action not in self._answered:
            if not wait_until_heard(self.node, MoveTo, action,
                                    max(0.0, deadline - time.monotonic())):
                raise TwinError(f'no answer from {action} within {timeout:g} s')
            self._answered.add(action)
        sent = self._move.send_goal_async(goal, feedback_callback=feedback)
        if not wait_for(sent.done, max(0.0, deadline - time.monotonic())):
            raise TwinError(f'no answer from {action} within {timeout:g} s')
        handle = sent.result()
        if not handle.accepted:
            return outcome
        outcome.accepted = True
        result = handle.get_result_async()
        try:
            if not wait_for(result.done, max(0.0, deadline - time.monotonic())):
                raise TwinError(f'{action}: no result within {timeout:g} s; '
                                'goal cancelled')
        finally:
            if not result.done():
                cancel = handle.cancel_goal_async()
                wait_for(cancel.done, 2.0)
        response = result.result()
        outcome.status = response.status
        outcome.error_code = response.result.error_code
        outcome.error_string = response.result.error_string
        outcome.verdict = response.result.verdict
        return outcome


def _ready(view: TrajectoryClient) -> Callable[[], bool]:
    return lambda: view.action.server_is_ready() and view.latest() is not None
