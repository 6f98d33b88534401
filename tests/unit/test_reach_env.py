"""The reaching environment (core/reach_env.py), its task contract (core/reach_task.py) and the
numpy policy (core/policy.py): Gymnasium's checker, seeded reproducibility, randomisation, the
kept policy reaching its goals without torch, and the API on every configured robot."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from reverse_digital_twin.core.policy import Policy, PolicyFileError
from reverse_digital_twin.core.reach_env import ENV_ID, ReachEnv, evaluate, make_vector_env
from reverse_digital_twin.core.reach_task import ReachSettings, ReachTask

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / 'policies'
RANDOMISATION = 'reach_randomisation'
#: check_env warns about the observation's infinite bounds: velocities have none
UNBOUNDED = pytest.mark.filterwarnings('ignore:.*Box observation space m.*infinity')


@pytest.fixture(scope='module')
def arm() -> ReachEnv:
    env = ReachEnv('rdt_arm6')
    yield env
    env.close()


@pytest.fixture(scope='module')
def randomised() -> ReachEnv:
    env = ReachEnv('rdt_arm6', scenario=RANDOMISATION, offset_range=0.01)
    yield env
    env.close()


def _rollout(env: ReachEnv, seed: int, actions: np.ndarray) -> list:
    out = [env.reset(seed=seed)[0]]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out += [obs, reward]
        if terminated or truncated:
            break
    return out


def _reach(env: ReachEnv):
    """A scripted proportional reach to the episode's goal pose (privileged: the env's goal
    joint positions)."""
    gain = 1.0 / (env.task.max_speed * env.task.action_period)

    def act(obs: np.ndarray) -> np.ndarray:
        a = (env.goal_positions - env.positions) * gain
        return a / max(1.0, float(np.max(np.abs(a))))  # along the straight line
    return act


@UNBOUNDED
def test_gymnasium_check_env_passes(arm: ReachEnv) -> None:
    check_env(arm, skip_render_check=True, skip_close_check=True)


def test_registered_and_made_by_id() -> None:
    env = gymnasium.make(ENV_ID, robot='rdt_arm6', max_steps=3)
    try:
        obs, _ = env.reset(seed=1)
        assert obs.shape == env.observation_space.shape
        _, _, _, truncated, _ = env.step(env.action_space.sample())
        assert not truncated
    finally:
        env.close()


def test_seeded_resets_are_reproducible(arm: ReachEnv, randomised: ReachEnv) -> None:
    first, info = arm.reset(seed=11)
    goal = arm.goal.copy()
    arm.reset(seed=12)
    assert not np.allclose(goal, arm.goal)
    again, info2 = arm.reset(seed=11)
    assert np.array_equal(first, again) and np.array_equal(goal, arm.goal) and info == info2
    randomised.reset(seed=11)
    draw = randomised.draw_description
    randomised.reset(seed=12)
    assert randomised.draw_description != draw
    randomised.reset(seed=11)
    assert randomised.draw_description == draw


def test_same_actions_same_trajectory(randomised: ReachEnv) -> None:
    """Noise, latency, payload and offsets included: bit for bit, episode after episode."""
    actions = np.random.default_rng(3).uniform(-1, 1, (12, randomised.task.action_size))
    first = _rollout(randomised, 21, actions)
    _rollout(randomised, 22, actions)  # another draw in between must leave nothing behind
    second = _rollout(randomised, 21, actions)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_randomisation_is_applied(arm: ReachEnv, randomised: ReachEnv) -> None:
    randomised.reset(seed=31)
    assert randomised.draw_description != 'nominal'
    offsets = randomised.positions - randomised.true_positions
    assert 0.0 < np.max(np.abs(offsets)) <= 0.01 + 0.005  # offsets, plus sensor noise
    n = arm.task.action_size
    actions = np.full((8, n), 0.5)
    nominal = _rollout(arm, 31, actions)
    drawn = _rollout(randomised, 31, actions)
    assert np.array_equal(nominal[0][2 * n:3 * n], drawn[0][2 * n:3 * n])  # the same goal
    assert not np.allclose(nominal[-2], drawn[-2])  # another motion


def test_actions_go_through_the_controller(arm: ReachEnv) -> None:
    """An action is a joint_trajectory message: targets max_speed * action_period away; the
    next one, an action_period later, starts from the measured state again, so the arm moves
    at up to max_speed (less: the measured state lags the command); zero holds it."""
    task = arm.task
    arm.reset(seed=41)
    start = arm.positions
    for _ in range(3):
        arm.step(np.zeros(task.action_size))
    held = arm.positions
    assert np.max(np.abs(held - start)) < 2e-3
    action = np.zeros(task.action_size)
    action[0] = -1.0 if held[0] > task.home[0] else 1.0
    for _ in range(3):  # up to speed
        arm.step(action)
    before = arm.positions
    arm.step(action)
    arm.step(action)
    moved = arm.positions - before
    step = task.max_speed[0] * task.action_period
    assert 0.6 * 2 * step < moved[0] * action[0] < 2 * step
    assert np.max(np.abs(moved[1:])) < 5e-3


def test_task_contract() -> None:
    task = ReachTask.from_robot('rdt_arm6')
    n = len(task.joints)
    assert task.control_rate == 100.0 and task.action_period == pytest.approx(0.05)
    q = task.home.copy()
    q[0] = task.upper[0] - 1e-3
    targets = task.targets_from_action(np.full(n, 5.0), q)  # clipped action, clipped targets
    assert targets[0] == task.upper[0]
    assert np.allclose(targets[1:], q[1:] + task.max_speed[1:] * task.action_period)
    obs = task.observation(q, np.zeros(n), task.home)
    assert obs.dtype == np.float32 and obs.shape == (4 * n,) == (task.observation_size,)
    assert task.success(task.home, task.home) and not task.success(q, task.home)
    assert not task.success(task.home, task.home, velocities=np.full(n, 1.0))
    tip = ReachTask.from_meta(task.meta() | {'task': {**task.settings.as_dict(),
                                                      'goal_kind': 'tip'}})
    assert tip.observation_size == 2 * n + 9
    goal = tip.goal_of(task.home)
    assert goal.shape == (3,) and tip.success(task.home, goal)
    assert tip.success(q, goal)  # the first joint turned by a full turn: the same tip
    assert not tip.success(task.home + 0.1, goal)


@pytest.mark.parametrize('robot', ['rdt_arm6', 'panda'])
def test_kept_policy_reaches_without_torch(robot: str) -> None:
    """The policy kept in the repository reaches >= 90 % of 20 seeded goals, numpy only."""
    path = POLICIES / f'reach_{robot}.npz'
    assert path.is_file(), f'no kept policy for {robot}'
    policy = Policy.load(path)
    assert path.stat().st_size < 300_000
    env = ReachEnv(policy.meta['robot'], settings=policy.meta['task'])
    try:
        assert env.task.joints == tuple(policy.meta['joints'])
        results = evaluate(env, policy.act, range(1000, 1020))
    finally:
        env.close()
    rate = np.mean([r['success'] for r in results])
    assert rate >= 0.9, [(r['seed'], r['distance'], r.get('contact')) for r in results
                         if not r['success']]
    assert 'torch' not in sys.modules and 'stable_baselines3' not in sys.modules


@pytest.mark.parametrize('goal_kind', ['joints', 'tip'])
def test_panda_api(goal_kind: str) -> None:
    env = ReachEnv('panda', goal_kind=goal_kind, scenario=RANDOMISATION, max_steps=40)
    try:
        assert env.action_space.shape == (7,)
        obs, _ = env.reset(seed=2)
        assert obs.shape == env.observation_space.shape == (env.task.observation_size,)
        results = evaluate(env, _reach(env), [3])
        assert results[0]['success'], results
    finally:
        env.close()


@UNBOUNDED
def test_tip_goals_on_the_arm() -> None:
    env = ReachEnv('rdt_arm6', goal_kind='tip')
    try:
        results = evaluate(env, _reach(env), [5, 6])
        assert all(r['success'] for r in results), results
        check_env(env, skip_render_check=True)  # closes it, twice
    finally:
        env.close()


def test_camera_observation() -> None:
    env = ReachEnv('rdt_arm6', camera='table_camera', camera_size=(32, 24), max_steps=2)
    try:
        obs, _ = env.reset(seed=1)
        assert set(obs) == {'state', 'rgb', 'depth'}
        assert obs['rgb'].shape == (24, 32, 3) and obs['rgb'].dtype == np.uint8
        assert obs['depth'].shape == (24, 32) and np.all(obs['depth'] > 0)
        assert obs['rgb'].std() > 0  # something is seen
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_vector_env_steps_in_parallel() -> None:
    envs = make_vector_env(2, robot='rdt_arm6', max_steps=5)
    try:
        obs, _ = envs.reset(seed=7)
        assert obs.shape == (2, 24) and not np.array_equal(obs[0], obs[1])
        for _ in range(6):
            obs, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
        assert obs.shape == (2, 24) and reward.shape == (2,)
    finally:
        envs.close()


def test_policy_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = [(rng.normal(size=(4, 8)), rng.normal(size=8)),
               (rng.normal(size=(8, 2)), rng.normal(size=2))]
    meta = {'robot': 'rdt_arm6', 'joints': ['a'], 'task': ReachSettings().as_dict()}
    policy = Policy(weights, 'tanh', np.ones(4), np.full(4, 2.0), meta)
    path = policy.save(tmp_path / 'p.npz')
    loaded = Policy.load(path)
    x = rng.normal(size=4)
    expected = np.clip(np.tanh(((x - 1.0) / 2.0) @ weights[0][0] + weights[0][1])
                       @ weights[1][0] + weights[1][1], -1, 1)
    assert np.allclose(loaded.act(x), expected, atol=1e-5)
    assert loaded.act(np.stack([x, x])).shape == (2, 2)
    assert loaded.meta['robot'] == 'rdt_arm6'
    with np.load(path) as data:
        assert json.loads(str(data['meta']))['task']['goal_kind'] == 'joints'
    np.savez(tmp_path / 'bad.npz', W0=np.zeros((4, 2)))
    with pytest.raises(PolicyFileError, match='missing keys'):
        Policy.load(tmp_path / 'bad.npz')
    with pytest.raises(PolicyFileError, match='not found'):
        Policy.load(tmp_path / 'none.npz')
