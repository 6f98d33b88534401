"""What both launch tests share: the installed launch file, a client, a goal that must succeed.

Runs under `launch_test` or `colcon test` on a ROS 2 install (launch, launch_ros,
launch_testing); the project's own `make test` does not collect the launch tests.
"""
from __future__ import annotations

import os
import unittest

import numpy as np

ROBOT = 'rdt_arm6'


def launch_file(name: str) -> str:
    """A launch file of the installed package (as `ros2 launch reverse_digital_twin <name>`)."""
    from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415
    return os.path.join(get_package_share_directory('reverse_digital_twin'), 'launch', name)


def include(name: str, **arguments: str):
    """The launch file with its arguments, as `ros2 launch` would start it."""
    from launch.actions import IncludeLaunchDescription  # noqa: PLC0415
    from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: PLC0415
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file(name)),
                                    launch_arguments=list(arguments.items()))


def target_pose() -> np.ndarray:
    """0.2 rad from home in every joint, alternating (clear of the default scene's pillar)."""
    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    setup = load_robot(ROBOT)
    signs = np.where(np.arange(len(setup.joints)) % 2 == 0, -1.0, 1.0)
    return setup.home + 0.2 * signs


class ClientTestCase(unittest.TestCase):
    """A rclpy node spun in the background, and FollowJointTrajectory against `controller`."""

    controller = '/joint_trajectory_controller'

    @classmethod
    def setUpClass(cls) -> None:
        import rclpy  # noqa: PLC0415

        from reverse_digital_twin.client import BackgroundNode  # noqa: PLC0415
        rclpy.init()
        cls.background = BackgroundNode('rdt_launch_test')
        cls.node = cls.background.node

    @classmethod
    def tearDownClass(cls) -> None:
        import rclpy  # noqa: PLC0415
        cls.background.close()
        rclpy.shutdown()

    def follow_joint_trajectory_succeeds(self) -> None:
        from reverse_digital_twin.client import TrajectoryClient, make_trajectory  # noqa
        from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
        joints = load_robot(ROBOT).joints
        client = TrajectoryClient(self.node, self.controller, '/joint_states')
        try:
            self.assertTrue(client.wait_ready(timeout=90.0),
                            f'{self.controller}/follow_joint_trajectory did not come up')
            target = target_pose()
            outcome = client.send(make_trajectory(joints, [target], [2.0]), timeout=40.0)
            self.assertEqual(outcome.status_name, 'SUCCEEDED', outcome)
            reached = np.array(client.positions(joints))
            self.assertLess(np.abs(reached - target).max(), 0.05, reached)
        finally:
            client.close()

    def parameter(self, node: str, name: str):
        """One parameter value through the parameter service, as `ros2 param get` reads it."""
        from rcl_interfaces.srv import GetParameters  # noqa: PLC0415
        from rclpy.parameter import parameter_value_to_python  # noqa: PLC0415

        from reverse_digital_twin.client import call_service  # noqa: PLC0415
        response = call_service(self.node, GetParameters, f'{node}/get_parameters',
                                GetParameters.Request(names=[name]), 60.0)
        return parameter_value_to_python(response.values[0])
