"""Unit tests for core.motion: generated joint motions and inverse kinematics (no ROS).

Robot-specific values come from config/<robot>.yaml (joints, home pose, URDF, scene) and the
loaded RobotModel (limits, tip link); a trajectory is sampled the way the controller does it
(core.trajectory.Trajectory, picked up at rest at the start pose).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest

from reverse_digital_twin.core.controller import ControllerConfig
from reverse_digital_twin.core.goal import TrajectoryGoal, ValidationRules, validate_goal
from reverse_digital_twin.core.motion import QUINTIC_PEAK_ACCELERATION, QUINTIC_PEAK_VELOCITY
from reverse_digital_twin.core.motion import forward_kinematics, plan_joint_motion, solve_ik
from reverse_digital_twin.core.paths import resolve
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.prediction import Predictor
from reverse_digital_twin.core.robot_model import JointLimits, RobotModel, load_robot_model
from reverse_digital_twin.core.robot_model import quaternion_from_rpy, rotate
from reverse_digital_twin.core.scene import Scene, load_scene
from reverse_digital_twin.core.trajectory import JointSample, Trajectory, TrajectoryPoint
from reverse_digital_twin.stack import CONTROLLER_NODE, SIM_NODE
from reverse_digital_twin.ros_params import read_node_parameters
from reverse_digital_twin.robot_setup import robot_config

ROBOTS = ['rdt_arm6', 'panda']


@dataclass(frozen=True)
class Robot:
    name: str
    model: RobotModel
    urdf: str
    scene: Scene
    joints: tuple[str, ...]  # the controller's
    home: dict[str, float]  # initial_positions.* (fingers included)

    @property
    def limits(self) -> dict[str, JointLimits]:
        return {j.name: j.limits for j in self.model.movable_joints}

    @property
    def home_array(self) -> np.ndarray:
        return np.array([self.home[j] for j in self.joints])

    def world(self) -> PhysicsWorld:
        return PhysicsWorld(self.model, self.urdf, self.scene, initial_positions=self.home)


@functools.lru_cache(maxsize=None)
def robot_setup(name: str) -> Robot:
    path = robot_config(name)
    sim = read_node_parameters(path, SIM_NODE)
    ctrl = read_node_parameters(path, CONTROLLER_NODE)
    urdf = resolve(sim['robot_description_file'])
    scene = load_scene(resolve(sim['scene_file'])) if sim.get('scene_file') else Scene()
    home = {k.split('.', 1)[1]: float(v) for k, v in sim.items()
            if k.startswith('initial_positions.')}
    return Robot(name, load_robot_model(urdf), str(urdf), scene, tuple(ctrl['joints']), home)


@pytest.fixture(scope='module', params=ROBOTS)
def robot(request):
    r = robot_setup(request.param)
    with r.world() as world:
        yield r, world


def offset_goal(r: Robot, amount: float) -> np.ndarray:
    """Home moved by ``amount`` per joint towards the wider side of each joint's range."""
    out = []
    for j in r.joints:
        lim, q = r.limits[j], r.home[j]
        out.append(q + (-amount if q - lim.lower > lim.upper - q else amount))
    return np.array(out)


def sample(goal: TrajectoryGoal, start: np.ndarray, dt: float = 0.001):
    """(times, positions, velocities, accelerations) as the controller interpolates the goal,
    picked up at rest at ``start`` at t = 0."""
    points = [TrajectoryPoint(p.time_from_start, np.array(p.positions), np.array(p.velocities),
                              np.array(p.accelerations)) for p in goal.points]
    traj = Trajectory(points)
    traj.start_from(0.0, JointSample.at_rest(start))
    times = np.arange(0.0, goal.points[-1].time_from_start + 0.05, dt)
    states = [traj.sample(t).state for t in times]
    return (times, np.array([s.positions for s in states]),
            np.array([s.velocities for s in states]), np.array([s.accelerations for s in states]))


# --- plan_joint_motion -------------------------------------------------------------------------
@pytest.mark.parametrize('scaling', [0.1, 0.5, 1.0])
def test_motion_respects_velocity_and_acceleration_limits(robot, scaling):
    r, _ = robot
    start, goal = r.home_array, offset_goal(r, 1.0)
    accel = 2.0
    traj = plan_joint_motion(start, goal, r.joints, r.limits, velocity_scaling=scaling,
                             acceleration_limit=accel)
    _, _, v, a = sample(traj, start)
    vlim = np.array([scaling * r.limits[j].velocity for j in r.joints])
    assert np.all(np.abs(v).max(axis=0) <= vlim * 1.01)
    assert np.abs(a).max() <= accel * 1.01
    # The limiting joint reaches its limit (the duration is the shortest allowed).
    T = traj.points[-1].time_from_start
    bound = max(np.max(QUINTIC_PEAK_VELOCITY * np.abs(goal - start) / vlim),
                np.sqrt(QUINTIC_PEAK_ACCELERATION * np.max(np.abs(goal - start)) / accel), 0.5)
    assert bound <= T < bound + 0.1 + 1e-9


