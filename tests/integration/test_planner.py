"""The planner in its own process: predictions from a pool of workers beside the running twin.

Real processes over real DDS (the twin graph with the stand-in). The twin's real-time factor is
measured from /clock over the window in which predictions run: the predictions must not slow
the twin's physics down (they used to run inside the sim node).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from rcl_interfaces.srv import ListParameters
from rdt_interfaces.srv import PredictTrajectory
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from reverse_digital_twin.client import answer_of, call_service, make_trajectory, wait_for
from reverse_digital_twin.nodes.ros_common import CLOCK_QOS, seconds

pytestmark = pytest.mark.integration
#: Minimum real-time factor of the twin while predictions run (1.0 = real time).
MIN_RTF = 0.9


@pytest.fixture
def predict_client(twin):
    client = twin.node.create_client(PredictTrajectory, twin.names.predict_trajectory)
    assert client.wait_for_service(timeout_sec=30.0)
    # answered once (a new client's first answer can be lost): the tests' own calls, some
    # concurrent, are then sent once
    warm_up = PredictTrajectory.Request(trajectory=make_trajectory(twin.joints, [twin.home],
                                                                   [0.5]))
    assert answer_of(client, warm_up, 60.0) is not None, 'the planner never answered'
    yield client
    twin.node.destroy_client(client)


def call(client, request: PredictTrajectory.Request, timeout: float = 60.0):
    response = answer_of(client, request, timeout)
    assert response is not None, f'no answer from {client.srv_name}'
    return response.verdict


def test_the_planner_serves_predictions_and_move_to_and_the_sim_node_does_not(twin):
    node = twin.node
    names = twin.names

    def services() -> set[str]:
        return {name for name, _ in node.get_service_names_and_types()}

    assert wait_for(lambda: names.predict_trajectory in services(), 10)
    actions = {f'{names.move_to}/_action/send_goal'}
    assert wait_for(lambda: actions <= services(), 10)
    assert not any(s.startswith(f'{names.sim_node}/') and ('predict' in s or 'move_to' in s)
                   for s in services())


@pytest.mark.parametrize('node', ['sim_node', 'standin'])
def test_the_sim_node_and_the_stand_in_declare_nothing_of_prediction(twin, node):
    """Only the planner predicts and moves: the twin's sim node and the stand-in (which plays
    the hardware) have no prediction or move_to parameters."""
    name = getattr(twin.names, node)
    declared = set(call_service(twin.node, ListParameters, f'{name}/list_parameters',
                                ListParameters.Request(depth=0), 30.0).result.names)
    assert 'physics_rate' in declared
    planner_only = {'controller_parameters_file', 'controller_name', 'bridge_controller',
                    'move_to_start_joint_states'}
    assert not declared & planner_only
    assert not [n for n in declared if n.startswith('prediction.')]


def test_the_predict_service_answers_safe_and_unsafe(twin, predict_client):
    twin.reset()
    safe = call(predict_client, PredictTrajectory.Request(
        trajectory=make_trajectory(twin.joints, [twin.pose(0.2)], [2.0])))
    assert safe.safe, safe.summary
    sweep = twin.home.copy()
    sweep[0] = 1.57  # through the obstacle of config/scene_default.yaml
    unsafe = call(predict_client, PredictTrajectory.Request(
        trajectory=make_trajectory(twin.joints, [sweep], [2.0])))
    assert not unsafe.safe and 'obstacle' in unsafe.summary


def test_without_a_start_state_the_prediction_starts_from_the_twin(twin, predict_client):
    """The planner follows /sim/joint_states: after the twin moved, a prediction from "now"
    starts where the twin is."""
    twin.reset()
    pose = twin.pose(0.25)
    assert twin.send([pose], [1.5]).status_name == 'SUCCEEDED'
    verdict = call(predict_client, PredictTrajectory.Request(
        trajectory=make_trajectory(twin.joints, [twin.home], [2.0])))
    assert verdict.safe, verdict.summary
    first = np.array(verdict.predicted_trajectory.points[0].positions)
    assert np.abs(first - pose).max() < 0.02, (first, pose)


def test_two_predictions_requested_at_once_both_answer(twin, predict_client):
    twin.reset()
    requests = [PredictTrajectory.Request(trajectory=make_trajectory(
        twin.joints, [twin.pose(amplitude)], [3.0])) for amplitude in (0.1, 0.2)]
    futures = [predict_client.call_async(r) for r in requests]
    assert wait_for(lambda: all(f.done() for f in futures), 60), 'a prediction did not answer'
    verdicts = [f.result().verdict for f in futures]
    assert all(v.safe for v in verdicts), [v.summary for v in verdicts]
    finals = [np.array(v.final_state.position) for v in verdicts]
    for final, amplitude in zip(finals, (0.1, 0.2)):
        assert np.abs(final - twin.pose(amplitude)).max() < 0.03


def test_a_bad_start_state_is_an_unsafe_verdict_with_the_reason(twin, predict_client):
    start = JointState(name=['no_such_joint'], position=[0.0])
    verdict = call(predict_client, PredictTrajectory.Request(
        trajectory=make_trajectory(twin.joints, [twin.home], [1.0]), start_state=start))
    assert not verdict.safe and 'unknown joints' in verdict.summary


def test_the_twin_keeps_real_time_while_predictions_run(twin, predict_client):
    """3 s predictions back to back, two at a time, for at least 2 s of wall time: /clock
    advances at real time."""
    twin.reset()
    samples: list[tuple[float, float]] = []  # (wall s, sim s)

    def on_clock(msg: Clock) -> None:
        samples.append((time.monotonic(), seconds(msg.clock)))

    sub = twin.node.create_subscription(Clock, '/clock', on_clock, CLOCK_QOS)
    try:
        assert wait_for(lambda: len(samples) > 10, 10), 'no /clock'
        start = samples[-1]
        trajectory = make_trajectory(twin.joints, [twin.pose(0.2)], [3.0])
        rounds = 0
        while rounds < 3 or (samples[-1][0] - start[0] < 2.0 and rounds < 100):
            futures = [predict_client.call_async(PredictTrajectory.Request(trajectory=trajectory))
                       for _ in range(2)]
            assert wait_for(lambda: all(f.done() for f in futures), 60)
            assert all(f.result().verdict.safe for f in futures)
            rounds += 1
        end = samples[-1]
    finally:
        twin.node.destroy_subscription(sub)
    wall, sim = end[0] - start[0], end[1] - start[1]
    assert wall > 0.5, f'the window was only {wall:.2f} s'
    rtf = sim / wall
    assert rtf >= MIN_RTF, f'the twin ran at {rtf:.2f} x real time while predicting ' \
        f'({sim:.2f} s simulated in {wall:.2f} s)'


def test_move_to_goes_through_the_planner_and_the_bridge(twin):
    """The planner's ~/move_to plans, predicts and sends the motion to the bridge, which runs it
    on the active target (the twin here)."""
    twin.reset()
    target = twin.pose(0.15)
    result = twin.commander.move(positions=target.tolist())
    assert result.error_code == 0, result.error_string
    assert wait_for(lambda: np.abs(twin.positions(twin.sim) - target).max() < 0.01, 5)
    assert np.abs(twin.positions(twin.hw) - twin.home).max() < 5e-3


@pytest.mark.parametrize('parameter, value, words', [
    ('prediction.workers', 0, 'workers'),
    pytest.param('prediction.allowed_contacts', 'wrist_3_link', 'robot_link:other',
                 marks=pytest.mark.slow),
    pytest.param('prediction.min_speed', -1.0, 'min_speed', marks=pytest.mark.slow),
    pytest.param('planning.timeout', 0.0, 'planning.timeout', marks=pytest.mark.slow),
    pytest.param('sweep.scenario_file', 'no_such_scenario', 'sweep.scenario_file',
                 marks=pytest.mark.slow),
])
def test_a_bad_planner_parameter_is_one_clear_line(tmp_path, parameter, value, words):
    """The planner alone, misconfigured: exit code 2 and a line naming the parameter."""
    from reverse_digital_twin.nodes.node_main import EXIT_CONFIG_ERROR
    from reverse_digital_twin.runner import Stack
    from reverse_digital_twin.stack import PLANNER_NODE, twin_graph
    spec = next(s for s in twin_graph('rdt_arm6', overrides={PLANNER_NODE: {parameter: value}})
                if s.name == PLANNER_NODE)
    with open(tmp_path / 'planner.log', 'w') as log, Stack([spec], echo=log) as stack:
        dead = stack.wait(timeout=60)
        assert dead is not None, 'the planner accepted a bad parameter'
        assert dead.popen.returncode == EXIT_CONFIG_ERROR
    output = (tmp_path / 'planner.log').read_text()
    assert 'configuration error' in output and words in output, output
    assert 'Traceback' not in output
