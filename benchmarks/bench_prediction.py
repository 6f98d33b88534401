"""Prediction speed and verdict parity, against limits measured in the same run.

- ``predict_10s_ms``: CPU time (see _best) of one :class:`Predictor` prediction of a 10 s
  trajectory (self-collision on, the predictor as the planner builds it), best of several runs;
- ``predict_bare_10s_ms``: PyBullet's stepSimulation alone for as many steps at the live
  physics rate, in a full-rate predictor's world (same robot, scene, self-collision pairs):
  the limit;
- ``predict_no_self_collision_10s_ms``: the same prediction without self-collision (its cost);
- ``predict_parity``: share of seeded random goals whose verdict (safe or not, and the first
  colliding pair of links/objects) equals that of a full-rate reference predictor (physics
  decimation 1). A coarser physics rate inside the predictor is only acceptable at >= 0.995.

The random goals: targets drawn uniformly (seeded numpy) within the URDF joint limits, near
home (most of them safe) or anywhere (many hit the scene or the robot itself), and some of them
timed too fast for the URDF velocity limits. Standalone: ``python -m benchmarks.bench_prediction
[robot]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from reverse_digital_twin.core.controller_config import controller_config
from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.motion import plan_joint_motion
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.prediction import Predictor, Verdict
from reverse_digital_twin.robot_setup import load_robot

#: The issue's targets (the aggregator marks them met or missed).
TARGETS = {'predict_10s_ms': ('<=', 150.0), 'predict_parity': ('>=', 0.995)}
#: Random goals for the parity measurement (>= 200) and their seed.
PARITY_GOALS = 210
SEED = 20261201
#: How far a 'fast' random goal goes over the URDF velocity limit.
FAST_FACTOR = 1.3
#: Repetitions of the timed prediction; the best is reported (other processes share the CPU).
REPEATS = 7


def _log(message: str) -> None:
    print(f'[bench_prediction] {message}', file=sys.stderr, flush=True)


class _Robot:
    """One robot as the planner runs it, built from its parameter file."""

    def __init__(self, robot: str) -> None:
        self.setup = load_robot(robot)
        self.model = self.setup.model()
        self.config = controller_config(self.setup.controller, self.model)
        self.scene = self.setup.scene()
        self.physics_rate = float(self.setup.sim.get('physics_rate', 1000.0))
        self.update_rate = float(self.setup.sim.get('update_rate', 100.0))
        self.joints = list(self.config.joints)
        self.home = np.array([self.setup.initial_positions.get(j, 0.0) for j in self.joints])
        self.start = dict(zip(self.joints, self.home.tolist()))
        self.predictor_options: dict = {}

    def predictor(self, **kwargs) -> Predictor:
        return Predictor(self.model, str(self.setup.urdf), self.scene, self.physics_rate,
                         self.update_rate, self.config,
                         initial_positions=self.setup.initial_positions,
                         **{**self.predictor_options, **kwargs})

    def ten_second_goal(self) -> TrajectoryGoal:
        """The goal `make bench` has always timed: +-0.2 rad out and back over 10 s."""
        wiggle = [q + (0.2 if i % 2 else -0.2) for i, q in enumerate(self.home)]
        return TrajectoryGoal(self.joints, [GoalPoint(5.0, wiggle),
                                            GoalPoint(10.0, self.home.tolist())])

    def random_goals(self, count: int, seed: int) -> list[tuple[str, TrajectoryGoal]]:
        """(kind, goal): 'near' home, 'anywhere' in the limits, or 'fast' (a near goal timed so
        that its fastest joint peaks at FAST_FACTOR x its URDF velocity limit); 3:2:1."""
        rng = np.random.default_rng(seed)
        limits = [self.config.limits[j] for j in self.joints]
        lower = np.array([max(lim.lower, -2 * np.pi) for lim in limits])
        upper = np.array([min(lim.upper, 2 * np.pi) for lim in limits])
        goals = []
        for k in range(count):
            kind = ('near', 'anywhere', 'near', 'fast', 'near', 'anywhere')[k % 6]
            if kind == 'anywhere':
                target = rng.uniform(lower, upper)
            else:
                target = np.clip(self.home + rng.uniform(-0.6, 0.6, len(self.joints)),
                                 lower, upper)
            goal = plan_joint_motion(self.home, target, self.joints, self.config.limits,
                                     velocity_scaling=1.0 if kind == 'fast' else 0.5)
            if kind == 'fast':  # the same path, faster
                peak = max(abs(v) / lim.velocity for p in goal.points
                           for v, lim in zip(p.velocities, limits))
                f = peak / FAST_FACTOR  # time scale
                goal = TrajectoryGoal(goal.joint_names, [
                    GoalPoint(round(p.time_from_start * f, 9), p.positions,
                              [v / f for v in p.velocities],
                              [a / f ** 2 for a in p.accelerations])
                    for p in goal.points])
            goals.append((kind, goal))
        return goals


def verdict_key(v: Verdict) -> tuple:
    """What parity compares: safe or not, and the first collision's pair (order-free)."""
    first = frozenset((v.collisions[0].link, v.collisions[0].other)) if v.collisions else None
    return v.safe, first


