"""Prediction view node: the twin's prediction of every goal, drawn for rviz.

Listens to the bridge's verdicts (goals and streamed trajectories alike) and divergence
reports, and publishes, in the twin's namespace:

- ``prediction/markers`` (visualization_msgs/MarkerArray, latched): a DELETEALL, then the
  tool's predicted path coloured by the verdict, the first contacts with the links named, limit
  violations, the verdict as text; a divergence during that goal adds its own markers. Each
  verdict replaces the drawing, so rviz shows the latest prediction only.
- ``prediction/ghost_joint_states`` (sensor_msgs/JointState) and the ghost's TF on ``tf`` /
  ``tf_static``: the predicted motion played back in real time from the verdict's arrival, then
  held, as frames ``twin/<link>`` for rviz's RobotModel with "TF Prefix" ``twin``. Before the
  first verdict the ghost stands where the robot is.

Everything is stamped in the twin's time (:class:`TwinClock`), like the twin's own TF. The
drawing itself is :mod:`reverse_digital_twin.core.prediction_drawing`; this only converts.
"""
from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import Point
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rdt_interfaces.msg import Divergence, Verdict
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.kinematics import Kinematics, default_position
from reverse_digital_twin.core.paths import resolve
from reverse_digital_twin.core.prediction_drawing import DivergenceDrawing, GhostPlayback
from reverse_digital_twin.core.prediction_drawing import Label, MEASURED_COLOUR
from reverse_digital_twin.core.prediction_drawing import PREDICTED_COLOUR, PredictedContact
from reverse_digital_twin.core.prediction_drawing import PredictedMotion, PredictedViolation
from reverse_digital_twin.core.prediction_drawing import PredictionDrawing, RGBA
from reverse_digital_twin.core.prediction_drawing import draw_divergence, draw_prediction
from reverse_digital_twin.core.robot_model import joint_transform, load_robot_model
from reverse_digital_twin.core.robot_model import quaternion_from_rpy
from reverse_digital_twin.core.scene import Scene, load_scene
from reverse_digital_twin.nodes.ros_common import transform_stamped
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS, SYSTEM_DEFAULT_QOS, TF_QOS
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, declare, seconds
from reverse_digital_twin.nodes.ros_common import to_time
from reverse_digital_twin.stack import GHOST_JOINT_STATES_TOPIC, GHOST_TF_PREFIX
from reverse_digital_twin.stack import PREDICTION_MARKERS_TOPIC, PREDICTION_VIEW_NODE, TwinNames

_NAMES = TwinNames()
#: Marker namespaces: one per kind of shape, so a display can hide some.
PATH_NS, CONTACT_NS, LIMIT_NS, VERDICT_NS, DIVERGENCE_NS = (
    'path', 'contacts', 'limits', 'verdict', 'divergence')
#: Sizes in m: path line width, contact and end spheres, text height.
LINE_WIDTH, SPHERE, TEXT = 0.008, 0.04, 0.04
#: s between two publications of a ghost standing still (rviz greys out frames unheard of for
#: long: its TF display's frame timeout is 15 s).
HOLD_PERIOD = 1.0
CONTACT_COLOUR: RGBA = (1.0, 0.2, 0.2, 0.9)
TEXT_COLOUR: RGBA = (1.0, 1.0, 1.0, 1.0)


class TwinClock:
    """The twin's time for the ghost's stamps, without following /clock.

    /clock comes every control cycle; following it (use_sim_time) cost this node 6 % of a core
    for nothing else. Verdicts carry the twin's time (their final state's stamp): the clock is
    set from each and advances at wall rate between them (the twin runs in real time); it
    never goes back, so TF listeners take every stamp.
    """

    def __init__(self) -> None:
        self._anchor = (0.0, time.monotonic())  # the twin starts with the graph
        self._last = 0.0

    def set(self, stamp: float) -> None:
        if stamp > 0.0:
            self._anchor = (stamp, time.monotonic())

    def now(self) -> float:
        stamp, at = self._anchor
        self._last = max(self._last, stamp + time.monotonic() - at)
        return self._last


