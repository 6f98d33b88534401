"""`rdt policy`: run an exported policy through the driver interface of a running graph.

Hosts the policy node (nodes/policy_node.py) in this process. It commands the arm only
through the controller clients use (the bridge, which predicts and gates every command), so
the same file drives the twin (target sim) and the hardware (after `rdt arm` and
`rdt switch hardware`) unchanged. ``--goal`` runs one episode toward a goal; otherwise
``-n`` seeded targets are drawn as the training environment draws them (a start pose and a
goal with a clear straight move between them), the arm is brought to each start by the
twin's planner (`rdt move`), and the success rate is printed. ``--perturb`` draws the
stand-in's live perturbations (payload, command latency, sensor noise) anew for each target.

Exit codes: 0 reached (one goal) or a success rate at least ``--min-success``; 1 not; 2 bad
arguments or configuration.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reverse_digital_twin.cli import comma_floats, parse_arguments

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Fraction of the velocity limits of the planned moves to each episode's start.
START_SPEED = 0.3
#: Ranges of the stand-in's live perturbations drawn per target with --perturb: those of
#: the reaching policies' training randomisation (config/scenarios/reach_randomisation.yaml),
#: on top of the stand-in's own friction and encoder offsets, which stay.
PERTURBATION_RANGES = {'payload_mass': (0.0, 3.0), 'command_latency': (0.0, 0.03),
                       'position_noise': (0.0, 0.0005), 'velocity_noise': (0.0, 0.005)}


def _parser() -> argparse.ArgumentParser:
    from reverse_digital_twin.stack import CONTROLLER_NODE  # noqa: PLC0415
    parser = argparse.ArgumentParser(
        prog='rdt policy',
        description='Run an exported policy through the driver interface of the running graph '
        '(`rdt up`): toward one goal, or toward N seeded targets, printing the success rate. '
        'Every command goes through the bridge, which predicts it and refuses unsafe ones; '
        'the policy then stops and says why.')
    parser.add_argument('policy_file', help='the exported policy (.npz)')
    parser.add_argument('--goal', metavar='V1,V2,...',
                        help='one goal, in the task\'s goal units (joint positions, or a tip '
                        'position x,y,z for a tip task), from where the arm is')
    parser.add_argument('-n', '--targets', type=int, default=20,
                        help='without --goal: number of seeded targets (default 20)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the first target; target i uses seed + i (default 0)')
    parser.add_argument('--start', choices=['env', 'home', 'here'], default='env',
                        help="without --goal: where each episode starts: the training "
                        "environment's drawn start pose (default), home, or wherever the arm "
                        'is; env and home are reached first through the twin\'s planner')
    parser.add_argument('--mode', choices=['topic', 'action'], default='topic',
                        help='command through <controller>/joint_trajectory (default) or a '
                        'follow_joint_trajectory goal per action')
    parser.add_argument('--rate', type=float, default=0.0,
                        help='actions per second (default: the rate the policy was trained at)')
    parser.add_argument('--max-steps', type=int, default=0,
                        help='actions per episode at most (default: the node\'s, 120)')
    parser.add_argument('--perturb', action='store_true',
                        help="draw the stand-in's payload, command latency and sensor noise "
                        'anew for each target (seeded; restored at the end)')
    parser.add_argument('--min-success', type=float, default=0.0,
                        help='exit 1 when the success rate is below this (0..1)')
    parser.add_argument('--report', metavar='FILE', default='',
                        help='write every episode\'s outcome and the rate as JSON')
    parser.add_argument('--controller-name', default=CONTROLLER_NODE,
                        help='the controller clients use (the bridge)')
    parser.add_argument('--timeout', type=float, default=60.0,
                        help='s an episode (or a move to its start) may take at most')
    return parser


def glue_negative(argv: list[str], option: str = '--goal') -> list[str]:
    """'--goal -0.6,1.2' reads as an option to argparse: make it '--goal=-0.6,1.2'."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == option and i + 1 < len(argv) and re.match(r'^-[\d.]', argv[i + 1]):
            out.append(f'{option}={argv[i + 1]}')
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


