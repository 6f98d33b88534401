"""Unit tests for core/controller.py: joint_trajectory_controller's control law without ROS.

The controller is driven in closed loop by tiny plain-Python plants (perfect tracking, a
first-order lag, a stuck or blocked joint) and a loop calling ``update(now, measured, period)``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from reverse_digital_twin.core.controller import Command, ControllerConfig, CycleResult
from reverse_digital_twin.core.controller import ErrorCode, PidGains, SUCCESS_MESSAGE
from reverse_digital_twin.core.controller import TrajectoryController
from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.tolerances import SegmentTolerances, StateTolerance
from reverse_digital_twin.core.trajectory import JointSample

JOINTS = tuple(f'j{i}' for i in range(3))
N = len(JOINTS)
PERIOD = 0.01  # s, a 100 Hz controller
T0 = 10.0  # s, controller clock at the first cycle


# --------------------------------------------------------------------------- plants
class PerfectPlant:
    """Follows the command exactly: next measured position = last position command.

    Velocity-only commands are integrated over the period; effort commands are ignored.
    """

    def __init__(self, positions=None):
        self.q = np.zeros(N) if positions is None else np.array(positions, dtype=float)
        self.v = np.zeros(N)

    def measure(self) -> JointSample:
        return JointSample(self.q.copy(), self.v.copy(), np.zeros(N))

    def target(self, command: Command, period: float) -> np.ndarray:
        if command.positions is not None:
            return command.positions.copy()
        if command.velocities is not None:
            return self.q + command.velocities * period
        return self.q.copy()

    def apply(self, command: Command, period: float) -> None:
        new = self.target(command, period)
        self.v = (new - self.q) / period
        self.q = new


class LagPlant(PerfectPlant):
    """First-order lag: moves a fraction ``alpha`` of the way to the command each cycle."""

    def __init__(self, alpha: float, positions=None):
        super().__init__(positions)
        self.alpha = alpha

    def target(self, command, period):
        return self.q + self.alpha * (super().target(command, period) - self.q)


class StuckPlant(PerfectPlant):
    """Tracks perfectly except joint ``index``, which never moves."""

    def __init__(self, index: int, positions=None):
        super().__init__(positions)
        self.index = index

    def target(self, command, period):
        out = super().target(command, period)
        out[self.index] = self.q[self.index]
        return out


class BlockedPlant(PerfectPlant):
    """Tracks perfectly except joint ``index``, which cannot go above ``ceiling``."""

    def __init__(self, index: int, ceiling: float, positions=None):
        super().__init__(positions)
        self.index, self.ceiling = index, ceiling

    def target(self, command, period):
        out = super().target(command, period)
        out[self.index] = min(out[self.index], self.ceiling)
        return out


# --------------------------------------------------------------------------- helpers
def config(**kw) -> ControllerConfig:
    return ControllerConfig(joints=JOINTS, **kw)


def tolerances(path=0.0, goal=0.0, goal_time=0.0, goal_velocity=0.0) -> SegmentTolerances:
    return SegmentTolerances(tuple(StateTolerance(position=path) for _ in JOINTS),
                             tuple(StateTolerance(position=goal, velocity=goal_velocity)
                                   for _ in JOINTS), goal_time)


def goal(*points, names=JOINTS, stamp=0.0) -> TrajectoryGoal:
    return TrajectoryGoal(list(names), [GoalPoint(t, list(p), *rest) for t, p, *rest in points],
                          stamp)


WAYPOINTS = [(0.5, [0.2, -0.1, 0.3]), (1.2, [0.6, -0.4, 0.5]), (2.0, [0.8, -0.5, 0.9])]
END = np.array(WAYPOINTS[-1][1])


def three_points() -> TrajectoryGoal:
    return goal(*WAYPOINTS)


def run(ctrl: TrajectoryController, plant: PerfectPlant, start: float, duration: float,
        period: float = PERIOD, stop_on_outcome: bool = True) -> list[CycleResult]:
    """Closed loop: measure, update, apply; returns every cycle's result."""
    results = []
    for k in range(int(round(duration / period)) + 1):
        result = ctrl.update(start + k * period, plant.measure(), period)
        plant.apply(result.command, period)
        results.append(result)
        if stop_on_outcome and result.outcome is not None:
            break
    return results


