"""Camera node: the cameras a scene file declares, rendered from a mirror of one world.

One per world (``/sim/camera`` for the twin, ``/hw/camera`` for the stand-in, ``camera`` beside
the sim node in the sim graph). It keeps its own PyBullet world with that world's robot and
scene, puts the robot where the world's ``joint_states`` say, and renders each camera (PyBullet's
CPU renderer, headless) at the camera's rate. Rendering runs in this process, on a thread of its
own at a lowered priority (``niceness``), so the physics it mirrors never waits for it.

Per camera ``<cam>`` (relative to the world's namespace, sensor-data QoS, frame
``<cam>_optical_frame``, stamped with the joint state rendered): ``<cam>/image_raw`` (rgb8),
``<cam>/depth/image_raw`` (32FC1, metres along the optical axis, +inf = nothing within ``far``),
``<cam>/camera_info`` and ``<cam>/points`` (PointCloud2: x, y, z, rgb). The frames
``<cam>_link`` (x forward) and ``<cam>_optical_frame`` (z forward, x right, y down) go on the
world's ``tf_static``, under the world frame or the link the camera is mounted on.

Lazy: a camera whose image, depth and points have no subscribers is not rendered, and while no
camera has any subscriber the node does not even take the joint states.

The stand-in's camera is "the real camera": it shows the payload the stand-in carries (a box at
the payload link's centre of mass, ``perturbation.payload_mass``, following live changes of the
stand-in's parameter) and the true arm (the stand-in's encoder offsets taken off its measured
joint states).
"""
from __future__ import annotations

import array
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterEvent, ParameterType
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from rclpy.qos import qos_profile_parameter_events, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from reverse_digital_twin.core import camera as geometry
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.paths import resolve
from reverse_digital_twin.core.physics import RENDER_PRINCIPAL_OFFSET, PhysicsWorld
from reverse_digital_twin.core.robot_model import load_robot_model, quaternion_from_rpy
from reverse_digital_twin.core.scene import CameraSpec, Scene, load_scene
from reverse_digital_twin.nodes.ros_common import transform_stamped
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS, check_unknown_parameters
from reverse_digital_twin.nodes.ros_common import declare, declare_niceness, seconds, to_time
from reverse_digital_twin.stack import CAMERA_NODE, camera_topic

#: Default niceness: rendering is the least urgent work of the graph, below the prediction
#: workers (+5, they gate every motion); the physics (0) never waits for it.
CAMERA_NICENESS = 10
#: Density of the box that shows a payload (kg/m^3, water): 0.5 kg is a 7.9 cm cube.
PAYLOAD_DENSITY = 1000.0
PAYLOAD = 'perturbation.payload_mass'
PAYLOAD_LINK = 'perturbation.payload_link'
OFFSETS = 'perturbation.joint_offsets.'
#: How often (Hz, wall clock) the node looks for subscribers to start or stop taking states.
DEMAND_CHECK_RATE = 4.0


@dataclass
class _Camera:
    """One camera: its spec, intrinsics, publishers, and when it renders next."""

    spec: CameraSpec
    intrinsics: geometry.Intrinsics
    projection: list[float]
    rotation: np.ndarray  # of <cam>_link in its parent frame
    image: object
    depth: object
    info: object
    points: object
    next_due: float = -math.inf  # stamp (the world's clock, s) of the next image
    last_stamp: float = -math.inf

    def wanted(self) -> tuple[bool, bool, bool, bool]:
        """Which of image, depth, points, camera_info have subscribers now."""
        return tuple(p.get_subscription_count() > 0  # type: ignore[return-value]
                     for p in (self.image, self.depth, self.points, self.info))

    def due(self, stamp: float) -> bool:
        """Whether a state stamped ``stamp`` is the camera's next image (a clock going back,
        a restarted world, starts it over)."""
        if stamp < self.last_stamp:
            self.next_due = -math.inf
        return stamp >= self.next_due - 1e-6


