"""The bounded look-ahead: parts that follow the goal exactly, then stop on its path."""
from __future__ import annotations

import numpy as np
import pytest

from reverse_digital_twin.core.goal import GoalPoint
from reverse_digital_twin.core.lookahead import EXTEND, RAN_OUT, JointStart, LookAhead
from reverse_digital_twin.core.trajectory import TrajectoryPoint, interpolate_waypoints

HORIZON = 1.0


def waypoints(fields: str, n: int = 6, duration: float = 6.0) -> list[GoalPoint]:
    """A two-joint goal with ``fields`` ('p', 'pv' or 'pva') along a smooth curve."""
    times = np.linspace(0.0, duration, n)
    out = []
    for t in times:
        w = 2 * np.pi * t / duration
        p = [0.5 * np.sin(w), -0.3 * (1 - np.cos(w))]
        v = [0.5 * np.cos(w) * 2 * np.pi / duration, -0.3 * np.sin(w) * 2 * np.pi / duration]
        a = [-0.5 * np.sin(w) * (2 * np.pi / duration) ** 2,
             -0.3 * np.cos(w) * (2 * np.pi / duration) ** 2]
        last = t == times[-1]
        out.append(GoalPoint(float(t), p, ([0.0, 0.0] if last else v) if 'v' in fields else (),
                             ([0.0, 0.0] if last else a) if 'a' in fields else ()))
    return out


def splines(points: list[GoalPoint]) -> list[TrajectoryPoint]:
    def arr(values):
        return np.array(values, float) if len(values) else None
    return [TrajectoryPoint(p.time_from_start, np.array(p.positions, float), arr(p.velocities),
                            arr(p.accelerations)) for p in points]


def at(points: list[GoalPoint], t: float) -> np.ndarray:
    return interpolate_waypoints(splines(points), t).state.positions


@pytest.mark.parametrize('fields', ['p', 'pv', 'pva'])
@pytest.mark.parametrize('elapsed', [-0.5, 0.0, 1.3, 2.9])
def test_a_part_follows_the_goal_exactly_until_its_cut(fields: str, elapsed: float) -> None:
    goal = waypoints(fields)
    part = LookAhead(goal, HORIZON).part(elapsed)
    assert not part.final
    assert part.full_speed_until == pytest.approx(max(elapsed + HORIZON, 0.0))
    start = part.points[0].time_from_start
    assert start <= max(elapsed, 0.0), 'the controller must already be past its first waypoint'
    for t in np.linspace(start, part.full_speed_until, 50):
        np.testing.assert_allclose(at(part.points, t), at(goal, t), atol=1e-9)


@pytest.mark.parametrize('fields', ['p', 'pv', 'pva'])
def test_a_part_ends_at_rest_on_the_goals_path_within_half_a_horizon(fields: str) -> None:
    goal = waypoints(fields)
    part = LookAhead(goal, HORIZON).part(1.0)
    cut, stop = part.full_speed_until, part.stops_at
    assert stop == pytest.approx(cut + HORIZON / 2)
    last = part.points[-1]
    assert last.time_from_start == pytest.approx(cut + HORIZON)
    np.testing.assert_allclose(last.positions, at(goal, stop), atol=1e-12)
    if 'v' in fields:
        assert np.all(np.array(last.velocities) == 0.0)
    # every waypoint of the stop lies on the goal's path, and progress never goes back
    reached = []
    for p in part.points:
        if p.time_from_start <= cut:
            continue
        times = np.linspace(0, goal[-1].time_from_start, 1201)
        d = [np.abs(at(goal, s) - p.positions).max() for s in times]
        assert min(d) < 3e-3
        reached.append(times[int(np.argmin(d))])
    assert reached == sorted(reached)


def test_the_motion_after_the_last_part_is_bounded_by_one_and_a_half_horizons() -> None:
    goal = waypoints('pv')
    part = LookAhead(goal, HORIZON).part(2.0)
    times = np.linspace(2.0, part.points[-1].time_from_start + 1.0, 400)
    path = np.array([at(part.points, min(t, part.points[-1].time_from_start)) for t in times])
    travel = np.abs(path - path[0]).max()
    goal_travel = max(np.abs(at(goal, s) - at(goal, 2.0)).max()
                      for s in np.linspace(2.0, 2.0 + 1.5 * HORIZON, 100))
    assert travel <= goal_travel + 1e-6
    unbounded = max(np.abs(at(goal, s) - at(goal, 2.0)).max() for s in np.linspace(2.0, 6.0, 100))
    assert travel < 0.75 * unbounded


