"""The cameras: frames per second against bare rendering, the twin's real time with cameras on,
and how old a point cloud is when it arrives.

- ``camera_fps_320x240`` / ``camera_fps_640x480``: frames/s of the camera node's whole pipeline
  in-process (render, depth buffer -> metres, back-projection to points, the Image, depth Image
  and PointCloud2 messages built ready to publish) for the robot's scene seen by its
  ``table_camera``, against ``camera_bare_fps_*``: PyBullet's getCameraImage alone, same size,
  same view, same run (the ratio is the pipeline's share of the limit);
- ``twin_rtf_with_cameras``: the twin sim node's real-time factor (simulated s on /clock per wall
  s, 10 s windows) in the running twin graph (no hardware) with two 320x240 10 Hz cameras
  subscribed and rendering, divided by the same with no subscriber (cameras idle), measured off,
  on, off and the on window compared with the mean of the two off ones (target >= 0.98);
- ``pointcloud_latency_ms`` (median) and ``pointcloud_latency_p95_ms``: wall time from a joint
  state leaving this process to the point cloud rendered from it arriving here, with a camera
  node process fed by this process's joint states. The cloud is stamped with the state it shows,
  and the states are stamped with the wall clock when sent: receipt - stamp is the state's trip,
  the render, the conversion and the cloud's trip (render to receipt, plus a state's delivery:
  under sim time a stamp is no wall time, hence the camera node fed by wall-stamped states).

Standalone: ``python -m benchmarks.bench_cameras [robot]``.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from benchmarks import Target, isolate, log, run_alone
from reverse_digital_twin.core import camera as geometry
from reverse_digital_twin.core.physics import RENDER_PRINCIPAL_OFFSET, PhysicsWorld
from reverse_digital_twin.core.scene import CameraSpec
from reverse_digital_twin.robot_setup import load_robot

SIZES = ((320, 240), (640, 480))
#: Wall seconds per measurement of the real-time factor.
RTF_WINDOW = 10.0
#: Frames/s of each of the two cameras while the twin's real-time factor is measured.
CAMERA_RATE = 10.0
#: Point clouds timed for the latency.
LATENCY_CLOUDS = 60


def targets(r: dict) -> list[Target]:
    return [Target('twin_rtf_with_cameras', 0.98, '>=',
                   'RTF with two cameras rendering / RTF with them idle, same run')]


def rows(r: dict) -> list[tuple[str, str, str]]:
    out = []
    for w, h in SIZES:
        key = f'camera_fps_{w}x{h}'
        if key in r:
            out.append((f'{key} (render+convert+messages)', f'{r[key]:.1f}',
                        f'{r[key] / r[f"camera_bare_fps_{w}x{h}"]:.2f} x bare getCameraImage '
                        f'({r[f"camera_bare_fps_{w}x{h}"]:.1f} fps)'))
    if 'twin_rtf_cameras_on' in r:
        out.append(('twin RTF, cameras on / off', f'{r["twin_rtf_cameras_on"]:.3f} / '
                    f'{r["twin_rtf_cameras_off"]:.3f}',
                    f'{r["camera_fps_in_graph"]:.1f} clouds/s per camera while on (of '
                    f'{CAMERA_RATE:g})'))
    if 'pointcloud_latency_ms' in r:
        out.append(('pointcloud_latency_ms (median / p95)',
                    f'{r["pointcloud_latency_ms"]:.1f} / {r["pointcloud_latency_p95_ms"]:.1f}',
                    f'{r["pointcloud_render_ms"]:.1f} ms of it render+convert in-process'))
    return out


def _table_camera(robot: str) -> tuple[object, CameraSpec]:
    """The robot's scene, and its table camera (or the first camera)."""
    scene = load_robot(robot).scene()
    if scene is None or not scene.cameras:
        raise RuntimeError(f'the {robot} scene declares no camera')
    cameras = {c.name: c for c in scene.cameras}
    return scene, cameras.get('table_camera', scene.cameras[0])


def frame_rates(robot: str, seconds: float = 3.0) -> dict:
    """Frames/s of the pipeline and of bare getCameraImage, per size, in this process."""
    from std_msgs.msg import Header  # noqa: PLC0415

    from reverse_digital_twin.nodes.camera_node import cloud_msg, image_msg  # noqa: PLC0415
    setup = load_robot(robot)
    scene, spec = _table_camera(robot)
    world = PhysicsWorld(setup.model(), str(setup.urdf), scene,
                         initial_positions=setup.initial_positions)
    result: dict = {}
    try:
        view = geometry.view_matrix(spec.position,
                                    geometry.rotation_from_rpy(spec.orientation_rpy))
        header = Header(frame_id=spec.optical_frame)
        for w, h in SIZES:
            projection = geometry.projection_matrix(spec.fov, w / h, spec.near, spec.far)
            k = geometry.Intrinsics.from_fov(w, h, spec.fov, RENDER_PRINCIPAL_OFFSET)

            def pipeline() -> None:
                rgb, buffer = world.render(view, projection, w, h)
                depth = geometry.depth_from_buffer(buffer, spec.near, spec.far)
                points, colours = geometry.points_from_depth(depth, k, rgb)
                image_msg(header, rgb), image_msg(header, depth)
                cloud_msg(header, points, colours)

            def bare() -> None:
                world.render_bare(view, projection, w, h)

            rates = {}
            for name, step in (('bare', bare), ('pipeline', pipeline)) * 2:  # interleaved
                step()
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds / 2:
                    step()
                    count += 1
                rates[name] = max(rates.get(name, 0.0), count / (time.perf_counter() - start))
            result[f'camera_fps_{w}x{h}'] = rates['pipeline']
            result[f'camera_bare_fps_{w}x{h}'] = rates['bare']
            log(f'{w}x{h}: pipeline {rates["pipeline"]:.1f} fps, bare getCameraImage '
                f'{rates["bare"]:.1f} fps ({rates["pipeline"] / rates["bare"]:.2f})')
    finally:
        world.close()
    return result


