"""The reverse twin on a second robot (the Panda from pybullet_data): nothing robot-specific in
the bridge, the twin or the stand-in."""
from __future__ import annotations

import numpy as np
import pytest

from reverse_digital_twin.client import make_trajectory, wait_for

from .conftest import Twin

pytestmark = pytest.mark.integration


def test_panda_twin_refuses_a_collision_and_runs_a_safe_goal_on_the_hardware(ros_node,
                                                                             tmp_path):
    twin = Twin(ros_node, 'panda', tmp_path)
    try:
        unsafe = None
        for amplitude in (1.5, -1.5, 2.6, -2.6):  # a single-joint sweep into the scene
            for j in range(len(twin.joints)):
                target = twin.home.copy()
                target[j] = np.clip(target[j] + amplitude,
                                    twin.model.joint(twin.joints[j]).limits.lower,
                                    twin.model.joint(twin.joints[j]).limits.upper)
                trajectory = make_trajectory(twin.joints, [target], [2.0])
                if twin.predict(trajectory).collisions:
                    unsafe = trajectory
                    break
            if unsafe is not None:
                break
        assert unsafe is not None, 'no colliding sweep found for the Panda'
        assert twin.arm(True).success and twin.switch('hardware').success
        before = twin.positions(twin.hw)
        outcome = twin.client.send(unsafe, timeout=20)
        assert outcome.status_name == 'ABORTED' and 'The twin refused' in outcome.error_string
        count = twin.hw.received
        assert wait_for(lambda: twin.hw.received > count + 30, 5)
        assert np.abs(twin.positions(twin.hw) - before).max() < 2e-3
        target = twin.pose(0.2)
        outcome = twin.send([target], [1.5])
        assert outcome.status_name == 'SUCCEEDED', outcome
        assert wait_for(lambda: np.abs(twin.positions(twin.hw) - target).max() < 0.02, 5)
    finally:
        twin.close()