def outcomes(results):
    return [r for r in results if r.outcome is not None]


# --------------------------------------------------------------------------- success
def test_three_point_trajectory_succeeds():
    ctrl = TrajectoryController(config(tolerances=tolerances(path=0.01, goal=0.001)))
    plant = PerfectPlant()
    ctrl.accept(three_points())
    results = run(ctrl, plant, T0, 3.0)
    last = results[-1]
    assert last.outcome is not None
    assert last.outcome.error_code == ErrorCode.SUCCESSFUL
    assert last.outcome.succeeded
    assert last.outcome.error_string == SUCCESS_MESSAGE == 'Goal successfully reached!'
    end_time = T0 + WAYPOINTS[-1][0]
    assert end_time - 1e-9 <= last.time <= end_time + PERIOD + 1e-9  # once past the end
    assert last.index == len(WAYPOINTS) - 1
    assert_allclose(plant.q, END, atol=1e-9)
    assert len(outcomes(results)) == 1


def test_no_outcome_before_the_end():
    ctrl = TrajectoryController(config())
    ctrl.accept(three_points())
    results = run(ctrl, PerfectPlant(), T0, 1.9)
    assert not outcomes(results)
    assert [r.index for r in results][:1] == [0]
    assert results[-1].index == 2


def test_outcome_is_reported_once_then_the_last_point_is_held():
    ctrl = TrajectoryController(config())
    plant = PerfectPlant()
    ctrl.accept(three_points())
    run(ctrl, plant, T0, 3.0)
    after = run(ctrl, plant, T0 + 3.0, 1.0)
    assert not outcomes(after)
    for r in after:
        assert_allclose(r.command.positions, END)


def test_lagging_plant_succeeds_within_goal_time():
    ctrl = TrajectoryController(config(tolerances=tolerances(goal=0.01, goal_time=2.0)))
    plant = LagPlant(alpha=0.2)
    ctrl.accept(three_points())
    results = run(ctrl, plant, T0, 5.0)
    assert results[-1].outcome.error_code == ErrorCode.SUCCESSFUL
    assert results[-1].time > T0 + 2.0  # the lag needs extra time after the end
    assert np.all(np.abs(results[-1].error.positions) <= 0.01)


def test_perfect_tracking_has_no_error():
    ctrl = TrajectoryController(config())
    ctrl.accept(three_points())
    for r in run(ctrl, PerfectPlant(), T0, 2.5):
        assert_allclose(r.error.positions, 0.0, atol=1e-12)


def test_command_is_sampled_one_period_ahead():
    ctrl = TrajectoryController(config())
    plant = LagPlant(alpha=0.5)
    ctrl.accept(three_points())
    for r in run(ctrl, plant, T0, 2.5):
        traj = ctrl.active_trajectory
        assert_allclose(r.reference.positions, traj.sample(r.time).state.positions)
        assert_allclose(r.command.positions, traj.sample(r.time + PERIOD).state.positions)
        assert_allclose(r.error.positions, r.reference.positions - r.feedback.positions)
        assert r.command.velocities is None and r.command.efforts is None


def test_position_velocity_command_uses_look_ahead_velocity():
    ctrl = TrajectoryController(config(command_interfaces=('position', 'velocity')))
    ctrl.accept(goal((1.0, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2]), (2.0, [1.0, 1.0, 1.0], [0, 0, 0])))
    for r in run(ctrl, PerfectPlant(), T0, 2.5):
        ahead = ctrl.active_trajectory.sample(r.time + PERIOD).state
        assert_allclose(r.command.positions, ahead.positions)
        assert_allclose(r.command.velocities, ahead.velocities)


def test_trajectory_blends_from_the_measured_state():
    start = [0.3, 0.3, -0.3]
    ctrl = TrajectoryController(config())
    ctrl.accept(three_points())
    first = ctrl.update(T0, PerfectPlant(start).measure(), PERIOD)
    assert_allclose(first.reference.positions, start)
    assert first.index == 0


