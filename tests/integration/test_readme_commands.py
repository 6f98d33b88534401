"""Every `rdt` command of the README's "Running it" block does what the README says.

The commands are read from README.md itself, so an edited example is tested as written. Each
`rdt up` variant is started as the user would (the venv's `rdt` script, its own process group)
and stopped with Ctrl-C; switch/arm/disarm/move run against a running `rdt up --hardware
standin`; snapshot writes its image. Real processes over real DDS; names come from TwinNames.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from rclpy.parameter import parameter_value_to_python

from reverse_digital_twin.client import TrajectoryClient, call_service, wait_for
from reverse_digital_twin.stack import TwinNames

from .conftest import graph_observer
from reverse_digital_twin.robot_setup import load_robot

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HANDLED = {'up', 'switch', 'arm', 'disarm', 'move', 'snapshot'}
UP_TIMEOUT = 90.0


def readme_commands() -> list[list[str]]:
    """The `rdt ...` commands of the README's "Running it" code block (argv after `rdt`)."""
    text = (ROOT / 'README.md').read_text()
    section = text.split('\n## Running it', 1)[1]
    block = re.search(r'```bash\n(.*?)```', section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = line.split('  #', 1)[0].strip()
        for part in line.split(' | '):
            words = shlex.split(part)
            if words and words[0].endswith('rdt'):
                commands.append(words[1:])
    return commands


COMMANDS = readme_commands()
UPS = [c for c in COMMANDS if c[0] == 'up']


def rdt_command(args: list[str]) -> list[str]:
    script = Path(sys.executable).parent / 'rdt'
    return [str(script), *args] if script.is_file() else \
        [sys.executable, '-m', 'reverse_digital_twin.cli', *args]


def rdt(args: list[str], cwd: Path | None = None, timeout: float = 150.0) -> tuple[int, str]:
    """Run one command to its end; (exit code, everything it printed)."""
    result = subprocess.run(rdt_command(args), cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout + result.stderr


@dataclass
class Up:
    """A running `rdt up ...`."""

    args: list[str]
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        """Ctrl-C, as in a terminal; the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            raise AssertionError(f'rdt {shlex.join(self.args)} ignored Ctrl-C') from None


def start_up(args: list[str], log: Path) -> Up:
    with open(log, 'w') as out:
        process = subprocess.Popen(rdt_command(args), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return Up(args, process, log)


def node_names(node: Node) -> set[str]:
    return set(node.get_fully_qualified_node_names())


def node_processes() -> list[str]:
    """The node processes of this test run's ROS domain that are still alive (orphans too)."""
    domain = f'ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}'.encode()
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / 'cmdline').read_bytes()
            if b'reverse_digital_twin.nodes' not in cmdline:
                continue
            if domain in (entry / 'environ').read_bytes().split(b'\0') \
                    and (entry / 'stat').read_text().split(') ')[-1][0] != 'Z':
                command = cmdline.replace(b'\0', b' ').decode(errors='replace')
                found.append(f'{entry.name}: {command[:160]}')
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def parameter(node: Node, target: str, name: str):
    response = call_service(node, GetParameters, f'{target}/get_parameters',
                            GetParameters.Request(names=[name]), 30.0)
    return parameter_value_to_python(response.values[0])


def option(args: list[str], name: str, default: str = '') -> str:
    return args[args.index(name) + 1] if name in args else default


def wait_graph_gone() -> None:
    """The previous graph's processes have ended (a new graph must not be mistaken for it).

    Asked of the processes, not of the DDS graph, which may list ghosts (see graph_observer).
    """
    assert wait_for(lambda: not node_processes(), 30.0, poll=0.2), \
        'node processes of an earlier graph are still running:\n' + '\n'.join(node_processes())


def test_the_readme_shows_only_commands_this_test_runs():
    assert COMMANDS and UPS
    assert {c[0] for c in COMMANDS} <= HANDLED, COMMANDS
    assert any(c[0] == 'move' and '--joints' in c for c in COMMANDS)


@pytest.mark.parametrize('args', UPS, ids=[' '.join(c) for c in UPS])
def test_rdt_up_variant_starts_and_stops(args, ros_node, tmp_path):
    names = TwinNames()
    wait_graph_gone()
    robot = option(args, '--robot', 'rdt_arm6')
    joints = load_robot(robot).joints
    up = start_up(args, tmp_path / 'up.log')
    hardware_only = '--hardware-only' in args  # the stand-in alone, as a real driver runs
    client = TrajectoryClient(ros_node, names.hardware_controller, names.hardware_joint_states) \
        if hardware_only else TrajectoryClient(ros_node, names.bridge, names.joint_states)
    try:
        ready = wait_for(lambda: up.process.poll() is not None or client.wait_ready(1.0),
                         UP_TIMEOUT, poll=0.1)
        assert ready and up.process.poll() is None, up.output()[-3000:]
        assert wait_for(lambda: client.positions(joints) is not None, 30.0), \
            f'no {names.joint_states} with the {robot} joints'
        with graph_observer() as observer:
            if hardware_only:
                assert wait_for(lambda: {names.standin, names.hardware_controller}
                                <= node_names(observer), 30.0), sorted(node_names(observer))
                assert not {names.bridge, names.sim_node} & node_names(observer)
            elif '--sim-only' in args:  # the twin alone at the root, as a driver
                assert wait_for(lambda: '/pybullet_sim' in node_names(observer), 30.0), \
                    sorted(node_names(observer))
                assert names.sim_node not in node_names(observer)
            else:
                assert wait_for(lambda: {names.sim_node, names.sim_controller}
                                <= node_names(observer), 30.0), sorted(node_names(observer))
            if option(args, '--hardware') == 'standin':
                assert wait_for(lambda: {names.standin, names.hardware_controller}
                                <= node_names(observer), 30.0), sorted(node_names(observer))
        if '--sim-only' not in args and not hardware_only:
            assert parameter(ros_node, names.bridge, 'target') == option(args, '--target',
                                                                         'sim')
            assert parameter(ros_node, names.bridge, 'hardware_armed') == ('--arm' in args)
    finally:
        client.close()
        code = up.stop()
    output = up.output()
    assert code == 0, output[-3000:]
    assert 'Traceback' not in output, output[-3000:]


@pytest.fixture(scope='module')
def graph(ros_node, tmp_path_factory) -> Iterator[Up]:
    """The README's `rdt up --hardware standin`, for the commands that need a running graph."""
    args = next(c for c in UPS if option(c, '--hardware') == 'standin' and len(c) == 3)
    wait_graph_gone()
    up = start_up(args, tmp_path_factory.mktemp('readme') / 'up.log')
    client = TrajectoryClient(ros_node, TwinNames().bridge, TwinNames().joint_states)
    try:
        ready = wait_for(lambda: up.process.poll() is not None or client.wait_ready(1.0),
                         UP_TIMEOUT, poll=0.1)
        assert ready and up.process.poll() is None, up.output()[-3000:]
    finally:
        client.close()
    yield up
    assert up.stop() == 0, up.output()[-3000:]


def readme(subcommand: str, *flags: str) -> list[str]:
    """The README's command with this subcommand (and flags), as written."""
    found = [c for c in COMMANDS if c[0] == subcommand and all(f in c for f in flags)]
    assert found, f'the README shows no rdt {subcommand} {" ".join(flags)}'
    return found[0]


def run_ok(args: list[str], expected: str) -> str:
    code, output = rdt(args)
    assert code == 0, f'rdt {shlex.join(args)} exited {code}:\n{output}'
    assert expected in output, f'rdt {shlex.join(args)}:\n{output}'
    assert 'Traceback' not in output, f'rdt {shlex.join(args)}:\n{output}'
    return output


def test_arm_switch_move_disarm_against_the_running_graph(graph, ros_node):
    names = TwinNames()
    joints = load_robot('rdt_arm6').joints
    hardware = TrajectoryClient(ros_node, names.hardware_controller,
                                names.hardware_joint_states)
    try:
        run_ok(readme('arm'), 'armed')
        assert parameter(ros_node, names.bridge, 'hardware_armed') is True
        switch = readme('switch')
        run_ok(switch, f'active target: {switch[1]}')
        assert parameter(ros_node, names.bridge, 'target') == switch[1]

        move = readme('move', '--joints')
        run_ok(move, 'SUCCEEDED')
        target = np.array([float(v) for v in option(move, '--joints').split(',')])
        assert wait_for(lambda: hardware.positions(joints) is not None
                        and np.abs(np.array(hardware.positions(joints)) - target).max() < 0.02,
                        10.0), f'the hardware is at {hardware.positions(joints)}'
        before = np.array(hardware.positions(joints))
        run_ok(readme('move', '--pose'), 'SUCCEEDED')
        assert np.abs(np.array(hardware.positions(joints)) - before).max() > 0.01

        code, output = rdt(readme('disarm'))  # as the README warns: not while on hardware
        assert code != 0 and 'switch to sim first' in output, output
        run_ok(['switch', 'sim'], 'active target: sim')
        run_ok(readme('disarm'), 'disarmed')
        assert parameter(ros_node, names.bridge, 'hardware_armed') is False
    finally:
        hardware.close()
    assert graph.process.poll() is None, graph.output()[-3000:]


def test_snapshot_writes_the_image(tmp_path):
    args = readme('snapshot')
    image_path = tmp_path / option(args, '--output')
    code, output = rdt(args, cwd=tmp_path)
    assert code == 0 and 'Traceback' not in output, output
    import matplotlib.image  # noqa: PLC0415
    image = matplotlib.image.imread(image_path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01, 'the image is blank'
