"""The twin graph with a calibration (`rdt up --calibration FILE`): one parameter reaches the
sim node, the planner and the bridge, predictions model the hardware, and a bad file stops a
node with one clear line. One twin graph (without hardware: the calibration is the twin's) and
one batch of lone node processes; real processes over real DDS."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import JointState

from reverse_digital_twin.client import make_trajectory, wait_for
from reverse_digital_twin.nodes.node_main import EXIT_CONFIG_ERROR
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import CALIBRATION_PARAMETER, PLANNER_NODE, SIM_NODE
from reverse_digital_twin.stack import STANDIN_NODE, twin_graph
from tests.integration.conftest import Twin

pytestmark = pytest.mark.integration
OFFSETS = {'shoulder_pan_joint': 0.01, 'elbow_joint': -0.008}  # within the goal tolerance
THRESHOLD = 0.007
SLACK = 0.03


def write_calibration(path: Path, threshold=THRESHOLD) -> Path:
    path.write_text(yaml.safe_dump({'calibration': {
        'robot': 'rdt_arm6',
        'hardware': {'payload_mass': 0.3, 'command_latency': 0.012, 'joint_offsets': OFFSETS,
                     'joint_damping': {'shoulder_pan_joint': 0.05},
                     'joint_friction': {'wrist_1_joint': 0.2}},
        'divergence_threshold': threshold, 'divergence_time_slack': SLACK}}))
    return path


@pytest.fixture(scope='module')
def calibrated(ros_node, tmp_path_factory) -> Iterator[Twin]:
    folder = tmp_path_factory.mktemp('calibrated')
    path = write_calibration(folder / 'calibration.yaml')
    twin = Twin(ros_node, 'rdt_arm6', folder, overrides={PLANNER_NODE: {'prediction.workers': 1}},
                hardware='', calibration_file=str(path))
    twin.calibration_file = str(path)  # type: ignore[attr-defined]
    yield twin
    twin.close()


def test_the_twins_nodes_report_the_file_and_the_bridge_its_threshold(calibrated):
    names, path = calibrated.names, calibrated.calibration_file
    for node in (names.sim_node, names.planner, names.bridge):
        got = calibrated.commander.get_parameters(node, [CALIBRATION_PARAMETER])
        assert got == {CALIBRATION_PARAMETER: path}, node
    got = calibrated.commander.get_parameters(names.bridge, ['divergence_threshold',
                                                             'divergence_time_slack'])
    assert got == {'divergence_threshold': THRESHOLD, 'divergence_time_slack': SLACK}


def test_a_prediction_reports_the_encoder_offsets(calibrated):
    """From a measured start at home to a target: at rest the predicted (measured) positions
    are the target plus the offsets; joints without an offset end on the target."""
    joints, home = calibrated.joints, calibrated.home
    target = calibrated.pose(0.1)
    start = JointState(name=list(joints), position=home.tolist(),
                       velocity=[0.0] * len(joints))
    verdict = calibrated.predict(make_trajectory(joints, [target], [1.5]), start)
    assert verdict.safe, verdict.summary
    final = dict(zip(verdict.final_state.name, verdict.final_state.position))
    shift = np.array([final[j] for j in joints]) - target
    np.testing.assert_allclose(shift, [OFFSETS.get(j, 0.0) for j in joints], atol=1e-3)
    first = verdict.predicted_trajectory.points[0].positions
    np.testing.assert_allclose(first, home, atol=1e-9)  # the start was read as measured


def test_a_bad_file_stops_the_node_and_an_explicit_threshold_wins(calibrated, tmp_path):
    """Lone nodes beside the graph (in namespaces of their own): the sim node with a missing
    file and the bridge with a bad threshold exit with one line naming the parameter; the
    stand-in refuses any calibration; a bridge given divergence_threshold keeps it."""
    good = write_calibration(tmp_path / 'good.yaml')
    bad = write_calibration(tmp_path / 'bad.yaml', threshold=0.0)
    missing = tmp_path / 'missing.yaml'
    graph = {s.name if s.name != 'joint_trajectory_controller' or s.namespace else 'bridge': s
             for s in twin_graph('rdt_arm6', hardware='standin', calibration_file=str(good),
                                 overrides={STANDIN_NODE: {CALIBRATION_PARAMETER: str(good)}})}
    bridge = graph['bridge']
    specs = [
        replace(graph[SIM_NODE], namespace='bad_sim',
                parameters={CALIBRATION_PARAMETER: str(missing)}),
        replace(bridge, namespace='bad_bridge',
                parameters={**bridge.parameters, CALIBRATION_PARAMETER: str(bad)}),
        graph[STANDIN_NODE],
        replace(bridge, namespace='precedence',
                parameters={**bridge.parameters, 'divergence_threshold': 0.03}),
    ]
    log_path = tmp_path / 'nodes.log'
    with open(log_path, 'w') as log, Stack(specs, echo=log) as stack:
        assert wait_for(lambda: len(stack.dead()) >= 3, 60, poll=0.2), log_path.read_text()
        codes = {p.spec.fully_qualified_name: p.popen.returncode for p in stack.dead()}
        assert codes == {'/bad_sim/pybullet_sim': EXIT_CONFIG_ERROR,
                         '/bad_bridge/joint_trajectory_controller': EXIT_CONFIG_ERROR,
                         '/hw/standin_robot': EXIT_CONFIG_ERROR}, log_path.read_text()
        precedence = '/precedence/joint_trajectory_controller'
        got = calibrated.commander.get_parameters(
            precedence, ['divergence_threshold', CALIBRATION_PARAMETER], timeout=20.0)
        assert got == {'divergence_threshold': 0.03, CALIBRATION_PARAMETER: str(good)}
    output = log_path.read_text()
    assert 'Traceback' not in output
    assert (f'configuration error: parameter calibration_file: calibration file {missing} '
            'does not exist') in output
    assert (f'configuration error: parameter calibration_file: calibration file {bad}: '
            'divergence_threshold must be a number of rad > 0, got 0.0') in output
    assert 'the stand-in plays the hardware and takes no calibration' in output
    assert 'divergence threshold 0.03 rad (parameter divergence_threshold; the calibration ' \
        f'proposes {THRESHOLD:g} rad)' in output
