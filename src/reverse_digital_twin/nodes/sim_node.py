"""Sim node: owns the PyBullet world and plays the robot hardware for the emulated controller.

Steps physics at a fixed rate in its own thread (paced to real time, or free-running), and
every control period publishes the measured joint state on ``physics/joint_states`` and
applies the latest command from ``physics/joint_commands`` (the hardware interface of
ros2_control, over DDS). Also publishes /clock (sim time), TF of every link, and
robot_description, as a driver stack does. It only simulates: predictions and motions are the
planner's (nodes/planner_node.py), in processes of their own.
"""
from __future__ import annotations

import math
import sys
import threading
import time

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from reverse_digital_twin.core.calibration import Calibration
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.paths import resolve, resolve_mesh_uris
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.robot_model import joint_transform, load_robot_model
from reverse_digital_twin.core.robot_model import quaternion_from_rpy
from reverse_digital_twin.core.scene import Scene, load_scene
from reverse_digital_twin.nodes.side_executor import GIL_SWITCH_INTERVAL, SideExecutor
from reverse_digital_twin.nodes.ros_common import transform_stamped
from reverse_digital_twin.nodes.ros_common import CALIBRATION_PARAMETER, declare_calibration
from reverse_digital_twin.nodes.ros_common import declare_motor_settings
from reverse_digital_twin.nodes.ros_common import CLOCK_QOS, LATCHED_QOS, PHYSICS_QOS, TF_QOS
from reverse_digital_twin.nodes.ros_common import check_unknown_parameters, declare, seconds
from reverse_digital_twin.nodes.ros_common import declare_niceness
from reverse_digital_twin.nodes.ros_common import to_time
from reverse_digital_twin.ros_params import node_parameters


