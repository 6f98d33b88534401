"""The sim applies whatever command interface the controller is configured for: position
(the other tests), velocity, or effort with gravity compensation, like a torque-controlled arm."""
from __future__ import annotations

import numpy as np
import pytest

from reverse_digital_twin.ros_params import read_node_parameters
from reverse_digital_twin.robot_setup import robot_config

from .conftest import start_robot, stop_robot

pytestmark = pytest.mark.integration


def _gains(robot: str, **per_joint_lists) -> dict:
    joints = read_node_parameters(robot_config(robot), 'joint_trajectory_controller')['joints']
    out = {}
    for key, values in per_joint_lists.items():
        for joint, value in zip(joints, values):
            out[f'gains.{joint}.{key}'] = float(value)
    return out


CASES = {
    'velocity': ({'command_interfaces': ['velocity'],
                  **_gains('rdt_arm6', p=[10] * 6, ff_velocity_scale=[1] * 6)}, {}),
    'effort': ({'command_interfaces': ['effort'],
                **_gains('rdt_arm6', p=[1000, 1000, 500, 50, 30, 5],
                         d=[40, 40, 15, 1, 0.5, 0.05])},
               # A torque loop cannot afford the extra cycle of DDS latency: lockstep.
               {'gravity_compensation': True, 'lockstep': True}),
}


@pytest.mark.parametrize('interface', sorted(CASES))
def test_trajectory_succeeds_with_command_interface(ros_node, tmp_path, interface):
    controller, sim = CASES[interface]
    robot = start_robot(ros_node, 'rdt_arm6', tmp_path, namespace=interface,
                        overrides={'joint_trajectory_controller': controller,
                                   'pybullet_sim': sim})
    try:
        robot.assert_still(robot.positions(), tolerance=0.01)  # holds before any goal
        waypoints = [robot.pose(0.3), robot.pose(-0.15), robot.home]
        outcome = robot.move(waypoints, [1.5, 3.0, 4.5])
        assert outcome.status_name == 'SUCCEEDED', outcome
        assert robot.wait_messages(3)
        assert np.abs(robot.positions() - robot.home).max() < 0.02
        efforts = np.array(robot.client.latest().effort)
        assert np.all(np.isfinite(efforts))
    finally:
        stop_robot(robot)
