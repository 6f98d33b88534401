"""Awaiting inside an executor's coroutine: rclpy futures with a deadline, and blocking work
done on a thread of its own."""
from __future__ import annotations

import threading
from collections.abc import Callable
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


async def in_thread(node: Node, work: Callable[[], Any], name: str = 'work') -> Any:
    """The result of ``work()`` (or its exception), computed on a thread of its own while the
    executor goes on serving the node. The thread wakes the executor through a guard condition,
    so the answer does not wait for the node's next message."""
    answer: Future = Future()
    outcome: dict[str, Any] = {}

    def deliver() -> None:
        if answer.done():
            return
        if 'error' in outcome:
            answer.set_exception(outcome['error'])
        else:
            answer.set_result(outcome.get('value'))

    guard = node.create_guard_condition(deliver)

    def run() -> None:
        try:
            outcome['value'] = work()
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome['error'] = exc
        try:
            guard.trigger()
        except Exception:  # noqa: BLE001 - the node shut down meanwhile: nobody awaits it
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        return await answer
    finally:
        node.destroy_guard_condition(guard)
