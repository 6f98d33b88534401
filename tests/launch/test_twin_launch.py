"""launch_test for twin.launch.py hardware:=standin: the graph comes up behind the bridge and a
goal sent to /joint_trajectory_controller succeeds (predicted, then run in the twin).

Run: `launch_test tests/launch/test_twin_launch.py` (or `colcon test`) on a ROS 2 install with
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
    return LaunchDescription([include('twin.launch.py', hardware='standin'),
                              launch_testing.actions.ReadyToTest()])


class TestTwinLaunch(ClientTestCase):

    def test_follow_joint_trajectory_goal_succeeds_through_the_bridge(self):
        self.follow_joint_trajectory_succeeds()

    def test_every_node_is_up(self):
        from reverse_digital_twin.stack import TwinNames
        names = TwinNames()
        for node in (names.sim_node, names.sim_controller, names.standin,
                     names.hardware_controller, names.bridge):
            self.assertIsInstance(self.parameter(node, 'use_sim_time'), bool, node)
        self.assertTrue(self.parameter(names.sim_controller, 'use_sim_time'))


@launch_testing.post_shutdown_test()
class TestTwinShutdown(unittest.TestCase):

    def test_nodes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
