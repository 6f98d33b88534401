"""Unit tests for core.physics.PhysicsWorld (headless PyBullet, no ROS).

Every behaviour that applies to any arm is checked on two robots: rdt_arm6 in
config/scene_default.yaml and the Franka Panda from pybullet_data in config/scene_panda.yaml.
Joint names and limits always come from the loaded RobotModel; the only hard-coded joint
values are each robot's home pose (in model joint order) and the rdt_arm6 obstacle pose that
config/scene_default.yaml names in its comments.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest

from reverse_digital_twin.core import paths
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.physics import MotorSettings, PhysicsWorld
from reverse_digital_twin.core.robot_model import RobotModel, load_robot_model
from reverse_digital_twin.core.scene import Scene, load_scene

RATE = 1000.0  # Hz, the physics rate every test runs at unless it says otherwise
VELOCITY_MARGIN = 1.05  # measured |v| may exceed the URDF limit by 5 % at most


@dataclass(frozen=True)
class RobotCase:
    id: str
    urdf: str  # name for paths.resolve
    scene: str  # name for paths.resolve
    home: tuple[float, ...]  # one value per movable joint, in RobotModel order


RDT_ARM6 = RobotCase(
    'rdt_arm6', 'urdf/rdt_arm6.urdf', 'config/scene_default.yaml',
    # home from config/scene_default.yaml: clear of the obstacle
    (0.0, -1.57, 1.57, -1.57, -1.57, 0.0))
PANDA = RobotCase(
    'panda', 'pybullet_data:franka_panda/panda.urdf', 'config/scene_panda.yaml',
    # the usual Panda "ready" pose, fingers half open
    (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.02, 0.02))
CASES = [RDT_ARM6, PANDA]

# config/scene_default.yaml: "[0.5, -1.57, 1.57, -1.57, -1.57, 0] penetrates it by ~7 cm"
RDT_ARM6_OBSTACLE_POSE = (0.5, -1.57, 1.57, -1.57, -1.57, 0.0)


@functools.lru_cache(maxsize=None)
def _model(urdf: str) -> RobotModel:
    return load_robot_model(paths.resolve(urdf))


@functools.lru_cache(maxsize=None)
def _scene(scene: str) -> Scene:
    return load_scene(paths.resolve(scene))


class Robot:
    """One robot case: its model, scene, home pose, and the worlds a test makes (closed after)."""

    def __init__(self, case: RobotCase) -> None:
        self.case = case
        self.urdf = str(paths.resolve(case.urdf))
        self.model = _model(case.urdf)
        self.scene = _scene(case.scene)
        self.joints = [j.name for j in self.model.movable_joints]
        self.limits = {j.name: j.limits for j in self.model.movable_joints}
        assert len(case.home) == len(self.joints), 'home pose must cover every movable joint'
        self.home = dict(zip(self.joints, case.home))
        self.home_array = np.array(case.home, dtype=float)
        self._worlds: list[PhysicsWorld] = []

    def world(self, scene: Scene | None | str = 'default', **kwargs) -> PhysicsWorld:
        kwargs.setdefault('initial_positions', self.home)
        kwargs.setdefault('physics_rate', RATE)
        world = PhysicsWorld(self.model, self.urdf, self.scene if scene == 'default' else scene,
                             **kwargs)
        self._worlds.append(world)
        return world

    def close(self) -> None:
        for world in self._worlds:
            world.close()

    def far_limit(self, name: str) -> float:
        """The position limit of a joint farthest from home (the lower one on a tie)."""
        lim, q = self.limits[name], self.home[name]
        return lim.lower if q - lim.lower >= lim.upper - q else lim.upper


@pytest.fixture(params=CASES, ids=lambda c: c.id)
def robot(request):
    r = Robot(request.param)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def arm6():
    r = Robot(RDT_ARM6)
    try:
        yield r
    finally:
        r.close()


def _positions(world: PhysicsWorld, joints: list[str]) -> np.ndarray:
    return world.read_state(joints).positions


def _assert_finite(world: PhysicsWorld, joints: list[str]) -> None:
    state = world.read_state(joints)
    for label in ('positions', 'velocities', 'efforts'):
        assert np.all(np.isfinite(getattr(state, label))), f'{label} not finite: {state}'


# --- 1. velocity limits ---------------------------------------------------------------------

def test_position_command_respects_urdf_velocity_limit(robot):
    """A far position target makes each joint move at most at its URDF velocity limit."""
    world = robot.world()
    start = world.save_state()
    steps = int(1.0 * RATE)
    for name in robot.joints:
        world.restore_state(start)
        target = robot.home_array.copy()
        k = robot.joints.index(name)
        target[k] = robot.far_limit(name)
        world.apply_command(robot.joints, positions=target)
        speeds = []
        for _ in range(steps):
            world.step()
            speeds.append(abs(world.read_state([name]).velocities[0]))
        limit = robot.limits[name].velocity
        assert max(speeds) <= limit * VELOCITY_MARGIN, \
            f'{name}: peak {max(speeds):.4f} above URDF velocity limit {limit}'
        # the command did take effect: the joint ran at (nearly) its limit
        assert max(speeds) >= 0.9 * limit, f'{name}: peak {max(speeds):.4f}, limit {limit}'


def test_velocity_command_above_limit_is_clamped(robot):
    world = robot.world()
    start = world.save_state()
    for name in robot.joints:
        world.restore_state(start)
        world.apply_command(robot.joints, positions=robot.home_array)  # others hold home
        limit = robot.limits[name].velocity
        direction = 1.0 if robot.far_limit(name) > robot.home[name] else -1.0
        world.apply_command([name], velocities=[3.0 * limit * direction])
        speeds = []
        for _ in range(int(0.2 * RATE)):
            world.step()
            speeds.append(world.read_state([name]).velocities[0] * direction)
        assert max(abs(v) for v in speeds) <= limit * VELOCITY_MARGIN, \
            f'{name}: peak {max(speeds):.4f} above URDF velocity limit {limit}'
        assert max(speeds) >= 0.9 * limit, f'{name}: never reached its velocity limit {limit}'


# --- 2. position limits ---------------------------------------------------------------------

@pytest.mark.parametrize('side', ['lower', 'upper'])
def test_position_command_beyond_limit_ends_at_limit(robot, side):
    """Robot alone (no table to run into): a target past a limit stops at the limit."""
    world = robot.world(scene=None)
    start = world.save_state()
    checked = 0
    for name in robot.joints:
        lim = robot.limits[name]
        if not lim.position_bounded():
            continue
        checked += 1
        limit = getattr(lim, side)
        sign = 1.0 if side == 'upper' else -1.0
        span = lim.upper - lim.lower
        world.restore_state(start)
        index = world.joint_index[name]
        # start near the limit so the run is short; 10 % of the range (0.004 m for a finger)
        world.client.resetJointState(world.robot_id, index, limit - sign * 0.1 * span, 0.0)
        target = _positions(world, robot.joints)
        target[robot.joints.index(name)] = limit + sign * max(1.0, span)
        world.apply_command(robot.joints, positions=target)
        # A joint arriving at full speed may cross the limit within one step before the
        # limit constraint stops it: allow one step of travel at the velocity limit.
        tol = max(1e-3, lim.velocity * world.dt)
        beyond = -math.inf
        for _ in range(int(0.5 * RATE)):
            world.step()
            beyond = max(beyond, sign * (_positions(world, [name])[0] - limit))
        final = _positions(world, [name])[0]
        assert beyond <= tol, f'{name}: went {beyond:.5f} past its {side} limit {limit}'
        assert final == pytest.approx(limit, abs=1e-3), f'{name}: ended at {final}, limit {limit}'
        # the target was clamped to the limit, so the motor is not left pushing into the stop
        effort = abs(world.read_state([name]).efforts[0])
        assert effort < 0.9 * lim.effort, f'{name}: motor pushes {effort:.1f} into its limit'
    assert checked > 0


# --- 3. invalid commands --------------------------------------------------------------------

def _command_kwargs(robot: Robot, kind: str, bad_index: int, bad: float) -> list[dict]:
    """Commands that would visibly move the arm if applied, with one non-finite value."""
    n = len(robot.joints)
    if kind == 'positions':
        values = list(robot.home_array + 0.3)
        values[bad_index] = bad
        return [dict(positions=values)]
    if kind == 'velocities':
        values = [1.0] * n
        values[bad_index] = bad
        return [dict(velocities=values),
                dict(positions=list(robot.home_array + 0.3), velocities=values)]
    values = [0.0] * n  # zero effort: without the motors the arm would fall
    values[bad_index] = bad
    return [dict(efforts=values)]


@pytest.mark.parametrize('kind', ['positions', 'velocities', 'efforts'])
def test_non_finite_command_raises_and_applies_nothing(robot, kind):
    world = robot.world()
    n = len(robot.joints)
    for bad in (math.nan, math.inf, -math.inf):
        for bad_index in (0, n - 1):
            for kwargs in _command_kwargs(robot, kind, bad_index, bad):
                bad_joint = robot.joints[bad_index]
                with pytest.raises(ValueError) as info:
                    world.apply_command(robot.joints, **kwargs)
                assert bad_joint in str(info.value), str(info.value)
    world.step(int(0.5 * RATE))
    _assert_finite(world, robot.joints)
    held = _positions(world, robot.joints)
    assert np.allclose(held, robot.home_array, atol=1e-4, rtol=0), held - robot.home_array


def test_wrong_size_and_unknown_joint_raise_and_apply_nothing(robot):
    world = robot.world()
    n = len(robot.joints)
    for kind, value in (('positions', 0.3), ('velocities', 1.0), ('efforts', 0.0)):
        for size in (n - 1, n + 1):
            with pytest.raises(ValueError):
                world.apply_command(robot.joints, **{kind: [value] * size})
        unknown = robot.joints[:-1] + ['no_such_joint']
        with pytest.raises(ValueError) as info:
            world.apply_command(unknown, **{kind: [value] * n})
        assert 'no_such_joint' in str(info.value)
    with pytest.raises(ValueError):
        world.apply_command(robot.joints, positions=list(robot.home_array + 0.3),
                            velocities=[0.0] * (n - 1))
    world.step(int(0.5 * RATE))
    _assert_finite(world, robot.joints)
    held = _positions(world, robot.joints)
    assert np.allclose(held, robot.home_array, atol=1e-4, rtol=0), held - robot.home_array


# --- 4. holding -----------------------------------------------------------------------------

def test_holds_initial_positions_against_gravity(robot):
    world = robot.world()
    assert np.allclose(_positions(world, robot.joints), robot.home_array, atol=1e-12)
    world.step(int(1.0 * RATE))
    held = _positions(world, robot.joints)
    assert np.allclose(held, robot.home_array, atol=1e-2, rtol=0), held - robot.home_array
    _assert_finite(world, robot.joints)


def test_initial_positions_with_unknown_joint_raise_config_error(robot):
    initial = dict(robot.home, no_such_joint=0.0)
    with pytest.raises(ConfigError) as info:
        robot.world(initial_positions=initial)
    message = str(info.value)
    assert 'no_such_joint' in message
    for name in robot.joints:
        assert name in message


# --- 5. effort mode -------------------------------------------------------------------------

def test_zero_effort_with_gravity_compensation_stays_still(robot):
    world = robot.world(motors=MotorSettings(gravity_compensation=True))
    world.apply_command(robot.joints, efforts=[0.0] * len(robot.joints))
    world.step(int(0.5 * RATE))
    state = world.read_state(robot.joints)
    drift = np.abs(state.positions - robot.home_array).max()
    assert drift < 0.05, f'drifted {drift:.4f} rad'
    assert np.array_equal(state.efforts, np.zeros(len(robot.joints)))  # the commanded effort


def test_zero_effort_without_gravity_compensation_falls(robot):
    world = robot.world(motors=MotorSettings(gravity_compensation=False))
    world.apply_command(robot.joints, efforts=[0.0] * len(robot.joints))
    world.step(int(0.5 * RATE))
    state = world.read_state(robot.joints)
    moved = np.abs(state.positions - robot.home_array).max()
    assert moved > 0.05, f'moved only {moved:.4f} rad with no motor holding it'
    assert np.array_equal(state.efforts, np.zeros(len(robot.joints)))
    _assert_finite(world, robot.joints)


def test_read_state_reports_commanded_effort(robot):
    world = robot.world(motors=MotorSettings(gravity_compensation=True))
    efforts = [0.01 * (k + 1) for k in range(len(robot.joints))]
    world.apply_command(robot.joints, efforts=efforts)
    world.step(5)
    assert world.read_state(robot.joints).efforts == pytest.approx(efforts, abs=1e-12)
    # back to position control: the reported effort is the motor's again, not the old command
    world.apply_command(robot.joints, positions=robot.home_array)
    world.step(5)
    assert world.read_state(robot.joints).efforts != pytest.approx(efforts, abs=1e-12)


# --- 6. contacts ----------------------------------------------------------------------------

def _obstacle_contacts(world: PhysicsWorld) -> list:
    return [c for c in world.contacts() if c[1] == 'obstacle']


def test_home_pose_has_no_obstacle_contact(robot):
    world = robot.world()
    assert 'obstacle' in world.object_ids
    world.step(10)
    assert _obstacle_contacts(world) == []


def test_sweep_into_obstacle_reports_contact_with_obstacle(arm6):
    world = arm6.world()
    world.step(10)
    assert _obstacle_contacts(world) == []
    # the pan sweep from home that config/scene_default.yaml says goes through the obstacle
    world.apply_command(arm6.joints, positions=list(RDT_ARM6_OBSTACLE_POSE))
    world.step(int(0.5 * RATE))
    contacts = _obstacle_contacts(world)
    assert contacts, f'no contact with the obstacle; contacts: {world.contacts()}'
    links = set(arm6.model.links)
    for link, other, position, depth in contacts:
        assert link in links, link
        assert len(position) == 3 and all(math.isfinite(p) for p in position)
        assert math.isfinite(depth)
    # blocked by the obstacle: the pan joint stops inside the contact range the scene gives
    pan = _positions(world, arm6.joints)[0]
    assert 0.1 < pan < 0.5


def test_reset_into_obstacle_pose_reports_contact(arm6):
    world = arm6.world()
    for name, q in zip(arm6.joints, RDT_ARM6_OBSTACLE_POSE):
        world.client.resetJointState(world.robot_id, world.joint_index[name], q, 0.0)
    world.step()
    contacts = _obstacle_contacts(world)
    assert contacts
    assert all(link in arm6.model.links for link, *_ in contacts)
    assert max(depth for *_, depth in contacts) > 0.01  # penetrates (the scene says ~7 cm)


# --- 7. determinism -------------------------------------------------------------------------

def _run_sequence(robot: Robot, world: PhysicsWorld) -> None:
    first, last = robot.joints[0], robot.joints[-1]
    world.step(100)
    world.apply_command(robot.joints, positions=list(robot.home_array + 0.2))
    world.step(150)
    world.apply_command([first], velocities=[-0.5 * robot.limits[first].velocity])
    world.step(150)
    world.apply_command([last], efforts=[0.0])
    world.step(100)


def test_same_commands_give_identical_states(robot):
    a, b = robot.world(), robot.world()
    _run_sequence(robot, a)
    _run_sequence(robot, b)
    assert a.steps == b.steps == 500
    sa, sb = a.read_state(robot.joints), b.read_state(robot.joints)
    assert np.array_equal(sa.positions, sb.positions)
    assert np.array_equal(sa.velocities, sb.velocities)
    assert np.array_equal(sa.efforts, sb.efforts)
    assert not np.allclose(sa.positions, robot.home_array, atol=1e-3)  # the sequence moved it


def test_restore_state_returns_to_saved_joint_state(robot):
    world = robot.world()
    world.apply_command(robot.joints, positions=list(robot.home_array + 0.2))
    world.step(100)  # mid-motion: non-zero velocities
    saved = world.read_state(robot.joints)
    state_id = world.save_state()
    world.apply_command(robot.joints, positions=list(robot.home_array - 0.2))
    world.step(200)
    assert not np.allclose(world.read_state(robot.joints).positions, saved.positions, atol=1e-3)
    world.restore_state(state_id)
    restored = world.read_state(robot.joints)
    assert np.array_equal(restored.positions, saved.positions)
    assert np.array_equal(restored.velocities, saved.velocities)


def test_preserved_state_restores_also_after_an_exception(robot):
    world = robot.world()
    world.apply_command(robot.joints, positions=list(robot.home_array + 0.2))
    world.step(100)
    before = world.read_state(robot.joints)
    with pytest.raises(RuntimeError):
        with world.preserved_state():
            world.reset_joints(dict(zip(robot.joints, robot.home_array - 0.3)))
            world.step(10)
            raise RuntimeError('inside')
    after = world.read_state(robot.joints)
    assert np.array_equal(after.positions, before.positions)
    assert np.array_equal(after.velocities, before.velocities)


def test_reset_joints_sets_positions_and_velocities_of_the_named_joints(robot):
    world = robot.world()
    first, others = robot.joints[0], robot.joints[1:]
    kept = world.read_state(others).positions
    world.reset_joints({first: robot.home[first] + 0.1}, {first: 0.5})
    state = world.read_state([first])
    assert state.positions[0] == pytest.approx(robot.home[first] + 0.1)
    assert state.velocities[0] == pytest.approx(0.5)
    assert np.array_equal(world.read_state(others).positions, kept)


def test_link_pose_is_the_forward_kinematics_of_the_positions(robot):
    world = robot.world()
    tip = world.tip_link
    home_pose = world.link_pose(tip)
    with world.preserved_state():
        world.reset_joints({robot.joints[0]: robot.home[robot.joints[0]] + 0.5})
        moved = world.link_pose(tip)
    assert not np.allclose(moved[0], home_pose[0], atol=1e-3)
    assert np.array_equal(world.link_pose(tip)[0], home_pose[0])
    with pytest.raises(ValueError, match='no_such_link'):
        world.link_pose('no_such_link')


# --- 8. configuration errors ----------------------------------------------------------------

def test_missing_robot_urdf_raises_config_error_naming_file(robot, tmp_path):
    missing = tmp_path / 'no_such_robot.urdf'
    with pytest.raises(ConfigError) as info:
        PhysicsWorld(robot.model, str(missing), robot.scene)
    assert str(missing) in str(info.value)


def test_urdf_of_another_robot_raises_config_error_naming_file(robot):
    other = PANDA if robot.case is RDT_ARM6 else RDT_ARM6
    other_urdf = str(paths.resolve(other.urdf))
    with pytest.raises(ConfigError) as info:
        PhysicsWorld(robot.model, other_urdf, robot.scene)
    assert other_urdf in str(info.value)


def test_missing_scene_file_raises_config_error_naming_file(tmp_path):
    missing = tmp_path / 'no_such_scene.yaml'
    with pytest.raises(ConfigError) as info:
        load_scene(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize('text', [
    'objects: [unclosed',                                    # not YAML
    '- just\n- a list\n',                                    # not a mapping
    'gravity: [0, 0]\n',                                     # wrong vector size
    'gravity: [0, 0, .nan]\n',                               # non-finite
    'robots: {}\n',                                          # unknown key
    'objects:\n  - name: box\n',                             # object without urdf
    'objects:\n  - name: box\n    urdf: no_such_object.urdf\n',  # object urdf missing
])
def test_bad_scene_raises_config_error_naming_file(tmp_path, text):
    path = tmp_path / 'scene.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_scene(path)
    assert str(path) in str(info.value)


def test_unloadable_scene_object_raises_config_error_naming_its_file(robot, tmp_path):
    broken = tmp_path / 'broken_object.urdf'
    broken.write_text('<robot name="broken"><link name=')  # exists, but not valid XML
    path = tmp_path / 'scene.yaml'
    path.write_text(f'objects:\n  - name: broken_box\n    urdf: {broken}\n')
    scene = load_scene(path)
    with pytest.raises(ConfigError) as info:
        robot.world(scene=scene)
    assert str(broken) in str(info.value)


# --- 9. time and steps ----------------------------------------------------------------------

@pytest.mark.parametrize('rate', [1000.0, 250.0])
def test_time_is_steps_times_dt(robot, rate):
    world = robot.world(physics_rate=rate)
    assert world.steps == 0 and world.time == 0.0
    assert world.dt == 1.0 / rate
    assert world.client.getPhysicsEngineParameters()['fixedTimeStep'] == pytest.approx(world.dt)
    world.step()
    world.step(499)
    assert world.steps == 500
    assert world.time == 500 * world.dt
    assert world.time == pytest.approx(500 / rate)
    world.step(0)
    assert world.steps == 500


@pytest.mark.parametrize('rate', [0.0, -1000.0, math.nan, math.inf])
def test_bad_physics_rate_raises_config_error(arm6, rate):
    with pytest.raises(ConfigError):
        arm6.world(physics_rate=rate)


def test_close_is_idempotent(arm6):
    world = arm6.world()
    world.close()
    world.close()
    assert world.client is None
    with PhysicsWorld(arm6.model, arm6.urdf, arm6.scene) as scoped:
        assert scoped.client is not None
    assert scoped.client is None
