"""Awaiting rclpy futures with a deadline, inside an executor's coroutine."""
from __future__ import annotations

from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.clock import Clock
from rclpy.node import Node
from rclpy.task import Future


async def await_within(node: Node, future: Future, timeout: float, clock: Clock,
                       group: CallbackGroup | None = None) -> tuple[bool, Any]:
    """(True, result) when ``future`` completes within ``timeout`` s of ``clock``, else
    (False, None). The future itself is left alone (the caller decides whether to cancel)."""
    answer: Future = Future()

    def on_done(done: Future) -> None:
        if not answer.done():
            answer.set_result((True, done.result()))

    def on_timeout() -> None:
        if not answer.done():
            answer.set_result((False, None))

    timer = node.create_timer(timeout, on_timeout, clock=clock, callback_group=group)
    try:
        future.add_done_callback(on_done)
        return await answer
    finally:
        timer.cancel()
        node.destroy_timer(timer)
