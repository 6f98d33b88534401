"""The twin's prediction as shapes to draw: tool path, contacts, verdict, ghost, divergence.

Plain data from plain data (no rclpy): a viewer node turns these into rviz markers and TF,
another viewer could draw the same shapes its own way. Positions are in the scene's world
frame (m), colours RGBA in 0..1.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from reverse_digital_twin.core.kinematics import Kinematics

RGBA = tuple[float, float, float, float]
#: A motion the twin predicts to go well.
SAFE_COLOUR: RGBA = (0.1, 0.8, 0.2, 1.0)
#: A motion that would hurt something: a collision or a joint beyond its URDF limits.
UNSAFE_COLOUR: RGBA = (0.9, 0.1, 0.1, 1.0)
#: A motion that touches nothing but that the controller would not complete (an error code:
#: tolerances violated, no end within the horizon, an invalid goal).
FAILING_COLOUR: RGBA = (1.0, 0.55, 0.0, 1.0)
#: Where the hardware was when it left the prediction, and where the twin expected it.
MEASURED_COLOUR: RGBA = (0.9, 0.1, 0.9, 1.0)
PREDICTED_COLOUR: RGBA = (0.2, 0.6, 1.0, 1.0)
#: m above the start of the path where the verdict's text stands.
TEXT_HEIGHT = 0.15
#: Tool path points closer than this (m) to the previous one are left out (a settling arm).
PATH_SPACING = 0.002
#: At most this many points in a drawn path (a 200 s goal is 20000 control cycles).
PATH_MAX_POINTS = 2000


@dataclass(frozen=True)
class PredictedContact:
    """A predicted first contact between a robot link and something else."""

    link: str
    other: str
    time: float  # s after the start
    position: tuple[float, float, float]  # world frame, m


@dataclass(frozen=True)
class PredictedViolation:
    """A joint predicted beyond one of its URDF limits."""

    joint: str
    kind: str  # position | velocity | effort
    time: float
    value: float
    limit: float


@dataclass(frozen=True)
class PredictedMotion:
    """What a verdict says, as the drawing needs it.

    ``positions`` is (T, len(joints)) at ``times`` (s after the start); empty when the goal
    was refused before any rollout.
    """

    safe: bool
    summary: str
    error_code: int
    error_string: str
    joints: tuple[str, ...]
    times: np.ndarray
    positions: np.ndarray
    collisions: tuple[PredictedContact, ...] = ()
    limit_violations: tuple[PredictedViolation, ...] = ()
    duration: float = 0.0
    max_tracking_error: float = 0.0
    max_tracking_error_joint: str = ''

    @property
    def final_positions(self) -> dict[str, float] | None:
        if not len(self.times):
            return None
        return dict(zip(self.joints, (float(v) for v in self.positions[-1])))


@dataclass(frozen=True)
class Label:
    """A text at a point."""

    position: np.ndarray
    text: str


@dataclass(frozen=True)
class PredictionDrawing:
    """One prediction drawn: the tool's path in the verdict's colour, the contacts with their
    links named, limit violations where they happen, and the verdict as a text."""

    tool_link: str
    path: np.ndarray  # (K, 3); empty when nothing was rolled out
    colour: RGBA
    verdict: Label
    contacts: tuple[Label, ...] = ()
    violations: tuple[Label, ...] = ()


@dataclass(frozen=True)
class DivergenceDrawing:
    """Where the hardware left the prediction: the tool where it was measured and where the
    twin predicted it, and what diverged."""

    measured: np.ndarray  # (3,)
    predicted: np.ndarray  # (3,)
    label: Label


def verdict_colour(motion: PredictedMotion) -> RGBA:
    """Green safe, red when something would be hit or a limit exceeded, orange when the
    controller would fail the goal without either."""
    if motion.safe:
        return SAFE_COLOUR
    if motion.collisions or motion.limit_violations:
        return UNSAFE_COLOUR
    return FAILING_COLOUR


def verdict_text(motion: PredictedMotion) -> str:
    """The verdict in a line or a few: safe with its figures, or refused with the reasons."""
    if motion.safe:
        text = f'SAFE: {motion.duration:.2f} s predicted'
        if motion.max_tracking_error_joint:
            text += (f', max tracking error {motion.max_tracking_error:.4f} '
                     f'({motion.max_tracking_error_joint})')
        return text
    reasons = motion.summary.strip() or motion.error_string.strip() or 'unsafe'
    return f'REFUSED: {reasons}'


def thin_path(points: np.ndarray, spacing: float = PATH_SPACING,
              max_points: int = PATH_MAX_POINTS) -> np.ndarray:
    """The points of a path worth drawing: one each time the path has gone ``spacing``
    further (so a settling arm adds none), the first and last always, at most ``max_points``
    (evenly picked beyond). Vectorised: a 200 s goal has 20000 samples."""
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    if len(points) <= 2:
        return points
    travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0),
                                                                axis=1))])
    if spacing > 0:
        step = np.floor(travelled / spacing)
        inner = np.flatnonzero(np.diff(step) > 0) + 1
    else:
        inner = np.arange(1, len(points))
    keep = np.unique(np.concatenate([[0], inner, [len(points) - 1]]))
    if len(keep) > max_points:
        keep = keep[np.round(np.linspace(0, len(keep) - 1, max_points)).astype(int)]
    return points[keep]


def draw_prediction(kinematics: Kinematics, motion: PredictedMotion,
                    current: Mapping[str, float], tool_link: str | None = None
                    ) -> PredictionDrawing:
    """Draw a verdict.

    Args:
        kinematics: the robot in its scene.
        motion: the verdict.
        current: the robot's latest joint positions: joints the verdict does not move stay
            there (a gripper's fingers); with nothing rolled out the text stands above the tool
            there.
        tool_link: whose path to draw (default: the arm's tip link).
    """
    tool = tool_link or kinematics.tip_link
    held = {k: v for k, v in current.items() if k not in motion.joints}
    colour = verdict_colour(motion)
    if len(motion.times):
        full = kinematics.link_path(tool, motion.joints, motion.positions, held)
        path = thin_path(full)
        anchor = full[0]
    else:
        full = path = np.zeros((0, 3))
        anchor = kinematics.link_pose(tool, current)[0]
    contacts = tuple(Label(np.asarray(c.position, dtype=float),
                           f'{c.link} hits {c.other} at {c.time:.2f} s')
                     for c in motion.collisions)
    violations = []
    for v in motion.limit_violations:
        where = full[int(np.clip(np.searchsorted(motion.times, v.time), 0, len(full) - 1))] \
            if len(full) else anchor
        violations.append(Label(where, f'{v.joint} {v.kind} {v.value:.3f} beyond limit '
                                       f'{v.limit:.3f} at {v.time:.2f} s'))
    return PredictionDrawing(tool, path, colour,
                             Label(anchor + np.array([0.0, 0.0, TEXT_HEIGHT]),
                                   verdict_text(motion)),
                             contacts, tuple(violations))


def draw_divergence(kinematics: Kinematics, joint: str, error: float, threshold: float,
                    time_into_goal: float, joint_names: Sequence[str],
                    measured: Sequence[float], predicted: Sequence[float],
                    current: Mapping[str, float], tool_link: str | None = None
                    ) -> DivergenceDrawing:
    """Draw a divergence report: the tool at the measured and at the predicted joint
    positions (other joints where ``current`` has them), and which joint left by how much."""
    tool = tool_link or kinematics.tip_link
    held = {k: v for k, v in current.items() if k not in joint_names}
    points = kinematics.link_path(tool, list(joint_names),
                                  np.array([list(measured), list(predicted)], dtype=float), held)
    unit = _unit(kinematics, joint)
    text = (f'DIVERGED: {joint} off by {error:+.4f} {unit} (threshold {threshold:.4f} {unit}) '
            f'at {time_into_goal:.2f} s')
    return DivergenceDrawing(points[0], points[1],
                             Label(points[0] + np.array([0.0, 0.0, TEXT_HEIGHT / 2]), text))


def _unit(kinematics: Kinematics, joint: str) -> str:
    try:
        return 'm' if kinematics.model.joint(joint).type == 'prismatic' else 'rad'
    except KeyError:
        return ''


@dataclass
class GhostPlayback:
    """The predicted motion played back in real time, then held at its final state.

    ``at(elapsed)`` gives every joint's position ``elapsed`` s after the verdict arrived:
    the predicted samples interpolated, the final one after the end; joints the verdict does
    not move keep the positions given at the start.
    """

    joints: tuple[str, ...]
    times: np.ndarray
    positions: np.ndarray
    held: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, motion: PredictedMotion, current: Mapping[str, float]) -> 'GhostPlayback':
        held = {k: float(v) for k, v in current.items() if k not in motion.joints}
        if not len(motion.times):  # nothing predicted: the ghost stays where the robot is
            joints = tuple(k for k in current if k in motion.joints)
            return cls(joints, np.zeros(1), np.array([[current[k] for k in joints]]), held)
        return cls(tuple(motion.joints), np.asarray(motion.times, dtype=float),
                   np.asarray(motion.positions, dtype=float), held)

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) else 0.0

    def at(self, elapsed: float) -> dict[str, float]:
        t = self.times[0] + max(elapsed, 0.0)
        out = dict(self.held)
        for i, name in enumerate(self.joints):
            out[name] = float(np.interp(t, self.times, self.positions[:, i]))
        return out
