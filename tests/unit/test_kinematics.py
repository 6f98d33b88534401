"""core.kinematics: link poses from the URDF alone agree with PyBullet's, on both robots."""
from __future__ import annotations

import numpy as np
import pytest

from reverse_digital_twin.core.kinematics import Kinematics, tip_link
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.robot_model import parse_urdf
from reverse_digital_twin.robot_setup import load_robot

ROBOTS = ['rdt_arm6', 'panda']


def _same_rotation(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two unit quaternions (q and -q are the same rotation)."""
    return float(min(np.linalg.norm(a - b), np.linalg.norm(a + b)))


@pytest.fixture(scope='module', params=ROBOTS)
def robot(request):
    setup = load_robot(request.param)
    model, scene = setup.model(), setup.scene()
    world = PhysicsWorld(model, str(setup.urdf), scene)
    yield setup, model, scene, world
    world.close()


def _random_positions(model, rng) -> dict[str, float]:
    out = {}
    for joint in model.movable_joints:
        lower, upper = joint.limits.lower, joint.limits.upper
        if not (np.isfinite(lower) and np.isfinite(upper)):
            lower, upper = -np.pi, np.pi
        out[joint.name] = float(rng.uniform(lower, upper))
    return out


def test_every_link_pose_matches_pybullet_at_random_configurations(robot):
    setup, model, scene, world = robot
    kinematics = Kinematics.in_scene(model, scene)
    rng = np.random.default_rng(7)
    for _ in range(5):
        positions = _random_positions(model, rng)
        world.reset_joints(positions)
        ours = kinematics.link_poses(positions)
        assert set(ours) == set(model.links)
        for link in world.link_index:
            position, rotation = world.link_pose(link)
            assert np.allclose(ours[link][0], position, atol=1e-6), (link, positions)
            assert _same_rotation(ours[link][1], rotation) < 1e-6, (link, positions)


def test_a_path_computed_at_once_equals_the_pose_of_each_sample(robot):
    setup, model, scene, world = robot
    kinematics = Kinematics.in_scene(model, scene)
    rng = np.random.default_rng(3)
    joints = setup.joints  # the controller's joints; the others (fingers) held
    held = {j.name: 0.01 for j in model.movable_joints if j.name not in joints}
    samples = [_random_positions(model, rng) for _ in range(20)]
    table = np.array([[s[j] for j in joints] for s in samples])
    tip = kinematics.tip_link
    path = kinematics.link_path(tip, joints, table, held)
    assert path.shape == (20, 3)
    for row, sample in zip(path, samples):
        expected = kinematics.link_pose(tip, {**{j: sample[j] for j in joints}, **held})[0]
        assert np.allclose(row, expected, atol=1e-9)
        world.reset_joints({**{j: sample[j] for j in joints}, **held})
        assert np.allclose(row, world.link_pose(tip)[0], atol=1e-6)


def test_the_tip_link_is_found_from_the_model_and_physics_asks_the_same(robot):
    setup, model, scene, world = robot
    tip = tip_link(model)
    assert world.tip_link == tip
    assert tip in model.links and tip != model.root_link
    # the tip is below every movable joint of the arm (the controller's joints)
    parents = {j.child: j for j in model.joints}
    above, link = set(), tip
    while link in parents:
        above.add(parents[link].name)
        link = parents[link].parent
    assert set(setup.joints) <= above


def test_the_base_pose_of_the_scene_moves_every_link():
    model = parse_urdf(
        '<robot name="r"><link name="a"/><link name="b"/>'
        '<joint name="j" type="revolute"><parent link="a"/><child link="b"/>'
        '<origin xyz="1 0 0"/><axis xyz="0 0 1"/>'
        '<limit lower="-3" upper="3" velocity="1" effort="1"/></joint></robot>')
    kinematics = Kinematics(model, (0.0, 0.0, 2.0), (0.0, 0.0, np.pi / 2))
    position, _ = kinematics.link_pose('b', {'j': 0.0})
    assert np.allclose(position, [0.0, 1.0, 2.0])  # x of the base points along world y
    assert kinematics.tip_link == 'b'
    with pytest.raises(ValueError, match="link 'c' is not a link"):
        kinematics.link_pose('c', {})
    with pytest.raises(ValueError, match='not movable joints'):
        kinematics.link_path('b', ['nope'], np.zeros((1, 1)))