# --------------------------------------------------------------------------- aborts
def test_stuck_joint_violates_path_tolerance_and_holds():
    ctrl = TrajectoryController(config(tolerances=tolerances(path=0.05)))
    plant = StuckPlant(index=1)
    ctrl.accept(three_points())
    results = run(ctrl, plant, T0, 3.0)
    last = results[-1]
    assert last.outcome is not None
    assert last.outcome.error_code == ErrorCode.PATH_TOLERANCE_VIOLATED
    assert not last.outcome.succeeded
    assert 'path tolerance' in last.outcome.error_string
    assert 'j1' in last.outcome.error_string
    assert last.time < T0 + WAYPOINTS[-1][0]
    # The arm stops where it is: the command is the measured position, from now on.
    assert_allclose(last.command.positions, last.feedback.positions)
    stopped_at = last.feedback.positions.copy()
    after = run(ctrl, plant, last.time + PERIOD, 1.0)
    assert not outcomes(after)
    for r in after:
        assert_allclose(r.command.positions, stopped_at)
    assert_allclose(plant.q, stopped_at)


def test_path_tolerance_of_a_single_joint():
    tol = SegmentTolerances((StateTolerance(), StateTolerance(), StateTolerance(position=0.05)),
                            (StateTolerance(),) * N, 0.0)
    ctrl = TrajectoryController(config(tolerances=tol))
    ctrl.accept(three_points())
    assert run(ctrl, StuckPlant(index=1), T0, 3.0)[-1].outcome.succeeded  # j1 unchecked
    ctrl = TrajectoryController(config(tolerances=tol))
    ctrl.accept(three_points())
    outcome = run(ctrl, StuckPlant(index=2), T0, 3.0)[-1].outcome
    assert outcome.error_code == ErrorCode.PATH_TOLERANCE_VIOLATED and 'j2' in outcome.error_string


def test_path_tolerance_checked_on_the_first_sample_even_past_the_end():
    # A single point at time 0 is 'past the end' at once; JTC still checks the path tolerance.
    ctrl = TrajectoryController(config(tolerances=tolerances(path=0.1, goal=0.01)))
    ctrl.accept(goal((0.0, [1.0, 0.0, 0.0])))
    results = run(ctrl, StuckPlant(index=0), T0, 1.0)
    assert results[-1].outcome.error_code == ErrorCode.PATH_TOLERANCE_VIOLATED
    assert results[-1].time == T0


def test_single_point_at_time_zero_within_path_tolerance_then_succeeds():
    ctrl = TrajectoryController(config(tolerances=tolerances(path=0.1, goal=0.01)))
    ctrl.accept(goal((0.0, [0.05, 0.0, 0.0])))
    results = run(ctrl, PerfectPlant(), T0, 1.0)
    assert results[0].outcome is None  # path ok, goal not yet reached: keep going
    assert len(results) == 2 and results[-1].outcome.succeeded


def test_goal_tolerance_violated_after_goal_time():
    goal_time = 0.5
    ctrl = TrajectoryController(config(tolerances=tolerances(goal=0.01, goal_time=goal_time)))
    plant = BlockedPlant(index=2, ceiling=0.6)  # j2 should reach 0.9
    ctrl.accept(three_points())
    results = run(ctrl, plant, T0, 5.0)
    last = results[-1]
    assert last.outcome.error_code == ErrorCode.GOAL_TOLERANCE_VIOLATED
    assert 'goal_time_tolerance' in last.outcome.error_string
    assert 'j2' in last.outcome.error_string
    end_time = T0 + WAYPOINTS[-1][0]
    assert end_time + goal_time < last.time <= end_time + goal_time + PERIOD + 1e-9
    assert_allclose(last.command.positions, last.feedback.positions)
    assert len(outcomes(results)) == 1
    # Holding afterwards.
    for r in run(ctrl, plant, last.time + PERIOD, 0.5):
        assert r.outcome is None
        assert_allclose(r.command.positions, last.feedback.positions)


