"""Collision-free planning in the twin's own world (core.planning, no ROS): how long a motion
takes to plan, on both shipped robots.

For each robot, 20 seeded targets, each planned from the robot's home pose with
``plan_path`` (ends checked, the straight line if clear, else OMPL's RRTConnect and
shortcutting) and then ``time_parameterize`` (Ruckig, corners blended where the re-check
allows) — what ``move_to`` runs before it predicts:

- ``plan_ms_median_<robot>``: median wall ms of the two together (target <= 500 ms on
  rdt_arm6); ``plan_path_ms_median_<robot>`` and ``time_param_ms_median_<robot>``: each alone;
  ``plan_ms_max_<robot>``: the slowest success; ``plan_ms_median_searched_<robot>``: the median
  of the targets whose straight line was blocked (most targets are reached in a straight line);
- ``plan_success_rate_<robot>``: share of the targets planned (a refusal counts as a failure);
  ``plan_searched_share_<robot>``: share whose straight line was blocked (OMPL searched);
- ``plan_ms_median`` and ``plan_success_rate``: those of the run's robot (``--robot``).

Targets: joint positions drawn uniformly within the URDF limits (wider ranges cut to +-pi),
seed :data:`TARGET_SEED`, kept when clear by the planner's default clearance and with every
moving link's frame above the robot's base (an arm hanging over the table's edge, behind a
narrow passage, is not what move_to is asked for). Planning seed: the target's number. OMPL
is imported and one plan made before timing. Standalone:
``python -m benchmarks.bench_planning [robot]``.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np

from benchmarks import Target, run_alone
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.planning import CollisionChecker, PlanningError, plan_path
from reverse_digital_twin.core.planning import time_parameterize
from reverse_digital_twin.robot_setup import load_robot

#: The robots of the figure (the run's own is added when it is another).
ROBOTS = ('rdt_arm6', 'panda')
#: Targets per robot, and the seed they are drawn with.
TARGET_COUNT = 20
TARGET_SEED = 2026
#: Goal of the issue: planning a motion for the 6-DoF arm takes at most this long (median).
PLAN_MS_GOAL = 500.0


def _log(message: str) -> None:
    print(f'[bench_planning] {message}', file=sys.stderr, flush=True)


def targets(r: dict) -> list[Target]:
    return [Target('plan_ms_median_rdt_arm6', PLAN_MS_GOAL, '<=',
                   'issue goal: median plan + timing on the 6-DoF arm')]


def rows(r: dict) -> list[tuple[str, str, str]]:
    out = []
    for robot in [k[len('plan_success_rate_'):] for k in r
                  if k.startswith('plan_success_rate_')]:
        out.append((f'plan_ms_median_{robot} (path / timing)',
                    f'{r[f"plan_ms_median_{robot}"]:.0f}',
                    f'{r[f"plan_path_ms_median_{robot}"]:.0f} / '
                    f'{r[f"time_param_ms_median_{robot}"]:.0f} ms; max '
                    f'{r[f"plan_ms_max_{robot}"]:.0f} ms; '
                    f'{r[f"plan_success_rate_{robot}"]:.0%} planned; '
                    f'{r[f"plan_searched_share_{robot}"]:.0%} needed a search, median '
                    f'{r[f"plan_ms_median_searched_{robot}"]:.0f} ms'))
    return out


def _targets(world: PhysicsWorld, checker: CollisionChecker, joints: Sequence[str],
             count: int) -> list[np.ndarray]:
    """Seeded clear targets, every moving link above the robot's base (see the docstring)."""
    model = world.model
    limits = {j.name: j.limits for j in model.movable_joints}
    low = np.array([max(limits[j].lower, -math.pi) for j in joints])
    high = np.array([min(limits[j].upper, math.pi) for j in joints])
    floor = world.scene.robot_position[2]
    rng = np.random.default_rng(TARGET_SEED)
    out: list[np.ndarray] = []
    with world.preserved_state():
        for _ in range(100_000):
            if len(out) == count:
                break
            q = rng.uniform(low, high)
            if checker.violation(q) is not None:
                continue
            if all(world.link_pose(link)[0][2] > floor for link in checker.moving_links):
                out.append(q)
    if len(out) < count:
        raise RuntimeError(f'only {len(out)} of {count} targets found for {model.name}')
    return out


def measure_robot(robot: str) -> dict:
    """The figures of one robot (keys without the robot suffix)."""
    setup = load_robot(robot)
    model = setup.model()
    limits = {j.name: j.limits for j in model.movable_joints}
    world = PhysicsWorld(model, str(setup.urdf), setup.scene(),
                         initial_positions=setup.initial_positions)
    try:
        checker = CollisionChecker(world, setup.joints)
        home = setup.home
        goals = _targets(world, checker, setup.joints, TARGET_COUNT)
        plan_path(world, home, goals[0], setup.joints, checker=checker)  # imports OMPL
        total, paths, timings, searched, refused = [], [], [], [], []
        for seed, goal in enumerate(goals):
            began = time.perf_counter()
            try:
                path = plan_path(world, home, goal, setup.joints, seed=seed, checker=checker)
            except PlanningError as exc:
                refused.append(exc.reason)
                continue
            planned = time.perf_counter()
            time_parameterize(path, limits, checker=checker)
            done = time.perf_counter()
            paths.append((planned - began) * 1e3)
            timings.append((done - planned) * 1e3)
            total.append((done - began) * 1e3)
            if path.searched:
                searched.append(total[-1])
        _log(f'{robot}: {len(total)}/{len(goals)} planned, median '
             f'{statistics.median(total) if total else math.nan:.0f} ms'
             + (f'; refused: {refused}' if refused else ''))
    finally:
        world.close()
    return {'plan_ms_median': statistics.median(total) if total else math.nan,
            'plan_ms_max': max(total) if total else math.nan,
            'plan_path_ms_median': statistics.median(paths) if paths else math.nan,
            'time_param_ms_median': statistics.median(timings) if timings else math.nan,
            'plan_ms_median_searched': statistics.median(searched) if searched else math.nan,
            'plan_success_rate': len(total) / len(goals),
            'plan_searched_share': len(searched) / len(goals)}


def measure(robot: str = 'rdt_arm6') -> dict:
    """All figures of this benchmark: both shipped robots, and the run's own."""
    result: dict = {}
    for name in dict.fromkeys((*ROBOTS, robot)):
        figures = measure_robot(name)
        result.update({f'{k}_{name}': v for k, v in figures.items()})
        if name == robot:
            result['plan_ms_median'] = figures['plan_ms_median']
            result['plan_success_rate'] = figures['plan_success_rate']
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return run_alone(measure, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
