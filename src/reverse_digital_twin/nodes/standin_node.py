"""Stand-in robot: the "real world" on machines without an arm.

An independent driver process over its own PyBullet world whose physics and sensors differ from
the twin's the way a real arm's do: a payload, joint damping and friction, command latency,
sensor noise and calibration offsets (``perturbation.*`` parameters). It stamps with wall time
and publishes no /clock, like hardware. Paired with an emulated controller in its namespace it
exposes exactly the driver interface; the bridge cannot tell it from a real robot.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import replace

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.perturbation import CommandDelay, Perturbation, SensorModel
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
    # stamped right, and each step in motion still waits for its command. At rest it may run
    # one control cycle ahead of the controller's answers (the command holds anyway; a goal's
    # first command, if late, starts the motion at most a cycle late), so it catches up
    # there. Skipping the lost time instead is a jump of the arm's clock that no real arm
    # makes (the controller's reference jumps ahead: the twin sees a divergence of speed x
    # jump), left for stalls of MAX_LAG, in jumps of at most MAX_SKIP, below the 0.5 s jump
    # in the stamps that the controller reads as a lost connection.
    MAX_LAG = 0.4
    MAX_SKIP = 0.3
    TAKES_CALIBRATION = False  # it is the hardware: calibration_file is refused

    def __init__(self, **kwargs) -> None:
        self._pending: list[Perturbation] = []
        self._stamped_origin: tuple[float, float] | None = None
        self._measured_at: dict[int, float] = {}  # state stamp (us) -> its sim time
        self._measured_times: list[float] = []  # the same sim times, in order
        self._answered = -1.0  # sim time of the newest measurement a command answered
        self._waited = -1.0  # ... and of the newest one waited for
        self._last_command_wall = -1e9  # monotonic s of the last command
        self._wall_minus_monotonic = 0.0
        self._last_applied: tuple = ()
        self._rest_cycles = 0  # commands in a row that held the arm still
        self._lock = threading.Lock()
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
        self.command_wait = float(declare(
            self, 'command_wait', 0.2,
            'Longest wait (wall s) for a late command answering a measurement, while the '
            'controller is sending: a real-time loop never moves on without it', read_only=True))
        self.perturbation = Perturbation.from_parameters(values, PREFIX)
        self.perturbation.validate(self.joints)

    def on_world_ready(self) -> None:
        self.perturbation.apply_to(self.world)
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

    def measure(self, positions: np.ndarray, velocities: np.ndarray):
        return self.sensors.measure(positions, velocities)

    def _on_command(self, msg: JointState) -> None:
        """Queue a command to act ``command_latency`` after the state it answers was measured
        (its header.stamp echoes that state's): a real arm's latency runs from sensing to
        actuation, whenever the network delivers. A command for an unknown state (or one
        arriving after its time) acts on arrival + latency, resp. at once."""
        with self._lock:
            answered = self._measured_at.get(round(seconds(msg.header.stamp) * 1e6))
            self.delay.push(answered if answered is not None else self.world.time, msg)
            if answered is not None:
                self._answered = max(self._answered, answered)
            self._last_command_wall = time.monotonic()
        super()._on_command(msg)

    def stamp_state(self, sim_time: float) -> float:
        stamp = self.stamp_time(sim_time)
        with self._lock:
            self._measured_at[round(stamp * 1e6)] = sim_time
            self._measured_times.append(sim_time)
            while len(self._measured_at) > 200:  # 2 s at 100 Hz: older answers are lost
                self._measured_at.pop(next(iter(self._measured_at)))
                del self._measured_times[0]
        return stamp

    def step_cycle(self, now: float) -> None:
        """Physics step by step, each command applied at the step it falls due.

        ros2_control runs read, update and write in one real-time loop, so a real arm never
        moves on without the command answering its last measurement. Over DDS, on a busy
        machine, that command can be late; the stand-in then waits for it (at most
        ``command_wait`` s, and only while the controller is sending), as the loop would have,
        instead of moving on with an older command and catching up in a burst.
        """
        super().next_command(now)  # the undelayed slot (lockstep's) is not used here
        with self._lock:
            pending, self._pending = self._pending, []
        for perturbation in pending:  # live changes are applied by the physics thread
            perturbation.apply_to(self.world)
        latency = self.delay.latency
        for _ in range(self.steps_per_cycle):
            t = self.world.time
            with self._lock:
                # the newest measurement whose answer is due by now
                k = bisect.bisect_right(self._measured_times, t + 1e-9 - latency)
                owed = self._measured_times[k - 1] if k else None
                ahead = self.steps_per_cycle / self.physics_rate if self.at_rest() else 0.0
                late = owed is not None and owed > self._answered + ahead + 1e-9 \
                    and owed > self._waited and time.monotonic() - self._last_command_wall < 0.5
            if late:
                self._waited = owed
                with self._command_ready:
                    answered = self._command_ready.wait_for(
                        lambda: self._answered + ahead >= owed - 1e-9 or not self._running,
                        self.command_wait)
                if not answered:
                    self.get_logger().warning(
                        f'no command within command_wait ({self.command_wait:g} s) for the '
                        f'state measured at {owed:.3f} s: moving on with the last one',
                        throttle_duration_sec=1.0)
            with self._lock:
                due = self.delay.pop_due(self.world.time)
            if due is not None:
                self.apply_joint_command(due)
                self._note_command(due)
            self.world.step(1)

    def at_rest(self) -> bool:
        """Holding still: the last two commands applied were the same, with no velocity (a
        step then need not wait for the command answering its measurement)."""
        return self._rest_cycles >= 2

    def _note_command(self, msg: JointState) -> None:
        key = (tuple(msg.position), tuple(msg.velocity), tuple(msg.effort))
        still = not any(abs(v) > 1e-9 for v in msg.velocity)
        self._rest_cycles = self._rest_cycles + 1 if still and key == self._last_applied else 0
        self._last_applied = key

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


def main(args: list[str] | None = None) -> int:
    """Entry point: ros2 run reverse_digital_twin standin_robot --ros-args ..."""
    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    return run_node(StandinRobot, args)


if __name__ == '__main__':
    raise SystemExit(main())