class SimNode(Node):
    """PyBullet twin of the robot, stepped at ``physics_rate`` in a dedicated thread.

    The physics thread starts in :meth:`start` (called once the node is configured), so a
    configuration error never leaves a thread stepping a half-built node.
    """

    PUBLISH_CLOCK = True  # the twin owns simulated time
    MAX_LAG = 0.5  # s behind the pace before the physics gives up catching up (see _pace)
    MAX_SKIP = math.inf  # s of lost time skipped at once
    #: The twin takes a calibration's hardware model (``calibration_file``); the stand-in,
    #: which plays the hardware itself, refuses one.
    TAKES_CALIBRATION = True

    def __init__(self, node_name: str = 'pybullet_sim', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        urdf = declare(self, 'robot_description_file', '',
                       'URDF (or .xacro) of the robot: absolute, relative to the working '
                       'directory or the package share, pybullet_data:<path> or '
                       'package://<pkg>/<path>', read_only=True)
        scene_file = declare(self, 'scene_file', '',
                             'Scene YAML placing the robot and objects (empty: robot alone)',
                             read_only=True)
        self.physics_rate = float(declare(self, 'physics_rate', 1000.0,
                                          'Physics steps per second of simulated time (Hz)',
                                          read_only=True))
        self.update_rate = float(declare(self, 'update_rate', 100.0,
                                         'Control cycles per second (Hz): the joint state is '
                                         'published and a command applied once per cycle',
                                         read_only=True))
        self.real_time_factor = float(declare(
            self, 'real_time_factor', 1.0,
            'Simulated seconds per wall second; 0 runs as fast as the machine allows'))
        self.lockstep = bool(declare(
            self, 'lockstep', False,
            'Wait every cycle for the controller\'s command for that cycle before stepping on '
            '(deterministic, and needed when free-running)'))
        self.lockstep_timeout = float(declare(
            self, 'lockstep_timeout', 1.0,
            'Wall seconds to wait for a command in lockstep before stepping on with the last one'))
        self.publish_clock = bool(declare(self, 'publish_clock', self.PUBLISH_CLOCK,
                                          'Publish simulated time on /clock', read_only=True))
        self.tf_publish_rate = float(declare(self, 'tf_publish_rate', 50.0,
                                             'Rate of /tf (Hz): at most this often per '
                                             'simulated second and per wall second'))
        motors = declare_motor_settings(self)
        for name, value in (('physics_rate', self.physics_rate),
                            ('update_rate', self.update_rate)):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f'parameter {name} must be a positive number of Hz, got {value}')
        if self.update_rate > self.physics_rate:
            raise ConfigError(f'parameter update_rate ({self.update_rate} Hz) exceeds '
                              f'physics_rate ({self.physics_rate} Hz)')
        if not urdf:
            raise ConfigError('parameter robot_description_file is empty: set it to the URDF '
                              'of the robot (see config/*.yaml)')
        urdf_path = resolve(urdf, 'robot_description_file')
        self.model = load_robot_model(urdf_path)
        self.scene = load_scene(resolve(scene_file, 'scene_file')) if scene_file else Scene()
        self.joints = [j.name for j in self.model.movable_joints]
        initial = {j: float(declare(self, f'initial_positions.{j}', 0.0,
                                    f'Position of {j} at start (rad or m)', True))
                   for j in self.joints}
        self.calibration = self._declare_calibration()
        self.declare_extra_parameters()
        declare_niceness(self)
        check_unknown_parameters(self)
        self.world = PhysicsWorld(self.model, str(urdf_path), self.scene, self.physics_rate,
                                  motors, initial)
        if self.calibration is not None:
            self._apply_calibration(self.calibration)
        self.on_world_ready()
        self.last_state = self.world.read_state(self.joints)
        self.steps_per_cycle = max(1, round(self.physics_rate / self.update_rate))

        self._state_pub = self.create_publisher(JointState, 'physics/joint_states', PHYSICS_QOS)
        self._clock_pub = self.create_publisher(Clock, '/clock', CLOCK_QOS) \
            if self.publish_clock else None
        self._tf_pub = self.create_publisher(TFMessage, 'tf', TF_QOS)
        self._tf_static_pub = self.create_publisher(TFMessage, 'tf_static', LATCHED_QOS)
        self._description_pub = self.create_publisher(String, 'robot_description', LATCHED_QOS)
        # The controller's command arrives every cycle: taken on a thread of its own, it does
        # not wait behind the node's services (see side_executor).
        self._commands = SideExecutor(self, 'commands')
        self._commands.subscribe(JointState, 'physics/joint_commands', self._on_command,
                                 PHYSICS_QOS)
        self._command: JointState | None = None
        self._command_stamp = -1.0
        self._command_ready = threading.Condition()
        self._running = True
        self._pace_origin: tuple[float, float] | None = None
        # Meshes as absolute file:// URIs: viewers (rviz, `rdt view`) find them wherever they
        # run, also pybullet_data's package:// names that name no ROS package
        self._description_pub.publish(String(data=resolve_mesh_uris(
            self.model.urdf_xml, urdf_path.parent)))
        self._publish_static_tf()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f'{self.model.name} from {urdf_path}: {len(self.joints)} joints, physics '
            f'{self.physics_rate:g} Hz, control {self.update_rate:g} Hz, real-time factor '
            f'{self.real_time_factor:g}{" (free-running)" if self.real_time_factor <= 0 else ""}'
            f'{", lockstep" if self.lockstep else ""}')
        self._thread = threading.Thread(target=self._run, name='physics', daemon=True)

    def start(self) -> None:
        """Start stepping the physics (the node is fully configured by now).

        The physics thread shares the GIL with the executors' threads: a shorter switch
        interval than CPython's 5 ms keeps a busy executor from delaying a control cycle.
        """
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        self._commands.start()
        self._thread.start()

    def _declare_calibration(self) -> Calibration | None:
        """The twin's calibration (``calibration_file``); the stand-in refuses the parameter."""
        if self.TAKES_CALIBRATION:
            return declare_calibration(
                self, self.joints, "its hardware model's payload, extra damping and friction "
                "go into the twin's world (its command latency and encoder offsets do not: "
                "they are the planner's to predict)")
        if CALIBRATION_PARAMETER in node_parameters(sys.argv, self.get_fully_qualified_name()):
            raise ConfigError(
                f'{self.get_fully_qualified_name()}: parameter {CALIBRATION_PARAMETER}: the '
                'stand-in plays the hardware and takes no calibration; give it to the twin '
                '(rdt up --calibration FILE, or calibration_file:=FILE)')
        return None

    def _apply_calibration(self, calibration: Calibration) -> None:
        hardware = calibration.hardware
        path = self.get_parameter(CALIBRATION_PARAMETER).value
        try:
            hardware.apply_to(self.world)
        except ConfigError as exc:  # e.g. a payload link this robot does not have
            raise ConfigError(f'parameter {CALIBRATION_PARAMETER}: calibration file {path}: '
                              f'{exc}') from None
        extra = {j: v for j, v in hardware.joint_damping.items() if v}
        friction = {j: v for j, v in hardware.joint_friction.items() if v}
        self.get_logger().info(
            f'calibration {path}: payload '
            f'{hardware.payload_mass:g} kg at {hardware.payload_link or "the tip link"}, extra '
            f'damping {extra or "none"}, friction {friction or "none"} in the twin\'s world')

    def declare_extra_parameters(self) -> None:
        """Subclasses declare their own parameters here (before unknown ones are refused)."""

    def on_world_ready(self) -> None:
        """Subclasses adjust the world here, before the physics thread starts."""

    # --- parameters -------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]):
        from rcl_interfaces.msg import SetParametersResult  # noqa: PLC0415
        for p in params:
            if p.name == 'real_time_factor':
                if not (isinstance(p.value, float) and p.value >= 0 and math.isfinite(p.value)):
                    return SetParametersResult(successful=False,
                                               reason='real_time_factor must be >= 0')
                self.real_time_factor = p.value
                self._pace_origin = None
            elif p.name == 'lockstep':
                self.lockstep = bool(p.value)
            elif p.name == 'tf_publish_rate':
                self.tf_publish_rate = float(p.value)
        return SetParametersResult(successful=True)

    # --- commands ---------------------------------------------------------------------------
    def _on_command(self, msg: JointState) -> None:
        with self._command_ready:
            self._command = msg
            self._command_stamp = seconds(msg.header.stamp)
            self._command_ready.notify_all()

    def next_command(self, sim_time: float) -> JointState | None:
        """The command to apply now: the latest received (the stand-in delays it)."""
        with self._command_ready:
            msg, self._command = self._command, None
        return msg

    def _apply_command(self, sim_time: float) -> None:
        msg = self.next_command(sim_time)
        if msg is not None:
            self.apply_joint_command(msg)

    def apply_joint_command(self, msg: JointState) -> None:
        """Drive the joints as a command says; a bad one is refused (logged) and the last held."""
        try:
            self.world.apply_command(
                list(msg.name),
                positions=list(msg.position) or None,
                velocities=list(msg.velocity) or None,
                efforts=list(msg.effort) or None)
        except ValueError as exc:
            self.get_logger().error(f'joint command refused, holding: {exc}',
                                    throttle_duration_sec=1.0)

    def step_cycle(self, now: float) -> None:
        """One control period: the latest command, then the physics steps (the stand-in
        applies its commands step by step, when each is due)."""
        self._apply_command(now)
        self.world.step(self.steps_per_cycle)

    # --- physics loop -----------------------------------------------------------------------
    def _run(self) -> None:
        tf_every = 0.0  # simulated s
        tf_wall_every = 0.0  # wall s: free-running, /tf would otherwise flood at 1000s of Hz
        try:
            while self._running and rclpy.ok(context=self.context):
                now = self.world.time
                stamp = self._publish_state(now)
                if self.tf_publish_rate > 0 and now >= tf_every \
                        and time.monotonic() >= tf_wall_every:
                    self._publish_tf(now)
                    tf_every = now + 1.0 / self.tf_publish_rate
                    tf_wall_every = time.monotonic() + 1.0 / self.tf_publish_rate
                if self.lockstep:
                    with self._command_ready:
                        self._command_ready.wait_for(
                            lambda: self._command_stamp >= stamp - 1e-9 or not self._running,
                            timeout=self.lockstep_timeout)
                self.step_cycle(now)
                self._pace()
        except Exception as exc:  # noqa: BLE001 - report and stop instead of dying silently
            if not self._running or not rclpy.ok(context=self.context):
                return  # shutting down: publishers are gone, nothing to report
            self.get_logger().fatal(f'physics loop stopped: {type(exc).__name__}: {exc}')
            raise

    def _pace(self) -> None:
        """Sleep so that simulated time advances at real_time_factor x wall time."""
        rtf = self.real_time_factor
        if rtf <= 0:
            return
        wall = time.monotonic()
        if self._pace_origin is None:
            self._pace_origin = (wall, self.world.time)
        wall0, sim0 = self._pace_origin
        delay = wall0 + (self.world.time - sim0) / rtf - wall
        if delay > 0:
            time.sleep(delay)
        elif delay < -self.MAX_LAG:  # fell far behind (machine busy): no catching up in a burst
            skipped = min(-delay, self.MAX_SKIP)
            self._pace_origin = (wall0 + skipped, sim0)
            self.get_logger().warning(
                f'physics fell {-delay:.3f} s behind real time (the machine is busy): '
                f'{skipped:.3f} s of it skipped', throttle_duration_sec=1.0)

    def stamp_time(self, sim_time: float) -> float:
        """The time stamped on states: simulated time here (the stand-in uses wall time)."""
        return sim_time

    def measure(self, positions, velocities):
        """What the sensors report; perfect in the twin (the stand-in adds noise/offsets)."""
        return positions, velocities

    def stamp_state(self, sim_time: float) -> float:
        """The stamp of the joint state published for this moment (the stand-in also notes
        which moment each stamp stood for, to time the commands answering it)."""
        return self.stamp_time(sim_time)

    def _publish_state(self, now: float) -> float:
        stamp_time = self.stamp_state(now)
        stamp = to_time(stamp_time)
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=to_time(now)))
        measured = self.world.read_state(self.joints)
        self.last_state = measured
        positions, velocities = self.measure(measured.positions, measured.velocities)
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = self.joints
        msg.position = positions.tolist()
        msg.velocity = velocities.tolist()
        msg.effort = measured.efforts.tolist()
        self.deliver_state(msg)
        return stamp_time

    def deliver_state(self, msg: JointState) -> None:
        """Hand the measured state to the controller: over ``physics/joint_states`` here."""
        self._state_pub.publish(msg)

    def _publish_tf(self, now: float) -> None:
        stamp = to_time(self.stamp_time(now))
        state = self.world.read_state(self.joints)
        transforms = []
        for joint, q in zip(self.model.movable_joints, state.positions):
            translation, rotation = joint_transform(joint, float(q))
            transforms.append(transform_stamped(joint.parent, joint.child, translation, rotation,
                                                stamp))
        self._tf_pub.publish(TFMessage(transforms=transforms))

    def _publish_static_tf(self) -> None:
        stamp = to_time(0.0)
        world = self.scene.world_frame
        transforms = [transform_stamped(world, self.model.root_link, self.scene.robot_position,
                                        quaternion_from_rpy(*self.scene.robot_orientation_rpy),
                                        stamp)]
        for obj in self.scene.objects:
            transforms.append(transform_stamped(world, obj.name, obj.position,
                                                quaternion_from_rpy(*obj.orientation_rpy), stamp))
        for joint in self.model.fixed_joints:
            translation, rotation = joint_transform(joint, 0.0)
            transforms.append(transform_stamped(joint.parent, joint.child, translation, rotation,
                                                stamp))
        self._tf_static_pub.publish(TFMessage(transforms=transforms))

    def stop(self) -> None:
        self._running = False
        with self._command_ready:
            self._command_ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._commands.stop()
        self.world.close()


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin sim_node --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
