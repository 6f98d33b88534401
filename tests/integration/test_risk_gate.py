"""The bridge's risk gate: with min_success_probability set, a goal reaches the hardware only if
a sweep under the planner's scenario (sweep.scenario_file) predicts at least that share of
successes. Real processes over real DDS; the sweep's workers are real PyBullet worlds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.stack import PLANNER_NODE, STANDIN_NODE

from .conftest import Twin

pytestmark = pytest.mark.integration

#: Every draw locks one joint where the motion starts: no rollout can succeed.
ALWAYS_LOCKED = """\
description: one joint always seized
locked_joint:
  probability: 1.0
  joint: any
"""


def test_a_goal_below_the_success_probability_never_reaches_the_hardware(
        ros_node, tmp_path: Path):
    scenario = tmp_path / 'always_locked.yaml'
    scenario.write_text(ALWAYS_LOCKED)
    # the world does what the scenario says: the stand-in's draw 0 locks a joint too
    twin = Twin(ros_node, 'rdt_arm6', tmp_path, overrides={
        'bridge': {'min_success_probability': 0.8, 'sweep_rollouts': 4},
        PLANNER_NODE: {'sweep.scenario_file': str(scenario), 'sweep.workers': 1},
        STANDIN_NODE: {'scenario.file': str(scenario)}})
    try:
        assert twin.arm(True).success and twin.switch('hardware').success
        target = twin.pose(0.2)
        before = twin.positions(twin.hw)
        outcome = twin.send([target], [2.0])
        assert outcome.status_name == 'ABORTED', outcome
        assert 'risk sweep predicts success in 0% of its rollouts' in outcome.error_string
        assert "0 of 4 rollouts under scenario 'always_locked'" in outcome.error_string
        count = twin.hw.received
        assert wait_for(lambda: twin.hw.received > count + 30, 5)
        assert np.abs(twin.positions(twin.hw) - before).max() < 2e-3, 'the hardware moved'
        # the gate off, the nominal twin finds the goal safe and the hardware gets it: one of
        # its joints is seized, as the sweep predicted, and the controller aborts the goal
        twin.commander.set_parameters(twin.names.bridge, {'min_success_probability': 0.0})
        outcome = twin.send([target], [2.0])
        assert outcome.status_name == 'ABORTED', outcome
        # the controller's own verdict (a seized joint misses the goal tolerance after its
        # goal_time), not the bridge's "no result": the hardware answered in time
        assert any(words in outcome.error_string for words in (
            'goal_time_tolerance', 'path tolerance')), outcome.error_string
        assert 'treated as lost' not in outcome.error_string
        assert wait_for(lambda: twin.hw.received > count + 200, 10)
        moved = np.abs(twin.positions(twin.hw) - before)
        assert moved.min() < 2e-3, f'every joint moved ({moved.round(4)}): none was locked'
        assert moved.max() > 0.02, 'nothing moved at all'
    finally:
        twin.close()
