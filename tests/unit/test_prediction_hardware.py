"""Predictions with a model of the hardware (Predictor(hardware=...), e.g. a calibration's):
its dynamics, encoder offsets and command latency. Headless PyBullet, no ROS."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.prediction_pool import PredictorSpec
from tests.unit.test_prediction import _same, away_from_limits, safe_goal, setup, sweep_goal


@pytest.fixture(scope='module')
def arm6():
    return setup('rdt_arm6')


@pytest.fixture(scope='module')
def nominal(arm6):
    with arm6.predictor() as predictor:
        yield predictor


def predict(s, hardware: Perturbation | None = None, goal=None, start=None, **kwargs):
    with s.predictor(hardware=hardware, **kwargs) as predictor:
        return predictor.predict(goal or safe_goal(s)[0], s.home if start is None else start)


# --- command latency -----------------------------------------------------------------------
@pytest.mark.parametrize('cycles', [1, 2])
def test_a_latency_of_whole_cycles_is_the_integer_cycle_delay(arm6, cycles):
    """To the bit: latency = k control periods and nothing else in the model predicts what
    command_delay_cycles = k (no hardware model) predicts."""
    period = 1.0 / arm6.update_rate
    delayed = predict(arm6, command_delay_cycles=cycles)
    modelled = predict(arm6, Perturbation(command_latency=cycles * period))
    _same(delayed, modelled)
    assert delayed.safe


def test_an_empty_hardware_model_predicts_what_the_nominal_twin_does(arm6, nominal):
    _same(nominal.predict(safe_goal(arm6)[0], arm6.home), predict(arm6, Perturbation()))


def test_the_prediction_changes_continuously_with_the_latency(arm6):
    """Around a control cycle boundary (10 ms; the prediction world's physics step is 2 ms): a
    latency inside a step matters in proportion, never with a jump of a whole step.

    Measured as the mean difference over the rollout: PyBullet's stiff motors turn the
    tiniest change of a target into a transient of ~0.1 mrad at a few odd moments (a
    weight of 1e-5 does it as much as 1e-3), which a max would pick up.
    """
    positions = {latency: predict(arm6, Perturbation(command_latency=latency)).positions[:300]
                 for latency in (0.0096, 0.0097, 0.0098, 0.01 - 2e-6, 0.01, 0.0101)}

    def apart(a: float, b) -> float:
        other = positions[b] if isinstance(b, float) else b
        return float(np.abs(positions[a] - other).mean())
    step = apart(0.0096, 0.0098)  # a tenth of a physics step apart
    assert step > 1e-5, 'a latency inside a physics step changed nothing'
    assert apart(0.01 - 2e-6, 0.01) < 0.05 * step  # 1 % of a step: no jump at the boundary
    assert apart(0.0097, (positions[0.0096] + positions[0.0098]) / 2) < 0.1 * step
    assert apart(0.01, 0.0101) > 0.0


def test_a_latency_longer_than_a_cycle_still_reaches_the_goal(arm6):
    goal, last = safe_goal(arm6)
    v = predict(arm6, Perturbation(command_latency=0.0253))
    assert v.safe, v.summary
    np.testing.assert_allclose(v.final_positions, last, atol=0.02)


# --- encoder offsets -------------------------------------------------------------------------
def test_offsets_shift_the_predicted_positions_at_rest_by_exactly_the_offsets(arm6, nominal):
    """measured = true + offset: the arm comes to rest where it is commanded (true), the
    encoders report that plus the offsets; the start state given is the measured one."""
    goal, last = safe_goal(arm6)
    offsets = {j: 0.003 * (-1) ** k * (k + 1) for k, j in enumerate(arm6.joints)}  # < goal tol
    plain = nominal.predict(goal, arm6.home)
    shifted = predict(arm6, Perturbation(joint_offsets=offsets), goal)
    expected = np.array([offsets[j] for j in arm6.joints])
    assert shifted.safe, shifted.summary
    np.testing.assert_allclose(shifted.final_positions - plain.final_positions, expected,
                               atol=2e-5)
    np.testing.assert_allclose(shifted.final_positions, last + expected, atol=2e-3)
    # the start state is read as measured: the first reported state is the one given
    np.testing.assert_array_equal(shifted.positions[0], arm6.home_array)
    np.testing.assert_array_equal(plain.positions[0], arm6.home_array)


def test_offsets_are_outside_the_goal_tolerance_as_on_the_hardware(arm6):
    """An offset beyond the goal tolerance: the controller never sees the goal reached."""
    joint = arm6.joints[1]
    big = predict(arm6, Perturbation(joint_offsets={joint: 0.05}))
    assert not big.safe and joint in big.summary


# --- dynamics --------------------------------------------------------------------------------
def test_a_payload_model_changes_the_prediction_of_a_brisk_goal(arm6, nominal):
    d = away_from_limits(arm6, 0.4)
    brisk = arm6.goal((0.6, arm6.home_array + d), (1.2, arm6.home_array))
    plain = nominal.predict(brisk, arm6.home)
    loaded = predict(arm6, Perturbation(payload_mass=5.0), brisk)
    n = min(len(plain.positions), len(loaded.positions))
    assert np.abs(loaded.positions[:n] - plain.positions[:n]).max() > 2e-3
    assert loaded.max_tracking_error > 1.5 * plain.max_tracking_error


def test_a_refusal_is_confirmed_in_the_full_rate_world_with_the_same_hardware(arm6):
    """The unsafe verdict comes from the live-rate world, which has the model too."""
    hardware = Perturbation(payload_mass=3.0, command_latency=0.013,
                            joint_offsets={'shoulder_pan_joint': 0.01})
    refusal = predict(arm6, hardware, sweep_goal(arm6))
    full_rate = predict(arm6, hardware, sweep_goal(arm6), physics_decimation=1)
    assert not refusal.safe and refusal.collisions
    _same(refusal, full_rate)


def test_a_model_naming_an_unknown_joint_is_a_config_error(arm6):
    from reverse_digital_twin.core.errors import ConfigError
    with pytest.raises(ConfigError, match='no_such_joint'):
        arm6.predictor(hardware=Perturbation(joint_friction={'no_such_joint': 1.0}))


def test_the_spec_carries_the_model_to_a_worker_process(arm6):
    """Workers get their spec pickled (forkserver): the model must survive it."""
    hardware = Perturbation(payload_mass=0.5, command_latency=0.012,
                            joint_offsets={'elbow_joint': 0.002},
                            joint_friction={'shoulder_pan_joint': 0.4})
    spec = PredictorSpec(arm6.model, arm6.urdf, arm6.scene, arm6.physics_rate,
                         arm6.update_rate, arm6.config, hardware=hardware)
    copy = pickle.loads(pickle.dumps(spec))
    assert copy.hardware == hardware
    assert dict(copy.hardware.joint_friction) == {'shoulder_pan_joint': 0.4}
