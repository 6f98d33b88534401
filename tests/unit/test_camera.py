"""Camera geometry (core.camera), the scene's cameras (core.scene) and rendering (core.physics).

Geometry is checked against geometry: a plane seen by a tilted camera comes back as points on
that plane, the renderer's depth is the distance to the surface it drew.
"""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import yaml

from reverse_digital_twin.core import camera as cam
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.robot_model import quaternion_from_rpy
from reverse_digital_twin.core.scene import CameraSpec, load_scene


def _ray_plane_depth(intrinsics: cam.Intrinsics, position, link_rotation, plane_z: float):
    """Depth image (z along the optical axis) of the horizontal plane z = plane_z, +inf where
    a ray misses it: the exact answer a renderer should give."""
    v, u = np.mgrid[0:intrinsics.height, 0:intrinsics.width].astype(float)
    rays = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy,
                     np.ones_like(u)], axis=-1)  # optical frame, z = 1
    world = rays @ (link_rotation @ cam.OPTICAL_IN_LINK).T
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (plane_z - position[2]) / world[..., 2]
    return np.where(t > 0, t, np.inf).astype(np.float32)


# --- intrinsics and frames ------------------------------------------------------------------
def test_intrinsics_from_the_vertical_field_of_view():
    k = cam.Intrinsics.from_fov(640, 480, 90.0)
    assert k.fx == pytest.approx(240.0) and k.fy == pytest.approx(240.0)
    assert (k.cx, k.cy) == (319.5, 239.5)  # the image centre, pixel centres at integers
    assert k.k == pytest.approx([240, 0, 319.5, 0, 240, 239.5, 0, 0, 1])
    assert k.p == pytest.approx([240, 0, 319.5, 0, 0, 240, 239.5, 0, 0, 0, 1, 0])
    shifted = cam.Intrinsics.from_fov(640, 480, 90.0, principal_offset=(0.5, -0.5))
    assert (shifted.cx, shifted.cy) == (320.0, 239.0)
    # a point on the optical axis projects onto the principal point; 45 deg up on the top edge
    assert k.project([[0, 0, 2.0], [0, -1.0, 1.0]]) == pytest.approx(np.array([[319.5, 239.5],
                                                                               [319.5, -0.5]]))


def test_optical_frame_is_z_forward_x_right_y_down():
    r = cam.rotation_from_quaternion(cam.OPTICAL_IN_LINK_QUATERNION)
    assert r == pytest.approx(cam.OPTICAL_IN_LINK)
    forward, left, up = np.eye(3)  # the camera link's axes
    assert r[:, 2] == pytest.approx(forward)  # optical z
    assert r[:, 0] == pytest.approx(-left)  # optical x: right
    assert r[:, 1] == pytest.approx(-up)  # optical y: down


@pytest.mark.parametrize('rpy', [(0.0, 0.0, 0.0), (0.3, -0.7, 2.1), (-1.2, 0.4, -3.0)])
def test_rotation_from_rpy_is_the_urdf_convention(rpy):
    assert cam.rotation_from_rpy(rpy) == pytest.approx(
        cam.rotation_from_quaternion(quaternion_from_rpy(*rpy)))


def test_look_at_points_the_x_axis_at_the_target_with_the_image_upright():
    position, target = np.array([0.9, -0.9, 1.6]), np.array([-0.1, 0.15, 0.85])
    r = cam.rotation_from_rpy(cam.rpy_looking_at(position, target))
    direction = (target - position) / np.linalg.norm(target - position)
    assert r[:, 0] == pytest.approx(direction)
    assert r[2, 1] == pytest.approx(0.0)  # y (left) horizontal: no roll
    assert r[2, 2] > 0  # z up-ish
    with pytest.raises(ValueError, match='straight'):
        cam.rpy_looking_at((0, 0, 2), (0, 0, 0))


def test_view_matrix_puts_the_world_in_openGL_eye_coordinates():
    position = np.array([1.0, 2.0, 3.0])
    rotation = cam.rotation_from_rpy((0.2, 0.5, -1.0))
    view = np.asarray(cam.view_matrix(position, rotation)).reshape(4, 4, order='F')
    ahead = position + 2.0 * rotation[:, 0]  # 2 m along x (forward)
    left = position + rotation[:, 1]
    up = position + rotation[:, 2]
    for point, expected in ((ahead, (0, 0, -2)), (left, (-1, 0, 0)), (up, (0, 1, 0))):
        assert (view @ np.append(point, 1.0))[:3] == pytest.approx(expected)


