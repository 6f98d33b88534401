"""The prediction drawn for rviz, from the live twin graph: markers per goal and the ghost.

Real processes over real DDS: goals go to the bridge as any client sends them; the test reads
the prediction view's topics as rviz would and checks the geometry against the verdict the
bridge published (forward kinematics of its predicted trajectory).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rdt_interfaces.msg import Verdict
from sensor_msgs.msg import JointState
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from reverse_digital_twin.client import make_trajectory, wait_for
from reverse_digital_twin.core.kinematics import Kinematics, tip_link
from reverse_digital_twin.core.prediction_drawing import SAFE_COLOUR, UNSAFE_COLOUR
from reverse_digital_twin.core.robot_model import rotate
from reverse_digital_twin.nodes.ros_common import TF_QOS, seconds
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.stack import GHOST_TF_PREFIX, PREDICTION_VIEW_NODE

from .conftest import Twin

pytestmark = pytest.mark.integration
#: What rviz's MarkerArray display asks for (the shipped config): reliable, transient local.
MARKERS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
STATIC_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


class ViewWatch:
    """Everything the prediction view publishes, and the bridge's verdicts, as they arrive
    (with the monotonic time of arrival)."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        names = twin.names
        self.lock = threading.Lock()
        self.markers: list[tuple[float, MarkerArray]] = []
        self.verdicts: list[tuple[float, Verdict]] = []
        self.ghost: JointState | None = None
        self.tf: dict[str, tuple[str, object]] = {}  # child -> (parent, transform)
        node = twin.node
        self.subscriptions = [
            node.create_subscription(MarkerArray, names.prediction_markers,
                                     self._stamp(self.markers), MARKERS_QOS),
            node.create_subscription(Verdict, names.verdicts, self._stamp(self.verdicts), 10),
            node.create_subscription(JointState, names.ghost_joint_states, self._on_ghost, 10),
            node.create_subscription(TFMessage, names.sim_tf, self._on_tf, TF_QOS),
            node.create_subscription(TFMessage, names.sim_tf_static, self._on_tf, STATIC_QOS),
        ]

    def _stamp(self, into: list):
        def keep(msg) -> None:
            with self.lock:
                into.append((time.monotonic(), msg))
        return keep

    def _on_ghost(self, msg: JointState) -> None:
        self.ghost = msg

    def _on_tf(self, msg: TFMessage) -> None:
        with self.lock:
            for t in msg.transforms:
                self.tf[t.child_frame_id] = (t.header.frame_id, t.transform)

    def close(self) -> None:
        for sub in self.subscriptions:
            self.twin.node.destroy_subscription(sub)

    def ghost_positions(self) -> dict[str, float]:
        msg = self.ghost
        return dict(zip(msg.name, msg.position)) if msg is not None else {}

    def lookup(self, parent: str, child: str) -> np.ndarray | None:
        """Position of ``child``'s origin in ``parent`` by chaining what TF carried."""
        with self.lock:
            position, frame = np.zeros(3), child
            for _ in range(64):
                if frame == parent:
                    return position
                if frame not in self.tf:
                    return None
                up, t = self.tf[frame]
                q = np.array([t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w])
                position = rotate(q, position) + [t.translation.x, t.translation.y,
                                                  t.translation.z]
                frame = up
        return None

    def mark(self) -> tuple[int, int]:
        """How many verdicts and marker arrays arrived so far (before sending a goal)."""
        with self.lock:
            return len(self.verdicts), len(self.markers)

    def next_drawing(self, mark: tuple[int, int],
                     timeout: float = 20.0) -> tuple[float, Verdict, float, MarkerArray]:
        """The first verdict and the first marker array since ``mark``, with their arrival
        times (the two subscriptions are served in either order)."""
        verdicts, markers = mark
        assert wait_for(lambda: len(self.verdicts) > verdicts, timeout), 'no verdict published'
        assert wait_for(lambda: len(self.markers) > markers, 5.0), 'no markers for the verdict'
        return (*self.verdicts[verdicts], *self.markers[markers])


