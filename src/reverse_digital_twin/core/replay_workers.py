"""Replays in worker processes, each with its own PyBullet world: calibration's parallel rollouts.

Like the planner's prediction workers (:mod:`~reverse_digital_twin.core.prediction_pool`):
'forkserver' processes (never 'fork' from a threaded process), niced so that a calibration
next to a running twin yields the CPU to it, each building its world once and then answering
batches of :func:`~reverse_digital_twin.core.replay.replay` calls. No rclpy here.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.physics import MotorSettings, PhysicsWorld
from reverse_digital_twin.core.prediction_pool import START_METHOD, WORKER_NICENESS
from reverse_digital_twin.core.replay import Segment, replay
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.core.scene import Scene


@dataclass(frozen=True)
class WorldSpec:
    """What a worker needs to build the hardware's world (the twin's robot and scene)."""

    model: RobotModel
    urdf_path: str
    scene: Scene | None
    physics_rate: float
    motors: MotorSettings = MotorSettings()
    initial_positions: Mapping[str, float] | None = None

    def build(self) -> PhysicsWorld:
        return PhysicsWorld(self.model, self.urdf_path, self.scene, self.physics_rate,
                            self.motors, self.initial_positions)


_world: PhysicsWorld | None = None
_initial: int | None = None


def _start(spec: WorldSpec) -> None:
    global _world, _initial
    os.nice(WORKER_NICENESS)
    _world = spec.build()
    _initial = _world.save_state()


def _replay(job: tuple[Segment, Perturbation]) -> np.ndarray:
    assert _world is not None, 'worker not started'
    segment, model = job
    return replay(_world, model, segment, _initial)


class ReplayWorkers:
    """``workers`` processes replaying batches; use as a context manager, call it with a batch."""

    def __init__(self, spec: WorldSpec, workers: int = 2) -> None:
        self.workers = max(1, int(workers))
        context = multiprocessing.get_context(START_METHOD)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start,
                                         initargs=(spec,))

    def __call__(self, batch: Sequence[tuple[Segment, Perturbation]]) -> list[np.ndarray]:
        """Each (segment, model)'s predicted encoder positions, in the batch's order."""
        # longest first, so the batch ends evenly across the workers
        order = sorted(range(len(batch)), key=lambda i: -batch[i][0].duration)
        results = dict(zip(order, self._pool.map(_replay, [batch[i] for i in order])))
        return [results[i] for i in range(len(batch))]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> 'ReplayWorkers':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
