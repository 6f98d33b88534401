"""The command-latency rule (core.command_latency): which commands drive each physics step."""
from __future__ import annotations

import numpy as np
import pytest

from reverse_digital_twin.core.command_latency import BOUNDARY_TOLERANCE, CommandSchedule
from reverse_digital_twin.core.command_latency import Switch, blend, step_shares, switch_point

DT = 0.002  # s, a physics step
PERIOD = 0.01  # s, a control cycle: 5 steps
N = 5


def mean_command(schedule: CommandSchedule, values: np.ndarray, step: int,
                 before: float = 0.0) -> float:
    """The time-weighted command driving ``step`` (``before``: what acts before command 0)."""
    return sum(share * (before if k < 0 else values[k]) for k, share in schedule.shares(step))


def test_a_moment_inside_a_step_switches_for_the_rest_of_it():
    assert switch_point(0.0, 0.0102, DT) == Switch(5, pytest.approx(0.9))
    assert switch_point(0.03, 0.0031, DT) == Switch(16, pytest.approx(0.45))
    assert switch_point(0.0, 0.0, DT) == Switch(0, 1.0)
    assert switch_point(0.0, 0.0102, DT).position == pytest.approx(5.1)


def test_a_moment_on_a_boundary_drives_the_whole_step_despite_rounding():
    for k in range(1, 40):
        latency = k * 0.1 * 0.1  # k cycles of 0.01 s, with float rounding in it
        assert switch_point(0.0, latency, DT) == Switch(k * N, 1.0), latency
        nearly = switch_point(0.0, k * PERIOD - BOUNDARY_TOLERANCE / 2, DT)
        assert nearly == Switch(k * N, 1.0)


def test_shares_sum_to_one_and_blend_old_and_new():
    schedule = CommandSchedule([0.0, 0.01, 0.02], 0.0102, DT)
    assert schedule.shares(4) == ((-1, 1.0),)  # the hold, nothing has taken effect yet
    (old, a), (new, b) = schedule.shares(5)
    assert (old, new) == (-1, 0) and a == pytest.approx(0.1) and b == pytest.approx(0.9)
    assert schedule.shares(6) == ((0, 1.0),)
    assert [k for k, _ in schedule.shares(10)] == [0, 1]
    assert schedule.in_force(10) == 0 and schedule.in_force(11) == 1
    assert step_shares([0.0, 0.01, 0.02], 0.0102, DT, 10) == schedule.shares(10)


def test_several_commands_within_one_step_each_get_their_share():
    """Recorded stamps jitter: two commands may take effect within one step."""
    schedule = CommandSchedule([0.0, 0.0005, 0.0012, 0.0015], 0.0, DT)
    shares = schedule.shares(0)
    assert [k for k, _ in shares] == [0, 1, 2, 3]
    np.testing.assert_allclose([s for _, s in shares], [0.25, 0.35, 0.15, 0.25])
    same_time = CommandSchedule([0.0, 0.001, 0.001], 0.0, DT)
    assert [k for k, _ in same_time.shares(0)] == [0, 2]  # the later of two equal stamps wins


def test_whole_cycles_of_latency_are_the_integer_cycle_delay():
    """latency = k periods: command c acts alone on exactly the steps of cycle c + k."""
    times = np.arange(20) * PERIOD
    for k in range(4):
        schedule = CommandSchedule(times, k * PERIOD, DT)
        for step in range(100):
            assert schedule.shares(step) == ((max(step // N - k, -1), 1.0),), (k, step)


def test_a_latency_longer_than_a_cycle_queues_the_commands_in_order():
    schedule = CommandSchedule(np.arange(10) * PERIOD, 0.0253, DT)
    in_force = [schedule.in_force(step) for step in range(60)]
    assert in_force[:13] == [-1] * 13
    assert in_force == sorted(in_force)  # in order, none skipped
    for c in range(10):  # each from its own moment: step ceil((c * 0.01 + 0.0253) / dt)
        assert in_force.index(c) == N * c + 13


def test_the_commanded_motion_changes_continuously_with_the_latency():
    """A ramp of commands: the per-step mean command moves by at most (latency change / dt) x
    the command increment when the latency moves, across step and cycle boundaries alike."""
    values = np.arange(1.0, 21.0)  # command c = c + 1: an increment of 1 per cycle
    times = np.arange(20) * PERIOD
    steps = range(40)
    latencies = np.linspace(0.0, 0.02, 81)  # 250 us apart: 1/8 of a step; up to two cycles
    means = np.array([[mean_command(CommandSchedule(times, latency, DT), values, s)
                       for s in steps] for latency in latencies])
    jumps = np.abs(np.diff(means, axis=0)).max()
    assert jumps <= (latencies[1] - latencies[0]) / DT + 1e-9
    # a rounding rule would jump by a whole increment at some latency
    rounded = np.array([[mean_command(CommandSchedule(times, round(latency / DT) * DT, DT),
                                      values, s) for s in steps] for latency in latencies])
    assert np.abs(np.diff(rounded, axis=0)).max() == pytest.approx(1.0)


def test_blend_is_exact_at_its_ends():
    old, new = np.array([0.1, 0.2]), np.array([0.3, 0.7])
    assert blend(old, new, 1.0) is new and blend(old, new, 0.0) is old
    np.testing.assert_allclose(blend(old, new, 0.25), [0.15, 0.325])


@pytest.mark.parametrize('latency, dt', [(-0.001, DT), (float('nan'), DT), (0.01, 0.0),
                                         (0.01, -1.0)])
def test_bad_latency_or_step_is_refused(latency, dt):
    with pytest.raises(ValueError, match='latency|physics step'):
        switch_point(0.0, latency, dt)
    with pytest.raises(ValueError, match='latency|physics step'):
        CommandSchedule([0.0], latency, dt)


def test_unordered_command_times_are_refused():
    with pytest.raises(ValueError, match='non-decreasing'):
        CommandSchedule([0.0, 0.02, 0.01], 0.0, DT)
