"""The bridge killed mid-goal in front of hardware that runs as its own graph.

A real robot's driver runs outside the twin's runner, so when the bridge dies, the driver goes
on with whatever it was given. This module measures how far the hardware moves after the bridge
is killed (SIGKILL) in the middle of a long goal: with the bridge's bounded look-ahead
(``hardware_lookahead``) and without it (0: the whole goal at once). One home for the
integration test (tests/integration/test_bridge_death.py) and ``make bench``
(benchmarks/bench_faults.py, ``bridge_death_travel_rad``).
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from trajectory_msgs.msg import JointTrajectory

from reverse_digital_twin.client import TrajectoryClient, make_trajectory, wait_for
from reverse_digital_twin.commander import TwinCommander
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import TwinNames, standin_graph, twin_graph

#: The hardware driver the twin graph points at: the stand-in's controller in its own graph.
HARDWARE_CONTROLLER = '/hw/joint_trajectory_controller'
#: rad: the hardware is at rest when it moves less than this over STILL_SECONDS
STILL_TOLERANCE = 1e-3
#: s: see STILL_TOLERANCE
STILL_SECONDS = 0.5
#: Share of the goal's path covered when the bridge is killed.
KILLED_AT = 0.3


@dataclass(frozen=True)
class DeathRun:
    """What the hardware did after the bridge was killed."""

    travel_rad: float  # largest joint motion from the kill until it came to rest
    left_rad: float  # largest joint motion the goal still had ahead at the kill
    stopped_after_s: float  # from the kill to the last motion above STILL_TOLERANCE
    speed_rad_s: float  # the goal's largest joint speed (its waypoints are linear)


def stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class SplitGraphs:
    """The stand-in robot as a graph of its own, and the twin's graph pointed at it."""

    def __init__(self, node, robot: str, log_dir: Path,
                 bridge: dict | None = None) -> None:
        self.node = node
        self.names = TwinNames()
        self._logs: list[TextIO] = []
        self.hardware = Stack(standin_graph(robot), echo=self._log(log_dir / 'hardware.log'))
        self.hardware.start()
        self.twin = Stack(twin_graph(robot, hardware=HARDWARE_CONTROLLER,
                                     overrides={'bridge': dict(bridge or {})}),
                          echo=self._log(log_dir / 'twin.log')).start()
        self.commander = TwinCommander(node, self.names)
        setup = load_robot(robot)
        self.joints, self.home, self.model = setup.joints, setup.home, setup.model()
        self.pending = None
        # The bridge's streaming topic; kept for the graphs' life (a publisher destroyed right
        # after publishing may take its message with it)
        self.stream = node.create_publisher(JointTrajectory, self.names.joint_trajectory, 10)
        self.wait_ready()

    def _log(self, path: Path) -> TextIO:
        log = open(path, 'w')  # noqa: SIM115 - closed by close()
        self._logs.append(log)
        return log

    def _dead(self) -> str | None:
        dead = self.hardware.dead() + self.twin.dead()
        return dead[0].describe_exit() if dead else None

    def wait_ready(self) -> None:
        """Both graphs up, and the bridge hears the hardware (it may be switched to it)."""
        self.commander.wait_ready(90.0, hardware=True, alive=self._dead)
        self.commander.arm(True)
        heard = wait_for(lambda: self.commander.switch('hardware').success, 30, poll=0.1)
        self.commander.switch('sim')
        self.commander.arm(False)
        if not heard:
            raise RuntimeError("the bridge never heard the hardware's joint states")

    @property
    def hw(self) -> TrajectoryClient:
        return self.commander.hardware

    def positions(self) -> np.ndarray:
        return np.array(self.hw.positions(self.joints))

    def restart_bridge(self, **bridge) -> None:
        """A new bridge (after a kill), with these parameters set."""
        self.twin.restart(self.names.bridge)
        self.wait_ready()
        if bridge:
            self.commander.set_parameters(self.names.bridge, bridge)

    def far_pose(self, amplitude: float = 0.6) -> np.ndarray:
        signs = np.where(np.arange(len(self.joints)) % 2 == 0, -1.0, 1.0)
        lower = np.array([self.model.joint(j).limits.lower for j in self.joints]) + 0.05
        upper = np.array([self.model.joint(j).limits.upper for j in self.joints]) - 0.05
        return np.clip(self.home + amplitude * signs, lower, upper)

    def go_home(self, attempts: int = 2) -> None:
        """The hardware back home through the bridge (armed, target hardware). Getting there
        is set-up, not what is measured: a move the bridge aborted because the hardware's
        states paused past its liveness deadline (a busy machine; the bridge then disarms) is
        re-armed and tried again."""
        for attempt in range(attempts):
            assert self.commander.arm(True).success
            assert self.commander.switch('hardware').success
            if np.abs(self.positions() - self.home).max() <= 5e-3:
                return
            outcome = self.commander.client.send(
                make_trajectory(self.joints, [self.home], [2.0]), timeout=40)
            if outcome.status_name == 'SUCCEEDED':
                return
            assert 'no joint states from the hardware' in outcome.error_string \
                and attempt + 1 < attempts, outcome

    def kill_bridge_mid_goal(self, duration: float = 6.0,
                             sig: signal.Signals = signal.SIGKILL,
                             streamed: bool = False) -> DeathRun:
        """From home, a goal of ``duration`` s to a far pose (``streamed``: the same trajectory
        on the bridge's joint_trajectory topic); the bridge gets ``sig`` (killed, or hung with
        SIGSTOP) once the hardware has covered KILLED_AT of the way; then wait until the
        hardware rests. The client's goal is left in ``self.pending``."""
        self.go_home()
        start, goal = self.positions(), self.far_pose()
        span = np.abs(goal - start)
        trajectory = make_trajectory(self.joints, [goal], [duration])
        if streamed:
            assert wait_for(lambda: self.stream.get_subscription_count() > 0, 10)
            self.stream.publish(trajectory)
            self.pending = None
        else:
            self.pending = self.commander.client.send_async(trajectory)
        assert wait_for(lambda: np.abs(self.positions() - start).max() >= KILLED_AT * span.max(),
                        duration + 60, poll=0.005), 'the hardware never moved'
        self.hw.history.clear()
        self.hw.record = True
        at_kill_msg = self.hw.latest()
        assert at_kill_msg is not None
        at_kill, killed = self.positions(), stamp(at_kill_msg)
        self.twin.process(self.names.bridge).signal(sig)

        def at_rest() -> bool:  # judged on the hardware's own stamps: a busy machine may
            history = list(self.hw.history)  # delay the messages, not change them
            if not history or stamp(history[-1]) - killed < STILL_SECONDS:
                return False
            last = stamp(history[-1])
            recent = np.array([self._positions(m) for m in history
                               if stamp(m) >= last - STILL_SECONDS])
            return len(recent) >= STILL_SECONDS * 50 \
                and np.abs(recent - recent[-1]).max() < STILL_TOLERANCE
        try:
            assert wait_for(at_rest, duration + 20, poll=0.01), 'the hardware never came to rest'
        finally:
            self.hw.record = False
        history = list(self.hw.history)
        rest = self._positions(history[-1])
        moving = [stamp(m) for m in history
                  if np.abs(self._positions(m) - rest).max() >= STILL_TOLERANCE]
        return DeathRun(travel_rad=float(np.abs(rest - at_kill).max()),
                        left_rad=float(np.abs(goal - at_kill).max()),
                        stopped_after_s=(moving[-1] - killed) if moving else 0.0,
                        speed_rad_s=float(span.max() / duration))

    def _positions(self, msg) -> np.ndarray:
        index = {n: i for i, n in enumerate(msg.name)}
        return np.array([msg.position[index[j]] for j in self.joints])

    def close(self) -> None:
        self.node.destroy_publisher(self.stream)
        self.twin.stop()
        self.hardware.stop()
        self.commander.close()
        for log in self._logs:
            log.close()
