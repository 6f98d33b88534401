"""The PyBullet world of the twin: one robot, its scene, fixed-rate stepping.

The only module that calls PyBullet: state save/restore and reset, kinematics, contacts,
self-collision filters and the dynamics primitives other core modules build on (e.g.
core.stand_in_dynamics) are methods here, so another physics backend can take its place.

Each :class:`PhysicsWorld` owns its own PyBullet connection (DIRECT, headless), so several
worlds (the live twin and a forked prediction world) live in one process. Joints are addressed
by URDF name. Commands are checked before they reach PyBullet, because one NaN target poisons
a body for good, and velocity limits from the URDF are passed to the motors, because PyBullet
ignores them otherwise.
"""
from __future__ import annotations

import math
import signal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pybullet
from pybullet_utils import bullet_client

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.kinematics import tip_link
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


class DynamicsSource(Protocol):
    """Dynamics PyBullet's model lacks (a payload, joint friction), added by another module.

    A world asks each source it was given (:meth:`PhysicsWorld.add_dynamics`) every step for
    extra joint torques, and for the extra gravity torques when it compensates gravity.
    """

    def gravity_torques(self, world: 'PhysicsWorld') -> dict[str, float]:
        """Joint -> torque (N*m|N) holding what the source adds against gravity."""

    def joint_torques(self, world: 'PhysicsWorld',
                      torques: Mapping[str, float]) -> dict[str, float]:
        """Joint -> torque to add this step, given the torques applied so far (effort mode)."""


@dataclass(frozen=True, eq=False)
class DistanceQuery:
    """Which distances :meth:`PhysicsWorld.first_closer` checks, and how close is too close;
    made by :meth:`PhysicsWorld.distance_query`, for that world only (it holds its indices)."""

    link_pairs: tuple[tuple[str, str], ...]  # robot link pairs
    link_distance: float  # m: a link pair closer than this is too close
    objects: tuple[str, ...]  # scene objects
    object_distance: tuple[float, ...]  # m, per object
    object_links: tuple[frozenset[str], ...]  # robot links measured against each object
    _links: tuple[int, ...] = ()  # PyBullet link indices of every link measured
    _pair_rows: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # per pair: rows of _links
    _object_ids: tuple[int, ...] = ()
    _object_boxes: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()  # world AABBs
    _object_rows: tuple[tuple[int, ...], ...] = ()  # per object: rows of _links checked on it
    _link_names: Mapping[int, str] = field(default_factory=dict)


