"""launch_test for sim.launch.py: the nodes come up, a goal succeeds, overrides win.

Run: `launch_test tests/launch/test_sim_launch.py` (or `colcon test`) on a ROS 2 install with
this package built.
"""
import os
import sys
import unittest

import launch_testing
import launch_testing.actions
import launch_testing.asserts
import pytest
from launch import LaunchDescription

sys.path.insert(0, os.path.dirname(__file__))
from _common import ClientTestCase, include  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    return LaunchDescription([include('sim.launch.py', real_time_factor='0.5'),
                              launch_testing.actions.ReadyToTest()])


class TestSimLaunch(ClientTestCase):

    def test_follow_joint_trajectory_goal_succeeds(self):
        self.follow_joint_trajectory_succeeds()

    def test_command_line_override_beats_the_robot_yaml(self):
        self.assertEqual(self.parameter('/pybullet_sim', 'real_time_factor'), 0.5)
        self.assertTrue(self.parameter('/joint_trajectory_controller', 'use_sim_time'))
        self.assertEqual(self.parameter('/joint_trajectory_controller', 'update_rate'), 100.0)


@launch_testing.post_shutdown_test()
class TestSimShutdown(unittest.TestCase):

    def test_nodes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
