"""Pinhole camera geometry for the simulated cameras (numpy only: no ROS, no PyBullet).

Conventions (REP 103/105):

* ``<cam>_link`` is the camera's body frame: x forward (the viewing direction), y left, z up.
  A scene file places this frame (:class:`reverse_digital_twin.core.scene.CameraSpec`).
* ``<cam>_optical_frame`` is fixed to it, z forward, x right, y down: images, depth and point
  clouds are expressed in it, as every ROS camera driver does.
* OpenGL (what the renderer takes) looks down its eye frame's -z with y up and x right.

Pixels: (u, v) = (column, row), row 0 at the top, the centre of pixel (0, 0) at (0, 0) as in
sensor_msgs/CameraInfo; a symmetric frustum then has its principal point at
((width - 1) / 2, (height - 1) / 2). Depth images hold z along the optical axis in metres;
a pixel with nothing in front of the far plane holds +inf ("no return", REP 117) and gives no
point in the cloud.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Orientation of ``<cam>_optical_frame`` in ``<cam>_link`` (x, y, z, w): z forward, x right,
#: y down from x forward, y left, z up.
OPTICAL_IN_LINK_QUATERNION = (-0.5, 0.5, -0.5, 0.5)
#: Columns: the optical frame's axes in ``<cam>_link`` coordinates.
OPTICAL_IN_LINK = np.array([[0.0, 0.0, 1.0],
                            [-1.0, 0.0, 0.0],
                            [0.0, -1.0, 0.0]])
#: Columns: OpenGL's eye axes (x right, y up, z backwards) in ``<cam>_link`` coordinates.
EYE_IN_LINK = np.array([[0.0, 0.0, -1.0],
                        [-1.0, 0.0, 0.0],
                        [0.0, 1.0, 0.0]])
#: PointCloud2 layout of a point: (field name, byte offset), all float32; ``rgb`` holds the
#: colour packed as PCL and rviz read it: the uint32 0x00RRGGBB reinterpreted as float32.
POINT_FIELDS = (('x', 0), ('y', 4), ('z', 8), ('rgb', 12))
POINT_STEP = 16


@dataclass(frozen=True)
class Intrinsics:
    """A distortion-free pinhole camera: focal lengths and principal point in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, fov: float,
                 principal_offset: Sequence[float] = (0.0, 0.0)) -> 'Intrinsics':
        """The camera a symmetric OpenGL frustum makes: ``fov`` is the vertical field of view
        (degrees), pixels are square. ``principal_offset``: where the renderer puts the optical
        axis, in pixels from the image's centre (a renderer sampling pixel corners shifts it
        by half a pixel; see core.physics.RENDER_PRINCIPAL_OFFSET)."""
        f = (height / 2.0) / math.tan(math.radians(fov) / 2.0)
        return cls(int(width), int(height), f, f, (width - 1) / 2.0 + principal_offset[0],
                   (height - 1) / 2.0 + principal_offset[1])

    @property
    def k(self) -> list[float]:
        """CameraInfo.k, row-major 3x3."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    @property
    def p(self) -> list[float]:
        """CameraInfo.p, row-major 3x4 (a monocular camera: no baseline)."""
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]

    #: CameraInfo.r (identity: no rectification) and CameraInfo.d for plumb_bob (none).
    R = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    D = (0.0, 0.0, 0.0, 0.0, 0.0)
    DISTORTION_MODEL = 'plumb_bob'

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame -> (N, 2) pixel coordinates (u, v)."""
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        z = points[:, 2]
        return np.stack([self.fx * points[:, 0] / z + self.cx,
                         self.fy * points[:, 1] / z + self.cy], axis=1)


# --- rotations ------------------------------------------------------------------------------
def rotation_from_rpy(rpy: Sequence[float]) -> np.ndarray:
    """3x3 rotation of URDF roll, pitch, yaw (fixed axes x, y, z: R = Rz Ry Rx)."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = (math.cos(r), math.sin(r), math.cos(p), math.sin(p),
                              math.cos(y), math.sin(y))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def rotation_from_quaternion(q: Sequence[float]) -> np.ndarray:
    """3x3 rotation of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rpy_looking_at(position: Sequence[float], target: Sequence[float]) -> tuple[float, ...]:
    """Roll, pitch, yaw of a camera link at ``position`` whose x axis points at ``target``,
    with no roll (its y axis horizontal, the image upright).

    Raises:
        ValueError: target and position coincide, or the target is straight above or below
            (the image's up direction is then undefined: give orientation_rpy instead).
    """
    d = np.subtract(target, position).astype(float)
    horizontal = math.hypot(d[0], d[1])
    if horizontal < 1e-9 * max(1.0, abs(d[2])):
        raise ValueError('the target is at, straight above or straight below the camera: '
                         'give orientation_rpy instead')
    return (0.0, -math.atan2(d[2], horizontal), math.atan2(d[1], d[0]))


