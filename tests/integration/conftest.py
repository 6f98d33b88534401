"""Fixtures that start the real node graph as processes and a real rclpy client beside it."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.node import Node

from reverse_digital_twin.client import BackgroundNode, TrajectoryClient, make_trajectory
from reverse_digital_twin.client import wait_for
from reverse_digital_twin.commander import TwinCommander, TwinError
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import CONTROLLER_NODE, sim_graph
from reverse_digital_twin.robot_setup import load_robot


@pytest.fixture(scope='session')
def ros_node() -> Iterator[Node]:
    """One rclpy node in the test process, spun in a background thread."""
    rclpy.init()
    with BackgroundNode('rdt_test_client') as node:
        yield node
    rclpy.shutdown()


@dataclass
class Robot:
    """A running sim graph plus everything a test needs to drive and check it."""

    name: str
    stack: Stack
    client: TrajectoryClient
    controller: str  # fully qualified controller name
    namespace: str
    joints: list[str]
    home: np.ndarray
    model: RobotModel
    node: Node

    def topic(self, name: str) -> str:
        return f'/{self.namespace}/{name}' if self.namespace else f'/{name}'

    def positions(self) -> np.ndarray:
        return np.array(self.client.positions(self.joints))

    def wait_messages(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` more joint_states messages have arrived."""
        start = self.client.received
        return wait_for(lambda: self.client.received >= start + count, timeout)

    def assert_still(self, before: np.ndarray, tolerance: float = 1e-3,
                     messages: int = 20) -> None:
        """Nothing moved: over the next `messages` joint states the arm stays where it was."""
        assert self.wait_messages(messages), 'joint_states stopped arriving'
        moved = np.abs(self.positions() - before)
        assert moved.max() < tolerance, \
            f'the arm moved by {dict(zip(self.joints, moved.round(5)))} rad'

    def pose(self, amplitude: float) -> np.ndarray:
        """A pose `amplitude` rad away from home in every joint (alternating directions, away
        from the obstacles of the test scenes), inside the URDF limits."""
        signs = np.where(np.arange(len(self.joints)) % 2 == 0, -1.0, 1.0)
        lower = np.array([self.model.joint(j).limits.lower for j in self.joints]) + 0.05
        upper = np.array([self.model.joint(j).limits.upper for j in self.joints]) - 0.05
        return np.clip(self.home + amplitude * signs, lower, upper)

    def go_home(self, duration: float = 2.0) -> None:
        """Bring the arm back to its start pose (tests begin from a known state)."""
        if np.abs(self.positions() - self.home).max() < 1e-3:
            return
        outcome = self.client.send(make_trajectory(self.joints, [self.home], [duration]),
                                   timeout=duration + 10)
        assert outcome.status_name == 'SUCCEEDED', outcome

    def move(self, waypoints: Sequence[Sequence[float]], times: Sequence[float], **kwargs):
        return self.client.send(make_trajectory(self.joints, waypoints, times),
                                timeout=times[-1] + 15, **kwargs)


def start_robot(node: Node, robot: str, tmp_path: Path, namespace: str = '',
                overrides: dict | None = None) -> Robot:
    specs = sim_graph(robot, namespace, overrides)
    log = open(tmp_path / f'{robot}_nodes.log', 'w')  # noqa: SIM115 - closed by stop_robot
    stack = Stack(specs, echo=log).start()
    controller = next(s for s in specs if s.name == CONTROLLER_NODE).fully_qualified_name
    joint_states = f'/{namespace}/joint_states' if namespace else '/joint_states'
    client = TrajectoryClient(node, controller, joint_states)
    setup = load_robot(robot)
    handle = Robot(robot, stack, client, controller, namespace, setup.joints, setup.home,
                   setup.model(), node)
    handle._log = log  # type: ignore[attr-defined]
    if not client.wait_ready(timeout=60.0):
        dead = stack.dead()
        stop_robot(handle)
        raise RuntimeError(f'{robot} stack did not come up: '
                           f'{dead[0].describe_exit() if dead else "no action server"}')
    assert handle.wait_messages(5, timeout=30.0), 'no joint_states'
    return handle


def stop_robot(robot: Robot) -> None:
    robot.stack.stop()
    robot.client.close()
    robot._log.close()  # type: ignore[attr-defined]


@pytest.fixture(scope='module', params=['rdt_arm6', 'panda'])
def robot(request, ros_node, tmp_path_factory) -> Iterator[Robot]:
    """The sim graph of each test robot; the Panda runs in a namespace to prove nothing
    assumes the root namespace."""
    namespace = 'sim' if request.param == 'panda' else ''
    handle = start_robot(ros_node, request.param, tmp_path_factory.mktemp(request.param),
                         namespace)
    yield handle
    stop_robot(handle)


@pytest.fixture
def at_home(robot: Robot) -> Robot:
    robot.go_home()
    return robot


# --- the reverse twin: bridge + twin (/sim) + stand-in hardware (/hw) ---------------------------

