"""A calibration: what the twin has learnt about the hardware from its recorded motion.

``rdt calibrate`` fits the twin's unknowns to a recording and writes a :class:`Calibration`
as YAML. The twin's sim node, the planner and the bridge each read it through one parameter,
``calibration_file``: the sim node and the planner's predictions take the hardware model (a
:class:`~reverse_digital_twin.core.perturbation.Perturbation`: payload, extra damping and
friction per joint, command latency, encoder offsets), the bridge the proposed divergence
threshold and time slack. The file format::

    calibration:
      robot: rdt_arm6
      recording: /path/to/bag
      created: '2026-12-01T21:40:00+00:00'
      hardware:                      # the stand-in's perturbation keys, estimated
        payload_mass: 0.51           # kg at payload_link ('' = the tip link)
        payload_link: ''
        command_latency: 0.0102      # s from the controller's command to its effect
        joint_offsets: {elbow_joint: 0.0020}      # rad, measured = true + offset
        joint_damping: {shoulder_pan_joint: 0.0}  # N*m*s/rad on top of the URDF's
        joint_friction: {shoulder_pan_joint: 0.49}  # N*m, Coulomb
      uncertainty: {payload_mass: 0.02, ...}        # one standard deviation, same keys
      residual_rms_before: {elbow_joint: 0.0021}    # rad per joint, nominal twin
      residual_rms_after: {elbow_joint: 0.0002}     # rad per joint, calibrated twin
      divergence_threshold: 0.006    # rad, proposed from the residuals
      divergence_time_slack: 0.02    # s, proposed from the control period and the latency's
                                     # uncertainty (optional: the bridge's default without it)

No rclpy here.
"""
from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.perturbation import Perturbation

_HARDWARE_KEYS = ('payload_mass', 'payload_link', 'command_latency', 'joint_offsets',
                  'joint_damping', 'joint_friction')
_KEYS = ('robot', 'recording', 'created', 'hardware', 'uncertainty', 'residual_rms_before',
         'residual_rms_after', 'divergence_threshold', 'divergence_time_slack', 'notes')


@dataclass(frozen=True)
class Calibration:
    """The fitted hardware model, how sure the fit is, and what it proposes for the watch."""

    hardware: Perturbation
    divergence_threshold: float  # rad
    robot: str = ''
    recording: str = ''
    created: str = ''
    uncertainty: Mapping[str, Any] = field(default_factory=dict)  # key -> std (per joint: map)
    residual_rms_before: Mapping[str, float] = field(default_factory=dict)  # joint -> rad
    residual_rms_after: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what could not be identified, and what was kept instead
    divergence_time_slack: float | None = None  # s; None: the bridge keeps its own default

    def to_dict(self) -> dict[str, Any]:
        h = self.hardware
        hardware = {'payload_mass': float(h.payload_mass), 'payload_link': h.payload_link,
                    'command_latency': float(h.command_latency),
                    'joint_offsets': {j: float(v) for j, v in h.joint_offsets.items()},
                    'joint_damping': {j: float(v) for j, v in h.joint_damping.items()},
                    'joint_friction': {j: float(v) for j, v in h.joint_friction.items()}}
        return {'calibration': {
            'robot': self.robot, 'recording': self.recording,
            'created': self.created or datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec='seconds'),
            'hardware': hardware,
            'uncertainty': _plain(self.uncertainty),
            'residual_rms_before': {j: float(v) for j, v in self.residual_rms_before.items()},
            'residual_rms_after': {j: float(v) for j, v in self.residual_rms_after.items()},
            'divergence_threshold': float(self.divergence_threshold),
            **({} if self.divergence_time_slack is None
               else {'divergence_time_slack': float(self.divergence_time_slack)}),
            'notes': list(self.notes)}}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = ('# Written by `rdt calibrate`: the twin\'s model of the hardware. Load it with '
                'the\n# calibration_file parameter (rdt up --calibration FILE, or '
                'calibration_file:=FILE).\n')
        path.write_text(text + yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @staticmethod
    def load(path: str | Path, joints: Sequence[str] | None = None) -> 'Calibration':
        """Read and validate a calibration file.

        Raises:
            ConfigError: missing or unreadable file, unknown keys, bad values, joints the robot
                does not have (each message names the file and the key).
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f'calibration file {path} does not exist (write one with '
                              '`rdt calibrate <recording>`)')
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f'calibration file {path} cannot be read: {exc}') from None
        if not isinstance(data, dict) or not isinstance(data.get('calibration'), dict):
            raise ConfigError(f'calibration file {path}: expected a top-level `calibration:` '
                              'mapping (written by `rdt calibrate`)')
        body = data['calibration']
        unknown = sorted(set(body) - set(_KEYS))
        if unknown:
            raise ConfigError(f'calibration file {path}: unknown keys {unknown}; known: '
                              f'{list(_KEYS)}')
        hardware = body.get('hardware')
        if not isinstance(hardware, dict):
            raise ConfigError(f'calibration file {path}: `hardware:` must be a mapping with '
                              f'keys {list(_HARDWARE_KEYS)}')
        bad = sorted(set(hardware) - set(_HARDWARE_KEYS))
        if bad:
            raise ConfigError(f'calibration file {path}: unknown keys hardware.{bad}; known: '
                              f'{list(_HARDWARE_KEYS)}')
        try:
            model = Perturbation.from_parameters(
                {f'hardware.{k}': v for k, v in hardware.items()}, 'hardware.', joints)
        except ConfigError as exc:
            raise ConfigError(f'calibration file {path}: {exc}') from None
        threshold = body.get('divergence_threshold')
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not (math.isfinite(threshold) and threshold > 0):
            raise ConfigError(f'calibration file {path}: divergence_threshold must be a '
                              f'number of rad > 0, got {threshold!r}')
        slack = body.get('divergence_time_slack')
        if slack is not None and (isinstance(slack, bool) or not isinstance(slack, (int, float))
                                  or not (math.isfinite(slack) and 0 <= slack <= 1.0)):
            raise ConfigError(f'calibration file {path}: divergence_time_slack must be a '
                              f'number of s in [0, 1], got {slack!r}')
        notes = body.get('notes') or []
        return Calibration(
            hardware=model, divergence_threshold=float(threshold),
            robot=str(body.get('robot', '')), recording=str(body.get('recording', '')),
            created=str(body.get('created', '')), uncertainty=body.get('uncertainty') or {},
            residual_rms_before=_joint_map(body, 'residual_rms_before', path),
            residual_rms_after=_joint_map(body, 'residual_rms_after', path),
            notes=tuple(str(n) for n in notes),
            divergence_time_slack=None if slack is None else float(slack))


def _joint_map(body: Mapping[str, Any], key: str, path: Path) -> dict[str, float]:
    values = body.get(key) or {}
    if not isinstance(values, dict):
        raise ConfigError(f'calibration file {path}: {key} must map joint -> rad')
    return {str(j): float(v) for j, v in values.items()}


def _plain(value: Any) -> Any:
    """numpy scalars and nested mappings as plain YAML-safe values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return value
    return float(value)
