"""What the web view draws, computed from the graph's messages without rclpy or viser.

Messages are read by attribute (visualization_msgs/Marker, sensor_msgs/Image and PointCloud2,
rdt_interfaces/BridgeStatus and Verdict), so the conversions are testable with plain objects
and the same code serves any ROS 2 distro's message classes.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from reverse_digital_twin.core.transforms import Transform

#: The measured robot's colour (RGB 0-255): one solid colour no other part of the page uses,
#: so a person (and the browser test) can tell the robot at a glance.
ROBOT_COLOR = (125, 55, 235)
#: The twin's ghost: the predicted robot, translucent.
GHOST_COLOR = (40, 170, 235)
GHOST_OPACITY = 0.35

# visualization_msgs/Marker constants (the message's own values)
ARROW, CUBE, SPHERE, CYLINDER, LINE_STRIP, LINE_LIST = 0, 1, 2, 3, 4, 5
CUBE_LIST, SPHERE_LIST, POINTS, TEXT_VIEW_FACING = 6, 7, 8, 9
ADD, DELETE, DELETEALL = 0, 2, 3
SUPPORTED_MARKERS = {LINE_STRIP: 'LINE_STRIP', LINE_LIST: 'LINE_LIST', SPHERE: 'SPHERE',
                     SPHERE_LIST: 'SPHERE_LIST', POINTS: 'POINTS', CUBE: 'CUBE',
                     CUBE_LIST: 'CUBE_LIST', TEXT_VIEW_FACING: 'TEXT_VIEW_FACING'}


@dataclass(frozen=True)
class Primitive:
    """One marker as the page draws it.

    ``kind``: 'lines' (``points`` (N, 2, 3) segments), 'spheres' (``points`` (N, 3) centres,
    ``size`` the radius), 'boxes' (centres, ``size`` the edge) or 'text' (``points`` (1, 3)).
    Points are in ``frame`` until :func:`in_frame` moves them; colours are (N, 3) uint8, one
    per point (per segment end for lines).
    """

    key: str
    kind: str
    frame: str
    points: np.ndarray
    colors: np.ndarray
    size: float
    opacity: float = 1.0
    text: str = ''


def _color(c: Any) -> tuple[np.ndarray, float]:
    rgb = np.clip(np.array([c.r, c.g, c.b], dtype=float), 0.0, 1.0)
    return np.round(rgb * 255).astype(np.uint8), float(np.clip(c.a, 0.0, 1.0))


def _pose(marker: Any) -> Transform:
    p, q = marker.pose.position, marker.pose.orientation
    quaternion = (q.x, q.y, q.z, q.w)
    if not any(quaternion):  # an unset orientation means identity, as in rviz
        quaternion = (0.0, 0.0, 0.0, 1.0)
    return Transform.of((p.x, p.y, p.z), quaternion)


def marker_key(marker: Any) -> str:
    """The scene name of a marker: its namespace and id, as rviz identifies it."""
    ns = re.sub(r'[^A-Za-z0-9_.-]+', '_', marker.ns) or 'default'
    return f'{ns}/{marker.id}'


def primitive(marker: Any) -> Primitive | None:
    """A Marker (action ADD) as a primitive in the marker's header frame; None for types the
    view does not draw (arrows, meshes, ...) or markers without points."""
    kind = marker.type
    if kind not in SUPPORTED_MARKERS:
        return None
    pose = _pose(marker)
    base, alpha = _color(marker.color)
    points = np.array([[p.x, p.y, p.z] for p in marker.points], dtype=float).reshape(-1, 3)
    if len(marker.colors) == len(points) and len(points):
        colors = np.array([_color(c)[0] for c in marker.colors], dtype=np.uint8)
    else:
        colors = np.tile(base, (max(len(points), 1), 1))
    frame = marker.header.frame_id.lstrip('/')
    key = marker_key(marker)
    scale = marker.scale
    if kind in (LINE_STRIP, LINE_LIST):
        if kind == LINE_STRIP:
            ends = np.stack([np.arange(len(points) - 1), np.arange(1, len(points))], axis=1)
        else:
            ends = np.arange(len(points) // 2 * 2).reshape(-1, 2)
        if not len(ends):
            return None
        world = pose.apply(points)
        return Primitive(key, 'lines', frame, world[ends], colors[ends], float(scale.x), alpha)
    if kind == TEXT_VIEW_FACING:
        return Primitive(key, 'text', frame, pose.translation.reshape(1, 3), base.reshape(1, 3),
                         float(scale.z), alpha, marker.text)
    if kind in (SPHERE, CUBE):
        centres, colors = pose.translation.reshape(1, 3), base.reshape(1, 3)
    else:  # SPHERE_LIST, CUBE_LIST, POINTS
        if not len(points):
            return None
        centres = pose.apply(points)
    size = max(float(scale.x), float(scale.y), float(scale.z))
    if kind in (CUBE, CUBE_LIST):
        return Primitive(key, 'boxes', frame, centres, colors, size, alpha)
    return Primitive(key, 'spheres', frame, centres, colors, size / 2.0, alpha)


class MarkerScene:
    """The markers on screen, kept as rviz keeps them: by (namespace, id), replaced by a new
    ADD, removed by DELETE, all cleared by DELETEALL."""

    def __init__(self) -> None:
        self.primitives: dict[str, Primitive] = {}
        self.skipped: set[str] = set()  # marker types seen but not drawn

    def apply(self, markers: Iterable[Any]) -> tuple[list[Primitive], list[str]]:
        """Apply a MarkerArray's markers in order; returns (added or changed primitives,
        removed keys), for the page to update only what changed."""
        changed: dict[str, Primitive] = {}
        removed: set[str] = set()
        for marker in markers:
            if marker.action == DELETEALL:
                removed |= set(self.primitives)
                self.primitives.clear()
                changed.clear()
                continue
            key = marker_key(marker)
            if marker.action == DELETE:
                if self.primitives.pop(key, None) is not None:
                    removed.add(key)
                changed.pop(key, None)
                continue
            drawn = primitive(marker)
            if drawn is None:
                self.skipped.add(SUPPORTED_MARKERS.get(marker.type, f'type {marker.type}'))
                if self.primitives.pop(key, None) is not None:
                    removed.add(key)
                continue
            self.primitives[key] = drawn
            changed[key] = drawn
            removed.discard(key)
        return list(changed.values()), sorted(removed)


def in_frame(item: Primitive, transform: Transform) -> Primitive:
    """The primitive moved by ``transform`` (its frame's pose in the view's fixed frame)."""
    shape = item.points.shape
    return replace(item, points=transform.apply(item.points.reshape(-1, 3)).reshape(shape))


# --- images and point clouds ---------------------------------------------------------------------

def image_rgb(msg: Any) -> np.ndarray | None:
    """A sensor_msgs/Image as an (H, W, 3) uint8 RGB array; None for encodings a browser
    image cannot show (depth images are drawn as the point cloud instead)."""
    channels = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}.get(msg.encoding)
    if channels is None or msg.height == 0 or msg.width == 0:
        return None
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size < msg.step * msg.height or msg.step < msg.width * channels:
        return None
    rows = data[:msg.step * msg.height].reshape(msg.height, msg.step)
    pixels = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith('bgr'):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


IMAGE_TYPE = 'sensor_msgs/msg/Image'


def camera_rank(prefix: str, preferred: list[str]) -> int:
    """Where a camera topic prefix stands in ``preferred`` namespaces: 0 under the first,
    ``len(preferred)`` under none."""
    return next((i for i, ns in enumerate(preferred)
                 if prefix.startswith(f'/{ns.strip("/")}/')), len(preferred))


def camera_prefixes(topics: list[tuple[str, list[str]]], preferred: list[str]) -> list[str]:
    """Camera topic prefixes in the graph (``<prefix>/image_raw`` of type Image, depth images
    aside), those under the ``preferred`` namespaces first, in that order."""
    found = sorted(name[:-len('/image_raw')] for name, types in topics
                   if IMAGE_TYPE in types and name.endswith('/image_raw')
                   and not name.endswith('/depth/image_raw'))
    return sorted(found, key=lambda prefix: camera_rank(prefix, preferred))


def camera_to_show(shown: str, found: list[str], preferred: list[str]) -> str:
    """The camera prefix a view shows, given the one it shows ('' for none) and those found
    (as :func:`camera_prefixes` orders them): the best placed in ``preferred``, replacing the
    shown one only when placed better - the twin's camera may be discovered first, the
    hardware's then takes its place; equals never take turns."""
    if not found:
        return shown
    best = '/' + found[0].strip('/')
    if not shown or camera_rank(best, preferred) < camera_rank(shown, preferred):
        return best
    return shown