class Twin:
    """A running twin graph with a client at the bridge and views of both targets.

    Every operation goes through :class:`TwinCommander`; this adds the processes and helpers.
    """

    def __init__(self, node: Node, robot: str, tmp_path: Path,
                 overrides: dict | None = None, hardware: str = 'standin',
                 calibration_file: str = '') -> None:
        """``hardware``: 'standin' (default) or '' (the twin alone behind the bridge: a
        cheaper graph for tests that need no hardware); ``calibration_file``: the graph's."""
        from reverse_digital_twin.stack import TwinNames, twin_graph  # noqa: PLC0415
        self.node = node
        self.name = robot
        self.names = TwinNames()
        self.specs = twin_graph(robot, hardware=hardware, overrides=overrides,
                                calibration_file=calibration_file)
        self.log = open(tmp_path / f'{robot}_twin.log', 'w')  # noqa: SIM115
        self.stack = Stack(self.specs, echo=self.log).start()
        self.commander = TwinCommander(node, self.names)
        self.client, self.hw, self.sim = (self.commander.client, self.commander.hardware,
                                          self.commander.sim)
        self.divergences = self.commander.divergences
        self.statuses = self.commander.statuses
        setup = load_robot(robot)
        self.joints, self.home, self.model = setup.joints, setup.home, setup.model()
        try:
            self.commander.wait_ready(60.0, hardware=bool(hardware), alive=self._dead)
        except TwinError as exc:
            self.close()
            raise RuntimeError(f'twin graph for {robot} did not come up: {exc}') from None
        if not hardware:
            return
        # The bridge, too, must hear the hardware before a test may switch to it: discovery
        # reaches each subscriber in its own time.
        self.arm(True)
        heard = wait_for(lambda: self.switch('hardware').success, 20, poll=0.1)
        self.switch('sim')
        self.arm(False)
        if not heard:
            self.close()
            raise RuntimeError('the bridge never heard the hardware\'s joint states')

    def _dead(self) -> str | None:
        dead = self.stack.dead()
        return dead[0].describe_exit() if dead else None

    def close(self) -> None:
        self.stack.stop()
        self.commander.close()
        self.log.close()

    def switch(self, target: str):
        return self.commander.switch(target)

    def arm(self, armed: bool = True):
        return self.commander.arm(armed)

    def predict(self, trajectory, start_state=None):
        return self.commander.predict(trajectory, start_state)

    def set_standin(self, **values) -> None:
        self.commander.set_perturbation(**values)

    def set_bridge(self, **values) -> None:
        self.commander.set_parameters(self.names.bridge, values)

    def set_parameters_raw(self, node: str, request):
        """A SetParameters call as-is, for tests of how a node answers bad values."""
        from rcl_interfaces.srv import SetParameters  # noqa: PLC0415
        return self.commander.call(SetParameters, f'{node}/set_parameters', request)

    @property
    def _bridge_params(self) -> str:  # older tests: twin._call(twin._bridge_params, request)
        return self.names.bridge

    _call = set_parameters_raw

    def pose(self, amplitude: float) -> np.ndarray:
        signs = np.where(np.arange(len(self.joints)) % 2 == 0, -1.0, 1.0)
        lower = np.array([self.model.joint(j).limits.lower for j in self.joints]) + 0.05
        upper = np.array([self.model.joint(j).limits.upper for j in self.joints]) - 0.05
        return np.clip(self.home + amplitude * signs, lower, upper)

    def positions(self, client: TrajectoryClient) -> np.ndarray:
        return np.array(client.positions(self.joints))

    def send(self, waypoints, times, **kwargs):
        return self.client.send(make_trajectory(self.joints, waypoints, times),
                                timeout=times[-1] + 20, **kwargs)

    def reset(self) -> None:
        """Both worlds at home, target sim, hardware disarmed."""
        if self.switch('sim').active_target != 'sim':
            raise AssertionError('could not switch back to sim')
        for target, view in (('sim', self.sim), ('hardware', self.hw)):
            if np.abs(self.positions(view) - self.home).max() > 5e-3:
                if target == 'hardware':
                    assert self.arm(True).success
                    assert self.switch('hardware').success
                outcome = self.send([self.home], [2.0])
                assert outcome.status_name == 'SUCCEEDED', (target, outcome)
                self.switch('sim')
        self.arm(False)


@pytest.fixture(scope='module')
def twin(ros_node, tmp_path_factory) -> Iterator[Twin]:
    handle = Twin(ros_node, 'rdt_arm6', tmp_path_factory.mktemp('twin'))
    yield handle
    handle.close()


@pytest.fixture
def fresh(twin: Twin) -> Twin:
    """The twin graph with both worlds at home, target sim, hardware disarmed."""
    twin.reset()
    return twin


def contacts_along(twin: Twin, states: list) -> list:
    """Contacts of the robot with anything (scene, itself) in recorded joint states, checked in
    a world of the twin's URDF and scene (the planner's own checker, no margins)."""
    from reverse_digital_twin.core.paths import resolve
    from reverse_digital_twin.core.physics import PhysicsWorld
    from reverse_digital_twin.core.planning import CollisionChecker
    from reverse_digital_twin.core.scene import load_scene
    from reverse_digital_twin.robot_setup import robot_config
    from reverse_digital_twin.ros_params import read_node_parameters
    from reverse_digital_twin.stack import SIM_NODE
    sim = read_node_parameters(robot_config(twin.name), SIM_NODE)
    with PhysicsWorld(twin.model, str(resolve(sim['robot_description_file'])),
                      load_scene(resolve(sim['scene_file']))) as world:
        checker = CollisionChecker(world, twin.joints,
                                   home=dict(zip(twin.joints, map(float, twin.home))))
        found = []
        for msg in states:
            index = {n: i for i, n in enumerate(msg.name)}
            q = np.array([msg.position[index[j]] for j in twin.joints])
            contact = checker.contact(q)
            if contact is not None:
                found.append((q.round(3).tolist(), contact))
        return found


@contextmanager
def graph_observer() -> Iterator[Node]:
    """A node in a fresh context, to read the graph with.

    Fast DDS's graph cache can keep a node of a process that is long gone (a participant's
    last entity info handled after its removal: ros2/ros2#514, #1413); a session-long node
    collects such ghosts, a fresh participant only hears live ones.
    """
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('rdt_graph_observer', context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
