"""Reading a calibration file (core.calibration.Calibration.load) and handing it to the graph:
what a person sees when the file is wrong, and which nodes get the one parameter."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reverse_digital_twin.core.calibration import Calibration
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.stack import CALIBRATION_PARAMETER, STANDIN_NODE, sim_graph, twin_graph

JOINTS = load_robot('rdt_arm6').joints


def calibration_data(**changes) -> dict:
    body = {'robot': 'rdt_arm6', 'recording': '/bags/run1',
            'hardware': {'payload_mass': 0.5, 'payload_link': '', 'command_latency': 0.012,
                         'joint_offsets': {'elbow_joint': 0.002},
                         'joint_damping': {'shoulder_pan_joint': 0.1},
                         'joint_friction': {'shoulder_pan_joint': 0.4}},
            'divergence_threshold': 0.006}
    body.update(changes)
    return {'calibration': body}


def write(tmp_path: Path, data, name: str = 'calibration.yaml') -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_a_valid_file_loads_the_hardware_model_and_the_threshold(tmp_path):
    calibration = Calibration.load(write(tmp_path, calibration_data()), JOINTS)
    assert calibration.divergence_threshold == 0.006
    assert calibration.hardware == Perturbation(
        payload_mass=0.5, command_latency=0.012, joint_offsets={'elbow_joint': 0.002},
        joint_damping={'shoulder_pan_joint': 0.1}, joint_friction={'shoulder_pan_joint': 0.4})
    saved = calibration.save(tmp_path / 'again' / 'calibration.yaml')
    assert Calibration.load(saved, JOINTS).hardware == calibration.hardware


def test_the_time_slack_is_optional_and_checked(tmp_path):
    assert Calibration.load(write(tmp_path, calibration_data()), JOINTS) \
        .divergence_time_slack is None  # the bridge keeps its own default
    calibration = Calibration.load(write(tmp_path, calibration_data(
        divergence_time_slack=0.025)), JOINTS)
    assert calibration.divergence_time_slack == 0.025
    again = Calibration.load(calibration.save(tmp_path / 'again.yaml'), JOINTS)
    assert again.divergence_time_slack == 0.025
    for bad in (-0.01, 2.0, 'fast', True):
        with pytest.raises(ConfigError, match=r'divergence_time_slack must be a number of s in '
                           rf'\[0, 1\], got {bad!r}'.replace('(', r'\(')):
            Calibration.load(write(tmp_path, calibration_data(divergence_time_slack=bad)),
                             JOINTS)


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError) as error:
        Calibration.load(tmp_path / 'nowhere.yaml', JOINTS)
    assert str(error.value) == (f'calibration file {tmp_path / "nowhere.yaml"} does not exist '
                                '(write one with `rdt calibrate <recording>`)')


def test_an_unknown_key_is_named_with_the_known_ones(tmp_path):
    path = write(tmp_path, calibration_data(divergence_treshold=0.01))
    with pytest.raises(ConfigError, match=r"unknown keys \['divergence_treshold'\]") as error:
        Calibration.load(path, JOINTS)
    assert str(path) in str(error.value) and "'divergence_threshold'" in str(error.value)
    data = calibration_data()
    data['calibration']['hardware']['payload_kg'] = 1.0
    with pytest.raises(ConfigError, match=r"unknown keys hardware.\['payload_kg'\]"):
        Calibration.load(write(tmp_path, data), JOINTS)


def test_an_unknown_joint_is_named_with_the_robots_joints(tmp_path):
    data = calibration_data()
    data['calibration']['hardware']['joint_offsets'] = {'elbow': 0.002}
    with pytest.raises(ConfigError) as error:
        Calibration.load(write(tmp_path, data), JOINTS)
    message = str(error.value)
    assert message.startswith(f'calibration file {tmp_path / "calibration.yaml"}: ')
    assert "hardware.joint_offsets.elbow: 'elbow' is not a movable joint" in message
    assert 'elbow_joint' in message  # the joints it has


@pytest.mark.parametrize('threshold', [0.0, -0.01, float('nan'), 'small', True, None])
def test_a_bad_threshold_is_refused(tmp_path, threshold):
    data = calibration_data(divergence_threshold=threshold)
    if threshold is None:
        del data['calibration']['divergence_threshold']
    with pytest.raises(ConfigError, match=r'divergence_threshold must be a number of rad > 0, '
                                          rf'got {threshold!r}'):
        Calibration.load(write(tmp_path, data), JOINTS)


@pytest.mark.parametrize('text, words', [
    ('calibration: [1, 2', 'cannot be read'),
    ('hardware: {}', 'expected a top-level `calibration:` mapping'),
    ('calibration: {hardware: 3, divergence_threshold: 0.01}', '`hardware:` must be a mapping'),
])
def test_a_malformed_file_is_refused(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words):
        Calibration.load(write(tmp_path, text), JOINTS)


def test_a_bad_hardware_value_names_the_key(tmp_path):
    data = calibration_data()
    data['calibration']['hardware']['command_latency'] = -0.01
    with pytest.raises(ConfigError, match='hardware.command_latency: expected a finite number '
                                          '>= 0'):
        Calibration.load(write(tmp_path, data), JOINTS)


# --- one parameter for the graph ---------------------------------------------------------------
def test_the_twin_graph_gives_the_file_to_the_sim_the_planner_and_the_bridge(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    specs = {s.fully_qualified_name: s for s in twin_graph(
        'rdt_arm6', hardware='standin', calibration_file='cal/run1.yaml',
        overrides={'bridge': {'divergence_threshold': 0.03}})}
    absolute = str(tmp_path / 'cal' / 'run1.yaml')  # resolved where the user named it
    takers = {'/sim/pybullet_sim', '/sim/planner', '/joint_trajectory_controller'}
    for name, spec in specs.items():
        expected = absolute if name in takers else None
        assert spec.parameters.get(CALIBRATION_PARAMETER) == expected, name
    assert specs['/joint_trajectory_controller'].parameters['divergence_threshold'] == 0.03
    assert specs['/hw/standin_robot'].name == STANDIN_NODE  # the hardware: never given one
    nominal = twin_graph('rdt_arm6', hardware='standin')
    assert not any(CALIBRATION_PARAMETER in s.parameters for s in nominal)


def test_the_sim_graph_gives_the_file_to_the_sim_node(tmp_path):
    path = tmp_path / 'c.yaml'
    sim, controller, camera = sim_graph('rdt_arm6', calibration_file=str(path))
    assert sim.parameters[CALIBRATION_PARAMETER] == str(path)
    assert CALIBRATION_PARAMETER not in controller.parameters
    assert CALIBRATION_PARAMETER not in camera.parameters  # it draws what the sim simulates


def test_rdt_up_passes_calibration_on(tmp_path, monkeypatch):
    import argparse

    from reverse_digital_twin.cli import _specs, main
    monkeypatch.chdir(tmp_path)
    seen = {}

    def fake_up(args: argparse.Namespace) -> int:  # the parsed command line, not a graph start
        seen['specs'] = _specs(args)
        return 0
    monkeypatch.setattr('reverse_digital_twin.cli.cmd_up', fake_up)
    assert main(['up', '--hardware', 'standin', '--calibration', 'run1.yaml']) == 0
    given = {s.fully_qualified_name: s.parameters.get(CALIBRATION_PARAMETER)
             for s in seen['specs']}
    assert given['/sim/planner'] == given['/joint_trajectory_controller'] == \
        str(tmp_path / 'run1.yaml')
    assert given['/hw/standin_robot'] is None
