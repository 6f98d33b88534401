"""`rdt dataset`: write episodes as MCAP files with an index, for training.

Three sources, one layout (core/dataset.py: a rosbag2 bag of one ``.mcap`` file per episode,
``index.json`` beside it; :func:`~reverse_digital_twin.core.dataset.read_episodes` reads it):

- ``env``: rollouts of the Gymnasium reaching environment (no ROS): a policy file's actions
  or seeded random ones; observations, actions, rewards, the commands, the measured states,
  camera frames with ``--camera``, a verdict when the twin's world reports a contact;
- ``sweep``: a risk sweep's rollouts of one motion under a scenario's draws (no ROS): the
  commanded trajectory, the twin's verdict and its predicted states per draw;
- ``live``: the running graph while the policy node drives it (`rdt up` first): the
  recorder of `rdt record` records the joint states, the commands, the bridge's verdicts, the
  policy's observations, actions and goal (and a camera), one file per episode; the rewards
  are the environment's, computed from the policy's steps.

Topics are the live stack's names (:func:`default_streams`), whatever the source.

Exit codes: 0 written, 1 failed while running, 2 bad arguments or configuration.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reverse_digital_twin.cli import parse_arguments

if TYPE_CHECKING:
    from reverse_digital_twin.core.dataset import Streams

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SOURCES = ('env', 'sweep', 'live')


def default_streams(controller_name: str = '', camera: str = '') -> 'Streams':
    """The topics a dataset's streams have: the live stack's (TwinNames; the policy node's
    own topics), so that datasets from every source read alike. ``camera``: a camera topic
    prefix such as /hw/table_camera, or a camera's name (the twin's: /sim/<name>); '' names
    the twin's camera 'camera' (no images are recorded without one)."""
    from reverse_digital_twin.core.dataset import Streams  # noqa: PLC0415
    from reverse_digital_twin.stack import CONTROLLER_NODE, TwinNames  # noqa: PLC0415
    names = TwinNames(client_controller=controller_name or CONTROLLER_NODE)
    policy = f'/{_policy_node_name()}'
    image = f'{camera.rstrip("/")}/image_raw' if camera.startswith('/') \
        else names.camera_topic(names.twin_namespace, camera or 'camera', 'image')
    return Streams(observation=f'{policy}/observation', action=f'{policy}/action',
                   reward=f'{policy}/reward', goal=f'{policy}/goal',
                   joint_states=names.joint_states,
                   command=names.joint_trajectory, image=image,
                   verdicts=names.verdicts)


def _policy_node_name() -> str:
    from reverse_digital_twin.nodes.policy_node import NODE_NAME  # noqa: PLC0415
    return NODE_NAME


def _parser() -> argparse.ArgumentParser:
    from reverse_digital_twin.stack import CONTROLLER_NODE  # noqa: PLC0415
    parser = argparse.ArgumentParser(
        prog='rdt dataset',
        description='Write episodes (observations, actions, rewards, commands, joint states, '
        "images, the twin's verdicts) as a rosbag2 bag of MCAP files, one per episode, with "
        'index.json; read them back with core.dataset.read_episodes.')
    parser.add_argument('output', help='dataset directory to create (must not exist)')
    parser.add_argument('--source', choices=SOURCES, default='env',
                        help='env: the reaching environment (no ROS); sweep: a risk sweep\'s '
                        'rollouts (no ROS); live: the running graph while the policy drives it')
    parser.add_argument('--policy', default='',
                        help='the exported policy (.npz) that acts (env: default random '
                        'actions; live: required)')
    parser.add_argument('--robot', default='rdt_arm6',
                        help='robot (env without --policy, sweep); a policy names its own')
    parser.add_argument('-n', '--episodes', type=int, default=10, help='episodes (default 10)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first episode')
    parser.add_argument('--max-steps', type=int, default=60,
                        help='env: actions per episode at most (default 60, as in training)')
    parser.add_argument('--camera', default='',
                        help='env: a camera of the scene to record (e.g. table_camera); live: '
                        'a camera topic prefix (e.g. /sim/table_camera)')
    parser.add_argument('--camera-size', type=int, nargs=2, default=(80, 60),
                        metavar=('W', 'H'), help='env: image size (default 80 60)')
    parser.add_argument('--scenario', default='',
                        help='env: domain randomisation (a scenario name or file); sweep: the '
                        'scenario to draw from (required)')
    parser.add_argument('--joints', default='', metavar='Q1,Q2,...',
                        help='sweep: the target joint positions of the swept motion')
    parser.add_argument('--velocity-scaling', type=float, default=0.5,
                        help='sweep: fraction of the velocity limits (default 0.5)')
    parser.add_argument('--start', choices=['env', 'home', 'here'], default='env',
                        help='live: where each episode starts (as rdt policy --start)')
    parser.add_argument('--mode', choices=['topic', 'action'], default='topic',
                        help='live: how the policy commands (as rdt policy --mode)')
    parser.add_argument('--perturb', action='store_true',
                        help="live: draw the stand-in's perturbations anew per episode")
    parser.add_argument('--controller-name', default=CONTROLLER_NODE)
    parser.add_argument('--timeout', type=float, default=60.0,
                        help='live: s an episode (or a move to its start) may take at most')
    return parser


