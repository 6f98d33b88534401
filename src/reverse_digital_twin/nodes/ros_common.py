"""What every node shares: QoS profiles, message <-> core conversions, parameter helpers."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.tolerances import JointToleranceRequest
from reverse_digital_twin.core.trajectory import JointSample
from reverse_digital_twin.stack import CALIBRATION_PARAMETER

if TYPE_CHECKING:
    from reverse_digital_twin.core.calibration import Calibration
    from reverse_digital_twin.core.physics import MotorSettings

#: robot_description and /tf_static: late joiners get the last message.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         history=HistoryPolicy.KEEP_LAST)
#: The physics <-> controller loop (a hardware interface): every cycle matters, keep it reliable.
PHYSICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
#: What ros2_control publishes with (SystemDefaultsQoS: reliable, volatile, depth 10).
SYSTEM_DEFAULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)
#: /tf as tf2_ros broadcasts it.
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
#: tf_static as tf2_ros listens to it: several nodes publish there (each world's sim node, its
#: camera node, the ghost's view), each latching its own message; a depth of 1 would keep one.
TF_STATIC_LISTENER_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: /clock as simulators publish it.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)


def seconds(stamp: Time | Duration) -> float:
    """builtin_interfaces Time or Duration -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def to_time(t: float) -> Time:
    sec = math.floor(t)
    return Time(sec=int(sec), nanosec=int(round((t - sec) * 1e9)) % 1_000_000_000)


def to_duration(t: float) -> Duration:
    sec = math.floor(t)
    return Duration(sec=int(sec), nanosec=int(round((t - sec) * 1e9)) % 1_000_000_000)


def goal_from_msg(msg: JointTrajectory) -> TrajectoryGoal:
    """trajectory_msgs/JointTrajectory -> core TrajectoryGoal (goal's own joint order)."""
    return TrajectoryGoal(
        joint_names=list(msg.joint_names),
        points=[GoalPoint(seconds(p.time_from_start), list(p.positions), list(p.velocities),
                          list(p.accelerations), list(p.effort)) for p in msg.points],
        stamp=seconds(msg.header.stamp))


def trajectory_from_goal(goal: TrajectoryGoal) -> JointTrajectory:
    """A core TrajectoryGoal as a trajectory_msgs/JointTrajectory (its stamp; 0: start now)."""
    msg = JointTrajectory(joint_names=list(goal.joint_names))
    if goal.stamp:
        msg.header.stamp = to_time(goal.stamp)
    msg.points = [JointTrajectoryPoint(
        positions=[float(v) for v in p.positions], velocities=[float(v) for v in p.velocities],
        accelerations=[float(v) for v in p.accelerations], effort=[float(v) for v in p.effort],
        time_from_start=to_duration(p.time_from_start)) for p in goal.points]
    return msg


def tolerance_requests(entries: Sequence[Any]) -> list[JointToleranceRequest]:
    """control_msgs/JointTolerance[] -> core requests."""
    return [JointToleranceRequest(e.name, e.position, e.velocity, e.acceleration) for e in entries]


def point_msg(sample: JointSample | None, time_from_start: float | None = None,
              effort: Sequence[float] | None = None, velocities: bool = True,
              accelerations: bool = True) -> JointTrajectoryPoint:
    """A core JointSample as a JointTrajectoryPoint (empty fields where not meaningful)."""
    point = JointTrajectoryPoint()
    if sample is not None:
        point.positions = sample.positions.tolist()
        if velocities:
            point.velocities = sample.velocities.tolist()
        if accelerations:
            point.accelerations = sample.accelerations.tolist()
    if effort is not None:
        point.effort = list(effort)
    if time_from_start is not None:
        point.time_from_start = to_duration(max(time_from_start, 0.0))
    return point


def declare(node: Node, name: str, default: Any, description: str,
            read_only: bool = False) -> Any:
    """Declare a parameter with a description and return its value."""
    return node.declare_parameter(
        name, default, ParameterDescriptor(description=description, read_only=read_only)).value


def declare_niceness(node: Node, default: int = 0) -> int:
    """The ``niceness`` parameter, applied by the node's main once its threads run; a node
    whose work may wait (rendering) defaults to a positive one."""
    return int(declare(
        node, 'niceness', int(default), 'Scheduling niceness of the node\'s process, -20..19 '
        '(below 0 needs root or CAP_SYS_NICE, else a warning): a hardware control loop runs at '
        'a raised priority, as ros2_control\'s controller manager runs its loop at '
        'thread_priority; rendering at a lowered one, so that it yields to the physics',
        read_only=True))