def motion_from_msg(msg: Verdict) -> PredictedMotion:
    """rdt_interfaces/Verdict -> the core's PredictedMotion."""
    trajectory = msg.predicted_trajectory
    joints = tuple(trajectory.joint_names)
    points = trajectory.points
    times = np.array([seconds(p.time_from_start) for p in points], dtype=float)
    positions = np.array([list(p.positions) for p in points], dtype=float).reshape(
        len(points), len(joints))
    return PredictedMotion(
        safe=msg.safe, summary=msg.summary, error_code=int(msg.predicted_error_code),
        error_string=msg.predicted_error_string, joints=joints, times=times,
        positions=positions,
        collisions=tuple(PredictedContact(c.link, c.other, float(c.time),
                                          (c.position.x, c.position.y, c.position.z))
                         for c in msg.collisions),
        limit_violations=tuple(PredictedViolation(v.joint, v.kind, float(v.time),
                                                  float(v.value), float(v.limit))
                               for v in msg.limit_violations),
        duration=float(msg.duration), max_tracking_error=float(msg.max_tracking_error),
        max_tracking_error_joint=msg.max_tracking_error_joint)


def _colour(rgba: RGBA) -> ColorRGBA:
    return ColorRGBA(r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


class PredictionViewNode(Node):
    """Markers and a ghost robot from the bridge's verdicts and divergence reports."""

    def __init__(self, **kwargs) -> None:
        super().__init__(PREDICTION_VIEW_NODE, **kwargs)
        urdf = declare(self, 'robot_description_file', '',
                       "The twin's URDF (or .xacro), whose links the ghost and the tool path "
                       'are drawn with', read_only=True)
        scene_file = declare(self, 'scene_file', '',
                             "The twin's scene YAML: the world frame and where the robot stands "
                             '(empty: robot alone at the origin)', read_only=True)
        verdicts = declare(self, 'verdicts', _NAMES.verdicts,
                           'The bridge\'s verdicts (rdt_interfaces/Verdict): each is drawn, '
                           'replacing the previous drawing', read_only=True)
        divergence = declare(self, 'divergence', _NAMES.divergence,
                             'The bridge\'s divergence reports (rdt_interfaces/Divergence), '
                             'marked on the current drawing', read_only=True)
        joint_states = declare(self, 'joint_states', _NAMES.joint_states,
                               'Measured joint states of the active target, taken while someone '
                               'watches: joints a verdict does not move are drawn there, and the '
                               'ghost stands there before the first verdict', read_only=True)
        self.ghost_rate = float(declare(
            self, 'ghost_rate', 30.0, 'Rate of the ghost\'s joint states and TF while it plays '
            'a prediction back (Hz); standing still, they are refreshed once a second', True))
        tool = declare(self, 'tool_link', '',
                       "Link whose path is drawn ('' = the arm's tip link, found from the URDF)",
                       read_only=True)
        if not urdf:
            raise ConfigError('parameter robot_description_file is empty: set it to the twin\'s '
                              'URDF (the graph passes the sim node\'s)')
        if not (self.ghost_rate > 0 and np.isfinite(self.ghost_rate)):
            raise ConfigError(f'parameter ghost_rate must be a positive number of Hz, got '
                              f'{self.ghost_rate}')
        self.model = load_robot_model(resolve(urdf, 'robot_description_file'))
        self.scene = load_scene(resolve(scene_file, 'scene_file')) if scene_file else Scene()
        self.kinematics = Kinematics.in_scene(self.model, self.scene)
        if tool and tool not in self.model.links:
            raise ConfigError(f'parameter tool_link: {tool!r} is not a link of robot '
                              f'{self.model.name!r}; its links are {sorted(self.model.links)}')
        self.tool = tool or self.kinematics.tip_link
        self.current = {j.name: float(declare(
            self, f'initial_positions.{j.name}', default_position(j),
            f"Position of {j.name} at the twin's start (rad or m): where the ghost stands until "
            'joint states arrive', True)) for j in self.model.movable_joints}
        check_unknown_parameters(self)

        self.clock = TwinClock()
        self.drawing: PredictionDrawing | None = None
        self.divergences: list[DivergenceDrawing] = []
        self.playback: GhostPlayback | None = None
        self.started = 0.0  # monotonic s when the playback started
        self._markers_pub = self.create_publisher(MarkerArray, PREDICTION_MARKERS_TOPIC,
                                                  LATCHED_QOS)
        self._ghost_pub = self.create_publisher(JointState, GHOST_JOINT_STATES_TOPIC,
                                                SYSTEM_DEFAULT_QOS)
        self._tf_pub = self.create_publisher(TFMessage, 'tf', TF_QOS)
        self._tf_static_pub = self.create_publisher(TFMessage, 'tf_static', LATCHED_QOS)
        self.create_subscription(Verdict, verdicts, self._on_verdict, SYSTEM_DEFAULT_QOS)
        self.create_subscription(Divergence, divergence, self._on_divergence,
                                 SYSTEM_DEFAULT_QOS)
        self._joint_states = joint_states
        self._state_sub = None  # taken only while someone watches (see _check_demand)
        self._publish_static_tf()
        # The ghost moves in wall time, whatever the sim clock does (paused, lockstep): at
        # ghost_rate while a playback runs, and refreshed every HOLD_PERIOD otherwise (rviz
        # greys out TF frames unheard of for long)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._playing = self.create_timer(1.0 / self.ghost_rate, self._play, clock=steady)
        self._playing.cancel()
        self.create_timer(HOLD_PERIOD, self._refresh, clock=steady)
        self._check_demand()
        self.get_logger().info(
            f'drawing the predictions of {self.model.name} (tool {self.tool}) on '
            f'{self.resolve_topic_name(PREDICTION_MARKERS_TOPIC)}, ghost frames '
            f'{GHOST_TF_PREFIX}/* on {self.resolve_topic_name("tf")}')

    # --- inputs -----------------------------------------------------------------------------
    def _check_demand(self) -> None:
        """Take the measured joint states (100 Hz and more) only while the drawing or the
        ghost's joint states have a subscriber: unwatched, the joints a verdict does not move
        are drawn at the twin's initial positions, where the twin holds them."""
        wanted = self._markers_pub.get_subscription_count() > 0 \
            or self._ghost_pub.get_subscription_count() > 0
        if wanted and self._state_sub is None:
            self._state_sub = self.create_subscription(
                JointState, self._joint_states, self._on_joint_states, qos_profile_sensor_data)
        elif not wanted and self._state_sub is not None:
            self.destroy_subscription(self._state_sub)
            self._state_sub = None

    def _refresh(self) -> None:
        self._check_demand()
        self._publish_ghost()

    def _on_joint_states(self, msg: JointState) -> None:
        for name, value in zip(msg.name, msg.position):
            if name in self.current:
                self.current[name] = float(value)

    def _on_verdict(self, msg: Verdict) -> None:
        self.clock.set(seconds(msg.final_state.header.stamp))
        motion = motion_from_msg(msg)
        unknown = [j for j in motion.joints if j not in self.current]
        if unknown:
            self.get_logger().warning(f'a verdict names joints {unknown} that robot '
                                      f'{self.model.name!r} does not move; not drawn')
            return
        self.drawing = draw_prediction(self.kinematics, motion, self.current, self.tool)
        self.divergences = []
        self.playback = GhostPlayback.of(motion, self.current)
        self.started = time.monotonic()
        self._publish_markers()
        self._publish_ghost()
        self._playing.reset()

    def _on_divergence(self, msg: Divergence) -> None:
        names = list(msg.joint_names)
        if len(msg.measured) != len(names) or len(msg.predicted) != len(names) \
                or any(n not in self.current for n in names):
            self.get_logger().warning('a divergence report with unknown joints or mismatched '
                                      'lengths; not drawn')
            return
        self.divergences.append(draw_divergence(
            self.kinematics, msg.joint, float(msg.error), float(msg.threshold),
            float(msg.time_into_goal), names, list(msg.measured), list(msg.predicted),
            self.current, self.tool))
        self._publish_markers()

    # --- markers ----------------------------------------------------------------------------
    def _marker(self, ns: str, ident: int, kind: int, colour: RGBA) -> Marker:
        marker = Marker(ns=ns, id=ident, type=kind, action=Marker.ADD)
        marker.header.frame_id = self.scene.world_frame
        marker.header.stamp = to_time(self.clock.now())
        marker.pose.orientation.w = 1.0
        marker.color = _colour(colour)
        marker.frame_locked = False
        return marker

    def _sphere(self, ns: str, ident: int, position, colour: RGBA,
                size: float = SPHERE) -> Marker:
        marker = self._marker(ns, ident, Marker.SPHERE, colour)
        marker.pose.position = _point(position)
        marker.scale.x = marker.scale.y = marker.scale.z = size
        return marker

    def _text(self, ns: str, ident: int, label: Label, colour: RGBA = TEXT_COLOUR,
              height: float = TEXT) -> Marker:
        marker = self._marker(ns, ident, Marker.TEXT_VIEW_FACING, colour)
        marker.pose.position = _point(label.position)
        marker.scale.z = height
        marker.text = label.text
        return marker

    def markers(self) -> MarkerArray:
        """The whole drawing: DELETEALL first, so it replaces whatever was shown."""
        out = [Marker(action=Marker.DELETEALL)]
        drawing = self.drawing
        if drawing is not None:
            if len(drawing.path):
                line = self._marker(PATH_NS, 0, Marker.LINE_STRIP, drawing.colour)
                line.scale.x = LINE_WIDTH
                line.points = [_point(p) for p in drawing.path]
                out.append(line)
                out.append(self._sphere(PATH_NS, 1, drawing.path[-1], drawing.colour,
                                        SPHERE / 2))
            for i, label in enumerate(drawing.contacts):
                out.append(self._sphere(CONTACT_NS, 2 * i, label.position, CONTACT_COLOUR))
                out.append(self._text(CONTACT_NS, 2 * i + 1, Label(
                    label.position + np.array([0.0, 0.0, 1.5 * SPHERE]), label.text)))
            for i, label in enumerate(drawing.violations):
                out.append(self._text(LIMIT_NS, i, label, drawing.colour))
            out.append(self._text(VERDICT_NS, 0, drawing.verdict, drawing.colour, 1.25 * TEXT))
        for i, divergence in enumerate(self.divergences):
            out.append(self._sphere(DIVERGENCE_NS, 4 * i, divergence.measured, MEASURED_COLOUR))
            out.append(self._sphere(DIVERGENCE_NS, 4 * i + 1, divergence.predicted,
                                    PREDICTED_COLOUR))
            gap = self._marker(DIVERGENCE_NS, 4 * i + 2, Marker.LINE_LIST, MEASURED_COLOUR)
            gap.scale.x = LINE_WIDTH / 2
            gap.points = [_point(divergence.measured), _point(divergence.predicted)]
            out.append(gap)
            out.append(self._text(DIVERGENCE_NS, 4 * i + 3, divergence.label, MEASURED_COLOUR))
        return MarkerArray(markers=out)

    def _publish_markers(self) -> None:
        self._markers_pub.publish(self.markers())

    # --- the ghost --------------------------------------------------------------------------
    def _publish_static_tf(self) -> None:
        """world -> twin/<root> where the scene puts the robot, and every fixed joint."""
        stamp = to_time(self.clock.now())
        transforms = [transform_stamped(self.scene.world_frame, ghost_frame(self.model.root_link),
                                        self.scene.robot_position,
                                        quaternion_from_rpy(*self.scene.robot_orientation_rpy),
                                        stamp)]
        for joint in self.model.fixed_joints:
            translation, rotation = joint_transform(joint, 0.0)
            transforms.append(transform_stamped(ghost_frame(joint.parent),
                                                ghost_frame(joint.child), translation, rotation,
                                                stamp))
        self._tf_static_pub.publish(TFMessage(transforms=transforms))

    def ghost_positions(self) -> dict[str, float]:
        """Where the ghost is now: the playback, or the robot before any verdict."""
        if self.playback is None:
            return dict(self.current)
        return {**self.current, **self.playback.at(time.monotonic() - self.started)}

    def _play(self) -> None:
        self._publish_ghost()
        if self.playback is None or time.monotonic() - self.started > self.playback.duration:
            self._playing.cancel()  # holding the end: the HOLD_PERIOD refresh is enough

    def _publish_ghost(self) -> None:
        positions = self.ghost_positions()
        stamp = to_time(self.clock.now())
        joints = self.model.movable_joints
        state = JointState(name=[j.name for j in joints],
                           position=[positions[j.name] for j in joints])
        state.header.stamp = stamp
        self._ghost_pub.publish(state)
        transforms = []
        for joint in joints:
            translation, rotation = joint_transform(joint, positions[joint.name])
            transforms.append(transform_stamped(ghost_frame(joint.parent),
                                                ghost_frame(joint.child), translation, rotation,
                                                stamp))
        self._tf_pub.publish(TFMessage(transforms=transforms))


def ghost_frame(link: str) -> str:
    """The ghost's frame of a link: ``twin/<link>``."""
    return f'{GHOST_TF_PREFIX}/{link}'


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin prediction_view --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(PredictionViewNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
