"""A robot's configuration: its parameter file, and what it names, resolved.

The graph description (stack.py) points nodes at the file; demos, benchmarks, tests and tools
read it through :func:`load_robot` to know the joints, the home pose, the model and the scene.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.paths import resolve, share_dir
from reverse_digital_twin.ros_params import read_node_parameters


def robot_config(robot: str) -> Path:
    """The parameter file of a robot: a path to a YAML file, or a name under config/."""
    if robot.endswith(('.yaml', '.yml')):
        return resolve(robot, 'robot configuration')
    path = share_dir() / 'config' / f'{robot}.yaml'
    if not path.is_file():
        available = sorted(p.stem for p in (share_dir() / 'config').glob('*.yaml')
                           if not p.stem.startswith('scene'))
        raise ConfigError(f'unknown robot {robot!r}: no {path}; available: {available}, '
                          'or pass a path to a parameter YAML')
    return path


@dataclass(frozen=True)
class RobotSetup:
    """What a robot configuration names, resolved: for demos, benchmarks, tests and tools."""

    config: Path
    sim: dict[str, Any]  # the pybullet_sim section, flattened
    controller: dict[str, Any]  # the joint_trajectory_controller section, flattened
    urdf: Path

    @property
    def joints(self) -> list[str]:
        return list(self.controller['joints'])

    @property
    def initial_positions(self) -> dict[str, float]:
        prefix = 'initial_positions.'
        return {k[len(prefix):]: float(v) for k, v in self.sim.items() if k.startswith(prefix)}

    @property
    def home(self):
        """Start pose of the controller joints (rad or m)."""
        import numpy as np  # noqa: PLC0415
        initial = self.initial_positions
        return np.array([initial.get(j, 0.0) for j in self.joints])

    def model(self):
        from reverse_digital_twin.core.robot_model import load_robot_model  # noqa: PLC0415
        return load_robot_model(self.urdf)

    def scene(self):
        from reverse_digital_twin.core.scene import load_scene  # noqa: PLC0415
        return load_scene(resolve(self.sim['scene_file'], 'scene_file')) \
            if self.sim.get('scene_file') else None


def load_robot(robot: str) -> RobotSetup:
    """Read a robot's parameter file (name under config/ or a path)."""
    from reverse_digital_twin.stack import CONTROLLER_NODE, SIM_NODE  # noqa: PLC0415 - cycle
    config = robot_config(robot)
    sim = read_node_parameters(config, SIM_NODE)
    if 'robot_description_file' not in sim:
        raise ConfigError(f'{config}: the {SIM_NODE} section has no robot_description_file')
    return RobotSetup(config, sim, read_node_parameters(config, CONTROLLER_NODE),
                      resolve(sim['robot_description_file'], 'robot_description_file'))
