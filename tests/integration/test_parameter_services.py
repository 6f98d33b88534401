"""Every node answers the parameter services as `ros2 param list/get/describe/dump` use them.

Real processes over real DDS: the twin graph with the stand-in hardware. For each node, every
parameter is listed, read and described through rcl_interfaces' services, and the node must
still be alive afterwards (reading a parameter once killed the emulated controller).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters
from rclpy.node import Node

from reverse_digital_twin.client import call_service
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import NodeSpec, TwinNames, twin_graph

pytestmark = pytest.mark.integration
TIMEOUT = 30.0


def call(node: Node, srv_type: type, name: str, request: Any) -> Any:
    """One service call with a deadline, as the ros2 CLI makes it."""
    return call_service(node, srv_type, name, request, TIMEOUT)


@pytest.fixture(scope='module')
def graph(ros_node, tmp_path_factory) -> Iterator[tuple[Stack, list[NodeSpec]]]:
    specs = twin_graph('rdt_arm6', hardware='standin')
    log_path = tmp_path_factory.mktemp('params') / 'nodes.log'
    with open(log_path, 'w') as log, Stack(specs, echo=log) as stack:
        for spec in (node for process in specs for node in process.nodes):
            name = f'{spec.fully_qualified_name}/list_parameters'
            client = ros_node.create_client(ListParameters, name)
            up = client.wait_for_service(timeout_sec=60.0)
            ros_node.destroy_client(client)
            assert up, f'{name} did not come up: {[p.describe_exit() for p in stack.dead()]}'
        yield stack, specs


def test_names_match_the_graph(graph):
    names = TwinNames()
    fqns = {node.fully_qualified_name for process in graph[1] for node in process.nodes}
    assert {names.sim_node, names.sim_controller, names.hardware_controller, names.standin,
            names.bridge} <= fqns
    hosts = {node.fully_qualified_name: process.fully_qualified_name
             for process in graph[1] for node in process.nodes}
    assert hosts[names.hardware_controller] == names.standin  # the driver's one process


NODES = [node.fully_qualified_name for process in twin_graph('rdt_arm6', hardware='standin')
         for node in process.nodes]


@pytest.mark.parametrize('node', NODES)
def test_every_parameter_lists_gets_and_describes(graph, ros_node, node):
    stack, specs = graph
    spec = next(s for s in specs if node in {n.fully_qualified_name for n in s.nodes})
    listed = call(ros_node, ListParameters, f'{node}/list_parameters',
                  ListParameters.Request(depth=0)).result
    names = list(listed.names)
    assert 'use_sim_time' in names and len(names) > 1, names

    values = call(ros_node, GetParameters, f'{node}/get_parameters',
                  GetParameters.Request(names=names)).values
    assert len(values) == len(names)
    got = dict(zip(names, values))
    assert got['use_sim_time'].type == ParameterType.PARAMETER_BOOL, 'use_sim_time is not set'
    if node == TwinNames().sim_controller:
        assert got['use_sim_time'].bool_value, 'the twin controller must follow /clock'
        assert got['update_rate'].type == ParameterType.PARAMETER_DOUBLE
        assert got['update_rate'].double_value > 0
    unset = [n for n, v in got.items() if v.type == ParameterType.PARAMETER_NOT_SET]
    assert not unset, f'{node}: parameters without a value: {unset}'

    descriptors = call(ros_node, DescribeParameters, f'{node}/describe_parameters',
                       DescribeParameters.Request(names=names)).descriptors
    assert [d.name for d in descriptors] == names
    undescribed = [d.name for d in descriptors if not d.description.strip()]
    assert not undescribed, f'{node}: parameters without a description: {undescribed}'

    alive = [p for p in stack.processes if p.spec is spec]
    assert alive and alive[0].popen.poll() is None, alive[0].describe_exit()
    assert not stack.dead(), [p.describe_exit() for p in stack.dead()]
    again = call(ros_node, ListParameters, f'{node}/list_parameters',
                 ListParameters.Request(depth=0)).result
    assert list(again.names) == names, 'the node stopped answering'


@pytest.mark.parametrize('name, value', [('divergence_threshold', float('nan')),
                                         ('prediction_timeout', -1.0),
                                         ('start_tolerance', float('inf'))])
def test_the_bridge_refuses_a_bad_tunable_and_keeps_its_value(graph, ros_node, name, value):
    """As `ros2 param set`: the set is refused with the rule, the value before stays."""
    bridge = TwinNames().bridge
    before = call(ros_node, GetParameters, f'{bridge}/get_parameters',
                  GetParameters.Request(names=[name])).values[0].double_value
    request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
    result = call(ros_node, SetParameters, f'{bridge}/set_parameters', request).results[0]
    assert not result.successful and f'{name} must be a finite number' in result.reason
    after = call(ros_node, GetParameters, f'{bridge}/get_parameters',
                 GetParameters.Request(names=[name])).values[0].double_value
    assert after == before and not graph[0].dead()
