"""Launch files and the runner give every node the same final parameters, in every mode.

launch_ros is not needed: its documented translation of ``parameters=[file, {...}]`` into
``--params-file`` arguments (a dict becomes a file keyed by the node's name) is reproduced
here, and both command lines are read with rcl's precedence (``ros_params.node_parameters``).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reverse_digital_twin.launch_support import node_arguments
from reverse_digital_twin.ros_params import node_parameters, parameter_rules
from reverse_digital_twin.stack import NodeSpec, sim_graph, twin_graph

GRAPHS = {
    'sim': lambda: sim_graph('rdt_arm6', overrides={'pybullet_sim': {'real_time_factor': 0.5}}),
    'sim_panda_ns': lambda: sim_graph('panda', 'sim', {'pybullet_sim': {'lockstep': True}}),
    'twin': lambda: twin_graph('rdt_arm6'),
    'twin_standin': lambda: twin_graph('rdt_arm6', hardware='standin', target='shadow',
                                       armed=True),
    'twin_real_driver': lambda: twin_graph(
        'rdt_arm6', hardware='/ur/scaled_joint_trajectory_controller',
        client_controller='scaled_joint_trajectory_controller',
        overrides={'pybullet_sim': {'real_time_factor': 2.0}}),
}


def launch_command_line(spec: NodeSpec, tmp_path: Path) -> list[str]:
    """What launch_ros 0.28's Node builds from node_arguments(spec) (actions/node.py: a dict
    goes into a temporary file under the node's name, or /** without a namespace)."""
    kwargs = node_arguments(spec)
    namespace = f'/{kwargs["namespace"]}' if kwargs['namespace'] else None
    cmd = [kwargs['executable'], '--ros-args']
    if 'name' in kwargs:  # a process of several nodes is given none (it would rename all)
        cmd += ['-r', f'__node:={kwargs["name"]}']
    name = f'{namespace}/{kwargs.get("name")}' if namespace and 'name' in kwargs \
        else '/**'  # "not fully specified"
    if namespace:
        cmd += ['-r', f'__ns:={namespace}']
    for i, source in enumerate(kwargs['parameters']):
        if isinstance(source, dict):
            path = tmp_path / f'launch_params_{spec.name}_{i}'
            path.write_text(yaml.dump({name: {'ros__parameters': source}}))
            source = str(path)
        cmd += ['--params-file', source]
    return cmd


@pytest.mark.parametrize('mode', sorted(GRAPHS))
def test_launch_and_runner_give_every_node_the_same_parameters(mode, tmp_path):
    for process in GRAPHS[mode]():
        for spec in process.nodes:  # every node the process hosts
            fqn = spec.fully_qualified_name
            runner = node_parameters(process.ros_arguments(), fqn)
            launch = node_parameters(launch_command_line(process, tmp_path), fqn)
            assert runner == launch, fqn
            for key, value in spec.parameters.items():  # the overrides beat the robot YAML
                assert runner[key] == value, (fqn, key)


def test_command_line_override_beats_the_robot_yaml():
    """The issue: real_time_factor:=0.5 must not be undone by the file's 1.0."""
    sim = sim_graph('rdt_arm6', overrides={'pybullet_sim': {'real_time_factor': 0.5}})[0]
    params = node_parameters(sim.ros_arguments(), sim.fully_qualified_name)
    assert params['real_time_factor'] == 0.5
    assert params['physics_rate'] == 1000.0  # the rest still comes from the file


def test_rcl_precedence_is_order_of_first_appearance(tmp_path):
    """A -p before the file loses (launch_ros's ros_arguments come first: the old bug)."""
    config = tmp_path / 'robot.yaml'
    config.write_text(yaml.safe_dump({'/**/sim': {'ros__parameters': {'rate': 1.0}}}))
    before = ['--ros-args', '-p', 'rate:=0.5', '--ros-args', '--params-file', str(config)]
    after = ['--ros-args', '--params-file', str(config), '-p', 'rate:=0.5']
    assert node_parameters(before, '/ns/sim') == {'rate': 1.0}
    assert node_parameters(after, '/ns/sim') == {'rate': 0.5}
    assert node_parameters(after, '/other') == {'rate': 0.5}
    assert parameter_rules(['x', '--ros-args', '-p', 'a:=1', '--', '-p', 'b:=2']) == \
        [('rule', 'a:=1')]