def test_mounted_pose_composes_the_offset_in_the_link_frame():
    parent_rotation = cam.rotation_from_rpy((0, 0, math.pi / 2))  # link x along world y
    position, rotation = cam.mounted_pose((1, 0, 0), parent_rotation, (0.1, 0, 0),
                                          cam.rotation_from_rpy((0, -math.pi / 2, 0)))
    assert position == pytest.approx([1, 0.1, 0])
    assert rotation[:, 0] == pytest.approx([0, 0, 1])  # looks along the link's z


# --- depth and points -----------------------------------------------------------------------
def test_depth_buffer_to_metres_inverts_the_projection():
    near, far = 0.1, 8.0
    proj = np.asarray(cam.projection_matrix(45.0, 4 / 3, near, far)).reshape(4, 4, order='F')
    depths = np.array([0.1, 0.5, 1.234, 3.0, 7.99])
    clip = proj @ np.stack([np.zeros(5), np.zeros(5), -depths, np.ones(5)])
    buffer = (clip[2] / clip[3] + 1.0) / 2.0  # what OpenGL writes
    assert cam.depth_from_buffer(buffer, near, far) == pytest.approx(depths, rel=1e-5)
    assert np.isposinf(cam.depth_from_buffer(np.array([1.0]), near, far)).all()  # no return


def test_a_plane_seen_by_a_tilted_camera_comes_back_on_that_plane():
    k = cam.Intrinsics.from_fov(64, 48, 60.0)
    position = np.array([0.5, -0.7, 1.6])
    rotation = cam.rotation_from_rpy(cam.rpy_looking_at(position, (0.0, 0.2, 0.75)))
    depth = _ray_plane_depth(k, position, rotation, 0.75)
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = np.arange(64)[None, :]  # red = column
    points, colours = cam.points_from_depth(depth, k, rgb)
    assert len(points) == np.isfinite(depth).sum() > 1000
    world = cam.transform_points(points, rotation @ cam.OPTICAL_IN_LINK, position)
    assert np.abs(world[:, 2] - 0.75).max() < 1e-5
    # the colour travels with its pixel: points further right (optical x) are redder
    assert np.corrcoef(points[:, 0] / points[:, 2], colours[:, 0])[0, 1] > 0.99


def test_pixels_with_no_return_give_no_points():
    k = cam.Intrinsics.from_fov(4, 3, 60.0)
    depth = np.full((3, 4), np.inf, np.float32)
    depth[1, 2] = 2.0
    points, _ = cam.points_from_depth(depth, k)
    assert points.shape == (1, 3) and points[0, 2] == 2.0
    with pytest.raises(ValueError, match='4x3'):
        cam.points_from_depth(np.ones((4, 3), np.float32), k)


def test_point_cloud_layout_packs_rgb_as_pcl_does():
    points = np.array([[1.0, -2.0, 3.5], [0.0, 0.25, 9.0]], np.float32)
    colours = np.array([[255, 128, 1], [0, 0, 0]], np.uint8)
    data = cam.cloud_data(points, colours)
    assert len(data) == 2 * cam.POINT_STEP
    x, y, z, rgb = struct.unpack_from('<fffI', data, 0)
    assert (x, y, z) == (1.0, -2.0, 3.5) and rgb == 0x00FF8001
    back_points, back_colours = cam.cloud_points(data)
    assert back_points == pytest.approx(points) and (back_colours == colours).all()
    as_float = np.frombuffer(data, np.float32).reshape(2, 4)[:, 3]  # rviz reads a float32
    assert (cam.unpack_rgb(as_float) == colours).all()


# --- the scene's cameras --------------------------------------------------------------------
def _scene(tmp_path, cameras) -> str:
    path = tmp_path / 'scene.yaml'
    path.write_text(yaml.safe_dump({'world_frame': 'world', 'cameras': cameras}))
    return str(path)


