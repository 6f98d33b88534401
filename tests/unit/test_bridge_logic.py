"""The bridge's rules without ROS: switching, staleness deadlines, start check, divergence."""
import math

import numpy as np
import pytest

from reverse_digital_twin.core.bridge_logic import DivergenceMonitor, StalenessMonitor, Target
from reverse_digital_twin.core.bridge_logic import TargetSwitch, execution_timeout
from reverse_digital_twin.core.bridge_logic import TUNABLE_RANGES, start_deviation, tunable_error


def test_target_parse():
    assert Target.parse(' Shadow ') is Target.SHADOW
    with pytest.raises(ValueError, match='sim'):
        Target.parse('gazebo')
    assert Target.HARDWARE.uses_hardware and Target.SHADOW.uses_hardware
    assert not Target.SIM.uses_hardware


def test_hardware_target_needs_arming_at_start():
    with pytest.raises(ValueError, match='armed'):
        TargetSwitch(Target.HARDWARE, armed=False)


def test_switch_rules():
    switch = TargetSwitch()
    assert 'not armed' in switch.switch(Target.HARDWARE)
    assert switch.target is Target.SIM
    switch.armed = True
    switch.goal_active = True
    assert 'goal is executing' in switch.switch(Target.SHADOW)
    assert switch.target is Target.SIM
    switch.goal_active = False
    assert switch.switch(Target.SHADOW) is None
    assert switch.target is Target.SHADOW
    switch.disarm()
    assert not switch.armed
    assert switch.switch(Target.SIM) is None  # back to the twin is always allowed


def test_staleness_deadline_follows_measured_gaps():
    monitor = StalenessMonitor(minimum=0.05, factor=5.0)
    assert monitor.stale(0.0)  # nothing yet
    for k in range(100):
        monitor.arrived(k * 0.01)  # 100 Hz
    assert monitor.deadline == pytest.approx(0.05)
    assert not monitor.stale(0.99 + 0.04)
    assert monitor.stale(0.99 + 0.06)
    slow = StalenessMonitor(minimum=0.05, factor=5.0)
    for k in range(20):
        slow.arrived(k * 0.1)  # 10 Hz
    assert slow.deadline == pytest.approx(0.5)
    assert not slow.stale(1.9 + 0.4)
    assert slow.silence(1.9 + 0.3) == pytest.approx(0.3)


def test_a_stall_of_the_watcher_is_not_a_lost_stream():
    """Both streams silent at once means the watching process stalled: not lost until another
    stream proves the process runs again, or the fallback passes."""
    hw, sim = StalenessMonitor(minimum=0.05), StalenessMonitor(minimum=1.0)
    for k in range(100):
        hw.arrived(k * 0.01)
        sim.arrived(k * 0.01)
    now = 0.99 + 0.2  # 200 ms of silence on both: the watcher was not scheduled
    assert hw.stale(now) and not hw.lost(now, sim, fallback=1.0)
    sim.arrived(now)  # the process runs again and sim delivers, hardware still silent
    assert hw.lost(now + 0.001, sim, fallback=1.0)
    assert not hw.lost(0.99 + 0.04, sim, fallback=1.0)  # within the deadline
    lonely = StalenessMonitor(minimum=0.05)
    for k in range(100):
        lonely.arrived(k * 0.01)
    assert lonely.lost(0.99 + 0.06, None, fallback=1.0)  # no witness: the deadline alone
    assert hw.lost(0.99 + 1.01, StalenessMonitor(), fallback=1.0)  # silent witness: fallback


def test_execution_timeout_is_moveits_rule():
    assert execution_timeout(10.0) == pytest.approx(11.5)
    assert execution_timeout(2.0, goal_time=1.0) == pytest.approx(1.1 * 3.0 + 0.5)


def test_start_deviation_names_the_joint():
    joints = ['a', 'b', 'c']
    assert start_deviation([0, 0, 0], [0, 0.005, 0], joints, 0.01) is None
    reason = start_deviation([0, 0, 0.2], [0, 0, 0], joints, 0.01)
    assert 'joint c' in reason and '0.2000' in reason
    assert start_deviation([0, 0, 5], [0, 0, 0], joints, 0.0) is None  # disabled


def _prediction():
    times = np.linspace(0.0, 2.0, 201)
    positions = np.stack([np.sin(times), 0.5 * times], axis=1)
    return times, positions


def test_divergence_within_threshold_and_latency_is_quiet():
    times, positions = _prediction()
    monitor = DivergenceMonitor(['a', 'b'], times, positions, threshold=0.05, time_slack=0.1)
    for t in np.linspace(0, 2, 50):
        late = max(t - 0.05, 0.0)  # the hardware lags 50 ms behind the prediction
        assert monitor.check(t, [math.sin(late), 0.5 * late + 0.01]) is None
    assert 0.0 < monitor.max_error <= 0.05


def test_divergence_beyond_threshold_names_joint_and_time():
    times, positions = _prediction()
    monitor = DivergenceMonitor(['a', 'b'], times, positions, threshold=0.05, time_slack=0.1)
    event = monitor.check(1.0, [math.sin(1.0), 0.5 - 0.2])
    assert event is not None and event.joint == 'b'
    assert event.error == pytest.approx(-0.2 + 0.05, abs=0.01)  # nearest prediction in the window
    assert event.time == 1.0
    assert 'joint b' in event.describe() and '1.00 s' in event.describe()


