"""A small TF tree without rclpy: the latest transform of every frame, composed on request.

A viewer needs the pose of a frame (a camera's optical frame, the robot's root link) in the
world to draw what is expressed in it. tf2's buffer is not on PyPI and interpolates in time,
which a live view does not need: the latest transform of each edge is what is on screen.
Quaternions are (x, y, z, w), as in geometry_msgs and :mod:`core.robot_model`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reverse_digital_twin.core.robot_model import quaternion_multiply, rotate


@dataclass(frozen=True)
class Transform:
    """A rigid transform: ``p_parent = rotation * p_child + translation``."""

    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))

    @staticmethod
    def of(translation: Sequence[float], rotation: Sequence[float]) -> 'Transform':
        """From plain sequences; the quaternion is normalised (messages carry rounding)."""
        q = np.asarray(rotation, dtype=float)
        norm = np.linalg.norm(q)
        if not np.isfinite(norm) or norm < 1e-9:
            raise ValueError(f'rotation {list(rotation)} is not a quaternion')
        return Transform(np.asarray(translation, dtype=float), q / norm)

    def __mul__(self, other: 'Transform') -> 'Transform':
        """``a * b``: b's frame expressed through a (parent <- a <- b)."""
        return Transform(self.translation + rotate(self.rotation, other.translation),
                         quaternion_multiply(self.rotation, other.rotation))

    def inverse(self) -> 'Transform':
        conjugate = self.rotation * np.array([-1.0, -1.0, -1.0, 1.0])
        return Transform(-rotate(conjugate, self.translation), conjugate)

    def matrix(self) -> np.ndarray:
        """The 3x3 rotation matrix."""
        x, y, z, w = self.rotation
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) in the child frame -> the parent frame."""
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        return points @ self.matrix().T + self.translation


class TransformTree:
    """The latest parent -> child transform of every frame (static and dynamic alike).

    Fed from tf/tf_static messages (each child has one parent, as in tf2); :meth:`lookup`
    composes the chain between two frames of the same tree.
    """

    MAX_DEPTH = 64  # a longer chain is a loop in what was published

    def __init__(self) -> None:
        self._edges: dict[str, tuple[str, Transform]] = {}

    def set(self, parent: str, child: str, transform: Transform) -> None:
        parent, child = parent.lstrip('/'), child.lstrip('/')
        if parent == child:
            raise ValueError(f'frame {child!r} cannot be its own parent')
        self._edges[child] = (parent, transform)

    def frames(self) -> set[str]:
        return set(self._edges) | {parent for parent, _ in self._edges.values()}

    def _to_root(self, frame: str) -> tuple[str, Transform] | None:
        """(root frame, pose of ``frame`` in it); None for a loop."""
        pose = Transform()
        for _ in range(self.MAX_DEPTH):
            edge = self._edges.get(frame)
            if edge is None:
                return frame, pose
            frame, step = edge
            pose = step * pose
        return None

    def lookup(self, target: str, source: str) -> Transform | None:
        """The pose of ``source`` in ``target`` (maps source coordinates to target's), or None
        when the two frames are not (yet) connected."""
        target, source = target.lstrip('/'), source.lstrip('/')
        if target == source:
            return Transform()
        a, b = self._to_root(target), self._to_root(source)
        if a is None or b is None or a[0] != b[0]:
            return None
        return a[1].inverse() * b[1]

    def root_of(self, frame: str) -> str | None:
        """The root of the tree that holds ``frame``; None for a frame not (yet) published."""
        frame = frame.lstrip('/')
        if frame not in self._edges:
            return frame if frame in self.frames() else None
        found = self._to_root(frame)
        return found[0] if found else None