class CameraNode(Node):
    """Renders the scene's cameras from the latest joint state of its world."""

    def __init__(self, **kwargs) -> None:
        super().__init__(CAMERA_NODE, **kwargs)
        urdf = declare(self, 'robot_description_file', '',
                       "The world's robot URDF (or .xacro), as its sim node (or the stand-in) "
                       'loads it (the graph passes that node\'s)', read_only=True)
        scene_file = declare(self, 'scene_file', '',
                             "The world's scene YAML; its cameras: list declares the cameras "
                             '(the graph passes the sim node\'s or the stand-in\'s)',
                             read_only=True)
        payload_mass = declare(
            self, PAYLOAD, 0.0,
            'Payload the world\'s arm carries (kg), shown as a box at the payload link\'s centre '
            f'of mass ({PAYLOAD_DENSITY:g} kg/m^3); follows payload_parameters_node live. The '
            'stand-in\'s camera mirrors the stand-in\'s; 0 = none (the twin)')
        payload_link = declare(self, PAYLOAD_LINK, '',
                               "Link carrying the payload ('' = the arm's tip link)",
                               read_only=True)
        self.payload_node = str(declare(
            self, 'payload_parameters_node', '',
            f'Fully qualified node whose {PAYLOAD} this camera follows live (the stand-in\'s, '
            "through /parameter_events); '' = none", read_only=True))
        declare_niceness(self, CAMERA_NICENESS)
        if not urdf:
            raise ConfigError('parameter robot_description_file is empty: set it to the world\'s '
                              'URDF (the graph passes the sim node\'s)')
        urdf_path = resolve(urdf, 'robot_description_file')
        model = load_robot_model(urdf_path)
        scene = load_scene(resolve(scene_file, 'scene_file')) if scene_file else Scene()
        scene.check_camera_links(model.links, f'robot {model.name!r}')
        joints = [j.name for j in model.movable_joints]
        initial = {j: float(declare(self, f'initial_positions.{j}', 0.0,
                                    f"Position of {j} at the world's start (rad or m)", True))
                   for j in joints}
        self._offsets = {j: float(declare(
            self, f'{OFFSETS}{j}', 0.0, f'Encoder offset of {j} in the world\'s joint states '
            '(rad|m, measured = true + offset): taken off to show the true arm', True))
            for j in joints}
        check_unknown_parameters(self)
        self._wanted_payload = self._check_mass(payload_mass, PAYLOAD)
        self.world = PhysicsWorld(model, str(urdf_path), scene, initial_positions=initial)
        self.scene = scene
        self._payload_link = str(payload_link) or self.world.tip_link
        try:
            self.world.link_com_pose(self._payload_link)
        except ConfigError as exc:
            self.world.close()
            raise ConfigError(f'parameter {PAYLOAD_LINK}: {exc}') from None
        self._payload_body: int | None = None
        self._payload_mass = -1.0  # shown now (none yet)
        self._joints = set(joints)

        self.cameras = [self._make_camera(spec) for spec in scene.cameras]
        self._tf_static = self.create_publisher(TFMessage, 'tf_static', LATCHED_QOS)
        self._publish_static_tf()
        self._state: JointState | None = None
        self._serial = 0
        self._state_sub = None
        self._ready = threading.Condition()
        self._running = True
        self.create_timer(1.0 / DEMAND_CHECK_RATE, self._check_demand)
        if self.payload_node:
            self.create_subscription(ParameterEvent, '/parameter_events', self._on_parameters,
                                     qos_profile_parameter_events)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._thread = threading.Thread(target=self._run, name='render', daemon=True)
        for cam in self.cameras:
            s = cam.spec
            where = f'on {s.link}' if s.link else f'fixed in {scene.world_frame}'
            self.get_logger().info(
                f'camera {s.name}: {s.width}x{s.height}, fov {s.fov:g} deg, {s.rate:g} Hz, '
                f'{where}; topics {self.resolve_topic_name(camera_topic(s.name, "image"))} '
                '(+ depth/image_raw, camera_info, points), rendered while subscribed')
        if not self.cameras:
            self.get_logger().warning(f'the scene {scene_file or "(none)"} declares no cameras: '
                                      'nothing to publish')

    def _make_camera(self, spec: CameraSpec) -> _Camera:
        def pub(msg_type, what: str):
            return self.create_publisher(msg_type, camera_topic(spec.name, what),
                                         qos_profile_sensor_data)
        return _Camera(
            spec, geometry.Intrinsics.from_fov(spec.width, spec.height, spec.fov,
                                               RENDER_PRINCIPAL_OFFSET),
            geometry.projection_matrix(spec.fov, spec.width / spec.height, spec.near, spec.far),
            geometry.rotation_from_rpy(spec.orientation_rpy),
            pub(Image, 'image'), pub(Image, 'depth'), pub(CameraInfo, 'camera_info'),
            pub(PointCloud2, 'points'))

    def start(self) -> None:
        self._thread.start()
        if self.payload_node:
            self._sync_payload()

    def stop(self) -> None:
        self._running = False
        with self._ready:
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.world.close()

    # --- configuration ----------------------------------------------------------------------
    @staticmethod
    def _check_mass(value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ConfigError(f'parameter {key}: expected a finite mass >= 0 (kg), got {value!r}')
        return float(value)

    def _on_set_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult  # noqa: PLC0415
        for p in params:
            if p.name == PAYLOAD:
                try:
                    self._wanted_payload = self._check_mass(p.value, PAYLOAD)
                except ConfigError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _on_parameters(self, event: ParameterEvent) -> None:
        """The stand-in's payload changed live (ros2 param set): show the new one."""
        if event.node != self.payload_node:
            return
        for p in (*event.new_parameters, *event.changed_parameters):
            if p.name == PAYLOAD and p.value.type == ParameterType.PARAMETER_DOUBLE:
                self._follow_payload(p.value.double_value)

    def _sync_payload(self) -> None:
        """Ask the followed node for its payload once: it may have changed before this node
        came up (then no event reaches it)."""
        client = self.create_client(GetParameters, f'{self.payload_node}/get_parameters')

        def ask() -> None:
            if not client.service_is_ready():
                return  # not up yet: asked again at the next tick
            timer.cancel()
            future = client.call_async(GetParameters.Request(names=[PAYLOAD]))
            future.add_done_callback(answered)

        def answered(future) -> None:
            values = future.result().values if future.result() is not None else []
            if values and values[0].type == ParameterType.PARAMETER_DOUBLE:
                self._follow_payload(values[0].double_value)
            self.destroy_timer(timer)

        timer = self.create_timer(0.5, ask)

    def _follow_payload(self, mass: float) -> None:
        try:
            mass = self._check_mass(mass, PAYLOAD)
        except ConfigError:
            return
        if mass != self._wanted_payload:
            self._wanted_payload = mass
            self.get_logger().info(f'payload {mass:g} kg ({self.payload_node})')

    # --- joint states, on demand ------------------------------------------------------------
    def _check_demand(self) -> None:
        """Take the world's joint states only while some camera output has a subscriber."""
        wanted = any(any(cam.wanted()) for cam in self.cameras)
        if wanted and self._state_sub is None:
            self._state_sub = self.create_subscription(JointState, 'joint_states',
                                                       self._on_state, qos_profile_sensor_data)
        elif not wanted and self._state_sub is not None:
            self.destroy_subscription(self._state_sub)
            self._state_sub = None

    def _on_state(self, msg: JointState) -> None:
        with self._ready:
            self._state = msg
            self._serial += 1
            self._ready.notify_all()

    # --- rendering --------------------------------------------------------------------------
    def _run(self) -> None:
        seen = 0
        try:
            while self._running:
                with self._ready:
                    self._ready.wait_for(lambda: self._serial != seen or not self._running,
                                         timeout=0.5)
                    if not self._running:
                        return
                    if self._serial == seen:
                        continue
                    state, seen = self._state, self._serial
                self._render_due(state)
        except Exception as exc:  # noqa: BLE001 - say why the images stopped
            if not self._running or not rclpy.ok(context=self.context):
                return  # shutting down (Ctrl-C): the publishers are gone
            self.get_logger().fatal(f'rendering stopped: {type(exc).__name__}: {exc}')
            raise

    def _render_due(self, state: JointState) -> None:
        stamp = seconds(state.header.stamp)
        posed = False
        for cam in self.cameras:
            if not cam.due(stamp):
                continue
            cam.next_due = stamp + 1.0 / cam.spec.rate
            cam.last_stamp = stamp
            image, depth, points, info = cam.wanted()
            header = Header(stamp=state.header.stamp, frame_id=cam.spec.optical_frame)
            if image or depth or points:
                if not posed:
                    self._pose(state)
                    posed = True
                self._render(cam, header, image, depth, points)
            if info or image or depth or points:
                cam.info.publish(self._camera_info(cam, header))

    def _pose(self, state: JointState) -> None:
        """The mirror world in the state's pose (true joint positions), payload in place."""
        positions = {n: float(q) - self._offsets.get(n, 0.0)
                     for n, q in zip(state.name, state.position) if n in self._joints}
        self.world.reset_joints(positions)
        mass = self._wanted_payload
        if mass != self._payload_mass:
            if self._payload_body is not None:
                self.world.remove_body(self._payload_body)
                self._payload_body = None
            if mass > 0:
                half = 0.5 * (mass / PAYLOAD_DENSITY) ** (1.0 / 3.0)
                self._payload_body = self.world.add_visual_box((half, half, half))
            self._payload_mass = mass
        if self._payload_body is not None:
            self.world.place_body(self._payload_body, *self.world.link_com_pose(
                self._payload_link))

    def camera_pose(self, cam: _Camera) -> tuple[np.ndarray, np.ndarray]:
        """World pose (position, 3x3 rotation) of ``<cam>_link`` in the mirror world now."""
        spec = cam.spec
        if not spec.link:
            return np.asarray(spec.position, dtype=float), cam.rotation
        position, quaternion = self.world.link_frame_pose(spec.link)
        return geometry.mounted_pose(position, geometry.rotation_from_quaternion(quaternion),
                                     spec.position, cam.rotation)

    def _render(self, cam: _Camera, header: Header, image: bool, depth: bool,
                points: bool) -> None:
        spec = cam.spec
        position, rotation = self.camera_pose(cam)
        rgb, buffer = self.world.render(geometry.view_matrix(position, rotation),
                                        cam.projection, spec.width, spec.height)
        if image:
            cam.image.publish(image_msg(header, rgb))
        if depth or points:
            metres = geometry.depth_from_buffer(buffer, spec.near, spec.far)
            if depth:
                cam.depth.publish(image_msg(header, metres))
            if points:
                xyz, colours = geometry.points_from_depth(metres, cam.intrinsics, rgb)
                cam.points.publish(cloud_msg(header, xyz, colours))

    @staticmethod
    def _camera_info(cam: _Camera, header: Header) -> CameraInfo:
        k = cam.intrinsics
        return CameraInfo(header=header, height=k.height, width=k.width,
                          distortion_model=k.DISTORTION_MODEL, d=list(k.D), k=k.k, r=list(k.R),
                          p=k.p)

    # --- TF -----------------------------------------------------------------------------
    def _publish_static_tf(self) -> None:
        transforms = []
        static = to_time(0.0)  # static frames: stamp 0, as the sim node's
        for cam in self.cameras:
            spec = cam.spec
            transforms.append(transform_stamped(
                spec.link or self.scene.world_frame, spec.frame, spec.position,
                quaternion_from_rpy(*spec.orientation_rpy), static))
            transforms.append(transform_stamped(spec.frame, spec.optical_frame, (0.0, 0.0, 0.0),
                                                geometry.OPTICAL_IN_LINK_QUATERNION, static))
        if transforms:
            self._tf_static.publish(TFMessage(transforms=transforms))


_ENCODINGS: Mapping[str, tuple[str, int]] = {'uint8': ('rgb8', 3), 'float32': ('32FC1', 4)}


def image_msg(header: Header, pixels: np.ndarray) -> Image:
    """An (H, W, 3) uint8 RGB image as rgb8, or an (H, W) float32 depth image as 32FC1."""
    encoding, size = _ENCODINGS[str(pixels.dtype)]
    height, width = pixels.shape[:2]
    msg = Image(header=header, height=height, width=width, encoding=encoding,
                is_bigendian=0, step=width * size)
    msg.data = array.array('B', np.ascontiguousarray(pixels).astype(
        pixels.dtype.newbyteorder('<'), copy=False).tobytes())
    return msg


_FIELDS = [PointField(name=name, offset=offset, datatype=PointField.FLOAT32, count=1)
           for name, offset in geometry.POINT_FIELDS]


def cloud_msg(header: Header, points: np.ndarray, colours: np.ndarray | None) -> PointCloud2:
    """An unorganised cloud (height 1) of x, y, z, rgb (PCL's packed float) points."""
    n = len(points)
    msg = PointCloud2(header=header, height=1, width=n, fields=_FIELDS, is_bigendian=False,
                      point_step=geometry.POINT_STEP, row_step=geometry.POINT_STEP * n,
                      is_dense=True)
    msg.data = array.array('B', geometry.cloud_data(points, colours))
    return msg


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin camera --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