def test_switch_and_arm_rules_are_one_function_with_one_message() -> None:
    from reverse_digital_twin.core.bridge_logic import TargetSwitch
    switch = TargetSwitch()
    target, why = switch.request_switch('bogus')
    assert target is None and 'unknown target' in why
    target, why = switch.request_switch('hardware')
    assert target is None and 'not armed' in why
    assert switch.request_arm(True) is None and switch.armed
    target, why = switch.request_switch('shadow', hardware_silence=3.0, hardware_deadline=0.2)
    assert target is None and 'no joint states from the hardware for 3.00 s' in why
    target, why = switch.request_switch('shadow', hardware_silence=0.01, hardware_deadline=0.2)
    assert target is Target.SHADOW and why is None
    assert 'switch to sim first' in switch.request_arm(False)
    assert switch.armed
    switch.goal_active = True
    assert 'between goals' in switch.request_switch('sim')[1]
    assert switch.request_switch('shadow') == (Target.SHADOW, None)  # no change mid-goal


def test_start_time_from_the_stamp() -> None:
    from reverse_digital_twin.core.bridge_logic import StartTime
    start, why = StartTime.read(0.0, 1000.0, 4.0, 60.0)
    assert why is None and start.delay == 0.0 and not start.stamped
    start, why = StartTime.read(1000.5, 1000.0, 4.0, 60.0)  # "0.5 s from now"
    assert why is None and abs(start.delay - 0.5) < 1e-9 and start.stamped
    # in the target's clock (sim time 12.0 now, 0.1 s elapsed since read): 12.4
    assert abs(start.target_stamp(12.0, 0.1) - 12.4) < 1e-9
    start, why = StartTime.read(1000.0 + 3600, 1000.0, 4.0, 60.0)
    assert start is None and 'in the future' in why and 'max_start_delay' in why
    start, why = StartTime.read(990.0, 1000.0, 4.0, 60.0)
    assert start is None and 'in the past' in why
    start, why = StartTime.read(998.0, 1000.0, 4.0, 60.0)  # begun 2 s ago, 2 s left
    assert why is None and start.delay == -2.0


def test_prediction_deadline_scales_with_the_goal_and_is_capped() -> None:
    from reverse_digital_twin.core.bridge_logic import prediction_deadline
    assert prediction_deadline(4.0, 0.0, 1.0, 10.0, 5.0, 600.0) == 11.0
    assert prediction_deadline(900.0, 0.5, 1.0, 10.0, 5.0, 600.0) == 10.0 + 901.5 / 5.0
    assert prediction_deadline(1e6, 0.0, 1.0, 10.0, 5.0, 600.0) == 600.0


def test_one_time_shift_for_all_joints_a_lagging_joint_is_not_excused():
    """The slack excuses a robot that is late, not one joint falling behind the others (a
    payload pulling it down) while the rest keep time."""
    times = np.linspace(0.0, 2.0, 201)
    positions = np.stack([times, times], axis=1)  # both joints at 1 rad/s
    monitor = DivergenceMonitor(['a', 'b'], times, positions, threshold=0.05, time_slack=0.1)
    assert monitor.check(1.0, [1.0 - 0.08, 1.0 - 0.08]) is None  # the whole robot 80 ms late
    event = monitor.check(1.0, [1.0, 1.0 - 0.15])  # joint b alone 150 ms behind
    assert event is not None and event.joint == 'b'
    assert event.error == pytest.approx(-0.075, abs=0.002)  # the shift splits the difference


@pytest.mark.parametrize('name, value', [
    ('start_tolerance', 0.0), ('divergence_threshold', float('nan')),
    ('divergence_time_slack', -0.1), ('prediction_timeout', float('inf')),
    ('prediction_min_speed', 0.0), ('prediction_timeout_cap', -5.0),
    ('max_start_delay', float('nan')), ('min_success_probability', 1.5),
    ('sweep_rollouts', 0)])
def test_a_tunable_out_of_range_is_refused_saying_what_it_must_be(name, value):
    reason = tunable_error(name, value)
    assert reason is not None and reason.startswith(f'{name} must be a finite number')
    assert str(value) in reason


@pytest.mark.parametrize('name, value', [
    ('start_tolerance', 0.1), ('divergence_threshold', 0.05), ('divergence_time_slack', 0.0),
    ('prediction_timeout', 10.0), ('max_start_delay', 0.0), ('min_success_probability', 1.0),
    ('min_success_probability', 0.0), ('sweep_rollouts', 1)])
def test_a_tunable_in_range_is_taken(name, value):
    assert tunable_error(name, value) is None


def test_every_tunable_has_a_range():
    assert set(TUNABLE_RANGES) == {
        'start_tolerance', 'divergence_threshold', 'divergence_time_slack', 'prediction_timeout',
        'prediction_min_speed', 'prediction_timeout_cap', 'max_start_delay',
        'min_success_probability', 'sweep_rollouts', 'hardware_lookahead'}
