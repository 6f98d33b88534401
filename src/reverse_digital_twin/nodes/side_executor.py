"""Subscriptions on an executor thread of their own, beside a node's main executor.

rclpy's executor rebuilds the wait set of every entity of its nodes for each callback: on a node
with services, actions and timers, a message on a hot path (a joint state to relay, the
controller's command each cycle) waits behind all of them. A helper node (``<owner>_<purpose>``)
with only the hot subscriptions, spun by its own executor, answers each message at the cost of a
one-entity wait set. It is a helper of its owner, not a separate part of the graph.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

#: s: how soon a thread waiting for the GIL gets it back (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL = 0.0002


class SideExecutor:
    """A helper node for hot subscriptions and publishers, spun on its own thread."""

    def __init__(self, owner: Node, purpose: str) -> None:
        # Not the command line's remaps: its __node:= names the owner, and would name this
        # helper the same.
        self.node = rclpy.create_node(f'{owner.get_name()}_{purpose}',
                                      namespace=owner.get_namespace(), context=owner.context,
                                      start_parameter_services=False,
                                      use_global_arguments=False)
        self._spinner = SingleThreadedExecutor(context=owner.context)
        self._spinner.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=purpose, daemon=True)

    def subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None],
                  qos: QoSProfile) -> None:
        self.node.create_subscription(msg_type, topic, callback, qos)

    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._spinner.spin()
        except (ExternalShutdownException, RuntimeError):
            pass  # the context is shutting down

    def stop(self) -> None:
        self._spinner.shutdown(timeout_sec=1.0)
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.node.destroy_node()
