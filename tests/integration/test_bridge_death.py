"""The bridge killed mid-goal while the hardware runs as its own graph (as a real driver does):
with the bounded look-ahead the hardware stops on the goal's path within 1.5 look-aheads; the
graph recovers when the bridge comes back."""
from __future__ import annotations

import signal
from collections.abc import Iterator

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from trajectory_msgs.msg import JointTrajectory

from reverse_digital_twin.client import make_trajectory, wait_for

from ..bridge_death import SplitGraphs

pytestmark = pytest.mark.integration

LOOKAHEAD = 1.0
#: s: the stand-in's command latency, a 100 Hz cycle and the bridge's extension period
#: (a quarter look-ahead) on top of the 1.5 look-aheads a part can still hold
SLACK = 0.4


@pytest.fixture(scope='module')
def graphs(ros_node, tmp_path_factory) -> Iterator[SplitGraphs]:
    handle = SplitGraphs(ros_node, 'rdt_arm6', tmp_path_factory.mktemp('bridge_death'),
                         bridge={'hardware_lookahead': LOOKAHEAD})
    yield handle
    handle.close()


@pytest.mark.timeout(240)
def test_a_killed_bridge_leaves_the_hardware_at_most_one_and_a_half_lookaheads(graphs) -> None:
    run = graphs.kill_bridge_mid_goal(duration=6.0)
    bound = run.speed_rad_s * (1.5 * LOOKAHEAD + SLACK)
    print(f'bridge killed: hardware moved {run.travel_rad:.3f} rad more (bound {bound:.3f}, '
          f'goal had {run.left_rad:.3f} left), at rest {run.stopped_after_s:.2f} s after')
    assert run.travel_rad <= bound, run
    assert run.left_rad - run.travel_rad > 0.5 * run.left_rad, 'the hardware went on with it'
    assert run.stopped_after_s <= 1.5 * LOOKAHEAD + SLACK + 0.5, run
    # The graph recovers: a new bridge (disarmed, as every bridge starts) runs the next goal.
    graphs.restart_bridge(hardware_lookahead=LOOKAHEAD)
    assert not graphs.commander.switch('hardware').success, 'a new bridge must start disarmed'
    graphs.go_home()
    assert np.abs(graphs.positions() - graphs.home).max() < 0.02
    outcome = graphs.commander.client.send(
        make_trajectory(graphs.joints, [graphs.far_pose(0.3), graphs.home], [2.0, 4.0]),
        timeout=60)
    assert outcome.status_name == 'SUCCEEDED', outcome


@pytest.mark.timeout(120)
def test_a_long_streamed_trajectory_reaches_the_hardware_in_parts_and_ends_exactly(
        graphs) -> None:
    """While the bridge lives, a streamed trajectory longer than the look-ahead runs to its
    end on the hardware, given to its controller's topic in several parts."""
    if graphs.twin.dead():
        graphs.restart_bridge(hardware_lookahead=LOOKAHEAD)
    graphs.go_home()
    goal = graphs.far_pose(0.3)
    parts: list[JointTrajectory] = []
    sub = graphs.node.create_subscription(JointTrajectory, graphs.names.hardware_joint_trajectory,
                                          parts.append, 10)
    try:
        assert wait_for(lambda: graphs.stream.get_subscription_count() > 0
                        and sub.get_publisher_count() > 0, 10)
        graphs.stream.publish(make_trajectory(graphs.joints, [graphs.home, goal], [1.5, 4.0]))
        assert wait_for(lambda: np.abs(graphs.positions() - goal).max() < 0.01, 30), \
            f'the hardware stopped at {graphs.positions()}, not at {goal}'
    finally:
        graphs.node.destroy_subscription(sub)
    assert len(parts) >= 4, f'{len(parts)} part(s): the trajectory went whole'
    assert len({(p.header.stamp.sec, p.header.stamp.nanosec) for p in parts}) == 1
    assert list(parts[-1].points[-1].positions) == pytest.approx(goal.tolist(), abs=1e-9)


@pytest.mark.timeout(240)
def test_a_streamed_trajectory_is_bounded_by_the_lookahead_too(graphs) -> None:
    """The same long trajectory on the bridge's joint_trajectory topic (the driver's streaming
    interface) goes to the hardware in parts as well: the bridge killed mid-way, the hardware
    stops on the path within 1.5 look-aheads instead of running the rest."""
    if graphs.twin.dead():
        graphs.restart_bridge(hardware_lookahead=LOOKAHEAD)
    run = graphs.kill_bridge_mid_goal(duration=6.0, streamed=True)
    bound = run.speed_rad_s * (1.5 * LOOKAHEAD + SLACK)
    print(f'bridge killed mid-stream: hardware moved {run.travel_rad:.3f} rad more (bound '
          f'{bound:.3f}, the trajectory had {run.left_rad:.3f} left)')
    assert run.travel_rad <= bound, run
    assert run.left_rad - run.travel_rad > 0.5 * run.left_rad, 'the hardware went on with it'
    graphs.restart_bridge(hardware_lookahead=LOOKAHEAD)


@pytest.mark.timeout(240)
def test_a_hung_bridge_leaves_the_hardware_stopped_and_the_goal_aborted(graphs) -> None:
    """SIGSTOP: the bridge stops extending the goal, so the hardware stops as if it had died;
    when the bridge runs again it aborts the client's goal with the reason and sends nothing
    stale."""
    if graphs.twin.dead():  # the other test kills the bridge: run on a live one
        graphs.restart_bridge(hardware_lookahead=LOOKAHEAD)
    run = graphs.kill_bridge_mid_goal(duration=6.0, sig=signal.SIGSTOP)
    assert run.travel_rad <= run.speed_rad_s * (1.5 * LOOKAHEAD + SLACK), run
    held = graphs.positions()
    graphs.twin.process(graphs.names.bridge).signal(signal.SIGCONT)
    outcome = graphs.commander.client.wait_result(graphs.pending, timeout=20)
    assert outcome.status == GoalStatus.STATUS_ABORTED, outcome
    assert 'Aborted:' in outcome.error_string, outcome
    # nothing stale: the rest of the goal is never sent once the bridge runs again
    start = graphs.hw.received
    assert wait_for(lambda: graphs.hw.received > start + 100, 10)
    assert np.abs(graphs.positions() - held).max() < 5e-3
