"""`make train` / ``python -m reverse_digital_twin.train``: train a reaching policy with
domain randomisation, and export it to a file the robot runs with numpy alone.

Stable-Baselines3's PPO on CPU PyTorch (installed by ``make train`` from
tools/requirements-train.txt, never by ``make test``) trains on
:class:`~reverse_digital_twin.core.reach_env.ReachEnv` in ``--workers`` processes, each env
drawing a scenario per episode (default: config/scenarios/reach_randomisation.yaml - payload,
friction, damping, sensor noise, latency, lost commands - plus encoder offsets). Observations
are normalised with running statistics (VecNormalize), which the export keeps.

By default PPO starts from an imitation warm start (DAgger, :func:`warm_start`): a scripted
straight-line reach to the goal pose (:func:`expert_action`) drives and labels
``--warm-rounds`` x ``--warm-episodes`` randomised episodes, the learner driving a growing share
of the steps; PPO's actor is fitted to the labels and its critic to the returns, and PPO then
fine-tunes under the same randomisation, in small KL-bounded steps, with the warm start's
observation statistics kept fixed (the fitted actor expects them: updating them as PPO goes
undid the warm start within two rollouts). ``--no-warm-start`` trains from a random policy.

Progress: a line per rollout (steps, minutes, steps/s, success of the last 100 training
episodes, mean return) and, every ``--eval-every`` steps, the success rate of the exported
policy itself - :class:`~reverse_digital_twin.core.policy.Policy`, numpy - on ``--eval-episodes``
seeded randomised episodes. ``train_minutes`` is the wall time until that evaluation first
reaches ``--target`` (90 %); training runs for the budget (``--timesteps``,
``--max-minutes``; ``--stop`` ends it at a success rate), and the best evaluated policy is
exported (PPO can make a policy worse too). Outputs: the policy (``--output``, default
artifacts/policies/reach_<robot>.npz; copy it to policies/ to keep it), the learning curve
(artifacts/train_<robot>_learning_curve.png), artifacts/train_<robot>.json, and the figures
``train_minutes``, ``train_success_rate``, ``train_timesteps`` merged into
artifacts/benchmarks.json (as the benchmark ``train``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from reverse_digital_twin.core.policy import Policy
from reverse_digital_twin.core.reach_task import ReachSettings

#: Where outputs go unless told otherwise (the checkout's artifacts/).
ARTIFACTS = Path('artifacts')
DEFAULT_SCENARIO = 'reach_randomisation'
#: rad: encoder offsets drawn per episode (the scenario format has none).
DEFAULT_OFFSET_RANGE = 0.003
#: The seeds of the evaluation episodes (never used by training: its envs draw from others).
EVAL_SEED = 900_000


def _log(text: str) -> None:
    print(f'[train] {text}', flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m reverse_digital_twin.train',
                                description=__doc__.splitlines()[0])
    p.add_argument('--robot', default='rdt_arm6', help='robot under config/ or a parameter YAML')
    p.add_argument('--goal-kind', default='joints', choices=('joints', 'tip'))
    p.add_argument('--scenario', default=DEFAULT_SCENARIO,
                   help="domain randomisation scenario (name or file; 'none': nominal)")
    p.add_argument('--offset-range', type=float, default=DEFAULT_OFFSET_RANGE,
                   help='rad: encoder offsets drawn per episode in +- this')
    p.add_argument('--workers', type=int, default=2, help='env processes (default 2)')
    p.add_argument('--physics-decimation', type=int, default=1,
                   help="training worlds step at the twin's physics rate / this (default 1: the "
                   'live rate; evaluation always runs at 1)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--timesteps', type=int, default=200_000,
                   help='budget of PPO env steps (default 200,000)')
    p.add_argument('--max-minutes', type=float, default=30.0, help='budget of wall minutes')
    p.add_argument('--target', type=float, default=0.9,
                   help='success rate that train_minutes measures the time to (default 0.9)')
    p.add_argument('--stop', type=float, default=None,
                   help='stop once an evaluation reaches this success rate (default: train for '
                   'the whole budget)')
    p.add_argument('--eval-every', type=int, default=30_000, help='env steps between evaluations')
    p.add_argument('--eval-episodes', type=int, default=30)
    p.add_argument('--no-warm-start', dest='warm_start', action='store_false',
                   help='pure PPO from a random policy (default: imitation warm start first)')
    p.add_argument('--warm-episodes', type=int, default=40,
                   help='episodes per round of the imitation warm start (default 40)')
    p.add_argument('--warm-rounds', type=int, default=3,
                   help='rounds of the imitation warm start (default 3)')
    p.add_argument('--output', default=None,
                   help='policy file (default artifacts/policies/reach_<robot>.npz)')
    p.add_argument('--artifacts', default=str(ARTIFACTS), help='directory for plots and reports')
    p.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    return p


def _import_training() -> tuple[Any, Any]:
    try:
        import stable_baselines3  # noqa: PLC0415
        import torch  # noqa: PLC0415
    except ImportError as exc:
        raise SystemExit(f'train: {exc.name} is not installed; `make train` installs '
                         'tools/requirements-train.txt (torch, stable-baselines3)') from None
    return torch, stable_baselines3


def export_policy(model: Any, normalize: Any, meta: dict[str, Any]) -> Policy:
    """The numpy :class:`Policy` of an SB3 PPO model (its MLP policy network and action mean)
    with the VecNormalize observation statistics."""
    import torch  # noqa: PLC0415
    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    layers.append(model.policy.action_net)
    acts = {type(m).__name__.lower() for m in model.policy.mlp_extractor.policy_net
            if not isinstance(m, torch.nn.Linear)}
    if len(acts) != 1:
        raise ValueError(f'cannot export activations {sorted(acts)}: expected one kind')
    weights = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
               for m in layers]
    rms = normalize.obs_rms
    return Policy(weights, acts.pop(), rms.mean.copy(),
                  np.sqrt(rms.var + normalize.epsilon),
                  {**meta, 'obs_clip': float(normalize.clip_obs)})


def expert_action(env: Any) -> np.ndarray:
    """The teacher of the warm start: a straight-line reach to the episode's goal pose (a
    proportional step along the joint-space line, saturated at full speed). It reads the
    goal's joint positions (privileged for tip goals) and the measured state."""
    task = env.task
    a = (env.goal_positions - env.positions) / (task.max_speed * task.action_period)
    return a / max(1.0, float(np.max(np.abs(a))))


