"""The SROS2 access-control policy of the twin graph: which node may publish, subscribe, call
and serve what.

Each process of the graph runs in its own enclave (:attr:`~reverse_digital_twin.stack.NodeSpec.
enclave`, passed as ``--enclave``), so a process may use exactly its nodes' endpoints and no
other: no client can reach the hardware driver or the twin's controller around the bridge, and
only the bridge may command the hardware. The endpoints are read once from the running graph
(rclpy's graph API, hidden ones included: parameter services, /rosout, /parameter_events,
/clock), grouped by the enclave each node reports, and written as SROS2 policy XML
(format 0.2.0, sros2/policy/schemas/policy.xsd), every name fully qualified::

    python -m reverse_digital_twin.security_policy > config/sros2_policy.xml

``ros2 security generate_artifacts -k <keystore> -p config/sros2_policy.xml`` then creates
each enclave's keys and permissions (README, Security). The test
tests/integration/test_security_policy.py checks the shipped file against a live graph.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from rclpy.action import get_action_client_names_and_types_by_node
from rclpy.action import get_action_server_names_and_types_by_node
from rclpy.node import Node

from reverse_digital_twin.stack import NodeSpec

POLICY_VERSION = '0.2.0'
#: Where an action's topics and services live under its name (rcl_action).
ACTION_INFIX = '/_action/'
#: The policy's permission groups: (element, list element, rule attribute) per kind.
KINDS = (('publish', 'topics', 'topic'), ('subscribe', 'topics', 'topic'),
         ('reply', 'services', 'service'), ('request', 'services', 'service'),
         ('execute', 'actions', 'action'), ('call', 'actions', 'action'))


@dataclass
class NodeEndpoints:
    """Every fully qualified name one node uses, by the policy's rule kinds."""

    publish: set[str] = field(default_factory=set)
    subscribe: set[str] = field(default_factory=set)
    reply: set[str] = field(default_factory=set)  # services it serves
    request: set[str] = field(default_factory=set)  # services it calls
    execute: set[str] = field(default_factory=set)  # actions it serves
    call: set[str] = field(default_factory=set)  # actions it sends goals to

    def of(self, kind: str) -> set[str]:
        return getattr(self, kind)


#: enclave -> (namespace, node name) -> endpoints
GraphEndpoints = dict[str, dict[tuple[str, str], NodeEndpoints]]


def node_endpoints(node: Node, name: str, namespace: str) -> NodeEndpoints:
    """What the graph says one node publishes, subscribes, serves and calls. An action's own
    topics and services count as the action (``execute`` or ``call``), as SROS2 expands it."""
    def names(pairs) -> set[str]:
        return {n for n, _types in pairs}
    execute = names(get_action_server_names_and_types_by_node(node, name, namespace))
    call = names(get_action_client_names_and_types_by_node(node, name, namespace))

    def plain(found: set[str]) -> set[str]:
        return {n for n in found if ACTION_INFIX not in n}
    return NodeEndpoints(
        publish=plain(names(node.get_publisher_names_and_types_by_node(name, namespace))),
        subscribe=plain(names(node.get_subscriber_names_and_types_by_node(name, namespace))),
        reply=plain(names(node.get_service_names_and_types_by_node(name, namespace))),
        request=plain(names(node.get_client_names_and_types_by_node(name, namespace))),
        execute=execute, call=call)


def graph_endpoints(node: Node, enclaves: Sequence[str]) -> GraphEndpoints:
    """The endpoints of every live node whose enclave is one of ``enclaves``."""
    found: GraphEndpoints = {e: {} for e in enclaves}
    for name, namespace, enclave in node.get_node_names_and_namespaces_with_enclaves():
        if enclave in found:
            found[enclave][(namespace, name)] = node_endpoints(node, name, namespace)
    return found


def graph_enclaves(specs: Sequence[NodeSpec]) -> list[str]:
    """The enclave of each process of a graph description."""
    return [spec.enclave for spec in specs]