class PhysicsWorld:
    """A robot in its scene, stepped at a fixed rate.

    Args:
        model: the robot model (joint names and limits).
        urdf_path: the URDF file PyBullet loads (same robot as ``model``).
        scene: objects and robot placement; None for the robot alone without gravity changes.
        physics_rate: steps per second of simulated time (Hz).
        motors: how commands are applied.
        initial_positions: joint name -> position at start (others 0 clamped into limits).
        self_collision: robot links collide with each other (PyBullet's
            URDF_USE_SELF_COLLISION); pairs that should not are set with
            :meth:`ignore_link_pair`. Off in the live twin: it changes no dynamics there.
    """

    def __init__(self, model: RobotModel, urdf_path: str, scene: Scene | None = None,
                 physics_rate: float = 1000.0, motors: MotorSettings = MotorSettings(),
                 initial_positions: Mapping[str, float] | None = None,
                 self_collision: bool = False) -> None:
        if not (physics_rate > 0 and math.isfinite(physics_rate)):
            raise ConfigError(f'physics_rate must be a positive number of Hz, got {physics_rate}')
        self.model = model
        self.scene = scene or Scene()
        self.dt = 1.0 / physics_rate
        self.motors = motors
        self.steps = 0
        # Ctrl-C inside BulletClient's constructor leaves it half made, and its __del__ then
        # prints a traceback at exit: the signal waits until it is built.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        c = self._client
        # Hot paths call the pybullet module with the client id: BulletClient builds a
        # functools.partial on every attribute access.
        self._cid: int = c._client
        c.setTimeStep(self.dt)
        c.setGravity(*self.scene.gravity)
        self.object_ids: dict[str, int] = {}
        try:
            self.robot_id = c.loadURDF(
                str(urdf_path), self.scene.robot_position,
                c.getQuaternionFromEuler(self.scene.robot_orientation_rpy), useFixedBase=True,
                flags=pybullet.URDF_USE_INERTIA_FROM_FILE | (
                    pybullet.URDF_USE_SELF_COLLISION if self_collision else 0))
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
        # joint -> (PyBullet index, lower, upper, motor force, motor velocity cap)
        self._motor = {n: (self.joint_index[n], lim.lower, lim.upper,
                           lim.effort if math.isfinite(lim.effort) else 1e6,
                           lim.velocity if math.isfinite(lim.velocity) else 100.0)
                       for n, lim in self._limits.items()}
        self._torque_mode: dict[str, float] = {}  # joint -> commanded effort
        self._sources: list[DynamicsSource] = []  # see add_dynamics
        self._model_built = False  # PyBullet's dynamics model exists (see set_link_inertia)
        self._damping: dict[str, float] = {}  # joint -> damping set by set_joint_damping
        self._dofs = sorted(self._movable, key=self.joint_index.__getitem__)
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
        """The PyBullet connection, for tests and this module only: everything else goes
        through the methods here, so another physics backend can take this module's place
        (tests/unit/test_core_encapsulation.py checks it)."""
        return self._client

    @property
    def time(self) -> float:
        """Simulated time since start (s)."""
        return self.steps * self.dt

    @property
    def movable_joints(self) -> list[str]:
        return list(self._movable)

    @property
    def dof_joints(self) -> list[str]:
        """Movable joints in PyBullet's degree-of-freedom order (IK results, Jacobian columns)."""
        return list(self._dofs)

    # --- sensing ----------------------------------------------------------------------------
    def read_state(self, joints: Sequence[str]) -> MeasuredState:
        """Positions (rad|m), velocities (rad/s|m/s) and efforts (N*m|N) of the given joints."""
        if not joints:
            return MeasuredState(np.zeros(0), np.zeros(0), np.zeros(0))
        index = self.joint_index
        positions, velocities, _, efforts = zip(*pybullet.getJointStates(
            self.robot_id, [index[j] for j in joints], physicsClientId=self._cid))
        if self._torque_mode:
            efforts = [self._torque_mode.get(j, e) for j, e in zip(joints, efforts)]
        return MeasuredState(np.array(positions), np.array(velocities),
                             np.array(efforts, dtype=float))

    def joint_positions(self, joints: Sequence[str]) -> list[float]:
        """Positions (rad|m) of the given joints, as a plain list (no arrays to build)."""
        return [s[0] for s in pybullet.getJointStates(
            self.robot_id, [self.joint_index[j] for j in joints], physicsClientId=self._cid)]

    def joint_velocities(self, joints: Sequence[str]) -> list[float]:
        """Velocities (rad/s|m/s) of the given joints."""
        return [s[1] for s in pybullet.getJointStates(
            self.robot_id, [self.joint_index[j] for j in joints], physicsClientId=self._cid)]

    def efforts(self, indices: Sequence[int], torque_joints: Sequence[str] = ()) -> list[float]:
        """Efforts over the last step of joints given by PyBullet index (:attr:`joint_index`).

        The cheap read for a per-step loop: joints named in ``torque_joints`` (effort mode)
        report their commanded effort, like :meth:`read_state`; the others the motor's torque.
        """
        states = pybullet.getJointStates(self.robot_id, indices, physicsClientId=self._cid)
        if not torque_joints:
            return [s[3] for s in states]
        mode = self._torque_mode
        return [mode.get(j, s[3]) for j, s in zip(torque_joints, states)]

    @property
    def commanded_efforts(self) -> dict[str, float]:
        """Joint -> effort (N*m|N) of the joints driven by effort commands now."""
        return dict(self._torque_mode)

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
        # This runs for every joint of every control cycle: constants per joint are looked
        # up once (_motor), bounds are min/max rather than np.clip, pybullet is called directly.
        body, cid, motor = self.robot_id, self._cid, pybullet.setJointMotorControl2
        kp, kd = self.motors.position_gain, self.motors.velocity_gain
        for k, name in enumerate(joints):
            index, lower, upper, force, max_vel = self._motor[name]
            if positions is not None:
                self._torque_mode.pop(name, None)
                target = min(max(float(positions[k]), lower), upper)
                vel = 0.0 if velocities is None else min(max(float(velocities[k]), -max_vel),
                                                         max_vel)
                motor(body, index, pybullet.POSITION_CONTROL, targetPosition=target,
                      targetVelocity=vel, force=force, maxVelocity=max_vel, positionGain=kp,
                      velocityGain=kd, physicsClientId=cid)
            elif velocities is not None:
                self._torque_mode.pop(name, None)
                motor(body, index, pybullet.VELOCITY_CONTROL,
                      targetVelocity=min(max(float(velocities[k]), -max_vel), max_vel),
                      force=force, physicsClientId=cid)
            elif efforts is not None:
                if name not in self._torque_mode:  # release the built-in velocity motor
                    motor(body, index, pybullet.VELOCITY_CONTROL, force=0.0, physicsClientId=cid)
                self._torque_mode[name] = min(max(float(efforts[k]), -force), force)

    def _apply_torques(self) -> None:
        """Torques act for one step in PyBullet, so effort commands are re-applied every step.

        The torques of dynamics sources (add_dynamics) are added here too; a world without
        any steps exactly as before they existed.
        """
        if not self._torque_mode and not self._sources:
            return
        torques = dict(self._torque_mode)
        if self.motors.gravity_compensation and torques:
            gravity = self.gravity_torques()
            torques = {n: t + gravity[n] for n, t in torques.items()}
        for source in self._sources:
            for name, tau in source.joint_torques(self, torques).items():
                torques[name] = torques[name] + tau if name in torques else tau
        if torques:
            pybullet.setJointMotorControlArray(
                self.robot_id, [self.joint_index[n] for n in torques], pybullet.TORQUE_CONTROL,
                forces=list(torques.values()), physicsClientId=self._cid)

    def step(self, count: int = 1) -> None:
        """Advance the physics by ``count`` fixed steps."""
        step, cid = pybullet.stepSimulation, self._cid
        if not self._torque_mode and not self._sources:  # nothing to re-apply per step
            for _ in range(count):
                step(physicsClientId=cid)
            self.steps += count
            return
        for _ in range(count):
            self._apply_torques()
            step(physicsClientId=cid)
            self.steps += 1

    def step_bare(self, count: int) -> None:
        """``count`` calls of PyBullet's stepSimulation and nothing else: the speed limit that
        benchmarks compare against. The world's clock (:attr:`steps`) does not advance."""
        step, cid = pybullet.stepSimulation, self._cid
        for _ in range(count):
            step(physicsClientId=cid)

    # --- dynamics primitives (for models PyBullet lacks, e.g. core.stand_in_dynamics) --------
    def add_dynamics(self, source: DynamicsSource) -> None:
        """Let ``source`` add joint torques every step and gravity torques to
        :meth:`gravity_torques` (a payload, friction); see :class:`DynamicsSource`."""
        if source not in self._sources:
            self._sources.append(source)

    @property
    def dynamics_sources(self) -> tuple[DynamicsSource, ...]:
        return tuple(self._sources)

    def gravity_torques(self) -> dict[str, float]:
        """Joint torques that hold the robot still against gravity (N*m), per movable joint.

        PyBullet's inverse dynamics (URDF masses, see :meth:`set_link_inertia`) + what the
        dynamics sources add.
        """
        q = self.joint_positions(self._movable)
        zeros = [0.0] * len(q)
        self._model_built = True
        tau = self._client.calculateInverseDynamics(self.robot_id, q, zeros, zeros)
        torques = dict(zip(self._movable, tau))
        for source in self._sources:
            extra = source.gravity_torques(self)
            if extra:
                torques = {n: t + extra.get(n, 0.0) for n, t in torques.items()}
        return torques

    def link_inertia(self, link: str) -> tuple[float, tuple[float, float, float]]:
        """(mass kg, inertia diagonal kg*m^2) of a link as PyBullet simulates it now."""
        info = self._client.getDynamicsInfo(self.robot_id, self._link(link))
        return float(info[0]), tuple(info[2])

    def set_link_inertia(self, link: str, mass: float,
                         inertia: tuple[float, float, float]) -> None:
        """Give a link another mass, keeping the given inertia diagonal.

        PyBullet builds its model for inverse dynamics, mass matrix and Jacobians on first use
        and never updates it; it is built here before the first change, with the URDF masses, so
        that :meth:`gravity_torques` and :meth:`mass_matrix` stay those of the URDF and a
        dynamics source knows exactly what to add. PyBullet recomputes the inertia from the
        collision shape when the mass changes, hence the explicit inertia.
        """
        index = self._link(link)
        if not self._model_built:
            self.mass_matrix()
        self._client.changeDynamics(self.robot_id, index, mass=float(mass),
                                    localInertiaDiagonal=inertia)

    def mass_matrix(self) -> np.ndarray:
        """(dofs, dofs) joint-space mass matrix at the current positions (URDF masses), in
        :attr:`dof_joints` order."""
        self._model_built = True
        return np.asarray(self._client.calculateMassMatrix(
            self.robot_id, self.joint_positions(self._dofs)))

    def com_jacobian(self, link: str) -> np.ndarray:
        """(3, dofs) linear Jacobian of a link's centre of mass at the current positions, in
        :attr:`dof_joints` order."""
        self._model_built = True
        q = self.joint_positions(self._dofs)
        zeros = [0.0] * len(q)
        linear, _ = self._client.calculateJacobian(self.robot_id, self._link(link),
                                                   [0.0, 0.0, 0.0], q, zeros, zeros)
        return np.asarray(linear, dtype=float)

    def _link(self, link: str) -> int:
        if link not in self.link_index:
            raise ConfigError(
                f'{link!r} is not a link of robot {self.model.name!r} with dynamics of its own; '
                f'its links are {sorted(self.link_index)} (the root link '
                f'{self.model.root_link!r} is fixed to the world)')
        return self.link_index[link]

    def set_joint_damping(self, joint: str, damping: float) -> None:
        """Viscous damping of a joint (N*m*s/rad | N*s/m); replaces the URDF's <dynamics>.

        PyBullet applies it explicitly, so in effort mode a joint goes unstable when damping
        exceeds about 2*I/dt (I its effective inertia): on rdt_arm6's wrist_3_joint at 1 kHz
        that is ~0.56 (the URDF has 0.5). Under position control any value is fine.

        Raises:
            ConfigError: not a movable joint, or a negative or non-finite value.
        """
        damping = self.check_joint_setting(joint, damping, 'damping', 'N*m*s/rad')
        self._client.changeDynamics(self.robot_id, self.joint_index[joint], jointDamping=damping)
        self._damping[joint] = damping

    def joint_damping(self, joint: str, urdf: bool = False) -> float:
        """A joint's viscous damping now, or (``urdf=True``) as the URDF gives it."""
        self.check_joint_setting(joint, 0.0, 'damping', 'N*m*s/rad')
        if not urdf and joint in self._damping:
            return self._damping[joint]
        # getJointInfo keeps the loaded value: PyBullet does not update it on changeDynamics
        return float(self._client.getJointInfo(self.robot_id, self.joint_index[joint])[6])

    def check_joint_setting(self, joint: str, value: float, what: str, unit: str) -> float:
        """``value`` as a float, for a per-joint setting of a movable joint.

        Raises:
            ConfigError: not a movable joint, or a negative or non-finite value.
        """
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

    @property
    def tip_link(self) -> str:
        """The link at the end of the arm, where a payload sits by default
        (:func:`core.kinematics.tip_link`: found from the model, not by name)."""
        return tip_link(self.model)

    # --- geometry ---------------------------------------------------------------------------
    def contacts(self) -> list[tuple[str, str, tuple[float, float, float], float]]:
        """Robot contacts: (robot link, other body or link, world position (m), depth (m)).

        From the last step's collision detection. A self-contact is reported once per contact
        point, from the link PyBullet puts first.
        """
        points = pybullet.getContactPoints(bodyA=self.robot_id, physicsClientId=self._cid)
        if not points:
            return []
        names = {v: k for k, v in self.object_ids.items()}
        links = {v: k for k, v in self.link_index.items()}
        links[-1] = self.model.root_link
        out = []
        for cp in points:
            other = names.get(cp[2], f'body {cp[2]}') if cp[2] != self.robot_id \
                else links.get(cp[4], str(cp[4]))
            out.append((links.get(cp[3], str(cp[3])), other, tuple(cp[5]), float(-cp[8])))
        return out

    def link_pairs_within(self, distance: float) -> list[tuple[str, str, float]]:
        """Robot link pairs (root link included) closer than ``distance`` (m) now, with their
        distance (negative: penetrating), whether or not self-collision is on."""
        c, body = self._client, self.robot_id
        links = [(-1, self.model.root_link)] + sorted(
            ((i, n) for n, i in self.link_index.items()))
        out = []
        for k, (i, a) in enumerate(links):
            for j, b in links[k + 1:]:
                points = c.getClosestPoints(body, body, distance, linkIndexA=i, linkIndexB=j)
                if points:
                    out.append((a, b, min(float(p[8]) for p in points)))
        return out

    def distance_query(self, link_pairs: Iterable[tuple[str, str]], link_distance: float,
                       object_links: Mapping[str, Iterable[str]],
                       object_distance: Mapping[str, float]) -> DistanceQuery:
        """Prepare :meth:`first_closer` / :meth:`query_distances`: names resolved to PyBullet
        indices once, because a planner asks the same question for thousands of states. The
        scene objects' bounding boxes are taken now: make a new query after moving them.

        Args:
            link_pairs: robot link pairs (root link by name too) measured against each other.
            link_distance: a robot link pair closer than this (m) is too close.
            object_links: scene object -> the robot links measured against it.
            object_distance: scene object -> how close (m) a robot link may come to it.

        Raises:
            ValueError: an unknown link or scene object, or a non-finite distance.
        """
        c = self._client
        index = dict(self.link_index)
        index[self.model.root_link] = -1

        def link(name: str) -> int:
            if name not in index:
                raise ValueError(f'{name!r} is not a link of robot {self.model.name!r}; its '
                                 f'links are {sorted(index)}')
            return index[name]

        pairs = tuple((str(a), str(b)) for a, b in link_pairs)
        unknown = sorted(set(object_links) - set(self.object_ids))
        if unknown:
            raise ValueError(f'{unknown} are not scene objects; the scene has '
                             f'{sorted(self.object_ids)}')
        objects = tuple(object_links)
        distances = [float(link_distance)] + [float(object_distance[o]) for o in objects]
        if not all(math.isfinite(d) for d in distances):
            raise ValueError(f'distances must be finite (m), got {distances}')
        links = sorted({link(n) for pair in pairs for n in pair}
                       | {link(n) for o in objects for n in object_links[o]})
        row = {i: k for k, i in enumerate(links)}
        boxes = []
        for o in objects:  # the union of the object's links' boxes
            body = self.object_ids[o]
            corners = np.array([c.getAABB(body, i) for i in range(-1, c.getNumJoints(body))])
            boxes.append((tuple(corners[:, 0].min(axis=0).tolist()),
                          tuple(corners[:, 1].max(axis=0).tolist())))
        return DistanceQuery(
            link_pairs=pairs, link_distance=distances[0], objects=objects,
            object_distance=tuple(distances[1:]),
            object_links=tuple(frozenset(object_links[o]) for o in objects),
            _links=tuple(links),
            _pair_rows=(tuple(row[link(a)] for a, _ in pairs),
                        tuple(row[link(b)] for _, b in pairs)),
            _object_ids=tuple(self.object_ids[o] for o in objects),
            _object_boxes=tuple(boxes),
            _object_rows=tuple(tuple(sorted(row[link(n)] for n in object_links[o]))
                               for o in objects),
            _link_names={i: n for n, i in index.items()})

    def first_closer(self, query: DistanceQuery) -> tuple[str, str, float] | None:
        """The first pair of ``query`` closer than its distance now: (robot link, other robot
        link or scene object, distance m, negative when penetrating), or None when all are
        clear. Bounding boxes first: only pairs whose boxes come that close are measured.
        (Plain Python loops: for the dozens of boxes of an arm they beat numpy's call costs.)"""
        cid, body, closest = self._cid, self.robot_id, pybullet.getClosestPoints
        aabb, links = pybullet.getAABB, query._links
        boxes = [aabb(body, i, physicsClientId=cid) for i in links]
        for obj, ((ox0, oy0, oz0), (ox1, oy1, oz1)), rows, limit, name in zip(
                query._object_ids, query._object_boxes, query._object_rows,
                query.object_distance, query.objects):
            for k in rows:
                (x0, y0, z0), (x1, y1, z1) = boxes[k]
                if x0 - ox1 < limit and ox0 - x1 < limit and y0 - oy1 < limit \
                        and oy0 - y1 < limit and z0 - oz1 < limit and oz0 - z1 < limit:
                    points = closest(body, obj, limit, linkIndexA=links[k],
                                     physicsClientId=cid)
                    if points:
                        d = min(p[8] for p in points)
                        if d < limit:
                            return query._link_names[links[k]], name, float(d)
        limit = query.link_distance
        for ka, kb, pair in zip(*query._pair_rows, query.link_pairs):
            (ax0, ay0, az0), (ax1, ay1, az1) = boxes[ka]
            (bx0, by0, bz0), (bx1, by1, bz1) = boxes[kb]
            if ax0 - bx1 < limit and bx0 - ax1 < limit and ay0 - by1 < limit \
                    and by0 - ay1 < limit and az0 - bz1 < limit and bz0 - az1 < limit:
                points = closest(body, body, limit, linkIndexA=links[ka], linkIndexB=links[kb],
                                 physicsClientId=cid)
                if points:
                    d = min(p[8] for p in points)
                    if d < limit:
                        return pair[0], pair[1], float(d)
        return None

    def query_distances(self, query: DistanceQuery,
                        max_distance: float) -> list[tuple[str, str, float]]:
        """Every pair of ``query`` within ``max_distance`` (m) now, closest point per pair:
        (robot link, other robot link or scene object, distance m), for reports and tests
        (every pair measured: slower than :meth:`first_closer`)."""
        cid, body, closest = self._cid, self.robot_id, pybullet.getClosestPoints
        links, names = query._links, query._link_names
        out = []
        for obj, rows, name in zip(query._object_ids, query._object_rows, query.objects):
            for k in rows:
                points = closest(body, obj, max_distance, linkIndexA=links[k],
                                 physicsClientId=cid)
                if points:
                    out.append((names[links[k]], name, min(float(p[8]) for p in points)))
        for (a, b), ra, rb in zip(query.link_pairs, *query._pair_rows):
            points = closest(body, body, max_distance, linkIndexA=links[ra],
                             linkIndexB=links[rb], physicsClientId=cid)
            if points:
                out.append((a, b, min(float(p[8]) for p in points)))
        return out

    def collision_links(self) -> list[str]:
        """The robot's links (root link included) that have a collision shape: the only ones
        anything can touch."""
        c, body = self._client, self.robot_id
        links = [(-1, self.model.root_link)] + sorted(
            ((i, n) for n, i in self.link_index.items()))
        return [n for i, n in links if c.getCollisionShapeData(body, i)]

    def place_joints(self, joints: Sequence[str], positions: Sequence[float]) -> None:
        """Put joints at positions, at rest, in one PyBullet call: :meth:`reset_joints` for a
        planner that does it for every state it checks (five times faster on six joints)."""
        index = self.joint_index
        pybullet.resetJointStatesMultiDof(
            self.robot_id, [index[j] for j in joints], [[float(q)] for q in positions],
            targetVelocities=[[0.0]] * len(joints), physicsClientId=self._cid)

    def ignore_link_pair(self, link_a: str, link_b: str) -> None:
        """Never collide these two robot links (root link by name too) with each other."""
        index = dict(self.link_index)
        index[self.model.root_link] = -1
        self._client.setCollisionFilterPair(self.robot_id, self.robot_id, index[link_a],
                                            index[link_b], 0)

    def link_pose(self, link: str) -> tuple[np.ndarray, np.ndarray]:
        """World pose of a link frame now: position (3,) m, quaternion (x, y, z, w)."""
        if link not in self.link_index:
            raise ValueError(f'link {link!r} is not a link of robot {self.model.name!r}; its '
                             f'links are {sorted(self.link_index)}')
        state = self._client.getLinkState(self.robot_id, self.link_index[link],
                                          computeForwardKinematics=True)
        return np.asarray(state[4], dtype=float), np.asarray(state[5], dtype=float)

    def forward_kinematics(self, link: str,
                           positions: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """World pose of a link frame with the named joints at ``positions`` (the others where
        they are); the world is left as it was."""
        with self.preserved_state():
            self.reset_joints(positions)
            return self.link_pose(link)

    def inverse_kinematics(self, link: str, position: Sequence[float],
                           orientation: Sequence[float] | None, lower: Sequence[float],
                           upper: Sequence[float], ranges: Sequence[float],
                           rest: Sequence[float], damping: Sequence[float],
                           max_iterations: int = 20,
                           residual: float = 1e-4) -> dict[str, float]:
        """One call of PyBullet's damped least-squares IK from the current positions.

        The per-joint sequences are in :attr:`dof_joints` order; so is nothing else: the
        result maps joint name -> position. The robot is not moved.
        """
        kwargs = dict(lowerLimits=list(lower), upperLimits=list(upper),
                      jointRanges=list(ranges), restPoses=list(rest),
                      jointDamping=list(damping), maxNumIterations=int(max_iterations),
                      residualThreshold=float(residual))
        target = [float(x) for x in position]
        if orientation is None:
            result = self._client.calculateInverseKinematics(
                self.robot_id, self.link_index[link], target, **kwargs)
        else:
            result = self._client.calculateInverseKinematics(
                self.robot_id, self.link_index[link], target, [float(x) for x in orientation],
                **kwargs)
        return dict(zip(self._dofs, result))

    def link_frame_pose(self, link: str) -> tuple[np.ndarray, np.ndarray]:
        """World pose of any robot link frame, the root link included (:meth:`link_pose`
        covers the links below it): position (3,) m, quaternion (x, y, z, w)."""
        if link == self.model.root_link:
            return (np.asarray(self.scene.robot_position, dtype=float),
                    np.asarray(self._client.getQuaternionFromEuler(
                        self.scene.robot_orientation_rpy), dtype=float))
        return self.link_pose(link)

    def link_com_pose(self, link: str) -> tuple[np.ndarray, np.ndarray]:
        """World pose of a link's centre of mass (inertial) frame now, where a payload sits."""
        state = self._client.getLinkState(self.robot_id, self._link(link),
                                          computeForwardKinematics=True)
        return np.asarray(state[0], dtype=float), np.asarray(state[1], dtype=float)

    # --- rendering --------------------------------------------------------------------------
    def render(self, view: Sequence[float], projection: Sequence[float], width: int,
               height: int) -> tuple[np.ndarray, np.ndarray]:
        """The world through a camera, by PyBullet's CPU renderer (TinyRenderer: headless,
        no GPU, deterministic).

        Args:
            view, projection: OpenGL matrices, 16 floats column-major
                (:func:`reverse_digital_twin.core.camera.view_matrix`, ``projection_matrix``).
            width, height: image size (pixels).

        Returns:
            RGB (height, width, 3) uint8, row 0 at the top, and the OpenGL depth buffer
            (height, width) float32 (0 near plane .. 1 far plane; see
            ``core.camera.depth_from_buffer``). Principal point: :data:`RENDER_PRINCIPAL_OFFSET`.
        """
        _, _, rgba, depth, _ = pybullet.getCameraImage(
            int(width), int(height), [float(v) for v in view], [float(v) for v in projection],
            renderer=pybullet.ER_TINY_RENDERER, flags=pybullet.ER_NO_SEGMENTATION_MASK,
            physicsClientId=self._cid)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3]
        return rgb, np.asarray(depth, dtype=np.float32).reshape(height, width)

    def render_bare(self, view: Sequence[float], projection: Sequence[float], width: int,
                    height: int) -> None:
        """One call of PyBullet's getCameraImage (CPU renderer, no segmentation mask, as
        :meth:`render`) and nothing else: the speed limit that benchmarks compare the camera
        pipeline against."""
        pybullet.getCameraImage(int(width), int(height), view, projection,
                                renderer=pybullet.ER_TINY_RENDERER,
                                flags=pybullet.ER_NO_SEGMENTATION_MASK, physicsClientId=self._cid)

    def add_visual_box(self, half_extents: Sequence[float],
                       rgba: Sequence[float] = (0.9, 0.75, 0.1, 1.0)) -> int:
        """A box that is only seen (no mass, no collision: it changes no dynamics), e.g. to
        show a payload in rendered images. Returns its body id for :meth:`place_body`."""
        shape = self._client.createVisualShape(pybullet.GEOM_BOX,
                                               halfExtents=[float(v) for v in half_extents],
                                               rgbaColor=[float(v) for v in rgba])
        return int(self._client.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=-1,
                                                baseVisualShapeIndex=shape))

    def place_body(self, body: int, position: Sequence[float],
                   quaternion: Sequence[float] = (0.0, 0.0, 0.0, 1.0)) -> None:
        """Put a body (e.g. from :meth:`add_visual_box`) at a world pose."""
        self._client.resetBasePositionAndOrientation(body, [float(v) for v in position],
                                                     [float(v) for v in quaternion])

    def remove_body(self, body: int) -> None:
        self._client.removeBody(body)

    # --- state ------------------------------------------------------------------------------
    def reset_joints(self, positions: Mapping[str, float],
                     velocities: Mapping[str, float] | None = None) -> None:
        """Put joints at positions (and velocities, default 0) at once, without dynamics.

        Joints only in ``velocities`` keep their position. Motor targets are untouched.
        """
        velocities = velocities or {}
        reset, cid, body = pybullet.resetJointState, self._cid, self.robot_id
        for name in dict.fromkeys([*positions, *velocities]):
            index = self.joint_index[name]
            q = float(positions[name]) if name in positions else pybullet.getJointState(
                body, index, physicsClientId=cid)[0]
            reset(body, index, q, float(velocities.get(name, 0.0)), physicsClientId=cid)

    def save_state(self) -> int:
        """Save the whole world in PyBullet's memory (not motor targets nor effort commands)."""
        return self._client.saveState()

    def restore_state(self, state_id: int) -> None:
        self._client.restoreState(state_id)

    def remove_state(self, state_id: int) -> None:
        """Free a saved state (old PyBullets lack removeState: then it stays, a small leak)."""
        try:
            self._client.removeState(state_id)
        except (AttributeError, pybullet.error):
            pass

    @contextmanager
    def preserved_state(self) -> Iterator[None]:
        """Move the robot freely inside; afterwards the world is as before (the saved state
        is restored and freed, also on an exception)."""
        saved = self.save_state()
        try:
            yield
        finally:
            self.restore_state(saved)
            self.remove_state(saved)

    # --- scenarios (core.scenario): weak and locked joints, obstacles that appear ------------
    def set_joint_max_effort(self, joint: str, effort: float | None) -> None:
        """Cap a joint's motor at ``effort`` (N*m | N) instead of its URDF effort limit: a weak
        joint (None: the URDF's limit again). Acts from the joint's next command.

        Raises:
            ConfigError: not a movable joint, or a negative or non-finite effort.
        """
        index, lower, upper, force, max_vel = self._motor[self._movable_joint(joint)]
        if effort is None:
            force = self._motor_defaults(joint)[3]
        else:
            force = self.check_joint_setting(joint, effort, 'maximum effort', 'N*m')
        self._motor[joint] = (index, lower, upper, force, max_vel)

    def lock_joint(self, joint: str, position: float | None = None) -> None:
        """Brake a joint at ``position`` (default: where it is now), e.g. a seized gear or an
        emergency stop's brakes: from now on position and velocity commands hold it there with
        a motor of :data:`LOCKED_JOINT_EFFORT`, whatever they ask. Effort commands still drive
        it (a torque-controlled joint has no such motor). :meth:`unlock_joint` releases it.

        Raises:
            ConfigError: not a movable joint, or a non-finite position.
        """
        joint = self._movable_joint(joint)
        q = self.joint_positions([joint])[0] if position is None else position
        try:
            q = float(q)
        except (TypeError, ValueError):
            q = math.nan
        if not math.isfinite(q):
            raise ConfigError(f'lock position of joint {joint!r} must be a finite number, got '
                              f'{position!r}')
        self._motor[joint] = (self.joint_index[joint], q, q, LOCKED_JOINT_EFFORT, 1e-9)
        self.apply_command([joint], positions=[q])

    def unlock_joint(self, joint: str) -> None:
        """Release a lock (:meth:`lock_joint`): the joint's motor has its URDF limits again
        (and a weak joint's cap is gone too). Acts from the joint's next command."""
        self._motor[self._movable_joint(joint)] = self._motor_defaults(joint)

    def _motor_defaults(self, joint: str) -> tuple[int, float, float, float, float]:
        """(PyBullet index, lower, upper, motor force, motor velocity cap) from the URDF."""
        lim = self._limits[joint]
        return (self.joint_index[joint], lim.lower, lim.upper,
                lim.effort if math.isfinite(lim.effort) else 1e6,
                lim.velocity if math.isfinite(lim.velocity) else 100.0)

    def _movable_joint(self, joint: str) -> str:
        if joint not in self._limits:
            raise ConfigError(f'{joint!r} is not a movable joint of robot {self.model.name!r}; '
                              f'its movable joints are {self._movable}')
        return joint

    def add_obstacle(self, name: str, shape: str, size: Sequence[float],
                     position: Sequence[float]) -> None:
        """A fixed obstacle appearing now: a 'box' (``size``: edge lengths x, y, z, m) or a
        'sphere' (``size``: [diameter]) centred at ``position`` (world frame, m). Contacts name
        it ``name``, like a scene object; :meth:`remove_obstacle` takes it away (before the
        next :meth:`restore_state` of a state saved without it).

        PyBullet cannot free a collision shape a body has used, so the world keeps one shape
        per shape and size and reuses it (a few kB per size never seen before).

        Raises:
            ConfigError: a name the scene already has, an unknown shape, a size <= 0.
        """
        if name in self.object_ids:
            raise ConfigError(f'obstacle name {name!r} is taken by a scene object; the scene '
                              f'has {sorted(self.object_ids)}')
        sizes = tuple(float(v) for v in size)
        if not sizes or not all(math.isfinite(v) and v > 0.0 for v in sizes):
            raise ConfigError(f'obstacle {name!r}: sizes must be > 0 m, got {list(size)}')
        if not ((shape == 'box' and len(sizes) == 3) or (shape == 'sphere' and len(sizes) == 1)):
            raise ConfigError(f"obstacle {name!r}: expected shape 'box' with 3 sizes or "
                              f"'sphere' with 1, got {shape!r} with {len(sizes)}")
        c = self._client
        shapes = self.__dict__.setdefault('_obstacle_shapes', {})
        collision = shapes.get((shape, sizes))
        if collision is None:
            collision = c.createCollisionShape(pybullet.GEOM_BOX,
                                               halfExtents=[v / 2.0 for v in sizes]) \
                if shape == 'box' else c.createCollisionShape(pybullet.GEOM_SPHERE,
                                                              radius=sizes[0] / 2.0)
            shapes[(shape, sizes)] = collision
        self.object_ids[name] = int(c.createMultiBody(
            baseMass=0.0, baseCollisionShapeIndex=collision, baseVisualShapeIndex=-1,
            basePosition=[float(v) for v in position]))
        self.__dict__.setdefault('_obstacles', set()).add(name)

    def remove_obstacle(self, name: str) -> None:
        """Take away an obstacle of :meth:`add_obstacle` (not a scene object)."""
        obstacles = self.__dict__.get('_obstacles', set())
        if name not in obstacles:
            raise ConfigError(f'{name!r} is not an obstacle added by add_obstacle; those are '
                              f'{sorted(obstacles)}')
        obstacles.discard(name)
        self._client.removeBody(self.object_ids.pop(name))