def dataset_main(argv: list[str] | None = None) -> int:
    """`rdt dataset ...`; returns the exit code."""
    from reverse_digital_twin.core.dataset import DatasetError  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.policy_cli import glue_negative  # noqa: PLC0415
    args = parse_arguments(_parser(), glue_negative(
        list(sys.argv[1:] if argv is None else argv), '--joints'))
    if isinstance(args, int):
        return args
    output = Path(args.output)
    try:
        if output.exists():
            raise ConfigError(f'{output} exists already; a dataset never overwrites')
        if args.episodes < 1 or args.max_steps < 1:
            raise ConfigError('--episodes and --max-steps must be >= 1')
        if args.source == 'env':
            path = env_dataset(output, args.policy, args.robot, args.episodes, args.seed,
                               args.max_steps, args.camera or None, tuple(args.camera_size),
                               args.scenario or None,
                               default_streams(args.controller_name, args.camera))
        elif args.source == 'sweep':
            path = sweep_dataset(output, args.robot, args.joints, args.scenario, args.episodes,
                                 args.seed, args.velocity_scaling,
                                 default_streams(args.controller_name))
        else:
            if not args.policy:
                raise ConfigError('--source live needs --policy: the policy that drives')
            return live_dataset(output, args)
    except (ConfigError, DatasetError) as exc:
        print(f'rdt dataset: {exc}', file=sys.stderr)
        return EXIT_USAGE
    _print_summary(path)
    return EXIT_OK


def _print_summary(path: Path) -> None:
    from reverse_digital_twin.core.dataset import read_index  # noqa: PLC0415
    index = read_index(path)
    summary = index['summary']
    rate, mean = summary['success_rate'], summary['mean_return']
    rate_text = '-' if rate is None else f'{rate:.0%}'
    mean_text = '-' if mean is None else f'{mean:.3f}'
    print(f'rdt dataset: wrote {path} ({index["source"]}): {summary["episodes"]} episodes, '
          f'{summary["steps"]} steps, success rate {rate_text}, mean return {mean_text}',
          flush=True)


# --- env -----------------------------------------------------------------------------------------

