"""Fixtures that start the real node graph as processes and a real rclpy client beside it."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.node import Node

from reverse_digital_twin.client import BackgroundNode, TrajectoryClient, make_trajectory
from reverse_digital_twin.client import wait_for
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.nodes.ros_common import LATCHED_QOS
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import CONTROLLER_NODE, load_robot, sim_graph


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
    """A running twin graph with a client at the bridge and views of both targets."""

    def __init__(self, node: Node, robot: str, tmp_path: Path,
                 overrides: dict | None = None) -> None:
        from rcl_interfaces.srv import SetParameters  # noqa: PLC0415
        from rdt_interfaces.msg import BridgeStatus, Divergence  # noqa: PLC0415
        from rdt_interfaces.srv import PredictTrajectory, SwitchTarget  # noqa: PLC0415
        from std_srvs.srv import SetBool  # noqa: PLC0415

        from reverse_digital_twin.stack import twin_graph  # noqa: PLC0415
        self.node = node
        self.name = robot
        self.specs = twin_graph(robot, hardware='standin', overrides=overrides)
        self.log = open(tmp_path / f'{robot}_twin.log', 'w')  # noqa: SIM115
        self.stack = Stack(self.specs, echo=self.log).start()
        self.client = TrajectoryClient(node, '/joint_trajectory_controller', '/joint_states')
        self.hw = TrajectoryClient(node, '/hw/joint_trajectory_controller', '/hw/joint_states')
        self.sim = TrajectoryClient(node, '/sim/joint_trajectory_controller', '/sim/joint_states')
        self._switch = node.create_client(SwitchTarget,
                                          '/joint_trajectory_controller/switch_target')
        self._arm = node.create_client(SetBool, '/joint_trajectory_controller/arm_hardware')
        self._predict = node.create_client(PredictTrajectory,
                                           '/sim/pybullet_sim/predict_trajectory')
        self._standin_params = node.create_client(SetParameters,
                                                  '/hw/standin_robot/set_parameters')
        self._bridge_params = node.create_client(SetParameters,
                                                 '/joint_trajectory_controller/set_parameters')
        self.divergences: list = []
        self.statuses: list = []
        self._subs = [
            node.create_subscription(Divergence, '/joint_trajectory_controller/divergence',
                                     self.divergences.append, 10),
            node.create_subscription(BridgeStatus, '/joint_trajectory_controller/status',
                                     self.statuses.append, LATCHED_QOS)]
        setup = load_robot(robot)
        self.joints, self.home, self.model = setup.joints, setup.home, setup.model()
        ok = all(c.wait_ready(60.0) for c in (self.client, self.hw, self.sim))
        ok = ok and all(c.wait_for_service(timeout_sec=30.0)
                        for c in (self._switch, self._arm, self._predict, self._standin_params,
                                  self._bridge_params))
        if not ok:
            dead = self.stack.dead()
            self.close()
            raise RuntimeError(f'twin graph for {robot} did not come up: '
                               f'{dead[0].describe_exit() if dead else "timeout"}')

    def close(self) -> None:
        self.stack.stop()
        for c in (self.client, self.hw, self.sim):
            c.close()
        for s in self._subs:
            self.node.destroy_subscription(s)
        for c in (self._switch, self._arm, self._predict, self._standin_params,
                  self._bridge_params):
            self.node.destroy_client(c)
        self.log.close()

    def _call(self, client, request, timeout: float = 10.0):
        future = client.call_async(request)
        assert wait_for(future.done, timeout), f'no answer from {client.srv_name}'
        return future.result()

    def switch(self, target: str):
        from rdt_interfaces.srv import SwitchTarget  # noqa: PLC0415
        return self._call(self._switch, SwitchTarget.Request(target=target))

    def arm(self, armed: bool = True):
        from std_srvs.srv import SetBool  # noqa: PLC0415
        return self._call(self._arm, SetBool.Request(data=armed))

    def predict(self, trajectory, start_state=None):
        from rdt_interfaces.srv import PredictTrajectory  # noqa: PLC0415
        request = PredictTrajectory.Request(trajectory=trajectory)
        if start_state is not None:
            request.start_state = start_state
        return self._call(self._predict, request, 30.0).verdict

    def _set(self, client, values: dict) -> None:
        from rcl_interfaces.srv import SetParameters  # noqa: PLC0415
        from rclpy.parameter import Parameter  # noqa: PLC0415
        request = SetParameters.Request(parameters=[
            Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        result = self._call(client, request)
        assert all(r.successful for r in result.results), result

    def set_standin(self, **values) -> None:
        self._set(self._standin_params, {f'perturbation.{k}': v for k, v in values.items()})

    def set_bridge(self, **values) -> None:
        self._set(self._bridge_params, values)

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
