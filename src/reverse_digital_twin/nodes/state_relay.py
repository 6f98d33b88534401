"""The bridge's state relays, on their own executor thread (see side_executor).

Every joint state and controller state a client sees passes through the bridge; on the bridge's
main executor each would wait behind goal handling, feedback and watchdogs, and each of the
hundreds of messages a second would cost a wake-up of an executor with dozens of entities.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import JointState

from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS
from reverse_digital_twin.nodes.side_executor import SideExecutor


class StateRelay:
    """Republishes the joint states of whichever source ``active()`` names, and hands every
    state of every source to ``on_state(name, msg)`` (on the relay's thread: keep it short)."""

    def __init__(self, owner: Node, sources: dict[str, str], active: Callable[[], str],
                 on_state: Callable[[str, JointState], None],
                 output: str = 'joint_states') -> None:
        self._active = active
        self._on_state = on_state
        self._side = SideExecutor(owner, 'state_relay')
        self._pub = self._side.node.create_publisher(JointState, output, SYSTEM_DEFAULT_QOS)
        for name, topic in sources.items():
            self._side.subscribe(JointState, topic, lambda msg, n=name: self._relay(n, msg),
                                 SYSTEM_DEFAULT_QOS)

    def also_relay(self, msg_type: Any, sources: dict[str, str], output: str) -> None:
        """Republish ``msg_type`` from whichever source ``active()`` names on ``output`` too
        (call before :meth:`start`)."""
        pub = self._side.node.create_publisher(msg_type, output, SYSTEM_DEFAULT_QOS)

        def relay(name: str, msg: Any) -> None:
            if name == self._active():
                pub.publish(msg)
        for name, topic in sources.items():
            self._side.subscribe(msg_type, topic, lambda msg, n=name: relay(n, msg),
                                 SYSTEM_DEFAULT_QOS)

    def start(self) -> None:
        self._side.start()

    def _relay(self, name: str, msg: JointState) -> None:
        if name == self._active():
            self._pub.publish(msg)
        self._on_state(name, msg)

    def stop(self) -> None:
        self._side.stop()
