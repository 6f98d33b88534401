"""`rdt sweep`: how likely is a motion to succeed when the world is not the model?

Rolls a trajectory (a file) or a planned joint motion (``--joints``) out under N draws of a
scenario file (core/scenario.py; shipped ones in config/scenarios/) in the twin's predictor, in
local worker processes or on Ray, and reports the probability of success, of a collision and of
each limit violation, with the worst rollouts and the seed that replays each alone
(``--replay SEED``). Writes ``sweep_report.json`` and ``sweep.png`` to ``--out``. No ROS graph.

A trajectory file is YAML (or JSON) with the fields of a trajectory_msgs/JointTrajectory::

    joint_names: [shoulder_pan_joint, ...]
    points:
      - time_from_start: 0.5        # s, or {sec: 0, nanosec: 500000000} as ros2 topic echo prints
        positions: [0.1, ...]       # rad | m, one per joint
        velocities: [0.0, ...]      # optional, likewise accelerations and effort
    start_positions: {shoulder_pan_joint: 0.0}   # optional: where the motion starts (else home)

Exit codes: 0 swept (and, with --min-success, the probability of success reached it; with
--replay, the rollout succeeded), 1 not so or the sweep failed, 2 bad input.
"""
from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reverse_digital_twin.cli import comma_floats, parse_arguments
from reverse_digital_twin.core.errors import ConfigError

if TYPE_CHECKING:
    from reverse_digital_twin.core.goal import TrajectoryGoal
    from reverse_digital_twin.core.prediction_pool import PredictorSpec
    from reverse_digital_twin.robot_setup import RobotSetup

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_EPILOG = """\
a trajectory file (YAML or JSON), as a trajectory_msgs/JointTrajectory:
  joint_names: [joint_a, joint_b, ...]
  points:
    - time_from_start: 0.5     # s, or {sec: 0, nanosec: 500000000}
      positions: [0.1, 0.2, ...]
      velocities: [0.0, ...]   # optional, likewise accelerations and effort
  start_positions: {joint_a: 0.0}   # optional (default: the robot's home)

scenario files: see config/scenarios/*.yaml and core/scenario.py
exit codes: 0 swept (and --min-success reached; --replay: the rollout succeeded),
            1 not so or the sweep failed, 2 bad input
"""
_TRAJECTORY_KEYS = {'joint_names', 'points', 'start_positions', 'header'}
_POINT_KEYS = {'time_from_start', 'positions', 'velocities', 'accelerations', 'effort'}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='rdt sweep', formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Roll a motion out under N drawn edge-case scenarios in the twin and report '
        'the probability of success, collision and each limit violation, with the worst cases '
        'and their seeds.', epilog=_EPILOG)
    parser.add_argument('trajectory', nargs='?', default='',
                        help='a trajectory file (YAML/JSON: joint_names, points with '
                        'time_from_start and positions; optional start_positions)')
    parser.add_argument('--joints', metavar='Q1,Q2,...',
                        help="instead of a file: target positions of the controller's joints "
                        '(rad | m), planned from the start pose like `rdt move --joints`')
    parser.add_argument('--scenario', required=True, metavar='FILE',
                        help='scenario YAML, or the name of one in config/scenarios/ '
                        '(payload_range, locked_joint, weak_joint, edge_cases)')
    parser.add_argument('-n', '--rollouts', type=int, default=100, metavar='N',
                        help='rollouts (draws), default 100')
    parser.add_argument('--seed', type=int, default=0,
                        help='sweep seed: the same seed gives the same report (default 0)')
    parser.add_argument('--robot', default='rdt_arm6',
                        help='robot name under config/ (rdt_arm6, panda) or a parameter YAML')
    parser.add_argument('--start', metavar='Q1,Q2,...',
                        help="start positions of the controller's joints (default: the "
                        "trajectory file's start_positions, else the robot's home)")
    parser.add_argument('--velocity-scaling', type=float, default=0.5,
                        help='with --joints: fraction of the URDF velocity limits (default 0.5)')
    parser.add_argument('--calibration', default='', metavar='FILE',
                        help='a calibration of `rdt calibrate`: the predictions model the '
                        'hardware with it, and the scenario varies around it')
    parser.add_argument('--workers', type=int, default=None,
                        help='worker processes or Ray actors (default: the CPU count; on a Ray '
                        'cluster, its CPUs)')
    parser.add_argument('--ray', nargs='?', const='', default=None, metavar='ADDRESS',
                        help='run on Ray: a local instance, or the cluster at ADDRESS (e.g. '
                        "'auto' or ray://host:10001; its workers need this package)")
    parser.add_argument('--out', default='artifacts/sweep', metavar='DIR',
                        help='where sweep_report.json and sweep.png go (default artifacts/sweep)')
    parser.add_argument('--worst', type=int, default=5, help='worst rollouts named (default 5)')
    parser.add_argument('--min-success', type=float, default=None, metavar='P',
                        help='exit 1 when the probability of success is below P')
    parser.add_argument('--replay', type=int, default=None, metavar='SEED',
                        help="run one rollout with this rollout seed (a report's worst case) "
                        'in this process and print its verdict; no report')
    parser.add_argument('--no-plot', action='store_true', help='write no PNG')
    return parser


