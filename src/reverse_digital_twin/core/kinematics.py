"""Forward kinematics from the URDF alone: where every link is in the world, for given joints.

A viewer draws predicted motions (tool paths, a ghost robot) from joint positions without a
physics world, so this needs neither rclpy nor PyBullet: the joint transforms of
:mod:`core.robot_model` chained from the robot's base pose in the scene. Poses are
(position (3,) in m, quaternion (x, y, z, w)) in the scene's world frame (REP-103).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from reverse_digital_twin.core.robot_model import Joint, RobotModel, joint_transform
from reverse_digital_twin.core.robot_model import quaternion_from_rpy, quaternion_multiply
from reverse_digital_twin.core.robot_model import rotate
from reverse_digital_twin.core.scene import Scene

Pose = tuple[np.ndarray, np.ndarray]


def tip_link(model: RobotModel) -> str:
    """The link at the end of the arm, where a payload sits and whose path a viewer draws.

    Found from the model, not by name: from the root, follow the child link whose subtree
    holds the most movable joints; stop at a leaf or where two children tie (a gripper's
    fingers). rdt_arm6 gives its flange frame, the Panda its hand.
    """
    children: dict[str, list[Joint]] = {}
    for joint in model.joints:
        children.setdefault(joint.parent, []).append(joint)
    depth: dict[str, int] = {}

    def movable_depth(link: str) -> int:
        if link not in depth:
            depth[link] = max((int(j.movable) + movable_depth(j.child)
                               for j in children.get(link, ())), default=0)
        return depth[link]

    link = model.root_link
    while children.get(link):
        scored = [(int(j.movable) + movable_depth(j.child), j.child) for j in children[link]]
        best = max(score for score, _ in scored)
        leaders = [child for score, child in scored if score == best]
        if len(leaders) != 1:
            break
        link = leaders[0]
    return link


def default_position(joint: Joint) -> float:
    """Where a joint nobody gave a position is: 0 clamped into its limits (as the physics
    world starts it)."""
    return float(np.clip(0.0, joint.limits.lower, joint.limits.upper))


class Kinematics:
    """Link poses of one robot standing at one base pose.

    Args:
        model: the robot (its joints' origins, axes and types).
        base_position: where the root link is in the world (m).
        base_orientation_rpy: its orientation, roll, pitch, yaw (rad).
    """

    def __init__(self, model: RobotModel, base_position: Sequence[float] = (0.0, 0.0, 0.0),
                 base_orientation_rpy: Sequence[float] = (0.0, 0.0, 0.0)) -> None:
        self.model = model
        self.base: Pose = (np.asarray(base_position, dtype=float),
                           quaternion_from_rpy(*base_orientation_rpy))
        self._parent_joint = {j.child: j for j in model.joints}
        # joints in an order where every parent comes before its children
        self._order: list[Joint] = []
        frontier = [model.root_link]
        children: dict[str, list[Joint]] = {}
        for joint in model.joints:
            children.setdefault(joint.parent, []).append(joint)
        while frontier:
            link = frontier.pop()
            for joint in children.get(link, ()):
                self._order.append(joint)
                frontier.append(joint.child)
        self._movable = {j.name: j for j in model.movable_joints}

    @classmethod
    def in_scene(cls, model: RobotModel, scene: Scene) -> 'Kinematics':
        """The robot where the scene puts it."""
        return cls(model, scene.robot_position, scene.robot_orientation_rpy)

    @property
    def tip_link(self) -> str:
        return tip_link(self.model)

    def _position(self, joint: Joint, positions: Mapping[str, float]) -> float:
        value = positions.get(joint.name)
        return default_position(joint) if value is None else float(value)

    def link_poses(self, positions: Mapping[str, float]) -> dict[str, Pose]:
        """World pose of every link (root included); joints left out are at
        :func:`default_position`."""
        poses: dict[str, Pose] = {self.model.root_link: self.base}
        for joint in self._order:
            parent_t, parent_r = poses[joint.parent]
            t, r = joint_transform(joint, self._position(joint, positions) if joint.movable
                                   else 0.0)
            poses[joint.child] = (parent_t + rotate(parent_r, t), quaternion_multiply(parent_r, r))
        return poses

    def link_pose(self, link: str, positions: Mapping[str, float]) -> Pose:
        """World pose of one link."""
        self._check_link(link)
        return self.link_poses(positions)[link]

    def link_path(self, link: str, joints: Sequence[str], positions: np.ndarray,
                  others: Mapping[str, float] | None = None) -> np.ndarray:
        """World positions (T, 3) of a link along a motion, computed for all samples at once.

        Args:
            link: the link whose origin is followed.
            joints: the columns of ``positions``.
            positions: (T, len(joints)) joint positions (rad or m).
            others: positions of joints that are not columns (held there); the rest are at
                :func:`default_position`.
        """
        self._check_link(link)
        positions = np.atleast_2d(np.asarray(positions, dtype=float))
        if positions.shape[1] != len(joints):
            raise ValueError(f'positions have {positions.shape[1]} columns for {len(joints)} '
                             'joints')
        unknown = sorted(set(joints) - set(self._movable))
        if unknown:
            raise ValueError(f'{unknown} are not movable joints of robot {self.model.name!r}')
        column = {name: i for i, name in enumerate(joints)}
        others = others or {}
        count = positions.shape[0]
        chain = []
        frame = link
        while frame in self._parent_joint:
            chain.append(self._parent_joint[frame])
            frame = self._parent_joint[frame].parent
        # (3, T) translations and (4, T) quaternions: robot_model's quaternion maths works on
        # the rows of such arrays element-wise
        t = np.repeat(self.base[0][:, None], count, axis=1)
        r = np.repeat(self.base[1][:, None], count, axis=1)
        for joint in reversed(chain):
            if joint.name in column:
                q = positions[:, column[joint.name]]
            else:
                q = np.full(count, self._position(joint, others) if joint.movable else 0.0)
            jt, jr = _joint_transforms(joint, q)
            t = t + _rotate(r, jt)
            r = quaternion_multiply(r, jr)
        return t.T

    def _check_link(self, link: str) -> None:
        if link not in self.model.links:
            raise ValueError(f'link {link!r} is not a link of robot {self.model.name!r}; its '
                             f'links are {sorted(self.model.links)}')


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """:func:`rotate` for columns: q (4, T), v (3, T)."""
    u, w = q[:3], q[3]
    return (2.0 * np.sum(u * v, axis=0) * u + (w * w - np.sum(u * u, axis=0)) * v
            + 2.0 * w * np.cross(u, v, axis=0))


def _joint_transforms(joint: Joint, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`joint_transform` for a column of positions: (3, T) translations, (4, T)
    quaternions."""
    count = len(q)
    t = np.repeat(np.array(joint.origin_xyz, dtype=float)[:, None], count, axis=1)
    r = np.repeat(quaternion_from_rpy(*joint.origin_rpy)[:, None], count, axis=1)
    if joint.type in ('revolute', 'continuous'):
        axis = np.array(joint.axis, dtype=float)
        axis /= np.linalg.norm(axis)
        motion = np.vstack([axis[:, None] * np.sin(q / 2.0), np.cos(q / 2.0)])
        r = quaternion_multiply(r, motion)
    elif joint.type == 'prismatic':
        axis = np.array(joint.axis, dtype=float)
        axis /= np.linalg.norm(axis)
        t = t + _rotate(r, axis[:, None] * q)
    return t, r