def mounted_pose(parent_position: Sequence[float], parent_rotation: np.ndarray,
                 position: Sequence[float],
                 rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World pose (position, 3x3 rotation) of a frame given in a parent frame whose world pose
    is (``parent_position``, ``parent_rotation``)."""
    parent_rotation = np.asarray(parent_rotation, dtype=float)
    return (np.asarray(parent_position, dtype=float) + parent_rotation @ np.asarray(position),
            parent_rotation @ np.asarray(rotation, dtype=float))


# --- renderer matrices ----------------------------------------------------------------------
def view_matrix(position: Sequence[float], link_rotation: np.ndarray) -> list[float]:
    """OpenGL view matrix (16 floats, column-major, as PyBullet takes it) of a camera whose
    ``<cam>_link`` is at ``position`` with world rotation ``link_rotation`` (3x3)."""
    eye = np.asarray(link_rotation, dtype=float) @ EYE_IN_LINK  # world <- eye
    view = np.eye(4)
    view[:3, :3] = eye.T
    view[:3, 3] = -eye.T @ np.asarray(position, dtype=float)
    return view.flatten(order='F').tolist()


def projection_matrix(fov: float, aspect: float, near: float, far: float) -> list[float]:
    """OpenGL perspective projection (16 floats, column-major): vertical ``fov`` in degrees,
    ``aspect`` = width / height, clipping planes in metres."""
    f = 1.0 / math.tan(math.radians(fov) / 2.0)
    proj = np.zeros((4, 4))
    proj[0, 0] = f / aspect
    proj[1, 1] = f
    proj[2, 2] = (far + near) / (near - far)
    proj[2, 3] = 2.0 * far * near / (near - far)
    proj[3, 2] = -1.0
    return proj.flatten(order='F').tolist()


# --- images -> metres and points ------------------------------------------------------------
def depth_from_buffer(buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """OpenGL depth buffer values (0 at the near plane, 1 at the far plane, non-linear) ->
    depth along the optical axis in metres, float32; +inf where nothing was hit (buffer 1)."""
    b = np.asarray(buffer, dtype=np.float64)
    depth = (far * near) / (far - (far - near) * b)
    depth[b >= 1.0] = np.inf
    return depth.astype(np.float32)


def points_from_depth(depth: np.ndarray, intrinsics: Intrinsics,
                      rgb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Back-project a depth image (H, W) in metres into the optical frame.

    Returns:
        (N, 3) float32 points of the pixels with a finite depth, row by row, and their (N, 3)
        uint8 colours when ``rgb`` (H, W, 3) is given.
    """
    depth = np.asarray(depth, dtype=np.float32)
    h, w = depth.shape
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ValueError(f'depth image is {w}x{h}, the camera {intrinsics.width}x'
                         f'{intrinsics.height}')
    flat = depth.ravel()
    valid = np.isfinite(flat) & (flat > 0)
    z = flat[valid]
    x_per_z, y_per_z = _rays(intrinsics)
    points = np.empty((z.size, 3), dtype=np.float32)
    points[:, 0] = x_per_z[valid] * z
    points[:, 1] = y_per_z[valid] * z
    points[:, 2] = z
    colours = None if rgb is None else np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)[valid]
    return points, colours


@functools.lru_cache(maxsize=16)
def _rays(intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """x/z and y/z of every pixel's ray, row by row (float32): computed once per camera."""
    v, u = np.mgrid[0:intrinsics.height, 0:intrinsics.width]
    return (((u - intrinsics.cx) / intrinsics.fx).astype(np.float32).ravel(),
            ((v - intrinsics.cy) / intrinsics.fy).astype(np.float32).ravel())


def pack_rgb(colours: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) uint32 0x00RRGGBB: PCL's packed ``rgb`` (bits of a float32)."""
    c = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    return (c[:, 0].astype(np.uint32) << 16) | (c[:, 1].astype(np.uint32) << 8) | c[:, 2]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) uint32 (or the float32 holding its bits) -> (N, 3) uint8."""
    p = np.asarray(packed)
    p = p.view(np.uint32) if p.dtype == np.float32 else p.astype(np.uint32)
    return np.stack([(p >> 16) & 0xFF, (p >> 8) & 0xFF, p & 0xFF], axis=1).astype(np.uint8)


def cloud_data(points: np.ndarray, colours: np.ndarray | None = None) -> bytes:
    """The PointCloud2 ``data`` of points (N, 3) and colours (N, 3) uint8 (white if None),
    little-endian, :data:`POINT_STEP` bytes a point laid out as :data:`POINT_FIELDS`."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    out = np.empty((len(points), 4), dtype='<f4')
    out[:, :3] = points
    out[:, 3] = (np.full(len(points), 0xFFFFFF, np.uint32) if colours is None
                 else pack_rgb(colours).astype('<u4')).view('<f4')
    return out.tobytes()


def cloud_points(data: bytes, point_step: int = POINT_STEP,
                 offsets: Sequence[int] = (0, 4, 8, 12)) -> tuple[np.ndarray, np.ndarray]:
    """PointCloud2 ``data`` back to (N, 3) float32 points and (N, 3) uint8 colours (for
    consumers and tests); ``offsets`` of x, y, z, rgb."""
    dtype = np.dtype({'names': ['x', 'y', 'z', 'rgb'], 'formats': ['<f4', '<f4', '<f4', '<u4'],
                      'offsets': list(offsets), 'itemsize': point_step})
    raw = np.frombuffer(data, dtype=dtype)
    points = np.stack([raw['x'], raw['y'], raw['z']], axis=1)
    return points, unpack_rgb(raw['rgb'])


def transform_points(points: np.ndarray, rotation: np.ndarray,
                     translation: Sequence[float]) -> np.ndarray:
    """Points (N, 3) expressed in a frame -> in its parent, given the frame's pose there."""
    return np.asarray(points, dtype=float) @ np.asarray(rotation, dtype=float).T \
        + np.asarray(translation, dtype=float)
