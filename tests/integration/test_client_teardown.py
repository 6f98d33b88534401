"""Clients closed while the session node spins: destruction runs in the spinning thread."""
from __future__ import annotations

import threading

import pytest

from reverse_digital_twin.client import TrajectoryClient, destroy_in_spin_thread

pytestmark = pytest.mark.integration


def test_clients_closed_while_spinning_leave_nothing_behind(ros_node):
    subscriptions, waitables = len(list(ros_node.subscriptions)), len(list(ros_node.waitables))
    for _ in range(20):
        TrajectoryClient(ros_node, '/nobody/joint_trajectory_controller', '/nobody/joint_states'
                         ).close()
    assert len(list(ros_node.subscriptions)) == subscriptions
    assert len(list(ros_node.waitables)) == waitables


def test_the_destruction_runs_once_in_the_spin_thread(ros_node):
    ran: list[threading.Thread] = []
    destroy_in_spin_thread(ros_node, lambda: ran.append(threading.current_thread()))
    assert len(ran) == 1 and ran[0] is not threading.current_thread()
