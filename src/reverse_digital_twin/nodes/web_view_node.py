"""Web view node: serves the twin on a web page (`rdt view`), as a client of the graph.

Subscribes to what any client may see - the measured joint states, the twin's
robot_description and TF, the prediction's markers and ghost, the bridge's verdicts and status,
a camera's image and point cloud - and draws them with :mod:`reverse_digital_twin.view.page`.
Its buttons switch the target and arm or disarm the hardware through
:class:`~reverse_digital_twin.commander.TwinCommander`, the same calls as `rdt switch`/`rdt arm`.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rdt_interfaces.msg import BridgeStatus, Verdict
from sensor_msgs.msg import Image, JointState, PointCloud2
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from reverse_digital_twin.commander import TwinCommander
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.transforms import Transform, TransformTree
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS, SYSTEM_DEFAULT_QOS, TF_QOS
from reverse_digital_twin.nodes.ros_common import TF_STATIC_LISTENER_QOS
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, declare
from reverse_digital_twin.stack import CONTROLLER_NODE, TwinNames
from reverse_digital_twin.view.scene import (MarkerScene, Primitive, camera_prefixes, camera_rank,
                                             camera_to_show, decode_cloud)
from reverse_digital_twin.view.scene import image_rgb
from reverse_digital_twin.view.scene import in_frame, status_markdown, verdict_markdown

NODE_NAME = 'web_view'
NO_CAMERA = 'none'


class WebViewNode(Node):
    """The page's source of data: subscriptions in, page updates out, at bounded rates."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.host = str(declare(self, 'host', '127.0.0.1',
                                'Address the page is served on (0.0.0.0: every interface; the '
                                'page can arm the hardware, so only on a trusted network)',
                                read_only=True))
        self.port = int(declare(self, 'port', 8080, 'TCP port of the page', read_only=True))
        controller = str(declare(self, 'controller_name', CONTROLLER_NODE,
                                 'The bridge\'s controller name (what clients use)',
                                 read_only=True))
        self.camera = str(declare(self, 'camera', '',
                                  'Camera topic prefix, e.g. /hw/table_camera (its image_raw '
                                  'and points); empty: the first camera found, the '
                                  f'hardware\'s before the twin\'s; "{NO_CAMERA}": none',
                                  read_only=True))
        self.update_rate = float(declare(self, 'update_rate', 20.0,
                                         'Robot, ghost and marker updates sent to the page '
                                         'per second (Hz)', read_only=True))
        self.image_rate = float(declare(self, 'image_rate', 1.0,
                                        'Camera images sent to the page per second (Hz): '
                                        'each redraws the page, in software where a browser '
                                        'has no GPU',
                                        read_only=True))
        self.cloud_rate = float(declare(self, 'cloud_rate', 0.5,
                                        'Point clouds sent to the page per second (Hz)',
                                        read_only=True))
        self.cloud_points = int(declare(self, 'cloud_points', 20000,
                                        'At most this many points of a cloud go to the page '
                                        '(a fixed random subset): browsers without a GPU draw '
                                        'them in software', read_only=True))
        check_unknown_parameters(self)
        if not 0 < self.port < 65536:
            raise ConfigError(f'parameter port must be a TCP port 1..65535, got {self.port}')
        for name in ('update_rate', 'image_rate', 'cloud_rate', 'cloud_points'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'parameter {name} must be positive, got '
                                  f'{getattr(self, name)}')
        self.names = TwinNames(client_controller=controller)
        self.page = None
        self.commander: TwinCommander | None = None
        self._lock = threading.Lock()
        self._joints: bytes | None = None  # the latest serialized JointState
        self._ghost: bytes | None = None
        self._markers = MarkerScene()
        self._pending: dict[str, Primitive] = {}  # markers whose frame has no TF yet
        self._active_target = ''
        self._robot_tf = TransformTree()
        self._camera_tf = TransformTree()
        self._root_link = ''
        self._root_pose: Transform | None = None
        self._camera_prefix = ''
        self._camera_subs: list[Any] = []
        self._last_image = self._last_cloud = 0.0

    def start(self) -> None:
        """Serve the page, then subscribe (each message can go straight to the page)."""
        from reverse_digital_twin.view.page import WebPage  # noqa: PLC0415
        try:
            self.page = WebPage(self.host, self.port, self._switch, self._arm)
        except OSError as exc:
            raise ConfigError(f'cannot serve the page on {self.host}:{self.port} ({exc}); '
                              'choose another --port') from None
        self.commander = TwinCommander(self, self.names)
        n = self.names
        self.create_subscription(String, n.robot_description, self._on_description, LATCHED_QOS)
        self.create_subscription(TFMessage, n.sim_tf_static,
                                 lambda m: self._on_tf(self._robot_tf, m), TF_STATIC_LISTENER_QOS)
        # raw: 100 Hz joint states, of which the page shows the latest update_rate times a second
        self.create_subscription(JointState, n.joint_states, self._on_joints, SYSTEM_DEFAULT_QOS,
                                 raw=True)
        self.create_subscription(JointState, n.ghost_joint_states, self._on_ghost,
                                 SYSTEM_DEFAULT_QOS, raw=True)
        self.create_subscription(MarkerArray, n.prediction_markers, self._on_markers,
                                 LATCHED_QOS)
        self.create_subscription(BridgeStatus, n.status, self._on_status, LATCHED_QOS)
        self.create_subscription(Verdict, n.verdicts, self._on_verdict, SYSTEM_DEFAULT_QOS)
        self.create_timer(1.0 / self.update_rate, self._update)
        if self.camera != NO_CAMERA:
            self._camera_timer = self.create_timer(1.0, self._find_camera)
            self._find_camera()
        print(f'rdt view: serving {self.page.url} (Ctrl-C stops)', flush=True)

    def stop(self) -> None:
        if self.commander is not None:
            self.commander.close()
        if self.page is not None:
            self.page.close()

    # --- the page's operations (viser's threads; the executor spins the commander's node) ---
    def _switch(self, target: str) -> str:
        reply = self.commander.switch(target)
        text = f'{reply.message} (active target: {reply.active_target})'
        return text if reply.success else f'refused: {text}'

    def _arm(self, armed: bool) -> str:
        reply = self.commander.arm(armed)
        return reply.message if reply.success else f'refused: {reply.message}'

    # --- robot ---------------------------------------------------------------------------------
    def _on_description(self, msg: String) -> None:
        from reverse_digital_twin.core.robot_model import parse_urdf  # noqa: PLC0415
        try:
            self._root_link = parse_urdf(msg.data, self.names.robot_description).root_link
            self.page.set_description(msg.data)
        except Exception as exc:  # noqa: BLE001 - a bad description is shown, not fatal
            self.get_logger().error(f'cannot draw {self.names.robot_description}: {exc}')
            self.page.set_camera_text(f'**Robot**: cannot draw it ({exc})')
            return
        self._root_pose = None  # placed again from TF

    def _on_joints(self, data: bytes) -> None:
        with self._lock:
            self._joints = data

    def _on_ghost(self, data: bytes) -> None:
        with self._lock:
            self._ghost = data

    def _on_tf(self, tree: TransformTree, msg: TFMessage) -> None:
        for t in msg.transforms:
            r, p = t.transform.rotation, t.transform.translation
            try:
                tree.set(t.header.frame_id, t.child_frame_id,
                         Transform.of((p.x, p.y, p.z), (r.x, r.y, r.z, r.w)))
            except ValueError as exc:
                self.get_logger().warning(f'ignoring the transform to {t.child_frame_id}: {exc}',
                                          throttle_duration_sec=10.0)

    @property
    def fixed_frame(self) -> str:
        """The view's fixed frame: the root of the twin's TF tree (the scene's world)."""
        return (self._robot_tf.root_of(self._root_link) or '') if self._root_link else ''

    def _update(self) -> None:
        """Send the latest joints, ghost and placements to the page (bounded rate)."""
        if self.page is None:
            return
        with self._lock:
            joints, ghost, self._joints, self._ghost = self._joints, self._ghost, None, None
        if self._root_pose is None and self._root_link:
            pose = self._robot_tf.lookup(self.fixed_frame, self._root_link)
            if pose is not None and self.page.robot is not None:
                self._root_pose = pose
                self.page.set_root_pose(pose)
        if joints is not None:
            msg = deserialize_message(joints, JointState)
            self.page.set_joints(msg.name, msg.position)
        if ghost is not None:
            msg = deserialize_message(ghost, JointState)
            self.page.set_ghost_joints(msg.name, msg.position)
        if self._pending:
            self._draw_markers(list(self._pending.values()), [])

    # --- prediction, bridge --------------------------------------------------------------------
    def _on_markers(self, msg: MarkerArray) -> None:
        changed, removed = self._markers.apply(msg.markers)
        for key in removed:
            self._pending.pop(key, None)
        self._draw_markers(changed, removed)

    def _draw_markers(self, changed: list[Primitive], removed: list[str]) -> None:
        """Draw what has a transform to the fixed frame; keep the rest for later."""
        ready = []
        fixed = self.fixed_frame
        for item in changed:
            pose = self._robot_tf.lookup(fixed, item.frame) if fixed else None
            if pose is None:
                self._pending[item.key] = item
                continue
            self._pending.pop(item.key, None)
            ready.append(in_frame(item, pose))
        if ready or removed:
            self.page.update_markers(ready, removed)

    def _on_status(self, msg: BridgeStatus) -> None:
        self.page.set_status(status_markdown(msg))
        if msg.active_target != self._active_target:
            self._active_target = msg.active_target
            self.page.set_target(msg.active_target)

    def _on_verdict(self, msg: Verdict) -> None:
        self.page.set_verdict(verdict_markdown(msg))

    # --- camera --------------------------------------------------------------------------------
    def _find_camera(self) -> None:
        """Subscribe to the configured camera, or the first one the graph has, the hardware's
        first (checked every second: the cameras may start after the view, and the twin's may
        be discovered before the hardware's, which then replaces it)."""
        if self.camera:
            if not self._camera_prefix:
                self._show_camera('/' + self.camera.strip('/'))
            self._camera_timer.cancel()
            return
        preferred = [self.names.hardware_namespace, self.names.twin_namespace]
        found = camera_prefixes(self.get_topic_names_and_types(), preferred)
        if not found:
            if not self._camera_prefix:
                self.page.set_camera_text('No camera in the graph yet')
            return
        prefix = camera_to_show(self._camera_prefix, found, preferred)
        if prefix != self._camera_prefix:
            self._show_camera(prefix)
        if camera_rank(self._camera_prefix, preferred) == 0:
            self._camera_timer.cancel()  # the hardware's: nothing is preferred to it

    def _show_camera(self, prefix: str) -> None:
        """Show the camera at ``prefix`` (its image_raw, points and its world's TF) instead of
        the one shown so far."""
        for sub in self._camera_subs:
            self.destroy_subscription(sub)
        self._camera_tf = TransformTree()
        self._camera_prefix = prefix
        world = prefix.rsplit('/', 1)[0]  # the camera's world: its TF is published there
        self._camera_subs = [
            # raw: a camera publishes faster than the page shows (and a cloud is a megabyte);
            # only the messages shown are deserialized
            self.create_subscription(Image, f'{prefix}/image_raw', self._on_image,
                                     qos_profile_sensor_data, raw=True),
            self.create_subscription(PointCloud2, f'{prefix}/points', self._on_cloud,
                                     qos_profile_sensor_data, raw=True),
            self.create_subscription(TFMessage, f'{world}/tf_static',
                                     lambda m: self._on_tf(self._camera_tf, m),
                                     TF_STATIC_LISTENER_QOS),
            self.create_subscription(TFMessage, f'{world}/tf',
                                     lambda m: self._on_tf(self._camera_tf, m), TF_QOS)]
        self.page.set_camera_text(f'**{prefix}**: waiting for images')
        self.get_logger().info(f'showing camera {prefix}')

    def _throttled(self, last: str, rate: float) -> bool:
        """True if the last message of this kind went to the page less than 1/rate ago."""
        now = time.monotonic()
        if now - getattr(self, last) < 1.0 / rate:
            return True
        setattr(self, last, now)
        return False

    def _on_image(self, data: bytes) -> None:
        if self._throttled('_last_image', self.image_rate):
            return
        msg = deserialize_message(data, Image)
        rgb = image_rgb(msg)
        if rgb is None:
            self.page.set_camera_text(f'**{self._camera_prefix}**: cannot show '
                                      f'{msg.encoding} images')
            return
        self.page.set_image(rgb, self._camera_prefix)

    def _on_cloud(self, data: bytes) -> None:
        if self._throttled('_last_cloud', self.cloud_rate):
            return
        msg = deserialize_message(data, PointCloud2)
        fixed = self.fixed_frame
        pose = self._camera_tf.lookup(fixed, msg.header.frame_id) if fixed else None
        if pose is None:
            return  # not placed in the world yet (TF): not drawn
        try:
            points, colors = decode_cloud(msg, self.cloud_points)
        except ValueError as exc:
            self.get_logger().warning(f'{self._camera_prefix}/points: {exc}',
                                      throttle_duration_sec=10.0)
            return
        self.page.set_cloud(pose.apply(points), colors)


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin web_view --ros-args -p port:=8080"""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(WebViewNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