def env_dataset(output: Path, policy_file: str, robot: str, episodes: int, seed: int,
                max_steps: int, camera: str | None, camera_size: tuple[int, int],
                scenario: str | None, streams: 'Streams') -> Path:
    """Roll the reaching environment out ``episodes`` times (seeds seed, seed + 1, ...) with
    the policy (or seeded uniform random actions) and write every step."""
    from reverse_digital_twin.core.dataset import DatasetWriter  # noqa: PLC0415
    from reverse_digital_twin.core.policy_runner import load_policy  # noqa: PLC0415
    from reverse_digital_twin.core.reach_env import ReachEnv  # noqa: PLC0415
    from reverse_digital_twin.policy_cli import quiet_stdout  # noqa: PLC0415
    loaded = load_policy(policy_file) if policy_file else None
    with quiet_stdout():  # PyBullet prints its build and argv when a world is made
        env = ReachEnv(loaded.robot if loaded else robot,
                       settings=loaded.task.settings if loaded else None, scenario=scenario,
                       camera=camera, camera_size=camera_size, max_steps=max_steps)
    task = env.task
    n = len(task.joints)
    rng = np.random.default_rng([seed, 0xac7])
    info_header = {'policy': str(loaded.path) if loaded else 'random', 'scenario': scenario,
                   'max_steps': max_steps, 'camera': camera, 'task': task.meta(),
                   'action_period': task.action_period}
    try:
        with DatasetWriter(output, streams, source='env', robot=task.robot,
                           joints=task.joints, info=info_header, start_ns=0) as writer:
            for i in range(episodes):
                observation, info = env.reset(seed=seed + i)
                state = observation['state'] if camera else observation
                goal_names = list(task.joints) if task.goal_kind == 'joints' \
                    else ['x', 'y', 'z']
                writer.begin_episode(env.goal, seed=seed + i, goal_names=goal_names,
                                     info={'draw': env.draw_description,
                                           'goal_positions': env.goal_positions.tolist()})
                t = 0.0
                writer.joint_state(t, env.positions, state[n:2 * n] * task.velocity_limit)
                if camera:
                    writer.image(t, observation['rgb'], camera)
                while True:
                    action = loaded.policy.act(state) if loaded is not None \
                        else rng.uniform(-1.0, 1.0, n).astype(np.float32)
                    targets = task.targets_from_action(action, env.positions)
                    writer.command(t, [task.action_period], [targets])
                    observation, reward, terminated, truncated, info = env.step(action)
                    writer.step(t, state, action, reward)
                    state = observation['state'] if camera else observation
                    t += task.action_period
                    writer.joint_state(t, env.positions,
                                       state[n:2 * n] * task.velocity_limit)
                    if camera:
                        writer.image(t, observation['rgb'], camera)
                    if info.get('collision'):
                        writer.verdict(t, {'safe': False, 'summary': 'collision: '
                                           + info.get('contact', 'contact'),
                                           'duration': t})
                    if terminated or truncated:
                        break
                outcome = 'success' if info['success'] else 'collision' \
                    if info['collision'] else 'truncated'
                writer.end_episode(info['success'], outcome, info.get('contact', ''),
                                   draw=env.draw_description)
    finally:
        env.close()
    return output


# --- sweep ---------------------------------------------------------------------------------------

def sweep_dataset(output: Path, robot: str, joints: str, scenario: str, episodes: int,
                  seed: int, velocity_scaling: float, streams: 'Streams') -> Path:
    """One motion from home to ``joints``, rolled out by the twin's predictor under
    ``episodes`` draws of ``scenario`` (rollout seeds as `rdt sweep --seed` draws them)."""
    from reverse_digital_twin.core.dataset import DatasetWriter  # noqa: PLC0415
    from reverse_digital_twin.core.dataset import verdict_fields  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.core.motion import plan_joint_motion  # noqa: PLC0415
    from reverse_digital_twin.core.scenario import load_scenario, rollout_seed  # noqa: PLC0415
    from reverse_digital_twin.core.sweep import SweepJob, SweepWorker, classify  # noqa: PLC0415
    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    from reverse_digital_twin.sweep_cli import predictor_spec  # noqa: PLC0415
    if not scenario or not joints:
        raise ConfigError('--source sweep needs --scenario and --joints (the motion\'s target)')
    try:
        target = [float(v) for v in joints.replace(' ', ',').split(',') if v]
    except ValueError:
        raise ConfigError(f'--joints: expected comma-separated numbers, got {joints!r}') \
            from None
    if not (math.isfinite(velocity_scaling) and 0 < velocity_scaling <= 1):
        raise ConfigError(f'--velocity-scaling must be in (0, 1], got {velocity_scaling}')
    setup = load_robot(robot)
    spec = predictor_spec(setup)
    names = list(spec.config.joints)
    if len(target) != len(names) or not all(math.isfinite(v) for v in target):
        raise ConfigError(f'--joints: expected {len(names)} finite positions for {names}')
    start = {j: setup.initial_positions.get(j, 0.0) for j in names}
    goal = plan_joint_motion(np.array([start[j] for j in names]), np.array(target), names,
                             spec.config.limits, velocity_scaling)
    job = SweepJob(spec, load_scenario(scenario), goal, start, seed=seed)
    job.check()
    from reverse_digital_twin.policy_cli import quiet_stdout  # noqa: PLC0415
    with quiet_stdout():
        worker = SweepWorker(job)
    times = [p.time_from_start for p in goal.points]
    positions = [list(p.positions) for p in goal.points]
    try:
        with DatasetWriter(output, streams, source='sweep', robot=robot, joints=names,
                           info={'scenario': scenario, 'seed': seed, 'target': target,
                                 'velocity_scaling': velocity_scaling},
                           start_ns=0) as writer:
            for i in range(episodes):
                rollout = rollout_seed(seed, i)
                draw, verdict = worker.verdict(rollout)
                writer.begin_episode(target, seed=rollout,
                                     info={'draw': draw.to_dict(), 'summary': draw.describe()})
                writer.command(0.0, times, positions)
                writer.verdict(0.0, verdict_fields(verdict, writer.time_ns(verdict.duration)))
                for t, q, v in zip(verdict.times, verdict.positions, verdict.velocities):
                    writer.joint_state(float(t), q, v)
                writer.end_episode(verdict.safe, classify(verdict),
                                   '' if verdict.safe else verdict.summary)
                print(f'[{i + 1}/{episodes}] rollout seed {rollout}: {classify(verdict)} '
                      f'({draw.describe()})', flush=True)
    finally:
        worker.close()
    return output


