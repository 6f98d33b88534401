"""Unit tests for core/trajectory.py: joint_trajectory_controller's spline sampling.

Segment degree depends on what both ends carry (positions -> linear, + velocities -> cubic,
+ accelerations -> quintic); before point 0 the trajectory blends from the state it was picked
up in; past the end it holds the last point. No ROS.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from reverse_digital_twin.core.trajectory import JointSample, Trajectory, TrajectoryPoint
from reverse_digital_twin.core.trajectory import TrajectorySample, _segment

JOINTS = [f'j{i}' for i in range(3)]
N = len(JOINTS)
EPS = 1e-7  # s, for one-sided limits at waypoints
T0 = 100.0  # s, an arbitrary absolute pick-up time


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)


def point(t: float, p, v=None, a=None) -> TrajectoryPoint:
    return TrajectoryPoint(t, np.asarray(p, dtype=float),
                           None if v is None else np.asarray(v, dtype=float),
                           None if a is None else np.asarray(a, dtype=float))


def started(points, start_state=None, time=T0, start_time=None, interpolate=True) -> Trajectory:
    traj = Trajectory(points, start_time=start_time, interpolate=interpolate)
    if start_state is None:
        start_state = JointSample.at_rest(points[0].positions)
    traj.start_from(time, start_state)
    return traj


def sample(traj: Trajectory, time: float) -> TrajectorySample:
    s = traj.sample(time)
    assert s is not None, f'no sample at {time}'
    return s


def numeric_derivative(f, t: float, h: float = 1e-5) -> np.ndarray:
    return (f(t + h) - f(t - h)) / (2 * h)


# Three waypoints after an at-rest start at point 0; all start at time_from_start 0.
P0, P1, P2 = arr(0.0, 1.0, -0.5), arr(0.8, 0.2, 0.4), arr(1.2, -0.3, 1.0)
V0, V1, V2 = arr(0.0, 0.0, 0.0), arr(0.5, -0.6, 0.9), arr(0.0, 0.0, 0.0)
A0, A1, A2 = arr(0.0, 0.0, 0.0), arr(-1.0, 2.0, 0.3), arr(0.0, 0.0, 0.0)
TIMES = (0.0, 1.0, 2.5)


def linear_points():
    return [point(t, p) for t, p in zip(TIMES, (P0, P1, P2))]


def cubic_points():
    return [point(t, p, v) for t, p, v in zip(TIMES, (P0, P1, P2), (V0, V1, V2))]


def quintic_points():
    return [point(t, p, v, a) for t, p, v, a in
            zip(TIMES, (P0, P1, P2), (V0, V1, V2), (A0, A1, A2))]


# --------------------------------------------------------------------------- segment degree
class TestSegmentBoundaries:
    """_segment at t = 0 and t = T reproduces the waypoints exactly."""

    p0, v0, a0 = arr(0.3, -1.0), arr(0.5, 2.0), arr(-1.0, 4.0)
    p1, v1, a1 = arr(1.1, 0.5), arr(-0.7, 0.0), arr(3.0, -2.0)
    T = 1.7

    def test_linear_ends(self):
        for t, p in ((0.0, self.p0), (self.T, self.p1)):
            s = _segment(t, self.T, self.p0, None, None, self.p1, None, None)
            assert_allclose(s.positions, p, atol=1e-12)
            assert_allclose(s.velocities, (self.p1 - self.p0) / self.T, atol=1e-12)
            assert_allclose(s.accelerations, 0.0, atol=0)

    def test_cubic_ends(self):
        for t, p, v in ((0.0, self.p0, self.v0), (self.T, self.p1, self.v1)):
            s = _segment(t, self.T, self.p0, self.v0, None, self.p1, self.v1, None)
            assert_allclose(s.positions, p, atol=1e-12)
            assert_allclose(s.velocities, v, atol=1e-12)

    def test_quintic_ends(self):
        for t, p, v, a in ((0.0, self.p0, self.v0, self.a0), (self.T, self.p1, self.v1, self.a1)):
            s = _segment(t, self.T, self.p0, self.v0, self.a0, self.p1, self.v1, self.a1)
            assert_allclose(s.positions, p, atol=1e-10)
            assert_allclose(s.velocities, v, atol=1e-10)
            assert_allclose(s.accelerations, a, atol=1e-9)

    @pytest.mark.parametrize('degree', ['linear', 'cubic', 'quintic'])
    def test_derivatives_are_consistent(self, degree):
        v0, v1 = (None, None) if degree == 'linear' else (self.v0, self.v1)
        a0, a1 = (self.a0, self.a1) if degree == 'quintic' else (None, None)

        def at(t):
            return _segment(t, self.T, self.p0, v0, a0, self.p1, v1, a1)

        for t in (0.2, 0.85, 1.4):
            assert_allclose(at(t).velocities, numeric_derivative(lambda x: at(x).positions, t),
                            atol=1e-6)
            assert_allclose(at(t).accelerations,
                            numeric_derivative(lambda x: at(x).velocities, t), atol=1e-5)

    def test_time_is_clamped_to_the_segment(self):
        before = _segment(-1.0, self.T, self.p0, self.v0, None, self.p1, self.v1, None)
        after = _segment(self.T + 5, self.T, self.p0, self.v0, None, self.p1, self.v1, None)
        assert_allclose(before.positions, self.p0)
        assert_allclose(after.positions, self.p1)

    def test_zero_duration_gives_the_end_point(self):
        s = _segment(0.0, 0.0, self.p0, None, None, self.p1, self.v1, None)
        assert_allclose(s.positions, self.p1)
        assert_allclose(s.velocities, self.v1)
        assert_allclose(s.accelerations, 0.0)


class TestDegreeDependsOnBothEnds:
    def test_positions_only_is_linear_with_constant_slope(self):
        traj = started(linear_points())
        slope = (P1 - P0) / (TIMES[1] - TIMES[0])
        for t in np.linspace(0.0, 0.999, 7):
            s = sample(traj, T0 + t)
            assert_allclose(s.state.positions, P0 + slope * t, atol=1e-12)
            assert_allclose(s.state.velocities, slope, atol=1e-12)
            assert_allclose(s.state.accelerations, 0.0, atol=0)

    def test_linear_velocity_jumps_at_waypoints(self):
        traj = started(linear_points())
        before = sample(traj, T0 + TIMES[1] - EPS).state
        after = sample(traj, T0 + TIMES[1] + EPS).state
        assert_allclose(before.positions, after.positions, atol=1e-6)  # position continuous
        assert_allclose(before.velocities, (P1 - P0) / 1.0)
        assert_allclose(after.velocities, (P2 - P1) / 1.5)

    def test_velocities_on_one_end_only_is_linear(self):
        pts = [point(0.0, P0, V0), point(1.0, P1)]  # second end lacks velocities
        s = sample(started(pts), T0 + 0.4).state
        assert_allclose(s.positions, P0 + (P1 - P0) * 0.4, atol=1e-12)
        assert_allclose(s.velocities, P1 - P0, atol=1e-12)
        assert_allclose(s.accelerations, 0.0)

    def test_positions_and_velocities_is_cubic(self):
        traj = started(cubic_points())
        # Boundary conditions of segment 0 -> 1: position and velocity at both ends.
        s0 = sample(traj, T0 + 0.0).state
        assert_allclose(s0.positions, P0, atol=1e-12)
        assert_allclose(s0.velocities, V0, atol=1e-12)
        s1 = sample(traj, T0 + 1.0 - EPS).state
        assert_allclose(s1.positions, P1, atol=1e-5)
        assert_allclose(s1.velocities, V1, atol=1e-5)
        # A cubic, not a straight line: the midpoint differs from the linear interpolation.
        mid = sample(traj, T0 + 0.5).state
        assert not np.allclose(mid.positions, (P0 + P1) / 2)
        expected = P0 + V0 * 0.5 + (3 * (P1 - P0) - (2 * V0 + V1)) * 0.25 \
            + (-2 * (P1 - P0) + (V0 + V1)) * 0.125
        assert_allclose(mid.positions, expected, atol=1e-12)

    def test_accelerations_on_one_end_only_is_cubic(self):
        with_acc = [point(0.0, P0, V0, A0), point(1.0, P1, V1)]
        without = [point(0.0, P0, V0), point(1.0, P1, V1)]
        for t in (0.1, 0.5, 0.9):
            a = sample(started(with_acc), T0 + t).state
            b = sample(started(without), T0 + t).state
            assert_allclose(a.positions, b.positions, atol=1e-12)
            assert_allclose(a.velocities, b.velocities, atol=1e-12)
            assert_allclose(a.accelerations, b.accelerations, atol=1e-12)

    def test_positions_velocities_accelerations_is_quintic(self):
        traj = started(quintic_points())
        for t_end, p, v, a in ((TIMES[1], P1, V1, A1), (TIMES[2], P2, V2, A2)):
            s = sample(traj, T0 + t_end - EPS).state
            assert_allclose(s.positions, p, atol=1e-5)
            assert_allclose(s.velocities, v, atol=1e-5)
            assert_allclose(s.accelerations, a, atol=1e-4)
        for t_start, p, v, a in ((TIMES[0], P0, V0, A0), (TIMES[1], P1, V1, A1)):
            s = sample(traj, T0 + t_start).state
            assert_allclose(s.positions, p, atol=1e-12)
            assert_allclose(s.velocities, v, atol=1e-12)
            assert_allclose(s.accelerations, a, atol=1e-12)

    @pytest.mark.parametrize('make', [cubic_points, quintic_points], ids=['cubic', 'quintic'])
    def test_continuous_at_waypoints(self, make):
        traj = started(make())
        for t in TIMES[1:-1]:
            before = sample(traj, T0 + t - EPS).state
            after = sample(traj, T0 + t + EPS).state
            assert_allclose(before.positions, after.positions, atol=1e-5)
            assert_allclose(before.velocities, after.velocities, atol=1e-5)
            if make is quintic_points:
                assert_allclose(before.accelerations, after.accelerations, atol=1e-4)

    def test_joints_are_interpolated_independently(self):
        pts = [point(0.0, P0), point(2.0, P1)]
        full = sample(started(pts), T0 + 0.7).state.positions
        for j in range(N):
            single = [point(0.0, P0[j:j + 1]), point(2.0, P1[j:j + 1])]
            assert full[j] == pytest.approx(sample(started(single), T0 + 0.7).state.positions[0])


# --------------------------------------------------------------------------- start and end
class TestBlendFromStartState:
    start = JointSample(arr(-0.4, 0.3, 0.0), arr(0.2, -0.1, 0.5), arr(0.0, 0.0, 0.0))

    def test_linear_blend_into_point_0(self):
        traj = started([point(2.0, P1)], self.start)
        assert traj.start_time == T0
        s = sample(traj, T0 + 0.5)
        assert s.index == 0 and not s.past_end
        assert_allclose(s.state.positions, self.start.positions + (P1 - self.start.positions) / 4)
        assert_allclose(s.state.velocities, (P1 - self.start.positions) / 2)

    def test_blend_starts_at_the_start_state(self):
        traj = started([point(2.0, P1, V1)], self.start)
        s = sample(traj, T0).state
        assert_allclose(s.positions, self.start.positions, atol=1e-12)
        assert_allclose(s.velocities, self.start.velocities, atol=1e-12)

    def test_cubic_blend_uses_state_velocity(self):
        # Point 0 carries velocities: the blend is cubic from (start p, start v) to (P1, V1).
        traj = started([point(2.0, P1, V1), point(3.0, P2, V2)], self.start)
        end = sample(traj, T0 + 2.0 - EPS).state
        assert_allclose(end.positions, P1, atol=1e-5)
        assert_allclose(end.velocities, V1, atol=1e-5)
        expected = _segment(0.8, 2.0, self.start.positions, self.start.velocities, None,
                            P1, V1, None)
        assert_allclose(sample(traj, T0 + 0.8).state.positions, expected.positions)

    def test_quintic_blend_assumes_zero_state_acceleration(self):
        start = JointSample(self.start.positions, self.start.velocities, np.zeros(N))
        traj = started([point(1.0, P1, V1, A1), point(2.0, P2, V2, A2)], start)
        s = sample(traj, T0).state
        assert_allclose(s.accelerations, 0.0, atol=1e-12)
        end = sample(traj, T0 + 1.0 - EPS).state
        assert_allclose(end.accelerations, A1, atol=1e-4)

    def test_first_point_at_time_zero_is_immediate(self):
        traj = started([point(0.0, P1), point(1.0, P2)], self.start)
        s = sample(traj, T0)
        assert_allclose(s.state.positions, P1)  # no blend: a step to point 0
        assert s.index == 1

    def test_start_time_defaults_to_pickup_time(self):
        traj = Trajectory([point(1.0, P1)])
        assert not traj.started
        with pytest.raises(RuntimeError):
            traj.sample(T0)
        traj.start_from(T0, self.start)
        assert traj.started
        assert traj.start_time == T0
        assert traj.end_time == T0 + 1.0

    def test_future_start_time_blends_from_pick_up(self):
        # Upstream blends from the pick-up time to stamp + time_from_start of point 0.
        start_time = T0 + 3.0
        traj = started([point(1.0, P1), point(2.0, P2)], self.start, start_time=start_time)
        assert traj.sample(T0 - 1e-6) is None
        assert_allclose(sample(traj, T0).state.positions, self.start.positions)
        assert_allclose(sample(traj, T0 + 2.0).state.positions,
                        (self.start.positions + P1) / 2)
        assert_allclose(sample(traj, start_time + 1.0).state.positions, P1)
        assert traj.end_time == start_time + 2.0

    def test_past_start_time_samples_mid_trajectory(self):
        # Stamp in the past but end in the future: sampled where the trajectory is now.
        traj = started(linear_points(), start_time=T0 - 1.5)
        s = sample(traj, T0)
        assert s.index == 2
        assert_allclose(s.state.positions, P1 + (P2 - P1) * (0.5 / 1.5))


class TestEndAndIndex:
    def test_index_is_the_waypoint_being_approached(self):
        traj = started([point(1.0, P0), point(2.0, P1), point(3.0, P2)],
                       JointSample.at_rest(np.zeros(N)))
        assert sample(traj, T0 + 0.5).index == 0
        assert sample(traj, T0 + 1.0).index == 1
        assert sample(traj, T0 + 1.5).index == 1
        assert sample(traj, T0 + 2.999).index == 2
        assert sample(traj, T0 + 3.0).index == 2

    @pytest.mark.parametrize('after', [0.0, 0.01, 100.0])
    def test_past_end_returns_last_point(self, after):
        traj = started(cubic_points())
        s = sample(traj, T0 + TIMES[-1] + after)
        assert s.past_end
        assert s.index == len(TIMES) - 1
        assert_allclose(s.state.positions, P2)
        assert_allclose(s.state.velocities, V2)
        assert_allclose(s.state.accelerations, 0.0)

    def test_before_end_is_not_past_end(self):
        traj = started(cubic_points())
        assert not sample(traj, T0 + TIMES[-1] - EPS).past_end

    def test_last_point_without_velocities_holds_with_zero_velocity(self):
        s = sample(started(linear_points()), T0 + 10.0)
        assert_allclose(s.state.velocities, np.zeros(N))
        assert_allclose(s.state.accelerations, np.zeros(N))

    def test_last_point_nonzero_velocity_is_kept(self):
        pts = [point(0.0, P0, V0), point(1.0, P1, V1)]
        assert_allclose(sample(started(pts), T0 + 5.0).state.velocities, V1)

    def test_single_point_trajectory(self):
        traj = started([point(0.0, P1)], JointSample.at_rest(P0))
        s = sample(traj, T0)
        assert s.past_end and s.index == 0
        assert_allclose(s.state.positions, P1)

    def test_samples_do_not_alias_the_waypoints(self):
        traj = started(linear_points())
        s = sample(traj, T0 + 10.0)
        s.state.positions[:] = 42.0
        assert_allclose(traj.points[-1].positions, P2)

    def test_empty_trajectory_is_refused(self):
        with pytest.raises(ValueError):
            Trajectory([])


class TestNoInterpolation:
    """interpolation_method 'none': the sample is the next waypoint, held until it is passed."""

    def test_returns_next_waypoint(self):
        traj = started(quintic_points(), interpolate=False)
        s = sample(traj, T0 + 0.3)
        assert s.index == 1
        assert_allclose(s.state.positions, P1)
        assert_allclose(s.state.velocities, V1)
        assert_allclose(s.state.accelerations, A1)
        assert_allclose(sample(traj, T0 + 1.0).state.positions, P2)
        assert_allclose(sample(traj, T0 + 2.4).state.positions, P2)

    def test_before_first_point_holds_the_pick_up_state(self):
        traj = started([point(1.0, P1), point(2.0, P2)], JointSample.at_rest(P0),
                       interpolate=False)
        s = sample(traj, T0 + 0.2)
        assert s.index == 0
        assert_allclose(s.state.positions, P0)
        assert_allclose(s.state.velocities, 0.0)

    def test_past_end(self):
        traj = started(linear_points(), interpolate=False)
        s = sample(traj, T0 + 3.0)
        assert s.past_end
        assert_allclose(s.state.positions, P2)


def test_joint_sample_at_rest():
    s = JointSample.at_rest([1, 2, 3])
    assert s.positions.dtype == float
    assert_allclose(s.positions, [1.0, 2.0, 3.0])
    assert_allclose(s.velocities, np.zeros(3))
    assert_allclose(s.accelerations, np.zeros(3))
