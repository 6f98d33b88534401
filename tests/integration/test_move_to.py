"""The twin leads: `rdt move` asks the planner (/sim/planner/move_to), which plans a
limit-respecting motion, predicts it and, only if safe, sends it through the bridge to the active
target."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from reverse_digital_twin.client import wait_for

from .conftest import contacts_along

pytestmark = pytest.mark.integration
RDT = [sys.executable, '-m', 'reverse_digital_twin.cli', 'move']


def _move(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*RDT, *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_rdt_move_asks_the_planner():
    from reverse_digital_twin.move_cli import action_name
    from reverse_digital_twin.stack import TwinNames
    assert action_name('sim') == TwinNames().move_to == '/sim/planner/move_to'


def test_move_to_joint_target_runs_on_the_active_target(twin):
    twin.reset()
    target = twin.pose(0.2)
    result = _move('--joints', ','.join(f'{q:.4f}' for q in target))
    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_for(lambda: np.abs(twin.positions(twin.sim) - target).max() < 0.01, 5)
    assert np.abs(twin.positions(twin.hw) - twin.home).max() < 5e-3  # target was sim


def test_a_target_behind_the_obstacle_is_reached_around_it(twin):
    """The straight line from home to pan 1.57 drives the forearm through the pillar (the
    prediction refuses it: test_bridge_gate, test_twin); move_to plans around it and the
    hardware gets there without touching anything."""
    twin.reset()
    assert twin.arm(True).success and twin.switch('hardware').success
    target = twin.home.copy()
    target[0] = 1.57
    twin.hw.history.clear()
    twin.hw.record = True
    try:
        result = _move('--joints', ','.join(f'{q:.4f}' for q in target))
        assert result.returncode == 0, result.stdout + result.stderr
        assert wait_for(lambda: np.abs(twin.positions(twin.hw) - target).max() < 0.01, 10)
        twin.hw.record = False
        states = list(twin.hw.history)
        assert len(states) > 100, 'too few hardware joint states recorded'
        assert contacts_along(twin, states) == []
    finally:
        twin.hw.record = False
        # back the way it came (a straight line home would cross the pillar again), whatever
        # happened above: the next tests start from home
        home = _move('--joints', ','.join(f'{q:.4f}' for q in twin.home))
    assert home.returncode == 0, home.stdout + home.stderr
    assert wait_for(lambda: np.abs(twin.positions(twin.hw) - twin.home).max() < 5e-3, 10)
    twin.reset()


def test_a_target_in_the_obstacle_is_refused_with_the_reason_and_nothing_moves(twin):
    twin.reset()
    assert twin.arm(True).success and twin.switch('hardware').success
    target = twin.home.copy()
    target[0] = 0.5  # the forearm inside the pillar of config/scene_default.yaml
    before = twin.positions(twin.hw)
    result = _move('--joints', ','.join(f'{q:.4f}' for q in target))
    assert result.returncode == 1
    assert 'goal_in_collision' in result.stdout + result.stderr
    assert 'obstacle' in result.stdout + result.stderr
    count = twin.hw.received
    assert wait_for(lambda: twin.hw.received > count + 30, 5)
    assert np.abs(twin.positions(twin.hw) - before).max() < 2e-3


def test_an_unreachable_pose_is_refused_with_the_reason(twin):
    twin.reset()
    before = twin.positions(twin.sim)
    result = _move('--pose', '5.0', '0.0', '1.0')  # metres beyond any arm's reach
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'unreachable' in result.stdout + result.stderr
    assert 'Traceback' not in result.stdout + result.stderr
    assert np.abs(twin.positions(twin.sim) - before).max() < 2e-3


def test_bad_move_requests_are_clear_errors(twin):
    result = _move('--joints', '0,0')
    assert result.returncode in (1, 2)
    assert 'Traceback' not in result.stdout + result.stderr
    assert result.stdout + result.stderr


def test_move_to_a_pose_through_inverse_kinematics(twin):
    """A tip position (from the forward kinematics of a reachable pose) is reached in the sim."""
    from reverse_digital_twin.core.motion import forward_kinematics
    from reverse_digital_twin.core.paths import resolve
    from reverse_digital_twin.core.physics import PhysicsWorld
    from reverse_digital_twin.core.scene import load_scene
    from reverse_digital_twin.stack import SIM_NODE
    from reverse_digital_twin.ros_params import read_node_parameters
    from reverse_digital_twin.robot_setup import robot_config
    twin.reset()
    sim = read_node_parameters(robot_config(twin.name), SIM_NODE)
    goal = twin.pose(0.2)
    with PhysicsWorld(twin.model, str(resolve(sim['robot_description_file'])),
                      load_scene(resolve(sim['scene_file']))) as world:
        tip = world.tip_link
        position, _ = forward_kinematics(world, tip, twin.joints, goal)
        result = _move('--pose', *(f'{v:.4f}' for v in position))
        assert result.returncode == 0, result.stdout + result.stderr
        assert wait_for(lambda: np.linalg.norm(
            np.array(forward_kinematics(world, tip, twin.joints,
                                        twin.positions(twin.sim))[0]) - position) < 0.005, 5)
