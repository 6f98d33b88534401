"""The reverse twin on a second robot (the Panda from pybullet_data): nothing robot-specific in
the bridge, the twin or the stand-in."""
from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import JointState

from reverse_digital_twin.client import make_trajectory, wait_for

from .conftest import Twin, contacts_along

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
        _around_the_obstacle(twin)
    finally:
        twin.close()


#: Leaning forward at the obstacle's height (config/scene_panda.yaml): turning panda_joint1
#: from 0 to 1.5 sweeps the forearm through the obstacle.
LEANING = (0.0, 0.3, 0.0, -1.9, 0.0, 2.2, 0.785)


def _around_the_obstacle(twin: Twin) -> None:
    """move_to plans around what the straight line would hit, and the twin gets there without
    contact (on the twin: the stand-in's hidden payload and friction make the Panda's wrist
    lag its fast planned motions beyond the path tolerance)."""
    assert twin.switch('sim').active_target == 'sim'
    outcome = twin.commander.move(positions=LEANING, joint_names=twin.joints, timeout=60)
    assert outcome.succeeded, outcome
    assert wait_for(lambda: np.abs(twin.positions(twin.sim) - LEANING).max() < 0.02, 10)
    around = np.array((1.5, *LEANING[1:]))
    straight = twin.predict(make_trajectory(twin.joints, [around], [3.0]),
                            JointState(name=twin.joints, position=[float(q) for q in LEANING]))
    assert any('obstacle' in c.other for c in straight.collisions), straight.collisions
    twin.sim.history.clear()
    twin.sim.record = True
    try:
        outcome = twin.commander.move(positions=around.tolist(), joint_names=twin.joints,
                                      timeout=60)
        assert outcome.succeeded, outcome
        assert wait_for(lambda: np.abs(twin.positions(twin.sim) - around).max() < 0.02, 10)
    finally:
        twin.sim.record = False
    assert len(twin.sim.history) > 100
    assert contacts_along(twin, list(twin.sim.history)) == []
