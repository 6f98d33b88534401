"""The PyBullet world of the twin: one robot, its scene, fixed-rate stepping.

Each :class:`PhysicsWorld` owns its own PyBullet connection (DIRECT, headless), so several
worlds (the live twin and a forked prediction world) live in one process. Joints are addressed
by URDF name. Commands are checked before they reach PyBullet, because one NaN target poisons
a body for good, and velocity limits from the URDF are passed to the motors, because PyBullet
ignores them otherwise.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pybullet
from pybullet_utils import bullet_client

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.core.scene import Scene


@dataclass(frozen=True)
class MotorSettings:
    """How commands drive the simulated joints."""

    position_gain: float = 0.3  # PyBullet POSITION_CONTROL Kp (dimensionless, per step)
    velocity_gain: float = 1.0  # PyBullet POSITION_CONTROL Kd
    gravity_compensation: bool = False  # add gravity torques to effort commands (as Franka does)


@dataclass(frozen=True)
class MeasuredState:
    """Joint state as the sensors see it, arrays of shape (n_joints,) in the requested order."""

    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray


class PhysicsWorld:
    """A robot in its scene, stepped at a fixed rate.

    Args:
        model: the robot model (joint names and limits).
        urdf_path: the URDF file PyBullet loads (same robot as ``model``).
        scene: objects and robot placement; None for the robot alone without gravity changes.
        physics_rate: steps per second of simulated time (Hz).
        motors: how commands are applied.
        initial_positions: joint name -> position at start (others 0 clamped into limits).
    """

    def __init__(self, model: RobotModel, urdf_path: str, scene: Scene | None = None,
                 physics_rate: float = 1000.0, motors: MotorSettings = MotorSettings(),
                 initial_positions: Mapping[str, float] | None = None) -> None:
        if not (physics_rate > 0 and math.isfinite(physics_rate)):
            raise ConfigError(f'physics_rate must be a positive number of Hz, got {physics_rate}')
        self.model = model
        self.scene = scene or Scene()
        self.dt = 1.0 / physics_rate
        self.motors = motors
        self.steps = 0
        self._client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        c = self._client
        c.setTimeStep(self.dt)
        c.setGravity(*self.scene.gravity)
        self.object_ids: dict[str, int] = {}
        try:
            self.robot_id = c.loadURDF(
                str(urdf_path), self.scene.robot_position,
                c.getQuaternionFromEuler(self.scene.robot_orientation_rpy), useFixedBase=True,
                flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
        except pybullet.error as exc:
            self.close()
            raise ConfigError(f'PyBullet could not load the robot URDF {urdf_path}: {exc}') \
                from None
        for obj in self.scene.objects:
            try:
                self.object_ids[obj.name] = c.loadURDF(
                    str(obj.urdf), obj.position, c.getQuaternionFromEuler(obj.orientation_rpy),
                    useFixedBase=obj.fixed)
            except pybullet.error as exc:
                self.close()
                raise ConfigError(f'PyBullet could not load scene object {obj.name!r} from '
                                  f'{obj.urdf}: {exc}') from None
        self.joint_index: dict[str, int] = {}
        self.link_index: dict[str, int] = {}
        for i in range(c.getNumJoints(self.robot_id)):
            info = c.getJointInfo(self.robot_id, i)
            self.joint_index[info[1].decode()] = i
            self.link_index[info[12].decode()] = i
        self._movable = [j.name for j in model.movable_joints]
        missing = [n for n in self._movable if n not in self.joint_index]
        if missing:
            self.close()
            raise ConfigError(f'{urdf_path}: joints {missing} of the model are not in PyBullet')
        self._limits = {j.name: j.limits for j in model.movable_joints}
        self._torque_mode: dict[str, float] = {}  # joint -> commanded effort
        initial = dict(initial_positions or {})
        unknown = sorted(set(initial) - set(self._movable))
        if unknown:
            self.close()
            raise ConfigError(f'initial positions name unknown joints {unknown}; movable joints: '
                              f'{self._movable}')
        for name in self._movable:
            lim = self._limits[name]
            q = float(np.clip(initial.get(name, 0.0), lim.lower, lim.upper))
            c.resetJointState(self.robot_id, self.joint_index[name], q, 0.0)
        # Every movable joint holds its start position until commanded otherwise.
        self.apply_command(self._movable, positions=[
            c.getJointState(self.robot_id, self.joint_index[n])[0] for n in self._movable])

    # --- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, '_client', None) is not None:
            try:
                self._client.disconnect()
            except pybullet.error:
                pass
            self._client = None  # type: ignore[assignment]

    def __enter__(self) -> 'PhysicsWorld':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> bullet_client.BulletClient:
        return self._client

    @property
    def time(self) -> float:
        """Simulated time since start (s)."""
        return self.steps * self.dt

    @property
    def movable_joints(self) -> list[str]:
        return list(self._movable)

    # --- sensing ----------------------------------------------------------------------------
    def read_state(self, joints: Sequence[str]) -> MeasuredState:
        """Positions (rad|m), velocities (rad/s|m/s) and efforts (N*m|N) of the given joints."""
        states = self._client.getJointStates(self.robot_id, [self.joint_index[j] for j in joints])
        efforts = [self._torque_mode.get(j, s[3]) for j, s in zip(joints, states)]
        return MeasuredState(np.array([s[0] for s in states]), np.array([s[1] for s in states]),
                             np.array(efforts, dtype=float))

    # --- actuation --------------------------------------------------------------------------
    def apply_command(self, joints: Sequence[str], positions: Sequence[float] | None = None,
                      velocities: Sequence[float] | None = None,
                      efforts: Sequence[float] | None = None) -> None:
        """Drive joints by position (+ optional velocity feed-forward), velocity or effort.

        Raises:
            ValueError: a value is not finite, or an array has the wrong size; nothing is applied.
        """
        n = len(joints)
        for label, values in (('position', positions), ('velocity', velocities),
                              ('effort', efforts)):
            if values is None:
                continue
            if len(values) != n:
                raise ValueError(f'{label} command has {len(values)} values for {n} joints')
            bad = [j for j, v in zip(joints, values) if not math.isfinite(v)]
            if bad:
                raise ValueError(f'non-finite {label} command for joints {bad}; not applied')
        unknown = [j for j in joints if j not in self._limits]
        if unknown:
            raise ValueError(f'command names unknown joints {unknown}')
        c, body = self._client, self.robot_id
        for k, name in enumerate(joints):
            lim = self._limits[name]
            index = self.joint_index[name]
            force = lim.effort if math.isfinite(lim.effort) else 1e6
            max_vel = lim.velocity if math.isfinite(lim.velocity) else 100.0
            if positions is not None:
                self._torque_mode.pop(name, None)
                target = float(np.clip(positions[k], lim.lower, lim.upper))
                vel = 0.0 if velocities is None else float(np.clip(velocities[k], -max_vel, max_vel))
                c.setJointMotorControl2(body, index, pybullet.POSITION_CONTROL,
                                        targetPosition=target, targetVelocity=vel, force=force,
                                        maxVelocity=max_vel,
                                        positionGain=self.motors.position_gain,
                                        velocityGain=self.motors.velocity_gain)
            elif velocities is not None:
                self._torque_mode.pop(name, None)
                c.setJointMotorControl2(body, index, pybullet.VELOCITY_CONTROL,
                                        targetVelocity=float(np.clip(velocities[k], -max_vel,
                                                                     max_vel)),
                                        force=force)
            elif efforts is not None:
                if name not in self._torque_mode:  # release the built-in velocity motor
                    c.setJointMotorControl2(body, index, pybullet.VELOCITY_CONTROL, force=0.0)
                self._torque_mode[name] = float(np.clip(efforts[k], -force, force))

    def _apply_torques(self) -> None:
        """Torques act for one step in PyBullet, so effort commands are re-applied every step."""
        if not self._torque_mode:
            return
        names = list(self._torque_mode)
        torques = [self._torque_mode[n] for n in names]
        if self.motors.gravity_compensation:
            gravity = self.gravity_torques()
            torques = [t + gravity[n] for t, n in zip(torques, names)]
        self._client.setJointMotorControlArray(
            self.robot_id, [self.joint_index[n] for n in names], pybullet.TORQUE_CONTROL,
            forces=torques)

    def gravity_torques(self) -> dict[str, float]:
        """Joint torques that hold the robot still against gravity (N*m), per movable joint."""
        q = [s[0] for s in self._client.getJointStates(
            self.robot_id, [self.joint_index[n] for n in self._movable])]
        zeros = [0.0] * len(q)
        tau = self._client.calculateInverseDynamics(self.robot_id, q, zeros, zeros)
        return dict(zip(self._movable, tau))

    def step(self, count: int = 1) -> None:
        """Advance the physics by ``count`` fixed steps."""
        for _ in range(count):
            self._apply_torques()
            self._client.stepSimulation()
            self.steps += 1

    # --- geometry ---------------------------------------------------------------------------
    def contacts(self) -> list[tuple[str, str, tuple[float, float, float], float]]:
        """Robot contacts: (robot link, other body or link, world position (m), depth (m))."""
        out = []
        names = {v: k for k, v in self.object_ids.items()}
        links = {v: k for k, v in self.link_index.items()}
        links[-1] = self.model.root_link
        for cp in self._client.getContactPoints(bodyA=self.robot_id):
            other = names.get(cp[2], f'body {cp[2]}') if cp[2] != self.robot_id \
                else links.get(cp[4], str(cp[4]))
            out.append((links.get(cp[3], str(cp[3])), other, tuple(cp[5]), float(-cp[8])))
        return out

    def save_state(self) -> int:
        return self._client.saveState()

    def restore_state(self, state_id: int) -> None:
        self._client.restoreState(state_id)


def render_rgb(world: PhysicsWorld, width: int = 640, height: int = 480,
               target: tuple[float, float, float] | None = None, distance: float = 1.8,
               yaw: float = 50.0, pitch: float = -25.0) -> np.ndarray:
    """An RGB image (height, width, 3) uint8 of the world, from PyBullet's CPU renderer."""
    c = world.client
    if target is None:
        target = tuple(np.add(world.scene.robot_position, (0.0, 0.0, 0.3)))
    view = c.computeViewMatrixFromYawPitchRoll(target, distance, yaw, pitch, 0.0, 2)
    projection = c.computeProjectionMatrixFOV(50.0, width / height, 0.05, 20.0)
    _, _, rgba, _, _ = c.getCameraImage(width, height, view, projection,
                                        renderer=pybullet.ER_TINY_RENDERER)
    return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3]