def _two_camera_scene(robot: str, directory: Path) -> tuple[str, list[str]]:
    """The robot's scene file with two 320x240 10 Hz cameras: its table camera and a second
    one across the table."""
    setup = load_robot(robot)
    from reverse_digital_twin.core.paths import resolve  # noqa: PLC0415
    path = resolve(setup.sim['scene_file'], 'scene_file')
    data = yaml.safe_load(path.read_text())
    _, spec = _table_camera(robot)
    for obj in data.get('objects') or []:  # the same files, from another directory
        obj['urdf'] = str(resolve(str(obj['urdf']), 'urdf'))
    common = {'width': 320, 'height': 240, 'fov': spec.fov, 'near': spec.near, 'far': spec.far,
              'rate': CAMERA_RATE}
    x, y, z = spec.position
    data['cameras'] = [
        {'name': 'bench_camera_a', 'position': [x, y, z],
         'orientation_rpy': list(spec.orientation_rpy), **common},
        {'name': 'bench_camera_b', 'position': [x, -y, z],
         'look_at': [float(v) for v in np.asarray(scene_target(spec))], **common}]
    out = directory / 'scene_two_cameras.yaml'
    out.write_text(yaml.safe_dump(data))
    return str(out), [c['name'] for c in data['cameras']]


def scene_target(spec: CameraSpec) -> np.ndarray:
    """A point 1.5 m ahead of a camera, mirrored across the world's xz plane."""
    forward = geometry.rotation_from_rpy(spec.orientation_rpy)[:, 0]
    ahead = np.asarray(spec.position) + 1.5 * forward
    return ahead * np.array([1.0, -1.0, 1.0])


def rtf_with_cameras(robot: str) -> dict:
    """The twin's RTF with two cameras rendering vs idle, in the running twin graph."""
    from rclpy.qos import qos_profile_sensor_data  # noqa: PLC0415
    from rosgraph_msgs.msg import Clock  # noqa: PLC0415
    from sensor_msgs.msg import Image, PointCloud2  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode, wait_for  # noqa: PLC0415
    from reverse_digital_twin.nodes.ros_common import CLOCK_QOS, seconds  # noqa: PLC0415
    from reverse_digital_twin.runner import Stack  # noqa: PLC0415
    from reverse_digital_twin.stack import SIM_NODE, TwinNames, twin_graph  # noqa: PLC0415

    names = TwinNames()
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix='bench_cameras_') as tmp:
        scene_file, cameras = _two_camera_scene(robot, Path(tmp))
        specs = twin_graph(robot, overrides={SIM_NODE: {'scene_file': scene_file}})
        log_file = open(Path(tmp) / 'nodes.log', 'w')  # noqa: SIM115
        stack = Stack(specs, echo=log_file).start()
        try:
            with BackgroundNode('bench_cameras') as node:
                clock: list[tuple[float, float]] = []
                node.create_subscription(Clock, '/clock', lambda m: clock.append(
                    (time.monotonic(), seconds(m.clock))), CLOCK_QOS)
                if not wait_for(lambda: len(clock) > 50, 120):
                    dead = stack.dead()
                    raise RuntimeError('the twin graph did not come up: ' + (
                        dead[0].describe_exit() if dead else 'no /clock'))
                time.sleep(5.0)  # settle: the planner's workers start after /clock

                def rtf() -> float:
                    start = len(clock)
                    time.sleep(RTF_WINDOW)
                    (w0, s0), (w1, s1) = clock[start], clock[-1]
                    return (s1 - s0) / (w1 - w0)

                off_before = rtf()
                clouds: list[float] = []
                subs = []
                for camera in cameras:
                    subs.append(node.create_subscription(
                        PointCloud2, names.camera_topic(names.twin_namespace, camera, 'points'),
                        lambda m: clouds.append(time.monotonic()), qos_profile_sensor_data))
                    subs.append(node.create_subscription(
                        Image, names.camera_topic(names.twin_namespace, camera, 'image'),
                        lambda m: None, qos_profile_sensor_data))
                if not wait_for(lambda: len(clouds) > 10, 60):
                    raise RuntimeError('the cameras sent no point clouds')
                first = len(clouds)
                on = rtf()
                fps = (len(clouds) - first) / RTF_WINDOW / len(cameras)
                for sub in subs:
                    node.destroy_subscription(sub)
                time.sleep(1.0)  # the cameras notice they are no longer watched
                off_after = rtf()
        finally:
            stack.stop()
            log_file.close()
    off = (off_before + off_after) / 2
    result.update({'twin_rtf_with_cameras': on / off, 'twin_rtf_cameras_on': on,
                   'twin_rtf_cameras_off': off, 'camera_fps_in_graph': fps,
                   'camera_rate_share_in_graph': fps / CAMERA_RATE})
    log(f'twin RTF: {off_before:.3f} off, {on:.3f} with {len(cameras)} cameras '
        f'({fps:.1f} clouds/s each), {off_after:.3f} off: ratio {on / off:.3f}')
    if fps < 0.5 * CAMERA_RATE:
        log(f'the cameras rendered {fps:.1f} of {CAMERA_RATE:g} frames/s (niceness: the machine '
            'is busy): the ratio says little about rendering at full rate')
    return result