def expected_nodes(specs: Sequence[NodeSpec]) -> dict[str, set[tuple[str, str]]]:
    """enclave -> the (namespace, name) of the nodes the description puts in it."""
    return {spec.enclave: {(f'/{n.namespace.strip("/")}'.rstrip('/') or '/', n.name)
                           for n in spec.nodes} for spec in specs}


def settled_graph_endpoints(node: Node, specs: Sequence[NodeSpec], timeout: float = 60.0,
                            quiet: float = 2.0) -> GraphEndpoints:
    """The graph's endpoints once every described node is there and nothing changed for
    ``quiet`` seconds (discovery reaches this node one endpoint at a time); TimeoutError
    otherwise."""
    enclaves = graph_enclaves(specs)
    expected = expected_nodes(specs)
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = graph_endpoints(node, enclaves)
        complete = all(expected[e] <= set(now[e]) for e in enclaves)
        if not complete or now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        time.sleep(0.2)
    missing = {e: sorted(expected[e] - set((last or {}).get(e, {}))) for e in enclaves}
    raise TimeoutError(f'the graph did not settle within {timeout:g} s; nodes missing: '
                       f'{ {e: m for e, m in missing.items() if m} }')


def policy_xml(graph: Mapping[str, Mapping[tuple[str, str], NodeEndpoints]],
               header: str = '') -> str:
    """The SROS2 policy (version 0.2.0) allowing exactly these endpoints, one enclave per
    process and one profile per node, sorted so that the same graph gives the same text."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    if header:
        lines.append(f'<!-- {escape(header)} -->')
    lines += [f'<policy version="{POLICY_VERSION}">', '  <enclaves>']
    for enclave in sorted(graph):
        lines += [f'    <enclave path={quoteattr(enclave)}>', '      <profiles>']
        for (namespace, name), endpoints in sorted(graph[enclave].items()):
            lines.append(f'        <profile ns={quoteattr(namespace)} node={quoteattr(name)}>')
            for kind, group, item in KINDS:
                names = sorted(endpoints.of(kind))
                if not names:
                    continue
                lines.append(f'          <{group} {kind}="ALLOW">')
                lines += [f'            <{item}>{escape(n)}</{item}>' for n in names]
                lines.append(f'          </{group}>')
            lines.append('        </profile>')
        lines += ['      </profiles>', '    </enclave>']
    lines += ['  </enclaves>', '</policy>', '']
    return '\n'.join(lines)


GENERATED_BY = ('generated from the twin graph (stack.twin_graph, stand-in hardware) by '
                '`python -m reverse_digital_twin.security_policy`; do not edit, regenerate')


def twin_policy(robot: str = 'rdt_arm6', timeout: float = 120.0) -> str:
    """Start the twin graph with the stand-in, read its endpoints, return the policy."""
    from reverse_digital_twin.client import BackgroundNode  # noqa: PLC0415
    from reverse_digital_twin.commander import TwinCommander  # noqa: PLC0415
    from reverse_digital_twin.runner import Stack  # noqa: PLC0415
    from reverse_digital_twin.stack import TwinNames, twin_graph  # noqa: PLC0415
    import rclpy  # noqa: PLC0415
    specs = twin_graph(robot, hardware='standin')
    rclpy.init()
    try:
        with Stack(specs, echo=None) as stack, BackgroundNode('rdt_security_policy') as node:
            commander = TwinCommander(node, TwinNames())
            try:
                dead = stack.dead

                def alive() -> str | None:
                    return dead()[0].describe_exit() if dead() else None
                commander.wait_ready(timeout, hardware=True, alive=alive)
            finally:
                commander.close()
            return policy_xml(settled_graph_endpoints(node, specs, timeout), GENERATED_BY)
    finally:
        rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m reverse_digital_twin.security_policy',
        description='Print the SROS2 policy of the twin graph (starts it for a moment, in the '
                    'current ROS_DOMAIN_ID).')
    parser.add_argument('--robot', default='rdt_arm6')
    args = parser.parse_args(argv)
    sys.stdout.write(twin_policy(args.robot))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