def test_zero_goal_time_waits_forever():
    ctrl = TrajectoryController(config(tolerances=tolerances(goal=0.01, goal_time=0.0)))
    plant = BlockedPlant(index=2, ceiling=0.6)
    ctrl.accept(three_points())
    results = run(ctrl, plant, T0, 30.0, period=0.05)
    assert not outcomes(results)
    assert_allclose(results[-1].command.positions, END)  # still commanding the last point


def test_position_only_command_never_checks_velocity():
    # stopped_velocity_tolerance can never trip with a position-only command interface.
    class Shaking(PerfectPlant):
        def measure(self):
            return JointSample(self.q.copy(), np.full(N, 5.0), np.zeros(N))

    tol = tolerances(path=0.01, goal=0.01, goal_velocity=0.01, goal_time=0.5)
    ctrl = TrajectoryController(config(tolerances=tol))
    ctrl.accept(three_points())
    assert run(ctrl, Shaking(), T0, 3.0)[-1].outcome.succeeded

    ctrl = TrajectoryController(config(command_interfaces=('position', 'velocity'),
                                       tolerances=tol))
    ctrl.accept(three_points())
    outcome = run(ctrl, Shaking(), T0, 3.0)[-1].outcome
    assert outcome.error_code == ErrorCode.GOAL_TOLERANCE_VIOLATED
    assert 'velocity' in outcome.error_string


def test_default_tolerances_of_the_config():
    ctrl = TrajectoryController(config())
    ctrl.accept(three_points())
    assert run(ctrl, StuckPlant(index=0), T0, 3.0)[-1].outcome.succeeded  # nothing checked


def test_goal_tolerances_override_config_defaults():
    ctrl = TrajectoryController(config(tolerances=tolerances()))
    ctrl.accept(three_points(), tolerances(path=0.05))
    assert run(ctrl, StuckPlant(index=0), T0, 3.0)[-1].outcome.error_code \
        == ErrorCode.PATH_TOLERANCE_VIOLATED


# --------------------------------------------------------------------------- hold and replace
def test_update_without_trajectory_holds_measured_position():
    ctrl = TrajectoryController(config())
    assert not ctrl.has_trajectory
    measured = PerfectPlant([0.1, 0.2, 0.3]).measure()
    r = ctrl.update(T0, measured, PERIOD)
    assert ctrl.has_trajectory
    assert r.outcome is None
    assert_allclose(r.command.positions, measured.positions)


def test_hold_before_any_update_is_harmless():
    ctrl = TrajectoryController(config())
    ctrl.hold()
    assert not ctrl.has_trajectory
    r = ctrl.update(T0, PerfectPlant([0.1, 0.2, 0.3]).measure(), PERIOD)
    assert_allclose(r.command.positions, [0.1, 0.2, 0.3])


def test_hold_stops_at_the_measured_position():
    ctrl = TrajectoryController(config(tolerances=tolerances(path=0.05, goal=0.01, goal_time=1)))
    plant = LagPlant(alpha=0.3)
    ctrl.accept(three_points())
    results = run(ctrl, plant, T0, 1.0)
    measured = results[-1].feedback.positions.copy()
    ctrl.hold()
    after = run(ctrl, plant, results[-1].time + PERIOD, 2.0)
    assert not outcomes(after)  # a hold is never judged against the old goal
    for r in after:
        assert_allclose(r.command.positions, measured)
        assert_allclose(r.reference.positions, measured)
    assert_allclose(plant.q, measured, atol=1e-6)


def test_accept_mid_way_replaces_and_blends_from_current_state():
    ctrl = TrajectoryController(config(tolerances=tolerances(path=0.05, goal=0.001)))
    plant = LagPlant(alpha=0.5)
    ctrl.accept(three_points())
    first = run(ctrl, plant, T0, 1.0)
    old = ctrl.active_trajectory
    assert not outcomes(first)
    target = [-0.3, 0.4, 0.0]
    ctrl.accept(goal((1.0, target)))
    assert ctrl.active_trajectory is not old
    now = first[-1].time + PERIOD
    measured = plant.measure()
    r = ctrl.update(now, measured, PERIOD)
    plant.apply(r.command, PERIOD)
    assert_allclose(r.reference.positions, measured.positions)  # blend starts where it is
    assert ctrl.active_trajectory.start_time == now
    results = run(ctrl, plant, now + PERIOD, 3.0)
    assert results[-1].outcome.succeeded
    assert results[-1].time >= now + 1.0 - 1e-9
    assert_allclose(plant.q, target, atol=1e-3)