@dataclass
class Target:
    """One episode to run: its seed, start (None: from where the arm is) and goal."""

    seed: int | None
    start: np.ndarray | None
    goal: np.ndarray


def seeded_targets(loaded: Any, count: int, seed: int, start: str) -> list[Target]:
    """Targets as the training environment draws them (a clear start, a goal, a clear
    straight move between them), from seeds seed .. seed + count - 1."""
    from reverse_digital_twin.core.reach_env import ReachEnv  # noqa: PLC0415
    task = loaded.task
    with quiet_stdout():  # PyBullet prints its build and argv when a world is made
        env = ReachEnv(task.robot, settings=task.settings)
    try:
        targets = []
        for i in range(count):
            options = {'start': task.home.copy()} if start == 'home' else None
            env.reset(seed=seed + i, options=options)
            origin = None if start == 'here' else env.true_positions
            targets.append(Target(seed + i, origin, np.asarray(env.goal, dtype=float)))
        return targets
    finally:
        env.close()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """File descriptor 1 to /dev/null meanwhile (C libraries print there, not to sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def perturbation_draw(seed: int) -> dict[str, float]:
    """The stand-in's live perturbations for one target (seeded)."""
    rng = np.random.default_rng([seed, 0x9e37])
    return {name: float(rng.uniform(low, high))
            for name, (low, high) in PERTURBATION_RANGES.items()}


def policy_main(argv: list[str] | None = None) -> int:
    """`rdt policy ...`; returns the exit code."""
    parser = _parser()
    args = parse_arguments(parser, glue_negative(list(sys.argv[1:] if argv is None else argv)))
    if isinstance(args, int):
        return args
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.core.policy_runner import check_goal, load_policy  # noqa: PLC0415
    try:
        if args.targets < 1:
            raise ConfigError(f'--targets must be >= 1, got {args.targets}')
        if not (args.timeout > 0):
            raise ConfigError(f'--timeout must be > 0 s, got {args.timeout}')
        if not 0.0 <= args.min_success <= 1.0:
            raise ConfigError(f'--min-success must be in 0..1, got {args.min_success}')
        if args.max_steps < 0 or not (args.rate >= 0):
            raise ConfigError('--max-steps and --rate must be >= 0')
        loaded = load_policy(args.policy_file)
        if args.goal is not None:
            targets = [Target(None, None, check_goal(comma_floats(args.goal, '--goal'),
                                                     loaded.task))]
        else:
            targets = seeded_targets(loaded, args.targets, args.seed, args.start)
    except (ConfigError, argparse.ArgumentTypeError) as exc:
        print(f'rdt policy: {exc}', file=sys.stderr)
        return EXIT_USAGE
    return _run(args, loaded, targets)


def _node_parameters(args: argparse.Namespace) -> list:
    from rclpy.parameter import Parameter  # noqa: PLC0415

    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    names = TwinNames(client_controller=args.controller_name)
    values: dict[str, Any] = {'policy_file': str(Path(args.policy_file).absolute()),
                              'controller': names.bridge, 'joint_states': names.joint_states,
                              'command_mode': args.mode, 'rate': float(args.rate)}
    if args.max_steps:
        values['max_steps'] = int(args.max_steps)
    return [Parameter(k, value=v) for k, v in values.items()]


