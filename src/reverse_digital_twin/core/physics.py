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
        self._friction: dict[str, float] = {}  # joint -> Coulomb friction (N*m|N), see step()
        self._payload_base: dict[str, tuple[float, tuple[float, float, float]]] = {}  # link ->
        # (mass, inertia diagonal) before any payload, for set_payload
        self._payloads: dict[str, float] = {}  # link -> payload mass (kg) set by set_payload
        self._damping: dict[str, float] = {}  # joint -> damping set by set_joint_damping
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
                vel = 0.0 if velocities is None else float(np.clip(velocities[k], -max_vel,
                                                                   max_vel))
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
        """Torques act for one step in PyBullet, so effort commands are re-applied every step.

        Joint friction (set_joint_friction) is added here too; without it this is unchanged.
        """
        if not self._torque_mode and not self._friction:
            return
        names = list(self._torque_mode)
        torques = [self._torque_mode[n] for n in names]
        if self.motors.gravity_compensation and names:
            gravity = self.gravity_torques()
            torques = [t + gravity[n] for t, n in zip(torques, names)]
        if self._friction:
            names, torques = self._add_friction_torques(names, torques)
        self._client.setJointMotorControlArray(
            self.robot_id, [self.joint_index[n] for n in names], pybullet.TORQUE_CONTROL,
            forces=torques)

    def gravity_torques(self) -> dict[str, float]:
        """Joint torques that hold the robot still against gravity (N*m), per movable joint."""
        q = [s[0] for s in self._client.getJointStates(
            self.robot_id, [self.joint_index[n] for n in self._movable])]
        zeros = [0.0] * len(q)
        tau = self._client.calculateInverseDynamics(self.robot_id, q, zeros, zeros)
        torques = dict(zip(self._movable, tau))
        if any(self._payloads.values()):  # PyBullet's dynamics model predates the payload
            torques = self._add_payload_gravity(torques)
        return torques

    def step(self, count: int = 1) -> None:
        """Advance the physics by ``count`` fixed steps."""
        for _ in range(count):
            self._apply_torques()
            self._client.stepSimulation()
            self.steps += 1

    # --- perturbed dynamics (the stand-in robot; see core.perturbation) ---------------------
    friction_velocity_scale = 0.01  # rad/s|m/s: friction = -f*tanh(v/scale), Coulomb above it

    @property
    def tip_link(self) -> str:
        """The link at the end of the arm, where a payload sits by default.

        Found from the model, not by name: from the root, follow the child link whose subtree
        holds the most movable joints; stop at a leaf or where two children tie (a gripper's
        fingers). rdt_arm6 gives its flange frame, the Panda its hand.
        """
        children: dict[str, list] = {}
        for joint in self.model.joints:
            children.setdefault(joint.parent, []).append(joint)
        depth: dict[str, int] = {}

        def movable_depth(link: str) -> int:
            if link not in depth:
                depth[link] = max((int(j.movable) + movable_depth(j.child)
                                   for j in children.get(link, ())), default=0)
            return depth[link]

        link = self.model.root_link
        while children.get(link):
            scored = [(int(j.movable) + movable_depth(j.child), j.child) for j in children[link]]
            best = max(score for score, _ in scored)
            leaders = [child for score, child in scored if score == best]
            if len(leaders) != 1:
                break
            link = leaders[0]
        return link

    def set_payload(self, mass: float, link: str | None = None) -> None:
        """Carry a point-like payload of ``mass`` kg at a link (default: :attr:`tip_link`).

        The payload sits at the link's centre of mass: the link's mass becomes its URDF mass +
        ``mass`` and its inertia is kept (a point mass at the centre adds none), so gravity,
        inertia and the motors' effort limits all feel it. This sets rather than adds: the last
        call per link wins, and ``set_payload(0)`` restores the link's mass and inertia exactly.

        Raises:
            ConfigError: an unknown link (the message lists the links), or a negative or
                non-finite mass.
        """
        link = self.tip_link if link is None else link
        try:
            mass = float(mass)
        except (TypeError, ValueError):
            raise ConfigError(f'payload mass must be a number of kg, got {mass!r}') from None
        if not (math.isfinite(mass) and mass >= 0.0):
            raise ConfigError(f'payload mass must be a finite number >= 0 kg, got {mass}')
        if link not in self.link_index:
            raise ConfigError(
                f'payload link {link!r} is not a link of robot {self.model.name!r} that can carry '
                f'a payload; its links are {sorted(self.link_index)} (the root link '
                f'{self.model.root_link!r} is fixed to the world)')
        c, index = self._client, self.link_index[link]
        if link not in self._payload_base:
            if mass == 0.0:
                return  # nothing to restore: leave PyBullet untouched
            if not self._payload_base:
                # PyBullet builds its model for inverse dynamics, mass matrix and Jacobians on
                # first use and never updates it. Build it now, with the URDF masses, so that
                # gravity_torques() knows exactly which payload to add.
                c.calculateMassMatrix(self.robot_id, self._dof_positions()[1])
            info = c.getDynamicsInfo(self.robot_id, index)
            self._payload_base[link] = (info[0], tuple(info[2]))
        base_mass, inertia = self._payload_base[link]
        # PyBullet recomputes the inertia from the collision shape when the mass changes, so the
        # original inertia is passed back explicitly.
        c.changeDynamics(self.robot_id, index, mass=base_mass + mass,
                         localInertiaDiagonal=inertia)
        self._payloads[link] = mass

    def payload(self, link: str | None = None) -> float:
        """The payload mass (kg) set at a link (default: :attr:`tip_link`); 0 if none."""
        return self._payloads.get(self.tip_link if link is None else link, 0.0)

    def _dof_positions(self) -> tuple[list[str], list[float]]:
        """Movable joints in PyBullet's degree-of-freedom order, and their positions."""
        order = sorted(self._movable, key=self.joint_index.__getitem__)
        q = [s[0] for s in self._client.getJointStates(
            self.robot_id, [self.joint_index[n] for n in order])]
        return order, q

    def _payload_jacobians(self, q: list[float]) -> list[tuple[float, np.ndarray]]:
        """(payload kg, (3, dofs) Jacobian of its link's centre of mass) per loaded link."""
        zeros = [0.0] * len(q)
        out = []
        for link, mass in self._payloads.items():
            if mass:
                linear, _ = self._client.calculateJacobian(
                    self.robot_id, self.link_index[link], [0.0, 0.0, 0.0], q, zeros, zeros)
                out.append((mass, np.asarray(linear, dtype=float)))
        return out

    def _add_payload_gravity(self, torques: dict[str, float]) -> dict[str, float]:
        """Gravity torques of the robot (from PyBullet's URDF-mass model) + of the payloads."""
        order, q = self._dof_positions()
        extra = np.zeros(len(order))
        for mass, jacobian in self._payload_jacobians(q):
            extra -= jacobian.T @ (mass * np.asarray(self.scene.gravity, dtype=float))
        return {n: torques[n] + float(extra[order.index(n)]) for n in torques}

    def set_joint_damping(self, joint: str, damping: float) -> None:
        """Viscous damping of a joint (N*m*s/rad | N*s/m); replaces the URDF's <dynamics>.

        PyBullet applies it explicitly, so in effort mode a joint goes unstable when damping
        exceeds about 2*I/dt (I its effective inertia): on rdt_arm6's wrist_3_joint at 1 kHz
        that is ~0.56 (the URDF has 0.5). Under position control any value is fine.

        Raises:
            ConfigError: not a movable joint, or a negative or non-finite value.
        """
        damping = self._joint_setting(joint, damping, 'damping', 'N*m*s/rad')
        self._client.changeDynamics(self.robot_id, self.joint_index[joint], jointDamping=damping)
        self._damping[joint] = damping

    def joint_damping(self, joint: str, urdf: bool = False) -> float:
        """A joint's viscous damping now, or (``urdf=True``) as the URDF gives it."""
        self._joint_setting(joint, 0.0, 'damping', 'N*m*s/rad')
        if not urdf and joint in self._damping:
            return self._damping[joint]
        # getJointInfo keeps the loaded value: PyBullet does not update it on changeDynamics
        return float(self._client.getJointInfo(self.robot_id, self.joint_index[joint])[6])

    def set_joint_friction(self, joint: str, friction: float) -> None:
        """Coulomb friction of a joint (N*m | N): a torque opposing its motion; 0 removes it.

        The joint's motor does the position control, so friction can't be a zero-velocity
        motor as usual in PyBullet. Instead step() adds an external joint torque: under position
        or velocity control -friction*tanh(v/s) (s = :attr:`friction_velocity_scale`), which the
        motor has to overcome within its effort limit; in effort mode true Coulomb friction
        (sticks below the breakaway effort, slides with constant friction above it, never
        chatters). A world with no friction set steps exactly as without this feature.

        Raises:
            ConfigError: not a movable joint, or a negative or non-finite value.
        """
        friction = self._joint_setting(joint, friction, 'friction', 'N*m')
        if friction == 0.0:
            self._friction.pop(joint, None)
        else:
            self._friction[joint] = friction

    def _joint_setting(self, joint: str, value: float, what: str, unit: str) -> float:
        if joint not in self._limits:
            raise ConfigError(f'joint {what}: {joint!r} is not a movable joint of robot '
                              f'{self.model.name!r}; its movable joints are {self._movable}')
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f'{what} of joint {joint!r} must be a number, got {value!r}') \
                from None
        if not (math.isfinite(value) and value >= 0.0):
            raise ConfigError(f'{what} of joint {joint!r} must be a finite number >= 0 {unit}, '
                              f'got {value}')
        return value

    def _add_friction_torques(self, names: list[str], torques: list[float]) \
            -> tuple[list[str], list[float]]:
        """names/torques with the friction torque of every frictional joint added.

        A joint held by its motor gets -friction*tanh(v/s): the motor constraint is solved after
        it and keeps the joint steady. A joint in effort mode moves freely, and there that
        torque would reverse a light joint's velocity every step (chatter), so it gets Coulomb
        friction as a velocity constraint: the torque that would stop the joint within this step
        (from its velocity, the commanded effort, gravity and PyBullet's explicit joint
        damping; the other joints taken as free), clipped to +-friction. That sticks below the
        breakaway effort and slides with constant friction above it.
        """
        c, body = self._client, self.robot_id
        names, torques = list(names), list(torques)
        joints = list(self._friction)
        velocities = [s[1] for s in c.getJointStates(body, [self.joint_index[n] for n in joints])]
        free = [n for n in joints if n in self._torque_mode]
        if free:
            order, q = self._dof_positions()
            mass_matrix = np.asarray(c.calculateMassMatrix(body, q))
            for mass, jacobian in self._payload_jacobians(q):  # PyBullet's model lacks them
                mass_matrix += mass * jacobian.T @ jacobian
            mobility = np.diag(np.linalg.inv(mass_matrix))
            held = self.gravity_torques()
            gravity = [held[n] for n in order]
            column = {n: k for k, n in enumerate(order)}
        for name, v in zip(joints, velocities):
            friction = self._friction[name]
            if name not in self._torque_mode:
                tau = -friction * math.tanh(v / self.friction_velocity_scale)
            else:
                k = column[name]
                per_step = self.dt * mobility[k]  # velocity change per N*m over one step
                damping = self.joint_damping(name)
                left = max(0.0, 1.0 - per_step * damping)  # velocity fraction damping leaves
                known = torques[names.index(name)] - gravity[k]
                tau = -min(friction, max(-friction, left * v / per_step + known))
            if name in self._torque_mode:
                torques[names.index(name)] += tau
            else:
                names.append(name)
                torques.append(tau)
        return names, torques

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
