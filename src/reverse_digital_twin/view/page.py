"""The web page of `rdt view`, drawn with viser (its three.js client ships inside the wheel, so
the page needs no network): the measured robot, the twin's ghost, markers, the camera image
and point cloud, the bridge's status and the controls.

No rclpy here: the node (nodes/web_view_node.py) feeds the page and gives it the operations
behind the buttons. viser serves every browser from its own threads; each method may be called
from any thread.
"""
from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from reverse_digital_twin.core.transforms import Transform
from reverse_digital_twin.view.scene import GHOST_COLOR, GHOST_OPACITY, ROBOT_COLOR, Primitive

TARGETS = ('sim', 'hardware', 'shadow')
#: The camera's direction from the robot, and how much room around it (REP-103: x ahead of the
#: robot, z up): from the front right, a little above, so the arm and what is ahead show.
VIEW_DIRECTION = np.array([1.0, -1.1, 0.75])
VIEW_MARGIN = 1.3
VIEW_FOV = np.radians(50.0)
#: rad (or m): joint motion below this is not sent to the browsers (sub-pixel at any sensible
#: zoom; sensor noise would otherwise keep every browser rendering).
VISIBLE_MOTION = 1e-3
#: m: a point cloud whose points all moved less than this is not sent again.
CLOUD_CHANGE = 1e-3

#: What a button does: it returns what to tell the user, or raises with the reason.
Operation = Callable[[], str]


def load_urdf(urdf_xml: str):
    """A robot_description as a yourdfpy URDF with its visual meshes (absolute file:// URIs,
    as the sim node publishes them, load as they are)."""
    import yourdfpy  # noqa: PLC0415 - heavy, only with a robot
    with tempfile.TemporaryDirectory(prefix='rdt_view_') as folder:
        path = Path(folder) / 'robot.urdf'
        path.write_text(urdf_xml)
        return yourdfpy.URDF.load(path, build_scene_graph=True, load_meshes=True,
                                  build_collision_scene_graph=False,
                                  load_collision_meshes=False,
                                  filename_handler=partial(yourdfpy.filename_handler_magic,
                                                           dir=path.parent))


class _Robot:
    """A URDF drawn under one scene node (the root link's frame), in one colour."""

    def __init__(self, server, model, node: str, color: tuple[int, ...],
                 opacity: float | None) -> None:
        """``model``: a yourdfpy URDF (:func:`load_urdf`); the robot and its ghost share one
        (the page moves one at a time, under its lock)."""
        from viser.extras import ViserUrdf  # noqa: PLC0415 - heavy, only with a robot
        self.frame = server.scene.add_frame(node, show_axes=False)
        override = tuple(c / 255.0 for c in color) + ((opacity,) if opacity is not None else ())
        self.urdf = ViserUrdf(server, urdf_or_path=model, root_node_name=node,
                              mesh_color_override=override)
        self.joints = list(self.urdf.get_actuated_joint_names())
        self.positions = np.zeros(len(self.joints))
        self.index = {name: i for i, name in enumerate(self.joints)}
        self.urdf.update_cfg(self.positions)
        self._shown = False  # no joint positions received yet

    def set_joints(self, names: Sequence[str], positions: Sequence[float]) -> bool:
        """Move the joints; False (and nothing sent) when no joint moved visibly: the browser
        renders only on a change, so a robot at rest costs it nothing."""
        new = self.positions.copy()
        for name, value in zip(names, positions):
            i = self.index.get(name)
            if i is not None:
                new[i] = value
        if self._shown and np.abs(new - self.positions).max(initial=0.0) < VISIBLE_MOTION:
            return False
        self.positions, self._shown = new, True
        self.urdf.update_cfg(self.positions)
        return True

    def set_pose(self, pose: Transform) -> None:
        x, y, z, w = pose.rotation
        self.frame.position = tuple(pose.translation)
        self.frame.wxyz = (w, x, y, z)

    def bounds(self) -> np.ndarray:
        """(2, 3) min/max corners of the visual geometry in the root link's frame."""
        self.urdf.update_cfg(self.positions)  # the shared model at this robot's joints
        scene = self.urdf._urdf.scene  # yourdfpy's trimesh scene at the current joints
        return np.asarray(scene.bounds, dtype=float) if scene is not None and \
            scene.bounds is not None else np.zeros((2, 3))

    def remove(self) -> None:
        self.frame.remove()  # and with it every node of the robot, below it