def pointcloud_latency(robot: str) -> dict:
    """State sent -> cloud received (wall), through a camera node process."""
    from rclpy.qos import qos_profile_sensor_data  # noqa: PLC0415
    from sensor_msgs.msg import JointState, PointCloud2  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode  # noqa: PLC0415
    from reverse_digital_twin.nodes.ros_common import seconds  # noqa: PLC0415
    from reverse_digital_twin.ros_params import read_node_parameters  # noqa: PLC0415
    from reverse_digital_twin.runner import Stack  # noqa: PLC0415
    from reverse_digital_twin.stack import SIM_NODE, camera_node, camera_topic  # noqa: PLC0415

    setup = load_robot(robot)
    _, spec = _table_camera(robot)
    world = read_node_parameters(setup.config, SIM_NODE)
    camera = camera_node(world, 'bench_latency', str(setup.config), {})
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix='bench_cameras_') as tmp, \
            open(Path(tmp) / 'camera.log', 'w') as log_file, \
            Stack(camera, echo=log_file) as stack, BackgroundNode('bench_latency') as node:
        states = node.create_publisher(JointState, '/bench_latency/joint_states', 10)
        joints = setup.joints
        home = setup.home.tolist()

        def on_cloud(msg: PointCloud2) -> None:
            latencies.append(time.time() - seconds(msg.header.stamp))
        node.create_subscription(PointCloud2,
                                 f'/bench_latency/{camera_topic(spec.name, "points")}',
                                 on_cloud, qos_profile_sensor_data)
        deadline = time.monotonic() + 120
        while len(latencies) < LATENCY_CLOUDS + 5 and time.monotonic() < deadline:
            if stack.dead():
                raise RuntimeError(stack.dead()[0].describe_exit())
            msg = JointState(name=list(joints), position=home)
            now = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            states.publish(msg)
            time.sleep(0.01)  # 100 Hz, as the twin's joint states
    if len(latencies) < LATENCY_CLOUDS:
        raise RuntimeError(f'only {len(latencies)} point clouds within 120 s')
    ms = np.array(latencies[5:]) * 1e3  # the first ones wait for discovery
    result = {'pointcloud_latency_ms': float(np.median(ms)),
              'pointcloud_latency_p95_ms': float(np.percentile(ms, 95)),
              'pointcloud_latency_clouds': int(len(ms))}
    log(f'point cloud latency: median {result["pointcloud_latency_ms"]:.1f} ms, p95 '
        f'{result["pointcloud_latency_p95_ms"]:.1f} ms over {len(ms)} clouds')
    return result


def render_time_ms(robot: str, repeats: int = 20) -> float:
    """Median in-process render + convert of one 320x240 cloud (part of the latency)."""
    setup = load_robot(robot)
    scene, spec = _table_camera(robot)
    world = PhysicsWorld(setup.model(), str(setup.urdf), scene,
                         initial_positions=setup.initial_positions)
    try:
        view = geometry.view_matrix(spec.position,
                                    geometry.rotation_from_rpy(spec.orientation_rpy))
        projection = geometry.projection_matrix(spec.fov, spec.width / spec.height, spec.near,
                                                spec.far)
        k = geometry.Intrinsics.from_fov(spec.width, spec.height, spec.fov,
                                         RENDER_PRINCIPAL_OFFSET)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rgb, buffer = world.render(view, projection, spec.width, spec.height)
            depth = geometry.depth_from_buffer(buffer, spec.near, spec.far)
            points, colours = geometry.points_from_depth(depth, k, rgb)
            geometry.cloud_data(points, colours)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3
    finally:
        world.close()


def measure(robot: str = 'rdt_arm6') -> dict:
    """All figures of this benchmark for one robot."""
    isolate()
    import rclpy  # noqa: PLC0415 - after the domain is chosen
    result = frame_rates(robot)
    result['pointcloud_render_ms'] = render_time_ms(robot)
    owner = not rclpy.ok()
    if owner:
        rclpy.init()
    try:
        result.update(pointcloud_latency(robot))
        result.update(rtf_with_cameras(robot))
    finally:
        if owner and rclpy.ok():
            rclpy.shutdown()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return run_alone(measure, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