def _glue_negative(argv: list[str]) -> list[str]:
    """'--joints -0.6,1.2' reads as an option to argparse: make it '--joints=-0.6,1.2'."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in ('--joints', '--start') and i + 1 < len(argv) \
                and re.match(r'^-[\d.]', argv[i + 1]) is not None:
            out.append(f'{argv[i]}={argv[i + 1]}')
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def predictor_spec(setup: 'RobotSetup', hardware: Any = None) -> 'PredictorSpec':
    """The robot's predictor as the planner builds it (same rates, motors, controller,
    allowed contacts; ``hardware``: a calibration's model)."""
    from reverse_digital_twin.core.controller_config import controller_config  # noqa: PLC0415
    from reverse_digital_twin.core.physics import MotorSettings  # noqa: PLC0415
    from reverse_digital_twin.core.prediction_pool import PredictorSpec  # noqa: PLC0415
    from reverse_digital_twin.ros_params import read_node_parameters  # noqa: PLC0415
    from reverse_digital_twin.stack import PLANNER_NODE  # noqa: PLC0415
    model = setup.model()
    sim = setup.sim
    config = controller_config(setup.controller, model, str(setup.config))
    allowed = str(read_node_parameters(setup.config, PLANNER_NODE).get(
        'prediction.allowed_contacts', '') or '')
    pairs = []
    for item in filter(None, (part.strip() for part in allowed.split(','))):
        link, sep, other = item.partition(':')
        if not sep or not link or not other:
            raise ConfigError(f"{setup.config}: prediction.allowed_contacts: {item!r} is not "
                              "'robot_link:other'")
        pairs.append((link, other))
    motors = MotorSettings(
        position_gain=float(sim.get('position_gain', MotorSettings.position_gain)),
        velocity_gain=float(sim.get('velocity_gain', MotorSettings.velocity_gain)),
        gravity_compensation=bool(sim.get('gravity_compensation', False)))
    return PredictorSpec(model, str(setup.urdf), setup.scene(),
                         float(sim.get('physics_rate', 1000.0)),
                         float(sim.get('update_rate', 100.0)), config, motors,
                         command_delay_cycles=0 if sim.get('lockstep') else 1,
                         allowed_contacts=tuple(pairs),
                         initial_positions=setup.initial_positions, hardware=hardware)


def _time(value: Any, where: str) -> float:
    if isinstance(value, dict) and set(value) <= {'sec', 'nanosec'}:
        try:
            return float(value.get('sec', 0)) + float(value.get('nanosec', 0)) * 1e-9
        except (TypeError, ValueError):
            pass
    elif not isinstance(value, bool) and isinstance(value, (int, float)):
        return float(value)
    raise ConfigError(f'{where}: expected seconds (a number, or {{sec, nanosec}}), got '
                      f'{value!r}')


def _numbers(value: Any, count: int, where: str) -> list[float]:
    if not isinstance(value, list) or len(value) != count or not all(
            not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
            for v in value):
        raise ConfigError(f'{where}: expected a list of {count} finite numbers (one per joint '
                          f'of joint_names), got {value!r}')
    return [float(v) for v in value]


