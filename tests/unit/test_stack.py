"""The graph description: one source for the runner's command lines and the launch files."""
import ast
from pathlib import Path

import pytest

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.stack import read_node_parameters, robot_config, sim_graph

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('robot', ['rdt_arm6', 'panda'])
def test_sim_graph_names_both_nodes_with_their_config(robot):
    sim, ctrl = sim_graph(robot, namespace='sim', overrides={'pybullet_sim': {'lockstep': True}})
    assert sim.fully_qualified_name == '/sim/pybullet_sim'
    assert ctrl.fully_qualified_name == '/sim/joint_trajectory_controller'
    args = sim.ros_arguments()
    assert args[:3] == ['--ros-args', '-r', '__node:=pybullet_sim']
    assert '__ns:=/sim' in args
    assert args[args.index('--params-file') + 1] == str(robot_config(robot))
    assert args[-2:] == ['-p', 'lockstep:=true']  # overrides come after the file
    assert ['-p', 'use_sim_time:=true'] == ctrl.override_arguments()


def test_robot_configs_are_consistent():
    for robot in ('rdt_arm6', 'panda'):
        ctrl = read_node_parameters(robot_config(robot), 'joint_trajectory_controller')
        sim = read_node_parameters(robot_config(robot), 'pybullet_sim')
        assert ctrl['joints'], robot
        assert ctrl['update_rate'] == sim['update_rate'], robot
        for j in ctrl['joints']:
            assert f'constraints.{j}.goal' in ctrl, (robot, j)


def test_unknown_robot_and_node_are_refused():
    with pytest.raises(ConfigError, match='available'):
        robot_config('no_such_robot')
    with pytest.raises(ConfigError, match='unknown nodes'):
        sim_graph('rdt_arm6', overrides={'no_such_node': {'x': 1}})


def test_launch_file_builds_from_the_same_graph_description():
    tree = ast.parse((ROOT / 'launch' / 'sim.launch.py').read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert {'sim_graph', 'launch_nodes', 'generate_launch_description'} <= names
