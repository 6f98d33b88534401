"""The single-active-goal life cycle shared by the controller, the bridge and move_to."""
from __future__ import annotations

from reverse_digital_twin.core.goal_lifecycle import GoalOutcome, GoalStatus, SingleGoalSlot
from reverse_digital_twin.core.goal_lifecycle import report


class Completion:
    """A plain stand-in for rclpy.task.Future (done/set_result)."""

    def __init__(self) -> None:
        self.result = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result) -> None:
        assert not self._done, 'completed twice'
        self.result, self._done = result, True


PREEMPTED = GoalOutcome(GoalStatus.ABORTED, -1, 'preempted')


def test_accept_preempts_the_active_goal_once() -> None:
    ended = []
    slot = SingleGoalSlot(Completion, ended.append)
    first = slot.accept('h1', 'a', PREEMPTED)
    assert slot.active is first and first.status is GoalStatus.ACTIVE
    second = slot.accept('h2', 'b', PREEMPTED)
    assert slot.active is second
    assert first.done.result == PREEMPTED and first.status is GoalStatus.ABORTED
    assert ended == [first]
    assert slot.is_active('h2') and not slot.is_active('h1')
    assert slot.record_for('h1') is None and slot.record_for('h2') is second


def test_the_first_end_wins() -> None:
    slot = SingleGoalSlot(Completion)
    record = slot.accept('h', None)
    assert slot.succeed(record, 'done')
    assert not slot.abort(record, -4, 'late watchdog')
    assert record.outcome == GoalOutcome(GoalStatus.SUCCEEDED, 0, 'done')
    assert slot.active is None


def test_a_detached_goal_leaves_the_active_one_alone() -> None:
    slot = SingleGoalSlot(Completion)
    running = slot.accept('h1', None)
    refused = slot.detached('h2', None)
    slot.abort(refused, -1, 'unsafe')
    assert slot.active is running and not running.finished
    assert refused.status is GoalStatus.ABORTED and refused.number == running.number + 1


def test_cancel_and_report() -> None:
    calls = []

    class Handle:
        def succeed(self) -> None:
            calls.append('succeed')

        def canceled(self) -> None:
            calls.append('canceled')

        def abort(self) -> None:
            calls.append('abort')

    slot = SingleGoalSlot(Completion)
    record = slot.accept(Handle(), None)
    slot.cancel(record)
    report(record.handle, record.outcome)
    report(record.handle, GoalOutcome(GoalStatus.ABORTED, -4, 'x'))
    report(record.handle, GoalOutcome(GoalStatus.SUCCEEDED))
    assert calls == ['canceled', 'abort', 'succeed']