def test_interpolate_from_desired_state_blends_from_last_reference():
    for from_desired in (False, True):
        ctrl = TrajectoryController(config(interpolate_from_desired_state=from_desired))
        plant = StuckPlant(index=0)
        ctrl.accept(three_points())
        last = run(ctrl, plant, T0, 1.0)[-1]
        ctrl.accept(goal((1.0, [0.0, 0.0, 0.0])))
        r = ctrl.update(last.time + PERIOD, plant.measure(), PERIOD)
        expected = last.reference.positions if from_desired else plant.measure().positions
        assert_allclose(r.reference.positions, expected)


def test_future_stamp_blends_from_pick_up_and_arrives_on_time():
    """Upstream starts blending at pick-up and reaches point 0 at stamp + time_from_start."""
    ctrl = TrajectoryController(config())
    plant = PerfectPlant([0.1, 0.1, 0.1])
    run(ctrl, plant, T0, 0.1)  # holding
    stamp = T0 + 1.0
    ctrl.accept(goal((0.5, [0.5, 0.5, 0.5]), stamp=stamp))
    before = run(ctrl, plant, T0 + 0.2, 0.7)
    assert all(r.outcome is None for r in before)
    assert 0.1 < before[-1].reference.positions[0] < 0.5  # on its way, not yet there
    results = run(ctrl, plant, T0 + 0.9, 2.0)
    assert results[-1].outcome.succeeded
    reached = next(r for r in results if abs(r.reference.positions[0] - 0.5) < 1e-9)
    assert reached.time == pytest.approx(stamp + 0.5, abs=PERIOD + 1e-9)
    assert_allclose(plant.q, [0.5, 0.5, 0.5])


def test_partial_goal_keeps_other_joints_at_their_command():
    ctrl = TrajectoryController(config(allow_partial_joints_goal=True))
    plant = PerfectPlant()
    ctrl.accept(three_points())
    run(ctrl, plant, T0, 3.0)
    g = goal((1.0, [0.0]), names=('j1',))
    assert ctrl.validate(g, T0 + 3.0) is None
    ctrl.accept(g)
    results = run(ctrl, plant, T0 + 3.01, 2.0)
    assert results[-1].outcome.succeeded
    assert_allclose(plant.q, [END[0], 0.0, END[2]])
    for r in results:
        assert r.command.positions[0] == pytest.approx(END[0])
        assert r.command.positions[2] == pytest.approx(END[2])


def test_jumbled_joint_order_executes_like_canonical_order():
    order = (2, 0, 1)
    jumbled = goal(*[(t, [p[i] for i in order]) for t, p in WAYPOINTS],
                   names=[JOINTS[i] for i in order])
    commands = []
    for g in (three_points(), jumbled):
        ctrl = TrajectoryController(config())
        ctrl.accept(g)
        commands.append([r.command.positions for r in run(ctrl, PerfectPlant(), T0, 2.5)])
    assert_allclose(np.array(commands[0]), np.array(commands[1]))


def test_no_interpolation_commands_the_next_waypoint():
    ctrl = TrajectoryController(config(interpolation_method='none'))
    ctrl.accept(three_points())
    plant = PerfectPlant()
    by_time = {round(r.time - T0, 2): r for r in run(ctrl, plant, T0, 2.5)}
    assert_allclose(by_time[0.2].command.positions, np.zeros(N))  # pick-up state until point 0
    assert_allclose(by_time[0.8].command.positions, WAYPOINTS[1][1])
    assert_allclose(by_time[1.5].command.positions, WAYPOINTS[2][1])
    assert_allclose(plant.q, END)


