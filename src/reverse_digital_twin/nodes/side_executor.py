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
from rclpy.task import Future

#: s: how soon a thread waiting for the GIL gets it back (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL = 0.0002


class SideExecutor:
    """A helper node for hot subscriptions and publishers, spun on its own thread.

    :meth:`stop` ends the thread and waits for it before it tears the executor and the helper
    node down, and the process's ``run_node`` calls it before it shuts the context down: no
    callback ever runs under a destroyed executor, node or context. (rclpy's
    ``Executor.shutdown()`` alone does not wait for the thread: it destroys the executor's guard
    condition while the thread still dispatches, and the callback in progress then fails with
    ``'NoneType' object has no attribute 'trigger'``.)
    """

    def __init__(self, owner: Node, purpose: str) -> None:
        # Not the command line's remaps: its __node:= names the owner, and would name this
        # helper the same.
        self.node = rclpy.create_node(f'{owner.get_name()}_{purpose}',
                                      namespace=owner.get_namespace(), context=owner.context,
                                      start_parameter_services=False,
                                      use_global_arguments=False)
        self._spinner = SingleThreadedExecutor(context=owner.context)
        self._spinner.add_node(self.node)
        self._stopping: Future = Future()  # done once stop() is called; the thread then ends
        self._thread = threading.Thread(target=self._spin, name=purpose, daemon=True)

    def subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None],
                  qos: QoSProfile) -> None:
        self.node.create_subscription(msg_type, topic, callback, qos)

    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        self._thread.start()

    def _spin(self) -> None:
        try:
            # Returns once stop() completes the future (its done callback wakes the executor),
            # after the callback in progress, if any
            self._spinner.spin_until_future_complete(self._stopping)
        except ExternalShutdownException:
            pass  # the context was shut down without stop() (the process is ending)
        except Exception:
            if self.node.context.ok():
                raise  # a callback's own error: let it be seen
            # the context was shut down under a callback (not through stop()): nothing to say

    def stop(self) -> None:
        """End the thread (after the callback in progress), then destroy the executor and the
        helper node. Idempotent; also for a helper that was never started."""
        if self._stopping.done():
            return
        self._stopping.set_result(None)
        if self._thread.ident is not None:
            self._thread.join()
        self._spinner.shutdown()
        self.node.destroy_node()