# --- live ----------------------------------------------------------------------------------------

def step_rewards(task: Any, records: Sequence[Any], goal: np.ndarray, final: Sequence[float],
                 outcome: str, weights: Any = None) -> list[float]:
    """The reaching environment's reward of each live step (core/reach_env.py's
    RewardSettings): progress toward the goal per error_scale, minus a cost per step and per
    squared action, plus the success bonus on the step that reached it, minus the collision
    penalty on the step the bridge refused (the contact it would have been)."""
    from reverse_digital_twin.core.policy_runner import REACHED, REFUSED  # noqa: PLC0415
    from reverse_digital_twin.core.reach_env import RewardSettings  # noqa: PLC0415
    w = weights or RewardSettings()
    after = [r.positions for r in records[1:]] + [np.asarray(final, dtype=float)]
    rewards = []
    for k, (record, q_next) in enumerate(zip(records, after)):
        before = task.distance(record.positions, goal)
        now = task.distance(q_next, goal) if len(q_next) else before
        action = np.asarray(record.action, dtype=float)
        reward = w.progress * (before - now) / task.error_scale - w.time \
            - w.action * float(np.mean(action * action))
        if k == len(records) - 1:
            reward += w.success if outcome == REACHED else 0.0
            reward -= w.collision if outcome == REFUSED else 0.0
        rewards.append(float(reward))
    return rewards


