"""The scene around the robot: a YAML file placing URDF objects in the world frame."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reverse_digital_twin.core.camera import rpy_looking_at
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.paths import resolve

_TOP_KEYS = {'world_frame', 'gravity', 'robot', 'objects', 'cameras'}
_ROBOT_KEYS = {'base_position', 'base_orientation_rpy'}
_OBJECT_KEYS = {'name', 'urdf', 'position', 'orientation_rpy', 'fixed'}
_CAMERA_KEYS = {'name', 'link', 'position', 'orientation_rpy', 'look_at', 'width', 'height',
                'fov', 'near', 'far', 'rate'}
#: A camera's name starts its topics and frames: a ROS name token.
_CAMERA_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
MAX_IMAGE_SIDE = 4096  # pixels


@dataclass(frozen=True)
class SceneObject:
    """One URDF placed in the world; position in m, orientation as roll, pitch, yaw in rad."""

    name: str
    urdf: Path
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fixed: bool = True


@dataclass(frozen=True)
class CameraSpec:
    """A simulated camera: where its ``<name>_link`` (x forward, y left, z up) sits and what
    it sees.

    ``link`` '' fixes the camera in the world frame; otherwise it rides on that robot link,
    ``position``/``orientation_rpy`` then being its offset in the link's frame. ``fov`` is the
    vertical field of view (degrees), ``near``/``far`` the clipping planes (m: nothing beyond
    ``far`` is seen, a "no return"), ``rate`` images per second of the world's clock (Hz).
    """

    name: str
    link: str = ''
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    width: int = 320
    height: int = 240
    fov: float = 60.0
    near: float = 0.05
    far: float = 10.0
    rate: float = 10.0

    @property
    def frame(self) -> str:
        """The camera's body frame (REP 103: x forward)."""
        return f'{self.name}_link'

    @property
    def optical_frame(self) -> str:
        """The frame of its images and points (z forward, x right, y down)."""
        return f'{self.name}_optical_frame'


@dataclass(frozen=True)
class Scene:
    """World frame name, gravity, where the robot stands, the objects around it, cameras."""

    world_frame: str = 'world'
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)
    robot_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    robot_orientation_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)
    cameras: tuple[CameraSpec, ...] = field(default_factory=tuple)
    source: str = ''  # the file it was read from ('' = built in code), for error messages

    def check_camera_links(self, links: Iterable[str], robot: str = 'the robot') -> None:
        """Refuse cameras mounted on a link the robot does not have, and cameras whose frames
        would take a robot link's or a scene object's name on TF.

        Raises:
            ConfigError: naming the scene file, the camera and the robot's links.
        """
        links = list(links)
        taken = {*links, *(o.name for o in self.objects), self.world_frame}
        for i, camera in enumerate(self.cameras):
            clash = sorted({camera.frame, camera.optical_frame} & taken)
            if clash:
                raise ConfigError(
                    f'{self.source or "scene"}: cameras[{i}].name: {camera.name!r} gives frames '
                    f'{clash} that {robot} or the scene already has; choose another name')
            if camera.link and camera.link not in links:
                raise ConfigError(
                    f'{self.source or "scene"}: cameras[{i}] ({camera.name}).link: '
                    f'{camera.link!r} is not a link of {robot}; allowed: \'\' (fixed in the '
                    f'world) or one of {sorted(links)}')


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


def _number(data: dict, key: str, default: float, where: str, low: float, high: float,
            what: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not low < value < high:
        raise ConfigError(f'{where}.{key}: expected {what}, got {value!r}')
    return float(value)


def _pixels(data: dict, key: str, default: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGE_SIDE:
        raise ConfigError(f'{where}.{key}: expected a whole number of pixels in '
                          f'1..{MAX_IMAGE_SIDE}, got {value!r}')
    return value


def _camera(data: Any, where: str) -> CameraSpec:
    """One entry of ``cameras:``; see :class:`CameraSpec` for the keys."""
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: expected a mapping with keys {sorted(_CAMERA_KEYS)}')
    _check_keys(data, _CAMERA_KEYS, where)
    name = data.get('name')
    if not isinstance(name, str) or not _CAMERA_NAME.match(name):
        raise ConfigError(f'{where}.name: expected a name of letters, digits and _ starting '
                          f'with a letter (it starts the camera\'s topics and frames), got '
                          f'{name!r}')
    link = data.get('link', '')
    if link is None:
        link = ''
    if not isinstance(link, str):
        raise ConfigError(f"{where}.link: expected '' (fixed in the world) or a robot link "
                          f'name, got {link!r}')
    position = _vector(data.get('position', [0, 0, 0]), f'{where}.position')
    if 'look_at' in data:
        if 'orientation_rpy' in data:
            raise ConfigError(f'{where}: give orientation_rpy or look_at, not both')
        if link:
            raise ConfigError(f'{where}.look_at: only for cameras fixed in the world (link '
                              f"''); a camera on link {link!r} takes orientation_rpy")
        target = _vector(data['look_at'], f'{where}.look_at')
        try:
            rpy = rpy_looking_at(position, target)
        except ValueError as exc:
            raise ConfigError(f'{where}.look_at: {exc}') from None
    else:
        rpy = _vector(data.get('orientation_rpy', [0, 0, 0]), f'{where}.orientation_rpy')
    near = _number(data, 'near', CameraSpec.near, where, 0.0, math.inf, 'a distance > 0 (m)')
    far = _number(data, 'far', CameraSpec.far, where, near, math.inf,
                  f'a distance > near ({near:g} m)')
    return CameraSpec(
        name=name, link=link, position=position, orientation_rpy=tuple(rpy),
        width=_pixels(data, 'width', CameraSpec.width, where),
        height=_pixels(data, 'height', CameraSpec.height, where),
        fov=_number(data, 'fov', CameraSpec.fov, where, 0.0, 180.0,
                    'a vertical field of view in degrees, 0 < fov < 180'),
        near=near, far=far,
        rate=_number(data, 'rate', CameraSpec.rate, where, 0.0, math.inf,
                     'images per second > 0 (Hz)'))


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
    raw_cameras = data.get('cameras') or []
    if not isinstance(raw_cameras, list):
        raise ConfigError(f'{path}: key cameras must be a list of mappings with keys '
                          f'{sorted(_CAMERA_KEYS)}')
    cameras = tuple(_camera(c, f'{path}: cameras[{i}]') for i, c in enumerate(raw_cameras))
    camera_names = [c.name for c in cameras]
    if len(set(camera_names)) != len(camera_names):
        raise ConfigError(f'{path}: camera names must be unique, got {camera_names}')
    return Scene(
        world_frame=str(data.get('world_frame', 'world')),
        gravity=_vector(data.get('gravity', [0.0, 0.0, -9.81]), f'{path}: gravity'),
        robot_position=_vector(robot.get('base_position', [0, 0, 0]),
                               f'{path}: robot.base_position'),
        robot_orientation_rpy=_vector(robot.get('base_orientation_rpy', [0, 0, 0]),
                                      f'{path}: robot.base_orientation_rpy'),
        objects=tuple(objects),
        cameras=cameras,
        source=str(path))
