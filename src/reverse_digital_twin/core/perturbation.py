"""How the stand-in robot differs from the twin: the "reality gap" as configuration.

On a machine without an arm, a stand-in process plays the hardware: the same sim node code
over its own PyBullet world, perturbed by a :class:`Perturbation` so that the twin's
predictions differ from "reality" the way they would on a real robot:

* dynamics: a payload at the tip, extra joint damping and Coulomb friction
  (:meth:`Perturbation.apply_to` on the stand-in's :class:`PhysicsWorld`, through
  :mod:`reverse_digital_twin.core.stand_in_dynamics`);
* sensing: joint calibration offsets and Gaussian noise on positions and velocities
  (:class:`SensorModel`);
* actuation: a command latency (:class:`CommandDelay`).

Calibration offsets: ``measured = true + offset``. The real robot interprets a commanded
position in its own (true) joint frame, so the stand-in applies commands to the true joint
position and only the measurement is offset. A joint offset therefore shows up as a constant
difference between measured and true positions (measured - commanded = offset at rest), as a
miscalibrated encoder would.

Pure Python and numpy; no ROS. Parameters come flat, as a ROS node sees them
(``perturbation.payload_mass``, ``perturbation.joint_offsets.elbow_joint``, ...), see
:meth:`Perturbation.from_parameters`.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from reverse_digital_twin.core.errors import ConfigError

if TYPE_CHECKING:  # physics imports pybullet; this module needs it only for apply_to
    from reverse_digital_twin.core.physics import PhysicsWorld

_SCALARS = ('payload_mass', 'command_latency', 'position_noise', 'velocity_noise')
_JOINT_MAPS = ('joint_damping', 'joint_friction', 'joint_offsets')
_UNITS = {'payload_mass': 'kg', 'command_latency': 's', 'position_noise': 'rad',
          'velocity_noise': 'rad/s', 'joint_damping': 'N*m*s/rad', 'joint_friction': 'N*m',
          'joint_offsets': 'rad'}


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f'{key}: expected a number, got {value!r}')
    return float(value)


@dataclass(frozen=True)
class Perturbation:
    """The stand-in robot's deviations from the nominal model; all zero = the twin itself.

    Attributes:
        payload_mass: kg carried at ``payload_link`` (a point mass at the link's centre of mass).
        payload_link: the link carrying it; '' = the arm's tip link (PhysicsWorld.tip_link).
        joint_damping: joint -> extra viscous damping (N*m*s/rad), on top of the URDF's.
        joint_friction: joint -> Coulomb friction (N*m).
        command_latency: s between the measurement a command answers and the command's effect
            (see CommandDelay; a command arriving later acts on arrival).
        position_noise: rad, standard deviation of Gaussian noise on measured positions.
        velocity_noise: rad/s, the same on measured velocities.
        joint_offsets: joint -> calibration offset (rad): measured = true + offset.
        seed: seed of the sensor noise (same seed, same noise sequence).
    """

    payload_mass: float = 0.0
    payload_link: str = ''
    joint_damping: Mapping[str, float] = field(default_factory=dict)
    joint_friction: Mapping[str, float] = field(default_factory=dict)
    command_latency: float = 0.0
    position_noise: float = 0.0
    velocity_noise: float = 0.0
    joint_offsets: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in _JOINT_MAPS:  # private read-only copies: frozen means frozen
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def __reduce__(self):
        """Picklable (read-only mappings are not): e.g. to a prediction worker process."""
        return (Perturbation, tuple(dict(v) if isinstance(v, MappingProxyType) else v
                                    for v in (getattr(self, f.name) for f in fields(self))))

    def validate(self, joints: Sequence[str] | None = None,
                 prefix: str = 'perturbation.') -> None:
        """Check values (finite; >= 0 except offsets) and, if given, the joint names.

        Args:
            joints: the robot's movable joints; None skips the name check.
            prefix: how keys are named in messages.

        Raises:
            ConfigError: naming the bad key, e.g. 'perturbation.joint_offsets.no_such_joint'.
        """
        values: list[tuple[str, Any, bool]] = []  # (key, value, may be negative)
        values += [(f'{prefix}{name}', getattr(self, name), False) for name in _SCALARS]
        for name in _JOINT_MAPS:
            values += [(f'{prefix}{name}.{joint}', value, name == 'joint_offsets')
                       for joint, value in getattr(self, name).items()]
        for key, value, signed in values:
            number = _number(value, key)
            if not math.isfinite(number) or (number < 0.0 and not signed):
                unit = _UNITS[key[len(prefix):].split('.')[0]]
                raise ConfigError(f'{key}: expected a finite number'
                                  f'{"" if signed else " >= 0"} ({unit}), got {value!r}')
        if not isinstance(self.payload_link, str):
            raise ConfigError(f'{prefix}payload_link: expected a link name or \'\' for the tip '
                              f'link, got {self.payload_link!r}')
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or self.seed < 0:
            raise ConfigError(f'{prefix}seed: expected an integer >= 0, got {self.seed!r}')
        if joints is not None:
            known = list(joints)
            for name in _JOINT_MAPS:
                for joint in getattr(self, name):
                    if joint not in known:
                        raise ConfigError(f'{prefix}{name}.{joint}: {joint!r} is not a movable '
                                          f'joint of the robot; its movable joints are {known}')

    def to_parameters(self, prefix: str = 'perturbation.') -> dict[str, Any]:
        """The flat ROS-style parameters :meth:`from_parameters` reads back (per-joint values as
        ``<prefix><map>.<joint>``), e.g. to start a stand-in with them."""
        out: dict[str, Any] = {prefix + name: float(getattr(self, name)) for name in _SCALARS}
        out[prefix + 'payload_link'] = self.payload_link
        out[prefix + 'seed'] = int(self.seed)
        for name in _JOINT_MAPS:
            for joint, value in getattr(self, name).items():
                out[f'{prefix}{name}.{joint}'] = float(value)
        return out

    @staticmethod
    def from_parameters(params: Mapping[str, Any], prefix: str = 'perturbation.',
                        joints: Sequence[str] | None = None) -> 'Perturbation':
        """Build from flat ROS-style parameters; keys without ``prefix`` are ignored.

        Scalars: ``<prefix>payload_mass``, ``payload_link``, ``command_latency``,
        ``position_noise``, ``velocity_noise``, ``seed``. Per joint:
        ``<prefix>joint_damping.<joint>``, ``joint_friction.<joint>``,
        ``joint_offsets.<joint>`` (or ``<prefix>joint_offsets`` mapping joint -> value).
        The result is validated (against ``joints`` too when given).

        Raises:
            ConfigError: naming the key: unknown key, wrong type, bad value, unknown joint.
        """
        kwargs: dict[str, Any] = {}
        maps: dict[str, dict[str, Any]] = {name: {} for name in _JOINT_MAPS}
        names = {f.name for f in fields(Perturbation)}
        for key in sorted(params):
            if not key.startswith(prefix):
                continue
            value = params[key]
            head, _, joint = key[len(prefix):].partition('.')
            if head in _JOINT_MAPS:
                if joint:
                    maps[head][joint] = value
                elif isinstance(value, Mapping):
                    maps[head].update({str(j): v for j, v in value.items()})
                else:
                    raise ConfigError(f'{key}: expected per-joint keys {key}.<joint>, got '
                                      f'{value!r}')
            elif head in names and not joint:
                kwargs[head] = value
            else:
                raise ConfigError(
                    f'{key}: unknown perturbation parameter; known: '
                    f'{sorted(prefix + n for n in names - set(_JOINT_MAPS))} and '
                    f'{sorted(prefix + n + ".<joint>" for n in _JOINT_MAPS)}')
        for name in _SCALARS:
            if name in kwargs:
                kwargs[name] = _number(kwargs[name], prefix + name)
        for name, values in maps.items():
            kwargs[name] = {j: _number(v, f'{prefix}{name}.{j}') for j, v in values.items()}
        perturbation = Perturbation(**kwargs)
        perturbation.validate(joints, prefix)
        return perturbation

    def apply_to(self, world: 'PhysicsWorld') -> None:
        """Give a world this payload, damping and friction (sensing and latency are separate).

        Sets, never accumulates, so it can be called again for a live change: the payload
        replaces the previous one, and each named joint gets URDF damping + its extra damping
        and this friction. Joints not named keep what they have.

        Raises:
            ConfigError: bad values, unknown joints or an unknown payload link.
        """
        from reverse_digital_twin.core.stand_in_dynamics import StandInDynamics  # noqa: PLC0415
        self.validate(world.movable_joints)
        dynamics = StandInDynamics.of(world)
        try:
            dynamics.set_payload(self.payload_mass, self.payload_link or None)
        except ConfigError as exc:
            raise ConfigError(f'perturbation.payload_link: {exc}') from None
        for joint, extra in self.joint_damping.items():
            world.set_joint_damping(joint, world.joint_damping(joint, urdf=True) + extra)
        for joint, friction in self.joint_friction.items():
            dynamics.set_joint_friction(joint, friction)


class SensorModel:
    """What the stand-in's encoders report: true values + calibration offsets + noise.

    Seeded from ``perturbation.seed`` (numpy's default Generator), so the same seed and the
    same calls give the same measurements. Position noise is drawn before velocity noise in
    every call, and only for a non-zero standard deviation.
    """

    def __init__(self, perturbation: Perturbation, joints: Sequence[str]) -> None:
        perturbation.validate(joints)
        self.joints = list(joints)
        self.offsets = np.array([perturbation.joint_offsets.get(j, 0.0) for j in self.joints],
                                dtype=float)
        self.position_noise = float(perturbation.position_noise)
        self.velocity_noise = float(perturbation.velocity_noise)
        self._rng = np.random.default_rng(int(perturbation.seed))

    def measure(self, positions: np.ndarray, velocities: np.ndarray) \
            -> tuple[np.ndarray, np.ndarray]:
        """(measured positions, measured velocities), arrays in the order of ``joints``.

        Raises:
            ValueError: an array does not have one value per joint.
        """
        n = len(self.joints)
        q = np.array(positions, dtype=float)
        v = np.array(velocities, dtype=float)
        if q.shape != (n,) or v.shape != (n,):
            raise ValueError(f'expected {n} positions and velocities ({self.joints}), got '
                             f'shapes {q.shape} and {v.shape}')
        q += self.offsets
        if self.position_noise > 0.0:
            q += self._rng.normal(0.0, self.position_noise, n)
        if self.velocity_noise > 0.0:
            v += self._rng.normal(0.0, self.velocity_noise, n)
        return q, v


class CommandDelay:
    """A FIFO of commands that take effect ``latency`` seconds after their arrival.

    Times are in s on one clock (the stand-in's simulated time). A command is due when
    ``arrival_time + latency <= now`` (with 1 ns of tolerance for float rounding).
    """

    TOLERANCE = 1e-9  # s

    def __init__(self, latency: float) -> None:
        latency = _number(latency, 'command latency')
        if not (math.isfinite(latency) and latency >= 0.0):
            raise ConfigError(f'command latency must be a finite number >= 0 s, got {latency}')
        self.latency = latency
        self._queue: list[tuple[float, Any]] = []  # sorted by arrival time, stable

    def __len__(self) -> int:
        """Commands pushed and not yet popped or dropped."""
        return len(self._queue)

    def push(self, arrival_time: float, command: Any) -> None:
        """Queue a command that arrived at ``arrival_time`` (s)."""
        arrival_time = _number(arrival_time, 'arrival time')
        if not math.isfinite(arrival_time):
            raise ValueError(f'arrival time must be finite, got {arrival_time}')
        bisect.insort_right(self._queue, (arrival_time, command), key=lambda item: item[0])

    def pop_due(self, now: float) -> Any | None:
        """The newest command due at ``now``; older due ones are dropped. None if none is due."""
        deadline = now - self.latency + self.TOLERANCE
        count = bisect.bisect_right(self._queue, deadline, key=lambda item: item[0])
        if count == 0:
            return None
        command = self._queue[count - 1][1]
        del self._queue[:count]
        return command

    def clear(self) -> None:
        self._queue.clear()
