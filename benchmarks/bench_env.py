"""The reaching environment's speed against bare PyBullet stepping, measured in the same run.

- ``env_steps_per_s``: :class:`ReachEnv` steps per CPU second of this process, resets
  included, driven by a scripted proportional reach to the episode's goal (no network: what is
  timed is the environment). CPU time, as bench_prediction: with other engineers' tests on the
  same two cores, wall time measures them; on an idle machine the two agree;
- ``env_physics_steps_per_s``: the physics steps those env steps advanced per CPU second (each
  env step is ``cycles_per_action`` control cycles of the predictor's rollout: measure, control
  law, physics);
- ``env_bare_physics_steps_per_s``: PyBullet's stepSimulation alone in the environment's own
  world (same robot, scene, self-collision pairs, physics rate), per CPU second: the limit,
  measured in chunks between the env's so that both see the same machine;
- ``env_physics_ratio`` = the two above (target >= 0.6);
- ``env_steps_per_s_1w``, ``env_steps_per_s_2w``: wall rates of ``make_vector_env(1)`` and
  ``make_vector_env(2)`` (Gymnasium's AsyncVectorEnv: worker processes, actions and infos
  pickled over pipes, observations in shared memory);
- ``env_efficiency_2w`` = 2w / (2 x 1w), as bench_sweep's: the share of linear scaling from one
  worker to two, within one round (target >= 0.8; bounded by the cores other processes leave
  free); ``env_vector_overhead_1w`` = 1w / the in-process wall rate: what the pipes cost one
  worker (Gymnasium's per-step messaging, ~0.5 ms of the main process per step);
- ``env_policy_success_rate``, ``env_policy_success_rate_randomised``: the kept policy
  (policies/reach_<robot>.npz, numpy) on 20 seeded nominal and 40 seeded randomised episodes.

REPEATS rounds, the median round's figures. Standalone: ``python -m benchmarks.bench_env
[robot]``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import ROOT, run_alone
from reverse_digital_twin.core.policy import Policy
from reverse_digital_twin.core.reach_env import ReachEnv, evaluate, make_vector_env

TARGETS = {'env_physics_ratio': ('>=', 0.6), 'env_efficiency_2w': ('>=', 0.8)}
REPEATS = 5
#: Env steps per timed run (in process; the 2-worker run takes twice as many).
STEPS = 1500
BARE_STEPS = 40000
SEED = 20261203
POLICY_DIR = ROOT / 'policies'
RANDOMISATION = 'reach_randomisation'


def _log(message: str) -> None:
    print(f'[bench_env] {message}', file=sys.stderr, flush=True)


def _gain(env: ReachEnv) -> np.ndarray:
    """Action per rad of joint error that reaches in one action (the scripted reach)."""
    return 1.0 / (env.task.max_speed * env.task.action_period)


def in_process(env: ReachEnv, steps: int, bare_chunks: int = 0,
               bare_steps: int = 0) -> tuple[float, float, float, float]:
    """(env steps per CPU s, physics steps per CPU s, env steps per wall s, bare physics steps
    per CPU s) of ``steps`` env steps, resets included; ``bare_chunks`` times in between,
    ``bare_steps`` of stepSimulation alone in the same world (timed apart)."""
    gain = _gain(env)
    env.reset(seed=SEED)
    physics, cpu, wall, bare_cpu = 0, 0.0, 0.0, 0.0
    every = steps // bare_chunks if bare_chunks else steps + 1
    c0, w0 = time.process_time(), time.perf_counter()
    for k in range(steps):
        if bare_chunks and k % every == every - 1:
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            with env.world.preserved_state():
                b0 = time.process_time()
                env.world.step_bare(bare_steps // bare_chunks)
                bare_cpu += time.process_time() - b0
            c0, w0 = time.process_time(), time.perf_counter()
        action = (env.goal_positions - env.positions) * gain
        action /= max(1.0, float(np.max(np.abs(action))))  # along the straight line
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            physics += env.world.steps
            env.reset()
    physics += env.world.steps
    cpu += time.process_time() - c0
    wall += time.perf_counter() - w0
    bare = (bare_steps // bare_chunks * bare_chunks) / bare_cpu if bare_chunks else 0.0
    return steps / cpu, physics / cpu, steps / wall, bare


def vectorised(robot: str, workers: int, steps: int, gain: np.ndarray, error: slice,
               error_scale: float) -> float:
    """Env steps/s (counting every sub-env) of ``workers`` worker processes, the same scripted
    reach, from the observation's goal error."""
    envs = make_vector_env(workers, robot=robot)
    try:
        obs, _ = envs.reset(seed=SEED)
        envs.step(np.zeros((workers, len(gain)), dtype=np.float32))  # workers warm
        t0 = time.perf_counter()
        for _ in range(steps):
            action = obs[:, error] * error_scale * gain
            action /= np.maximum(1.0, np.abs(action).max(axis=1, keepdims=True))
            obs, *_ = envs.step(action.astype(np.float32))
        return workers * steps / (time.perf_counter() - t0)
    finally:
        envs.close()


