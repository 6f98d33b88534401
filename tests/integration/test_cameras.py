"""The cameras of both worlds, seen over DDS: sizes, encodings, depth in metres, point clouds
on the scene's geometry, frames on TF, and the stand-in's camera showing its payload.

One graph per robot (module scope): the twin graph with the stand-in (``twin_graph(robot,
hardware='standin')``), its two worlds and their camera nodes as real processes. The planner,
the bridge and the views play no part in what a camera sees and are left out to spare the CPU.
The geometry comes from the scene file and the obstacle's URDF, never from the images.
"""
from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from tf2_msgs.msg import TFMessage

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.commander import TwinCommander
from reverse_digital_twin.core import camera as cam
from reverse_digital_twin.core.scene import CameraSpec, Scene
from reverse_digital_twin.nodes.ros_common import TF_QOS, seconds
from reverse_digital_twin.nodes.ros_common import TF_STATIC_LISTENER_QOS
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import TwinNames, twin_graph

pytestmark = pytest.mark.integration

TABLE_Z = 0.75  # the table top (urdf/table.urdf: a 0.04 m top centred at 0.73)
TABLE_HALF = (0.6, 0.4)  # its half sizes in x, y (m)
TOLERANCE = 0.01  # m: points on a surface within 1 cm
PAYLOAD = 0.5  # kg, both robots' stand-in (config/*.yaml)


@dataclass
class Frame:
    """One camera's outputs: the last of each topic, received within one grab."""

    image: Image
    depth: Image
    info: CameraInfo
    points: PointCloud2

    def depth_array(self) -> np.ndarray:
        d = self.depth
        return np.frombuffer(bytes(d.data), '<f4').reshape(d.height, d.width)

    def cloud(self) -> np.ndarray:
        offsets = {f.name: f.offset for f in self.points.fields}
        return cam.cloud_points(bytes(self.points.data), self.points.point_step,
                                [offsets[k] for k in ('x', 'y', 'z', 'rgb')])[0]


