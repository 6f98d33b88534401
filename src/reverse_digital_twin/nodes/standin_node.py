"""Stand-in robot: the "real world" on machines without an arm.

An independent driver process over its own PyBullet world whose physics and sensors differ from
the twin's the way a real arm's do: a payload, joint damping and friction, command latency,
sensor noise and calibration offsets (``perturbation.*`` parameters). It stamps with wall time
and publishes no /clock, like hardware. Paired with an emulated controller in its namespace it
exposes exactly the driver interface; the bridge cannot tell it from a real robot.
"""
from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.perturbation import CommandDelay, Perturbation, SensorModel
from reverse_digital_twin.nodes.ros_common import declare
from reverse_digital_twin.nodes.sim_node import SimNode

PREFIX = 'perturbation.'
#: Parameters a person may change while the stand-in runs (to inject a fault).
LIVE = ('payload_mass', 'command_latency', 'position_noise', 'velocity_noise')


class StandinRobot(SimNode):
    """A sim node that plays the hardware: perturbed physics and sensors, wall-clock stamps."""

    PUBLISH_CLOCK = False
    TAKES_CALIBRATION = False  # it is the hardware: calibration_file is refused

    def __init__(self, **kwargs) -> None:
        self._pending: list[Perturbation] = []
        self._lock = threading.Lock()
        super().__init__('standin_robot', **kwargs)
        self.add_on_set_parameters_callback(self._on_set_perturbation)

    def declare_extra_parameters(self) -> None:
        values = {}
        for name, default, text in (
                ('payload_mass', 0.0, 'Payload at the tip link (kg); changeable live'),
                ('payload_link', '', 'Link carrying the payload (empty: the tip link)'),
                ('command_latency', 0.0, 'Delay between a command and its effect (s)'),
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
        return self.get_clock().now().nanoseconds * 1e-9

    def measure(self, positions: np.ndarray, velocities: np.ndarray):
        return self.sensors.measure(positions, velocities)

    def _on_command(self, msg: JointState) -> None:
        with self._lock:
            self.delay.push(self.world.time, msg)
        super()._on_command(msg)

    def next_command(self, sim_time: float) -> JointState | None:
        super().next_command(sim_time)  # consume the undelayed one
        with self._lock:
            pending, self._pending = self._pending, []
            due = self.delay.pop_due(sim_time)
        for perturbation in pending:  # live changes are applied by the physics thread
            perturbation.apply_to(self.world)
        return due

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
