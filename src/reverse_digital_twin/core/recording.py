"""What the recorder decides without ROS: which client goals just ended (one file per goal)."""
from __future__ import annotations

from collections.abc import Iterable

#: action_msgs/GoalStatus: SUCCEEDED, CANCELED, ABORTED.
TERMINAL_STATUSES = frozenset({4, 5, 6})


class GoalEnds:
    """Reads successive goal status arrays (an action's ``_action/status``) and tells which
    goals ended since the previous one.

    The array is latched and keeps finished goals for a while, so a goal counts only if it was
    seen running or was accepted after ``since`` (ns, the server's clock): a goal that ended
    before the recording started never splits it.
    """

    def __init__(self, since: int) -> None:
        self.since = since
        self._running: set[str] = set()
        self._ended: set[str] = set()

    def update(self, statuses: Iterable[tuple[str, int, int]]) -> list[str]:
        """(goal id, status, accept stamp in ns) of every goal in one array -> the goals that
        ended now, in the array's order."""
        ended = []
        for goal, status, accepted in statuses:
            if goal in self._ended:
                continue
            if status not in TERMINAL_STATUSES:
                self._running.add(goal)
                continue
            self._ended.add(goal)
            if goal in self._running or accepted >= self.since:
                ended.append(goal)
            self._running.discard(goal)
        return ended