def _best(run, repeats: int = REPEATS) -> tuple[float, float]:
    """(CPU s, wall s) of the fastest of ``repeats`` calls of ``run``, after a warm-up.

    CPU time of this process is what is reported first: with other engineers' tests on the
    same two cores, wall time measures them; on an idle machine the two agree.
    """
    run()
    best = (float('inf'), float('inf'))
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        run()
        best = min(best, (time.process_time() - c0, time.perf_counter() - w0))
    return best


def _time_prediction(predictor: Predictor, goal: TrajectoryGoal,
                     start: dict) -> tuple[float, float]:
    return _best(lambda: predictor.predict(goal, start))


def _time_bare(world: PhysicsWorld, steps: int) -> tuple[float, float]:
    return _best(lambda: world.step_bare(steps))


def measure(robot: str = 'rdt_arm6', parity_goals: int = PARITY_GOALS, seed: int = SEED,
            decimation: int | None = None) -> dict:
    """Speed of a 10 s prediction against bare stepping, and verdict parity; see the module.

    ``decimation``: the predictor's physics decimation to measure (None: its default).
    """
    r = _Robot(robot)
    if decimation is not None:
        r.predictor_options['physics_decimation'] = decimation
    goal = r.ten_second_goal()
    _log(f'{robot}: timing a 10 s prediction ({REPEATS} runs, best)')
    with r.predictor() as predictor:
        verdict = predictor.predict(goal, r.start)
        steps = int(round(verdict.duration * r.physics_rate))
        predict_s = _time_prediction(predictor, goal, r.start)
        decimation = predictor.physics_decimation
        self_collision_pairs = len(predictor.ignored_link_pairs)
    with r.predictor(self_collision=False) as blind:
        blind_s = _time_prediction(blind, goal, r.start)
    with r.predictor(physics_decimation=1) as full:
        full_s = _time_prediction(full, goal, r.start)
        _log(f'{robot}: bare stepSimulation, {steps} steps at {r.physics_rate:.0f} Hz')
        bare_s = _time_bare(full.world, steps)  # self-collision on, its exemptions set
        _log(f'{robot}: parity over {parity_goals} seeded random goals (seed {seed})')
        with r.predictor() as fast:
            same, unsafe, kinds, mismatches = 0, 0, {}, []
            for k, (kind, g) in enumerate(r.random_goals(parity_goals, seed)):
                reference, candidate = full.predict(g, r.start), fast.predict(g, r.start)
                kinds[kind] = kinds.get(kind, 0) + 1
                unsafe += not reference.safe
                if verdict_key(reference) == verdict_key(candidate):
                    same += 1
                else:
                    mismatches.append({'goal': k, 'kind': kind,
                                       'reference': reference.summary.splitlines()[:1],
                                       'candidate': candidate.summary.splitlines()[:1]})
                if (k + 1) % 50 == 0:
                    _log(f'  {k + 1}/{parity_goals} goals, {same} agree, {unsafe} unsafe')
    result = {
        'robot': robot,
        'predict_10s_ms': predict_s[0] * 1000,
        'predict_bare_10s_ms': bare_s[0] * 1000,
        'predict_ratio_to_bare': predict_s[0] / bare_s[0],
        'predict_full_rate_10s_ms': full_s[0] * 1000,
        'predict_no_self_collision_10s_ms': blind_s[0] * 1000,
        'predict_self_collision_cost_ms': (predict_s[0] - blind_s[0]) * 1000,
        'predict_10s_wall_ms': predict_s[1] * 1000,
        'predict_bare_10s_wall_ms': bare_s[1] * 1000,
        'predict_physics_decimation': decimation,
        'predict_self_collision_ignored_pairs': self_collision_pairs,
        'predict_steps': steps,
        'predict_parity': same / parity_goals,
        'predict_parity_goals': parity_goals,
        'predict_parity_unsafe_share': unsafe / parity_goals,
        'predict_parity_goal_kinds': kinds,
        'predict_parity_mismatches': mismatches,
    }
    _log(f'{robot}: predict {result["predict_10s_ms"]:.0f} ms (full rate '
         f'{result["predict_full_rate_10s_ms"]:.0f} ms, without self-collision '
         f'{result["predict_no_self_collision_10s_ms"]:.0f} ms), bare '
         f'{result["predict_bare_10s_ms"]:.0f} ms; parity {result["predict_parity"]:.3f} '
         f'({parity_goals} goals, {unsafe} unsafe)')
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('robot', nargs='?', default='rdt_arm6')
    parser.add_argument('--goals', type=int, default=PARITY_GOALS)
    parser.add_argument('--seed', type=int, default=SEED)
    parser.add_argument('--decimation', type=int, default=None,
                        help="the predictor's physics decimation (default: its default)")
    args = parser.parse_args(argv)
    result = measure(args.robot, args.goals, args.seed, args.decimation)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
