"""joint_trajectory_controller parameters -> ControllerConfig, in one place.

The emulated controller node declares these parameters; the predictor reads the same
controller section from the parameter file. Both build their ControllerConfig here, so the
twin predicts with exactly the configuration the controller runs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from reverse_digital_twin.core.controller import ControllerConfig, PidGains
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.core.tolerances import default_tolerances

#: name -> (default, description), as upstream unless marked.
CONTROLLER_PARAMETERS: dict[str, tuple[Any, str]] = {
    'command_interfaces': (['position'],
                           'Command interfaces: position, velocity, effort (and combinations)'),
    'state_interfaces': (['position', 'velocity'],
                         'State interfaces used for control: position, velocity, acceleration'),
    'update_rate': (100.0, 'Control rate (Hz); must match the sim'),
    'action_monitor_rate': (20.0, 'Rate of action feedback and results (Hz)'),
    'frame_id': ('base_link', 'header.frame_id of joint_states (joint_state_broadcaster)'),
    'allow_partial_joints_goal': (False, 'Accept goals naming a subset of the joints'),
    'allow_nonzero_velocity_at_trajectory_end': (False,
                                                 'Accept a last point with nonzero velocity'),
    'interpolate_from_desired_state': (False, 'Start new trajectories from the last desired '
                                              'state instead of the measured one'),
    'enforce_position_limits': (True, 'Refuse goals with positions outside the URDF limits '
                                      '(stricter than upstream)'),
    'interpolation_method': ('splines', "Trajectory interpolation: 'splines' or 'none'"),
    'constraints.stopped_velocity_tolerance': (0.01, 'Velocity tolerance at the goal (rad/s); '
                                               'only checked with a velocity or effort command '
                                               'interface'),
    'constraints.goal_time': (0.0, 'Time allowed after the end to reach the goal tolerance (s);'
                                   ' 0 waits forever'),
}
#: per joint: suffix -> (default, description template)
JOINT_PARAMETERS: dict[str, tuple[float, str]] = {
    'constraints.{joint}.trajectory': (0.0, 'Path position tolerance of {joint} (0 = unchecked)'),
    'constraints.{joint}.goal': (0.0, 'Goal position tolerance of {joint} (0 = unchecked)'),
    'gains.{joint}.p': (0.0, 'p of {joint} (velocity/effort commands)'),
    'gains.{joint}.i': (0.0, 'i of {joint} (velocity/effort commands)'),
    'gains.{joint}.d': (0.0, 'd of {joint} (velocity/effort commands)'),
    'gains.{joint}.i_clamp': (math.inf, 'integral clamp of {joint} (velocity/effort commands)'),
    'gains.{joint}.ff_velocity_scale': (0.0, 'velocity feed-forward of {joint} '
                                             '(velocity/effort commands)'),
}


def joint_parameters(joints: Sequence[str]) -> dict[str, tuple[float, str]]:
    """The per-joint parameter names of these joints, with defaults and descriptions."""
    return {name.format(joint=j): (default, text.format(joint=j))
            for j in joints for name, (default, text) in JOINT_PARAMETERS.items()}


def controller_config(params: Mapping[str, Any], model: RobotModel | None = None,
                      where: str = 'joint_trajectory_controller') -> ControllerConfig:
    """Build the control law's configuration from flat parameters (defaults filled in).

    Raises:
        ConfigError: naming the parameter, for missing joints or invalid values.
    """
    joints = params.get('joints')
    if not joints:
        raise ConfigError(f'{where}: parameter joints is not set; list the controlled joints')
    joints = tuple(joints)
    values = {name: params.get(name, default)
              for name, (default, _) in {**CONTROLLER_PARAMETERS,
                                         **joint_parameters(joints)}.items()}
    limits, continuous = {}, frozenset()
    if model is not None:
        model.check_joints(joints, f'{where} joints')
        limits = {j.name: j.limits for j in model.movable_joints if j.name in joints}
        continuous = frozenset(j.name for j in model.movable_joints if j.type == 'continuous')
    try:
        return ControllerConfig(
            joints=joints,
            command_interfaces=tuple(values['command_interfaces']),
            state_interfaces=tuple(values['state_interfaces']),
            limits=limits, continuous_joints=continuous,
            allow_partial_joints_goal=bool(values['allow_partial_joints_goal']),
            allow_nonzero_velocity_at_trajectory_end=bool(
                values['allow_nonzero_velocity_at_trajectory_end']),
            interpolation_method=str(values['interpolation_method']),
            interpolate_from_desired_state=bool(values['interpolate_from_desired_state']),
            enforce_position_limits=bool(values['enforce_position_limits']),
            tolerances=default_tolerances(
                joints,
                {j: float(values[f'constraints.{j}.trajectory']) for j in joints},
                {j: float(values[f'constraints.{j}.goal']) for j in joints},
                float(values['constraints.stopped_velocity_tolerance']),
                float(values['constraints.goal_time'])),
            gains={j: PidGains(*(float(values[f'gains.{j}.{k}'])
                                 for k in ('p', 'i', 'd', 'i_clamp', 'ff_velocity_scale')))
                   for j in joints})
    except ValueError as exc:
        raise ConfigError(f'{where}: {exc}') from None