def test_cameras_are_read_with_their_defaults(tmp_path):
    scene = load_scene(_scene(tmp_path, [
        {'name': 'top', 'position': [0, 0, 2], 'orientation_rpy': [0, 1.5708, 0]},
        {'name': 'eye', 'link': 'tool0', 'position': [0, 0, 0.05], 'width': 64, 'height': 48,
         'fov': 70, 'near': 0.02, 'far': 3, 'rate': 30},
        {'name': 'side', 'position': [1, 0, 1], 'look_at': [0, 0, 1]}]))
    top, eye, side = scene.cameras
    assert top == CameraSpec('top', '', (0, 0, 2), (0, 1.5708, 0))
    assert (top.width, top.height, top.fov, top.rate) == (320, 240, 60.0, 10.0)
    assert (top.frame, top.optical_frame) == ('top_link', 'top_optical_frame')
    assert eye.link == 'tool0' and (eye.width, eye.height, eye.far, eye.rate) == (64, 48, 3, 30)
    assert side.orientation_rpy == pytest.approx((0, 0, math.pi))  # looking back along -x
    scene.check_camera_links(['base_link', 'tool0'])


@pytest.mark.parametrize('cameras, message', [
    ([{'name': 'a', 'zoom': 2}], "cameras[0]: unknown key(s) ['zoom']; allowed: ['far', 'fov'"),
    ([{'name': 'a'}, {'name': 'a'}], "camera names must be unique, got ['a', 'a']"),
    ([{'name': 'my camera'}], 'cameras[0].name: expected a name of letters, digits and _'),
    ([{'position': [0, 0, 1]}], 'cameras[0].name: expected a name'),
    ([{'name': 'a', 'orientation_rpy': [0, 0, 0], 'look_at': [1, 0, 0]}],
     'give orientation_rpy or look_at, not both'),
    ([{'name': 'a', 'link': 'tool0', 'look_at': [1, 0, 0]}],
     "look_at: only for cameras fixed in the world (link ''); a camera on link 'tool0'"),
    ([{'name': 'a', 'look_at': [0, 0, 3], 'position': [0, 0, 1]}], 'straight above'),
    ([{'name': 'a', 'width': 320.5}], 'cameras[0].width: expected a whole number of pixels in '
     '1..4096, got 320.5'),
    ([{'name': 'a', 'height': 0}], 'cameras[0].height: expected a whole number'),
    ([{'name': 'a', 'fov': 180}], 'cameras[0].fov: expected a vertical field of view in '
     'degrees, 0 < fov < 180, got 180'),
    ([{'name': 'a', 'near': 0.5, 'far': 0.5}], 'cameras[0].far: expected a distance > near '
     '(0.5 m), got 0.5'),
    ([{'name': 'a', 'rate': 0}], 'cameras[0].rate: expected images per second > 0 (Hz)'),
    ([{'name': 'a', 'position': [0, 0]}], 'cameras[0].position: expected a list of 3 numbers'),
    ({'name': 'a'}, 'key cameras must be a list of mappings with keys'),
    (['a'], "cameras[0]: expected a mapping with keys ['far', 'fov', 'height'"),
])
def test_bad_cameras_are_refused_naming_file_key_and_allowed_values(tmp_path, cameras,
                                                                    message):
    path = _scene(tmp_path, cameras)
    with pytest.raises(ConfigError) as err:
        load_scene(path)
    assert path in str(err.value) and message in str(err.value)


def test_a_camera_on_a_link_the_robot_lacks_is_refused(tmp_path):
    path = _scene(tmp_path, [{'name': 'eye', 'link': 'tool9'}])
    with pytest.raises(ConfigError) as err:
        load_scene(path).check_camera_links(['base_link', 'tool0'], "robot 'arm'")
    assert str(err.value) == (
        f"{path}: cameras[0] (eye).link: 'tool9' is not a link of robot 'arm'; allowed: '' "
        "(fixed in the world) or one of ['base_link', 'tool0']")


