"""The policy node's loop without ROS: observe, act, command, and decide when to stop.

A policy drives the arm like any other client of the driver: each control cycle it reads the
latest joint state, computes an action, turns it into joint position targets (the task's rule)
and commands them one cycle ahead. The loop stops when the goal is reached, when the driver
(the bridge, which predicts every command) refuses a command, when the joint states stop, or
after ``max_steps``. The node (``nodes/policy_node.py``) only converts messages and calls this,
so the rules are tested without a graph, and the same rules run against the twin and the
hardware.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reverse_digital_twin.core.errors import ConfigError

#: How an episode ended.
REACHED, REFUSED, MAX_STEPS, NO_STATE, STOPPED = (
    'reached', 'refused', 'max_steps', 'no_state', 'stopped')
OUTCOMES = (REACHED, REFUSED, MAX_STEPS, NO_STATE, STOPPED)
#: action_msgs/GoalStatus values a goal's result carries.
STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED = 4, 5, 6


class Task(Protocol):
    """What the runner needs of a task (core.reach_task.ReachTask)."""

    joints: Sequence[str]
    goal_size: int

    def observation(self, positions: np.ndarray, velocities: np.ndarray,
                    goal: np.ndarray) -> np.ndarray: ...

    def targets_from_action(self, action: np.ndarray, positions: np.ndarray) -> np.ndarray: ...

    def success(self, positions: np.ndarray, goal: np.ndarray,
                velocities: np.ndarray | None = None) -> bool: ...

    def distance(self, positions: np.ndarray, goal: np.ndarray) -> float: ...


@dataclass(frozen=True)
class JointReading:
    """The latest joint state, in the task's joint order, and when it arrived (s, the
    runner's clock)."""

    positions: np.ndarray
    velocities: np.ndarray
    received: float


