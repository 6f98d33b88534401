"""Replay recorded hardware commands through a twin world: what calibration fits and scores.

A recording holds, for every control cycle, the command the controller sent to the hardware
(``controller_state.output``) and the joint states the hardware measured. A
:class:`Segment` is one stretch of it; :func:`replay` drives a :class:`PhysicsWorld` from the
measured start of the segment with those commands, as the hardware model of a
:class:`~reverse_digital_twin.core.perturbation.Perturbation` says the hardware does (its
payload, damping, friction, command latency and encoder offsets; noise is not modelled), and
returns what the hardware's encoders would have read at the measured stamps.

Latency is continuous: a command stamped ``t`` takes effect at ``t + latency``; a physics step
that the moment falls into gets the time-weighted mean of the old and new command, so the
replay changes smoothly with the latency and a least-squares fit can find it between steps.
No rclpy here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
    effective = log.times + hardware.command_latency - segment.start_time  # s into the replay
    steps = np.rint((segment.sample_times - segment.start_time) / dt).astype(int)
    total = int(steps[-1]) if len(steps) else 0
    out = np.empty((len(steps), len(joints)))
    # the command in force at the start: the newest that took effect by then
    k = int(np.searchsorted(effective, 1e-12, side='right')) - 1
    if k >= 0:
        _apply(world, log, joints, k, None, 0.0)
    else:
        world.apply_command(joints, positions=true_start.tolist())
    sample = 0
    while sample < len(steps) and steps[sample] <= 0:
        out[sample] = world.joint_positions(joints)
        sample += 1
    K = len(effective)
    for s in range(total):
        t0, t1 = s * dt, (s + 1) * dt
        if k + 1 < K and effective[k + 1] < t1:
            # a new command takes effect within this step: time-weighted blend, then in force
            nxt = k + 1
            while nxt + 1 < K and effective[nxt + 1] < t1:
                nxt += 1  # several commands within one step: the newest wins
            weight = (t1 - max(effective[nxt], t0)) / dt
            _apply(world, log, joints, nxt, k if k >= 0 else None, weight)
            world.step(1)
            k = nxt
            _apply(world, log, joints, k, None, 0.0)
        else:
            world.step(1)
        while sample < len(steps) and steps[sample] <= s + 1:
            out[sample] = world.joint_positions(joints)
            sample += 1
    return out + offsets


def _apply(world: PhysicsWorld, log: CommandLog, joints: list[str], new: int,
           old: int | None, weight: float) -> None:
    """Apply command ``new``, blended with ``old`` (weight of new; None: new alone)."""
    def value(a: np.ndarray | None) -> list[float] | None:
        if a is None:
            return None
        if old is None:
            return a[new].tolist()
        return (weight * a[new] + (1.0 - weight) * a[old]).tolist()
    world.apply_command(joints, positions=value(log.positions),
                        velocities=value(log.velocities), efforts=value(log.efforts))


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
