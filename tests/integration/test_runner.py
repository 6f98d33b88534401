"""`rdt up` and the runner as a user meets them: clean Ctrl-C, a clear report when a node
dies, a one-line error naming the file or key for bad configuration, and lockstep."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.core.paths import share_dir
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import sim_graph

from .conftest import start_robot, stop_robot

pytestmark = pytest.mark.integration
RDT = [sys.executable, '-m', 'reverse_digital_twin.cli']


def _rdt(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*RDT, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _config(tmp_path: Path, edit) -> Path:
    """A copy of the rdt_arm6 parameter file with absolute paths, edited by `edit`."""
    data = yaml.safe_load((share_dir() / 'config' / 'rdt_arm6.yaml').read_text())
    sim = data['/**/pybullet_sim']['ros__parameters']
    sim['robot_description_file'] = str(share_dir() / sim['robot_description_file'])
    sim['scene_file'] = str(share_dir() / sim['scene_file'])
    edit(data)
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_robot_names_the_choices():
    result = _rdt('up', '--robot', 'no_such_robot')
    assert result.returncode == 2
    assert 'unknown robot' in result.stderr and 'rdt_arm6' in result.stderr
    assert 'Traceback' not in result.stderr


def test_missing_urdf_is_reported_with_the_file(tmp_path):
    def edit(data):
        data['/**/pybullet_sim']['ros__parameters']['robot_description_file'] = \
            str(tmp_path / 'missing.urdf')
    result = _rdt('up', '--robot', str(_config(tmp_path, edit)))
    assert result.returncode == 1
    # every node that loads the URDF (sim node, planner, camera, prediction view) refuses it;
    # the runner names whichever gave up first
    assert re.search(r'rdt: node /\S+ exited with code 2 \(configuration error\)', result.stderr)
    assert 'missing.urdf' in result.stderr
    assert 'Traceback' not in result.stdout + result.stderr


def test_misspelt_parameter_is_reported_with_the_key(tmp_path):
    def edit(data):
        data['/**/joint_trajectory_controller']['ros__parameters'][
            'allow_partial_joint_goal'] = True
    result = _rdt('up', '--robot', str(_config(tmp_path, edit)))
    assert result.returncode == 1
    assert 'allow_partial_joint_goal (did you mean allow_partial_joints_goal?)' in result.stderr
    assert 'Traceback' not in result.stdout + result.stderr


def test_unknown_controller_joint_is_reported(tmp_path, ros_node):
    """A joint the URDF lacks: the controller stays inactive and says why; goals are refused."""
    def edit(data):
        params = data['/**/joint_trajectory_controller']['ros__parameters']
        old = params['joints'][0]
        params['joints'][0] = 'no_such_joint'
        params['constraints']['no_such_joint'] = params['constraints'].pop(old)
    robot_file = _config(tmp_path, edit)
    with Stack(sim_graph(str(robot_file)), echo=None) as stack:
        ctrl = stack.process('joint_trajectory_controller')
        assert wait_for(lambda: any('no_such_joint' in line and 'cannot activate' in line
                                    for line in list(ctrl.tail)), 30), list(ctrl.tail)


def test_ctrl_c_stops_every_node_cleanly():
    proc = subprocess.Popen([*RDT, 'up'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if 'configured for' in line:
                break
        assert any('configured for' in line for line in lines), ''.join(lines)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert 'rdt: stopped' in out
    assert 'had to force' not in out


def test_a_dying_node_is_named_with_how_it_died():
    with Stack(sim_graph('rdt_arm6'), echo=None) as stack:
        sim = stack.process('pybullet_sim')
        assert wait_for(lambda: any('physics' in line for line in list(sim.tail)), 30)
        os.kill(sim.popen.pid, signal.SIGKILL)
        dead = stack.wait(timeout=10)
        assert dead is sim
        report = dead.describe_exit()
        assert '/pybullet_sim' in report and 'SIGKILL' in report


def test_free_running_lockstep_closes_every_cycle(ros_node, tmp_path):
    """real_time_factor 0 + lockstep: the sim waits for the controller every cycle and runs
    as fast as DDS allows (speed: see `make bench`); the goal behaves as in real time."""
    robot = start_robot(ros_node, 'rdt_arm6', tmp_path, namespace='fast',
                        overrides={'pybullet_sim': {'real_time_factor': 0.0, 'lockstep': True}})
    try:
        target = robot.pose(0.3)
        sim = robot.stack.process('pybullet_sim')
        assert wait_for(lambda: any('(free-running), lockstep' in line
                                    for line in list(sim.tail)), 10), list(sim.tail)
        outcome = robot.move([target, robot.home], [3.0, 6.0])
        assert outcome.status_name == 'SUCCEEDED', outcome
        assert len(outcome.feedback) > 0
        assert robot.wait_messages(3)
        assert np.abs(robot.positions() - robot.home).max() < 0.02
    finally:
        stop_robot(robot)