# --------------------------------------------------------------------------- continuous joints
def wrap(x):
    return (np.asarray(x) + math.pi) % (2 * math.pi) - math.pi


def test_continuous_joint_error_is_wrapped():
    ctrl = TrajectoryController(config(continuous_joints=frozenset({'j0'})))
    ctrl.accept(goal((0.0, [math.pi - 0.05, math.pi - 0.05, 0.0])))
    measured = PerfectPlant([-math.pi + 0.05, -math.pi + 0.05, 0.0]).measure()
    r = ctrl.update(T0, measured, PERIOD)
    assert r.error.positions[0] == pytest.approx(-0.1)  # shortest way round
    assert r.error.positions[1] == pytest.approx(2 * math.pi - 0.1)  # j1 is not continuous


@pytest.mark.parametrize('offset', [0.0, 2 * math.pi, -2 * math.pi, 6 * math.pi, 3.0, -3.0, 4.0])
def test_continuous_joint_error_in_minus_pi_pi(offset):
    ctrl = TrajectoryController(config(continuous_joints=frozenset(JOINTS)))
    ctrl.accept(goal((0.0, [0.4, -2.5, 3.0])))
    measured = PerfectPlant(np.array([0.4, -2.5, 3.0]) + offset).measure()
    err = ctrl.update(T0, measured, PERIOD).error.positions
    assert np.all(err >= -math.pi) and np.all(err <= math.pi)
    assert_allclose(err, wrap(-offset) * np.ones(N), atol=1e-9)


def test_continuous_joint_crossing_pi_with_wrapped_encoder():
    class WrappingEncoder(PerfectPlant):
        def measure(self):
            s = super().measure()
            return JointSample(np.where(np.arange(N) == 0, wrap(s.positions), s.positions),
                               s.velocities, s.accelerations)

    tol = tolerances(path=0.05, goal=0.01)
    g = goal((1.0, [3.3, 0.0, 0.0]))
    ctrl = TrajectoryController(config(continuous_joints=frozenset({'j0'}), tolerances=tol))
    ctrl.accept(g)
    assert run(ctrl, WrappingEncoder([3.0, 0.0, 0.0]), T0, 2.0)[-1].outcome.succeeded
    ctrl = TrajectoryController(config(tolerances=tol))  # j0 not declared continuous
    ctrl.accept(g)
    outcome = run(ctrl, WrappingEncoder([3.0, 0.0, 0.0]), T0, 2.0)[-1].outcome
    assert outcome.error_code == ErrorCode.PATH_TOLERANCE_VIOLATED


# --------------------------------------------------------------------------- velocity / effort
GAINS = PidGains(p=2.0, i=0.5, d=0.1, ff_velocity_scale=0.8)


@pytest.mark.parametrize('interface', ['velocity', 'effort'])
def test_velocity_or_effort_only_is_feed_forward_plus_pid(interface):
    ctrl = TrajectoryController(config(command_interfaces=(interface,),
                                       gains={j: GAINS for j in JOINTS}))
    target = np.array([1.0, -2.0, 0.5])
    ctrl.accept(goal((2.0, list(target))))  # linear blend: constant reference velocity
    measured = PerfectPlant().measure()  # the arm does not move
    integral = np.zeros(N)
    for k in range(20):
        r = ctrl.update(T0 + k * PERIOD, measured, PERIOD)
        v_ref = target / 2.0
        assert_allclose(r.reference.velocities, v_ref)
        e = r.reference.positions - measured.positions
        integral += e * PERIOD
        expected = (GAINS.ff_velocity_scale * v_ref + GAINS.p * e + GAINS.i * integral
                    + GAINS.d * (v_ref - measured.velocities))
        out = r.command.velocities if interface == 'velocity' else r.command.efforts
        assert_allclose(out, expected, atol=1e-12)
        assert r.command.positions is None
        if interface == 'velocity':
            assert r.command.efforts is None
        else:
            assert r.command.velocities is None