_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


def decode_cloud(msg: Any, max_points: int = 60_000) -> tuple[np.ndarray, np.ndarray | None]:
    """A sensor_msgs/PointCloud2's finite points (N, 3) float32, with their colours (N, 3)
    uint8 when the cloud has an ``rgb`` field packed as in PCL (0x00RRGGBB in a float32).

    At most ``max_points`` (a fixed random subset): a browser without a GPU draws a few ten
    thousand points well.
    """
    fields = {f.name: f for f in msg.fields}
    if any(name not in fields or fields[name].datatype != _FLOAT32 for name in 'xyz'):
        raise ValueError('the cloud has no float32 x, y, z fields')
    count = msg.width * msg.height
    if count == 0:
        return np.zeros((0, 3), np.float32), None
    order = '>' if msg.is_bigendian else '<'
    names = ['x', 'y', 'z'] + (['rgb'] if 'rgb' in fields else [])
    dtype = np.dtype({'names': names,
                      'formats': [f'{order}f4' if n != 'rgb' else f'{order}u4' for n in names],
                      'offsets': [fields[n].offset for n in names],
                      'itemsize': msg.point_step})
    data = bytes(msg.data)
    if msg.height > 1 and msg.row_step != msg.width * msg.point_step:  # padded rows
        rows = np.frombuffer(data, np.uint8)[:msg.row_step * msg.height]
        data = rows.reshape(msg.height, msg.row_step)[:, :msg.width * msg.point_step].tobytes()
    records = np.frombuffer(data, dtype=dtype, count=count)
    xyz = np.stack([records['x'], records['y'], records['z']], axis=1).astype(np.float32)
    keep = np.isfinite(xyz).all(axis=1)
    if keep.sum() > max_points:
        # a fixed random subset: every k-th point of a row-major cloud would draw stripes
        chosen = np.random.default_rng(0).choice(int(keep.sum()), max_points, replace=False)
        thinned = np.zeros(int(keep.sum()), bool)
        thinned[chosen] = True
        keep[keep] = thinned
    colors = None
    if 'rgb' in fields:
        packed = records['rgb'][keep]
        colors = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF],
                          axis=1).astype(np.uint8)
    return xyz[keep], colors