#: N*m | N: the motor of a locked joint (PhysicsWorld.lock_joint), far above any arm's effort
LOCKED_JOINT_EFFORT = 1e7

#: Where the images of :meth:`PhysicsWorld.render` have their principal point, in pixels from
#: the image's centre ((width - 1) / 2, (height - 1) / 2) in CameraInfo's convention (u right,
#: v down): PyBullet's CPU renderer samples pixel corners and flips the rows, so its optical
#: axis falls on (width / 2, height / 2 - 1). Measured against the geometry in
#: tests/unit/test_camera.py; :class:`reverse_digital_twin.core.camera.Intrinsics` takes it.
RENDER_PRINCIPAL_OFFSET = (0.5, -0.5)


def render_rgb(world: PhysicsWorld, width: int = 640, height: int = 480,
               target: tuple[float, float, float] | None = None, distance: float = 1.8,
               yaw: float = 50.0, pitch: float = -25.0) -> np.ndarray:
    """An RGB image (height, width, 3) uint8 of the world, from PyBullet's CPU renderer, seen
    from an orbit around ``target`` (default: above the robot's base), for snapshots."""
    c = world.client
    if target is None:
        target = tuple(np.add(world.scene.robot_position, (0.0, 0.0, 0.3)))
    view = c.computeViewMatrixFromYawPitchRoll(target, distance, yaw, pitch, 0.0, 2)
    projection = c.computeProjectionMatrixFOV(50.0, width / height, 0.05, 20.0)
    return world.render(view, projection, width, height)[0]
