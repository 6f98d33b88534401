"""Identification against a hardware with known hidden values, and refusals of bad recordings.

The "hardware" here is the replay of the same commands through a world with the hidden model
plus encoder noise (the stand-in's sensor model), so the fit has an exact answer to find.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reverse_digital_twin.core.calibration import Calibration
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.identification import Parameter, Recording, UnidentifiableRecording
from reverse_digital_twin.core.identification import evaluate, identify, split_segments
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.physics import MotorSettings, PhysicsWorld
from reverse_digital_twin.core.replay import CommandLog, Segment, replay
from reverse_digital_twin.robot_setup import load_robot


@pytest.fixture(scope='module')
def arm():
    setup = load_robot('rdt_arm6')
    world = PhysicsWorld(setup.model(), str(setup.urdf), setup.scene(), 1000.0, MotorSettings(),
                         setup.initial_positions)
    yield setup, world, world.save_state()
    world.close()


def commands(setup, seed: int, goals: int, still: tuple[int, ...] = ()) -> CommandLog:
    """Min-jerk point-to-point commands at 100 Hz with rests, as the controller sends them."""
    rng = np.random.default_rng(seed)
    home = setup.home
    n = len(home)
    times, rows, q, t = [], [], home.copy(), 0.0
    for _ in range(goals):
        target = home + rng.uniform(-0.3, 0.3, n)
        target[list(still)] = home[list(still)]
        steps = int(rng.uniform(0.6, 1.2) * 100)
        for k in range(steps):
            s = (k + 1) / steps
            times.append(t)
            rows.append(q + (target - q) * (10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5))
            t += 0.01
        q = target
        for _ in range(40):
            times.append(t)
            rows.append(q.copy())
            t += 0.01
    return CommandLog(tuple(setup.joints), np.array(times), np.array(rows))


def recorded(setup, world, initial, log: CommandLog, hidden: Perturbation,
             noise: float = 2e-4, seed: int = 3) -> Recording:
    n = len(log.joints)
    measured = replay(world, hidden, Segment(log, 0.0, setup.home, np.zeros(n), log.times,
                                             np.zeros((len(log.times), n))), initial)
    measured = measured + np.random.default_rng(seed).normal(0.0, noise, measured.shape)
    states = [(t, log.joints, q.tolist(), [0.0] * n) for t, q in zip(log.times, measured)]
    cmds = [(t, log.joints, c.tolist(), [], []) for t, c in zip(log.times, log.positions)]
    return Recording.from_messages(states, cmds)


def test_replay_changes_continuously_with_the_latency(arm):
    setup, world, initial = arm
    log = commands(setup, 1, 1)
    segment = Segment(log, 0.0, setup.home, np.zeros(6), log.times, np.zeros((len(log.times), 6)))
    a, b, c = (replay(world, Perturbation(command_latency=L), segment, initial)
               for L in (0.0100, 0.0103, 0.0106))
    step_ab, step_bc = np.abs(b - a).max(), np.abs(c - b).max()
    assert 0 < step_ab < 2e-3 and step_bc == pytest.approx(step_ab, rel=0.5)


def test_identifies_latency_and_offsets_of_a_hidden_hardware(arm, tmp_path: Path):
    setup, world, initial = arm
    joints = setup.joints
    hidden = Perturbation(command_latency=0.0123, payload_mass=0.0,
                          joint_offsets={joints[2]: 0.002, joints[4]: -0.0015})
    recording = recorded(setup, world, initial, commands(setup, 1, 2), hidden)

    def rollouts(batch):
        return [replay(world, m, s, initial) for s, m in batch]
    result = identify(recording, rollouts, parameters=[Parameter('command_latency', 's',
                                                                 0.005, 0.2)])
    latency = next(e for e in result.estimates if e.key == 'command_latency')
    assert latency.value == pytest.approx(0.0123, abs=0.0008)
    offsets = {e.key: e.value for e in result.estimates if e.key.startswith('joint_offsets.')}
    assert offsets[f'joint_offsets.{joints[2]}'] == pytest.approx(0.002, abs=2e-4)
    assert offsets[f'joint_offsets.{joints[4]}'] == pytest.approx(-0.0015, abs=2e-4)
    assert result.rms_after.max() < 0.35e-3  # the encoder noise is 0.2 mrad
    assert result.rms_before.max() > 5 * result.rms_after.max()
    # held out: other motions of the same hardware
    held_out = recorded(setup, world, initial, commands(setup, 9, 1), hidden, seed=4)
    before, after = evaluate(held_out, rollouts, [Perturbation(), result.model])
    assert after.max() < 0.35e-3 and before.max() > 5 * after.max()
    # the calibration file round trip
    path = Calibration(result.model, result.threshold, robot='rdt_arm6',
                       divergence_time_slack=result.time_slack).save(
        tmp_path / 'calibration.yaml')
    loaded = Calibration.load(path, joints)
    assert loaded.hardware.command_latency == pytest.approx(latency.value)
    assert loaded.divergence_threshold == pytest.approx(result.threshold)
    # the watch it proposes: twice the worst residual (>= 10 mrad); two 10 ms control periods
    # plus three standard deviations of the latency, in whole ms
    worst = max(float(np.abs(r).max()) for r in result.residuals_after)
    assert 0.010 <= result.threshold <= max(0.010, 2 * worst + 1e-9)
    assert 0.020 <= result.time_slack <= 0.020 + 3 * latency.uncertainty + 0.001
    assert loaded.divergence_time_slack == pytest.approx(result.time_slack)


def test_a_recording_without_motion_is_refused(arm):
    setup, world, initial = arm
    t = np.arange(0, 5.0, 0.01)
    log = CommandLog(tuple(setup.joints), t, np.tile(setup.home, (len(t), 1)))
    recording = recorded(setup, world, initial, log, Perturbation())
    with pytest.raises(UnidentifiableRecording, match='without motion'):
        identify(recording, lambda batch: [replay(world, m, s, initial) for s, m in batch])


def test_a_joint_that_never_moves_is_refused_by_name(arm):
    setup, world, initial = arm
    recording = recorded(setup, world, initial, commands(setup, 1, 3, still=(5,)),
                         Perturbation())
    assert split_segments(recording)
    with pytest.raises(UnidentifiableRecording, match=setup.joints[5]):
        identify(recording, lambda batch: [replay(world, m, s, initial) for s, m in batch])


def test_a_recording_without_commands_is_refused():
    with pytest.raises(UnidentifiableRecording, match='controller_state'):
        Recording.from_messages([(0.0, ['a'], [0.0], [0.0])], [])


def test_calibration_file_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(ConfigError, match='does not exist'):
        Calibration.load(tmp_path / 'none.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('calibration:\n  hardware: {payload_mass: 1.0}\n  divergence_threshold: 0\n')
    with pytest.raises(ConfigError, match='divergence_threshold'):
        Calibration.load(bad)