#: rdt_arm6 with the stand-in hardware (shadow mode, divergence); the Panda lighter, the twin
#: alone behind the bridge.
ROBOTS = {'rdt_arm6': 'standin', 'panda': ''}
#: A goal the twin refuses: (joint index, rad from home). config/scene_default.yaml: rdt_arm6's
#: shoulder_pan sweep from home towards +y drives the forearm through the pillar.
REFUSED_SWEEP = {'rdt_arm6': (0, 1.57)}


@pytest.fixture(scope='module', params=sorted(ROBOTS, reverse=True))
def view(request, ros_node, tmp_path_factory) -> Iterator[tuple[Twin, ViewWatch]]:
    twin = Twin(ros_node, request.param, tmp_path_factory.mktemp(request.param),
                hardware=ROBOTS[request.param])
    watch = ViewWatch(twin)
    try:
        _wait_view(twin, watch)
        yield twin, watch
    finally:
        watch.close()
        twin.close()


def _reset(twin: Twin) -> None:
    """Back home, target sim (both worlds when there is hardware)."""
    if ROBOTS[twin.name]:
        twin.reset()
    elif np.abs(twin.positions(twin.sim) - twin.home).max() > 5e-3:
        assert twin.send([twin.home], [2.0]).status_name == 'SUCCEEDED'


def _wait_view(twin: Twin, watch: ViewWatch) -> None:
    """The view is up and hears the bridge: its ghost moves and it subscribes to verdicts."""
    assert wait_for(lambda: watch.ghost is not None, 30), 'no ghost joint states'
    assert wait_for(lambda: any(
        i.node_name == PREDICTION_VIEW_NODE
        for i in twin.node.get_subscriptions_info_by_topic(twin.names.verdicts)), 30)


def _by_ns(array: MarkerArray, ns: str) -> list[Marker]:
    return [m for m in array.markers if m.ns == ns and m.action == Marker.ADD]


def _predicted_path(twin: Twin, verdict: Verdict, held: dict[str, float]) -> np.ndarray:
    kinematics = Kinematics.in_scene(twin.model, load_robot(twin.name).scene())
    trajectory = verdict.predicted_trajectory
    positions = np.array([list(p.positions) for p in trajectory.points])
    return kinematics.link_path(kinematics.tip_link, list(trajectory.joint_names), positions,
                                held)


def _assert_path_is_the_prediction(path: Marker, expected: np.ndarray) -> None:
    """Every drawn point is a predicted tool position, in order, from the first to the last."""
    points = np.array([[p.x, p.y, p.z] for p in path.points])
    assert len(points) >= 2
    distance = np.linalg.norm(points[:, None, :] - expected[None, :, :], axis=2)
    assert distance.min(axis=1).max() < 1e-9, 'a drawn point is not a predicted one'
    assert np.all(np.diff(distance.argmin(axis=1)) > 0), 'the path is not in time order'
    assert np.allclose(points[0], expected[0]) and np.allclose(points[-1], expected[-1])


def _colour(marker: Marker) -> tuple[float, ...]:
    c = marker.color
    return tuple(round(v, 3) for v in (c.r, c.g, c.b, c.a))


def _held(twin: Twin, verdict: Verdict) -> dict[str, float]:
    latest = twin.client.latest()
    moved = set(verdict.predicted_trajectory.joint_names)
    return {n: p for n, p in zip(latest.name, latest.position) if n not in moved}


