"""Unit tests for core.planning: collision-free paths in the twin's world, timed by Ruckig.

Two robots: rdt_arm6 in config/scene_default.yaml and the Panda in config/scene_panda.yaml
(joints, home pose, URDF and scene from config/<robot>.yaml). Each has a start, a goal behind
its obstacle that the straight line from the start would hit, and a goal inside the obstacle:
for rdt_arm6 the poses config/scene_default.yaml names in its comments, for the Panda the same
kind of poses found for config/scene_panda.yaml (arm leant forward, turned towards the
obstacle). Outcomes are checked in the world itself, on dense samples of what the controller
will execute.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest

from reverse_digital_twin.core.controller_config import controller_config
from reverse_digital_twin.core.goal import ValidationRules, validate_goal
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.planning import REASONS, CollisionChecker, PlannedPath
from reverse_digital_twin.core.planning import PlanningError, plan_motion, plan_path
from reverse_digital_twin.core.planning import solve_free_ik, time_parameterize
from reverse_digital_twin.core.prediction import Predictor
from reverse_digital_twin.core.robot_model import JointLimits
from reverse_digital_twin.core.self_collision import adjacent_link_pairs
from reverse_digital_twin.core.trajectory import JointSample, Trajectory, TrajectoryPoint
from reverse_digital_twin.robot_setup import load_robot

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Case:
    robot: str
    start: tuple[float, ...] | None  # None: the robot's home pose
    around: tuple[float, ...]  # clear, but the straight line from start hits the obstacle
    inside: tuple[float, ...]  # in the obstacle


_PANDA_LEANING = (0.0, 0.3, 0.0, -1.9, 0.0, 2.2, 0.785)
CASES = {
    # config/scene_default.yaml: a shoulder_pan sweep from home to 1.57 drives the forearm
    # through the pillar; [0.5, -1.57, 1.57, -1.57, -1.57, 0] penetrates it by ~7 cm.
    'rdt_arm6': Case('rdt_arm6', None, (1.57, -1.57, 1.57, -1.57, -1.57, 0.0),
                     (0.5, -1.57, 1.57, -1.57, -1.57, 0.0)),
    # Leaning forward at the pillar's height, panda_joint1 0 -> 1.5 sweeps link5 through it.
    'panda': Case('panda', _PANDA_LEANING, (1.5, *_PANDA_LEANING[1:]),
                  (0.5, *_PANDA_LEANING[1:])),
}
ROBOTS = list(CASES)
#: rdt_arm6 folded back over the table's edge: clear, but behind a narrow passage that the
#: search does not get through in a short time (measured: not in 10,000 state checks).
ARM6_FOLDED = (-0.416, 2.979, 2.499, 2.203, -0.689, -0.045)
#: Dense check of a path: consecutive states at most this far apart (rad).
DENSE = 0.005


@dataclass
class Robot:
    name: str
    joints: list[str]
    start: np.ndarray
    around: np.ndarray
    inside: np.ndarray
    limits: dict[str, JointLimits]
    world: PhysicsWorld
    checker: CollisionChecker


@functools.lru_cache(maxsize=None)
def _robot(name: str) -> Robot:
    setup = load_robot(name)
    model = setup.model()
    world = PhysicsWorld(model, str(setup.urdf), setup.scene(),
                         initial_positions=setup.initial_positions)
    case = CASES[name]
    start = setup.home if case.start is None else np.array(case.start)
    return Robot(name, setup.joints, start, np.array(case.around), np.array(case.inside),
                 {j.name: j.limits for j in model.movable_joints}, world,
                 CollisionChecker(world, setup.joints))


@pytest.fixture(scope='module', params=ROBOTS)
def robot(request) -> Robot:
    return _robot(request.param)


@functools.lru_cache(maxsize=None)
def _around_path(name: str) -> PlannedPath:
    r = _robot(name)
    return plan_path(r.world, r.start, r.around, r.joints, seed=3, checker=r.checker)


def teardown_module() -> None:
    for name in ROBOTS:
        _robot(name).world.close()
    _robot.cache_clear()
    _around_path.cache_clear()


def dense_states(points: np.ndarray, step: float = DENSE) -> list[np.ndarray]:
    """States along a polyline, at most ``step`` apart."""
    out = [points[0]]
    for a, b in zip(points[:-1], points[1:]):
        n = max(1, math.ceil(np.linalg.norm(b - a) / step))
        out += [a + (b - a) * (k / n) for k in range(1, n + 1)]
    return out


def executed(goal, start: np.ndarray, dt: float = 0.005):
    """(times, positions, velocities, accelerations) as the controller interpolates the goal,
    picked up at rest at ``start`` at t = 0."""
    points = [TrajectoryPoint(p.time_from_start, np.array(p.positions), np.array(p.velocities),
                              np.array(p.accelerations)) for p in goal.points]
    traj = Trajectory(points)
    traj.start_from(0.0, JointSample.at_rest(start))
    times = np.arange(0.0, goal.points[-1].time_from_start + dt, dt)
    states = [traj.sample(t).state for t in times]
    return (times, np.array([s.positions for s in states]),
            np.array([s.velocities for s in states]), np.array([s.accelerations for s in states]))


def contacts(r: Robot, states) -> list[str]:
    """What touches what, over the states (margins 0)."""
    query = r.checker.contact_query()
    with r.world.preserved_state():
        found = [r.checker.violation(np.asarray(q), query) for q in states]
    return sorted({c.describe() for c in found if c is not None})


# --- around the obstacle -----------------------------------------------------------------------
def test_straight_line_hits_the_obstacle_but_the_plan_goes_around(robot):
    r = robot
    with r.world.preserved_state():
        hit = r.checker.segment_violation(r.start, r.around, DENSE, r.checker.contact_query())
        assert r.checker.contact(r.around) is None  # the goal itself is clear
    assert hit is not None and 'obstacle' in hit[1].other
    path = _around_path(r.name)
    assert path.searched and len(path.waypoints) >= 3
    assert np.array_equal(path.waypoints[0], r.start)
    assert np.array_equal(path.waypoints[-1], r.around)
    assert contacts(r, dense_states(path.waypoints)) == []
    # The margins hold along the path too, not only contact.
    query = r.checker.query(path.object_clearance, path.self_clearance)
    with r.world.preserved_state():
        assert all(r.checker.violation(q, query) is None
                   for q in dense_states(path.waypoints, path.resolution))
    lower = np.array([r.limits[j].lower for j in r.joints])
    upper = np.array([r.limits[j].upper for j in r.joints])
    assert np.all(path.waypoints >= lower) and np.all(path.waypoints <= upper)


def test_the_executed_motion_reaches_the_goal_without_contact(robot):
    """What the controller makes of the timed path (blended corners included)."""
    r = robot
    path = _around_path(r.name)
    goal = time_parameterize(path, r.limits, checker=r.checker)
    times, q, v, a = executed(goal, r.start)
    assert contacts(r, q) == []
    assert np.allclose(q[-1], r.around, atol=1e-9) and np.abs(v[-1]).max() < 1e-9
    assert goal.points[-1].positions == r.around.tolist()
    vlim = np.array([0.5 * r.limits[j].velocity for j in r.joints])
    assert np.all(np.abs(v).max(axis=0) <= vlim * 1.05)
    assert np.abs(a).max() <= 2.0 * 1.05
    rules = ValidationRules(tuple(r.joints), {j: r.limits[j] for j in r.joints})
    assert validate_goal(goal, rules, now=0.0) is None


def test_the_twin_predicts_the_planned_motion_safe(robot):
    """The gate move_to passes next: the twin's own prediction (physics, the controller's
    control law, contacts, limits) finds the motion around the obstacle safe."""
    r = robot
    setup = load_robot(r.name)
    model = r.world.model
    config = controller_config(setup.controller, model, str(setup.config))
    goal = time_parameterize(_around_path(r.name), r.limits, checker=r.checker)
    with Predictor(model, str(setup.urdf), r.world.scene, float(setup.sim['physics_rate']),
                   float(setup.sim['update_rate']), config,
                   initial_positions=setup.initial_positions) as predictor:
        verdict = predictor.predict(goal, dict(zip(r.joints, r.start)))
    assert verdict.safe, verdict.summary
    assert np.allclose(verdict.final_positions, r.around, atol=0.02)


def test_same_seed_same_path_and_motion(robot):
    r = robot
    again = plan_path(r.world, r.start, r.around, r.joints, seed=3, checker=r.checker)
    assert np.array_equal(again.waypoints, _around_path(r.name).waypoints)
    first = time_parameterize(again, r.limits, checker=r.checker)
    second = time_parameterize(_around_path(r.name), r.limits, checker=r.checker)
    assert first == second


def test_planning_leaves_the_world_as_it_was(robot):
    r = robot
    before = r.world.joint_positions(r.world.movable_joints)
    _around_path(r.name)
    plan_motion(r.world, r.start, r.start, r.joints, checker=r.checker)
    assert r.world.joint_positions(r.world.movable_joints) == before


# --- time parameterisation -----------------------------------------------------------------------
def test_timing_respects_velocity_acceleration_and_jerk_limits(robot):
    """Sampled finely, the samples are Ruckig's own states: jerk from their accelerations."""
    r = robot
    path = _around_path(r.name)
    jerk, accel, scaling, period = 5.0, 1.5, 0.3, 0.005
    goal = time_parameterize(path, r.limits, velocity_scaling=scaling, acceleration_limit=accel,
                             jerk_limit=jerk, sample_period=period, checker=r.checker)
    v = np.array([p.velocities for p in goal.points])
    a = np.array([p.accelerations for p in goal.points])
    vlim = np.array([scaling * r.limits[j].velocity for j in r.joints])
    assert np.all(np.abs(v) <= vlim * (1 + 1e-6))
    assert np.abs(a).max() <= accel * (1 + 1e-6)
    times = np.array([p.time_from_start for p in goal.points])
    assert times[0] == pytest.approx(period) and np.all(np.diff(times) > 0)
    assert np.max(np.abs(np.diff(a, axis=0)) / np.diff(times)[:, None]) <= jerk * (1 + 1e-6)