def live_dataset(output: Path, args: argparse.Namespace) -> int:
    """Drive the running graph with the policy node toward seeded targets while the recorder
    writes the graph's topics; one file per episode (the moves to each start go to files of
    their own, listed in the index as ``between``)."""
    import rclpy  # noqa: PLC0415 - ROS only for the live source
    from rclpy.parameter import Parameter  # noqa: PLC0415
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode, wait_for  # noqa: PLC0415
    from reverse_digital_twin.commander import TwinCommander, TwinError  # noqa: PLC0415
    from reverse_digital_twin.core.dataset import EpisodeEntry, MessageEncoder  # noqa: PLC0415
    from reverse_digital_twin.core.dataset import STREAM_TYPES, write_index  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.core.policy_runner import load_policy  # noqa: PLC0415
    from reverse_digital_twin.nodes.recorder_node import Recorder  # noqa: PLC0415
    from reverse_digital_twin.policy_cli import PERTURBATION_RANGES, HostedPolicy  # noqa
    from reverse_digital_twin.policy_cli import _node_parameters, run_episode  # noqa: PLC0415
    from reverse_digital_twin.policy_cli import seeded_targets  # noqa: PLC0415
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    loaded = load_policy(args.policy)
    streams = default_streams(args.controller_name, args.camera)
    targets = seeded_targets(loaded, args.episodes, args.seed, args.start)
    recorded = [streams.joint_states, streams.command, streams.verdicts, streams.observation,
                streams.action, streams.goal] + ([streams.image] if args.camera else [])
    if args.mode == 'action':
        recorded.remove(streams.command)  # goals, not messages: the verdicts tell them
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    background = BackgroundNode('rdt_dataset_cli')
    commander = TwinCommander(background.node, TwinNames(client_controller=args.controller_name))
    hosted = recorder = None
    entries: list[EpisodeEntry] = []
    between: list[str] = []
    original: dict[str, Any] = {}
    try:
        try:
            recorder = Recorder(shutdown_when_done=False, parameter_overrides=[
                Parameter('output', value=str(output)), Parameter('topics', value=recorded)])
            args.policy_file, args.rate, args.max_steps = args.policy, 0.0, 0
            hosted = HostedPolicy(_node_parameters(args), [recorder])
        except ConfigError as exc:
            print(f'rdt dataset: {exc}', file=sys.stderr)
            return EXIT_USAGE
        node = hosted.node
        node.record_steps = True
        bag = recorder.bag
        bag.add_topic(streams.reward, STREAM_TYPES['reward'])
        encoder = MessageEncoder([STREAM_TYPES['reward']])
        if not wait_for(lambda: recorder.ready, 15.0):
            print('rdt dataset: recording without ' + ', '.join(
                f'{t} ({why})' for t, why in recorder.missing().items()), flush=True)
        if args.perturb:
            current = commander.perturbation()
            original = {k: current[k] for k in PERTURBATION_RANGES if k in current}

        for k, target in enumerate(targets):
            rewards: list[float] = []

            def before() -> None:
                ended = bag.split(at=time.time_ns())
                if ended is not None:
                    between.append(ended.path.name)

            def wait(timeout: float) -> Any:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and node.wait(0.02) is None:
                    _write_rewards(node.runner, loaded.task, bag, encoder, streams, rewards)
                _write_rewards(node.runner, loaded.task, bag, encoder, streams, rewards)
                return node.result
            start_ns = time.time_ns()
            report = run_episode(k, target, args, node, commander, len(targets), before, wait)
            if 'steps' not in report:  # never started (its start was unreachable)
                continue
            ended = bag.split(at=time.time_ns())
            entries.append(EpisodeEntry(
                len(entries), ended.path.name if ended is not None else '', report['steps'],
                float(sum(rewards)), bool(report['reached']), report['outcome'],
                report['reason'], target.seed, [float(v) for v in target.goal], start_ns,
                float(report['elapsed']), {'perturbation': report.get('perturbation', {}),
                                           'start': report.get('start')}))
    except KeyboardInterrupt:
        print('rdt dataset: interrupted; what was recorded is kept', file=sys.stderr)
    except TwinError as exc:
        print(f'rdt dataset: {exc}', file=sys.stderr)
        return EXIT_FAILED
    finally:
        if original:
            try:
                commander.set_perturbation(**original)
            except TwinError:
                pass
        if hosted is not None:
            hosted.close()
        if recorder is not None:
            recorder.stop()
        commander.close()
        background.close()
        rclpy.try_shutdown()
        if recorder is not None:
            write_index(output, {'source': 'live', 'robot': loaded.robot,
                                 'joints': loaded.joints, 'streams': streams.as_dict(),
                                 'created': time.time(), 'between': between,
                                 'info': {'policy': str(loaded.path), 'mode': args.mode,
                                          'perturb': bool(args.perturb), 'seed': args.seed,
                                          'task': loaded.task.meta()}}, entries)
    _print_summary(output)
    return EXIT_OK


def _write_rewards(runner: Any, task: Any, bag: Any, encoder: Any, streams: 'Streams',
                   rewards: list[float]) -> None:
    """Write, in order, the rewards of the steps whose effect is known: a step's once the
    next step was made, the last one once the episode has ended."""
    if runner is None:
        return
    records = list(runner.records)
    result = runner.result
    known = len(records) if result is not None else max(len(records) - 1, 0)
    if known <= len(rewards):
        return
    if result is not None:
        values = step_rewards(task, records, runner.goal, result.final_positions,
                              result.outcome)
    else:
        values = step_rewards(task, records[:known + 1], runner.goal, (), '')
    for k in range(len(rewards), known):
        bag.write(streams.reward, encoder.encode('std_msgs/msg/Float64', {'data': values[k]}),
                  time.time_ns())
        rewards.append(values[k])
