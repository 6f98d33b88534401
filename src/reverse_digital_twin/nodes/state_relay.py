"""The bridge's joint-state relay, on its own executor thread.

Every joint state a client sees passes through the bridge. On the bridge's main executor it
would wait behind goal handling, feedback, controller states and watchdogs (rclpy rebuilds the
wait set of every entity for each callback); here it waits only for the next joint state. The
relay node is a helper of the bridge (``<bridge>_state_relay``), not a separate part of the
graph: it publishes the bridge's ``joint_states``.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS

#: s: how soon a thread waiting for the GIL gets it back (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL = 0.0002


class StateRelay:
    """Republishes the joint states of whichever source ``active()`` names, and hands every
    state of every source to ``on_state(name, msg)`` (on this thread: keep it short)."""

    def __init__(self, owner: Node, sources: dict[str, str], active: Callable[[], str],
                 on_state: Callable[[str, JointState], None],
                 output: str = 'joint_states') -> None:
        self._active = active
        self._on_state = on_state
        self.node = rclpy.create_node(f'{owner.get_name()}_state_relay',
                                      namespace=owner.get_namespace(), context=owner.context,
                                      start_parameter_services=False)
        self._pub = self.node.create_publisher(JointState, output, SYSTEM_DEFAULT_QOS)
        for name, topic in sources.items():
            self.node.create_subscription(JointState, topic,
                                          lambda msg, n=name: self._relay(n, msg),
                                          SYSTEM_DEFAULT_QOS)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name='state_relay', daemon=True)

    def start(self) -> None:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        self._thread.start()

    def _relay(self, name: str, msg: JointState) -> None:
        if name == self._active():
            self._pub.publish(msg)
        self._on_state(name, msg)

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except (ExternalShutdownException, RuntimeError):
            pass  # the context is shutting down

    def stop(self) -> None:
        self._executor.shutdown(timeout_sec=1.0)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()
