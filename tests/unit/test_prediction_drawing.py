"""core.prediction_drawing: a verdict drawn as shapes (no ROS), on both robots."""
from __future__ import annotations

import numpy as np
import pytest

from reverse_digital_twin.core.kinematics import Kinematics
from reverse_digital_twin.core.prediction_drawing import FAILING_COLOUR, SAFE_COLOUR
from reverse_digital_twin.core.prediction_drawing import TEXT_HEIGHT, UNSAFE_COLOUR
from reverse_digital_twin.core.prediction_drawing import GhostPlayback, PredictedContact
from reverse_digital_twin.core.prediction_drawing import PredictedMotion, PredictedViolation
from reverse_digital_twin.core.prediction_drawing import draw_divergence, draw_prediction
from reverse_digital_twin.core.prediction_drawing import thin_path
from reverse_digital_twin.robot_setup import load_robot


@pytest.fixture(scope='module', params=['rdt_arm6', 'panda'])
def robot(request):
    setup = load_robot(request.param)
    model = setup.model()
    kinematics = Kinematics.in_scene(model, setup.scene())
    current = {j.name: setup.initial_positions.get(j.name, 0.0) for j in model.movable_joints}
    return setup, kinematics, current


def _motion(setup, safe=True, collisions=(), violations=(), error_code=0, samples=101,
            amplitude=0.4) -> PredictedMotion:
    """The first joint swings by ``amplitude`` over 1 s, sampled every 10 ms."""
    times = np.linspace(0.0, 1.0, samples)
    positions = np.tile(setup.home, (samples, 1))
    positions[:, 0] += amplitude * times
    return PredictedMotion(safe=safe, summary='' if safe else 'collision: a hits b',
                           error_code=error_code, error_string='' if safe else 'aborted',
                           joints=tuple(setup.joints), times=times, positions=positions,
                           collisions=tuple(collisions), limit_violations=tuple(violations),
                           duration=1.0, max_tracking_error=0.002,
                           max_tracking_error_joint=setup.joints[0])


def test_a_safe_prediction_is_a_green_tool_path_through_the_predicted_positions(robot):
    setup, kinematics, current = robot
    motion = _motion(setup)
    drawing = draw_prediction(kinematics, motion, current)
    assert drawing.colour == SAFE_COLOUR and drawing.tool_link == kinematics.tip_link
    held = {k: v for k, v in current.items() if k not in setup.joints}
    for i in (0, len(motion.times) - 1):
        expected = kinematics.link_pose(
            drawing.tool_link, {**held, **dict(zip(setup.joints, motion.positions[i]))})[0]
        assert np.allclose(drawing.path[0 if i == 0 else -1], expected, atol=1e-9)
    full = kinematics.link_path(drawing.tool_link, setup.joints, motion.positions, held)
    # every drawn point is a predicted point, in order
    distances = np.linalg.norm(drawing.path[:, None, :] - full[None, :, :], axis=2)
    assert distances.min(axis=1).max() < 1e-12
    assert np.all(np.diff(distances.argmin(axis=1)) > 0)
    assert drawing.verdict.text.startswith('SAFE')
    assert np.allclose(drawing.verdict.position, full[0] + [0, 0, TEXT_HEIGHT])
    assert not drawing.contacts and not drawing.violations


def test_collisions_are_red_with_each_contact_named_where_it_happens(robot):
    setup, kinematics, current = robot
    link = kinematics.model.links[-1]
    contact = PredictedContact(link, 'obstacle', 0.42, (0.1, 0.2, 0.9))
    drawing = draw_prediction(kinematics, _motion(setup, False, [contact], error_code=-1),
                              current)
    assert drawing.colour == UNSAFE_COLOUR
    assert len(drawing.contacts) == 1
    assert np.allclose(drawing.contacts[0].position, contact.position)
    assert link in drawing.contacts[0].text and 'obstacle' in drawing.contacts[0].text
    assert '0.42' in drawing.contacts[0].text
    assert drawing.verdict.text.startswith('REFUSED') and 'a hits b' in drawing.verdict.text


