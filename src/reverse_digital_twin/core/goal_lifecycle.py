"""One life cycle for every single-active-goal action server of the project.

ros2_control's joint_trajectory_controller runs one goal at a time: a new accepted goal
preempts the active one, a cancel ends it CANCELED, the controller finishes it exactly once.
The emulated controller, the bridge and ``move_to`` all follow these rules, so they share this
helper instead of each keeping status strings and dictionaries keyed by ``id()``.

No rclpy here: the node passes a factory for the awaitable it uses (``rclpy.task.Future``), and
the helper only decides. A node's execute callback awaits ``record.done`` and reports the
:class:`GoalOutcome` it yields.
"""
from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class GoalStatus(enum.Enum):
    """Where a goal is in its life (terminal states as action_msgs/GoalStatus names them)."""

    ACTIVE = 'active'
    SUCCEEDED = 'succeeded'
    ABORTED = 'aborted'
    CANCELED = 'canceled'

    @property
    def terminal(self) -> bool:
        return self is not GoalStatus.ACTIVE


@dataclass(frozen=True)
class GoalOutcome:
    """How a goal ended: status plus the result's error_code and error_string."""

    status: GoalStatus
    error_code: int = 0
    error_string: str = ''


class Completion(Protocol):
    """What a node awaits: rclpy.task.Future satisfies it."""

    def done(self) -> bool: ...

    def set_result(self, result: Any) -> None: ...


T = TypeVar('T')


@dataclass(eq=False)
class GoalRecord(Generic[T]):
    """One goal: the server's handle, the node's own data, and its completion."""

    handle: Any
    data: T
    done: Completion
    number: int = 0  # order of acceptance, for logs
    outcome: GoalOutcome | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> GoalStatus:
        return GoalStatus.ACTIVE if self.outcome is None else self.outcome.status

    @property
    def finished(self) -> bool:
        return self.outcome is not None


class SingleGoalSlot(Generic[T]):
    """At most one active goal; accept preempts, finish happens once.

    ``on_finish(record)`` runs once per goal when it ends (for logs, status topics, stopping
    whatever executes it).
    """

    def __init__(self, make_completion: Callable[[], Completion],
                 on_finish: Callable[[GoalRecord[T]], None] | None = None) -> None:
        self._make_completion = make_completion
        self._on_finish = on_finish
        self._active: GoalRecord[T] | None = None
        self._numbers = itertools.count(1)

    @property
    def active(self) -> GoalRecord[T] | None:
        return self._active

    def is_active(self, handle: Any) -> bool:
        return self._active is not None and self._active.handle is handle

    def record_for(self, handle: Any) -> GoalRecord[T] | None:
        return self._active if self.is_active(handle) else None

    def accept(self, handle: Any, data: T,
               preempted: GoalOutcome | None = None) -> GoalRecord[T]:
        """Make this goal the active one; the previous one ends with ``preempted``."""
        previous = self._active
        if previous is not None and preempted is not None:
            self.finish(previous, preempted)
        record = GoalRecord(handle, data, self._make_completion(), next(self._numbers))
        self._active = record
        return record

    def detached(self, handle: Any, data: T) -> GoalRecord[T]:
        """A goal that ends without ever becoming active (refused after acceptance).

        It leaves the active goal alone: a refused goal changes nothing.
        """
        return GoalRecord(handle, data, self._make_completion(), next(self._numbers))

    def finish(self, record: GoalRecord[T], outcome: GoalOutcome) -> bool:
        """End a goal once. Returns False if it had already ended (the first end wins)."""
        if record.outcome is not None:
            return False
        record.outcome = outcome
        if self._active is record:
            self._active = None
        if not record.done.done():
            record.done.set_result(outcome)
        if self._on_finish is not None:
            self._on_finish(record)
        return True

    def succeed(self, record: GoalRecord[T], text: str = '') -> bool:
        return self.finish(record, GoalOutcome(GoalStatus.SUCCEEDED, 0, text))

    def abort(self, record: GoalRecord[T], code: int, text: str) -> bool:
        return self.finish(record, GoalOutcome(GoalStatus.ABORTED, code, text))

    def cancel(self, record: GoalRecord[T], text: str = '') -> bool:
        return self.finish(record, GoalOutcome(GoalStatus.CANCELED, 0, text))


def report(handle: Any, outcome: GoalOutcome) -> None:
    """Move an rclpy ServerGoalHandle to the terminal state of ``outcome``."""
    {GoalStatus.SUCCEEDED: handle.succeed,
     GoalStatus.CANCELED: handle.canceled}.get(outcome.status, handle.abort)()