def test_without_a_checker_every_waypoint_is_passed_at_rest_on_the_checked_edges(robot):
    r = robot
    path = _around_path(r.name)
    goal = time_parameterize(path, r.limits, sample_period=0.02)
    points = path.waypoints

    def off_path(q: np.ndarray) -> float:
        best = math.inf
        for a, b in zip(points[:-1], points[1:]):
            s = np.clip(np.dot(q - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
            best = min(best, float(np.linalg.norm(a + s * (b - a) - q)))
        return best

    assert max(off_path(np.array(p.positions)) for p in goal.points) < 1e-6
    blended = time_parameterize(path, r.limits, sample_period=0.02, checker=r.checker)
    assert blended.points[-1].time_from_start <= goal.points[-1].time_from_start + 1e-9


def test_a_clear_straight_line_is_taken_as_it_is_in_plan_joint_motions_shape(robot):
    r = robot
    goal_q = r.start + np.array([0.05 if k % 2 else -0.05 for k in range(len(r.joints))])
    path = plan_path(r.world, r.start, goal_q, r.joints, checker=r.checker)
    assert not path.searched and len(path.waypoints) == 2
    goal = plan_motion(r.world, r.start, goal_q, r.joints, checker=r.checker)
    times = [p.time_from_start for p in goal.points]
    assert list(goal.joint_names) == r.joints
    assert times[0] == pytest.approx(0.1) and np.allclose(np.diff(times)[:-1], 0.1)
    assert times[-1] >= 0.5  # min_duration
    last = goal.points[-1]
    assert last.positions == goal_q.tolist()
    assert last.velocities == [0.0] * len(r.joints) == last.accelerations
    zero = plan_motion(r.world, r.start, r.start, r.joints, checker=r.checker)
    assert zero.points[-1].time_from_start == pytest.approx(0.5)
    assert all(p.positions == r.start.tolist() for p in zero.points)


# --- refusals, with the reason -------------------------------------------------------------------
def test_a_goal_in_collision_is_refused_naming_the_contact(robot):
    r = robot
    with pytest.raises(PlanningError, match='goal state is in collision.*obstacle') as info:
        plan_path(r.world, r.start, r.inside, r.joints, checker=r.checker)
    assert info.value.reason == 'goal_in_collision'
    with pytest.raises(PlanningError) as info:
        plan_path(r.world, r.inside, r.start, r.joints, checker=r.checker)
    assert info.value.reason == 'start_in_collision'


def test_an_unreachable_pose_is_refused(robot):
    r = robot
    base = np.asarray(r.world.scene.robot_position)
    with pytest.raises(PlanningError, match='unreachable') as info:
        solve_free_ik(r.world, r.world.tip_link, base + (0.0, 0.0, 5.0), None, r.joints,
                      r.start, attempts=2, checker=r.checker)
    assert info.value.reason == 'unreachable'


def test_a_pose_inside_the_obstacle_is_refused_as_in_collision(robot):
    r = robot
    pillar = next(o for o in r.world.scene.objects if o.name == 'obstacle')
    inside = np.asarray(pillar.position) + (0.0, 0.0, 0.25)  # within the 0.6 m high pillar
    with pytest.raises(PlanningError, match='obstacle') as info:
        solve_free_ik(r.world, r.world.tip_link, inside, None, r.joints, r.start, attempts=2,
                      checker=r.checker)
    assert info.value.reason == 'goal_in_collision'


def test_a_reachable_pose_gives_a_clear_goal(robot):
    r = robot
    with r.world.preserved_state():
        r.world.place_joints(r.joints, r.around.tolist())
        position, orientation = r.world.link_pose(r.world.tip_link)
    q = solve_free_ik(r.world, r.world.tip_link, position, orientation, r.joints, r.start,
                      checker=r.checker)
    with r.world.preserved_state():
        assert r.checker.violation(q) is None
        r.world.place_joints(r.joints, q.tolist())
        assert np.linalg.norm(r.world.link_pose(r.world.tip_link)[0] - position) < 2e-3


@pytest.mark.parametrize('which', ['goal', 'start'])
def test_positions_outside_the_limits_are_refused_naming_the_joint(robot, which):
    r = robot
    joint = r.joints[1]
    bad = r.start.copy()
    bad[1] = r.limits[joint].upper + 0.1
    start, goal = (r.start, bad) if which == 'goal' else (bad, r.start)
    with pytest.raises(PlanningError, match=rf'{which} position of joint {joint}') as info:
        plan_path(r.world, start, goal, r.joints, checker=r.checker)
    assert info.value.reason == f'{which}_out_of_limits'


def test_a_search_that_runs_out_of_time_says_so():
    r = _robot('rdt_arm6')
    with pytest.raises(PlanningError, match='within 0.10 s') as info:
        plan_path(r.world, r.start, np.array(ARM6_FOLDED), r.joints, timeout=0.1,
                  checker=r.checker)
    assert info.value.reason == 'timed_out'


def test_malformed_requests_are_value_errors(robot):
    r = robot
    assert issubclass(PlanningError, ValueError) and set(REASONS) >= {
        'goal_in_collision', 'start_in_collision', 'unreachable', 'timed_out'}
    with pytest.raises(ValueError, match='goal positions'):
        plan_path(r.world, r.start, r.start[:-1], r.joints, checker=r.checker)
    nan = r.start.copy()
    nan[2] = math.nan
    with pytest.raises(ValueError, match=r.joints[2]):
        plan_path(r.world, r.start, nan, r.joints, checker=r.checker)
    with pytest.raises(ValueError, match='velocity_scaling'):
        time_parameterize(_around_path(r.name), r.limits, velocity_scaling=1.5)


def test_an_end_closer_than_the_clearance_shrinks_the_margin_instead_of_refusing(robot):
    """A robot resting nearer to the table than the clearance may still move away from it."""
    r = robot
    wide = CollisionChecker(r.world, r.joints, clearance=0.3)
    with r.world.preserved_state():
        near: dict[str, float] = {}
        for c in wide.distances(r.start, 0.3):  # closest first
            near.setdefault(c.other, c.distance)
    assert 'table' in near  # the table top is within 0.3 m of an arm link
    goal_q = r.start + 0.05
    path = plan_path(r.world, r.start, goal_q, r.joints, checker=wide)
    assert path.object_clearance['table'] <= near['table'] < 0.3
    assert path.object_clearance['obstacle'] <= 0.3
    assert np.array_equal(path.waypoints[-1], goal_q)


# --- the checker ---------------------------------------------------------------------------------
def test_checked_pairs_come_from_the_model(robot):
    r = robot
    model = r.world.model
    adjacent = adjacent_link_pairs(model)
    assert r.checker.link_pairs and not any(frozenset(p) in adjacent
                                            for p in r.checker.link_pairs)
    assert model.root_link not in r.checker.moving_links
    assert set(r.checker.object_links) == {o.name for o in r.world.scene.objects}


def test_bounding_box_filter_agrees_with_measuring_every_pair(robot):
    """first_closer (boxes first) against query_distances (every pair), random states."""
    r = robot
    query = r.checker.default_query()
    limit = dict(zip(query.objects, query.object_distance))
    lims = [r.limits[j] for j in r.joints]
    rng = np.random.default_rng(7)
    with r.world.preserved_state():
        for _ in range(150):
            q = rng.uniform([max(lim.lower, -math.pi) for lim in lims],
                            [min(lim.upper, math.pi) for lim in lims])
            found = r.checker.violation(q, query)
            every = [d for a, b, d in r.world.query_distances(query, 0.05)
                     if d < limit.get(b, query.link_distance)]
            assert (found is None) == (not every)