def test_velocity_only_feed_forward_tracks_in_closed_loop():
    gains = PidGains(p=5.0, ff_velocity_scale=1.0)
    ctrl = TrajectoryController(config(command_interfaces=('velocity',),
                                       gains={j: gains for j in JOINTS},
                                       tolerances=tolerances(path=0.02, goal=0.01, goal_time=1.0)))
    plant = PerfectPlant()
    ctrl.accept(three_points())
    results = run(ctrl, plant, T0, 4.0)
    assert results[-1].outcome.succeeded
    assert_allclose(plant.q, END, atol=0.01)


def test_integral_is_clamped():
    gains = PidGains(i=1.0, i_clamp=0.001)
    ctrl = TrajectoryController(config(command_interfaces=('velocity',),
                                       gains={j: gains for j in JOINTS}))
    ctrl.accept(goal((0.0, [1.0, 1.0, 1.0])))
    measured = PerfectPlant().measure()
    for k in range(50):
        r = ctrl.update(T0 + k * PERIOD, measured, PERIOD)
    assert_allclose(r.command.velocities, 0.001)


def test_joint_without_gains_gets_zero_command():
    ctrl = TrajectoryController(config(command_interfaces=('velocity',),
                                       gains={'j0': PidGains(p=1.0)}))
    ctrl.accept(goal((0.0, [1.0, 1.0, 1.0])))
    r = ctrl.update(T0, PerfectPlant().measure(), PERIOD)
    assert_allclose(r.command.velocities, [1.0, 0.0, 0.0])


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize('kwargs,parameter', [
    (dict(joints=()), 'joints'),
    (dict(joints=('a', 'b', 'a')), 'joints'),
    (dict(command_interfaces=('torque',)), 'command_interfaces'),
    (dict(command_interfaces=('position', 'bogus')), 'command_interfaces'),
    (dict(command_interfaces=()), 'command_interfaces'),
    (dict(state_interfaces=('velocity',)), 'state_interfaces'),
    (dict(state_interfaces=('position', 'effort')), 'state_interfaces'),
    (dict(interpolation_method='cubic'), 'interpolation_method'),
])
def test_config_rejects_bad_parameters(kwargs, parameter):
    kwargs = {'joints': JOINTS, **kwargs}
    with pytest.raises(ValueError, match=parameter):
        ControllerConfig(**kwargs)


def test_config_defaults():
    cfg = config()
    assert cfg.position_only
    tol = cfg.default_tolerances
    assert tol.goal_time == 0.0
    assert all(t.velocity == 0.01 for t in tol.goal)  # stopped_velocity_tolerance default
    assert not config(command_interfaces=('position', 'velocity')).position_only


def test_validate_uses_the_config():
    effort_goal = TrajectoryGoal(list(JOINTS), [GoalPoint(1.0, [0, 0, 0], effort=[1, 1, 1])])
    assert TrajectoryController(config()).validate(effort_goal, T0) is not None
    assert TrajectoryController(config(command_interfaces=('effort',))).validate(
        effort_goal, T0) is None
    unknown = TrajectoryGoal(['j0', 'j1', 'x'], [GoalPoint(1.0, [0, 0, 0])])
    assert 'x' in TrajectoryController(config()).validate(unknown, T0)


def test_error_codes_match_control_msgs():
    assert ErrorCode.SUCCESSFUL == 0
    assert ErrorCode.INVALID_GOAL == -1
    assert ErrorCode.INVALID_JOINTS == -2
    assert ErrorCode.OLD_HEADER_TIMESTAMP == -3
    assert ErrorCode.PATH_TOLERANCE_VIOLATED == -4
    assert ErrorCode.GOAL_TOLERANCE_VIOLATED == -5


def test_hold_with_a_fresh_measurement_forgets_the_old_command():
    """After the hardware came back somewhere else, the first command is where it is now."""
    ctrl = TrajectoryController(config())
    plant = PerfectPlant()
    ctrl.accept(three_points())
    run(ctrl, plant, T0, 3.0)
    elsewhere = JointSample.at_rest(np.array([-0.3, 0.2, 0.1]))
    ctrl.hold(elsewhere)
    r = ctrl.update(T0 + 10.0, elsewhere, PERIOD)
    assert_allclose(r.command.positions, elsewhere.positions)
