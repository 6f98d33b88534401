"""The policy node's loop without ROS (core/policy_runner.py): when it commands, when it
stops and why, how it reads the driver's answers, and how a policy file is loaded."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from reverse_digital_twin.core.controller import PREEMPTED_MESSAGE
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.policy_runner import MAX_STEPS, NO_STATE, REACHED, REFUSED
from reverse_digital_twin.core.policy_runner import STOPPED, JointReading, Pacer, PolicyRunner
from reverse_digital_twin.core.policy_runner import RunResult, bridge_refusal, check_goal
from reverse_digital_twin.core.policy_runner import joint_vectors, load_policy
from reverse_digital_twin.core.policy_runner import refusal_from_result


class LineTask:
    """Two joints; the action is a step of 0.1 rad per unit; success within 0.01."""

    joints = ('a', 'b')
    goal_size = 2

    def observation(self, positions, velocities, goal):
        return np.concatenate([positions, velocities, goal - positions]).astype(np.float32)

    def targets_from_action(self, action, positions):
        return positions + 0.1 * np.clip(action, -1, 1)

    def success(self, positions, goal, velocities=None):
        return float(np.max(np.abs(goal - positions))) <= 0.01

    def distance(self, positions, goal):
        return float(np.linalg.norm(goal - positions))


def toward_goal(observation: np.ndarray) -> np.ndarray:
    return np.clip(observation[4:] / 0.1, -1.0, 1.0)


def reading(q, now: float, v=(0.0, 0.0)) -> JointReading:
    return JointReading(np.asarray(q, float), np.asarray(v, float), now)


def run_plant(runner: PolicyRunner, q0, period: float = 0.05, cycles: int = 100):
    """A plant that reaches each target within the cycle; the commands sent."""
    q = np.asarray(q0, float)
    sent = []
    for k in range(cycles):
        targets = runner.cycle(k * period, reading(q, k * period))
        if targets is None:
            break
        sent.append(targets)
        q = targets
    return sent


def test_commands_each_cycle_until_the_goal_is_reached():
    runner = PolicyRunner(toward_goal, LineTask(), [0.35, -0.2], max_steps=50, record=True)
    sent = run_plant(runner, [0.0, 0.0])
    assert runner.result.outcome == REACHED and runner.result.reached
    assert len(sent) == runner.steps == 4  # 0.35 rad at 0.1 per step
    assert np.allclose(sent[-1], [0.35, -0.2])
    assert runner.result.final_error < 0.01
    assert [r.time for r in runner.records] == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert runner.records[0].observation.dtype == np.float32
    assert np.allclose(runner.records[0].targets, [0.1, -0.1])
    assert runner.cycle(10.0, reading([0, 0], 10.0)) is None  # finished stays finished


def test_gives_up_after_max_steps_saying_so():
    runner = PolicyRunner(lambda obs: np.zeros(2), LineTask(), [1.0, 1.0], max_steps=3)
    sent = run_plant(runner, [0.0, 0.0])
    assert len(sent) == 3 and runner.result.outcome == MAX_STEPS
    assert 'max_steps 3' in runner.result.reason
    assert runner.result.final_error == pytest.approx(math.sqrt(2))


def test_stale_or_missing_joint_states_stop_it_before_commanding_blind():
    runner = PolicyRunner(toward_goal, LineTask(), [1.0, 0.0], max_steps=10, state_timeout=0.2)
    assert runner.cycle(0.0, None) is None
    assert runner.result.outcome == NO_STATE and 'no joint state yet' in runner.result.reason
    runner = PolicyRunner(toward_goal, LineTask(), [1.0, 0.0], max_steps=10, state_timeout=0.2)
    assert runner.cycle(1.0, reading([0, 0], 1.0)) is not None
    assert runner.cycle(1.5, reading([0, 0], 1.0)) is None
    assert runner.result.outcome == NO_STATE and '0.50 s old' in runner.result.reason


def test_a_refusal_ends_the_episode_with_the_drivers_reason():
    runner = PolicyRunner(toward_goal, LineTask(), [1.0, 0.0], max_steps=10)
    assert runner.cycle(0.0, reading([0, 0], 0.0)) is not None
    result = runner.refused('collision: wrist hits obstacle', 0.12)
    assert result.outcome == REFUSED and result.reason == 'collision: wrist hits obstacle'
    assert result.elapsed == pytest.approx(0.12) and result.steps == 1
    assert runner.cycle(0.15, reading([0.1, 0], 0.15)) is None  # nothing more is commanded
    assert runner.refused('again', 0.2) is None and runner.stop('late', 0.3) is None
    assert 'collision' in result.describe() and result.describe().startswith('refused')


def test_a_non_finite_action_is_never_commanded():
    runner = PolicyRunner(lambda obs: np.array([np.nan, 0.0]), LineTask(), [1.0, 0.0], 10)
    assert runner.cycle(0.0, reading([0, 0], 0.0)) is None
    assert runner.result.outcome == STOPPED and 'non-finite' in runner.result.reason


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match='max_steps'):
        PolicyRunner(toward_goal, LineTask(), [0, 0], max_steps=0)
    with pytest.raises(ConfigError, match='state_timeout'):
        PolicyRunner(toward_goal, LineTask(), [0, 0], max_steps=1, state_timeout=0)


def test_results_round_trip_as_json():
    result = RunResult(REFUSED, 'why', 3, 0.15, (1.0, 2.0), (0.5, 0.5), 0.25)
    again = RunResult.from_json(result.to_json())
    assert again == result
    nan = RunResult(NO_STATE, 'no state', 0, 0.0, (1.0,))
    assert json.loads(nan.to_json())['final_error'] is None
    assert math.isnan(RunResult.from_json(nan.to_json()).final_error)


def test_pacing_waits_for_the_answer_then_one_action_period():
    pacer = Pacer(period=0.05, timeout=1.0, slack=0.005)
    assert pacer.may_act(0.0)  # nothing sent yet
    pacer.sent(0.0)
    assert not pacer.may_act(0.04) and not pacer.may_act(0.5)  # no verdict yet: wait
    assert not pacer.overdue(0.9)
    assert pacer.answered(0.12)  # predicted and forwarded 120 ms later
    assert not pacer.may_act(0.15)  # it has not acted for a period yet
    assert pacer.may_act(0.166) and pacer.may_act(0.2)
    assert not pacer.answered(0.3)  # a verdict for someone else's command
    pacer.sent(0.2)
    assert pacer.overdue(1.21) and not pacer.may_act(1.21)
    pacer.reset()
    assert pacer.may_act(1.3) and not pacer.overdue(1.3)


def test_goal_results_count_as_refusals_unless_preempted_or_succeeded():
    assert refusal_from_result(True, 4, 0, '', PREEMPTED_MESSAGE) is None
    assert refusal_from_result(True, 6, -1, PREEMPTED_MESSAGE, PREEMPTED_MESSAGE) is None
    reason = refusal_from_result(True, 6, -1, 'The twin refused the goal, nothing moved: '
                                 'collision', PREEMPTED_MESSAGE)
    assert 'aborted' in reason and 'The twin refused the goal' in reason and '-1' in reason
    assert 'rejected' in refusal_from_result(False, 0, None, '', PREEMPTED_MESSAGE)
    assert 'cancelled' in refusal_from_result(True, 5, 0, '', PREEMPTED_MESSAGE)


def test_unarmed_hardware_is_a_refusal_before_anything_is_sent():
    assert bridge_refusal('sim', False) is None
    assert bridge_refusal('hardware', True) is None
    assert 'not armed' in bridge_refusal('hardware', False)
    assert 'shadow' in bridge_refusal('shadow', False)


def test_joint_states_are_read_in_the_policys_joint_order():
    q, v = joint_vectors(['b', 'x', 'a'], [2.0, 9.0, 1.0], [0.2, 0.9, 0.1], ['a', 'b'])
    assert q.tolist() == [1.0, 2.0] and v.tolist() == [0.1, 0.2]
    q, v = joint_vectors(['a', 'b'], [1.0, 2.0], [], ['a', 'b'])  # a position-only driver
    assert v.tolist() == [0.0, 0.0]
    assert joint_vectors(['a'], [1.0], [0.0], ['a', 'b']) is None  # another group's message


# --- with the real reaching task and a policy file --------------------------------------------

@pytest.fixture(scope='module')
def policy_file(tmp_path_factory):
    """A stand-in policy with random weights for rdt_arm6's reaching task (the kept,
    trained policy is tested through the graph in tests/integration/test_policy_node.py)."""
    from reverse_digital_twin.core.policy import Policy
    from reverse_digital_twin.core.reach_task import ReachTask
    task = ReachTask.from_robot('rdt_arm6')
    rng = np.random.default_rng(3)
    n, m = task.observation_size, task.action_size
    weights = [(rng.normal(0, 0.3, (n, 16)), np.zeros(16)),
               (rng.normal(0, 0.3, (16, m)), np.zeros(m))]
    path = tmp_path_factory.mktemp('policy') / 'random.npz'
    Policy(weights, 'tanh', np.zeros(n), np.ones(n), task.meta()).save(path)
    return path


def test_a_policy_file_brings_its_task(policy_file):
    loaded = load_policy(policy_file)
    assert loaded.robot == 'rdt_arm6' and len(loaded.joints) == 6
    assert loaded.rate == pytest.approx(20.0) and loaded.horizon == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="trained for robot 'rdt_arm6', not 'panda'"):
        load_policy(policy_file, 'panda')
    with pytest.raises(ConfigError, match='policy file not found'):
        load_policy(policy_file.parent / 'missing.npz')
    broken = policy_file.parent / 'broken.npz'
    broken.write_bytes(b'not a policy')
    with pytest.raises(ConfigError, match='broken.npz'):
        load_policy(broken)


def test_goals_must_fit_the_task(policy_file):
    task = load_policy(policy_file).task
    assert check_goal([0.1] * 6, task).shape == (6,)
    with pytest.raises(ConfigError, match='wants 6 joints'):
        check_goal([0.1, 0.2], task)
    with pytest.raises(ConfigError, match='finite'):
        check_goal([0.1] * 5 + [math.inf], task)


def test_the_real_task_closes_the_loop(policy_file):
    """With rdt_arm6's task and a plant that follows each command, a policy that steers at
    the goal reaches it; the random stand-in policy's commands stay within one action's
    reach of the measured state and within the URDF limits."""
    task = load_policy(policy_file).task
    goal = task.home + np.array([0.3, -0.2, 0.2, 0.1, -0.1, 0.2])
    period = task.action_period

    def steer(observation: np.ndarray) -> np.ndarray:
        n = len(task.joints)
        error = observation[3 * n:] * task.error_scale
        return np.clip(error / (task.max_speed * period), -1.0, 1.0)
    runner = PolicyRunner(steer, task, goal, max_steps=100)
    q = task.home.copy()
    for k in range(100):
        targets = runner.cycle(k * period, reading(q, k * period, np.zeros(6)))
        if targets is None:
            break
        q = targets
    assert runner.result.outcome == REACHED, runner.result.describe()
    random_policy = load_policy(policy_file).policy
    runner = PolicyRunner(random_policy.act, task, goal, max_steps=5)
    targets = runner.cycle(0.0, reading(task.home, 0.0, np.zeros(6)))
    assert np.all(np.abs(targets - task.home) <= task.max_speed * period + 1e-9)
    assert np.all(targets >= task.lower) and np.all(targets <= task.upper)
