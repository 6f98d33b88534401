"""The shipped SROS2 policy (config/sros2_policy.xml) against the live twin graph.

Every endpoint a node of the graph has (hidden ones included) must be allowed in its process's
enclave, the file must be what the generator writes for this graph now (so it cannot go
stale), and only the bridge may command the hardware. Real processes over real DDS; the
policy's own XML is read here with the standard library, independently of the generator.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.security_policy import GENERATED_BY, KINDS, POLICY_VERSION
from reverse_digital_twin.security_policy import graph_endpoints, graph_enclaves, policy_xml
from reverse_digital_twin.security_policy import settled_graph_endpoints

from .conftest import graph_observer

pytestmark = pytest.mark.integration

POLICY = Path(__file__).resolve().parents[2] / 'config' / 'sros2_policy.xml'
REGENERATE = 'python -m reverse_digital_twin.security_policy > config/sros2_policy.xml'


def allowed(policy: ET.Element) -> dict[str, dict[str, list[str]]]:
    """enclave -> rule kind (publish, subscribe, reply, request, execute, call) -> the fully
    qualified name patterns it allows, '~' and relative names resolved as SROS2 does."""
    rules: dict[str, dict[str, list[str]]] = {}
    for enclave in policy.iter('enclave'):
        kinds = rules.setdefault(enclave.get('path'), {kind: [] for kind, _, _ in KINDS})
        for profile in enclave.iter('profile'):
            ns = profile.get('ns').rstrip('/')
            fqn = f'{ns}/{profile.get("node")}'
            for group in profile:
                for kind, _, _ in KINDS:
                    if group.get(kind) == 'ALLOW':
                        for item in group:
                            name = item.text.strip()
                            if name.startswith('~'):
                                name = fqn + name[1:]
                            elif not name.startswith('/'):
                                name = f'{ns}/{name}'
                            kinds[kind].append(name)
    return rules


@pytest.fixture(scope='module')
def observer(twin):
    """A fresh participant reads the graph: the session-long node's cache keeps ghosts of
    earlier modules' graphs, whose endpoints would land in this one's (see graph_observer)."""
    with graph_observer() as node:
        yield node


@pytest.fixture(scope='module')
def live(twin, observer):
    """The live graph's endpoints, per enclave and node, once discovery has settled."""
    return settled_graph_endpoints(observer, twin.specs)


def test_every_process_runs_in_its_own_enclave(twin, live):
    for spec in twin.specs:
        found = {node for node in live[spec.enclave]}
        for node in spec.nodes:
            ns = f'/{node.namespace.strip("/")}' if node.namespace.strip('/') else '/'
            assert (ns, node.name) in found, (spec.enclave, node.name, sorted(found))
    assert len({spec.enclave for spec in twin.specs}) == len(twin.specs)


def test_the_shipped_policy_allows_every_live_endpoint(live):
    rules = allowed(ET.parse(POLICY).getroot())
    missing = []
    for enclave, nodes in live.items():
        assert enclave in rules, f'{POLICY.name} has no enclave {enclave}; run {REGENERATE}'
        for (ns, name), endpoints in nodes.items():
            for kind, _, _ in KINDS:
                for endpoint in endpoints.of(kind):
                    if not any(fnmatchcase(endpoint, p) for p in rules[enclave][kind]):
                        missing.append(f'{enclave} {ns}/{name} {kind} {endpoint}')
    assert not missing, f'not allowed by {POLICY.name} (run {REGENERATE}):\n' + \
        '\n'.join(missing)


def test_the_shipped_policy_is_what_the_generator_writes_now(twin, observer, live):
    """Discovery brings a loaded machine's endpoints in one by one, some after a quiet spell:
    wait until the graph's policy is the shipped one (a stale file never becomes it)."""
    shipped = POLICY.read_text()
    enclaves = graph_enclaves(twin.specs)
    generated = [policy_xml(live, GENERATED_BY)]

    def same() -> bool:
        generated[0] = policy_xml(graph_endpoints(observer, enclaves), GENERATED_BY)
        return generated[0] == shipped
    if generated[0] != shipped:
        wait_for(same, 60, poll=0.5)
    assert generated[0] == shipped, f'{POLICY} is stale: run {REGENERATE}'


def test_only_the_bridge_may_command_the_hardware(twin):
    """Whatever a client sends reaches the hardware through the bridge's gate only: no other
    enclave may send the hardware's controller goals or trajectories."""
    rules = allowed(ET.parse(POLICY).getroot())
    names = twin.names
    bridge = next(s.enclave for s in twin.specs if s.fully_qualified_name == names.bridge)
    hardware_action = f'{names.hardware_controller}/follow_joint_trajectory'
    for enclave, kinds in rules.items():
        may = hardware_action in kinds['call'] or \
            names.hardware_joint_trajectory in kinds['publish']
        assert may == (enclave == bridge), enclave


def test_the_policy_file_is_valid_sros2_policy():
    """Against sros2's own schema where a ROS install provides it, else its structure."""
    try:
        from sros2.policy import load_policy  # noqa: PLC0415
    except ImportError:
        load_policy = None
    if load_policy is not None:
        load_policy(POLICY)  # raises on a schema violation
    root = ET.parse(POLICY).getroot()
    assert root.tag == 'policy' and root.get('version') == POLICY_VERSION
    assert [c.tag for c in root] == ['enclaves']
    groups = {group: {kind for kind, g, _ in KINDS if g == group} for _, group, _ in KINDS}
    items = {group: item for _, group, item in KINDS}
    for enclave in root.find('enclaves'):
        assert enclave.tag == 'enclave' and enclave.get('path', '').startswith('/')
        assert [c.tag for c in enclave] == ['profiles']
        for profile in enclave.find('profiles'):
            assert profile.tag == 'profile' and profile.get('ns') and profile.get('node')
            for group in profile:
                assert group.tag in groups, group.tag
                assert set(group.attrib) <= groups[group.tag] and group.attrib
                assert set(group.attrib.values()) == {'ALLOW'}
                assert len(group) and all(i.tag == items[group.tag] and i.text for i in group)