def _assert_ghost_ends_where_predicted(twin: Twin, watch: ViewWatch, verdict: Verdict,
                                       held: dict[str, float], tip: np.ndarray) -> None:
    """The ghost plays the motion back and holds its end, on joint states and on TF."""
    final = dict(zip(verdict.final_state.name, verdict.final_state.position))
    assert wait_for(lambda: all(abs(watch.ghost_positions().get(j, np.inf) - v) < 1e-9
                                for j, v in final.items()), 10), \
        (watch.ghost_positions(), final)
    # the others follow the robot (a gripper's fingers settle by a hair)
    assert all(abs(watch.ghost_positions()[j] - v) < 1e-3 for j, v in held.items())
    ghost_tip = f'{GHOST_TF_PREFIX}/{tip_link(twin.model)}'
    assert wait_for(lambda: watch.lookup('world', ghost_tip) is not None and np.allclose(
        watch.lookup('world', ghost_tip), tip, atol=1e-6), 5), \
        (watch.lookup('world', ghost_tip), tip)


def test_a_refused_goal_is_drawn_red_with_its_contacts_named(view):
    twin, watch = view
    if twin.name not in REFUSED_SWEEP:
        pytest.skip(f'{twin.name}: the lighter run, safe goals only')
    _reset(twin)
    joint, amplitude = REFUSED_SWEEP[twin.name]
    target = twin.home.copy()
    target[joint] += amplitude
    count = watch.mark()
    outcome = twin.client.send(make_trajectory(twin.joints, [target], [2.0]), timeout=30)
    assert outcome.status_name == 'ABORTED' and 'refused' in outcome.error_string
    _, verdict, _, array = watch.next_drawing(count)
    assert not verdict.safe and verdict.collisions

    assert array.markers[0].action == Marker.DELETEALL
    assert all(m.header.frame_id == 'world' for m in array.markers[1:])
    line = next(m for m in _by_ns(array, 'path') if m.type == Marker.LINE_STRIP)
    assert _colour(line) == tuple(round(v, 3) for v in UNSAFE_COLOUR)
    held = _held(twin, verdict)
    expected = _predicted_path(twin, verdict, held)
    _assert_path_is_the_prediction(line, expected)
    contacts = _by_ns(array, 'contacts')
    spheres = [m for m in contacts if m.type == Marker.SPHERE]
    texts = [m.text for m in contacts if m.type == Marker.TEXT_VIEW_FACING]
    assert len(spheres) == len(verdict.collisions) == len(texts)
    for collision in verdict.collisions:
        at = np.array([collision.position.x, collision.position.y, collision.position.z])
        assert any(np.allclose([s.pose.position.x, s.pose.position.y, s.pose.position.z], at)
                   for s in spheres), collision
        assert any(collision.link in t and collision.other in t for t in texts), texts
    assert any(c.other == 'obstacle' for c in verdict.collisions)
    verdict_text = _by_ns(array, 'verdict')[0]
    assert verdict_text.type == Marker.TEXT_VIEW_FACING
    assert verdict_text.text.startswith('REFUSED') and 'obstacle' in verdict_text.text

    _assert_ghost_ends_where_predicted(twin, watch, verdict, held, expected[-1])
    # the real arm did not go there (the rollout stops at the contact, a few cm on)
    robot_tip = watch.lookup('world', tip_link(twin.model))
    assert robot_tip is not None and np.linalg.norm(robot_tip - expected[-1]) > 0.03
    assert np.allclose(robot_tip, expected[0], atol=2e-3)  # where the prediction started


def test_the_next_goal_replaces_the_drawing(view):
    """DELETEALL first, then only the new goal's markers: a safe goal after the refused one
    shows a green path and no contacts. Joints the goal does not move (the Panda's fingers)
    are drawn and ghosted where the robot has them."""
    twin, watch = view
    count = watch.mark()
    outcome = twin.send([twin.pose(0.2)], [1.5])
    assert outcome.accepted, outcome  # predicted safe; drawn whatever becomes of it
    _, verdict, _, array = watch.next_drawing(count)
    assert verdict.safe
    assert array.markers[0].action == Marker.DELETEALL
    assert sum(m.action == Marker.DELETEALL for m in array.markers) == 1
    assert not _by_ns(array, 'contacts') and not _by_ns(array, 'divergence')
    line = next(m for m in _by_ns(array, 'path') if m.type == Marker.LINE_STRIP)
    assert _colour(line) == tuple(round(v, 3) for v in SAFE_COLOUR)
    held = _held(twin, verdict)
    assert set(held) == {j.name for j in twin.model.movable_joints} - set(twin.joints)
    expected = _predicted_path(twin, verdict, held)
    _assert_path_is_the_prediction(line, expected)
    assert _by_ns(array, 'verdict')[0].text.startswith('SAFE')
    _assert_ghost_ends_where_predicted(twin, watch, verdict, held, expected[-1])


