"""Risk sweeps (core/sweep.py, `rdt sweep`): the same seed gives the same report with any
number of local workers and on Ray; known-bad draws are counted exactly; the report, the plot,
replays and the CLI's errors. Headless PyBullet in worker processes, a local Ray instance."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from reverse_digital_twin.core.motion import plan_joint_motion
from reverse_digital_twin.core.scenario import parse_scenario, rollout_seed
from reverse_digital_twin.core.sweep import SweepJob, build_report, comparable, plot_report
from reverse_digital_twin.core.sweep import replay, run_sweep, summary_lines, wilson_interval
from reverse_digital_twin.core.sweep import write_report
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.sweep_cli import predictor_spec, sweep_main

#: Every kind of edge case, frequent enough that 8 rollouts meet most of them.
RICH = '''
payload: {probability: 0.5, mass: {min: 0.0, max: 3.0}}
joints: {'*': {friction: {min: 0.0, max: 0.3}, damping: {min: 0.0, max: 0.3}}}
locked_joint: {probability: 0.25, joint: any}
weak_joint: {probability: 0.25, joint: any, effort_scale: {min: 0.1, max: 0.5}}
sensors: {position_noise: {min: 0, max: 0.001}, velocity_noise: 0.005, dropout: 0.05}
commands: {latency: {min: 0.0, max: 0.015}, loss: 0.05}
obstacle: {probability: 0.3, time_fraction: {min: 0.0, max: 0.5}, shape: {choices: [box, sphere]},
           on_path: {min: 0.6, max: 1.0}}
emergency_stop: {probability: 0.2, time_fraction: {min: 0.2, max: 0.8}}
'''
#: Only a locked joint, in some draws: with a motion moving every joint beyond the path
#: tolerance, exactly those draws fail.
LOCKED = 'locked_joint: {probability: 0.4, joint: any}\n'
N = 8
SEED = 5


@pytest.fixture(scope='module')
def motion():
    """rdt_arm6's predictor spec, a 1 s motion moving every joint by 0.3 rad (beyond the 0.2 rad
    path tolerance: a locked joint always fails it) and its start."""
    setup = load_robot('rdt_arm6')
    spec = predictor_spec(setup)
    joints = list(spec.config.joints)
    home = np.array([setup.initial_positions[j] for j in joints])
    goal = plan_joint_motion(home, home + 0.3 * np.array([-1, 1, -1, 1, -1, 1]), joints,
                             spec.config.limits)
    return spec, goal, dict(zip(joints, home.tolist()))


def job(motion, text: str, seed: int = SEED) -> SweepJob:
    spec, goal, start = motion
    return SweepJob(spec, parse_scenario(yaml.safe_load(text), 'test'), goal, start, seed=seed)


@pytest.fixture(scope='module')
def one_worker(motion):
    results, execution = run_sweep(job(motion, RICH), N, workers=1)
    assert execution.backend == 'local' and execution.workers == 1
    return build_report(results, {'scenario': 'rich'}, execution)


@pytest.fixture(scope='module')
def two_workers(motion):
    results, execution = run_sweep(job(motion, RICH), N, workers=2)
    assert execution.workers == 2
    return build_report(results, {'scenario': 'rich'}, execution)


def test_the_same_seed_gives_the_same_report_with_any_number_of_workers(one_worker,
                                                                        two_workers):
    assert comparable(one_worker) == comparable(two_workers)
    assert one_worker['execution']['workers'] == 1 and two_workers['execution']['workers'] == 2
    # the draws really vary, and rollout i is drawn from (seed, i) alone
    labels = set(one_worker['labels'])
    assert len(labels) >= 2, one_worker['labels']
    assert [r['seed'] for r in one_worker['results']] == [rollout_seed(SEED, i)
                                                          for i in range(N)]
    json.dumps(one_worker)  # JSON-ready


def test_another_seed_gives_other_draws(motion, one_worker):
    other = job(motion, RICH, seed=SEED + 1)
    draws = [other.draw(rollout_seed(SEED + 1, i)).to_dict() for i in range(N)]
    assert all(a != b['draw'] for a, b in zip(draws, one_worker['results']))


def test_locked_joint_draws_are_counted_exactly(motion):
    sweep = job(motion, LOCKED, seed=3)
    n = 10
    locked = [i for i in range(n) if sweep.draw(rollout_seed(3, i)).locked_joint]
    assert 0 < len(locked) < n  # the seed gives both kinds
    results, _ = run_sweep(sweep, n, workers=2)
    report = build_report(results, {})
    assert [r.index for r in results if r.label != 'success'] == locked
    assert report['outcomes']['success']['count'] == n - len(locked)
    assert report['outcomes']['aborted']['count'] == len(locked)
    assert report['outcomes']['success']['probability'] == pytest.approx(1 - len(locked) / n)
    assert report['outcomes']['collision']['count'] == 0
    for r in results:
        if r.index in locked:
            assert r.draw['locked_joint'] in r.reasons[0], r.reasons
    assert {w['index'] for w in report['worst']} <= set(locked)
    assert report['parameters']['locked_joint'] == {
        j: {'rollouts': c, 'failures': c} for j, c in sorted(
            {r.draw['locked_joint']: sum(1 for x in results if x.draw.get('locked_joint')
                                         == r.draw['locked_joint'])
             for r in results if r.index in locked}.items())}


def test_ray_gives_the_report_of_local_workers(motion, two_workers):
    """A local Ray instance with 2 CPUs, an actor per worker: the same report as local
    processes. (ray is in tools/requirements.txt: without it this fails, it does not skip.)"""
    import ray
    previous = os.environ.get('RAY_AUTH_MODE')
    os.environ['RAY_AUTH_MODE'] = 'disabled'  # no token under ~/.ray for a throwaway instance
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            results, execution = run_sweep(job(motion, RICH), N, workers=2, use_ray=True)
        finally:
            ray.shutdown()
    finally:
        if previous is None:
            os.environ.pop('RAY_AUTH_MODE', None)
        else:
            os.environ['RAY_AUTH_MODE'] = previous
    assert execution.backend == 'ray' and execution.workers == 2
    report = build_report(results, {'scenario': 'rich'}, execution)
    assert comparable(report) == comparable(two_workers)


def test_the_worst_case_replays_from_its_seed(motion, one_worker):
    worst = one_worker['worst'][0]
    rollout = one_worker['results'][worst['index']]
    draw, verdict = replay(job(motion, RICH), worst['seed'])
    assert draw.to_dict() == rollout['draw'] == worst['draw']
    assert list(verdict.reasons) == rollout['reasons'] == worst['reasons']
    assert not verdict.safe


def test_report_plot_and_summary(tmp_path, one_worker):
    report = one_worker
    outcomes = report['outcomes']
    assert outcomes['success']['count'] + sum(
        n for label, n in report['labels'].items() if label != 'success') == N
    for name in ('success', 'collision', 'limit_violation', 'position_limit',
                 'velocity_limit', 'effort_limit', 'aborted', 'emergency_stop'):
        rate = outcomes[name]
        assert rate['probability'] == pytest.approx(rate['count'] / N)
        assert rate['ci95'][0] <= rate['probability'] <= rate['ci95'][1]
    ranks = [w['rank'] for w in report['worst']]
    assert ranks == list(range(1, len(ranks) + 1))
    assert all(w['label'] != 'success' for w in report['worst'])
    path = write_report(report, tmp_path / 'r' / 'sweep_report.json')
    assert json.loads(path.read_text()) == report
    png = plot_report(report, tmp_path / 'sweep.png')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    text = '\n'.join(summary_lines(report))
    assert 'success' in text and f'seed {report["worst"][0]["seed"]}' in text


def test_wilson_interval():
    assert wilson_interval(0, 10)[0] == 0.0 and 0.2 < wilson_interval(0, 10)[1] < 0.35
    low, high = wilson_interval(5, 10)
    assert low < 0.5 < high and low == pytest.approx(1 - high)
    assert wilson_interval(0, 0) == (0.0, 1.0)


# --- the CLI ------------------------------------------------------------------------------------
def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = sweep_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('argv,message', [
    (['--scenario', 'locked_joint'], 'give a trajectory file or --joints, exactly one'),
    (['--joints', '0,1', '--scenario', 'locked_joint'], '--joints: expected 6 positions'),
    (['--joints', '0,-1.57,1.57,-1.57,-1.57,0', '--scenario', 'nope'],
     "unknown scenario 'nope'"),
    (['--joints', '0,-1.57,1.57,-1.57,-1.57,0', '--scenario', 'locked_joint', '-n', '0'],
     '-n: expected a number of rollouts >= 1'),
    (['--joints', '0,-1.57,1.57,-1.57,-1.57,9', '--scenario', 'locked_joint'],
     '--joints: goal position of joint wrist_3_joint is 9.0000, outside its URDF limits'),
    (['no_such.yaml', '--scenario', 'locked_joint'], 'trajectory file not found: no_such.yaml'),
    (['--joints', '0,-1.57,1.57,-1.57,-1.57,0', '--scenario', 'locked_joint', '--robot',
      'r2d2'], "unknown robot 'r2d2'"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    code, out, err = _cli(capsys, *argv)
    assert code == 2
    assert err.startswith(f'rdt sweep: {message}'), err
    assert err.count('\n') == 1 and 'Traceback' not in err


def test_bad_trajectory_files_name_the_file_and_the_key(tmp_path, capsys):
    cases = [
        ({'joint_names': ['a'], 'points': [{'time_from_start': 1.0, 'positions': [0, 1]}]},
         'points[0].positions: expected a list of 1 finite numbers'),
        ({'joint_names': ['a'], 'points': [{'time_from_start': 'x', 'positions': [0]}]},
         'points[0].time_from_start: expected seconds'),
        ({'joint_names': ['a'], 'points': [], 'speed': 2}, "unknown key(s) ['speed']"),
        ({'joint_names': ['a'], 'points': [{'positions': [0]}]},
         'points[0]: time_from_start and positions are required'),
    ]
    for data, message in cases:
        path = tmp_path / 'traj.yaml'
        path.write_text(yaml.safe_dump(data))
        code, _, err = _cli(capsys, str(path), '--scenario', 'locked_joint')
        assert code == 2 and err.startswith(f'rdt sweep: {path}: {message}'), err


def test_a_sweep_from_a_trajectory_file(tmp_path, capsys, motion):
    """The documented file format, ros2-style times included; JSON report and PNG written."""
    spec, goal, start = motion
    traj = {'joint_names': list(goal.joint_names),
            'points': [{'time_from_start': {'sec': int(p.time_from_start),
                                            'nanosec': round(p.time_from_start % 1 * 1e9)},
                        'positions': list(p.positions)} for p in goal.points[::2]],
            'start_positions': start}
    path = tmp_path / 'traj.yaml'
    path.write_text(yaml.safe_dump(traj))
    code, out, err = _cli(capsys, str(path), '--scenario', 'locked_joint', '-n', '3',
                          '--seed', '2', '--workers', '1', '--out', str(tmp_path / 'out'),
                          '--min-success', '0')
    assert code == 0, err
    report = json.loads((tmp_path / 'out' / 'sweep_report.json').read_text())
    assert (tmp_path / 'out' / 'sweep.png').is_file()
    assert report['rollouts'] == 3 and report['seed'] == 2
    assert report['scenario'] == 'locked_joint' and report['robot'] == 'rdt_arm6'
    assert report['motion']['joints'] == list(goal.joint_names)
    assert '3/3 rollouts' in err and 'success' in out
    for w in report['worst']:
        assert w['replay'].endswith(f'--replay {w["seed"]}') and str(path) in w['replay']