def joint_vectors(names: Sequence[str], positions: Sequence[float],
                  velocities: Sequence[float], joints: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """A joint_states message's positions and velocities in ``joints`` order; None when it
    lacks one of the joints (a driver may publish other joints in other messages). Missing
    velocities count as zero, as a position-only driver reports none."""
    index = {n: i for i, n in enumerate(names)}
    if any(j not in index or index[j] >= len(positions) for j in joints):
        return None
    q = np.array([positions[index[j]] for j in joints], dtype=float)
    if len(velocities) == len(names):
        v = np.array([velocities[index[j]] for j in joints], dtype=float)
    else:
        v = np.zeros(len(joints))
    return q, v


@dataclass(frozen=True)
class RunResult:
    """How an episode ended, for the log, the outcome topic and the CLI."""

    outcome: str
    reason: str
    steps: int
    elapsed: float  # s from the first command to the end
    goal: tuple[float, ...]
    final_positions: tuple[float, ...] = ()
    final_error: float = math.nan  # the task's distance to the goal at the end (rad or m)

    @property
    def reached(self) -> bool:
        return self.outcome == REACHED

    def describe(self) -> str:
        """One line a person reads: what happened and why."""
        error = '' if math.isnan(self.final_error) else f', {self.final_error:.4f} from the goal'
        return f'{self.outcome} after {self.steps} steps ({self.elapsed:.2f} s{error}): ' \
            f'{self.reason}'

    def as_dict(self) -> dict[str, Any]:
        return {'outcome': self.outcome, 'reason': self.reason, 'steps': self.steps,
                'elapsed': round(self.elapsed, 4), 'goal': list(self.goal),
                'final_positions': list(self.final_positions),
                'final_error': None if math.isnan(self.final_error) else self.final_error}

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    @staticmethod
    def from_json(text: str) -> 'RunResult':
        data = json.loads(text)
        error = data.get('final_error')
        return RunResult(data['outcome'], data['reason'], int(data['steps']),
                         float(data['elapsed']), tuple(data['goal']),
                         tuple(data.get('final_positions', ())),
                         math.nan if error is None else float(error))


@dataclass
class StepRecord:
    """One control cycle as a dataset keeps it."""

    time: float  # s since the episode's start
    clock: float  # s, the runner's clock (the node's: ROS time)
    positions: np.ndarray
    velocities: np.ndarray
    observation: np.ndarray
    action: np.ndarray
    targets: np.ndarray


@dataclass
class PolicyRunner:
    """One episode of a policy toward one goal.

    ``cycle()`` is called at the control rate with the latest joint reading and returns the
    joint targets to command, or None once the episode is over (``result`` says how). The
    driver's answers come in through ``refused()``; ``stop()`` ends it from outside.
    """

    act: Callable[[np.ndarray], np.ndarray]
    task: Task
    goal: np.ndarray
    max_steps: int
    state_timeout: float = 0.5  # s: a reading older than this stops the episode
    record: bool = False
    result: RunResult | None = None
    steps: int = 0
    records: list[StepRecord] = field(default_factory=list)
    last: StepRecord | None = None  # the latest cycle's step (observation, action, targets)
    _started: float | None = None
    _last: JointReading | None = None

    def __post_init__(self) -> None:
        self.goal = np.asarray(self.goal, dtype=float)
        if self.max_steps < 1:
            raise ConfigError(f'max_steps must be >= 1, got {self.max_steps}')
        if not (self.state_timeout > 0):
            raise ConfigError(f'state_timeout must be > 0 s, got {self.state_timeout}')

    @property
    def finished(self) -> bool:
        return self.result is not None

    def cycle(self, now: float, reading: JointReading | None) -> np.ndarray | None:
        """One control cycle at ``now`` (s): the targets to command, or None when done."""
        if self.result is not None:
            return None
        if self._started is None:
            self._started = now
        if reading is None or now - reading.received > self.state_timeout:
            age = 'no joint state yet' if reading is None else \
                f'the last joint state is {now - reading.received:.2f} s old'
            self._finish(NO_STATE, f'joint states stopped arriving ({age}, state_timeout '
                         f'{self.state_timeout:g} s); nothing more was commanded', now)
            return None
        self._last = reading
        if self.task.success(reading.positions, self.goal, reading.velocities):
            self._finish(REACHED, 'the goal is reached', now)
            return None
        if self.steps >= self.max_steps:
            self._finish(MAX_STEPS, f'the goal was not reached within max_steps '
                         f'{self.max_steps}', now)
            return None
        observation = np.asarray(self.task.observation(reading.positions, reading.velocities,
                                                       self.goal), dtype=np.float32)
        action = np.asarray(self.act(observation), dtype=np.float32)
        if not np.all(np.isfinite(action)):
            self._finish(STOPPED, f'the policy gave a non-finite action {action.tolist()}; '
                         'nothing was commanded', now)
            return None
        targets = np.asarray(self.task.targets_from_action(action, reading.positions),
                             dtype=float)
        self.steps += 1
        self.last = StepRecord(now - self._started, now, reading.positions.copy(),
                               reading.velocities.copy(), observation, action, targets.copy())
        if self.record:
            self.records.append(self.last)
        return targets

    def refused(self, reason: str, now: float) -> RunResult | None:
        """The driver refused a command: the episode stops, saying why. None if it had
        already ended (a late answer to a command sent before the end)."""
        if self.result is not None:
            return None
        self._finish(REFUSED, reason, now)
        return self.result

    def stop(self, reason: str, now: float) -> RunResult | None:
        """End the episode from outside (Ctrl-C, a new goal, the node stopping)."""
        if self.result is not None:
            return None
        self._finish(STOPPED, reason, now)
        return self.result

    def _finish(self, outcome: str, reason: str, now: float) -> None:
        last = self._last
        error = math.nan if last is None \
            else float(self.task.distance(last.positions, self.goal))
        self.result = RunResult(
            outcome, reason, self.steps, 0.0 if self._started is None else now - self._started,
            tuple(float(v) for v in self.goal),
            () if last is None else tuple(float(v) for v in last.positions), error)


@dataclass
class Pacer:
    """Keeps a policy in step with the gate in front of the controller, as in training.

    Each command is predicted before it is forwarded (the bridge's verdict; in action mode the
    goal's acceptance): the next observation is made once the last command was answered and
    has acted for one action period (``period``, less ``slack`` for the checking timer's
    granularity). A prediction slower than the period thus slows the policy down, instead of
    letting the bridge drop superseded commands and the arm hop between stale targets. An
    answer that does not come within ``timeout`` means the command was dropped unpredicted.
    """

    period: float
    timeout: float
    slack: float = 0.0
    sent_at: float | None = None  # the command awaiting its answer, when it was sent
    answered_at: float | None = None  # when the last command was let through

    def reset(self) -> None:
        self.sent_at = self.answered_at = None

    def sent(self, now: float) -> None:
        self.sent_at = now

    def answered(self, now: float) -> bool:
        """The awaited command was let through; False if none was awaited."""
        if self.sent_at is None:
            return False
        self.sent_at, self.answered_at = None, now
        return True

    def overdue(self, now: float) -> bool:
        """The awaited command's answer is later than ``timeout``."""
        return self.sent_at is not None and now - self.sent_at > self.timeout

    def may_act(self, now: float) -> bool:
        """No command awaits an answer and the last one has acted for a period."""
        if self.sent_at is not None:
            return False
        return self.answered_at is None or now - self.answered_at >= self.period - self.slack


def refusal_from_result(accepted: bool, status: int, error_code: int | None,
                        error_string: str, preempted_message: str) -> str | None:
    """Why a FollowJointTrajectory goal of the policy counts as refused, or None.

    Each cycle's goal preempts the previous one, so a result carrying the controller's
    preemption message is the normal end of a goal; so is success. Anything else (rejected,
    aborted with the twin's verdict, a tolerance violated, cancelled by someone else) stops
    the policy with the driver's own words.
    """
    if not accepted:
        return 'the controller rejected the goal (see its log: joints, limits or start time)'
    if status == STATUS_SUCCEEDED:
        return None
    if error_string == preempted_message:
        return None
    what = {STATUS_ABORTED: 'aborted', STATUS_CANCELED: 'cancelled'}.get(status,
                                                                         f'status {status}')
    return f'the controller {what} the goal (error_code {error_code}): ' \
        f'{error_string or "no reason given"}'


def bridge_refusal(active_target: str, armed: bool) -> str | None:
    """Why the bridge will drop every streamed command (it only logs that), or None."""
    if active_target in ('hardware', 'shadow') and not armed:
        return (f'the bridge routes commands to the {active_target} target, but the hardware '
                'is not armed (rdt arm), so every command would be dropped; nothing was '
                'commanded')
    return None


# --- the policy file ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedPolicy:
    """A policy file and the task it was trained for."""

    path: Path
    policy: Any  # core.policy.Policy
    task: Any  # core.reach_task.ReachTask

    @property
    def robot(self) -> str:
        return str(self.task.robot)

    @property
    def joints(self) -> list[str]:
        return list(self.task.joints)

    @property
    def rate(self) -> float:
        """Actions per second the policy was trained at (Hz)."""
        return float(self.task.policy_rate)

    @property
    def horizon(self) -> float:
        """s ahead of now each streamed point lies, as in training."""
        return float(self.task.action_period)


def load_policy(path: str | Path, robot: str = '') -> LoadedPolicy:
    """Load an exported policy (numpy only) and rebuild the task it was trained for (the
    robot configuration and task settings its file records).

    ``path`` is absolute, relative to the working directory or to the package's share
    directory. ``robot`` ('' = the one the file names) must be the file's: a policy for
    another arm is refused here, with the reason, before anything is commanded.
    """
    from reverse_digital_twin.core.paths import resolve  # noqa: PLC0415
    from reverse_digital_twin.core.policy import Policy  # noqa: PLC0415
    # as any file in configuration: absolute, from the working directory, or the package's
    # (policies/reach_rdt_arm6.npz is installed with it)
    file = resolve(str(path), 'policy file')
    try:
        policy = Policy.load(file)
        task = policy.task()
    except ConfigError as exc:
        raise ConfigError(f'policy file {file}: {exc}') from None
    except (ValueError, KeyError, TypeError) as exc:  # a damaged or foreign file
        raise ConfigError(f'policy file {file}: cannot use it: {exc}') from None
    if robot and robot != task.robot:
        raise ConfigError(f'policy file {file} was trained for robot {task.robot!r}, not '
                          f'{robot!r}')
    if policy.observation_size != task.observation_size \
            or policy.action_size != task.action_size:
        raise ConfigError(f'policy file {file}: its network takes {policy.observation_size} '
                          f'observations and gives {policy.action_size} actions, the task has '
                          f'{task.observation_size} and {task.action_size}')
    return LoadedPolicy(file, policy, task)


def check_goal(goal: Sequence[float], task: Task) -> np.ndarray:
    """A goal (joint positions, or a tip position for a tip task) as an array; ConfigError
    naming what is wrong."""
    values = np.asarray(list(goal), dtype=float)
    if values.shape != (task.goal_size,):
        what = f'joints ({", ".join(task.joints)})' if task.goal_size == len(task.joints) \
            else 'tip position coordinates (x, y, z)'
        raise ConfigError(f'goal has {values.size} values; the policy\'s task wants '
                          f'{task.goal_size} {what}')
    if not np.all(np.isfinite(values)):
        raise ConfigError(f'goal must be finite, got {values.tolist()}')
    return values
