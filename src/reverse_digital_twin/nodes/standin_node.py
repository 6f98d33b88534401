"""Stand-in robot: the "real world" on machines without an arm.

An independent driver process over its own PyBullet world whose physics and sensors differ from
the twin's the way a real arm's do: a payload, joint damping and friction, command latency,
sensor noise and calibration offsets (``perturbation.*`` parameters). It stamps with wall time
and publishes no /clock, like hardware. Its process also hosts its joint_trajectory_controller
(an emulated controller in its namespace), as ros2_control_node hosts the controllers: the
hardware loop reads, runs the controller's cycle and writes, with no topic in between that a
busy machine could delay. Together they expose exactly the driver interface; the bridge cannot
tell it from a real robot.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.perturbation import CommandDelay, Perturbation, SensorModel
from reverse_digital_twin.core.scenario import ScenarioRun, load_scenario
from reverse_digital_twin.nodes.emulated_controller_node import EmulatedController
from reverse_digital_twin.nodes.ros_common import declare, seconds
from reverse_digital_twin.nodes.sim_node import SimNode

PREFIX = 'perturbation.'
#: Parameters a person may change while the stand-in runs (to inject a fault).
LIVE = ('payload_mass', 'command_latency', 'position_noise', 'velocity_noise')


class StandinRobot(SimNode):
    """A sim node that plays the hardware: perturbed physics and sensors, wall-clock stamps."""

    PUBLISH_CLOCK = False
    # Its states are stamped on the paced timeline (stamp_time), so a physics thread that fell
    # behind (machine busy) runs on late without a timing error: its states arrive late,
    # stamped right, and its controller, called in the same loop, runs on the same timeline.
    # Skipping the lost time instead is a jump of the arm's clock that no real arm makes (the
    # controller's reference jumps ahead: the twin sees a divergence of speed x jump), left
    # for stalls of MAX_LAG, in jumps of at most MAX_SKIP, below the 0.5 s jump in the stamps
    # that the controller reads as a lost connection.
    MAX_LAG = 0.4
    MAX_SKIP = 0.3
    TAKES_CALIBRATION = False  # it is the hardware: calibration_file is refused

    def __init__(self, **kwargs) -> None:
        self._pending: list[Perturbation] = []
        self._stamped_origin: tuple[float, float] | None = None
        self._measured_at: dict[int, float] = {}  # state stamp (us) -> its sim time
        self._wall_minus_monotonic = 0.0
        self._lock = threading.Lock()
        self._controller: EmulatedController | None = None  # hosted: called in the loop
        super().__init__('standin_robot', **kwargs)
        self.add_on_set_parameters_callback(self._on_set_perturbation)

    def declare_extra_parameters(self) -> None:
        values = {}
        for name, default, text in (
                ('payload_mass', 0.0, 'Payload at the tip link (kg); changeable live'),
                ('payload_link', '', 'Link carrying the payload (empty: the tip link)'),
                ('command_latency', 0.0, 'Delay from the measured state a command answers to '
                 'the command\'s effect (s)'),
                ('position_noise', 0.0, 'Std of measured position noise (rad)'),
                ('velocity_noise', 0.0, 'Std of measured velocity noise (rad/s)'),
                ('seed', 0, 'Seed of the sensor noise')):
            values[PREFIX + name] = declare(self, PREFIX + name, default, text,
                                            read_only=name not in LIVE)
        for joint in self.joints:
            for group, text in (('joint_offsets', 'Calibration offset (rad): measured = true + '
                                 'offset'), ('joint_damping', 'Extra viscous damping (N*m*s/rad)'),
                                ('joint_friction', 'Coulomb friction (N*m)')):
                key = f'{PREFIX}{group}.{joint}'
                values[key] = declare(self, key, 0.0, f'{text} of {joint}', read_only=True)
        self.perturbation = Perturbation.from_parameters(values, PREFIX)
        self.perturbation.validate(self.joints)
        self._scenario_args = (
            declare(self, 'scenario.file', '',
                    "A scenario (config/scenarios/ name or YAML) whose draw this world plays: a "
                    'weak or locked joint, sensor dropouts, lost commands, an obstacle and an '
                    'emergency stop at their times after the start (its payload, friction, '
                    'damping, latency and noise go in perturbation.*: rdt up --scenario sets '
                    "both); '' = none", read_only=True),
            int(declare(self, 'scenario.seed', 0, 'Which draw of scenario.file', read_only=True)),
            float(declare(self, 'scenario.duration', 60.0,
                          "s over which the scenario's time_fraction values spread",
                          read_only=True)),
            [float(v) for v in declare(
                self, 'scenario.obstacle_position', [0.0],
                'World position (m) of an obstacle drawn "on the path" (the live world knows no '
                'path); [0.0] = such an obstacle is left out', read_only=True)])
        self.scenario_run: ScenarioRun | None = None
        self._run_events = 0

    def on_world_ready(self) -> None:
        self.perturbation.apply_to(self.world)
        self.scenario_run = self._scenario_run()
        self.sensors = SensorModel(self.perturbation, self.joints)
        self.delay = CommandDelay(self.perturbation.command_latency)
        p = self.perturbation
        self.get_logger().info(
            f'stand-in perturbations: payload {p.payload_mass:g} kg, latency '
            f'{p.command_latency * 1e3:g} ms, noise {p.position_noise:g} rad, offsets '
            f'{ {j: v for j, v in p.joint_offsets.items() if v} }')

    # --- hardware-like behaviour ----------------------------------------------------------------
    def stamp_time(self, sim_time: float) -> float:
        """Wall time at which the paced physics was in this state, not when the message left.

        A real arm's physics never falls behind: its driver stamps states with the hardware's
        clock, and a late process only delivers them late. The stand-in's physics thread does
        fall behind on a busy machine and catches up in a burst; stamping with the publish
        time would then put its states at the wrong times, a timing error no twin can model.
        """
        origin = self._pace_origin
        if origin is None or self.real_time_factor <= 0:
            return self.get_clock().now().nanoseconds * 1e-9
        if origin is not self._stamped_origin:  # wall - monotonic, read once per pace origin:
            # read every cycle, a preemption between the two reads would shift single stamps
            self._stamped_origin = origin
            self._wall_minus_monotonic = \
                self.get_clock().now().nanoseconds * 1e-9 - time.monotonic()
        wall0, sim0 = origin
        scheduled = wall0 + (sim_time - sim0) / self.real_time_factor  # monotonic clock
        return self._wall_minus_monotonic + scheduled

    def _scenario_run(self) -> ScenarioRun | None:
        """The scenario draw this world plays, without what perturbation.* already does."""
        name, seed, duration, position = self._scenario_args
        if not name:
            return None
        try:
            scenario = load_scenario(name)
            scenario.check_robot(self.model, self.joints, ['position'])
        except ConfigError as exc:
            raise ConfigError(f'parameter scenario.file: {exc}') from None
        draw = replace(scenario.draw(seed, self.joints, duration), payload_mass=None,
                       joint_friction=(), joint_damping=(), position_noise=None,
                       velocity_noise=None, command_latency=None)
        if draw.obstacle is not None and draw.obstacle.position is None and len(position) != 3:
            self.get_logger().warning(
                f'scenario {name} draw {seed}: its obstacle sits on a path, which a live world '
                'does not know: left out (set scenario.obstacle_position to place it)')
            draw = replace(draw, obstacle=None)
        self.get_logger().info(f'playing scenario {name}, draw {seed}: '
                               f'{draw.describe() or "nothing beyond perturbation.*"}')
        return ScenarioRun(draw, self.world, list(self.joints),
                           obstacle_position=tuple(position) if len(position) == 3 else None)

    def measure(self, positions: np.ndarray, velocities: np.ndarray):
        positions, velocities = self.sensors.measure(positions, velocities)
        if self.scenario_run is not None:
            positions, velocities = self.scenario_run.measure(self.world.time, positions,
                                                              velocities)
        return positions, velocities

    def host(self, controller: EmulatedController) -> None:
        """Run ``controller``'s cycle in this hardware loop, on every measured state (lockstep
        by construction: no waiting for a command over a topic)."""
        controller.run_in_process()
        self._controller = controller
        self.lockstep = False

    def deliver_state(self, msg: JointState) -> None:
        """Read -> update -> write: the hosted controller's cycle on this measurement, its
        command queued (:meth:`host` comes before :meth:`start`; commands on the physics
        topic are not the hardware's: only its own controller drives it)."""
        command = self._controller.control_cycle(msg)
        if command is not None:
            self._queue_command(command)

    def _queue_command(self, msg: JointState) -> None:
        """Queue a command to act ``command_latency`` after the state it answers was measured
        (its header.stamp echoes that state's): a real arm's latency runs from sensing to
        actuation. A command for an unknown state acts ``command_latency`` after now."""
        if self.scenario_run is not None:  # a lost command: the last one stays in force
            msg = self.scenario_run.command(self.world.time, msg)
        with self._lock:
            answered = self._measured_at.get(round(seconds(msg.header.stamp) * 1e6))
            self.delay.push(answered if answered is not None else self.world.time, msg)

    def stamp_state(self, sim_time: float) -> float:
        stamp = self.stamp_time(sim_time)
        with self._lock:
            self._measured_at[round(stamp * 1e6)] = sim_time
            while len(self._measured_at) > 200:  # 2 s at 100 Hz: older answers are lost
                self._measured_at.pop(next(iter(self._measured_at)))
        return stamp

    def step_cycle(self, now: float) -> None:
        """Physics step by step, each command applied at the step it falls due."""
        with self._lock:
            pending, self._pending = self._pending, []
        for perturbation in pending:  # live changes are applied by the physics thread
            perturbation.apply_to(self.world)
        for _ in range(self.steps_per_cycle):
            with self._lock:
                due = self.delay.pop_due(self.world.time)
            if due is not None:
                self.apply_joint_command(due)
            if self.scenario_run is not None:
                self.scenario_run.before_step(self.world.time, self.world)
                if len(self.scenario_run.reasons) > self._run_events:
                    self._run_events = len(self.scenario_run.reasons)
                    self.get_logger().warning(f'scenario: {self.scenario_run.reasons[-1]}')
            self.world.step(1)

    def _on_set_perturbation(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name.startswith(PREFIX)}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            updated = replace(self.perturbation, **{k[len(PREFIX):]: float(v)
                                                    for k, v in changes.items()})
            updated.validate(self.joints)
        except (ConfigError, TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            self.perturbation = updated
            self.sensors = SensorModel(updated, self.joints)
            self.delay.latency = updated.command_latency
            self._pending.append(updated)
        self.get_logger().warning(f'perturbation changed live: {changes}')
        return SetParametersResult(successful=True)


def standin_driver() -> list:
    """The stand-in and the joint_trajectory_controller its loop runs (one process)."""
    controller = EmulatedController()
    robot = StandinRobot()
    robot.host(controller)
    return [robot, controller]


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin standin_robot --ros-args ...

    Hosts the stand-in node and its controller node (see the module's docstring)."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(standin_driver, args)


if __name__ == '__main__':
    raise SystemExit(main())