# --- texts -----------------------------------------------------------------------------------

def status_markdown(status: Any | None) -> str:
    """The bridge's BridgeStatus as the page's status panel."""
    if status is None:
        return '**Bridge**: no status yet (is `rdt up` running?)'
    armed = '**ARMED**' if status.hardware_armed else 'disarmed'
    alive = 'alive' if status.hardware_alive else 'silent'
    goal = 'a goal is active' if status.goal_active else 'idle'
    lines = [f'**Target**: {status.active_target}',
             f'**Hardware**: {armed}, {alive}',
             f'**Goal**: {goal}']
    if status.last_event:
        lines.append(f'**Last event**: {status.last_event}')
    return '  \n'.join(lines)


def verdict_markdown(verdict: Any | None) -> str:
    """The twin's latest verdict (rdt_interfaces/Verdict) as the page's verdict panel."""
    if verdict is None:
        return '**Verdict**: none yet'
    head = '**Verdict**: safe' if verdict.safe else '**Verdict**: UNSAFE'
    lines = [head]
    if verdict.summary:
        lines += [f'- {line}' for line in verdict.summary.splitlines() if line.strip()]
    for contact in verdict.collisions[:5]:
        lines.append(f'- contact {_contact_text(contact)}')
    if verdict.max_tracking_error_joint:
        lines.append(f'Max tracking error {verdict.max_tracking_error:.4f} '
                     f'({verdict.max_tracking_error_joint})')
    lines.append(f'Predicted {verdict.duration:.2f} s in {verdict.computation_time:.2f} s')
    return '  \n'.join(lines)


def _contact_text(contact: Any) -> str:
    return f'{contact.link} - {contact.other} at {contact.time:.2f} s'