class HostedPolicy:
    """The policy node in this process (with ``others``, e.g. a recorder), spun by an
    executor thread of its own."""

    def __init__(self, parameters: list, others: Sequence[Any] = ()) -> None:
        from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415

        from reverse_digital_twin.nodes.policy_node import PolicyNode  # noqa: PLC0415
        self.node = PolicyNode(parameter_overrides=parameters)
        self.node.start()
        self.others = list(others)
        self.executor = SingleThreadedExecutor()
        for node in (self.node, *self.others):
            self.executor.add_node(node)
        self._closing = False
        self._thread = threading.Thread(target=self._spin, daemon=True, name='policy_node')
        self._thread.start()

    def _spin(self) -> None:
        from rclpy._rclpy_pybind11 import InvalidHandle, RCLError  # noqa: PLC0415
        from rclpy.executors import ExternalShutdownException  # noqa: PLC0415
        while not self._closing:
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except (InvalidHandle, RCLError):
                continue
            except (ExternalShutdownException, RuntimeError):
                return

    def close(self) -> None:
        self.node.stop()
        self._closing = True
        self.executor.shutdown()
        self._thread.join(timeout=5.0)
        self.node.destroy_node()


def _run(args: argparse.Namespace, loaded: Any, targets: Sequence[Target]) -> int:
    import rclpy  # noqa: PLC0415 - ROS only when running
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode  # noqa: PLC0415
    from reverse_digital_twin.commander import TwinCommander, TwinError  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415

    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    background = BackgroundNode('rdt_policy_cli')
    commander = TwinCommander(background.node, TwinNames(client_controller=args.controller_name))
    hosted = None
    original: dict[str, Any] = {}
    episodes: list[dict[str, Any]] = []
    try:
        try:
            hosted = HostedPolicy(_node_parameters(args))
        except ConfigError as exc:
            print(f'rdt policy: {exc}', file=sys.stderr)
            return EXIT_USAGE
        node = hosted.node
        status = commander.status(timeout=3.0)
        where = f'the bridge routes to {status.active_target}' if status is not None \
            else 'no bridge status (a plain controller?)'
        print(f'rdt policy: {loaded.path.name} ({loaded.robot}, {node.rate:g} Hz, '
              f'{node.command_mode}) via {node.controller}; {where}', flush=True)
        if args.perturb:
            try:
                current = commander.perturbation()
            except TwinError as exc:
                print(f'rdt policy: --perturb needs the stand-in: {exc}', file=sys.stderr)
                return EXIT_USAGE
            original = {k: current[k] for k in PERTURBATION_RANGES if k in current}
        for k, target in enumerate(targets):
            episodes.append(run_episode(k, target, args, node, commander, len(targets)))
            if stuck(episodes[-1]):
                print(f'rdt policy: the arm touches the scene, so the planner cannot bring it '
                      f'to another start; the other {len(targets) - k - 1} targets are not '
                      'run. Move the arm clear, then run again', file=sys.stderr, flush=True)
                break
    except KeyboardInterrupt:
        print('rdt policy: interrupted; the policy stopped commanding', file=sys.stderr)
        return EXIT_FAILED
    finally:
        if original:
            try:
                commander.set_perturbation(**original)
            except TwinError as exc:
                print(f'rdt policy: could not restore the stand-in\'s perturbations: {exc}',
                      file=sys.stderr)
        if hosted is not None:
            hosted.close()
        commander.close()
        background.close()
        rclpy.try_shutdown()
    return _summary(args, loaded, episodes)


