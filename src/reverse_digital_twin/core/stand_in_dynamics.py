"""Dynamics the stand-in robot has and the twin's model lacks: a payload and joint friction.

The "real" arm of tests and demos (see :mod:`reverse_digital_twin.core.perturbation`) carries
a payload at its tip and has Coulomb friction in its joints. PyBullet models neither the way a
real arm has them, so :class:`StandInDynamics` adds them to a
:class:`~reverse_digital_twin.core.physics.PhysicsWorld` through the world's generic
primitives (link mass, Jacobians, mass matrix, extra joint torques every step), never through
PyBullet itself. Viscous joint damping is PyBullet's own (``PhysicsWorld.set_joint_damping``).
A world without a payload or friction steps exactly as if this module did not exist.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.physics import PhysicsWorld


class StandInDynamics:
    """Payload and joint friction of one world; get it with :meth:`of`, never construct twice.

    Attributes:
        friction_velocity_scale: rad/s|m/s; under position/velocity control the friction
            torque is -f*tanh(v/scale), Coulomb above this speed.
    """

    friction_velocity_scale = 0.01

    def __init__(self, world: PhysicsWorld) -> None:
        self.world = world
        self._friction: dict[str, float] = {}  # joint -> Coulomb friction (N*m|N)
        self._payload_base: dict[str, tuple[float, tuple[float, float, float]]] = {}  # link ->
        # (mass, inertia diagonal) before any payload, to restore exactly
        self._payloads: dict[str, float] = {}  # link -> payload mass (kg)

    @classmethod
    def of(cls, world: PhysicsWorld) -> 'StandInDynamics':
        """The world's stand-in dynamics, added to it on first use (so settings accumulate in
        one place and a second call does not add the torques twice)."""
        for source in world.dynamics_sources:
            if isinstance(source, cls):
                return source
        source = cls(world)
        world.add_dynamics(source)
        return source

    # --- payload ----------------------------------------------------------------------------
    def set_payload(self, mass: float, link: str | None = None) -> None:
        """Carry a point-like payload of ``mass`` kg at a link (default: the world's tip link).

        The payload sits at the link's centre of mass: the link's mass becomes its URDF mass +
        ``mass`` and its inertia is kept (a point mass at the centre adds none), so gravity,
        inertia and the motors' effort limits all feel it. This sets rather than adds: the last
        call per link wins, and ``set_payload(0)`` restores the link's mass and inertia exactly.

        Raises:
            ConfigError: an unknown link (the message lists the links), or a negative or
                non-finite mass.
        """
        world = self.world
        link = world.tip_link if link is None else link
        try:
            mass = float(mass)
        except (TypeError, ValueError):
            raise ConfigError(f'payload mass must be a number of kg, got {mass!r}') from None
        if not (math.isfinite(mass) and mass >= 0.0):
            raise ConfigError(f'payload mass must be a finite number >= 0 kg, got {mass}')
        if link not in world.link_index:
            raise ConfigError(
                f'payload link {link!r} is not a link of robot {world.model.name!r} that can '
                f'carry a payload; its links are {sorted(world.link_index)} (the root link '
                f'{world.model.root_link!r} is fixed to the world)')
        if link not in self._payload_base:
            if mass == 0.0:
                return  # nothing to restore: leave the world untouched
            self._payload_base[link] = world.link_inertia(link)
        base_mass, inertia = self._payload_base[link]
        world.set_link_inertia(link, base_mass + mass, inertia)
        self._payloads[link] = mass

    def payload(self, link: str | None = None) -> float:
        """The payload mass (kg) set at a link (default: the tip link); 0 if none."""
        return self._payloads.get(self.world.tip_link if link is None else link, 0.0)

    def _payload_jacobians(self) -> list[tuple[float, np.ndarray]]:
        """(payload kg, (3, dofs) Jacobian of its link's centre of mass) per loaded link."""
        return [(mass, self.world.com_jacobian(link))
                for link, mass in self._payloads.items() if mass]

    def gravity_torques(self, world: PhysicsWorld) -> dict[str, float]:
        """The payloads' gravity torques (the world's model has the URDF masses only)."""
        if not any(self._payloads.values()):
            return {}
        extra = np.zeros(len(world.dof_joints))
        for mass, jacobian in self._payload_jacobians():
            extra -= jacobian.T @ (mass * np.asarray(world.scene.gravity, dtype=float))
        return {n: float(x) for n, x in zip(world.dof_joints, extra)}

    # --- friction ---------------------------------------------------------------------------
    def set_joint_friction(self, joint: str, friction: float) -> None:
        """Coulomb friction of a joint (N*m | N): a torque opposing its motion; 0 removes it.

        The joint's motor does the position control, so friction can't be a zero-velocity
        motor as usual in PyBullet. Instead every step adds an external joint torque: under
        position or velocity control -friction*tanh(v/s) (s = :attr:`friction_velocity_scale`),
        which the motor has to overcome within its effort limit; in effort mode true Coulomb
        friction (sticks below the breakaway effort, slides with constant friction above it,
        never chatters).

        Raises:
            ConfigError: not a movable joint, or a negative or non-finite value.
        """
        friction = self.world.check_joint_setting(joint, friction, 'friction', 'N*m')
        if friction == 0.0:
            self._friction.pop(joint, None)
        else:
            self._friction[joint] = friction

    def joint_friction(self, joint: str) -> float:
        """A joint's Coulomb friction (N*m | N); 0 if none."""
        return self._friction.get(joint, 0.0)

    def joint_torques(self, world: PhysicsWorld,
                      torques: Mapping[str, float]) -> dict[str, float]:
        """The friction torque of every frictional joint, given the torques applied so far.

        A joint held by its motor gets -friction*tanh(v/s): the motor constraint is solved after
        it and keeps the joint steady. A joint in effort mode moves freely, and there that
        torque would reverse a light joint's velocity every step (chatter), so it gets Coulomb
        friction as a velocity constraint: the torque that would stop the joint within this step
        (from its velocity, the commanded effort, gravity and PyBullet's explicit joint
        damping; the other joints taken as free), clipped to +-friction. That sticks below the
        breakaway effort and slides with constant friction above it.
        """
        if not self._friction:
            return {}
        joints = list(self._friction)
        velocities = world.joint_velocities(joints)
        effort_mode = world.commanded_efforts
        if any(n in effort_mode for n in joints):
            order = world.dof_joints
            mass_matrix = world.mass_matrix()
            for mass, jacobian in self._payload_jacobians():  # the world's model lacks them
                mass_matrix += mass * jacobian.T @ jacobian
            mobility = np.diag(np.linalg.inv(mass_matrix))
            held = world.gravity_torques()
            gravity = [held[n] for n in order]
            column = {n: k for k, n in enumerate(order)}
        out = {}
        for name, v in zip(joints, velocities):
            friction = self._friction[name]
            if name not in effort_mode:
                out[name] = -friction * math.tanh(v / self.friction_velocity_scale)
                continue
            k = column[name]
            per_step = world.dt * mobility[k]  # velocity change per N*m over one step
            left = max(0.0, 1.0 - per_step * world.joint_damping(name))  # what damping leaves
            known = torques[name] - gravity[k]
            out[name] = -min(friction, max(-friction, left * v / per_step + known))
        return out
