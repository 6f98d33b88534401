"""Self-collision in predictions (core.self_collision + core.prediction), on two robots.

Nothing robot-specific is written here: robots come from their parameter files
(config/<robot>.yaml), the folding goals from sweeping each joint of the home pose towards its
URDF limits until two links that do not touch by design overlap.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from reverse_digital_twin.core.controller_config import controller_config
from reverse_digital_twin.core.motion import plan_joint_motion
from reverse_digital_twin.core.prediction import Predictor, Verdict
from reverse_digital_twin.core.self_collision import adjacent_link_pairs, rigid_groups
from reverse_digital_twin.robot_setup import load_robot

ROBOTS = ['rdt_arm6', 'panda']
#: A folding pose overlaps two links at least this much (m), so it is no graze.
FOLD_DEPTH = 0.005


@functools.lru_cache(maxsize=None)
def _setup(robot: str):
    return load_robot(robot)


@pytest.fixture(scope='module', params=ROBOTS)
def robot(request):
    s = _setup(request.param)
    model = s.model()
    config = controller_config(s.controller, model)
    with Predictor(model, str(s.urdf), s.scene(), float(s.sim.get('physics_rate', 1000.0)),
                   float(s.sim.get('update_rate', 100.0)), config,
                   initial_positions=s.initial_positions) as predictor:
        yield s, model, config, predictor


def _predict(robot, target: np.ndarray) -> Verdict:
    s, _, config, predictor = robot
    goal = plan_joint_motion(s.home, target, config.joints, config.limits)
    return predictor.predict(goal, dict(zip(config.joints, s.home.tolist())))


def _folding_targets(robot) -> list[np.ndarray]:
    """Per joint and direction, the first pose on the way from home to the limit in which two
    links not exempt from self-collision overlap by FOLD_DEPTH (none if the joint can't fold)."""
    s, _, config, predictor = robot
    world, joints, out = predictor.world, list(config.joints), []
    for k, joint in enumerate(joints):
        lim = config.limits[joint]
        for bound in (lim.lower, lim.upper):
            for fraction in np.linspace(0.1, 1.0, 10):
                q = s.home.copy()
                q[k] += (bound - q[k]) * fraction
                with world.preserved_state():
                    world.reset_joints(dict(zip(joints, q)))
                    pairs = world.link_pairs_within(0.0)
                if any(d <= -FOLD_DEPTH and frozenset((a, b)) not in predictor.ignored_link_pairs
                       for a, b, d in pairs):
                    out.append(q)
                    break
    return out


def test_adjacent_pairs_come_from_the_joints_and_fixed_joints_merge_links(robot):
    _, model, _, _ = robot
    adjacent = adjacent_link_pairs(model)
    groups = rigid_groups(model)
    for joint in model.joints:
        assert frozenset((joint.parent, joint.child)) in adjacent, joint.name
    merged = [j for j in model.joints if j.type == 'fixed']
    assert merged, 'both robots have fixed joints (flange, hand): the premise of this test'
    for fixed in merged:
        assert groups[fixed.parent] == groups[fixed.child]
        for joint in model.movable_joints:  # the neighbours of a rigid body are adjacent too
            if joint.child in groups[fixed.parent]:
                assert frozenset((joint.parent, fixed.child)) in adjacent, fixed.name
    assert not any(len(p) != 2 for p in adjacent)


def test_home_pose_is_free_of_self_collision_after_the_exemptions(robot):
    s, _, config, predictor = robot
    world = predictor.world
    with world.preserved_state():
        world.reset_joints(dict(zip(config.joints, s.home.tolist())))
        pairs = world.link_pairs_within(0.0)
    assert all(frozenset((a, b)) in predictor.ignored_link_pairs for a, b, _ in pairs)


def test_folding_the_arm_into_itself_is_refused_naming_both_links(robot):
    _, model, _, _ = robot
    targets = _folding_targets(robot)
    assert targets, 'no joint folds the arm into itself: the premise of this test'
    links = set(model.links)
    self_hits = 0
    for target in targets:
        v = _predict(robot, target)
        assert not v.safe, v.summary
        if any(c.other not in links for c in v.collisions):
            continue  # it hits the scene on the way (e.g. the Panda's table), also refused
        hit = next(c for c in v.collisions if c.other in links)
        line = next(r for r in v.reasons if r.startswith('collision:'))
        assert f'{hit.link} hits {hit.other}' in line, v.summary
        assert hit.link != hit.other
        assert frozenset((hit.link, hit.other)) not in adjacent_link_pairs(model)
        self_hits += 1
    assert self_hits >= 1


def test_a_normal_goal_has_no_false_self_collision(robot):
    s, _, config, _ = robot
    # a quarter of the way from home to the middle of each joint's range
    middle = np.array([(config.limits[j].lower + config.limits[j].upper) / 2
                       for j in config.joints])
    v = _predict(robot, s.home + 0.25 * (middle - s.home))
    assert v.safe, v.summary
    assert v.collisions == ()


def test_self_collision_off_sees_only_the_scene(robot):
    s, model, config, _ = robot
    target = _folding_targets(robot)[0]
    with Predictor(model, str(s.urdf), s.scene(), float(s.sim.get('physics_rate', 1000.0)),
                   float(s.sim.get('update_rate', 100.0)), config,
                   initial_positions=s.initial_positions, self_collision=False) as blind:
        goal = plan_joint_motion(s.home, target, config.joints, config.limits)
        v = blind.predict(goal, dict(zip(config.joints, s.home.tolist())))
    assert not any(c.other in model.links for c in v.collisions)
    assert blind.ignored_link_pairs == frozenset()


def test_self_collision_verdicts_are_deterministic(robot):
    target = _folding_targets(robot)[-1]
    a, b = _predict(robot, target), _predict(robot, target)
    assert a.reasons == b.reasons and a.collisions == b.collisions
    assert np.array_equal(a.positions, b.positions)