def load_trajectory(path: str | Path) -> tuple['TrajectoryGoal', dict[str, float]]:
    """A trajectory file (see the module docstring): the goal, and its start positions ({}
    when it names none). Errors name the file and the key."""
    from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal  # noqa: PLC0415
    from reverse_digital_twin.core.scene import _check_keys  # noqa: PLC0415
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'trajectory file not found: {path}')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML or JSON ({exc})') from None
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping with keys joint_names and points')
    _check_keys(data, _TRAJECTORY_KEYS, str(path))
    names = data.get('joint_names')
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f'{path}: joint_names: expected a non-empty list of joint names, got '
                          f'{names!r}')
    raw = data.get('points')
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f'{path}: points: expected a non-empty list of waypoints, got '
                          f'{raw!r}')
    points = []
    for i, p in enumerate(raw):
        where = f'{path}: points[{i}]'
        if not isinstance(p, dict):
            raise ConfigError(f'{where}: expected a mapping with keys {sorted(_POINT_KEYS)}')
        _check_keys(p, _POINT_KEYS, where)
        if 'time_from_start' not in p or 'positions' not in p:
            raise ConfigError(f'{where}: time_from_start and positions are required')
        points.append(GoalPoint(
            _time(p['time_from_start'], f'{where}.time_from_start'),
            *(_numbers(p[k], len(names), f'{where}.{k}') if p.get(k) else []
              for k in ('positions', 'velocities', 'accelerations', 'effort'))))
    start = data.get('start_positions') or {}
    if not isinstance(start, dict) or not all(
            isinstance(k, str) and not isinstance(v, bool) and isinstance(v, (int, float))
            and math.isfinite(v) for k, v in start.items()):
        raise ConfigError(f'{path}: start_positions: expected a mapping joint -> position, got '
                          f'{start!r}')
    return TrajectoryGoal(list(names), points), {k: float(v) for k, v in start.items()}


def _motion(args: argparse.Namespace, spec: 'PredictorSpec', setup: 'RobotSetup') \
        -> tuple['TrajectoryGoal', dict[str, float], str]:
    """The goal, its start positions (controller joints and any others named) and how to
    name the input in a replay command."""
    from reverse_digital_twin.core.controller import TrajectoryController  # noqa: PLC0415
    from reverse_digital_twin.core.motion import plan_joint_motion  # noqa: PLC0415
    joints = list(spec.config.joints)
    start = {j: setup.initial_positions.get(j, 0.0) for j in joints}
    if bool(args.trajectory) == bool(args.joints):
        raise ConfigError('give a trajectory file or --joints, exactly one')
    if args.trajectory:
        goal, file_start = load_trajectory(args.trajectory)
        unknown = sorted(set(file_start) - {j.name for j in spec.model.movable_joints})
        if unknown:
            raise ConfigError(f'{args.trajectory}: start_positions: {unknown} are not movable '
                              f'joints of the robot; its controller joints are {joints}')
        start.update(file_start)
        source = shlex.quote(args.trajectory)
    if args.start:
        values = comma_floats(args.start, '--start')
        if len(values) != len(joints):
            raise ConfigError(f'--start: expected {len(joints)} positions for {joints}, got '
                              f'{len(values)}')
        start.update(zip(joints, values))
    if args.joints:
        target = comma_floats(args.joints, '--joints')
        if len(target) != len(joints):
            raise ConfigError(f'--joints: expected {len(joints)} positions for {joints}, got '
                              f'{len(target)}')
        try:
            goal = plan_joint_motion([start[j] for j in joints], target, joints,
                                     spec.config.limits, args.velocity_scaling)
        except ValueError as exc:
            raise ConfigError(f'--joints: {exc}') from None
        source = f'--joints={",".join(f"{v:g}" for v in target)}' + (
            f' --velocity-scaling {args.velocity_scaling:g}' if args.velocity_scaling != 0.5
            else '')
    reason = TrajectoryController(spec.config).validate(goal, 0.0)
    if reason is not None:
        raise ConfigError(f'the controller would reject this trajectory, nothing to sweep: '
                          f'{reason}')
    return goal, start, source


def _check_numbers(args: argparse.Namespace) -> None:
    if args.rollouts < 1:
        raise ConfigError(f'-n: expected a number of rollouts >= 1, got {args.rollouts}')
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f'--workers: expected >= 1, got {args.workers}')
    if args.worst < 0:
        raise ConfigError(f'--worst: expected >= 0, got {args.worst}')
    if args.seed < 0:
        raise ConfigError(f'--seed: expected an integer >= 0, got {args.seed}')
    if args.min_success is not None and not 0.0 <= args.min_success <= 1.0:
        raise ConfigError(f'--min-success: expected a probability in [0, 1], got '
                          f'{args.min_success}')
    if args.replay is not None and not 0 <= args.replay < 2 ** 32:
        raise ConfigError(f'--replay: expected a rollout seed in [0, 2**32), got {args.replay}')