def run_episode(k: int, target: Target, args: argparse.Namespace, node: Any, commander: Any,
                count: int, before: Callable[[], None] | None = None,
                wait: Callable[[float], Any] | None = None) -> dict[str, Any]:
    """Run one target; its report (printed as one line). ``before()`` runs once the arm is
    at the start, ``wait(timeout)`` instead of the node's own wait for the result."""
    from reverse_digital_twin.commander import TwinError  # noqa: PLC0415
    record: dict[str, Any] = {'episode': k, 'seed': target.seed,
                              'goal': [round(float(v), 6) for v in target.goal]}
    label = f'[{k + 1}/{count}]' + (f' seed {target.seed}' if target.seed is not None else '')
    if args.perturb and target.seed is not None:
        draw = perturbation_draw(target.seed)
        record['perturbation'] = draw
        try:
            commander.set_perturbation(**draw)
        except TwinError as exc:
            record.update(outcome='error', reason=f'perturbation: {exc}', reached=False)
            print(f'{label}: {record["reason"]}', flush=True)
            return record
    if target.start is not None:
        record['start'] = [round(float(v), 6) for v in target.start]
        why = _move_to_start(commander, target.start, args.timeout)
        if why:
            record.update(outcome='start_unreachable', reached=False,
                          reason=f'the planner could not bring the arm to the start: {why}')
            print(f'{label}: {record["reason"]}', flush=True)
            return record
        _settle(commander)
    if before is not None:
        before()
    node.begin(target.goal)
    result = (wait or node.wait)(args.timeout)
    if result is None:
        node.stop()
        result = node.result
    record.update(result.as_dict() if result is not None else
                  {'outcome': 'timeout', 'reason': f'no result within {args.timeout:g} s'})
    record['reached'] = bool(result is not None and result.reached)
    text = result.describe() if result is not None else record['reason']
    print(f'{label}: {text}', flush=True)
    return record


def stuck(report: dict[str, Any]) -> bool:
    """The episode could not start because the arm is in contact with the scene: the
    planner plans no move from there, so no later episode can start either."""
    return report.get('outcome') == 'start_unreachable' \
        and 'start_in_collision' in report.get('reason', '')


def _move_to_start(commander: Any, start: np.ndarray, timeout: float,
                   attempts: int = 2) -> str:
    """Bring the arm to an episode's start through the twin's planner (around obstacles);
    '' when it got there, else why not. A move the controller aborted (a busy machine can
    make the twin fall behind its path tolerance) is tried once more, from where it stopped;
    a refused one is not."""
    from reverse_digital_twin.commander import TwinError  # noqa: PLC0415
    why = ''
    for _ in range(attempts):
        try:
            moved = commander.move(positions=start.tolist(), velocity_scaling=START_SPEED,
                                   timeout=timeout)
        except TwinError as exc:
            return str(exc)
        if moved.succeeded:
            return ''
        why = f'{moved.status_name}: {moved.error_string}'
        if 'tolerance' not in moved.error_string:
            break
    return why


def _settle(commander: Any, timeout: float = 3.0) -> None:
    """Wait until the measured arm is still (a move succeeds within its goal tolerance)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = commander.client.latest()
        if msg is not None and (not msg.velocity or max(abs(v) for v in msg.velocity) < 0.02):
            return
        time.sleep(0.02)


def _summary(args: argparse.Namespace, loaded: Any, episodes: list[dict[str, Any]]) -> int:
    reached = sum(1 for e in episodes if e.get('reached'))
    total = max(len(episodes), 1 if args.goal is not None else args.targets)
    rate = reached / total if total else 0.0
    outcomes: dict[str, int] = {}
    for e in episodes:
        outcomes[e.get('outcome', '?')] = outcomes.get(e.get('outcome', '?'), 0) + 1
    if total > len(episodes):
        outcomes['not_run'] = total - len(episodes)
    if args.report:
        Path(args.report).write_text(json.dumps({
            'policy': str(loaded.path), 'robot': loaded.robot, 'mode': args.mode,
            'perturb': bool(args.perturb), 'seed': args.seed, 'reached': reached,
            'targets': total, 'success_rate': rate, 'outcomes': outcomes,
            'episodes': episodes}, indent=1) + '\n')
    if args.goal is not None:
        return EXIT_OK if reached else EXIT_FAILED
    print(f'rdt policy: reached {reached} of {total} targets ({rate:.0%}); '
          + ', '.join(f'{k} {v}' for k, v in sorted(outcomes.items())), flush=True)
    return EXIT_OK if rate >= args.min_success else EXIT_FAILED


if __name__ == '__main__':
    raise SystemExit(policy_main(sys.argv[1:]))
