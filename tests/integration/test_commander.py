"""TwinCommander against the running twin graph: what the CLI, demo and benchmarks use."""
import numpy as np
import pytest

from reverse_digital_twin.client import make_trajectory
from reverse_digital_twin.commander import TwinCommander, TwinError
from reverse_digital_twin.stack import TwinNames

pytestmark = pytest.mark.integration


@pytest.fixture
def commander(twin) -> TwinCommander:
    """The twin's commander, target sim and hardware disarmed before and after."""
    twin.commander.switch('sim', check=True)
    twin.commander.disarm(check=True)
    yield twin.commander
    twin.commander.switch('sim')
    twin.commander.disarm()


def test_switch_to_hardware_is_refused_until_armed(commander):
    reply = commander.switch('hardware')
    assert not reply.success and 'not armed' in reply.message
    assert reply.active_target == 'sim'
    with pytest.raises(TwinError, match='switch to shadow refused'):
        commander.switch('shadow', check=True)
    assert commander.wait_status(lambda s: s.active_target == 'sim' and not s.hardware_armed)


def test_arm_then_switch_is_seen_in_the_status(commander):
    assert commander.arm(check=True).success
    assert commander.wait_status(lambda s: s.hardware_armed)
    reply = commander.switch('shadow', check=True)
    assert reply.active_target == 'shadow'
    status = commander.wait_status(lambda s: s.active_target == 'shadow')
    assert status is not None and status.hardware_alive
    assert commander.switch('sim', check=True).active_target == 'sim'
    assert commander.disarm(check=True).success
    assert commander.wait_status(lambda s: not s.hardware_armed)


def test_predict_returns_the_twins_verdict(twin, commander):
    out = twin.pose(0.2)
    verdict = commander.predict(make_trajectory(twin.joints, [out, twin.home], [1.0, 2.0]))
    assert verdict.safe, verdict.summary
    assert verdict.duration >= 2.0
    assert verdict.computation_time > 0.0


def test_perturbations_are_set_and_read_back(commander):
    before = commander.perturbation()
    assert {'payload_mass', 'command_latency'} <= set(before)
    try:
        commander.set_perturbation(payload_mass=3.5)
        assert commander.perturbation()['payload_mass'] == pytest.approx(3.5)
        with pytest.raises(TwinError, match='refused'):
            commander.set_perturbation(payload_mass='heavy')
    finally:
        commander.set_perturbation(payload_mass=before['payload_mass'])
    assert commander.perturbation()['payload_mass'] == pytest.approx(before['payload_mass'])


def test_move_to_a_joint_target_goes_through_the_planner(twin, commander):
    target = twin.pose(0.15)
    try:
        outcome = commander.move(positions=target.tolist(), timeout=60.0)
        assert outcome.succeeded, outcome
        assert np.abs(twin.positions(twin.sim) - target).max() < 0.01
    finally:
        twin.reset()


def test_a_missing_graph_is_a_clear_error(ros_node):
    lost = TwinCommander(ros_node, TwinNames(client_controller='no_such_controller'),
                         timeout=0.3)
    try:
        with pytest.raises(TwinError, match=r'is `rdt up` running\? \(ROS_DOMAIN_ID=\d+\)'):
            lost.arm()
        with pytest.raises(TwinError, match='not ready within'):
            lost.wait_ready(0.3)
    finally:
        lost.close()