def sweep_main(argv: Sequence[str] | None = None) -> int:
    """`rdt sweep ...`; returns the exit code."""
    args = parse_arguments(_parser(), _glue_negative(
        list(sys.argv[1:] if argv is None else argv)))
    if isinstance(args, int):
        return args
    from reverse_digital_twin.core.sweep import SweepError  # noqa: PLC0415
    try:
        return _run(args)
    except ConfigError as exc:
        print(f'rdt sweep: {exc}', file=sys.stderr)
        return EXIT_USAGE
    except SweepError as exc:
        print(f'rdt sweep: {exc}', file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print('\nrdt sweep: interrupted', file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from reverse_digital_twin.core.calibration import Calibration  # noqa: PLC0415
    from reverse_digital_twin.core.scenario import load_scenario  # noqa: PLC0415
    from reverse_digital_twin.core.sweep import SweepJob, TextProgress  # noqa: PLC0415
    from reverse_digital_twin.core.sweep import build_report, plot_report  # noqa: PLC0415
    from reverse_digital_twin.core.sweep import replay, run_sweep  # noqa: PLC0415
    from reverse_digital_twin.core.sweep import summary_lines, write_report  # noqa: PLC0415
    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    _check_numbers(args)
    setup = load_robot(args.robot)
    scenario = load_scenario(args.scenario)
    hardware = None
    if args.calibration:
        model_joints = [j.name for j in setup.model().movable_joints]
        hardware = Calibration.load(args.calibration, model_joints).hardware
    spec = predictor_spec(setup, hardware)
    goal, start, source = _motion(args, spec, setup)
    job = SweepJob(spec, scenario, goal, start, seed=args.seed)
    job.check()
    duration = job.duration
    replay_command = (f'rdt sweep {source} --robot {shlex.quote(args.robot)} --scenario '
                      f'{shlex.quote(args.scenario)}'
                      + (f' --start={shlex.quote(args.start)}' if args.start else '')
                      + (f' --calibration {shlex.quote(args.calibration)}'
                         if args.calibration else '') + ' --replay {seed}')
    if args.replay is not None:
        draw, verdict = replay(job, args.replay)
        print(f'rdt sweep: rollout seed {args.replay} of {scenario.name}: {draw.describe()}')
        print(f'  {"succeeds" if verdict.safe else "fails"}: ' + (
            '\n  '.join(verdict.reasons) if verdict.reasons else
            f'reaches the goal, largest tracking error {verdict.max_tracking_error:.4f} '
            f'({verdict.max_tracking_error_joint})'))
        return EXIT_OK if verdict.safe else EXIT_FAILED
    backend = (f'Ray at {args.ray}' if args.ray else 'a local Ray instance') \
        if args.ray is not None else 'local worker processes'
    print(f'rdt sweep: {args.rollouts} rollouts of a {duration:.2f} s motion of '
          f'{spec.model.name} under {scenario.name} (seed {args.seed}) in {backend}',
          flush=True)
    results, execution = run_sweep(job, args.rollouts, args.workers,
                                   use_ray=args.ray is not None, ray_address=args.ray or '',
                                   progress=TextProgress(sys.stderr))
    info = _info(args, scenario, spec, goal, start)
    report = build_report(results, info, execution, args.worst, replay_command)
    out = Path(args.out)
    path = write_report(report, out / 'sweep_report.json')
    for line in summary_lines(report):
        print(line)
    rate = report['execution']['rollouts_per_s']
    print(f'{execution.workers} {execution.backend} workers: {rate} rollouts/s after '
          f'{execution.startup_s:.1f} s of start-up')
    written = [str(path)]
    if not args.no_plot:
        written.append(str(plot_report(report, out / 'sweep.png')))
    print(f'report: {", ".join(written)}')
    success = report['outcomes']['success']['probability']
    if args.min_success is not None and success < args.min_success:
        print(f'rdt sweep: probability of success {success:.3f} is below --min-success '
              f'{args.min_success:g}', file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _info(args: argparse.Namespace, scenario: Any, spec: 'PredictorSpec',
          goal: 'TrajectoryGoal', start: Mapping[str, float]) -> dict[str, Any]:
    """What was swept, for the report's head."""
    return {
        'scenario': scenario.name, 'scenario_file': scenario.source,
        'description': scenario.description, 'robot': spec.model.name,
        'robot_config': args.robot, 'seed': args.seed,
        'motion': {'source': args.trajectory or 'planned (--joints)',
                   'joints': list(goal.joint_names), 'points': len(goal.points),
                   'duration': float(goal.points[-1].time_from_start),
                   'start_positions': {j: round(float(v), 6) for j, v in start.items()},
                   'target': [round(float(q), 6) for q in goal.points[-1].positions]},
        'calibration': args.calibration or None,
    }


if __name__ == '__main__':
    raise SystemExit(sweep_main())