def test_a_short_goal_or_no_horizon_is_one_final_part_unchanged() -> None:
    goal = waypoints('pv', duration=1.4)
    for horizon in (HORIZON, 0.0, float('inf')):
        part = LookAhead(goal, horizon).part(0.0)
        assert part.final and part.points == goal
    assert not LookAhead(goal, HORIZON).bounded


def test_the_last_part_is_the_rest_of_the_goal() -> None:
    goal = waypoints('pv')
    part = LookAhead(goal, HORIZON).part(4.6)
    assert part.final
    assert part.points[-1] == goal[-1]
    assert part.points[0].time_from_start <= 4.6 - 0.25 * HORIZON


def test_parts_are_extended_every_quarter_horizon_and_given_up_when_too_late() -> None:
    """The pacing rule goals and streamed trajectories share: wait, extend a quarter horizon
    after the last cut, give up once the hardware is within a tenth of a horizon of its stop;
    a final part needs nothing."""
    cut = LookAhead(waypoints('pv'), HORIZON)
    part = cut.part(1.0)
    assert part.full_speed_until == pytest.approx(2.0)
    assert cut.next_step(part, 1.0, 1.1) is None
    assert cut.next_step(part, 1.0, 1.25) == EXTEND
    assert cut.next_step(part, 1.0, 1.85) == EXTEND
    assert cut.next_step(part, 1.0, 1.9) == RAN_OUT
    last = cut.part(4.6)
    assert last.final and cut.next_step(last, 4.6, 5.9) is None


def test_a_single_waypoint_goal_is_cut_from_the_measured_start() -> None:
    """A script's 'go there in 5 s': the whole motion is the blend from the measured state,
    which becomes the waypoint at time 0."""
    goal = [GoalPoint(5.0, [1.0, -1.0])]
    lookahead = LookAhead(goal, HORIZON, JointStart([0.0, 0.0], [0.0, 0.0]))
    assert lookahead.bounded
    part = lookahead.part(0.0)
    assert part.points[0] == GoalPoint(0.0, [0.0, 0.0])
    assert not part.final
    np.testing.assert_allclose(part.points[-1].positions, [0.3, -0.3], atol=1e-12)
    assert not LookAhead(goal, HORIZON).bounded  # without a start: the whole goal at once


@pytest.mark.parametrize('fields', ['p', 'pv', 'pva'])
def test_the_controller_commands_the_same_whether_given_the_goal_whole_or_in_parts(
        fields: str) -> None:
    """joint_trajectory_controller's law (core.controller) at 100 Hz: a part replacing the
    previous one every quarter look-ahead, on the same start stamp, changes no command."""
    from reverse_digital_twin.core.controller import ControllerConfig, TrajectoryController
    from reverse_digital_twin.core.goal import TrajectoryGoal
    from reverse_digital_twin.core.trajectory import JointSample
    names, stamp, period = ['a', 'b'], 100.0, 0.01
    goal = [GoalPoint(5.0, [1.0, -0.6], [0.0, 0.0] if 'v' in fields else (),
                      [0.0, 0.0] if 'a' in fields else ())]  # a script's 'there in 5 s'
    lookahead = LookAhead(goal, HORIZON, JointStart([0.0, 0.0], [0.0, 0.0]))
    commands = {}
    for mode in ('whole', 'parts'):
        controller = TrajectoryController(ControllerConfig(joints=tuple(names)))
        state = JointSample.at_rest(np.zeros(2))
        controller.update(stamp - 0.02, state, period)  # running before the goal arrives
        sent_at = None
        out = []
        for k in range(int(5.5 / period)):
            now = stamp - 0.01 + k * period
            elapsed = now - stamp
            if mode == 'whole' and k == 0:
                controller.accept(TrajectoryGoal(names, lookahead.points, stamp))
            elif mode == 'parts' and (sent_at is None or elapsed - sent_at >= HORIZON / 4):
                part = lookahead.part(elapsed)
                controller.accept(TrajectoryGoal(names, part.points, stamp))
                sent_at = elapsed
            cycle = controller.update(now, state, period)
            state = JointSample(cycle.command.positions, np.zeros(2), np.zeros(2))
            out.append(cycle.command.positions.copy())
        commands[mode] = np.array(out)
    np.testing.assert_allclose(commands['parts'], commands['whole'], atol=1e-9)
    np.testing.assert_allclose(commands['whole'][-1], [1.0, -0.6], atol=1e-9)