class WebPage:
    """The page: scene, panels and controls. Operations run on viser's threads."""

    def __init__(self, host: str, port: int, switch: Callable[[str], str],
                 arm: Callable[[bool], str], title: str = 'Reverse digital twin') -> None:
        import viser  # noqa: PLC0415
        self.server = viser.ViserServer(host=host, port=port, label=title, verbose=False)
        self.port = self.server.get_port()
        self._lock = threading.RLock()
        self._switch, self._arm = switch, arm
        scene, gui = self.server.scene, self.server.gui
        scene.set_up_direction('+z')
        # No shadows: a browser without a GPU renders in software (shadow maps double the
        # work), and the robot's shadow would fall on the floor grid, not on what it stands on
        scene.configure_default_lights(cast_shadow=False)
        scene.add_grid('/floor', width=4.0, height=4.0, cell_size=0.25, section_size=1.0)
        self.robot: _Robot | None = None
        self.ghost: _Robot | None = None
        self._description = ''
        self._root_pose = Transform()
        self._markers: dict[str, object] = {}
        self._cloud = None
        self._last_cloud: tuple[np.ndarray, np.ndarray] | None = None  # drawn
        self._cloud_data: tuple[np.ndarray, np.ndarray] | None = None  # received
        self._last_image: np.ndarray | None = None
        self._framed = False  # the camera points at the robot (once it stands in its pose)
        self._posed = False  # joint positions have arrived
        self._ghost_seen = False

        gui.configure_theme(control_width='large', show_logo=False)
        gui.main_panel.dock_right()  # beside the 3D view, not over it: the robot stays in sight
        self.status = gui.add_markdown('**Bridge**: connecting...')
        self.target = gui.add_dropdown('Target', TARGETS, initial_value='sim')
        switch_button = gui.add_button('Switch target', icon=viser.Icon.ARROWS_EXCHANGE)
        arm_button = gui.add_button('Arm hardware', color='red', icon=viser.Icon.ALERT_TRIANGLE)
        disarm_button = gui.add_button('Disarm hardware', color='green',
                                       icon=viser.Icon.SHIELD_CHECK)
        self.reply = gui.add_markdown('')
        self.show_robot = gui.add_checkbox('Show the measured robot', True)
        with gui.add_folder('Prediction'):
            self.verdict = gui.add_markdown('**Verdict**: none yet')
            self.show_ghost = gui.add_checkbox('Show the twin\'s ghost', True)
        with gui.add_folder('Camera'):
            self.camera_text = gui.add_markdown('No camera yet')
            self.image = gui.add_image(np.zeros((4, 4, 3), np.uint8), format='jpeg',
                                       visible=False)
            self.show_cloud = gui.add_checkbox('Show the point cloud', True)
        switch_button.on_click(lambda _: self._run(f'switch to {self.target.value}',
                                                   lambda: self._switch(self.target.value)))
        disarm_button.on_click(lambda _: self._run('disarm', lambda: self._arm(False)))
        arm_button.on_click(lambda event: self._confirm_arm(event.client))
        self.show_ghost.on_update(lambda _: self._apply_visibility())
        self.show_robot.on_update(lambda _: self._apply_visibility())
        self.show_cloud.on_update(lambda _: self._apply_visibility())

    @property
    def url(self) -> str:
        return f'http://localhost:{self.port}'

    def close(self) -> None:
        self.server.stop()

    # --- controls ----------------------------------------------------------------------------
    def _run(self, what: str, operation: Operation) -> None:
        self.reply.content = f'*{what}...*'
        try:
            self.reply.content = f'{what}: {operation()}'
        except Exception as exc:  # noqa: BLE001 - every failure is shown, the page lives on
            self.reply.content = f'**{what} failed**: {exc}'

    def _confirm_arm(self, client) -> None:
        """Arming lets goals reach the real robot: only after an explicit confirmation."""
        if client is None:
            return
        with client.gui.add_modal('Arm the hardware?') as modal:
            client.gui.add_markdown('Goals may then reach the **real robot** (target hardware '
                                    'or shadow).')
            confirm = client.gui.add_button('Confirm arm', color='red')
            cancel = client.gui.add_button('Cancel')

        def on_confirm(_) -> None:
            modal.close()
            self._run('arm', lambda: self._arm(True))
        confirm.on_click(on_confirm)
        cancel.on_click(lambda _: modal.close())

    # --- robot and ghost ---------------------------------------------------------------------
    def set_description(self, urdf_xml: str) -> None:
        """(Re)build both robots from a robot_description (the same text is ignored)."""
        with self._lock:
            if urdf_xml == self._description:
                return
            for old in (self.robot, self.ghost):
                if old is not None:
                    old.remove()
            self._description = urdf_xml
            model = load_urdf(urdf_xml)
            self.robot = _Robot(self.server, model, '/robot', ROBOT_COLOR, None)
            self.ghost = _Robot(self.server, model, '/ghost', GHOST_COLOR, GHOST_OPACITY)
            self.ghost.frame.visible = False  # until the twin predicts something
            self.robot.frame.visible = bool(self.show_robot.value)
            for robot in (self.robot, self.ghost):
                robot.set_pose(self._root_pose)
            self._framed = self._posed = self._ghost_seen = False

    def set_root_pose(self, pose: Transform) -> None:
        """Where the robot's root link is in the view's fixed frame (the world)."""
        with self._lock:
            self._root_pose = pose
            for robot in (self.robot, self.ghost):
                if robot is not None:
                    robot.set_pose(pose)
            self._framed = False
            self._frame_robot()

    def set_joints(self, names: Sequence[str], positions: Sequence[float]) -> None:
        with self._lock:
            if self.robot is not None:
                self.robot.set_joints(names, positions)
                self._posed = True
                self._frame_robot()

    def set_ghost_joints(self, names: Sequence[str], positions: Sequence[float]) -> None:
        with self._lock:
            if self.ghost is not None:
                self.ghost.set_joints(names, positions)
                self._ghost_seen = True
                self.ghost.frame.visible = bool(self.show_ghost.value)

    def _frame_robot(self) -> None:
        """Point the camera at the robot: the start view of new browsers ("Reset view"), and
        of the browsers already open when the robot first appears."""
        if self.robot is None or self._framed or not self._posed:
            return
        low, high = self.robot.bounds()
        corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1])
                            for z in (low[2], high[2])])
        world = self._root_pose.apply(corners)
        centre = (world.min(axis=0) + world.max(axis=0)) / 2.0
        radius = max(float(np.linalg.norm(world.max(axis=0) - world.min(axis=0))) / 2.0, 0.2)
        distance = VIEW_MARGIN * radius / np.tan(VIEW_FOV / 2.0)
        position = centre + VIEW_DIRECTION / np.linalg.norm(VIEW_DIRECTION) * distance
        camera = self.server.initial_camera
        camera.position, camera.look_at, camera.fov = tuple(position), tuple(centre), VIEW_FOV
        for client in self.server.get_clients().values():
            client.camera.fov = VIEW_FOV
            client.camera.position, client.camera.look_at = tuple(position), tuple(centre)
        self._framed = True

    # --- markers, camera, texts --------------------------------------------------------------
    def update_markers(self, changed: Sequence[Primitive], removed: Sequence[str]) -> None:
        """Draw new or changed primitives (in the fixed frame), remove the others."""
        scene = self.server.scene
        with self._lock:
            for key in removed:
                handle = self._markers.pop(key, None)
                if handle is not None:
                    handle.remove()
            for item in changed:
                name = f'/markers/{item.key}'
                old = self._markers.pop(item.key, None)
                if old is not None:
                    old.remove()
                if item.kind == 'lines':
                    handle = scene.add_line_segments(name, item.points, item.colors,
                                                     thickness=max(item.size, 0.002))
                elif item.kind == 'text':
                    handle = scene.add_label(name, item.text, position=tuple(item.points[0]),
                                             anchor='bottom-center')
                elif len(item.points) == 1:
                    opacity = item.opacity if item.opacity < 1.0 else None
                    if item.kind == 'boxes':
                        handle = scene.add_box(name, tuple(int(c) for c in item.colors[0]),
                                               (item.size,) * 3, opacity=opacity,
                                               position=tuple(item.points[0]))
                    else:
                        handle = scene.add_icosphere(name, item.size,
                                                     tuple(int(c) for c in item.colors[0]),
                                                     opacity=opacity,
                                                     position=tuple(item.points[0]))
                else:
                    handle = scene.add_point_cloud(
                        name, item.points, item.colors,
                        point_size=item.size * (1.0 if item.kind == 'boxes' else 2.0),
                        point_shape='square' if item.kind == 'boxes' else 'circle',
                        precision='float32')
                self._markers[item.key] = handle

    def set_image(self, rgb: np.ndarray, title: str) -> None:
        """Show a camera image (an unchanged image is not sent again: a static scene costs the
        browsers nothing)."""
        with self._lock:
            if self._last_image is not None and np.array_equal(rgb, self._last_image):
                return
            self._last_image = rgb
            self.image.image = rgb
            self.image.visible = True
            self.camera_text.content = f'**{title}**'

    def set_camera_text(self, text: str) -> None:
        self.camera_text.content = text

    def set_cloud(self, points: np.ndarray, colors: np.ndarray | None) -> None:
        """The camera's point cloud, in the fixed frame. Hidden, it is kept, not sent: a cloud
        is a few hundred kB, and browsers without a GPU redraw the scene for each."""
        if colors is None:
            colors = np.full((len(points), 3), 150, np.uint8)
        with self._lock:
            self._cloud_data = (points.astype(np.float32), colors)
            if self.show_cloud.value:
                self._draw_cloud()

    def _draw_cloud(self) -> None:
        points, colors = self._cloud_data
        last = self._last_cloud
        if last is not None and last[0].shape == points.shape and \
                np.abs(last[0] - points).max(initial=0.0) < CLOUD_CHANGE and \
                np.array_equal(last[1], colors):
            return  # the same cloud: not sent again
        self._last_cloud = (points, colors)
        self._cloud = self.server.scene.add_point_cloud(
            '/camera/points', points, colors, point_size=0.004, point_shape='rounded',
            precision='float32')

    def set_status(self, markdown: str) -> None:
        self.status.content = markdown

    def set_verdict(self, markdown: str) -> None:
        self.verdict.content = markdown

    def set_target(self, target: str) -> None:
        """Show the bridge's active target in the dropdown (what a switch would change)."""
        if target in TARGETS:
            self.target.value = target

    def _apply_visibility(self) -> None:
        with self._lock:
            if self.show_cloud.value and self._cloud_data is not None:
                self._draw_cloud()
            if self._cloud is not None:
                self._cloud.visible = bool(self.show_cloud.value)
            if self.ghost is not None:
                self.ghost.frame.visible = bool(self.show_ghost.value) and self._ghost_seen
            if self.robot is not None:
                self.robot.frame.visible = bool(self.show_robot.value)
