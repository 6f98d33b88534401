"""Soak: continuous goals through the bridge for minutes or hours, with switches and cancels.

One twin graph with the stand-in (bench_bridge's :class:`_Bench`: same setup, same safe goal,
same recovery), target shadow, for ``soak_minutes`` (default 10, env RDT_BENCH_SOAK_MINUTES,
``--soak-minutes`` or ``--hours``). Goals follow a fixed cycle: every ``CANCEL_EVERY``-th goal
is cancelled while it runs (then a goal home), every ``SWITCH_EVERY``-th goal runs on target
sim, the others in shadow mode on the stand-in.

Every goal is counted against what the graph did with it:

- lost: no terminal result at the client within the goal's deadline;
- duplicated: more than one terminal status for one goal id on the bridge's status topic, or
  more goals run to success on the targets' controllers (their own status topics) than the
  bridge accepted: a goal executed twice (goals started there are not counted: the bridge
  gives a long hardware goal in parts, one goal each);
- RSS of every graph process (each node process and the processes it started, e.g. the
  planner's prediction workers) after a warm-up and at the end: the largest growth in percent.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from action_msgs.msg import GoalStatus, GoalStatusArray

from benchmarks import Target, log, ros, run_alone
from benchmarks.bench_bridge import _Bench, soak_minutes_default
from reverse_digital_twin.client import GoalOutcome, make_trajectory, wait_for
from reverse_digital_twin.commander import TwinError
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS

#: every this many goals, one is cancelled while it runs (then a goal home follows)
CANCEL_EVERY = 7
#: every this many goals, one runs on target sim (switched there and back between goals)
SWITCH_EVERY = 5
#: s: a goal without a terminal result this long after it was sent is lost
GOAL_DEADLINE = 60.0
#: share of the soak before the first RSS reading (imports, caches, pools settle)
WARM_UP_SHARE = 0.2
TERMINAL = {GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_ABORTED}
RSS_GROWTH_LIMIT_PCT = 5.0


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process (VmRSS, KiB); None once it is gone."""
    try:
        with open(f'/proc/{pid}/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def descendants(pid: int) -> list[int]:
    """The process's children, their children and so on (e.g. prediction workers)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f'/proc/{parent}/task')
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f'/proc/{parent}/task/{task}/children') as children:
                    kids = [int(c) for c in children.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def rss_by_process(roots: Iterable[tuple[str, int]]) -> dict[str, int]:
    """'node' or 'node/child pid' -> RSS in KiB, for every root process and its descendants."""
    out: dict[str, int] = {}
    for name, pid in roots:
        for key, p in [(name, pid)] + [(f'{name}/{c}', c) for c in descendants(pid)]:
            value = rss_kib(p)
            if value is not None:
                out[key] = value
    return out


@dataclass
class StatusCounter:
    """Goal ids seen on one action's status topic, with every terminal status each reached.

    The topic is latched and lists goals until their results expire, so goals of before
    :meth:`baseline` are left out, and a goal counts as started only when first seen running
    (an old goal arriving late is seen already ended).
    """

    started: set[bytes] = field(default_factory=set)
    terminal: dict[bytes, set[int]] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_status(self, msg: GoalStatusArray) -> None:
        with self.lock:
            for status in msg.status_list:
                goal = bytes(status.goal_info.goal_id.uuid)
                if goal not in self.seen:
                    self.seen.add(goal)
                    if status.status not in TERMINAL:
                        self.started.add(goal)
                if status.status in TERMINAL:
                    self.terminal.setdefault(goal, set()).add(status.status)

    def baseline(self) -> None:
        """Forget the goals seen so far (before the soak)."""
        with self.lock:
            self.started.clear()
            self.terminal.clear()

    def succeeded(self) -> int:
        """Goals seen running that then succeeded."""
        with self.lock:
            return sum(GoalStatus.STATUS_SUCCEEDED in self.terminal.get(g, ())
                       for g in self.started)

    def duplicated(self) -> int:
        """Goals that ended more than once (two different terminal statuses)."""
        with self.lock:
            return sum(len(s) > 1 for s in self.terminal.values())


class _Soak:
    """The soak's goal cycle on bench_bridge's running graph, and its bookkeeping."""

    def __init__(self, bench: _Bench) -> None:
        self.bench = bench
        self.c = bench.commander
        node, names = bench.timing.node, bench.names
        self.bridge = StatusCounter()
        self.targets = {'sim': StatusCounter(), 'hardware': StatusCounter()}
        topics = [(self.bridge, names.goal_status),
                  (self.targets['sim'], f'{names.sim_controller}/follow_joint_trajectory'
                                        '/_action/status'),
                  (self.targets['hardware'], f'{names.hardware_controller}'
                                             '/follow_joint_trajectory/_action/status')]
        self.subs = [node.create_subscription(GoalStatusArray, topic, counter.on_status,
                                              LATCHED_QOS) for counter, topic in topics]
        self.sent = self.accepted = self.lost = self.cancelled = self.switches = 0
        self.outcomes: dict[str, int] = {}
        self.problems: list[str] = []

    def close(self) -> None:
        for sub in self.subs:
            self.bench.timing.node.destroy_subscription(sub)

    def roots(self) -> list[tuple[str, int]]:
        return [(p.name, p.popen.pid) for p in self.bench.stack.processes
                if p.popen.poll() is None]

    def send(self, goal, cancel_after: float | None = None) -> GoalOutcome | None:
        """One goal through the bridge, cancelled ``cancel_after`` s into its motion if given;
        its outcome, or None (counted lost) when no result came within GOAL_DEADLINE."""
        client = self.c.client
        self.sent += 1
        pending = client.send_async(goal)
        try:
            if cancel_after is not None and pending.responded.wait(GOAL_DEADLINE) \
                    and pending.outcome.accepted:
                pending.finished.wait(cancel_after)
                if not pending.finished.is_set():
                    pending.handle.cancel_goal_async()
                    self.cancelled += 1
            outcome = client.wait_result(pending, GOAL_DEADLINE)
        except TimeoutError as exc:
            self.lost += 1
            self.problems.append(f'lost goal {self.sent}: {exc}')
            log(f'  {self.problems[-1]}')
            return None
        self.accepted += outcome.accepted
        self.outcomes[outcome.status_name] = self.outcomes.get(outcome.status_name, 0) + 1
        if outcome.status_name not in ('SUCCEEDED', 'CANCELED'):
            self.problems.append(f'goal {self.sent}: {outcome.status_name} '
                                 f'{outcome.error_string}'[:300])
            log(f'  {self.problems[-1]}')
        return outcome

    def ensure(self, target: str) -> None:
        """Target (and, for shadow, armed hardware) as the cycle wants it: a liveness abort
        disarms, and the next goal must still be routed as planned."""
        status = self.c.status()
        if target == 'shadow' and (status is None or not status.hardware_armed):
            self.c.arm(check=True)
        if status is None or status.active_target != target:
            self.c.switch(target, check=True)
            self.switches += 1

    def cycle(self, index: int, goal, home) -> None:
        self.ensure('sim' if index % SWITCH_EVERY == SWITCH_EVERY - 1 else 'shadow')
        if index % CANCEL_EVERY == CANCEL_EVERY - 1:
            self.send(goal, cancel_after=1.0)
            self.send(home)  # from wherever the cancel left the arm
        else:
            self.send(goal)

    def duplicated(self) -> int:
        """Goals that ended twice, and goals run to success on the targets more often than the
        bridge accepted goals. (Not goals started on the targets: a hardware goal longer than
        the bridge's hardware_lookahead goes to the driver in parts, one goal each, and all but
        the last are preempted by the next.)"""
        succeeded_on_targets = sum(t.succeeded() for t in self.targets.values())
        return self.bridge.duplicated() + sum(t.duplicated() for t in self.targets.values()) \
            + max(0, succeeded_on_targets - self.accepted)


def measure(robot: str = 'rdt_arm6', soak_minutes: float | None = None) -> dict:
    """The soak's figures; see the module."""
    minutes = soak_minutes_default() if soak_minutes is None else soak_minutes
    with ros():
        log('soak: starting the twin graph with the stand-in ...')
        bench = _Bench(robot)
        soak = _Soak(bench)
        try:
            c = bench.commander
            c.arm(check=True)
            c.switch('shadow', check=True)
            bench.home_via(c.client)
            goal = bench.out_and_back()
            home = make_trajectory(bench.joints, [bench.home], [2.0])
            if not wait_for(lambda: all(s.get_publisher_count() > 0 for s in soak.subs), 10):
                raise RuntimeError('soak: a goal status topic has no publisher')
            for counter in (soak.bridge, *soak.targets.values()):
                counter.baseline()
            start = time.monotonic()
            warm_until, end = start + WARM_UP_SHARE * minutes * 60.0, start + minutes * 60.0
            rss_start: dict[str, int] | None = None
            index = 0
            log(f'soak: {minutes:g} min of goals (cancel every {CANCEL_EVERY}, sim every '
                f'{SWITCH_EVERY}) ...')
            while time.monotonic() < end:
                if rss_start is None and time.monotonic() >= warm_until:
                    rss_start = rss_by_process(soak.roots())
                try:
                    soak.cycle(index, goal, home)
                except TwinError as exc:  # a switch or arm refused: say so, go on
                    soak.problems.append(f'cycle {index}: {exc}'[:300])
                    log(f'  {soak.problems[-1]}')
                index += 1
            rss_end = rss_by_process(soak.roots())
            c.switch('sim', check=True)
            # Late results and statuses of the last goals
            wait_for(lambda: len(soak.bridge.terminal) >= soak.accepted, 5)
        finally:
            soak.close()
            bench.close()
    rss_start = rss_start or rss_end
    growth = {name: 100.0 * (rss_end[name] - kib) / kib for name, kib in rss_start.items()
              if name in rss_end and kib > 0}
    return {
        'soak_minutes': minutes,
        'soak_goals_sent': soak.sent,
        'soak_goals_accepted': soak.accepted,
        'soak_lost_goals': soak.lost,
        'soak_duplicated_goals': soak.duplicated(),
        'soak_cancels': soak.cancelled,
        'soak_switches': soak.switches,
        'soak_outcomes': soak.outcomes,
        'soak_goals_on_targets': {k: len(t.started) for k, t in soak.targets.items()},
        'soak_rss_growth_pct': max(growth.values(), default=0.0),
        'soak_rss_growth_pct_by_process': {k: round(v, 2) for k, v in growth.items()},
        'soak_rss_mib_end': {k: round(v / 1024, 1) for k, v in rss_end.items()},
        'soak_problems': soak.problems[:20],
    }


def targets(r: dict) -> list[Target]:
    minutes = r.get('soak_minutes', soak_minutes_default())
    basis = f'{minutes:g} min soak' + (' (shorter than the 10 min default)'
                                       if minutes < 10 else '')
    return [Target('soak_lost_goals', 0, '==', basis),
            Target('soak_duplicated_goals', 0, '==', basis),
            Target('soak_rss_growth_pct', RSS_GROWTH_LIMIT_PCT, '<=',
                   f'largest growth of any graph process after the warm-up, {basis}')]


def rows(r: dict) -> list[tuple[str, str, str]]:
    growth = r.get('soak_rss_growth_pct_by_process', {})
    worst = max(growth, key=growth.get) if growth else 'n/a'
    return [
        (f'soak, {r.get("soak_minutes", "n/a")} min: goals sent / lost / duplicated',
         f'{r.get("soak_goals_sent", "n/a")} / {r.get("soak_lost_goals", "n/a")} / '
         f'{r.get("soak_duplicated_goals", "n/a")}',
         f'{r.get("soak_cancels", "n/a")} cancels, {r.get("soak_switches", "n/a")} switches, '
         f'outcomes {r.get("soak_outcomes", {})}'),
        ('soak: largest RSS growth of a graph process after the warm-up',
         f'{r.get("soak_rss_growth_pct", float("nan")):.2f} %', f'{worst}'),
    ]


def main(argv: list[str] | None = None) -> int:
    return run_alone(measure, __doc__, argv, soak=True)


if __name__ == '__main__':
    raise SystemExit(main())