class Graph:
    """The running worlds, their cameras and their TF, seen from the test's node."""

    def __init__(self, node, robot: str, log) -> None:
        self.node = node
        self.robot = robot
        self.names = names = TwinNames()
        keep = {names.sim_node, names.sim_controller, names.standin,
                names.camera_node(names.twin_namespace),
                names.camera_node(names.hardware_namespace)}
        specs = [s for s in twin_graph(robot, hardware='standin')
                 if s.fully_qualified_name in keep]
        assert {s.fully_qualified_name for s in specs} == keep
        self.setup = load_robot(robot)
        self.scene: Scene = self.setup.scene()
        self.cameras: dict[str, CameraSpec] = {c.name: c for c in self.scene.cameras}
        self.stack = Stack(specs, echo=log).start()
        self._lock = threading.Lock()
        self.transforms: dict[str, dict[str, tuple[str, np.ndarray, np.ndarray]]] = {}
        self._subs = []
        for world in self.worlds:
            self.transforms[world] = {}
            tf, tf_static = names.world_tf(world)
            for topic, qos in ((tf, TF_QOS), (tf_static, TF_STATIC_LISTENER_QOS)):
                self._subs.append(node.create_subscription(
                    TFMessage, topic, lambda m, w=world: self._on_tf(w, m), qos))
        self._frames: dict[tuple[str, str], Frame] = {}

    @property
    def worlds(self) -> tuple[str, str]:
        return self.names.twin_namespace, self.names.hardware_namespace

    def close(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self.stack.stop()

    # --- TF -------------------------------------------------------------------------------
    def _on_tf(self, world: str, msg: TFMessage) -> None:
        with self._lock:
            for t in msg.transforms:
                r, p = t.transform.rotation, t.transform.translation
                self.transforms[world][t.child_frame_id] = (
                    t.header.frame_id, cam.rotation_from_quaternion((r.x, r.y, r.z, r.w)),
                    np.array([p.x, p.y, p.z]))

    def world_pose(self, world: str, frame: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(rotation, translation) of ``frame`` in the world frame, composed along the world's
        TF; None while the chain is incomplete."""
        rotation, translation = np.eye(3), np.zeros(3)
        with self._lock:
            known = dict(self.transforms[world])
        for _ in range(64):
            if frame == self.scene.world_frame:
                return rotation, translation
            if frame not in known:
                return None
            parent, r, t = known[frame]
            rotation, translation = r @ rotation, r @ translation + t
            frame = parent
        raise AssertionError(f'TF of {world} has a loop')

    def pose(self, world: str, frame: str) -> tuple[np.ndarray, np.ndarray]:
        assert wait_for(lambda: self.world_pose(world, frame) is not None, 30), \
            f'{frame} does not resolve to {self.scene.world_frame} on {world} TF: ' \
            f'{sorted(self.transforms[world])}; {self.dead()}'
        return self.world_pose(world, frame)  # type: ignore[return-value]

    # --- frames ---------------------------------------------------------------------------
    def dead(self) -> str:
        return '; '.join(p.describe_exit() for p in self.stack.dead())

    def grab(self, world: str, camera: str, timeout: float = 60.0,
             after: float = -1.0) -> Frame:
        """Subscribe to a camera's four topics until each has a message stamped after
        ``after``, then unsubscribe (the camera stops rendering)."""
        got: dict[str, object] = {}
        types = {'image': Image, 'depth': Image, 'camera_info': CameraInfo,
                 'points': PointCloud2}

        def keep(what: str, msg) -> None:
            if seconds(msg.header.stamp) > after:
                got[what] = msg
        subs = [self.node.create_subscription(
            msg_type, self.names.camera_topic(world, camera, what),
            lambda m, w=what: keep(w, m), qos_profile_sensor_data)
            for what, msg_type in types.items()]
        try:
            complete = wait_for(lambda: len(got) == 4 or bool(self.stack.dead()), timeout)
        finally:
            for sub in subs:
                self.node.destroy_subscription(sub)
        assert complete and len(got) == 4, \
            f'{world}/{camera}: only {sorted(got)} within {timeout:g} s; {self.dead()}'
        return Frame(got['image'], got['depth'], got['camera_info'], got['points'])

    def frame(self, world: str, camera: str) -> Frame:
        """A frame of the camera, grabbed once per module."""
        if (world, camera) not in self._frames:
            self._frames[(world, camera)] = self.grab(world, camera)
        return self._frames[(world, camera)]

    def points_in_world(self, world: str, camera: str) -> np.ndarray:
        frame = self.frame(world, camera)
        rotation, translation = self.pose(world, frame.points.header.frame_id)
        return cam.transform_points(frame.cloud(), rotation, translation)


@pytest.fixture(scope='module', params=['rdt_arm6', 'panda'])
def graph(request, ros_node, tmp_path_factory) -> Iterator[Graph]:
    log = open(tmp_path_factory.mktemp(request.param) / 'nodes.log', 'w')  # noqa: SIM115
    handle = Graph(ros_node, request.param, log)
    yield handle
    handle.close()
    log.close()


def _obstacle(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, rotation, half sizes) of the scene's obstacle box, from its URDF."""
    obstacle = next(o for o in scene.objects if o.name == 'obstacle')
    visual = ET.parse(obstacle.urdf).getroot().find('link/visual')
    origin = np.array([float(v) for v in visual.find('origin').get('xyz').split()])
    size = np.array([float(v) for v in visual.find('geometry/box').get('size').split()])
    rotation = cam.rotation_from_rpy(obstacle.orientation_rpy)
    return np.asarray(obstacle.position) + rotation @ origin, rotation, size / 2


def _table_top(points: np.ndarray, scene: Scene) -> np.ndarray:
    """Which points are candidates for the table top: within 5 cm of its height, inside its
    outline (2 cm in from the edges), 3 cm clear of the obstacle, 20 cm from the robot's base."""
    centre, rotation, half = _obstacle(scene)
    base = np.asarray(scene.robot_position)
    return (np.abs(points[:, 0]) < TABLE_HALF[0] - 0.02) \
        & (np.abs(points[:, 1]) < TABLE_HALF[1] - 0.02) \
        & (np.abs(points[:, 2] - TABLE_Z) < 0.05) \
        & (_box_distance(points, centre, rotation, half) > 0.03) \
        & (np.linalg.norm(points[:, :2] - base[:2], axis=1) > 0.2)


def _box_distance(points: np.ndarray, centre, rotation, half) -> np.ndarray:
    """Signed distance of points to a box's surface (negative inside)."""
    local = (np.asarray(points) - centre) @ rotation
    q = np.abs(local) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


# --- the tests ------------------------------------------------------------------------------
def test_images_have_the_declared_sizes_and_encodings(graph):
    for world in graph.worlds:
        for name, spec in graph.cameras.items():
            f = graph.frame(world, name)
            optical = f'{name}_optical_frame'
            for msg in (f.image, f.depth, f.info, f.points):
                assert msg.header.frame_id == optical
            assert (f.image.width, f.image.height, f.image.encoding) == \
                (spec.width, spec.height, 'rgb8')
            assert f.image.step == 3 * spec.width and len(f.image.data) == 3 * spec.width \
                * spec.height
            assert (f.depth.width, f.depth.height, f.depth.encoding) == \
                (spec.width, spec.height, '32FC1')
            assert f.depth.step == 4 * spec.width and not f.depth.is_bigendian
            assert len(f.depth.data) == 4 * spec.width * spec.height
            assert (f.info.width, f.info.height, f.info.distortion_model) == \
                (spec.width, spec.height, 'plumb_bob')
            focal = spec.height / 2 / np.tan(np.radians(spec.fov) / 2)
            assert f.info.k[0] == pytest.approx(focal) and f.info.k[4] == pytest.approx(focal)
            assert list(f.info.d) == [0.0] * 5
            assert [(p.name, p.offset, p.datatype, p.count) for p in f.points.fields] == \
                [(n, o, PointField.FLOAT32, 1) for n, o in
                 (('x', 0), ('y', 4), ('z', 8), ('rgb', 12))]
            assert f.points.height == 1 and f.points.point_step == 16
            assert len(f.points.data) == 16 * f.points.width > 0
            # the image shows the scene (not a blank render): several colours (flat shaded)
            rgb = np.frombuffer(bytes(f.image.data), np.uint8).reshape(-1, 3)
            assert len(np.unique(rgb[::7], axis=0)) >= 4


def test_depth_is_metres_along_the_optical_axis(graph):
    """Pixels whose ray meets the table's free corner, in front of the arm and the obstacle:
    their depth is the exact ray-plane distance, to 1 cm."""
    for world in graph.worlds:
        f = graph.frame(world, 'table_camera')
        depth = f.depth_array()
        rotation, translation = graph.pose(world, f.depth.header.frame_id)
        k = f.info.k
        v, u = np.mgrid[0:f.depth.height, 0:f.depth.width].astype(float)
        rays = np.stack([(u - k[2]) / k[0], (v - k[5]) / k[4], np.ones_like(u)], axis=-1)
        world_rays = rays @ rotation.T
        with np.errstate(divide='ignore', invalid='ignore'):
            expected = (TABLE_Z - translation[2]) / world_rays[..., 2]
        hit = translation + world_rays * expected[..., None]
        corner = (expected > 0) & (hit[..., 0] > 0.15) & (hit[..., 0] < 0.5) \
            & (hit[..., 1] > -0.35) & (hit[..., 1] < -0.05)
        assert corner.sum() > 500, 'the table camera does not see the table\'s free corner'
        error = np.abs(depth[corner] - expected[corner])
        assert error.max() < TOLERANCE, f'{world}: depth off by up to {error.max():.4f} m'


def test_points_lie_on_the_table_top_and_on_the_obstacles_faces(graph):
    centre, rotation, half = _obstacle(graph.scene)
    for world in graph.worlds:
        points = graph.points_in_world(world, 'table_camera')
        inside = _table_top(points, graph.scene)
        assert inside.sum() > 5000
        table_error = np.abs(points[inside, 2] - TABLE_Z)
        assert table_error.max() < TOLERANCE, f'{world}: table points off by ' \
            f'{table_error.max():.4f} m'
        # the obstacle: every point within 3 cm of the box, above the table, is on a face
        distance = _box_distance(points, centre, rotation, half)
        near = (np.abs(distance) < 0.03) & (points[:, 2] > TABLE_Z + 0.01)
        assert np.abs(distance[near]).max() < TOLERANCE, \
            f'{world}: obstacle points off by {np.abs(distance[near]).max():.4f} m'
        # ... on the faces the camera looks at: two sides and the top, densely
        local = (points[near] - centre) @ rotation
        axis = np.argmax(np.abs(local) / half, axis=1)
        face = axis * 2 + (local[np.arange(len(local)), axis] > 0)
        counts = np.bincount(face, minlength=6)
        assert (counts > 100).sum() >= 3, f'{world}: points per face (-x +x -y +y -z +z) ' \
            f'{counts.tolist()}'


def test_camera_frames_resolve_to_the_world_on_tf(graph):
    for world in graph.worlds:
        for name, spec in graph.cameras.items():
            rotation, translation = graph.pose(world, spec.optical_frame)
            link_rotation, link_translation = graph.pose(world, spec.frame)
            # the optical frame sits on the camera link, z along its x (forward)
            assert translation == pytest.approx(link_translation, abs=1e-9)
            assert rotation == pytest.approx(link_rotation @ cam.OPTICAL_IN_LINK, abs=1e-9)
            if not spec.link:  # fixed: where the scene puts it
                assert link_translation == pytest.approx(spec.position)
                assert link_rotation == pytest.approx(
                    cam.rotation_from_rpy(spec.orientation_rpy), abs=1e-9)
            else:  # mounted: on its link, at the declared offset
                parent_rotation, parent_translation = graph.pose(world, spec.link)
                assert graph.transforms[world][spec.frame][0] == spec.link
                assert link_translation == pytest.approx(
                    parent_translation + parent_rotation @ np.asarray(spec.position), abs=1e-6)


def test_a_camera_on_a_link_sees_from_where_the_link_is(graph):
    """The Panda's wrist camera looks down from its hand: what it sees below the hand's
    fingers is the table top, to 1 cm (its pose comes from the hand's TF)."""
    mounted = [c for c in graph.cameras.values() if c.link]
    if not mounted:
        pytest.skip(f'the {graph.robot} scene mounts no camera on a link')
    for spec in mounted:
        points = graph.points_in_world(graph.names.twin_namespace, spec.name)
        below = _table_top(points, graph.scene)  # beyond the table's outline: the floor
        assert below.sum() > 5000, f'{spec.name} does not see the table'
        error = np.abs(points[below, 2] - TABLE_Z)
        assert error.max() < TOLERANCE, f'{spec.name}: table points off by {error.max():.4f} m'


def _nearer_pixels(graph: Graph, after: float = -1.0):
    """Pixels where the stand-in's table camera sees something nearer than the twin's
    (1 cm), and the payload link's pixel in the stand-in's image (the twin holds still: its
    frame is grabbed once)."""
    twin, hardware = graph.worlds
    sim = graph.frame(twin, 'table_camera')
    hw = graph.grab(hardware, 'table_camera', after=after)
    with np.errstate(invalid='ignore'):  # inf - inf: nothing in either
        nearer = (sim.depth_array() - hw.depth_array()) > 0.01
    rotation, translation = graph.pose(hardware, hw.depth.header.frame_id)
    _, link_position = graph.pose(hardware, _payload_link(graph))  # its frame, on the TF
    k = cam.Intrinsics(hw.info.width, hw.info.height, hw.info.k[0], hw.info.k[4],
                       hw.info.k[2], hw.info.k[5])
    pixel = k.project((link_position - translation) @ rotation)[0]
    return nearer, pixel, seconds(hw.depth.header.stamp)


def _payload_link(graph: Graph) -> str:
    """The stand-in's payload link: its configured one, or the arm's tip (found from the
    model as the stand-in finds it)."""
    from reverse_digital_twin.core.physics import PhysicsWorld  # noqa: PLC0415
    from reverse_digital_twin.ros_params import read_node_parameters  # noqa: PLC0415
    if not hasattr(graph, 'payload_link'):
        configured = read_node_parameters(graph.setup.config, 'standin_robot').get(
            'perturbation.payload_link', '')
        if not configured:
            with PhysicsWorld(graph.setup.model(), str(graph.setup.urdf)) as world:
                configured = world.tip_link
        graph.payload_link = configured  # type: ignore[attr-defined]
    return graph.payload_link  # type: ignore[attr-defined]


def _payload_pixels(nearer: np.ndarray, pixel: np.ndarray) -> int:
    """Nearer pixels within 25 px (~14 cm at the arm's distance) of the payload link's."""
    v, u = np.nonzero(nearer)
    return int((np.hypot(u - pixel[0], v - pixel[1]) < 25).sum())


def test_the_standin_camera_shows_its_payload_and_follows_it_live(graph):
    """The stand-in's camera is the real camera: it sees the payload the twin's does not
    (a box at the payload link), and stops seeing it when the payload is taken off live.

    Where the two cameras differ away from the payload is the arms' outlines: the stand-in's
    arm is where its physics holds it (the payload's sag, sensor noise), a pixel off here
    and there."""
    nearer, pixel, stamps = _nearer_pixels(graph)
    shown = _payload_pixels(nearer, pixel)
    assert shown > 100, f'no payload where the payload link is (pixel {pixel.round(1)}): ' \
        f'{shown} nearer pixels there, {int(nearer.sum())} in all'
    assert shown > 0.8 * nearer.sum(), \
        f'{int(nearer.sum()) - shown} of {int(nearer.sum())} nearer pixels away from the payload'
    counts = [shown]

    def payload_pixels(condition) -> bool:
        nonlocal stamps
        near, px, stamps = _nearer_pixels(graph, stamps)
        counts.append(_payload_pixels(near, px))
        return condition(counts[-1])

    commander = TwinCommander(graph.node, graph.names)
    try:
        commander.set_perturbation(payload_mass=0.0)
        assert wait_for(lambda: payload_pixels(lambda n: n < 0.2 * shown), 30, poll=0.2), \
            f'the payload is still shown after it was taken off: {counts}'
    finally:
        commander.set_perturbation(payload_mass=PAYLOAD)
        commander.close()
    assert wait_for(lambda: payload_pixels(lambda n: n > 0.8 * shown), 30, poll=0.2), \
        f'the payload is not shown again: {counts}'


@pytest.mark.parametrize('camera, parameters, message', [
    ({'name': 'eye', 'link': 'tool9'}, [],
     "cameras[0] (eye).link: 'tool9' is not a link of robot 'rdt_arm6'; allowed: '' (fixed in "
     "the world) or one of ['base_link'"),
    ({'name': 'eye'}, ['perturbation.payload_link:=tool9'],
     "parameter perturbation.payload_link: 'tool9' is not a link of robot 'rdt_arm6'"),
    ({'name': 'eye'}, ['perturbation.payload_mass:=-1.0'],
     'parameter perturbation.payload_mass: expected a finite mass >= 0 (kg), got -1.0'),
])
def test_a_bad_camera_configuration_stops_the_node_with_a_clear_error(tmp_path, camera,
                                                                      parameters, message):
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    scene = tmp_path / 'scene.yaml'
    scene.write_text(f'cameras:\n  - {camera}\n')
    args = ['-p', 'robot_description_file:=urdf/rdt_arm6.urdf', '-p', f'scene_file:={scene}']
    for p in parameters:
        args += ['-p', p]
    out = subprocess.run([sys.executable, '-m', 'reverse_digital_twin.nodes.run',
                          'reverse_digital_twin.nodes.camera_node', '--ros-args', *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert 'configuration error' in out.stderr and message in out.stderr, out.stderr
    assert 'Traceback' not in out.stdout + out.stderr
