"""The scene around the robot: a YAML file placing URDF objects in the world frame."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.paths import resolve

_TOP_KEYS = {'world_frame', 'gravity', 'robot', 'objects'}
_ROBOT_KEYS = {'base_position', 'base_orientation_rpy'}
_OBJECT_KEYS = {'name', 'urdf', 'position', 'orientation_rpy', 'fixed'}


@dataclass(frozen=True)
class SceneObject:
    """One URDF placed in the world; position in m, orientation as roll, pitch, yaw in rad."""

    name: str
    urdf: Path
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fixed: bool = True


@dataclass(frozen=True)
class Scene:
    """World frame name, gravity, where the robot stands, and the objects around it."""

    world_frame: str = 'world'
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)
    robot_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    robot_orientation_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)


def _vector(value: Any, where: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ConfigError(f'{where}: expected a list of 3 numbers, got {value!r}')
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f'{where}: expected a list of 3 numbers, got {value!r}') from None
    if not all(math.isfinite(v) for v in out):
        raise ConfigError(f'{where}: values must be finite, got {value!r}')
    return out  # type: ignore[return-value]


def _check_keys(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}')


def load_scene(path: str | Path) -> Scene:
    """Read a scene YAML; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'scene file not found: {path}')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML ({exc})') from None
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level')
    _check_keys(data, _TOP_KEYS, str(path))
    robot = data.get('robot') or {}
    if not isinstance(robot, dict):
        raise ConfigError(f'{path}: key robot must be a mapping')
    _check_keys(robot, _ROBOT_KEYS, f'{path}: robot')
    objects = []
    raw_objects = data.get('objects') or []
    if not isinstance(raw_objects, list):
        raise ConfigError(f'{path}: key objects must be a list')
    for i, obj in enumerate(raw_objects):
        where = f'{path}: objects[{i}]'
        if not isinstance(obj, dict):
            raise ConfigError(f'{where}: expected a mapping')
        _check_keys(obj, _OBJECT_KEYS, where)
        for key in ('name', 'urdf'):
            if not obj.get(key):
                raise ConfigError(f'{where}: missing key {key!r}')
        objects.append(SceneObject(
            name=str(obj['name']),
            urdf=resolve(str(obj['urdf']), f'{where}.urdf'),
            position=_vector(obj.get('position', [0, 0, 0]), f'{where}.position'),
            orientation_rpy=_vector(obj.get('orientation_rpy', [0, 0, 0]),
                                    f'{where}.orientation_rpy'),
            fixed=bool(obj.get('fixed', True))))
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        raise ConfigError(f'{path}: object names must be unique, got {names}')
    return Scene(
        world_frame=str(data.get('world_frame', 'world')),
        gravity=_vector(data.get('gravity', [0.0, 0.0, -9.81]), f'{path}: gravity'),
        robot_position=_vector(robot.get('base_position', [0, 0, 0]),
                               f'{path}: robot.base_position'),
        robot_orientation_rpy=_vector(robot.get('base_orientation_rpy', [0, 0, 0]),
                                      f'{path}: robot.base_orientation_rpy'),
        objects=tuple(objects))