def test_per_joint_acceleration_limit(robot):
    r, _ = robot
    start, goal = r.home_array, offset_goal(r, 0.5)
    accel = {j: 0.5 + 0.5 * k for k, j in enumerate(r.joints)}
    traj = plan_joint_motion(start, goal, r.joints, r.limits, acceleration_limit=accel)
    _, _, _, a = sample(traj, start)
    assert np.all(np.abs(a).max(axis=0) <= np.array([accel[j] for j in r.joints]) * 1.01)


def test_motion_ends_exactly_at_goal_at_rest_and_joints_move_together(robot):
    r, _ = robot
    start, goal = r.home_array, offset_goal(r, 0.7)
    traj = plan_joint_motion(start, goal, r.joints, r.limits)
    last = traj.points[-1]
    assert list(traj.joint_names) == list(r.joints)
    assert last.positions == goal.tolist()
    assert last.velocities == [0.0] * len(r.joints) and last.accelerations == [0.0] * len(r.joints)
    times = [p.time_from_start for p in traj.points]
    assert times[0] == pytest.approx(0.1) and np.allclose(np.diff(times), 0.1)
    t, q, v, _ = sample(traj, start)
    # One time-scaling for all: every joint has covered the same fraction of its way.
    fraction = (q - start) / (goal - start)
    assert np.allclose(fraction, fraction[:, :1], atol=1e-9)
    moving = np.abs(v).max(axis=1) > 1e-9
    assert moving[1] and not moving[-1]  # all start at once, all have stopped at the end
    assert np.allclose(q[-1], goal, atol=1e-12)
    # The controller accepts it as is.
    rules = ValidationRules(tuple(r.joints), {j: r.limits[j] for j in r.joints})
    assert validate_goal(traj, rules, now=0.0) is None


def test_zero_motion_lasts_min_duration(robot):
    r, _ = robot
    traj = plan_joint_motion(r.home_array, r.home_array, r.joints, r.limits, min_duration=0.5)
    assert traj.points[-1].time_from_start == pytest.approx(0.5)
    assert all(p.positions == r.home_array.tolist() for p in traj.points)


@pytest.mark.parametrize('value', [math.nan, math.inf])
def test_non_finite_goal_is_rejected_naming_the_joint(robot, value):
    r, _ = robot
    goal = r.home_array.copy()
    goal[2] = value
    with pytest.raises(ValueError, match=r.joints[2]):
        plan_joint_motion(r.home_array, goal, r.joints, r.limits)


@pytest.mark.parametrize('side', ['lower', 'upper'])
def test_goal_outside_limits_is_rejected_naming_the_joint(robot, side):
    r, _ = robot
    goal = r.home_array.copy()
    lim = r.limits[r.joints[1]]
    goal[1] = lim.lower - 0.01 if side == 'lower' else lim.upper + 0.01
    with pytest.raises(ValueError, match=rf'{r.joints[1]}.*outside its URDF limits'):
        plan_joint_motion(r.home_array, goal, r.joints, r.limits)


@pytest.mark.parametrize('scaling', [0.0, -0.5, 1.5, math.nan])
def test_velocity_scaling_outside_0_1_is_rejected(robot, scaling):
    r, _ = robot
    with pytest.raises(ValueError, match='velocity_scaling'):
        plan_joint_motion(r.home_array, r.home_array, r.joints, r.limits,
                          velocity_scaling=scaling)


def test_size_mismatch_and_unknown_joint_are_rejected(robot):
    r, _ = robot
    with pytest.raises(ValueError, match='goal positions'):
        plan_joint_motion(r.home_array, r.home_array[:-1], r.joints, r.limits)
    with pytest.raises(ValueError, match='no_such_joint'):
        plan_joint_motion(r.home_array, r.home_array, (*r.joints[:-1], 'no_such_joint'),
                          r.limits)


