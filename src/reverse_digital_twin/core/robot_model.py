"""Robot model read from a URDF: joints, limits and the kinematic tree.

Everything robot-specific (joint names, limits, link names, dimensions) comes from here, never
from code. The model also computes the parent->child transform of every joint, which is what
robot_state_publisher would broadcast on /tf, so the sim node can publish TF without it.
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reverse_digital_twin.core.errors import ConfigError

MOVABLE_TYPES = ('revolute', 'continuous', 'prismatic')


@dataclass(frozen=True)
class JointLimits:
    """Limits from the URDF <limit> tag; SI units (rad or m, rad/s or m/s, N*m or N)."""

    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf

    def position_bounded(self) -> bool:
        return math.isfinite(self.lower) and math.isfinite(self.upper)


@dataclass(frozen=True)
class Joint:
    """One URDF joint, with the fixed origin transform from parent to joint frame."""

    name: str
    type: str
    parent: str
    child: str
    origin_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    origin_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    limits: JointLimits = field(default_factory=JointLimits)

    @property
    def movable(self) -> bool:
        return self.type in MOVABLE_TYPES


@dataclass(frozen=True)
class RobotModel:
    """The parts of a URDF the twin needs; built by :func:`load_robot_model`."""

    name: str
    urdf_xml: str
    source: str
    links: tuple[str, ...]
    joints: tuple[Joint, ...]
    root_link: str

    @property
    def movable_joints(self) -> tuple[Joint, ...]:
        return tuple(j for j in self.joints if j.movable)

    @property
    def fixed_joints(self) -> tuple[Joint, ...]:
        return tuple(j for j in self.joints if not j.movable)

    def joint(self, name: str) -> Joint:
        for j in self.joints:
            if j.name == name:
                return j
        raise KeyError(name)

    def check_joints(self, names: list[str] | tuple[str, ...], what: str) -> None:
        """Raise ConfigError unless every name is a movable joint of this robot."""
        movable = {j.name for j in self.movable_joints}
        unknown = [n for n in names if n not in movable]
        if unknown:
            raise ConfigError(
                f'{what}: {unknown} not movable joints of robot {self.name!r} ({self.source}); '
                f'its movable joints are {sorted(movable)}')
        if len(set(names)) != len(names):
            raise ConfigError(f'{what}: duplicated joint names in {list(names)}')


def _floats(text: str | None, count: int, default: tuple[float, ...], where: str) -> tuple:
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        raise ConfigError(f'{where}: expected {count} numbers, got {text!r}') from None
    if len(values) != count:
        raise ConfigError(f'{where}: expected {count} numbers, got {text!r}')
    return values


def parse_urdf(xml: str, source: str = '<string>') -> RobotModel:
    """Parse URDF text into a RobotModel; errors name the source and the offending element."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConfigError(f'{source}: not valid XML ({exc})') from None
    if root.tag != 'robot':
        raise ConfigError(f'{source}: root element is <{root.tag}>, expected <robot>')
    links = tuple(link.get('name', '') for link in root.findall('link'))
    joints = []
    for el in root.findall('joint'):
        name = el.get('name')
        jtype = el.get('type')
        where = f'{source}: joint {name!r}'
        parent, child = el.find('parent'), el.find('child')
        if not name or not jtype or parent is None or child is None:
            raise ConfigError(f'{where}: needs name, type, <parent> and <child>')
        origin = el.find('origin')
        xyz = _floats(origin.get('xyz') if origin is not None else None, 3, (0.0, 0.0, 0.0),
                      f'{where} origin xyz')
        rpy = _floats(origin.get('rpy') if origin is not None else None, 3, (0.0, 0.0, 0.0),
                      f'{where} origin rpy')
        axis_el = el.find('axis')
        axis = _floats(axis_el.get('xyz') if axis_el is not None else None, 3, (1.0, 0.0, 0.0),
                       f'{where} axis')
        limits = JointLimits()
        lim = el.find('limit')
        if lim is not None:
            def num(key: str, default: float) -> float:
                value = lim.get(key)
                try:
                    return float(value) if value is not None else default
                except ValueError:
                    raise ConfigError(f'{where}: <limit {key}={value!r}> is not a number') \
                        from None
            limits = JointLimits(
                lower=num('lower', 0.0 if jtype in ('revolute', 'prismatic') else -math.inf),
                upper=num('upper', 0.0 if jtype in ('revolute', 'prismatic') else math.inf),
                velocity=num('velocity', math.inf) or math.inf,
                effort=num('effort', math.inf) or math.inf)
        elif jtype in ('revolute', 'prismatic'):
            raise ConfigError(f'{where}: {jtype} joints need a <limit> tag')
        if jtype == 'continuous':
            limits = JointLimits(velocity=limits.velocity, effort=limits.effort)
        joints.append(Joint(name, jtype, parent.get('link', ''), child.get('link', ''),
                            xyz, rpy, axis, limits))
    children = {j.child for j in joints}
    roots = [link for link in links if link not in children]
    if len(roots) != 1:
        raise ConfigError(f'{source}: expected one root link, found {roots}')
    return RobotModel(root.get('name', ''), xml, source, links, tuple(joints), roots[0])


def load_robot_model(path: str | os.PathLike) -> RobotModel:
    """Read a .urdf (or .xacro, expanded with the xacro package) into a RobotModel."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'robot description file not found: {path}')
    if path.suffix == '.xacro':
        try:
            import xacro  # noqa: PLC0415 - optional dependency, only for .xacro files
        except ImportError:
            raise ConfigError(f'{path}: a .xacro file needs the xacro package '
                              '(pip install xacro)') from None
        xml = xacro.process_file(str(path)).toxml()
    else:
        xml = path.read_text()
    return parse_urdf(xml, str(path))


# --- kinematics (REP-103: x forward, z up; quaternions as x, y, z, w) ---------------------------

def quaternion_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Fixed-axis roll-pitch-yaw (URDF convention) to a quaternion (x, y, z, w)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return np.array([sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy,
                     cr * cp * sy - sr * sp * cy,
                     cr * cp * cy + sr * sp * sy])


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b of quaternions (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector v by the unit quaternion q (x, y, z, w)."""
    u, w = np.asarray(q[:3]), q[3]
    v = np.asarray(v)
    return 2.0 * np.dot(u, v) * u + (w * w - np.dot(u, u)) * v + 2.0 * w * np.cross(u, v)


def joint_transform(joint: Joint, position: float) -> tuple[np.ndarray, np.ndarray]:
    """Transform parent link -> child link at the given joint position.

    Returns:
        (translation (3,) in m, rotation quaternion (x, y, z, w)).
    """
    translation = np.array(joint.origin_xyz, dtype=float)
    rotation = quaternion_from_rpy(*joint.origin_rpy)
    if joint.type in ('revolute', 'continuous'):
        axis = np.array(joint.axis, dtype=float)
        axis /= np.linalg.norm(axis)
        half = position / 2.0
        motion = np.append(axis * math.sin(half), math.cos(half))
        rotation = quaternion_multiply(rotation, motion)
    elif joint.type == 'prismatic':
        axis = np.array(joint.axis, dtype=float)
        axis /= np.linalg.norm(axis)
        translation = translation + rotate(rotation, axis * position)
    return translation, rotation