def apply_niceness(node: Node) -> None:
    """Give every thread of this process the node's ``niceness`` (threads started later
    inherit it from the thread that starts them). Not permitted: a warning, and normal
    priority, as ros2_control does when it may not use a real-time scheduler."""
    if not node.has_parameter('niceness'):
        return
    value = int(node.get_parameter('niceness').value)
    if value == 0:
        return
    try:
        threads = [int(t) for t in os.listdir('/proc/self/task')]
    except OSError:  # not Linux: the process's own niceness only
        threads = [0]
    try:
        for tid in threads:
            os.setpriority(os.PRIO_PROCESS, tid, value)
    except PermissionError:
        node.get_logger().warning(
            f'niceness {value} not permitted (needs root or CAP_SYS_NICE): running at normal '
            'priority, so a busy machine may delay this control loop')
        return
    except (OSError, ValueError) as exc:
        node.get_logger().warning(f'niceness {value} not applied: {exc}')
        return
    node.get_logger().info(f'running at niceness {value} ({len(threads)} threads)')


_IMPLICIT_PARAMETERS = ('use_sim_time', 'start_type_description_service', 'qos_overrides.')


def check_unknown_parameters(node: Node, argv: Sequence[str] | None = None) -> None:
    """Refuse parameters given to the node (YAML or -p) that it does not declare.

    rclpy silently ignores them, so a typo such as ``allow_partial_joint_goal`` would
    otherwise leave the default in force without a word. The names come from the node's
    command line (``argv``, default ``sys.argv``) read as rcl reads it, and the node's declared
    parameters from its public API. Also gives rclpy's own ``use_sim_time`` a description, so
    that every parameter of the node is described (``ros2 param describe``).
    """
    import sys  # noqa: PLC0415

    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.ros_params import node_parameters  # noqa: PLC0415
    sim_time = 'use_sim_time'
    if node.has_parameter(sim_time) and not node.describe_parameter(sim_time).description:
        node.set_descriptor(sim_time, ParameterDescriptor(
            type=ParameterType.PARAMETER_BOOL,
            description='Follow /clock (simulated time) instead of the wall clock'))
    given = node_parameters(sys.argv if argv is None else argv, node.get_fully_qualified_name())
    unknown = sorted(name for name in given
                     if not node.has_parameter(name)
                     and not name.startswith(_IMPLICIT_PARAMETERS))
    if unknown:
        import difflib  # noqa: PLC0415
        declared = node.list_parameters([], 0).names
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, declared, n=1)
            hints.append(f'{name} (did you mean {close[0]}?)' if close else name)
        raise ConfigError(f'{node.get_fully_qualified_name()}: unknown parameter(s): '
                          f'{", ".join(hints)}')


def declare_motor_settings(node: Node, whose: str = '') -> 'MotorSettings':
    """The PyBullet motor parameters, declared read-only: the sim node's own (``whose`` '') or
    the twin's as the planner mirrors them (``whose`` "The twin's ")."""
    from reverse_digital_twin.core.physics import MotorSettings  # noqa: PLC0415
    return MotorSettings(
        position_gain=float(declare(node, 'position_gain', 0.3,
                                    f'{whose}PyBullet POSITION_CONTROL position gain', True)),
        velocity_gain=float(declare(node, 'velocity_gain', 1.0,
                                    f'{whose}PyBullet POSITION_CONTROL velocity gain', True)),
        gravity_compensation=bool(declare(
            node, 'gravity_compensation', False,
            f'{whose}gravity torques added to effort commands (like a torque-controlled arm)'
            if whose else 'Add gravity torques to effort commands (like a torque-controlled arm)',
            True)))


def declare_calibration(node: Node, joints: Sequence[str] | None,
                        use: str) -> 'Calibration | None':
    """Declare ``calibration_file`` (read-only) and load the calibration it names.

    Args:
        node: the node declaring it.
        joints: the robot's movable joints (the file may name no others); None: unchecked
            (a node that does not know the robot).
        use: what this node takes from the calibration, for the parameter's description.

    Returns:
        The calibration, or None when the parameter is '' (the nominal twin).

    Raises:
        ConfigError: the file is missing, unreadable or invalid (the message names the
            parameter, the file and the key).
    """
    from reverse_digital_twin.core.calibration import Calibration  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    path = str(declare(node, CALIBRATION_PARAMETER, '',
                       'Calibration of the twin against the hardware, the YAML file `rdt '
                       f"calibrate` writes ('' = none, the nominal twin): {use}",
                       read_only=True))
    if not path:
        return None
    try:
        return Calibration.load(path, None if joints is None else list(joints))
    except ConfigError as exc:
        raise ConfigError(f'parameter {CALIBRATION_PARAMETER}: {exc}') from None


def transform_stamped(parent: str, child: str, translation: Sequence[float],
                      rotation: Sequence[float], stamp: Time) -> TransformStamped:
    """One TF edge: ``child`` in ``parent``, quaternion (x, y, z, w) as in geometry_msgs."""
    t = TransformStamped()
    t.header.stamp = stamp
    t.header.frame_id = parent
    t.child_frame_id = child
    (t.transform.translation.x, t.transform.translation.y,
     t.transform.translation.z) = (float(v) for v in translation)
    (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
     t.transform.rotation.w) = (float(v) for v in rotation)
    return t