def test_planned_motion_is_predicted_safe():
    """A generated motion passes the twin's own judgement (rdt_arm6, home -> away from the
    obstacle named in config/scene_default.yaml)."""
    r = robot_setup('rdt_arm6')
    path = robot_config('rdt_arm6')
    from reverse_digital_twin.core.controller_config import controller_config  # noqa: PLC0415
    config: ControllerConfig = controller_config(read_node_parameters(path, CONTROLLER_NODE),
                                                 r.model)
    start = r.home_array
    goal = start.copy()
    goal[0] -= 0.6  # pan away from the obstacle (it stands on the +y side)
    goal[1] += 0.3
    traj = plan_joint_motion(start, goal, r.joints, r.limits, velocity_scaling=0.5)
    with Predictor(r.model, r.urdf, r.scene, 1000.0, 100.0, config,
                   initial_positions=r.home) as predictor:
        verdict = predictor.predict(traj, dict(zip(r.joints, start)))
    assert verdict.safe, verdict.summary
    assert np.allclose(verdict.final_positions, goal, atol=0.02)


# --- solve_ik ----------------------------------------------------------------------------------
def known_configuration(r: Robot) -> np.ndarray:
    return offset_goal(r, 0.3)


@pytest.mark.parametrize('with_orientation', [True, False], ids=['pose', 'position'])
def test_ik_reaches_pose_of_known_configuration(robot, with_orientation):
    r, world = robot
    tip = world.tip_link
    assert tip in r.model.links
    before = world.read_state(world.movable_joints)
    target = known_configuration(r)
    position, orientation = forward_kinematics(world, tip, r.joints, target)
    q = solve_ik(world, tip, position, orientation if with_orientation else None, r.joints,
                 r.home_array)
    after = world.read_state(world.movable_joints)
    # The world is left as it was.
    np.testing.assert_array_equal(after.positions, before.positions)
    np.testing.assert_array_equal(after.velocities, before.velocities)
    # Within limits, and the tip is where it was asked to be.
    for j, value in zip(r.joints, q):
        assert r.limits[j].lower <= value <= r.limits[j].upper
    reached_p, reached_q = forward_kinematics(world, tip, r.joints, q)
    assert np.linalg.norm(reached_p - position) <= 1e-3
    if with_orientation:
        angle = 2 * math.acos(min(1.0, abs(float(np.dot(reached_q, orientation)))))
        assert angle <= 1e-2
    np.testing.assert_array_equal(world.read_state(world.movable_joints).positions,
                                  before.positions)


def test_ik_is_deterministic(robot):
    r, world = robot
    position, orientation = forward_kinematics(world, world.tip_link, r.joints,
                                               known_configuration(r))
    a = solve_ik(world, world.tip_link, position, orientation, r.joints, r.home_array)
    b = solve_ik(world, world.tip_link, position, orientation, r.joints, r.home_array)
    np.testing.assert_array_equal(a, b)


def test_ik_pose_in_root_link_frame(robot):
    r, world = robot
    tip = world.tip_link
    position, orientation = forward_kinematics(world, tip, r.joints, known_configuration(r))
    base_q = quaternion_from_rpy(*r.scene.robot_orientation_rpy)
    inverse = base_q * np.array([-1, -1, -1, 1])
    local = rotate(inverse, position - np.array(r.scene.robot_position))
    q = solve_ik(world, tip, local, None, r.joints, r.home_array, frame=r.model.root_link)
    reached, _ = forward_kinematics(world, tip, r.joints, q)
    assert np.linalg.norm(reached - position) <= 1e-3


def test_ik_unreachable_pose_raises_and_leaves_world_unchanged(robot):
    r, world = robot
    before = world.read_state(world.movable_joints)
    position, _ = forward_kinematics(world, world.tip_link, r.joints, r.home_array)
    far = position + np.array([5.0, 0.0, 0.0])
    with pytest.raises(ValueError, match='unreachable'):
        solve_ik(world, world.tip_link, far, None, r.joints, r.home_array, iterations=50)
    np.testing.assert_array_equal(world.read_state(world.movable_joints).positions,
                                  before.positions)


def test_ik_bad_arguments(robot):
    r, world = robot
    with pytest.raises(ValueError, match='no_such_link'):
        solve_ik(world, 'no_such_link', [0.3, 0.0, 1.0], None, r.joints, r.home_array)
    with pytest.raises(ValueError, match='unknown frame'):
        solve_ik(world, world.tip_link, [0.3, 0.0, 1.0], None, r.joints, r.home_array,
                 frame='camera')
    with pytest.raises(ValueError, match='position'):
        solve_ik(world, world.tip_link, [math.nan, 0.0, 1.0], None, r.joints, r.home_array)
