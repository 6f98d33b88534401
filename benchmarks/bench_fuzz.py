"""Fuzzing at scale: over a thousand malformed inputs through the running twin graph.

The same strategies and judge as the CI-sized test (tests/fuzzing.py, test_fuzz.py), in one
graph (bridge + twin under /sim + stand-in under /hw) of its own ROS domain: FollowJointTrajectory
goals (a quarter of them while the hardware is armed and the target), ``joint_trajectory``
messages, ``move_to`` goals, ``predict_trajectory`` and ``switch_target`` requests. Figures:
inputs sent, refused with a reason, those that moved anything (must be 0), nodes that died (must
be 0), the largest resident-memory growth of a node over the second half of the run (the first
fills caches), and the wall time.
"""
from __future__ import annotations

import time

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from benchmarks import Target, log, ros
from reverse_digital_twin.client import BackgroundNode
from reverse_digital_twin.commander import TwinCommander, TwinError
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import TwinNames, twin_graph
from tests.fuzzing import GraphFuzzer, RobotFacts, Verdict, graph_rss, malformed_goal
from tests.fuzzing import malformed_move_to, malformed_prediction, malformed_trajectory
from tests.fuzzing import switch_request

FUZZED_GOALS = 1200  # >= 1,000 (target)
SEED = 11
#: Share of each way in, per batch of 20 inputs.
MIX = (('goal', 8), ('hardware goal', 4), ('topic', 3), ('move_to', 2), ('predict', 2),
       ('switch', 1))


def _inputs(facts: RobotFacts) -> st.SearchStrategy[tuple[str, object]]:
    """One input of each way in, in the proportions of :data:`MIX`."""
    ways = {
        'goal': malformed_goal(facts),
        'hardware goal': malformed_goal(facts),
        'topic': malformed_trajectory(facts),
        'move_to': malformed_move_to(facts),
        'predict': malformed_prediction(facts),
        'switch': switch_request(),
    }
    weighted = [way for way, share in MIX for _ in range(share)]
    return st.sampled_from(weighted).flatmap(
        lambda way: ways[way].map(lambda value: (way, value)))


def _send(fuzzer: GraphFuzzer, commander: TwinCommander, way: str, value) -> Verdict:
    on_hardware = commander.status().active_target == 'hardware'
    if way == 'hardware goal' and not on_hardware:
        commander.arm(True, check=True)
        commander.switch('hardware', check=True)
        fuzzer.watch.reset()
    elif way != 'hardware goal' and on_hardware:
        commander.switch('sim', check=True)
        commander.arm(False, check=True)
        fuzzer.watch.reset()
    if way in ('goal', 'hardware goal'):
        return fuzzer.goal(value)
    if way == 'topic':
        return fuzzer.topic(value.trajectory)
    if way == 'move_to':
        return fuzzer.move_to(value[1])
    if way == 'predict':
        return fuzzer.predict(*value)
    return fuzzer.switch(value)


def _dead(stack: Stack) -> str | None:
    dead = stack.dead()
    return dead[0].describe_exit() if dead else None


def measure(robot: str, count: int = FUZZED_GOALS) -> dict:
    facts = RobotFacts.of(robot)
    with ros():
        stack = Stack(twin_graph(robot, hardware='standin'), echo=None).start()
        background = BackgroundNode('bench_fuzz')
        commander = TwinCommander(background.node, TwinNames(), timeout=30.0)
        fuzzer: GraphFuzzer | None = None
        try:
            commander.wait_ready(120.0, hardware=True, alive=lambda: _dead(stack))
            fuzzer = GraphFuzzer(commander, facts.joints, stack)
            if not fuzzer.wait_ready(60.0):
                raise TwinError('the fuzzer found the graph not ready')
            return _run(fuzzer, commander, stack, facts, count)
        finally:
            if fuzzer is not None:
                fuzzer.close()
            commander.close()
            background.close()
            stack.stop()


def _run(fuzzer: GraphFuzzer, commander: TwinCommander, stack: Stack, facts: RobotFacts,
         count: int) -> dict:
    failures: list[str] = []
    tally = {'refused': 0, 'moved': 0}
    rss: dict[str, dict[str, int]] = {}
    started = time.monotonic()

    @seed(SEED)
    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_inputs(facts))
    def fuzz(case: tuple[str, object]) -> None:
        if fuzzer.sent >= count or fuzzer.dead():
            return
        way, value = case
        try:
            verdict = _send(fuzzer, commander, way, value)
        except (TwinError, TimeoutError) as exc:  # counted, and the run goes on
            fuzzer.sent += 1
            verdict = Verdict(way, False, f'{type(exc).__name__}: {exc}')
        tally['refused'] += verdict.refused and bool(verdict.reason.strip())
        if verdict.moved:
            tally['moved'] += 1
        if not verdict.ok and len(failures) < 20:
            failures.append(f'{way}: {verdict} for {value!r}'[:600])
            log(f'fuzz NOT REFUSED: {failures[-1]}')
        fuzzer.watch.reset()
        if fuzzer.sent == count // 2:
            rss['half'] = graph_rss(stack)
        if fuzzer.sent % 100 == 0:
            log(f'fuzz: {fuzzer.sent} inputs, {tally["refused"]} refused, '
                f'{tally["moved"]} moved')

    while fuzzer.sent < count and not fuzzer.dead():
        sent = fuzzer.sent
        fuzz()  # hypothesis may end a run early when it runs out of new inputs: run again
        if fuzzer.sent == sent:
            break
    commander.switch('sim')
    commander.arm(False)
    dead = stack.dead()
    growth = {name: graph_rss(stack)[name] - before
              for name, before in rss.get('half', {}).items()}
    worst = max(growth, key=growth.get) if growth else ''
    for process in dead:
        log(f'fuzz: {process.describe_exit()}')
    return {
        'fuzzed_goals': fuzzer.sent,
        'fuzzed_goals_refused': tally['refused'],
        'fuzzed_goals_moved': tally['moved'],
        'fuzzed_nodes_died': len(dead),
        'fuzzed_rss_growth_mib': round(growth.get(worst, 0) / 2**20, 2),
        'fuzzed_rss_growth_node': worst,
        'fuzzed_wall_s': round(time.monotonic() - started, 1),
    }


def targets(results: dict) -> list[Target]:
    return [Target('fuzzed_goals', 1000, '>=', 'issue 11: at least 1,000 inputs'),
            Target('fuzzed_goals_refused', results.get('fuzzed_goals', 0), '==',
                   'every malformed input refused with a reason'),
            Target('fuzzed_goals_moved', 0, '==', 'nothing moves on a malformed input'),
            Target('fuzzed_nodes_died', 0, '==', 'no node dies')]


def rows(r: dict) -> list[tuple[str, str, str]]:
    return [('fuzzed inputs (refused with a reason)',
             f'{r["fuzzed_goals"]} ({r["fuzzed_goals_refused"]})',
             f'{r["fuzzed_wall_s"]:.0f} s'),
            ('fuzzed inputs that moved the arm / nodes died',
             f'{r["fuzzed_goals_moved"]} / {r["fuzzed_nodes_died"]}', 'both must be 0'),
            ('largest RSS growth over the second half (MiB)',
             f'{r["fuzzed_rss_growth_mib"]:.1f}', r['fuzzed_rss_growth_node'])]


if __name__ == '__main__':
    from benchmarks import run_alone
    raise SystemExit(run_alone(measure, __doc__))
