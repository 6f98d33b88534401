"""The web view's plain parts: TF composition, markers -> primitives, images, point clouds,
camera discovery, the panels' texts and the robot_description's mesh URIs (no ROS graph, no
browser)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Point
from rdt_interfaces.msg import BridgeStatus, Collision, Verdict
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker

from reverse_digital_twin.core.paths import resolve_mesh_uris
from reverse_digital_twin.core.robot_model import quaternion_from_rpy
from reverse_digital_twin.core.transforms import Transform, TransformTree
from reverse_digital_twin.view.scene import (MarkerScene, camera_prefixes, camera_to_show,
                                             decode_cloud)
from reverse_digital_twin.view.scene import image_rgb, in_frame, primitive, status_markdown
from reverse_digital_twin.view.scene import verdict_markdown


# --- TF ------------------------------------------------------------------------------------------

def yaw(angle: float, xyz=(0.0, 0.0, 0.0)) -> Transform:
    return Transform.of(xyz, quaternion_from_rpy(0.0, 0.0, angle))


def test_transforms_compose_and_invert():
    a = yaw(math.pi / 2, (1.0, 0.0, 0.0))
    b = Transform.of((0.0, 2.0, 0.0), (0, 0, 0, 1))
    # b's origin seen through a: rotated 90 deg about z (+y -> -x), then shifted by +x
    np.testing.assert_allclose((a * b).translation, [-1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose((a * a.inverse()).translation, 0.0, atol=1e-12)
    np.testing.assert_allclose((a.inverse() * a).rotation, [0, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(a.apply([[0.0, 1.0, 0.0]]), [[0.0, 0.0, 0.0]], atol=1e-12)
    with pytest.raises(ValueError, match='not a quaternion'):
        Transform.of((0, 0, 0), (0, 0, 0, 0))


def test_tree_looks_up_a_camera_cloud_in_the_world():
    """world -> camera_link (1 m up, looking down +x) -> optical frame (z forward, x right,
    y down, REP-103): a point 2 m ahead of the camera lands 2 m ahead of it in the world."""
    tree = TransformTree()
    tree.set('world', 'camera_link', Transform.of((0.0, 0.0, 1.0), (0, 0, 0, 1)))
    tree.set('camera_link', 'camera_optical_frame',
             Transform.of((0, 0, 0), quaternion_from_rpy(-math.pi / 2, 0.0, -math.pi / 2)))
    tree.set('/world', 'robot_base', yaw(math.pi, (-0.4, 0.0, 0.75)))
    optical = tree.lookup('world', 'camera_optical_frame')
    np.testing.assert_allclose(optical.apply([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]]),
                               [[2.0, 0.0, 1.0], [0.0, -1.0, 1.0]], atol=1e-12)
    # across branches: the camera's origin in the robot's base frame (the base is turned)
    seen = tree.lookup('robot_base', 'camera_link')
    np.testing.assert_allclose(seen.translation, [-0.4, 0.0, 0.25], atol=1e-12)
    assert tree.root_of('camera_optical_frame') == 'world' and tree.root_of('world') == 'world'
    assert tree.root_of('not_published_yet') is None
    assert tree.lookup('world', 'nowhere') is None
    tree.set('elsewhere', 'lonely', Transform())
    assert tree.lookup('world', 'lonely') is None
    with pytest.raises(ValueError):
        tree.set('a', 'a', Transform())


def test_a_loop_in_the_tree_is_not_followed_forever():
    tree = TransformTree()
    tree.set('a', 'b', Transform())
    tree.set('b', 'a', Transform())
    assert tree.lookup('a', 'b') is None


# --- markers -------------------------------------------------------------------------------------

def marker(kind: int, ns: str = 'path', id_: int = 0, points=(), action: int = Marker.ADD,
           xyz=(0.0, 0.0, 0.0), scale=(0.01, 0.01, 0.01), rgba=(0.1, 0.8, 0.2, 1.0),
           colors=(), text: str = '') -> Marker:
    m = Marker(type=kind, ns=ns, id=id_, action=action, text=text)
    m.header.frame_id = 'world'
    m.pose.position.x, m.pose.position.y, m.pose.position.z = xyz
    m.scale.x, m.scale.y, m.scale.z = scale
    m.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
    m.points = [Point(x=p[0], y=p[1], z=p[2]) for p in points]
    m.colors = [ColorRGBA(r=c[0], g=c[1], b=c[2], a=1.0) for c in colors]
    return m


def test_a_line_strip_becomes_segments_placed_by_the_pose():
    item = primitive(marker(Marker.LINE_STRIP, points=[(0, 0, 0), (1, 0, 0), (1, 1, 0)],
                            xyz=(0.0, 0.0, 0.5)))
    assert item.kind == 'lines' and item.key == 'path/0' and item.frame == 'world'
    np.testing.assert_allclose(item.points, [[[0, 0, 0.5], [1, 0, 0.5]],
                                             [[1, 0, 0.5], [1, 1, 0.5]]])
    assert item.colors.shape == (2, 2, 3) and tuple(item.colors[0, 0]) == (26, 204, 51)
    assert item.size == pytest.approx(0.01)
    assert primitive(marker(Marker.LINE_STRIP, points=[(0, 0, 0)])) is None  # no segment


def test_spheres_texts_and_lists():
    sphere = primitive(marker(Marker.SPHERE, ns='contacts', id_=3, xyz=(0.1, 0.2, 0.3),
                              scale=(0.05, 0.05, 0.05), rgba=(0.9, 0.1, 0.1, 0.5)))
    assert sphere.kind == 'spheres' and sphere.key == 'contacts/3'
    np.testing.assert_allclose(sphere.points, [[0.1, 0.2, 0.3]])
    assert sphere.size == pytest.approx(0.025) and sphere.opacity == pytest.approx(0.5)
    listed = primitive(marker(Marker.SPHERE_LIST, points=[(0, 0, 0), (0, 0, 1)],
                              colors=[(1, 0, 0), (0, 0, 1)], xyz=(1.0, 0.0, 0.0)))
    np.testing.assert_allclose(listed.points, [[1, 0, 0], [1, 0, 1]])
    assert listed.colors.tolist() == [[255, 0, 0], [0, 0, 255]]
    label = primitive(marker(Marker.TEXT_VIEW_FACING, ns='verdict', text='UNSAFE: contact',
                             xyz=(0.0, 0.0, 1.2), scale=(0, 0, 0.04)))
    assert label.kind == 'text' and label.text == 'UNSAFE: contact'
    np.testing.assert_allclose(label.points, [[0.0, 0.0, 1.2]])
    assert primitive(marker(Marker.ARROW)) is None


def test_the_marker_scene_keeps_markers_as_rviz_does():
    scene = MarkerScene()
    changed, removed = scene.apply([
        marker(Marker.LINE_STRIP, points=[(0, 0, 0), (1, 0, 0)]),
        marker(Marker.SPHERE, ns='contacts', id_=0), marker(Marker.SPHERE, ns='contacts', id_=1)])
    assert sorted(p.key for p in changed) == ['contacts/0', 'contacts/1', 'path/0']
    assert removed == []
    # a new goal: DELETEALL, then its markers; only the survivors are "changed"
    changed, removed = scene.apply([marker(0, action=Marker.DELETEALL),
                                    marker(Marker.SPHERE, ns='contacts', id_=0)])
    assert [p.key for p in changed] == ['contacts/0']
    assert removed == ['contacts/1', 'path/0']
    assert set(scene.primitives) == {'contacts/0'}
    changed, removed = scene.apply([marker(0, ns='contacts', id_=0, action=Marker.DELETE),
                                    marker(Marker.ARROW, ns='x')])
    assert changed == [] and removed == ['contacts/0'] and scene.primitives == {}
    assert scene.skipped == {'type 0'}


def test_a_primitive_moves_into_the_fixed_frame():
    item = primitive(marker(Marker.LINE_LIST, points=[(1, 0, 0), (2, 0, 0)]))
    moved = in_frame(item, yaw(math.pi / 2, (0.0, 0.0, 1.0)))
    np.testing.assert_allclose(moved.points, [[[0, 1, 1], [0, 2, 1]]], atol=1e-12)
    assert moved.points.shape == item.points.shape


# --- images, clouds, cameras -------------------------------------------------------------------

def test_images_become_rgb_whatever_the_encoding_and_row_padding():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = pixels[:, :, ::-1].reshape(2, 9)  # bgr8, 3 bytes of padding per row
    bgr = Image(height=2, width=3, encoding='bgr8', step=12, data=padded.tobytes())
    np.testing.assert_array_equal(image_rgb(bgr), pixels)
    mono = Image(height=1, width=2, encoding='mono8', step=2, data=bytes([7, 9]))
    np.testing.assert_array_equal(image_rgb(mono), [[[7, 7, 7], [9, 9, 9]]])
    depth = Image(height=1, width=1, encoding='32FC1', step=4, data=bytes(4))
    assert image_rgb(depth) is None
    short = Image(height=2, width=3, encoding='rgb8', step=9, data=bytes(10))
    assert image_rgb(short) is None


def cloud(points: np.ndarray, rgb: np.ndarray) -> PointCloud2:
    """A PointCloud2 as the camera node publishes it: x, y, z float32 + rgb packed in a
    float32 (PCL), 16 bytes a point."""
    packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    records = np.zeros(len(points), dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'),
                                           ('rgb', '<u4')])
    records['x'], records['y'], records['z'] = points.T
    records['rgb'] = packed
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate(('x', 'y', 'z', 'rgb'))]
    return PointCloud2(height=1, width=len(points), fields=fields, is_bigendian=False,
                       point_step=16, row_step=16 * len(points), data=records.tobytes(),
                       is_dense=False)


def test_a_point_cloud_decodes_with_its_colours_and_without_invalid_points():
    points = np.array([[0.1, 0.2, 1.0], [np.nan, 0.0, 0.0], [-0.3, 0.4, 2.5]], np.float32)
    rgb = np.array([[255, 10, 0], [1, 2, 3], [0, 128, 200]], np.uint8)
    xyz, colours = decode_cloud(cloud(points, rgb))
    np.testing.assert_allclose(xyz, points[[0, 2]])
    assert colours.tolist() == [[255, 10, 0], [0, 128, 200]]
    many = np.random.default_rng(1).uniform(-1, 1, (1000, 3)).astype(np.float32)
    thinned, _ = decode_cloud(cloud(many, np.zeros((1000, 3), np.uint8)), max_points=300)
    assert len(thinned) == 300 and len(np.unique(thinned, axis=0)) == 300
    bad = cloud(points, rgb)
    bad.fields = bad.fields[:2]
    with pytest.raises(ValueError, match='x, y, z'):
        decode_cloud(bad)


def test_the_hardwares_camera_is_found_first():
    image = ['sensor_msgs/msg/Image']
    topics = [('/sim/table_camera/image_raw', image), ('/sim/table_camera/depth/image_raw', image),
              ('/hw/table_camera/image_raw', image), ('/hw/table_camera/depth/image_raw', image),
              ('/other/image_raw', image), ('/hw/table_camera/points', ['x/msg/PointCloud2']),
              ('/fake/image_raw', ['std_msgs/msg/String'])]
    assert camera_prefixes(topics, ['hw', 'sim']) == ['/hw/table_camera', '/sim/table_camera',
                                                      '/other']
    assert camera_prefixes([], ['hw']) == []


# --- texts ---------------------------------------------------------------------------------------

def test_the_status_panel_says_target_and_armed_state():
    assert 'no status yet' in status_markdown(None)
    text = status_markdown(BridgeStatus(active_target='shadow', hardware_armed=True,
                                        hardware_alive=True, last_event='armed'))
    assert '**Target**: shadow' in text and '**ARMED**' in text and 'armed' in text
    assert 'disarmed' in status_markdown(BridgeStatus(active_target='sim'))


def test_the_verdict_panel_lists_why():
    verdict = Verdict(safe=False, summary='collision: forearm_link - obstacle',
                      collisions=[Collision(link='forearm_link', other='obstacle', time=0.8)],
                      max_tracking_error=0.0123, max_tracking_error_joint='elbow_joint',
                      duration=2.0, computation_time=0.25)
    text = verdict_markdown(verdict)
    assert 'UNSAFE' in text and 'forearm_link - obstacle at 0.80 s' in text
    assert '0.0123 (elbow_joint)' in text and 'Predicted 2.00 s in 0.25 s' in text
    assert 'safe' in verdict_markdown(Verdict(safe=True)) and 'none yet' in verdict_markdown(None)


# --- robot_description ---------------------------------------------------------------------------

def test_mesh_names_become_absolute_file_uris(tmp_path: Path):
    (tmp_path / 'meshes').mkdir()
    mesh = tmp_path / 'meshes' / 'link.obj'
    mesh.write_text('o link\n')
    urdf = ('<robot name="r"><link name="a"><visual><geometry>'
            '<mesh filename="package://meshes/link.obj"/></geometry></visual>'
            '<collision><geometry><mesh scale="1 1 1" filename="meshes/link.obj"/></geometry>'
            '</collision></link><link name="b"><visual><geometry>'
            f'<mesh filename="file://{mesh}"/></geometry></visual><visual><geometry>'
            '<mesh filename="package://nowhere_pkg/gone.stl"/></geometry></visual></link>'
            '</robot>')
    out = resolve_mesh_uris(urdf, tmp_path)
    uri = mesh.resolve().as_uri()
    assert out.count(f'filename="{uri}"') == 3
    assert 'filename="package://nowhere_pkg/gone.stl"' in out  # left for the viewer to report
    assert resolve_mesh_uris(urdf, None).count(uri) == 1  # only the already absolute one


# --- the page (viser, no browser) ----------------------------------------------------------------

def test_the_page_builds_the_panda_from_the_published_description():
    """What the sim node publishes for the Panda (meshes as file:// URIs into pybullet_data)
    loads into the page with its meshes and joints (rdt_arm6, built of primitives, is drawn in
    the browser test)."""
    import socket  # noqa: PLC0415
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    from reverse_digital_twin.view.page import WebPage  # noqa: PLC0415
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    page = WebPage('127.0.0.1', port, lambda target: target, lambda armed: str(armed))
    try:
        for robot in ('panda',):
            setup = load_robot(robot)
            model = setup.model()
            page.set_description(resolve_mesh_uris(model.urdf_xml, Path(model.source).parent))
            # every movable joint but those that mimic another (the Panda's second finger)
            mimics = {j.get('name') for j in ET.fromstring(model.urdf_xml).iter('joint')
                      if j.find('mimic') is not None}
            assert page.robot.joints == [j.name for j in model.movable_joints
                                         if j.name not in mimics], robot
            assert page.ghost.joints == page.robot.joints
            assert len(page.robot.urdf._meshes) >= len(page.robot.joints), robot
            low, high = page.robot.bounds()
            assert np.all(high - low > 0.05), robot  # real geometry, not a point
            assert page.robot.set_joints(setup.joints, setup.home)  # moved: sent
            assert not page.robot.set_joints(setup.joints, setup.home)  # unchanged: not sent
    finally:
        page.close()


def test_the_hardwares_camera_replaces_the_twins_found_before_it():
    """Discovery order is luck: the twin's camera may be found a second before the
    hardware's; the view then moves to the hardware's, and never back and forth between
    equals."""
    preferred = ['hw', 'sim']
    assert camera_to_show('', [], preferred) == ''
    assert camera_to_show('', ['/sim/table_camera'], preferred) == '/sim/table_camera'
    assert camera_to_show('/sim/table_camera', ['/hw/table_camera', '/sim/table_camera'],
                          preferred) == '/hw/table_camera'
    assert camera_to_show('/hw/wrist', ['/hw/table_camera', '/hw/wrist'], preferred) == \
        '/hw/wrist'
    assert camera_to_show('/hw/table_camera', ['/sim/table_camera'], preferred) == \
        '/hw/table_camera'
    assert camera_to_show('/sim/table_camera', [], preferred) == '/sim/table_camera'