def policy_success(robot: str) -> dict:
    path = POLICY_DIR / f'reach_{Path(robot).stem}.npz'
    if not path.is_file():
        _log(f'no kept policy {path}: success rates not measured')
        return {}
    policy = Policy.load(path)
    settings = policy.meta['task']
    out = {}
    for key, kwargs, count in (
            ('env_policy_success_rate', {}, 20),
            ('env_policy_success_rate_randomised',
             {'scenario': RANDOMISATION, 'offset_range': 0.003}, 40)):
        env = ReachEnv(robot, settings=settings, **kwargs)
        try:
            results = evaluate(env, policy.act, [SEED + k for k in range(count)])
        finally:
            env.close()
        out[key] = float(np.mean([r['success'] for r in results]))
    return out


def measure(robot: str = 'rdt_arm6') -> dict:
    env = ReachEnv(robot)
    try:
        n = env.task.action_size
        per_step = env.task.cycles_per_action * env.predictor.steps_per_cycle
        in_process(env, 200)  # warm
        rounds = []
        load = os.getloadavg()[0]
        for _ in range(REPEATS):
            rate, physics, wall_rate, limit = in_process(env, STEPS, 10, BARE_STEPS)
            args = (_gain(env), slice(3 * n, 4 * n), env.task.error_scale)
            one = vectorised(robot, 1, STEPS, *args)
            two = vectorised(robot, 2, STEPS, *args)
            rounds.append((rate, physics, limit, physics / limit, one, two, two / (2 * one),
                           one / wall_rate))
            _log(f'{rate:.0f} env steps/s ({physics:.0f} physics steps/s, bare {limit:.0f}: '
                 f'{physics / limit:.2f}); 1 worker {one:.0f}/s ({one / wall_rate:.2f} of '
                 f'in-process), 2 workers {two:.0f}/s: efficiency {two / (2 * one):.2f}')
    finally:
        env.close()
    ratio = sorted(rounds, key=lambda r: r[3])[len(rounds) // 2]
    scaling = sorted(rounds, key=lambda r: r[6])[len(rounds) // 2]
    result = {
        'env_steps_per_s': ratio[0],
        'env_physics_steps_per_s': ratio[1],
        'env_bare_physics_steps_per_s': ratio[2],
        'env_physics_ratio': ratio[3],
        'env_physics_steps_per_env_step': per_step,
        'env_steps_per_s_1w': scaling[4],
        'env_steps_per_s_2w': scaling[5],
        'env_efficiency_2w': scaling[6],
        'env_vector_overhead_1w': scaling[7],
        'env_load_average_at_start': load,
    }
    result.update(policy_success(robot))
    return result


if __name__ == '__main__':
    sys.exit(run_alone(measure, __doc__))
