"""Fuzzing through the bridge: malformed goals, streamed messages, move_to goals and service
requests, each refused with the driver's code and a reason, nothing moving, no node dying.

CI-sized (a fixed seed, a few dozen inputs per way in); ``make bench`` sends over a thousand
through the same strategies (tests/fuzzing.py, benchmarks/bench_fuzz.py). Real processes over
real DDS, the twin graph with the stand-in hardware.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from reverse_digital_twin.client import wait_for
from tests.fuzzing import GraphFuzzer, RobotFacts, Verdict, graph_rss
from tests.fuzzing import malformed_goal, malformed_move_to, malformed_prediction
from tests.fuzzing import malformed_trajectory, switch_request

pytestmark = pytest.mark.integration

FACTS = RobotFacts.of('rdt_arm6')
#: Points of the "enormous" trajectories in CI (the benchmark sends up to 20,000).
CI_ENORMOUS_POINTS = 2000
#: bytes: how much a node's resident memory may grow over this module's fuzzing (generous:
#: a Python process's first goals fill its caches; a leak per input shows far beyond it).
RSS_GROWTH_LIMIT = 64 * 2**20


def ci(examples: int):
    """The CI-sized run: reproducible (derandomized), no example database, no deadline (each
    example is a round trip through the graph)."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope='module')
def fuzzer(twin):
    """A fuzzer on the module's twin graph, both worlds at rest at home, and each node's
    resident memory before the first input."""
    twin.reset()
    fuzzer = GraphFuzzer(twin.commander, twin.joints, twin.stack)
    assert fuzzer.wait_ready(), 'the fuzzer found the graph not ready'
    fuzzer.rss_before = graph_rss(twin.stack)  # type: ignore[attr-defined]
    yield fuzzer
    fuzzer.close()


def check(fuzzer: GraphFuzzer, verdict: Verdict, sent: object) -> None:
    """Refused with a reason, nothing moved; then watch afresh for the next input."""
    assert not fuzzer.dead(), fuzzer.dead()
    assert verdict.refused, f'{sent!r} was not refused: {verdict}'
    assert verdict.reason.strip(), f'{sent!r} was refused without a reason: {verdict}'
    assert not verdict.moved, f'{sent!r} moved the arm ({verdict.moved})'
    fuzzer.watch.reset()


@ci(50)
@given(goal=malformed_goal(FACTS, CI_ENORMOUS_POINTS))
def test_malformed_goals_are_refused_and_nothing_moves(fuzzer, goal):
    verdict = fuzzer.goal(goal)
    check(fuzzer, verdict, goal)
    if verdict.code is not None:  # accepted, then refused: the driver's code for it
        assert verdict.code == -1, verdict  # INVALID_GOAL


@ci(20)
@given(message=malformed_trajectory(FACTS, CI_ENORMOUS_POINTS))
def test_malformed_streamed_trajectories_are_dropped_and_nothing_moves(fuzzer, message):
    check(fuzzer, fuzzer.topic(message.trajectory), message)


@ci(12)
@given(case=malformed_move_to(FACTS))
def test_malformed_move_to_goals_abort_before_anything_is_planned(fuzzer, case):
    defect, goal = case
    verdict = fuzzer.move_to(goal)
    check(fuzzer, verdict, (defect, goal))


@ci(15)
@given(request=malformed_prediction(FACTS, CI_ENORMOUS_POINTS))
def test_malformed_prediction_requests_are_answered_unsafe_with_the_reason(fuzzer, request):
    trajectory, start_state = request
    check(fuzzer, fuzzer.predict(trajectory, start_state), request)


@ci(8)
@given(target=switch_request())
def test_switching_to_a_target_not_there_or_not_armed_is_refused(fuzzer, target):
    check(fuzzer, fuzzer.switch(target), target)


@ci(20)
@given(goal=malformed_goal(FACTS, CI_ENORMOUS_POINTS))
def test_on_armed_hardware_the_bridge_still_refuses_what_a_client_sends(fuzzer, twin, goal):
    """Armed and routing to the hardware, the bridge's limits hold whatever the client sends:
    beyond the URDF limits, non-finite, malformed; the hardware keeps its position."""
    if twin.commander.status().active_target != 'hardware':
        assert twin.arm(True).success and twin.switch('hardware').success
        fuzzer.watch.reset()
    check(fuzzer, fuzzer.goal(goal), goal)


def test_after_the_fuzzing_every_node_lives_and_a_good_goal_runs(fuzzer, twin):
    """No node died, none grew beyond the leak bound, and the bridge still executes a
    well-formed goal on the twin and on the hardware."""
    assert twin.switch('sim').success
    assert twin.stack.dead() == [], twin.stack.dead()[0].describe_exit()
    before, after = fuzzer.rss_before, graph_rss(twin.stack)
    growth = {name: after[name] - before[name] for name in before}
    print(f'fuzzed {fuzzer.sent} inputs; RSS growth (MiB): '
          f'{ {n: round(g / 2**20, 1) for n, g in growth.items()} }')
    assert all(g < RSS_GROWTH_LIMIT for g in growth.values()), growth
    target = twin.pose(0.1)
    for world, view in (('sim', twin.sim), ('hardware', twin.hw)):
        if world == 'hardware':
            assert twin.arm(True).success and twin.switch('hardware').success
        outcome = twin.send([target], [1.0])
        assert outcome.status_name == 'SUCCEEDED', (world, outcome)
        assert wait_for(lambda: np.abs(twin.positions(view) - target).max() < 0.02, 5), world
    twin.reset()
    assert twin.stack.dead() == []