def test_a_limit_violation_is_red_and_marked_on_the_path_when_it_happens(robot):
    setup, kinematics, current = robot
    violation = PredictedViolation(setup.joints[0], 'velocity', 0.5, 3.5, 3.0)
    motion = _motion(setup, False, violations=[violation], error_code=-4)
    drawing = draw_prediction(kinematics, motion, current)
    assert drawing.colour == UNSAFE_COLOUR
    held = {k: v for k, v in current.items() if k not in setup.joints}
    at = kinematics.link_path(drawing.tool_link, setup.joints, motion.positions[50:51], held)
    assert np.allclose(drawing.violations[0].position, at[0])
    assert setup.joints[0] in drawing.violations[0].text and 'velocity' in \
        drawing.violations[0].text


def test_an_error_code_without_contact_is_orange_and_a_refused_goal_has_text_only(robot):
    setup, kinematics, current = robot
    assert draw_prediction(kinematics, _motion(setup, False, error_code=-4),
                           current).colour == FAILING_COLOUR
    refused = PredictedMotion(False, 'goal names unknown joints', -1, 'invalid',
                              tuple(setup.joints), np.zeros(0), np.zeros((0, len(setup.joints))))
    drawing = draw_prediction(kinematics, refused, current)
    assert drawing.colour == FAILING_COLOUR and drawing.path.shape == (0, 3)
    tool_now = kinematics.link_pose(drawing.tool_link, current)[0]
    assert np.allclose(drawing.verdict.position, tool_now + [0, 0, TEXT_HEIGHT])
    assert 'unknown joints' in drawing.verdict.text
    ghost = GhostPlayback.of(refused, current)
    assert ghost.at(5.0) == pytest.approx(current)  # nothing predicted: stays where it is


def test_the_ghost_plays_the_prediction_back_then_holds_its_end(robot):
    setup, kinematics, current = robot
    motion = _motion(setup)
    ghost = GhostPlayback.of(motion, {**current, setup.joints[0]: 9.0})
    first = setup.joints[0]
    assert ghost.at(0.0)[first] == pytest.approx(setup.home[0])
    assert ghost.at(0.25)[first] == pytest.approx(setup.home[0] + 0.1)
    assert ghost.at(0.0)[first] != 9.0  # the prediction's start, not the stale state
    end = ghost.at(1.0)
    for later in (1.5, 100.0):
        assert ghost.at(later) == pytest.approx(end)
    assert end[first] == pytest.approx(setup.home[0] + 0.4)
    assert set(end) == set(current)  # every joint, the ones the verdict holds too
    assert ghost.duration == pytest.approx(1.0)


def test_a_divergence_is_drawn_at_the_measured_and_the_predicted_tool(robot):
    setup, kinematics, current = robot
    measured = setup.home.copy()
    measured[0] += 0.3
    drawing = draw_divergence(kinematics, setup.joints[0], 0.3, 0.05, 1.25, setup.joints,
                              measured, setup.home, current)
    held = {k: v for k, v in current.items() if k not in setup.joints}
    tool = kinematics.tip_link
    assert np.allclose(drawing.measured, kinematics.link_pose(
        tool, {**held, **dict(zip(setup.joints, measured))})[0])
    assert np.allclose(drawing.predicted, kinematics.link_pose(
        tool, {**held, **dict(zip(setup.joints, setup.home))})[0])
    assert np.linalg.norm(drawing.measured - drawing.predicted) > 0.01
    assert setup.joints[0] in drawing.label.text and '+0.3000 rad' in drawing.label.text
    assert '1.25 s' in drawing.label.text


def test_thin_path_keeps_ends_drops_standing_still_and_caps_the_count():
    still = np.zeros((50, 3))
    assert len(thin_path(still)) == 2
    line = np.column_stack([np.linspace(0, 1, 10001), np.zeros(10001), np.zeros(10001)])
    thinned = thin_path(line, spacing=0.0, max_points=100)
    assert len(thinned) == 100
    assert np.allclose(thinned[0], line[0]) and np.allclose(thinned[-1], line[-1])
    spaced = thin_path(line, spacing=0.01)
    gaps = np.linalg.norm(np.diff(spaced, axis=0), axis=1)
    assert len(spaced) == 101 and np.allclose(gaps, 0.01, atol=2e-4)
    back_and_forth = np.concatenate([line, line[::-1]])  # retraced: drawn both ways
    assert len(thin_path(back_and_forth, spacing=0.01)) == 201