def test_a_camera_whose_frames_clash_with_the_robots_is_refused(tmp_path):
    path = _scene(tmp_path, [{'name': 'base'}])
    with pytest.raises(ConfigError) as err:
        load_scene(path).check_camera_links(['base_link', 'tool0'], "robot 'arm'")
    assert str(err.value) == (
        f"{path}: cameras[0].name: 'base' gives frames ['base_link'] that robot 'arm' or the "
        'scene already has; choose another name')


@pytest.mark.parametrize('scene', ['config/scene_default.yaml', 'config/scene_panda.yaml'])
def test_the_default_scenes_have_a_table_camera(scene):
    from reverse_digital_twin.core.paths import resolve  # noqa: PLC0415
    cameras = {c.name: c for c in load_scene(resolve(scene, 'scene')).cameras}
    table = cameras['table_camera']
    assert table.link == '' and (table.width, table.height) == (320, 240)


# --- rendering (PyBullet's CPU renderer) ----------------------------------------------------
@pytest.fixture(scope='module')
def world():
    from reverse_digital_twin.core.physics import PhysicsWorld  # noqa: PLC0415
    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    setup = load_robot('rdt_arm6')
    with PhysicsWorld(setup.model(), str(setup.urdf), setup.scene(),
                      initial_positions=setup.initial_positions) as w:
        yield w


@pytest.mark.parametrize('width, height', [(320, 240), (101, 77)])
def test_rendered_depth_is_the_distance_to_the_surface_drawn(world, width, height):
    """A camera above the table's free end: the renderer's depth equals the exact depth of the
    table top (z 0.75) to well under a millimetre with the renderer's principal point."""
    from reverse_digital_twin.core.physics import RENDER_PRINCIPAL_OFFSET  # noqa: PLC0415
    near, far, fov = 0.1, 8.0, 40.0
    position = np.array([0.3, -0.1, 1.25])
    rotation = cam.rotation_from_rpy(cam.rpy_looking_at(position, (0.35, -0.05, 0.75)))
    rgb, buffer = world.render(cam.view_matrix(position, rotation),
                               cam.projection_matrix(fov, width / height, near, far),
                               width, height)
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    depth = cam.depth_from_buffer(buffer, near, far)
    k = cam.Intrinsics.from_fov(width, height, fov, RENDER_PRINCIPAL_OFFSET)
    expected = _ray_plane_depth(k, position, rotation, 0.75)
    points, _ = cam.points_from_depth(depth, k)
    world_points = cam.transform_points(points, rotation @ cam.OPTICAL_IN_LINK, position)
    on_top = (np.abs(world_points[:, 0]) < 0.58) & (np.abs(world_points[:, 1]) < 0.38)
    assert on_top.mean() > 0.9  # the view is mostly table top
    assert np.abs(world_points[on_top, 2] - 0.75).max() < 1e-4
    hit = np.isfinite(expected) & (np.abs(depth - expected) < 0.01)
    assert hit.mean() > 0.9
    # the image is not mirrored: the table's brown fills it
    assert (rgb[..., 0].astype(int) > rgb[..., 2]).mean() > 0.8


def test_a_visual_box_is_seen_where_it_is_put_and_changes_no_masses(world):
    near, far = 0.1, 8.0
    position = np.array([0.3, -0.2, 1.5])
    rotation = cam.rotation_from_rpy((0.0, math.pi / 2, 0.0))  # straight down, image up = +x
    view = cam.view_matrix(position, rotation)
    proj = cam.projection_matrix(50.0, 1.0, near, far)
    before = cam.depth_from_buffer(world.render(view, proj, 64, 64)[1], near, far)
    masses = [world.link_inertia(link)[0] for link in world.link_index]
    box = world.add_visual_box((0.05, 0.05, 0.05))
    try:
        world.place_body(box, (0.3, -0.2, 1.0))  # 0.5 m below the camera, on its axis
        after = cam.depth_from_buffer(world.render(view, proj, 64, 64)[1], near, far)
        assert after[32, 32] == pytest.approx(0.45, abs=2e-3)  # its top face
        assert before[32, 32] == pytest.approx(0.75, abs=2e-3)  # the table top
        assert [world.link_inertia(link)[0] for link in world.link_index] == masses
    finally:
        world.remove_body(box)
    again = cam.depth_from_buffer(world.render(view, proj, 64, 64)[1], near, far)
    assert again == pytest.approx(before)
