"""Policy node: runs an exported policy at the rate it was trained at, as a driver's client.

It observes ``joint_states`` and commands the arm only through the driver interface of
ros2_control's joint_trajectory_controller: a ``joint_trajectory`` message with one point one
action period ahead (``command_mode`` topic, the default, as teleoperation and servoing
stream), or a ``follow_joint_trajectory`` goal per action (``command_mode`` action, each
preempting the last). The policy's file names its robot and task
(:class:`~reverse_digital_twin.core.reach_task.ReachTask`): joints, observation, the meaning of
an action, the rate. No camera: the exported format (dense layers over the state vector) takes
no image.
In front of the twin, the bridge predicts and gates every command, so the same policy file
drives the twin and the hardware with no change; in front of a real controller it works as
well (no verdicts then, only the controller's own answers).

The node keeps pace with the gate (``pace``, as in training): each command is predicted and
forwarded (its verdict arrives; in action mode its goal is accepted) and acts for one action
period before the next observation is made, so a prediction slower than the action period
slows the policy down instead of making the bridge drop superseded commands.

An episode runs toward ``goal`` (set at start, or later with ``ros2 param set``) and ends when
the goal is reached, when the driver refuses a command (the bridge's verdict on a streamed
command, a goal's result, or the bridge routing to unarmed hardware), when joint states stop,
or after ``max_steps``. The node then stops commanding and says why: a log line and the
outcome (JSON in a std_msgs/String, latched) on ``~/outcome``. Each cycle's observation and
action go out on ``~/observation`` and ``~/action`` (std_msgs/Float32MultiArray) and the goal
on ``~/goal`` (sensor_msgs/JointState, latched), so that a recording of the graph holds the
episode (``rdt dataset --source live``). With ``exit_when_done`` (``ros2 run``) the process
ends after the episode: exit code 0 when the goal was reached, 1 otherwise.

The loop itself is :mod:`reverse_digital_twin.core.policy_runner` (no ROS).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from control_msgs.action import FollowJointTrajectory
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rdt_interfaces.msg import BridgeStatus, Verdict
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from reverse_digital_twin.client import SpinSafeActionClient, wait_until_heard
from reverse_digital_twin.core.controller import PREEMPTED_MESSAGE
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.policy_runner import REFUSED, STOPPED, JointReading
from reverse_digital_twin.core.policy_runner import Pacer, PolicyRunner, RunResult
from reverse_digital_twin.core.policy_runner import bridge_refusal
from reverse_digital_twin.core.policy_runner import check_goal, joint_vectors, load_policy
from reverse_digital_twin.core.policy_runner import refusal_from_result
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS, SYSTEM_DEFAULT_QOS
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, declare, to_duration
from reverse_digital_twin.stack import TwinNames

NODE_NAME = 'policy'
#: Topics of the node, relative to it (``/policy/outcome`` at the root).
OUTCOME_TOPIC, OBSERVATION_TOPIC, ACTION_TOPIC, GOAL_TOPIC = (
    '~/outcome', '~/observation', '~/action', '~/goal')
COMMAND_MODES = ('topic', 'action')
#: Actions per episode by default: twice ReachEnv's 60, room for the driver's latency.
DEFAULT_MAX_STEPS = 120
#: Checks per action period while pacing (a cheap test each; the action is computed once).
PACE_CHECKS = 4
#: s a finished node waits before it ends its process, so the latched outcome is delivered.
EXIT_DELAY = 0.5
_NAMES = TwinNames()


def float_array(values: np.ndarray, label: str) -> Float32MultiArray:
    """A vector as a Float32MultiArray with one labelled dimension."""
    values = np.asarray(values, dtype=np.float32).ravel()
    msg = Float32MultiArray(data=values.tolist())
    msg.layout.dim = [MultiArrayDimension(label=label, size=int(values.size), stride=1)]
    return msg


class PolicyNode(Node):
    """Runs one episode at a time of a policy toward a joint goal, through the driver."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        policy_file = str(declare(self, 'policy_file', '',
                                  'The exported policy (.npz: weights, observation '
                                  'normalisation, and the robot, joints and task it was '
                                  'trained for); loaded with numpy only', read_only=True))
        robot = str(declare(self, 'robot', '',
                            "The robot whose task the policy runs ('' = the one the policy "
                            'file names); must match the file', read_only=True))
        controller = str(declare(self, 'controller', _NAMES.bridge,
                                 'The trajectory controller to command (fully qualified): the '
                                 "bridge, which predicts and gates every command, or a real "
                                 "controller", read_only=True)).rstrip('/')
        joint_states = str(declare(self, 'joint_states', _NAMES.joint_states,
                                   'Measured joint states (sensor_msgs/JointState) the '
                                   'observations are made of', read_only=True))
        self.command_mode = str(declare(
            self, 'command_mode', 'topic',
            "How commands go to the controller: 'topic' (<controller>/joint_trajectory, one "
            "point one cycle ahead per cycle) or 'action' (<controller>/follow_joint_trajectory, "
            'a goal per cycle, each preempting the previous)', read_only=True))
        rate = float(declare(self, 'rate', 0.0,
                             "Actions per second (Hz); 0 = the rate the policy was trained at "
                             "(the controller's update_rate / the task's cycles_per_action)",
                             read_only=True))
        horizon = float(declare(self, 'horizon', 0.0,
                                "s ahead of now each command's point lies; 0 = one action "
                                "period, as in training (the task's action_period)",
                                read_only=True))
        self.max_steps = int(declare(self, 'max_steps', DEFAULT_MAX_STEPS,
                                     'Actions an episode may take before it stops unfinished '
                                     f'(default {DEFAULT_MAX_STEPS}: twice the training '
                                     "environment's episode, room for the driver's latency)"))
        self.state_timeout = float(declare(self, 'state_timeout', 0.5,
                                           'A joint state older than this (s) stops the '
                                           'episode: nothing is commanded blind', True))
        self.ready_timeout = float(declare(self, 'ready_timeout', 30.0,
                                           's to wait for joint states and the controller '
                                           'before an episode gives up', True))
        verdicts = str(declare(self, 'verdicts', '',
                               "The bridge's verdicts (rdt_interfaces/Verdict): an unsafe one "
                               'while the policy commands means a command was refused, and the '
                               "episode stops saying why; '' = <controller>/verdicts",
                               read_only=True))
        status = str(declare(self, 'status', '',
                             "The bridge's status (rdt_interfaces/BridgeStatus): an episode "
                             'does not start, and stops, while the bridge routes to unarmed '
                             "hardware; '' = <controller>/status", read_only=True))
        self.pace = bool(declare(
            self, 'pace', True,
            'Keep pace with the gate, as in training: each command is predicted and forwarded '
            '(its verdict, or in action mode its goal accepted) and acts for one action period '
            'before the next observation. false: stream at the rate whatever the bridge takes '
            '(it predicts only the newest waiting command and drops the superseded ones). '
            'Without verdicts (a plain controller) the topic mode streams at the rate',
            read_only=True))
        self.verdict_timeout = float(declare(
            self, 'verdict_timeout', 5.0,
            's to wait, when pacing, for the verdict on a command (or the answer to a goal): '
            'none by then stops the episode (the bridge dropped it unpredicted: hardware not '
            'armed, target changed; see its log)', True))
        self.exit_when_done = bool(declare(self, 'exit_when_done', False,
                                           'End the process after the first episode (exit '
                                           'code 0 when the goal was reached, 1 otherwise)',
                                           read_only=True))
        goal = [float(v) for v in declare(self, 'goal', [0.0],
                                          'Joint goal (rad or m) in the policy\'s joint order; '
                                          '[0.0] = none yet. Setting it starts an episode '
                                          '(and ends a running one)')]
        check_unknown_parameters(self)
        if not policy_file:
            raise ConfigError('parameter policy_file is empty: give the exported policy, e.g. '
                              '-p policy_file:=policies/reach_rdt_arm6.npz')
        if self.command_mode not in COMMAND_MODES:
            raise ConfigError(f"parameter command_mode must be 'topic' or 'action', got "
                              f'{self.command_mode!r}')
        self.loaded = load_policy(policy_file, robot)
        self.task = self.loaded.task
        self.joints = self.loaded.joints
        self.rate = rate if rate > 0 else self.loaded.rate
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise ConfigError(f'parameter rate must be a positive number of Hz, got {rate}')
        self.horizon = horizon if horizon > 0 else self.loaded.horizon
        for name in ('max_steps', 'state_timeout', 'ready_timeout', 'verdict_timeout'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'parameter {name} must be > 0, got {getattr(self, name)}')
        self.controller = controller
        self.joint_states_topic = joint_states
        self.action_name = f'{controller}/follow_joint_trajectory'
        self._lock = threading.RLock()
        self._reading: JointReading | None = None
        self._status: BridgeStatus | None = None
        self.runner: PolicyRunner | None = None
        self.result: RunResult | None = None
        self.results: list[RunResult] = []
        #: keep each episode's steps (runner.records): the live dataset's rewards need them
        self.record_steps = False
        self._done = threading.Event()
        self._waiting_since: float | None = None
        self._commanded = False  # the running episode has sent a command
        self._pending_goal = False  # action mode: a goal awaits the server's answer
        self._last_step: float | None = None
        self._paced = False  # this episode keeps pace with the gate (see the pace parameter)
        self._pacer = Pacer(self.horizon, self.verdict_timeout,
                            slack=0.5 / (self.rate * PACE_CHECKS))
        self._goal_handle: Any = None
        self._heard = threading.Event()
        self.verdicts_topic = verdicts or f'{controller}/verdicts'
        self.status_topic = status or f'{controller}/status'
        self.create_subscription(JointState, joint_states, self._on_joint_states,
                                 SYSTEM_DEFAULT_QOS)
        self._verdict_sub = self.create_subscription(Verdict, self.verdicts_topic,
                                                     self._on_verdict, SYSTEM_DEFAULT_QOS)
        self._status_sub = self.create_subscription(BridgeStatus, self.status_topic,
                                                    self._on_status, LATCHED_QOS)
        self._outcome_pub = self.create_publisher(String, OUTCOME_TOPIC, LATCHED_QOS)
        self._observation_pub = self.create_publisher(Float32MultiArray, OBSERVATION_TOPIC,
                                                      SYSTEM_DEFAULT_QOS)
        self._action_pub = self.create_publisher(Float32MultiArray, ACTION_TOPIC,
                                                 SYSTEM_DEFAULT_QOS)
        self._goal_pub = self.create_publisher(JointState, GOAL_TOPIC, LATCHED_QOS)
        self._trajectory_pub = None
        self._action = None
        if self.command_mode == 'topic':
            self._trajectory_pub = self.create_publisher(
                JointTrajectory, f'{controller}/joint_trajectory', SYSTEM_DEFAULT_QOS)
        else:
            self._action = SpinSafeActionClient(self, FollowJointTrajectory, self.action_name)
        # pacing wakes up PACE_CHECKS times per action period, to act on a verdict promptly
        self._timer = self.create_timer(1.0 / (self.rate * (PACE_CHECKS if self.pace else 1)),
                                        self._cycle)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._initial_goal = goal if goal != [0.0] else None
        self.get_logger().info(
            f'policy {self.loaded.path.name} for {self.loaded.robot} ({len(self.joints)} '
            f'joints) at {self.rate:g} Hz, commands via {controller} ({self.command_mode}), '
            f'at most {self.max_steps} steps per episode')

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Called by run_node once configured: the action client's first answer is awaited on
        a thread of its own, and the goal given at start begins."""
        if self._action is not None:
            threading.Thread(target=self._wait_heard, daemon=True,
                             name='policy_action_heard').start()
        else:
            self._heard.set()
        if self._initial_goal is not None:
            self.begin(self._initial_goal)

    def _wait_heard(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline and self.context.ok():
            if wait_until_heard(self, FollowJointTrajectory, self.action_name,
                                max(0.1, deadline - time.monotonic())):
                self._heard.set()
                return

    def stop(self) -> None:
        """Called by run_node at shutdown: a running episode ends, its goal is cancelled."""
        with self._lock:
            if self.runner is not None and not self.runner.finished:
                self.runner.stop('the policy node was stopped', self._now())
                self._finish()

    def begin(self, goal: Sequence[float]) -> None:
        """Start an episode toward ``goal`` (ending a running one). ConfigError if the goal
        does not fit the policy's joints."""
        values = check_goal(goal, self.task)
        with self._lock:
            if self.runner is not None and not self.runner.finished:
                self.runner.stop('a new goal replaced this one', self._now())
                self._finish()
            self.runner = PolicyRunner(self.loaded.policy.act, self.task, values,
                                       self.max_steps, self.state_timeout,
                                       record=self.record_steps)
            self.result = None
            self._done.clear()
            self._waiting_since = self._now()
            self._commanded = False
            self._pacer.reset()
        msg = JointState(name=list(self.joints), position=values.tolist())
        msg.header.stamp = self.get_clock().now().to_msg()
        self._goal_pub.publish(msg)
        self.get_logger().info(f'episode toward {np.round(values, 4).tolist()}')

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """The running episode's result once it ends (None if it has not within timeout)."""
        self._done.wait(timeout)
        return self.result

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == 'goal':
                try:
                    check_goal(param.value, self.task)
                except (ConfigError, TypeError, ValueError) as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                # after the parameter is set: begin from a timer-free one-shot
                self._begin_later(list(param.value))
            elif param.name in ('max_steps', 'state_timeout', 'ready_timeout',
                                'verdict_timeout'):
                if not (param.value is not None and param.value > 0):
                    return SetParametersResult(successful=False,
                                               reason=f'{param.name} must be > 0')
                setattr(self, param.name, type(getattr(self, param.name))(param.value))
                self._pacer.timeout = self.verdict_timeout
        return SetParametersResult(successful=True)

    def _begin_later(self, goal: list[float]) -> None:
        timer = None

        def fire() -> None:
            timer.cancel()
            self.destroy_timer(timer)
            self.begin(goal)
        timer = self.create_timer(0.0, fire)

    # --- inputs -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_states(self, msg: JointState) -> None:
        vectors = joint_vectors(msg.name, msg.position, msg.velocity, self.joints)
        if vectors is not None:
            self._reading = JointReading(vectors[0], vectors[1], self._now())

    def _on_verdict(self, msg: Verdict) -> None:
        with self._lock:
            if self.runner is None or self.runner.finished or not self._commanded:
                return
            if msg.safe:
                if self._paced and self._trajectory_pub is not None:
                    self._pacer.answered(self._now())
                return
            self.runner.refused('the bridge refused a command, nothing moved for it: '
                                + (msg.summary or msg.predicted_error_string
                                   or 'unsafe (no reason given)'), self._now())
            self._finish()

    def _on_status(self, msg: BridgeStatus) -> None:
        self._status = msg
        with self._lock:
            if self.runner is None or self.runner.finished or not self._commanded:
                return
            reason = bridge_refusal(msg.active_target, msg.hardware_armed)
            if reason is not None:
                self.runner.refused(f'{reason} ({msg.last_event})' if msg.last_event
                                    else reason, self._now())
                self._finish()

    # --- the control cycle --------------------------------------------------------------------
    def _ready(self, now: float) -> str | None:
        """'' when the episode may start commanding, else what it waits for."""
        if self._reading is None:
            return f'joint states on {self.joint_states_topic}'
        if self._trajectory_pub is not None and self._trajectory_pub.get_subscription_count() \
                == 0:
            return f'a subscriber of {self._trajectory_pub.topic_name}'
        if self._action is not None and not (self._action.server_is_ready()
                                             and self._heard.is_set()):
            return f'the action server {self.action_name}'
        for sub in (self._verdict_sub, self._status_sub):  # the bridge's, when it has them
            if self.count_publishers(sub.topic_name) > 0 and sub.get_publisher_count() == 0:
                return f'{sub.topic_name}'
        if self._status_sub.get_publisher_count() > 0 and self._status is None:
            return f'the first message on {self._status_sub.topic_name}'
        return ''

    def _cycle(self) -> None:
        with self._lock:
            runner = self.runner
            if runner is None or runner.finished:
                return
            now = self._now()
            if self._commanded and not self._paced_turn(runner, now):
                return
            if not self._commanded:
                waiting = self._ready(now)
                if waiting:
                    if now - (self._waiting_since or now) > self.ready_timeout:
                        runner.stop(f'not ready within ready_timeout {self.ready_timeout:g} s: '
                                    f'no {waiting}; nothing was commanded', now)
                        self._finish()
                    return
                if self._status is not None:
                    reason = bridge_refusal(self._status.active_target,
                                            self._status.hardware_armed)
                    if reason is not None:
                        runner.refused(reason, now)
                        self._finish()
                        return
                self._paced = self.pace and (
                    self._action is not None
                    or self._verdict_sub.get_publisher_count() > 0)
            elif not self._paced and self.pace and now - (self._last_step or now) \
                    < 0.999 / self.rate:
                return  # streaming at the rate: the timer checks faster than that
            targets = runner.cycle(now, self._reading)
            if targets is None:
                self._finish()
                return
            step = runner.last
            self._observation_pub.publish(float_array(step.observation, 'observation'))
            self._action_pub.publish(float_array(step.action, 'action'))
            self._command(targets)
            self._commanded = True
            self._last_step = now
            if self._paced:
                self._pacer.sent(now)

    def _paced_turn(self, runner: PolicyRunner, now: float) -> bool:
        """Whether a paced episode may act now (core.policy_runner.Pacer); an answer that
        does not come stops the episode."""
        if not self._paced:
            return True
        if self._pacer.overdue(now):
            what = 'an answer to its goal' if self._action is not None else 'a verdict on it'
            runner.stop(f'the last command got no {what} within verdict_timeout '
                        f'{self.verdict_timeout:g} s: the driver dropped it unpredicted '
                        '(hardware not armed? the target switched? see its log); nothing more '
                        'was commanded', now)
            self._finish()
            return False
        return self._pacer.may_act(now)

    def _trajectory(self, targets: np.ndarray) -> JointTrajectory:
        return JointTrajectory(joint_names=list(self.joints), points=[JointTrajectoryPoint(
            positions=[float(v) for v in targets], time_from_start=to_duration(self.horizon))])

    def _command(self, targets: np.ndarray) -> None:
        trajectory = self._trajectory(targets)
        if self._trajectory_pub is not None:
            self._trajectory_pub.publish(trajectory)
            return
        if self._pending_goal:  # not paced: the previous goal is still being predicted
            return
        self._pending_goal = True
        runner = self.runner
        future = self._action.send_goal_async(FollowJointTrajectory.Goal(trajectory=trajectory))
        future.add_done_callback(lambda f: self._on_goal_response(f, runner))

    def _on_goal_response(self, future: Any, runner: PolicyRunner) -> None:
        handle = future.result()
        with self._lock:
            self._pending_goal = False
            if not handle.accepted:
                self._refused(runner, refusal_from_result(False, 0, None, '', ''))
                return
            self._goal_handle = handle
            if runner is self.runner:
                self._pacer.answered(self._now())
        handle.get_result_async().add_done_callback(
            lambda f: self._on_goal_result(f, runner))

    def _on_goal_result(self, future: Any, runner: PolicyRunner) -> None:
        response = future.result()
        reason = refusal_from_result(True, response.status, response.result.error_code,
                                     response.result.error_string, PREEMPTED_MESSAGE)
        if reason is not None:
            with self._lock:
                self._refused(runner, reason)

    def _refused(self, runner: PolicyRunner, reason: str | None) -> None:
        if reason is not None and runner is self.runner \
                and runner.refused(reason, self._now()) is not None:
            self._finish()

    def _finish(self) -> None:
        """The episode ended: report it (log + latched outcome), cancel a goal of ours that
        still runs unless the goal was reached."""
        result = self.runner.result
        if result is None or self.result is result:
            return
        self.result = result
        self.results.append(result)
        if self._goal_handle is not None and result.outcome in (REFUSED, STOPPED):
            self._goal_handle.cancel_goal_async()
        self._goal_handle = None
        self._outcome_pub.publish(String(data=result.to_json()))
        if result.reached:
            self.get_logger().info(f'goal reached: {result.describe()}')
        else:
            self.get_logger().error(f'stopped: {result.describe()}')
        self._done.set()
        if self.exit_when_done:
            timer = None

            def shutdown() -> None:
                timer.cancel()
                self.context.try_shutdown()
            timer = self.create_timer(EXIT_DELAY, shutdown)


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin policy --ros-args -p policy_file:=... -p
    goal:=[...] -p exit_when_done:=true. Exit code 0 when the goal was reached, 1 when the
    episode stopped otherwise, 2 on a configuration error."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    made: list[PolicyNode] = []

    def policy() -> PolicyNode:
        made.append(PolicyNode())
        return made[-1]
    code = run_node(policy, args)
    if code != 0 or not made:
        return code
    node = made[0]
    if node.exit_when_done:
        return 0 if node.results and node.results[-1].reached else 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
