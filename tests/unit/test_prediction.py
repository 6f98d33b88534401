"""Unit tests for core.prediction.Predictor (headless PyBullet, no ROS).

Every robot-specific value comes from the robot's parameter file (config/<robot>.yaml: joints,
home pose, tolerances, URDF, scene) or from the loaded RobotModel (limits); the only
hand-written poses are the obstacle sweep that config/scene_default.yaml names in its comments.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import pytest

from reverse_digital_twin.core.controller import ControllerConfig, ErrorCode, TrajectoryController
from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.paths import resolve
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.prediction import SETTLED_CYCLES, SETTLED_SPEED, Predictor, Verdict
from reverse_digital_twin.core.robot_model import RobotModel, load_robot_model
from reverse_digital_twin.core.scene import Scene, load_scene
from reverse_digital_twin.core.tolerances import SegmentTolerances, StateTolerance
from reverse_digital_twin.core.tolerances import default_tolerances
from reverse_digital_twin.core.trajectory import JointSample
from reverse_digital_twin.stack import CONTROLLER_NODE, SIM_NODE
from reverse_digital_twin.ros_params import read_node_parameters
from reverse_digital_twin.robot_setup import robot_config

ROBOTS = ['rdt_arm6', 'panda']


@dataclass(frozen=True)
class Setup:
    """One robot as the live graph would run it, built from its parameter file."""

    robot: str
    model: RobotModel
    urdf: str
    scene: Scene
    physics_rate: float
    update_rate: float
    config: ControllerConfig
    home: dict[str, float]  # every joint of initial_positions.* (fingers included)

    @property
    def joints(self) -> tuple[str, ...]:
        return self.config.joints

    @property
    def home_array(self) -> np.ndarray:
        return np.array([self.home[j] for j in self.joints])

    def predictor(self, **kwargs) -> Predictor:
        return Predictor(self.model, self.urdf, self.scene, self.physics_rate, self.update_rate,
                         self.config, initial_positions=self.home, **kwargs)

    def goal(self, *points: tuple[float, np.ndarray]) -> TrajectoryGoal:
        """A full-joint goal, coming to rest at every point (cubic splines)."""
        n = len(self.joints)
        return TrajectoryGoal(self.joints, [GoalPoint(t, list(map(float, q)), [0.0] * n)
                                            for t, q in points])


@functools.lru_cache(maxsize=None)
def setup(robot: str) -> Setup:
    path = robot_config(robot)
    sim = read_node_parameters(path, SIM_NODE)
    ctrl = read_node_parameters(path, CONTROLLER_NODE)
    urdf = resolve(sim['robot_description_file'])
    model = load_robot_model(urdf)
    scene = load_scene(resolve(sim['scene_file'])) if sim.get('scene_file') else Scene()
    joints = tuple(ctrl['joints'])
    movable = {j.name: j for j in model.movable_joints}
    tolerances = default_tolerances(
        joints, {j: float(ctrl.get(f'constraints.{j}.trajectory', 0.0)) for j in joints},
        {j: float(ctrl.get(f'constraints.{j}.goal', 0.0)) for j in joints},
        float(ctrl.get('constraints.stopped_velocity_tolerance', 0.01)),
        float(ctrl.get('constraints.goal_time', 0.0)))
    config = ControllerConfig(
        joints=joints,
        command_interfaces=tuple(ctrl.get('command_interfaces', ['position'])),
        state_interfaces=tuple(ctrl.get('state_interfaces', ['position', 'velocity'])),
        limits={j: movable[j].limits for j in joints},
        continuous_joints=frozenset(j for j in joints if movable[j].type == 'continuous'),
        allow_partial_joints_goal=bool(ctrl.get('allow_partial_joints_goal', False)),
        allow_nonzero_velocity_at_trajectory_end=bool(
            ctrl.get('allow_nonzero_velocity_at_trajectory_end', False)),
        tolerances=tolerances)
    home = {k.split('.', 1)[1]: float(v) for k, v in sim.items()
            if k.startswith('initial_positions.')}
    return Setup(robot, model, str(urdf), scene, float(sim.get('physics_rate', 1000.0)),
                 float(sim.get('update_rate', 100.0)), config, home)


@pytest.fixture(scope='module', params=ROBOTS)
def robot(request):
    """(setup, predictor) per robot; one predictor serves every test of the module."""
    s = setup(request.param)
    with s.predictor() as predictor:
        yield s, predictor


@pytest.fixture(scope='module')
def arm6():
    s = setup('rdt_arm6')
    with s.predictor() as predictor:
        yield s, predictor


def away_from_limits(s: Setup, amount: float) -> np.ndarray:
    """A joint-space offset of ``amount`` per joint, pointing from home towards the wider side
    of each joint's range (so it never reaches a limit), and for the first joint away from the
    obstacle side named in config/scene_default.yaml (negative)."""
    out = []
    for k, j in enumerate(s.joints):
        lim = s.config.limits[j]
        q = s.home[j]
        sign = -1.0 if (k == 0 or q - lim.lower > lim.upper - q) else 1.0
        out.append(sign * amount)
    return np.array(out)


def safe_goal(s: Setup) -> tuple[TrajectoryGoal, np.ndarray]:
    d = away_from_limits(s, 0.25)
    last = s.home_array + 0.5 * d
    return s.goal((1.0, s.home_array + 0.6 * d), (2.0, s.home_array + d), (3.0, last)), last


def sweep_goal(s: Setup) -> TrajectoryGoal:
    """config/scene_default.yaml: home -> shoulder_pan 1.57 drives the arm through the obstacle."""
    target = s.home_array.copy()
    target[s.joints.index('shoulder_pan_joint')] = 1.57
    return s.goal((2.0, target))


# --- verdicts --------------------------------------------------------------------------------
def test_safe_trajectory_from_home(robot):
    s, predictor = robot
    goal, last = safe_goal(s)
    v = predictor.predict(goal, s.home)
    assert v.safe, v.summary
    assert v.summary == 'safe' and v.reasons == ()
    assert v.outcome is not None and v.outcome.error_code == ErrorCode.SUCCESSFUL
    assert v.collisions == () and v.limit_violations == ()
    assert v.joints == s.joints
    n = len(s.joints)
    assert v.positions.shape == (len(v.times), n) and v.velocities.shape == v.positions.shape
    assert np.all(np.diff(v.times) > 0)
    assert v.times[0] == 0.0
    np.testing.assert_allclose(v.positions[0], s.home_array, atol=1e-12)
    np.testing.assert_allclose(v.final_positions, last, atol=0.02)
    assert 3.0 <= v.duration <= 3.0 + 1.0 + 1e-9
    assert 0.0 < v.max_tracking_error < 0.2 and v.max_tracking_error_joint in s.joints
    assert v.computation_time > 0


def test_sweep_through_obstacle_is_a_collision(arm6):
    s, predictor = arm6
    v = predictor.predict(sweep_goal(s), s.home)
    assert not v.safe
    hits = [c for c in v.collisions if c.other == 'obstacle']
    assert hits, v.summary
    links = set(s.model.links) - {s.model.root_link}
    assert all(c.link in links for c in hits)
    assert all(0.0 < c.time <= v.duration and c.depth >= 0.0 for c in hits)
    assert any('obstacle' in r and r.startswith('collision:') for r in v.reasons)
    # Blocked by the pillar, the arm falls behind its reference: the controller aborts.
    assert v.outcome is not None and v.outcome.error_code == ErrorCode.PATH_TOLERANCE_VIOLATED
    assert any(r.startswith('the controller would abort:') for r in v.reasons)


def test_pushing_against_the_pillar_saturates_the_motor(arm6):
    """Without a path tolerance the controller keeps pushing: the first joint's motor stays
    at its effort limit, which the verdict reports (a brief saturation would not count)."""
    from reverse_digital_twin.core.tolerances import SegmentTolerances, StateTolerance
    s, predictor = arm6
    n = len(s.joints)
    unchecked = SegmentTolerances((StateTolerance(),) * n, (StateTolerance(),) * n, 1.0)
    v = predictor.predict(sweep_goal(s), s.home, tolerances=unchecked)
    pushing = [lv for lv in v.limit_violations if lv.kind == 'effort']
    assert s.joints[0] in [lv.joint for lv in pushing], v.summary
    first = next(lv for lv in pushing if lv.joint == s.joints[0])
    assert first.limit == s.config.limits[s.joints[0]].effort
    assert any(r.startswith('effort limit:') and s.joints[0] in r for r in v.reasons)


def test_allowed_contacts_are_ignored(arm6):
    s, _ = arm6
    with s.predictor(allowed_contacts=[('*', 'obstacle')]) as predictor:
        v = predictor.predict(sweep_goal(s), s.home)
    assert not any(c.other == 'obstacle' for c in v.collisions)
    assert not v.safe  # still blocked, so the controller still aborts


def test_faster_than_the_urdf_velocity_is_unsafe(robot):
    s, predictor = robot
    joint = s.joints[0]
    limit = s.config.limits[joint].velocity
    assert 1.0 / 0.05 > limit  # the demand really exceeds the URDF
    target = s.home_array.copy()
    target[0] -= 1.0
    v = predictor.predict(s.goal((0.05, target)), s.home)
    assert not v.safe
    assert joint in v.summary, v.summary


@pytest.mark.parametrize('case', ['nan', 'unknown joint'])
def test_goal_the_controller_rejects(robot, case):
    s, predictor = robot
    joints, q = list(s.joints), s.home_array.tolist()
    if case == 'nan':
        q[1] = math.nan
    else:
        joints[1] = 'no_such_joint'
    v = predictor.predict(TrajectoryGoal(joints, [GoalPoint(1.0, q)]), s.home)
    assert not v.safe and v.outcome is None
    assert len(v.reasons) == 1 and 'would reject' in v.reasons[0]
    assert v.positions.shape == (0, len(s.joints)) and v.duration == 0.0
    assert np.isnan(v.final_positions).all() and len(v.final_positions) == len(s.joints)


def test_never_reaching_the_goal_within_the_horizon_is_unsafe(arm6):
    """A goal tolerance finer than the motors can settle to never ends: reported, not hung."""
    s, predictor = arm6
    goal, _ = safe_goal(s)
    base = s.config.default_tolerances
    tol = SegmentTolerances(base.state, (StateTolerance(position=1e-9),) * len(s.joints), 0.0)
    v = predictor.predict(goal, s.home, tolerances=tol)
    assert v.outcome is None and not v.safe
    assert 'would not report an outcome' in v.summary
    assert v.duration == pytest.approx(3.0 + predictor.horizon_after_end, abs=0.011)


def test_partial_goal_keeps_the_other_joints_where_they_are(arm6):
    """Joints a partial goal leaves out hold the start pose (not 0), as live."""
    s, _ = arm6
    config = replace(s.config, allow_partial_joints_goal=True)
    joint = s.joints[-1]
    with Predictor(s.model, s.urdf, s.scene, s.physics_rate, s.update_rate, config,
                   initial_positions=s.home) as predictor:
        v = predictor.predict(TrajectoryGoal([joint], [GoalPoint(1.0, [s.home[joint] + 0.3])]),
                              s.home)
    assert v.safe, v.summary
    expected = s.home_array.copy()
    expected[-1] += 0.3
    np.testing.assert_allclose(v.final_positions, expected, atol=0.02)


def test_header_stamp_on_the_controller_clock(arm6):
    """A stamp 0.5 s after ``now`` starts the trajectory 0.5 s into the prediction."""
    s, predictor = arm6
    goal, last = safe_goal(s)
    stamped = TrajectoryGoal(goal.joint_names, goal.points, stamp=100.5)
    v = predictor.predict(stamped, s.home, now=100.0)
    assert v.safe, v.summary
    assert v.duration >= 3.5
    np.testing.assert_allclose(v.final_positions, last, atol=0.02)
    late = predictor.predict(stamped, s.home, now=200.0)
    assert not late.safe and 'would reject' in late.summary and 'past' in late.summary


def test_start_state_outside_the_model_is_refused(arm6):
    s, predictor = arm6
    goal, _ = safe_goal(s)
    with pytest.raises(ValueError, match='unknown joints'):
        predictor.predict(goal, {**s.home, 'no_such_joint': 0.0})


# --- determinism and agreement with the live loop ------------------------------------------
def _same(a: Verdict, b: Verdict) -> None:
    assert np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.velocities, b.velocities)
    assert np.array_equal(a.times, b.times)
    assert a.reasons == b.reasons and a.collisions == b.collisions
    assert a.limit_violations == b.limit_violations and a.outcome == b.outcome


def test_predictions_are_deterministic(arm6):
    s, predictor = arm6
    safe, _ = safe_goal(s)
    sweep = sweep_goal(s)
    first_safe = predictor.predict(safe, s.home)
    first_sweep = predictor.predict(sweep, s.home)
    second_safe = predictor.predict(safe, s.home)
    moved = dict(s.home, shoulder_pan_joint=-0.3)  # another start state in between
    predictor.predict(safe, moved, {'elbow_joint': 0.5})
    second_sweep = predictor.predict(sweep, s.home)
    _same(first_safe, second_safe)
    _same(first_sweep, second_sweep)
    assert first_sweep.collisions


@pytest.mark.parametrize('goal_name', ['safe', 'sweep'])
def test_agrees_with_a_plain_closed_loop(arm6, goal_name):
    """The live sim in lockstep: read state, run the control law, apply, step.

    At the live physics rate the predictor is that loop, to the bit; the default (decimated)
    predictor reaches the same verdict.
    """
    s, predictor = arm6
    goal = safe_goal(s)[0] if goal_name == 'safe' else sweep_goal(s)
    with s.predictor(physics_decimation=1) as full_rate:
        verdict = full_rate.predict(goal, s.home)
    decimated = predictor.predict(goal, s.home)
    assert predictor.physics_decimation > 1
    assert decimated.safe == verdict.safe and decimated.outcome == verdict.outcome
    assert [(c.link, c.other) for c in decimated.collisions][:1] == \
        [(c.link, c.other) for c in verdict.collisions][:1]
    np.testing.assert_allclose(decimated.final_positions, verdict.final_positions, atol=0.02)
    with PhysicsWorld(s.model, s.urdf, s.scene, s.physics_rate,
                      initial_positions=s.home) as world:
        controller = TrajectoryController(s.config)
        controller.accept(goal)
        period = 1.0 / s.update_rate
        per_cycle = round(s.physics_rate / s.update_rate)
        joints = list(s.joints)
        outcome, still = None, 0
        for _ in range(10_000):
            state = world.read_state(joints)
            result = controller.update(world.time, JointSample(
                state.positions, state.velocities, np.zeros(len(joints))), period)
            outcome = outcome or result.outcome
            if outcome is not None:  # then on until the arm is at rest (see SETTLED_SPEED)
                still = still + 1 if np.abs(state.velocities).max() < SETTLED_SPEED else 0
                if not outcome.succeeded or still >= SETTLED_CYCLES:
                    break
            world.apply_command(joints, positions=result.command.positions.tolist())
            world.step(per_cycle)
        assert outcome == verdict.outcome
        assert world.time == pytest.approx(verdict.duration)
        np.testing.assert_allclose(state.positions, verdict.final_positions, rtol=0, atol=1e-9)


def test_a_refusal_is_the_full_rate_rollout(arm6):
    """The decimated predictor confirms an unsafe verdict at the live rate, to the bit."""
    s, predictor = arm6
    with s.predictor(physics_decimation=1) as full_rate:
        reference = full_rate.predict(sweep_goal(s), s.home)
    v = predictor.predict(sweep_goal(s), s.home)
    assert not v.safe
    _same(v, reference)


def test_one_cycle_command_delay(arm6):
    """The live sim without lockstep: a command acts one cycle later, the arm still arrives."""
    s, predictor = arm6
    goal, last = safe_goal(s)
    lockstep = predictor.predict(goal, s.home)
    with s.predictor(command_delay_cycles=1) as delayed:
        v = delayed.predict(goal, s.home)
    assert v.safe, v.summary
    np.testing.assert_allclose(v.final_positions, last, atol=0.02)
    n = min(len(v.times), len(lockstep.times))
    assert not np.array_equal(v.positions[:n], lockstep.positions[:n])


def _first_contact_pan(s: Setup) -> float:
    """The first joint's angle (from home, toward the pillar of config/scene_default.yaml)
    at which the arm starts to touch it, to 1e-6 rad."""
    from reverse_digital_twin.core.planning import CollisionChecker
    with PhysicsWorld(s.model, s.urdf, s.scene) as world:
        checker = CollisionChecker(world, list(s.joints), home=s.home)
        clear, touching = 0.0, 1.57
        while touching - clear > 1e-6:
            q = s.home_array.copy()
            q[0] = (clear + touching) / 2
            if checker.contact(q) is None:
                clear = q[0]
            else:
                touching = q[0]
    return touching


@pytest.mark.parametrize('beyond', [0.0005, 0.002])
def test_the_motion_after_a_reported_success_is_checked_too(arm6, beyond):
    """A short streamed step (a policy's 50 ms, positions only) on the sim without lockstep:
    at its end the arm is a cycle behind, inside the goal tolerance, so the controller reports
    success while the arm still moves on to the held point. A point just inside the pillar
    is refused for the contact after the success; one just clear of it is safe, and the
    prediction follows the arm until it is at rest there."""
    s, _ = arm6
    contact = _first_contact_pan(s)
    start = s.home_array.copy()
    start[0] = contact - 0.08
    inside, clear = start.copy(), start.copy()
    inside[0], clear[0] = contact + beyond, contact - 0.01
    step = 0.05

    def goal(q: np.ndarray) -> TrajectoryGoal:
        return TrajectoryGoal(s.joints, [GoalPoint(step, list(map(float, q)))])
    with s.predictor(command_delay_cycles=1) as delayed:
        refused = delayed.predict(goal(inside), dict(zip(s.joints, start)))
        safe = delayed.predict(goal(clear), dict(zip(s.joints, start)))
    assert refused.outcome is not None and refused.outcome.succeeded, refused.summary
    assert not refused.safe
    hits = [c for c in refused.collisions if c.other == 'obstacle']
    assert hits and hits[0].time > step, refused.summary
    assert safe.safe, safe.summary
    at_end = safe.positions[int(np.argmin(np.abs(safe.times - step)))]
    assert clear[0] - at_end[0] > 0.005  # short of the point when the controller reported
    assert abs(safe.final_positions[0] - clear[0]) < 1e-3  # followed to where it stops
    assert np.abs(safe.velocities[-1]).max() < 0.005


# --- speed -----------------------------------------------------------------------------------
def test_speed_of_a_ten_second_prediction(arm6, capsys):
    s, predictor = arm6
    d = away_from_limits(s, 0.5)
    goal = s.goal((5.0, s.home_array + d), (10.0, s.home_array))
    v = predictor.predict(goal, s.home)
    assert v.duration >= 10.0
    steps = round(v.duration * s.physics_rate)
    with PhysicsWorld(s.model, s.urdf, s.scene, s.physics_rate,
                      initial_positions=s.home) as world:
        client = world.client
        t0 = time.perf_counter()
        for _ in range(steps):
            client.stepSimulation()
        bare = time.perf_counter() - t0
    with capsys.disabled():
        print(f'\nprediction of a {v.duration:.2f} s trajectory ({steps} physics steps): '
              f'{v.computation_time * 1000:.0f} ms wall ({v.duration / v.computation_time:.0f}x '
              f'real time); bare stepSimulation: {bare * 1000:.0f} ms; ratio '
              f'{v.computation_time / bare:.2f}')
