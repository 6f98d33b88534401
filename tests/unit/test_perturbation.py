"""Unit tests for core.perturbation and the perturbed dynamics of PhysicsWorld (no ROS).

The stand-in robot is the twin's own simulation with a payload, joint damping and friction,
sensor offsets and noise, and command latency. Physics checks run on both robots (rdt_arm6
and the Franka Panda from pybullet_data), in the pose and with the files their config files
name; joint and link names always come from the loaded RobotModel / PhysicsWorld.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from reverse_digital_twin.core import paths
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.perturbation import CommandDelay, Perturbation, SensorModel
from reverse_digital_twin.core.physics import MotorSettings, PhysicsWorld
from reverse_digital_twin.core.robot_model import RobotModel, joint_transform, load_robot_model
from reverse_digital_twin.core.scene import Scene
from reverse_digital_twin.core.stand_in_dynamics import StandInDynamics

CONFIGS = ['config/rdt_arm6.yaml', 'config/panda.yaml']
RATE = 1000.0  # Hz
PAYLOAD = 5.0  # kg
NO_GRAVITY = Scene(gravity=(0.0, 0.0, 0.0))


@functools.lru_cache(maxsize=None)
def _sim_parameters(config: str) -> dict:
    return yaml.safe_load(paths.resolve(config).read_text())['/**/pybullet_sim'][
        'ros__parameters']


@functools.lru_cache(maxsize=None)
def _model(urdf: str) -> RobotModel:
    return load_robot_model(urdf)


class Robot:
    """A robot from its config file; worlds are made without scene objects and closed after."""

    def __init__(self, config: str) -> None:
        params = _sim_parameters(config)
        self.urdf = str(paths.resolve(params['robot_description_file']))
        self.model = _model(self.urdf)
        self.joints = [j.name for j in self.model.movable_joints]
        self.home = {j: float(params['initial_positions'].get(j, 0.0)) for j in self.joints}
        self._worlds: list[PhysicsWorld] = []

    def world(self, scene: Scene | None = None, **kwargs) -> PhysicsWorld:
        kwargs.setdefault('initial_positions', self.home)
        world = PhysicsWorld(self.model, self.urdf, scene, physics_rate=RATE, **kwargs)
        self._worlds.append(world)
        return world

    def close(self) -> None:
        for world in self._worlds:
            world.close()

    def arm_joints(self, tip: str) -> list[str]:
        """Movable joints between the root and ``tip`` (no gripper fingers), root first."""
        by_child = {j.child: j for j in self.model.joints}
        chain, link = [], tip
        while link in by_child:
            chain.append(by_child[link])
            link = by_child[link].parent
        return [j.name for j in reversed(chain) if j.movable]

    def toward_far_limit(self, joint: str) -> float:
        """+1 or -1: the direction from home with more room to the position limit."""
        lim, q = self.model.joint(joint).limits, self.home[joint]
        return 1.0 if lim.upper - q >= q - lim.lower else -1.0


@pytest.fixture(params=CONFIGS, ids=lambda c: Path(c).stem)
def robot(request):
    r = Robot(request.param)
    try:
        yield r
    finally:
        r.close()


def _q(world: PhysicsWorld, joints: list[str]) -> np.ndarray:
    return world.read_state(joints).positions


# --- payload ---------------------------------------------------------------------------------

def test_default_payload_link_is_the_tip_of_the_arm(robot):
    world = robot.world()
    tip = world.tip_link
    assert tip != robot.model.root_link
    arm = robot.arm_joints(tip)
    # every movable joint is on the way to the tip or after it (a gripper's fingers)
    subtree, grew = {tip}, True
    while grew:
        grew = False
        for j in robot.model.joints:
            if j.parent in subtree and j.child not in subtree:
                subtree.add(j.child)
                grew = True
    after = [j.name for j in robot.model.movable_joints if j.parent in subtree]
    assert sorted(arm + after) == sorted(robot.joints)
    assert len(arm) >= 6


def test_payload_sets_mass_and_zero_restores_the_link_exactly(robot):
    world = robot.world()
    c, index = world.client, world.link_index[world.tip_link]
    before = c.getDynamicsInfo(world.robot_id, index)
    StandInDynamics.of(world).set_payload(PAYLOAD)
    loaded = c.getDynamicsInfo(world.robot_id, index)
    assert loaded[0] == pytest.approx(before[0] + PAYLOAD)
    assert loaded[2] == before[2], 'a point mass at the centre of mass keeps the inertia'
    assert StandInDynamics.of(world).payload() == PAYLOAD
    StandInDynamics.of(world).set_payload(2.0)  # sets, does not add
    assert c.getDynamicsInfo(world.robot_id, index)[0] == pytest.approx(before[0] + 2.0)
    StandInDynamics.of(world).set_payload(0)
    assert c.getDynamicsInfo(world.robot_id, index) == before
    assert StandInDynamics.of(world).payload() == 0.0


def _link_frames(model: RobotModel, q: dict[str, float]) -> dict[str, tuple]:
    """World (position, rotation matrix) of every link, by the model's own kinematics."""
    frames = {model.root_link: (np.zeros(3), np.eye(3))}
    while len(frames) < len(model.links):
        for j in model.joints:
            if j.parent in frames and j.child not in frames:
                t, quaternion = joint_transform(j, q.get(j.name, 0.0))
                p, r = frames[j.parent]
                x, y, z, w = quaternion
                rotation = np.array([
                    [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
                frames[j.child] = (p + r @ t, r @ rotation)
    return frames


def test_payload_loads_the_joints_like_a_point_mass_at_the_tip(robot):
    """Gravity torques grow by those of the payload's weight at the tip link's centre of mass."""
    world = robot.world()
    c, body = world.client, world.robot_id
    before = world.gravity_torques()
    StandInDynamics.of(world).set_payload(PAYLOAD)
    after = world.gravity_torques()
    point = np.array(c.getLinkState(body, world.link_index[world.tip_link],
                                    computeForwardKinematics=True)[0])
    force = PAYLOAD * np.array(world.scene.gravity)
    frames = _link_frames(robot.model, dict(zip(robot.joints, _q(world, robot.joints))))
    arm = robot.arm_joints(world.tip_link)
    for joint in robot.model.movable_joints:
        origin, rotation = frames[joint.child]  # the joint frame is its child link's frame
        axis = rotation @ np.array(joint.axis) / np.linalg.norm(joint.axis)
        if joint.name not in arm:
            expected = 0.0
        elif joint.type == 'prismatic':
            expected = -axis @ force
        else:
            expected = -axis @ np.cross(point - origin, force)
        assert after[joint.name] - before[joint.name] == pytest.approx(expected, abs=1e-6), \
            joint.name
    assert max(abs(after[n] - before[n]) for n in arm) > 10.0, 'the pose must load the arm'


def test_gravity_torques_with_payload_match_a_world_built_heavier(robot):
    """PyBullet never updates its inverse-dynamics model; set_payload makes up for it."""
    world = robot.world()
    world.gravity_torques()  # PyBullet builds its model now, without the payload
    StandInDynamics.of(world).set_payload(PAYLOAD)
    reference = robot.world()
    index = reference.link_index[reference.tip_link]
    info = reference.client.getDynamicsInfo(reference.robot_id, index)
    reference.client.changeDynamics(reference.robot_id, index, mass=info[0] + PAYLOAD,
                                    localInertiaDiagonal=info[2])
    expected = reference.gravity_torques()  # PyBullet's model built with the payload
    for name, torque in world.gravity_torques().items():
        assert torque == pytest.approx(expected[name], abs=1e-9), name


def test_payload_makes_a_position_controlled_joint_track_worse(robot):
    """Lifting the most loaded joint at the effort limits: the loaded arm lags behind."""
    probe = robot.world()
    before = probe.gravity_torques()
    StandInDynamics.of(probe).set_payload(PAYLOAD)
    loaded = probe.gravity_torques()
    joint = max(robot.joints, key=lambda n: abs(loaded[n] - before[n]))
    up = math.copysign(0.5, loaded[joint])  # holding torque's direction lifts the payload
    progress = {}
    for mass in (0.0, PAYLOAD):
        world = robot.world()
        StandInDynamics.of(world).set_payload(mass)
        world.step(200)
        start = _q(world, [joint])[0]
        world.apply_command([joint], positions=[robot.home[joint] + up])
        world.step(100)
        progress[mass] = (_q(world, [joint])[0] - start) / up
        world.step(1400)
        assert abs(_q(world, [joint])[0] - (robot.home[joint] + up)) < 0.01, \
            f'{mass} kg: {joint} must still reach the target'
    assert progress[0.0] > 0.1
    assert progress[PAYLOAD] < progress[0.0] - 0.06, progress


def test_payload_beyond_the_effort_limits_sags_and_below_them_holds(robot):
    """The largest payload the pose can hold follows from the URDF effort limits."""
    probe = robot.world()
    before = probe.gravity_torques()
    StandInDynamics.of(probe).set_payload(1.0)
    per_kg = {n: t - before[n] for n, t in probe.gravity_torques().items()}
    capacity = min((robot.model.joint(n).limits.effort - math.copysign(1.0, g) * before[n])
                   / abs(g) for n, g in per_kg.items() if abs(g) > 1e-6)
    sag = {}
    for fraction in (0.9, 1.25):
        world = robot.world()
        start = _q(world, robot.joints)
        StandInDynamics.of(world).set_payload(fraction * capacity)
        world.step(500)
        sag[fraction] = float(np.max(np.abs(_q(world, robot.joints) - start)))
    assert sag[0.9] < 1e-3, (capacity, sag)
    assert sag[1.25] > 0.02, (capacity, sag)


def test_gravity_compensation_includes_the_payload(robot):
    world = robot.world(motors=MotorSettings(gravity_compensation=True))
    StandInDynamics.of(world).set_payload(PAYLOAD)
    start = _q(world, robot.joints)
    world.apply_command(robot.joints, efforts=[0.0] * len(robot.joints))
    world.step(300)
    assert np.max(np.abs(_q(world, robot.joints) - start)) < 1e-3


@pytest.mark.parametrize('mass', [-1.0, math.nan, math.inf, 'heavy'])
def test_bad_payload_mass_raises_config_error(robot, mass):
    world = robot.world()
    with pytest.raises(ConfigError, match='payload mass'):
        StandInDynamics.of(world).set_payload(mass)


def test_unknown_payload_link_raises_config_error_listing_links(robot):
    world = robot.world()
    with pytest.raises(ConfigError, match='no_such_link') as info:
        StandInDynamics.of(world).set_payload(1.0, 'no_such_link')
    assert world.tip_link in str(info.value)


# --- damping and friction ------------------------------------------------------------------

def _free_motion(robot: Robot, joint: str, effort: float, friction: float = 0.0,
                 damping: float | None = None) -> float:
    """Displacement (0.3 s) of a joint driven by a constant effort, the others held, no gravity."""
    with PhysicsWorld(robot.model, robot.urdf, NO_GRAVITY, physics_rate=RATE,
                      initial_positions=robot.home) as world:
        StandInDynamics.of(world).set_joint_friction(joint, friction)
        if damping is not None:
            world.set_joint_damping(joint, damping)
        start = _q(world, [joint])[0]
        world.apply_command([joint], efforts=[effort])
        world.step(300)
        return float(_q(world, [joint])[0] - start)


def test_friction_below_breakaway_sticks_and_above_it_slides_with_the_net_effort(robot):
    tip = robot.world().tip_link
    for joint in robot.arm_joints(tip):
        effort = 0.05 * robot.model.joint(joint).limits.effort * robot.toward_far_limit(joint)
        free = _free_motion(robot, joint, effort)
        assert abs(free) > 0.02, f'{joint}: the premise needs visible free motion'
        half = _free_motion(robot, joint, effort, friction=abs(effort) / 2)
        stuck = _free_motion(robot, joint, effort, friction=2 * abs(effort))
        assert half / free == pytest.approx(0.5, abs=0.05), joint
        assert abs(stuck) < 1e-4, joint
    joint = robot.joints[0]
    effort = -0.05 * robot.model.joint(joint).limits.effort * robot.toward_far_limit(joint)
    backwards = _free_motion(robot, joint, effort, friction=abs(effort) / 2)
    assert backwards / _free_motion(robot, joint, effort) == pytest.approx(0.5, abs=0.05)


def test_damping_slows_free_motion_and_the_urdf_value_changes_nothing(robot):
    world = robot.world()
    joint = robot.joints[0]
    urdf_damping = world.client.getJointInfo(world.robot_id, world.joint_index[joint])[6]
    effort = 0.05 * robot.model.joint(joint).limits.effort * robot.toward_far_limit(joint)
    free = _free_motion(robot, joint, effort)
    damped = _free_motion(robot, joint, effort, damping=abs(effort) / 0.1)  # to 0.1 rad/s
    assert 0.0 < damped / free < 0.5
    assert _free_motion(robot, joint, effort, damping=urdf_damping) == free


def test_position_control_overcomes_friction_and_works_harder(robot):
    joint = robot.joints[0]
    limit = robot.model.joint(joint).limits.effort
    target = robot.home[joint] + 0.3 * robot.toward_far_limit(joint)
    effort = {}
    for friction in (0.0, 0.2 * limit):
        world = robot.world(NO_GRAVITY)
        StandInDynamics.of(world).set_joint_friction(joint, friction)
        world.apply_command([joint], positions=[target])
        cruising = []
        for _ in range(1500):
            world.step()
            state = world.read_state([joint])
            if abs(state.velocities[0]) > 0.9 * robot.model.joint(joint).limits.velocity:
                cruising.append(abs(state.efforts[0]))
        assert abs(state.positions[0] - target) < 1e-3, friction
        assert abs(state.velocities[0]) < 1e-2, friction
        effort[friction] = np.median(cruising)
    assert effort[0.2 * limit] - effort[0.0] == pytest.approx(0.2 * limit, rel=0.1), effort


def _scripted_run(robot: Robot, world: PhysicsWorld) -> list:
    """Full joint states after 0.3 s of position commands and one effort command."""
    first, others = robot.joints[0], robot.joints[1:]
    targets = [robot.home[n] + 0.05 * robot.toward_far_limit(n) for n in others]
    world.apply_command(others, positions=targets)
    world.apply_command([first], efforts=[0.02 * robot.model.joint(first).limits.effort])
    world.step(300)
    return world.client.getJointStates(world.robot_id,
                                       [world.joint_index[n] for n in robot.joints])


def test_without_friction_and_payload_the_world_steps_bit_identically(robot):
    plain = _scripted_run(robot, robot.world())
    touched = robot.world()
    StandInDynamics.of(touched).set_payload(0.0)
    for joint in robot.joints:
        StandInDynamics.of(touched).set_joint_friction(joint, 1.0)
        StandInDynamics.of(touched).set_joint_friction(joint, 0.0)
    assert _scripted_run(robot, touched) == plain
    restored = robot.world()
    StandInDynamics.of(restored).set_payload(PAYLOAD)
    StandInDynamics.of(restored).set_payload(0.0)
    assert _scripted_run(robot, restored) == plain


@pytest.mark.parametrize('method', ['set_joint_friction', 'set_joint_damping'])
def test_bad_joint_settings_raise_config_error(robot, method):
    world = robot.world()
    owner = StandInDynamics.of(world) if method == 'set_joint_friction' else world
    with pytest.raises(ConfigError, match='no_such_joint') as info:
        getattr(owner, method)('no_such_joint', 1.0)
    assert robot.joints[0] in str(info.value)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ConfigError, match=robot.joints[0]):
            getattr(owner, method)(robot.joints[0], bad)


# --- Perturbation: parameters and application --------------------------------------------------

def test_from_parameters_parses_flat_keys(robot):
    j = robot.joints
    params = {
        'perturbation.payload_mass': 2.5, 'perturbation.payload_link': '',
        'perturbation.joint_damping.' + j[2]: 1.5, 'perturbation.joint_friction.' + j[1]: 0.5,
        'perturbation.joint_offsets.' + j[0]: -0.01, 'perturbation.joint_offsets.' + j[1]: 0.02,
        'perturbation.command_latency': 0.02, 'perturbation.position_noise': 1e-4,
        'perturbation.velocity_noise': 1e-3, 'perturbation.seed': 3,
        'update_rate': 100.0, 'initial_positions.' + j[0]: 0.0}  # not ours: ignored
    p = Perturbation.from_parameters(params, joints=j)
    assert p == Perturbation(payload_mass=2.5, joint_damping={j[2]: 1.5},
                             joint_friction={j[1]: 0.5}, joint_offsets={j[0]: -0.01, j[1]: 0.02},
                             command_latency=0.02, position_noise=1e-4, velocity_noise=1e-3,
                             seed=3)
    assert Perturbation.from_parameters({}) == Perturbation()
    nested = Perturbation.from_parameters({'stand_in.joint_offsets': {j[0]: 0.1}},
                                          prefix='stand_in.')
    assert dict(nested.joint_offsets) == {j[0]: 0.1}


@pytest.mark.parametrize('key, value', [
    ('perturbation.payload_mas', 1.0),
    ('perturbation.joint_offsets.no_such_joint', 0.01),
    ('perturbation.joint_friction.no_such_joint', 0.01),
    ('perturbation.command_latency', -0.01),
    ('perturbation.payload_mass', -1.0),
    ('perturbation.position_noise', math.nan),
    ('perturbation.velocity_noise', 'loud'),
    ('perturbation.seed', -1),
    ('perturbation.joint_offsets', 0.01),
    ('perturbation.payload_mass.extra', 1.0),
])
def test_from_parameters_errors_name_the_key(robot, key, value):
    with pytest.raises(ConfigError) as info:
        Perturbation.from_parameters({key: value}, joints=robot.joints)
    assert key in str(info.value)


def test_bad_joint_values_name_the_key(robot):
    joint = robot.joints[0]
    for field, value in (('joint_damping', -0.1), ('joint_friction', math.inf),
                         ('joint_offsets', math.nan)):
        with pytest.raises(ConfigError, match=f'perturbation.{field}.{joint}'):
            Perturbation(**{field: {joint: value}}).validate(robot.joints)
    Perturbation(joint_offsets={joint: -0.1}).validate(robot.joints)  # offsets may be negative
    with pytest.raises(ConfigError, match='perturbation.joint_offsets.no_such_joint'):
        Perturbation(joint_offsets={'no_such_joint': 0.1}).validate(robot.joints)


def test_perturbation_is_frozen():
    p = Perturbation(joint_offsets={'a': 0.1})
    with pytest.raises(Exception):
        p.payload_mass = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.joint_offsets['a'] = 0.2  # type: ignore[index]


def test_all_zero_perturbation_leaves_the_world_bit_identical(robot):
    """As the stand-in node declares it: every joint listed, all values 0."""
    zeros = {j: 0.0 for j in robot.joints}
    plain = _scripted_run(robot, robot.world())
    world = robot.world()
    Perturbation(joint_damping=zeros, joint_friction=zeros, joint_offsets=zeros).apply_to(world)
    assert _scripted_run(robot, world) == plain


def test_apply_to_again_sets_rather_than_accumulates(robot):
    joint = robot.joints[0]
    world = robot.world()
    urdf = world.joint_damping(joint, urdf=True)
    assert world.joint_damping(joint) == urdf
    for _ in range(2):  # a live change re-applies
        Perturbation(payload_mass=2.0, joint_damping={joint: 1.5}).apply_to(world)
    assert StandInDynamics.of(world).payload() == 2.0
    assert world.joint_damping(joint) == urdf + 1.5
    Perturbation(joint_damping={joint: 0.0}).apply_to(world)
    assert StandInDynamics.of(world).payload() == 0.0
    assert world.joint_damping(joint) == urdf


def test_apply_to_sets_payload_damping_and_friction(robot):
    joint = robot.joints[0]
    effort = 0.05 * robot.model.joint(joint).limits.effort * robot.toward_far_limit(joint)
    world = robot.world(NO_GRAVITY)
    Perturbation(payload_mass=1.5, joint_friction={joint: 2 * abs(effort)},
                 joint_damping={joint: 3.0}).apply_to(world)
    assert StandInDynamics.of(world).payload(world.tip_link) == 1.5
    start = _q(world, [joint])[0]
    world.apply_command([joint], efforts=[effort])
    world.step(200)
    assert abs(_q(world, [joint])[0] - start) < 1e-4  # friction holds it
    with pytest.raises(ConfigError, match='perturbation.payload_link'):
        Perturbation(payload_mass=1.0, payload_link='no_such_link').apply_to(world)
    with pytest.raises(ConfigError, match='perturbation.joint_damping.no_such_joint'):
        Perturbation(joint_damping={'no_such_joint': 1.0}).apply_to(world)


# --- SensorModel ---------------------------------------------------------------------------------

def test_offsets_add_exactly(robot):
    offsets = {j: 0.001 * (k + 1) * (-1) ** k for k, j in enumerate(robot.joints)}
    sensor = SensorModel(Perturbation(joint_offsets=offsets), robot.joints)
    q = np.linspace(-1.0, 1.0, len(robot.joints))
    v = np.linspace(0.5, -0.5, len(robot.joints))
    measured_q, measured_v = sensor.measure(q, v)
    assert np.array_equal(measured_q, q + np.array([offsets[j] for j in robot.joints]))
    assert np.array_equal(measured_v, v)
    assert np.array_equal(q, np.linspace(-1.0, 1.0, len(robot.joints))), 'input untouched'


def test_offset_shows_as_constant_difference_between_measured_and_commanded(robot):
    """The stand-in applies commands to the true joints; only the measurement is offset."""
    joint = robot.joints[0]
    world = robot.world()
    sensor = SensorModel(Perturbation(joint_offsets={joint: 0.01}), robot.joints)
    target = robot.home[joint] + 0.2 * robot.toward_far_limit(joint)
    world.apply_command([joint], positions=[target])
    world.step(1000)
    state = world.read_state(robot.joints)
    measured, _ = sensor.measure(state.positions, state.velocities)
    assert measured[0] - target == pytest.approx(0.01, abs=1e-4)


def test_noise_has_the_configured_std_and_zero_mean(robot):
    n, samples = len(robot.joints), 5000
    sensor = SensorModel(Perturbation(position_noise=0.01, velocity_noise=0.05, seed=1),
                         robot.joints)
    draws = [sensor.measure(np.zeros(n), np.ones(n)) for _ in range(samples)]
    q = np.array([d[0] for d in draws])
    v = np.array([d[1] for d in draws]) - 1.0
    for values, std in ((q, 0.01), (v, 0.05)):
        assert np.all(np.abs(values.std(axis=0) / std - 1.0) < 0.2)
        assert np.all(np.abs(values.mean(axis=0)) < 4 * std / math.sqrt(samples))


def test_same_seed_same_noise_other_seed_other_noise(robot):
    n = len(robot.joints)

    def sequence(seed: int) -> np.ndarray:
        sensor = SensorModel(Perturbation(position_noise=0.01, velocity_noise=0.02, seed=seed),
                             robot.joints)
        return np.array([np.concatenate(sensor.measure(np.zeros(n), np.zeros(n)))
                         for _ in range(20)])

    assert np.array_equal(sequence(7), sequence(7))
    assert not np.array_equal(sequence(7), sequence(8))


def test_sensor_checks_sizes_and_joints(robot):
    sensor = SensorModel(Perturbation(), robot.joints)
    with pytest.raises(ValueError):
        sensor.measure(np.zeros(len(robot.joints) + 1), np.zeros(len(robot.joints)))
    with pytest.raises(ConfigError, match='no_such_joint'):
        SensorModel(Perturbation(joint_offsets={'no_such_joint': 0.1}), robot.joints)


# --- CommandDelay --------------------------------------------------------------------------------

def test_command_becomes_due_after_the_latency():
    delay = CommandDelay(0.05)
    delay.push(1.0, 'a')
    assert delay.pop_due(1.04) is None
    assert delay.pop_due(1.05) == 'a'
    assert delay.pop_due(1.06) is None
    assert len(delay) == 0


def test_several_due_give_the_newest_and_keep_the_rest():
    delay = CommandDelay(0.05)
    for t, command in ((1.0, 'a'), (1.01, 'b'), (1.02, 'c'), (1.1, 'd')):
        delay.push(t, command)
    assert delay.pop_due(1.08) == 'c'
    assert len(delay) == 1
    assert delay.pop_due(1.149) is None
    assert delay.pop_due(1.15) == 'd'


def test_zero_latency_is_immediately_due():
    delay = CommandDelay(0.0)
    delay.push(2.0, {'positions': [0.1]})
    assert delay.pop_due(2.0) == {'positions': [0.1]}


def test_late_arrival_is_ordered_by_arrival_time():
    delay = CommandDelay(0.01)
    delay.push(1.02, 'new')
    delay.push(1.0, 'old')
    assert delay.pop_due(1.015) == 'old'
    assert delay.pop_due(1.03) == 'new'


@pytest.mark.parametrize('latency', [-0.01, math.nan, math.inf])
def test_bad_latency_raises_config_error(latency):
    with pytest.raises(ConfigError):
        CommandDelay(latency)