def test_a_divergence_in_shadow_mode_is_marked_on_the_goals_drawing(view):
    twin, watch = view
    if not ROBOTS[twin.name]:
        pytest.skip(f'{twin.name} runs without hardware here: no shadow mode')
    twin.reset()
    assert twin.arm(True).success and twin.switch('shadow').success
    twin.divergences.clear()
    count = watch.mark()
    twin.set_standin(command_latency=0.4)  # reality lags far beyond what the bridge tolerates
    try:
        outcome = twin.send([twin.pose(0.6), twin.home], [2.0, 4.0])
        assert outcome.status_name == 'ABORTED' and 'diverged' in outcome.error_string
        assert wait_for(lambda: twin.divergences, 5), 'no Divergence report'
        report = twin.divergences[-1]
        _, verdict, _, _ = watch.next_drawing(count)
        assert wait_for(lambda: _by_ns(watch.markers[-1][1], 'divergence'), 5), \
            'no divergence markers'
        array = watch.markers[-1][1]
    finally:
        twin.set_standin(command_latency=0.004)
        twin.switch('sim')
    assert array.markers[0].action == Marker.DELETEALL
    # still the goal's own drawing, with the divergence added
    line = next(m for m in _by_ns(array, 'path') if m.type == Marker.LINE_STRIP)
    _assert_path_is_the_prediction(line, _predicted_path(twin, verdict, {}))
    kinematics = Kinematics.in_scene(twin.model, load_robot(twin.name).scene())
    tool = kinematics.link_path(kinematics.tip_link, list(report.joint_names),
                                np.array([list(report.measured), list(report.predicted)]))
    marks = _by_ns(array, 'divergence')
    spheres = [np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])
               for m in marks if m.type == Marker.SPHERE]
    assert len(spheres) == 2
    assert np.allclose(spheres[0], tool[0]) and np.allclose(spheres[1], tool[1])
    text = next(m.text for m in marks if m.type == Marker.TEXT_VIEW_FACING)
    assert report.joint in text and 'DIVERGED' in text
    # the next goal's drawing has none of it
    twin.reset()
    count = watch.mark()
    outcome = twin.send([twin.pose(0.1)], [1.0])
    assert outcome.status_name == 'SUCCEEDED', outcome
    _, _, _, array = watch.next_drawing(count)
    assert array.markers[0].action == Marker.DELETEALL and not _by_ns(array, 'divergence')


def test_a_late_viewer_gets_the_latest_drawing(view):
    """rviz started after the goal still shows it: the array is latched, DELETEALL first."""
    twin, watch = view
    count = watch.mark()
    twin.send([twin.pose(0.15)], [1.0])  # drawn once predicted, whatever becomes of it
    watch.next_drawing(count)
    latest = watch.markers[-1][1]
    late: list[MarkerArray] = []
    sub = twin.node.create_subscription(MarkerArray, twin.names.prediction_markers,
                                        late.append, MARKERS_QOS)
    try:
        assert wait_for(lambda: late, 10), 'a late subscriber got nothing'
        assert len(late) == 1
        assert [(m.ns, m.id, m.type) for m in late[0].markers] == \
            [(m.ns, m.id, m.type) for m in latest.markers]
        assert late[0].markers[0].action == Marker.DELETEALL
        assert seconds(watch.ghost.header.stamp) > 0  # sim time, as the twin's own TF
    finally:
        twin.node.destroy_subscription(sub)
