"""Risk sweeps: rollouts per second in local worker processes and on Ray, and their scaling.

- ``sweep_rollouts_per_s_1w`` / ``_2w``: rollouts per wall second of a sweep
  (core/sweep.py) with 1 and 2 local worker processes, once the workers have built their
  worlds (their start-up is ``sweep_startup_s_local``, one sweep's, not per rollout);
- ``sweep_rollouts_per_s_ray``: the same with 2 Ray actors on a local Ray instance of 2 CPUs
  (start-up of the actors: ``sweep_startup_s_ray``; Ray itself starts once, not counted);
- ``sweep_efficiency_local`` = 2w / (2 x 1w) and ``sweep_efficiency_ray`` = ray / (2 x 1w),
  each 1w measured right before in the same round: the share of linear scaling on 2 cores
  (target >= 0.8; bounded by the cores other processes leave free);
- ``sweep_overlap_2w``: with 2 local workers, the share of the wall time both spent rolling out
  (near 1 with a low efficiency: the workers run in parallel but the CPU is taken by others);
- ``sweep_reports_identical``: the three sweeps (same seed) gave the same report.

The motion: the robot's home to a pose 0.3 rad away in every controller joint (planned as
`rdt sweep --joints` does), under the shipped edge_cases scenario. REPEATS rounds per
comparison; the median round's figures are reported (other processes share the machine).
Standalone: ``python -m benchmarks.bench_sweep [robot]``.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from reverse_digital_twin.core.motion import plan_joint_motion
from reverse_digital_twin.core.scenario import load_scenario
from reverse_digital_twin.core.sweep import SweepJob, build_report, comparable, run_sweep
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.sweep_cli import predictor_spec

from benchmarks import run_alone

#: The issue's targets (the aggregator marks them met or missed).
TARGETS = {'sweep_efficiency_local': ('>=', 0.8), 'sweep_efficiency_ray': ('>=', 0.8)}
SCENARIO = 'edge_cases'
#: Rollouts per sweep (the same for every configuration, so their reports compare), rounds.
ROLLOUTS = 48
REPEATS = 5
SEED = 20261202


def _log(message: str) -> None:
    print(f'[bench_sweep] {message}', file=sys.stderr, flush=True)


def _job(robot: str) -> SweepJob:
    setup = load_robot(robot)
    spec = predictor_spec(setup)
    joints = list(spec.config.joints)
    home = np.array([setup.initial_positions.get(j, 0.0) for j in joints])
    signs = np.where(np.arange(len(joints)) % 2 == 0, -1.0, 1.0)
    lower = np.array([spec.config.limits[j].lower for j in joints])
    upper = np.array([spec.config.limits[j].upper for j in joints])
    target = np.clip(home + 0.3 * signs, lower, upper)
    goal = plan_joint_motion(home, target, joints, spec.config.limits)
    return SweepJob(spec, load_scenario(SCENARIO), goal, dict(zip(joints, home.tolist())),
                    seed=SEED)


def _sweep(job: SweepJob, workers: int, use_ray: bool, label: str,
           reports: dict[str, dict]) -> tuple[float, float, float]:
    """(rollouts/s, start-up s, overlap) of one sweep; its report kept under ``label``."""
    results, execution = run_sweep(job, ROLLOUTS, workers, use_ray=use_ray)
    rate = ROLLOUTS / execution.rollouts_s
    overlap = sum(r.wall for r in results) / (workers * execution.rollouts_s)
    reports.setdefault(label, comparable(build_report(results, {})))
    _log(f'{label}: {rate:.2f} rollouts/s ({job.duration:.1f} s motion, start-up '
         f'{execution.startup_s:.2f} s, overlap {overlap:.2f})')
    return rate, execution.startup_s, overlap


def measure(robot: str = 'rdt_arm6') -> dict:
    """All figures of this benchmark for one robot.

    Each round runs a 1-worker sweep and right after it the sweep it is compared with (2 local
    workers; then, with Ray up, 2 actors), and the ratio is taken within the round: the load
    other processes put on the machine changes from minute to minute. The median round counts.
    """
    import ray  # noqa: PLC0415 - tools/requirements.txt has it; a missing ray is a failure
    job = _job(robot)
    reports: dict[str, dict] = {}
    load = os.getloadavg()[0]
    local: list[tuple[float, float, float, float, float]] = []  # 1w, 2w, ratio, start, overlap
    for _ in range(REPEATS):
        one = _sweep(job, 1, False, '1w', reports)
        two = _sweep(job, 2, False, '2w', reports)
        local.append((one[0], two[0], two[0] / (2 * one[0]), two[1], two[2]))
    os.environ.setdefault('RAY_AUTH_MODE', 'disabled')  # no token for a throwaway instance
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    remote: list[tuple[float, float, float, float]] = []  # 1w, ray, ratio, start-up
    try:
        for _ in range(REPEATS):
            one = _sweep(job, 1, False, '1w', reports)
            actors = _sweep(job, 2, True, 'ray', reports)
            remote.append((one[0], actors[0], actors[0] / (2 * one[0]), actors[1]))
    finally:
        ray.shutdown()
    local.sort(key=lambda r: r[2])
    remote.sort(key=lambda r: r[2])
    mid_local, mid_remote = local[len(local) // 2], remote[len(remote) // 2]
    identical = reports['1w'] == reports['2w'] == reports['ray']
    if not identical:
        _log('the sweeps of one seed gave different reports')
    result = {
        'sweep_rollouts_per_s_1w': mid_local[0],
        'sweep_rollouts_per_s_2w': mid_local[1],
        'sweep_rollouts_per_s_ray': mid_remote[1],
        'sweep_efficiency_local': mid_local[2],
        'sweep_efficiency_ray': mid_remote[2],
        'sweep_overlap_2w': mid_local[4],
        'sweep_startup_s_local': mid_local[3],
        'sweep_startup_s_ray': mid_remote[3],
        'sweep_reports_identical': identical,
        'sweep_motion_s': job.duration,
        'sweep_success_probability': reports['1w']['outcomes']['success']['probability'],
        'sweep_load_average_at_start': load,
    }
    _log(f'{robot}: efficiency local {result["sweep_efficiency_local"]:.2f}, Ray '
         f'{result["sweep_efficiency_ray"]:.2f}; reports identical: {identical}')
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return run_alone(measure, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