def warm_start(model: Any, normalize: Any, env: Any, rounds: int, episodes: int, seed: int,
               gamma: float, log: Any) -> int:
    """Imitation warm start of the PPO policy (DAgger): round 0 the teacher drives, later
    rounds the learner drives half / a quarter / ... of the steps, the teacher labels every
    observation; the actor's mean is fitted to the labels, the critic to the discounted
    returns seen, and the observation statistics become VecNormalize's. Returns env steps."""
    import torch  # noqa: PLC0415
    policy = model.policy
    observations: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    returns: list[float] = []
    rng = np.random.default_rng(seed)
    learner = None
    steps = 0
    for k in range(rounds):
        share = 0.0 if k == 0 else 1.0 - 0.5 ** k  # of steps the learner drives
        successes = 0
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + 10_000 * k + episode)
            rewards: list[float] = []
            done = False
            while not done:
                teacher = expert_action(env)
                observations.append(obs)
                labels.append(teacher)
                act = learner(obs) if learner is not None and rng.random() < share else teacher
                obs, reward, terminated, truncated, info = env.step(act)
                rewards.append(float(reward))
                done = terminated or truncated
            successes += bool(info['success'])
            steps += len(rewards)
            discounted, g = [], 0.0
            for r in reversed(rewards):
                g = r + gamma * g
                discounted.append(g)
            returns.extend(reversed(discounted))
        x = np.array(observations)
        mean, var = x.mean(axis=0), x.var(axis=0) + 1e-6
        normalize.obs_rms.mean, normalize.obs_rms.var = mean, var
        normalize.obs_rms.count = float(len(x))
        inputs = torch.as_tensor(np.clip((x - mean) / np.sqrt(var + normalize.epsilon),
                                         -normalize.clip_obs, normalize.clip_obs),
                                 dtype=torch.float32)
        targets = torch.as_tensor(np.array(labels), dtype=torch.float32)
        values = torch.as_tensor(np.array(returns), dtype=torch.float32)
        optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
        for _ in range(40):
            for batch in torch.randperm(len(x)).split(256):
                features = policy.extract_features(inputs[batch])
                latent_pi, latent_vf = policy.mlp_extractor(features)
                loss = torch.nn.functional.mse_loss(policy.action_net(latent_pi), targets[batch])
                loss = loss + 0.01 * torch.nn.functional.mse_loss(
                    policy.value_net(latent_vf).squeeze(-1), values[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        learner = export_policy(model, normalize, {}).act
        log(f'warm start round {k + 1}/{rounds}: {len(x):,} labelled steps, the driver reached '
            f'{successes}/{episodes} goals (learner share {share:.0%})')
    with torch.no_grad():
        policy.log_std.fill_(-2.0)  # explore around the imitated policy, not away from it
    return steps


def _plot(curve: list[dict[str, Any]], evals: list[dict[str, Any]], target: float,
          path: Path, title: str) -> Path:
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    if curve:
        a.plot([c['minutes'] for c in curve], [c['success'] for c in curve],
               label='training episodes (last 100)')
        b.plot([c['timesteps'] for c in curve], [c['return'] for c in curve])
    if evals:
        a.plot([e['minutes'] for e in evals], [e['success'] for e in evals], 'o-',
               label='exported policy, seeded evaluation')
    a.axhline(target, color='grey', ls='--', lw=1, label=f'target {target:.0%}')
    a.set_xlim(left=0.0)
    a.set_xlabel('wall time (min)')
    a.set_ylabel('success rate')
    a.set_ylim(-0.02, 1.02)
    a.legend(loc='lower right')
    b.set_xlabel('env steps')
    b.set_ylabel('mean episode return (last 100)')
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _merge_benchmarks(robot: str, artifacts: Path) -> None:
    """Put the training figures into benchmarks.json through `make bench`'s own merge
    (bench_train reads them from the report), when run from the checkout."""
    try:
        from benchmarks import ROOT  # noqa: PLC0415 - the checkout's, not installed
        from benchmarks.__main__ import run  # noqa: PLC0415
    except ImportError:
        _log('benchmarks/ not importable (not run from the checkout): benchmarks.json left '
             'alone')
        return
    if artifacts.resolve() != (ROOT / 'artifacts').resolve():
        _log(f'{artifacts} is not the checkout\'s artifacts/: benchmarks.json left alone')
        return
    path = artifacts / 'benchmarks.json'
    try:
        recorded = json.loads(path.read_text()).get('robot')
    except (OSError, ValueError):
        recorded = None
    if recorded not in (None, robot):
        _log(f'{path} holds figures of {recorded}; not merged (see the report)')
        return
    run(robot, artifacts, ['train'], None)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch, sb3 = _import_training()
    from stable_baselines3 import PPO  # noqa: PLC0415
    from stable_baselines3.common.callbacks import BaseCallback  # noqa: PLC0415
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv  # noqa: PLC0415
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize  # noqa: PLC0415

    from reverse_digital_twin.core.reach_env import ReachEnv, evaluate  # noqa: PLC0415

    torch.set_num_threads(max(1, args.threads))
    t0 = time.monotonic()  # train_minutes counts from here: worker start-up included
    artifacts = Path(args.artifacts)
    robot_name = Path(args.robot).stem
    output = Path(args.output) if args.output else \
        artifacts / 'policies' / f'reach_{robot_name}.npz'
    scenario = None if args.scenario in ('', 'none') else args.scenario
    env_kwargs = dict(robot=args.robot, goal_kind=args.goal_kind, scenario=scenario,
                      offset_range=args.offset_range)

    def make(rank: int):
        def build() -> ReachEnv:
            return ReachEnv(seed=args.seed * 1000 + rank,
                            physics_decimation=args.physics_decimation, **env_kwargs)
        return build

    fns = [make(k) for k in range(args.workers)]
    venv = SubprocVecEnv(fns, start_method='forkserver') if args.workers > 1 else DummyVecEnv(fns)
    venv = VecMonitor(venv, info_keywords=('success',))
    # The warm start fits the critic to raw returns: no reward normalisation then
    venv = VecNormalize(venv, norm_obs=True, norm_reward=not args.warm_start, clip_obs=10.0,
                        gamma=0.98)
    eval_env = ReachEnv(**env_kwargs)
    task = eval_env.task
    n_steps = max(64, 2048 // args.workers)
    # From a warm start PPO fine-tunes: small steps, each update held to a small KL
    model = PPO('MlpPolicy', venv, learning_rate=3e-5 if args.warm_start else 5e-4,
                n_steps=n_steps, batch_size=128, target_kl=0.01 if args.warm_start else None,
                n_epochs=10, gamma=0.98, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0,
                policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]),
                                   activation_fn=torch.nn.Tanh, log_std_init=-1.2),
                seed=args.seed, device='cpu', verbose=0)
    _log(f'{args.robot}: {task.goal_kind} goals, {len(task.joints)} joints, actions at '
         f'{task.policy_rate:g} Hz; randomisation {scenario or "none"} + offsets '
         f'+-{args.offset_range:g} rad; PPO on {args.workers} worker(s), torch '
         f'{torch.__version__}, stable-baselines3 {sb3.__version__}')

    curve: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    reached: dict[str, Any] = {}
    eval_seeds = [EVAL_SEED + k for k in range(args.eval_episodes)]
    meta_base = {**task.meta(), 'format': 1}

    def training_meta(extra: dict[str, Any]) -> dict[str, Any]:
        return {**meta_base, 'training': {
            'library': f'stable-baselines3 {sb3.__version__}', 'algorithm': 'PPO',
            'torch': torch.__version__, 'scenario': scenario or 'none',
            'offset_range': args.offset_range, 'workers': args.workers, 'seed': args.seed,
            'physics_decimation': args.physics_decimation,
            'warm_start': 'DAgger from a straight-line reach' if args.warm_start else 'none',
            'machine': f'{platform.machine()}, {os.cpu_count()} cores', **extra}}

    class Progress(BaseCallback):
        """Training-episode statistics per rollout, a seeded evaluation of the exported
        policy every eval_every steps; stops at the stop success rate or the budget."""

        def __init__(self) -> None:
            super().__init__()
            self.successes: deque[float] = deque(maxlen=100)
            self.returns: deque[float] = deque(maxlen=100)
            self.next_eval = args.eval_every
            self.stop = False

        def _on_step(self) -> bool:
            for info in self.locals['infos']:
                episode = info.get('episode')
                if episode is not None:
                    self.successes.append(float(episode.get('success', False)))
                    self.returns.append(float(episode['r']))
            minutes = (time.monotonic() - t0) / 60.0
            return not self.stop and minutes < args.max_minutes

        def _on_rollout_end(self) -> None:
            minutes = (time.monotonic() - t0) / 60.0
            steps = self.num_timesteps
            success = float(np.mean(self.successes)) if self.successes else 0.0
            ret = float(np.mean(self.returns)) if self.returns else 0.0
            curve.append({'timesteps': steps, 'minutes': minutes, 'success': success,
                          'return': ret})
            line = (f'{steps:>9,} steps  {minutes:5.1f} min  {steps / (minutes * 60):6.0f} '
                    f'steps/s  success {success:4.0%} (last 100 episodes)  return {ret:6.2f}')
            if steps >= self.next_eval:
                self.next_eval += args.eval_every
                policy = export_policy(model, venv, training_meta({}))
                results = evaluate(eval_env, policy.act, eval_seeds)
                rate = float(np.mean([r['success'] for r in results]))
                evals.append({'timesteps': steps, 'minutes': minutes, 'success': rate})
                line += f'  | evaluation {rate:4.0%} of {len(results)}'
                if rate >= args.target and not reached:
                    reached.update(minutes=minutes, timesteps=steps, success=rate)
                    line += f'  <- target {args.target:.0%} reached'
                if args.stop is not None and rate >= args.stop:
                    self.stop = True
                keep(rate, steps, policy)
            _log(line)

    best: dict[str, Any] = {'rate': -1.0}

    def keep(rate: float, steps: int, policy: Policy) -> None:
        """Remember the best evaluated policy (the later one on a tie): PPO may also make a
        policy worse, and what is exported is the best one seen."""
        if rate >= best['rate']:
            best.update(rate=rate, timesteps=steps, policy=policy)

    progress = Progress()
    warm_steps = 0
    if args.warm_start:
        warm_env = ReachEnv(physics_decimation=args.physics_decimation, **env_kwargs)
        warm_steps = warm_start(model, venv, warm_env, args.warm_rounds, args.warm_episodes,
                                args.seed * 1000 + 500_000, 0.98, _log)
        warm_env.close()
        minutes = (time.monotonic() - t0) / 60.0
        policy = export_policy(model, venv, training_meta({}))
        rate = float(np.mean([r['success'] for r in evaluate(eval_env, policy.act,
                                                             eval_seeds)]))
        evals.append({'timesteps': 0, 'minutes': minutes, 'success': rate})
        note = ''
        if rate >= args.target:
            reached.update(minutes=minutes, timesteps=0, success=rate)
            note = f'  <- target {args.target:.0%} reached'
        _log(f'after the warm start ({warm_steps:,} teacher-labelled steps, {minutes:.1f} min): '
             f'evaluation {rate:4.0%} of {len(eval_seeds)}{note}')
        progress.stop = args.stop is not None and rate >= args.stop
        # The fitted actor expects the warm start's observation statistics: keep them
        venv.training = False
        keep(rate, 0, policy)
    try:
        if not progress.stop:
            model.learn(total_timesteps=args.timesteps, callback=progress)
    except KeyboardInterrupt:
        _log('interrupted: exporting what was learnt so far')
    minutes = (time.monotonic() - t0) / 60.0
    steps = int(model.num_timesteps)
    venv.close()

    policy = export_policy(model, venv, training_meta({}))
    final = evaluate(eval_env, policy.act, eval_seeds)
    rate = float(np.mean([r['success'] for r in final]))
    if rate >= args.target and not reached:
        reached.update(minutes=minutes, timesteps=steps, success=rate)
    kept_at = steps
    if rate < best['rate']:  # PPO made it worse: keep the best evaluated one
        policy, rate, kept_at = best['policy'], best['rate'], best['timesteps']
        final = evaluate(eval_env, policy.act, eval_seeds)
        _log(f'the final policy evaluated worse than the one at {kept_at:,} steps: that one is '
             'exported')
    eval_env.close()
    info = {'timesteps': steps, 'minutes': round(minutes, 3), 'kept_at_timesteps': kept_at,
            'warm_start_steps': warm_steps, 'success_rate': rate, 'eval_episodes': len(final),
            'minutes_to_target': round(reached['minutes'], 3) if reached else None,
            'target': args.target, 'date': time.strftime('%Y-%m-%d')}
    policy = Policy(policy.weights, policy.activation, policy.obs_mean, policy.obs_std,
                    training_meta(info) | {'obs_clip': policy.obs_clip})
    path = policy.save(output)
    curve_path = _plot(curve, evals, args.target,
                       artifacts / f'train_{robot_name}_learning_curve.png',
                       f'PPO{" after an imitation warm start" if args.warm_start else ""}, '
                       f'reaching with {args.robot} ({task.goal_kind} goals), randomised: '
                       f'{scenario or "none"}')
    report = {'robot': args.robot, 'goal_kind': task.goal_kind, 'policy': str(path),
              'policy_bytes': path.stat().st_size, 'learning_curve': str(curve_path),
              'train_minutes': reached.get('minutes'), 'train_success_rate': rate,
              'train_timesteps': steps, 'train_wall_minutes': minutes,
              'train_warm_start_steps': warm_steps, 'kept_at_timesteps': kept_at,
              'train_timesteps_to_target': reached.get('timesteps'),
              'settings': ReachSettings.as_dict(task.settings), 'curve': curve,
              'evaluations': evals, 'final_evaluation': final,
              'command': ' '.join(['python -m reverse_digital_twin.train',
                                   *(argv or sys.argv[1:])])}
    report_path = artifacts / f'train_{robot_name}.json'
    report_path.write_text(json.dumps(report, indent=2, default=str))
    to_target = f'{reached["minutes"]:.1f} min' if reached else 'not reached'
    _log(f'done: {steps:,} steps in {minutes:.1f} min; success {rate:.0%} of {len(final)} seeded '
         f'randomised episodes; {args.target:.0%} after {to_target}')
    _log(f'policy: {path} ({path.stat().st_size / 1024:.0f} kB, numpy only); learning curve: '
         f'{curve_path}; report: {report_path}')
    _log(f'to keep it for the tests, the demo and the policy node: cp {path} policies/')
    _merge_benchmarks(args.robot, artifacts)
    return 0 if reached else 1


if __name__ == '__main__':
    sys.exit(main())
