"""Replay recorded hardware commands through a twin world: what calibration fits and scores.

A recording holds, for every control cycle, the command the controller sent to the hardware
(``controller_state.output``) and the joint states the hardware measured. A
:class:`Segment` is one stretch of it; :func:`replay` drives a :class:`PhysicsWorld` from the
measured start of the segment with those commands, as the hardware model of a
:class:`~reverse_digital_twin.core.perturbation.Perturbation` says the hardware does (its
payload, damping, friction, command latency and encoder offsets; noise is not modelled), and
returns what the hardware's encoders would have read at the measured stamps.

Latency is continuous, by the same rule as the predictions
(:class:`~reverse_digital_twin.core.command_latency.CommandSchedule`): a command stamped ``t``
takes effect at ``t + latency``, and the physics step that moment falls into gets the
time-weighted mean of the commands acting in it, so the replay changes smoothly with the
latency and a least-squares fit can find it between steps.
No rclpy here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reverse_digital_twin.core.command_latency import CommandSchedule
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.physics import PhysicsWorld


@dataclass(frozen=True)
class CommandLog:
    """Commands as the controller sent them: one row per control cycle, None = not used."""

    joints: tuple[str, ...]
    times: np.ndarray  # (K,) s, strictly increasing
    positions: np.ndarray | None = None  # (K, n)
    velocities: np.ndarray | None = None
    efforts: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = len(self.times)
        for name in ('positions', 'velocities', 'efforts'):
            values = getattr(self, name)
            if values is not None and np.shape(values) != (k, len(self.joints)):
                raise ValueError(f'command {name} have shape {np.shape(values)}, expected '
                                 f'({k}, {len(self.joints)})')
        if self.positions is None and self.velocities is None and self.efforts is None:
            raise ValueError('a command log needs positions, velocities or efforts')

    def rows(self, start: int, stop: int) -> 'CommandLog':
        """Commands start..stop-1."""
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop]
        return CommandLog(self.joints, self.times[start:stop], cut(self.positions),
                          cut(self.velocities), cut(self.efforts))


@dataclass(frozen=True)
class Segment:
    """One stretch of a recording, replayed on its own from its measured start."""

    commands: CommandLog  # includes the command in force at start_time (the hold)
    start_time: float  # s, same clock as the commands
    start_positions: np.ndarray  # (n,) measured (encoder) positions at start_time
    start_velocities: np.ndarray  # (n,)
    sample_times: np.ndarray  # (M,) s, measured stamps to predict, >= start_time
    measured: np.ndarray  # (M, n) measured positions at sample_times

    @property
    def duration(self) -> float:
        return float(self.sample_times[-1] - self.start_time) if len(self.sample_times) else 0.0


def replay(world: PhysicsWorld, hardware: Perturbation, segment: Segment,
           initial_state: int | None = None) -> np.ndarray:
    """Predicted encoder positions (M, n) at the segment's sample times.

    Args:
        world: a world of the robot at the hardware's physics rate; its dynamics are set to
            ``hardware``'s for every joint (so successive replays never inherit settings).
        hardware: the model of the hardware (payload, damping, friction, latency, offsets).
        segment: what to replay.
        initial_state: a saved state of ``world`` to restore first (contacts, solver state);
            None leaves the world as it is apart from the joints.
    """
    joints = list(segment.commands.joints)
    full = _full_model(hardware, world)
    full.apply_to(world)
    offsets = np.array([hardware.joint_offsets.get(j, 0.0) for j in joints])
    if initial_state is not None:
        world.restore_state(initial_state)
    true_start = np.asarray(segment.start_positions, dtype=float) - offsets
    world.reset_joints(dict(zip(joints, true_start.tolist())),
                       dict(zip(joints, np.asarray(segment.start_velocities, float).tolist())))
    dt = world.dt
    log = segment.commands
    schedule = CommandSchedule(log.times - segment.start_time, hardware.command_latency, dt)
    steps = np.rint((segment.sample_times - segment.start_time) / dt).astype(int)
    total = int(steps[-1]) if len(steps) else 0
    out = np.empty((len(steps), len(joints)))
    sample = 0
    applied: tuple[tuple[int, float], ...] | None = None
    for s in range(total + 1):
        while sample < len(steps) and steps[sample] <= s:
            out[sample] = world.joint_positions(joints)
            sample += 1
        if s == total:
            break
        shares = schedule.shares(s)
        if shares != applied:  # a command takes effect within this step: the blend, once
            _apply(world, log, joints, shares, true_start)
            applied = shares
        world.step(1)
    return out + offsets


def _apply(world: PhysicsWorld, log: CommandLog, joints: list[str],
           shares: tuple[tuple[int, float], ...], hold: np.ndarray) -> None:
    """Apply the time-weighted mean of the commands acting in a step (index -1: the hold at
    the start, i.e. the start positions)."""
    def value(a: np.ndarray | None, at_rest: np.ndarray | None) -> list[float] | None:
        if a is None:
            return None
        total = np.zeros(len(joints))
        for index, share in shares:
            row = a[index] if index >= 0 else (at_rest if at_rest is not None else a[0])
            total += share * row
        return total.tolist()
    world.apply_command(joints, positions=value(log.positions, hold),
                        velocities=value(log.velocities, np.zeros(len(joints))),
                        efforts=value(log.efforts, None))


def _full_model(hardware: Perturbation, world: PhysicsWorld) -> Perturbation:
    """The model with every movable joint named (zeros for the unnamed), so applying it
    replaces whatever the world had."""
    joints = world.movable_joints

    def complete(values) -> dict[str, float]:
        return {j: float(values.get(j, 0.0)) for j in joints}
    return Perturbation(payload_mass=hardware.payload_mass, payload_link=hardware.payload_link,
                        joint_damping=complete(hardware.joint_damping),
                        joint_friction=complete(hardware.joint_friction),
                        command_latency=hardware.command_latency,
                        joint_offsets=dict(hardware.joint_offsets))


def rms_per_joint(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Root mean square of predicted - measured per joint (column)."""
    if len(predicted) == 0:
        return np.full(predicted.shape[1] if predicted.ndim == 2 else 0, math.nan)
    return np.sqrt(np.mean((predicted - measured) ** 2, axis=0))
