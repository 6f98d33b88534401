"""`make demo` / `rdt demo`: the reverse twin's story, end to end, in under a minute.

1. An unsafe goal (into the scene) is refused with the twin's reason; the hardware does not move.
2. A safe goal runs in the twin (sim).
3. The same goal, same client object, runs on the stand-in hardware in shadow mode.
4. A heavy payload is put on the stand-in: reality diverges from the prediction and the bridge
   stops the hardware.
Prints a report and writes plots of predicted vs measured joints and divergence over time.
Nothing here is robot-specific: goals are derived from the robot's configuration and checked
with the twin's own prediction service.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from rclpy.parameter import Parameter
from rcl_interfaces.srv import SetParameters
from rdt_interfaces.msg import Divergence
from rdt_interfaces.srv import PredictTrajectory, SwitchTarget
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from reverse_digital_twin.client import BackgroundNode, TrajectoryClient, make_trajectory
from reverse_digital_twin.client import wait_for
from reverse_digital_twin.demo import demo_waypoints
from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import TwinNames, load_robot, twin_graph

BRIDGE = '/joint_trajectory_controller'
HEAVY_PAYLOAD = 25.0  # kg: twice what a 6-DoF arm of this class is rated for


@dataclass
class Recording:
    """Measured hardware positions and the bridge's time-aligned prediction."""

    times: list[float] = field(default_factory=list)
    measured: list[list[float]] = field(default_factory=list)
    predicted_times: list[float] = field(default_factory=list)
    predicted: list[list[float]] = field(default_factory=list)
    on: bool = False

    @property
    def complete(self) -> bool:
        return bool(self.times) and bool(self.predicted_times)

    def aligned(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(measured times, measured, predicted times, predicted), time zero when the hardware
        accepted the goal (the first prediction sample); earlier states say nothing."""
        t0 = self.predicted_times[0]
        tm = np.array(self.times) - t0
        keep = tm >= -0.05
        return (tm[keep], np.array(self.measured)[keep], np.array(self.predicted_times) - t0,
                np.array(self.predicted))


class Demo:
    def __init__(self, robot: str, output: Path) -> None:
        self.robot = robot
        self.output = output
        self.model = load_robot(robot).model()
        self.t0 = time.monotonic()
        self.report: list[str] = []

    def say(self, text: str) -> None:
        print(f'[{time.monotonic() - self.t0:5.1f} s] {text}', flush=True)

    def note(self, text: str) -> None:
        self.report.append(text)
        self.say(text)

    # --- ROS plumbing ------------------------------------------------------------------------
    def connect(self, node) -> None:
        self.node = node
        self.client = TrajectoryClient(node, BRIDGE, '/joint_states')
        self.hw = TrajectoryClient(node, '/hw/joint_trajectory_controller', '/hw/joint_states')
        self.sim = TrajectoryClient(node, '/sim/joint_trajectory_controller', '/sim/joint_states')
        self.switch_srv = node.create_client(SwitchTarget, f'{BRIDGE}/switch_target')
        self.arm_srv = node.create_client(SetBool, f'{BRIDGE}/arm_hardware')
        self.predict_srv = node.create_client(PredictTrajectory,
                                              TwinNames().predict_trajectory)
        self.standin_params = node.create_client(SetParameters,
                                                 '/hw/standin_robot/set_parameters')
        self.recording = Recording()
        self.divergences: list[Divergence] = []
        node.create_subscription(JointState, '/hw/joint_states', self._on_hw, SYSTEM_DEFAULT_QOS)
        node.create_subscription(JointState, f'{BRIDGE}/predicted_joint_states',
                                 self._on_predicted, SYSTEM_DEFAULT_QOS)
        node.create_subscription(Divergence, f'{BRIDGE}/divergence', self.divergences.append, 10)

    def _on_hw(self, msg: JointState) -> None:
        if self.recording.on:
            index = {n: i for i, n in enumerate(msg.name)}
            self.recording.times.append(time.monotonic())
            self.recording.measured.append([msg.position[index[j]] for j in self.joints])

    def _on_predicted(self, msg: JointState) -> None:
        if self.recording.on:
            self.recording.predicted_times.append(time.monotonic())
            self.recording.predicted.append(list(msg.position))

    def call(self, client, request, timeout: float = 30.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f'{client.srv_name} is not available')
        future = client.call_async(request)
        if not wait_for(future.done, timeout):
            raise RuntimeError(f'no answer from {client.srv_name}')
        return future.result()

    def switch(self, target: str) -> None:
        reply = self.call(self.switch_srv, SwitchTarget.Request(target=target))
        if not reply.success:
            raise RuntimeError(reply.message)
        self.say(f'bridge: {reply.message}')

    def predict(self, waypoints, times) -> object:
        request = PredictTrajectory.Request(trajectory=make_trajectory(self.joints, waypoints,
                                                                       times))
        return self.call(self.predict_srv, request).verdict

    def positions(self, view: TrajectoryClient) -> np.ndarray:
        return np.array(view.positions(self.joints))

    # --- the story -------------------------------------------------------------------------------
    def find_unsafe_goal(self, home: np.ndarray) -> tuple[list, list, object]:
        """Sweep single joints far from home until the twin predicts a collision."""
        lower = np.array([self.model.joint(j).limits.lower for j in self.joints])
        upper = np.array([self.model.joint(j).limits.upper for j in self.joints])
        for amplitude in (1.57, -1.57, 2.6, -2.6):
            for j in range(len(self.joints)):
                target = home.copy()
                target[j] = np.clip(target[j] + amplitude, lower[j], upper[j])
                verdict = self.predict([target], [2.0])
                if verdict.collisions:
                    return [target], [2.0], verdict
        raise RuntimeError('no single-joint sweep of this robot hits anything in its scene')

    def find_safe_goal(self, home: np.ndarray, times: list[float]) -> list:
        """Out-and-back motions around home, the first one the twin predicts safe."""
        lower = np.array([self.model.joint(j).limits.lower for j in self.joints]) + 0.05
        upper = np.array([self.model.joint(j).limits.upper for j in self.joints]) - 0.05
        n = len(self.joints)
        for amplitude in (0.4, -0.4, 0.25, -0.25):
            signs = np.where(np.arange(n) % 2 == 0, -1.0, 1.0)
            out = np.clip(home + amplitude * signs, lower, upper)
            back = np.clip(home - 0.5 * amplitude * signs, lower, upper)
            waypoints = [out.tolist(), back.tolist(), home.tolist()]
            if self.predict(waypoints, times).safe:
                return waypoints
        raise RuntimeError('no safe demo motion found around the start pose')

    def run(self) -> int:
        joints, waypoints = demo_waypoints(self.robot)
        self.joints = joints
        home = np.array(waypoints[-1])
        times = [1.5, 3.0, 4.5]
        waypoints = self.find_safe_goal(home, times)
        ok = True

        self.say('1/4  an unsafe goal, aimed at the hardware')
        assert self.call(self.arm_srv, SetBool.Request(data=True)).success
        self.switch('shadow')
        unsafe, unsafe_times, verdict = self.find_unsafe_goal(home)
        before = self.positions(self.hw)
        outcome = self.client.send(make_trajectory(joints, unsafe, unsafe_times), timeout=20)
        count = self.hw.received
        wait_for(lambda: self.hw.received > count + 50, 5)
        moved = np.abs(self.positions(self.hw) - before).max()
        self.note(f'unsafe goal -> {outcome.status_name} error_code {outcome.error_code}: '
                  f'{outcome.error_string.splitlines()[0]}')
        self.note(f'   hardware moved {moved * 1000:.2f} mrad meanwhile (sensor noise level)')
        ok &= outcome.status_name == 'ABORTED' and moved < 5e-3

        self.say('2/4  a safe goal in the twin')
        self.switch('sim')
        verdict = self.predict(waypoints, times)
        self.note(f'twin verdict for the safe goal: {"safe" if verdict.safe else verdict.summary}'
                  f' (predicted {verdict.duration:.1f} s of motion in '
                  f'{verdict.computation_time * 1000:.0f} ms)')
        outcome = self.client.send(make_trajectory(joints, waypoints, times), timeout=20)
        error = np.abs(self.positions(self.sim) - home).max()
        self.note(f'sim: {outcome.status_name} "{outcome.error_string}", final error '
                  f'{error * 1000:.2f} mrad')
        ok &= outcome.status_name == 'SUCCEEDED'

        self.say('3/4  the same goal, same client, on the stand-in hardware in shadow mode')
        self.switch('shadow')
        shadow_ok = self._record_goal(waypoints, times, 'shadow')
        final = np.abs(self.positions(self.hw) - home).max()
        self.note(f'hardware (shadow): {shadow_ok.status_name} "{shadow_ok.error_string}", '
                  f'final error {final * 1000:.2f} mrad')
        ok &= shadow_ok.status_name == 'SUCCEEDED'
        safe_run = self.recording

        self.say(f'4/4  a {HEAVY_PAYLOAD:g} kg payload on the stand-in, the same goal again')
        self._set_standin('perturbation.payload_mass', HEAVY_PAYLOAD)
        self.divergences.clear()
        outcome = self._record_goal(waypoints, times, 'diverging')
        self.note(f'hardware (shadow): {outcome.status_name} error_code {outcome.error_code}: '
                  f'{outcome.error_string}')
        if self.divergences:
            d = self.divergences[-1]
            self.note(f'   divergence report: joint {d.joint}, {d.error:+.3f} rad against a '
                      f'threshold of {d.threshold:.3f} rad, {d.time_into_goal:.2f} s into the '
                      'goal')
        ok &= outcome.status_name == 'ABORTED' and bool(self.divergences)
        self._set_standin('perturbation.payload_mass', 0.5)
        self.switch('sim')
        plots = self._plot(safe_run, self.recording, self.divergences[-1] if self.divergences
                           else None)
        print('\n=== report ===')
        for line in self.report:
            print(line)
        for path in plots:
            print(f'plot: {path}')
        print('demo:', 'all four steps behaved as expected' if ok else 'SOMETHING DID NOT')
        return 0 if ok else 1

    def _record_goal(self, waypoints, times, label: str):
        self.recording = Recording(on=True)
        try:
            return self.client.send(make_trajectory(self.joints, waypoints, times), timeout=20)
        finally:
            self.recording.on = False

    def _set_standin(self, name: str, value: float) -> None:
        request = SetParameters.Request(parameters=[Parameter(name, value=value)
                                                    .to_parameter_msg()])
        result = self.call(self.standin_params, request)
        if not all(r.successful for r in result.results):
            raise RuntimeError(f'stand-in refused {name}: {result.results}')
        self.say(f'stand-in: {name} = {value:g}')

    def _plot(self, safe: Recording, diverging: Recording, report) -> list[Path]:
        import matplotlib  # noqa: PLC0415
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt  # noqa: PLC0415
        paths = []
        runs = [(safe, 'shadow, no fault'), (diverging, f'{HEAVY_PAYLOAD:g} kg payload')]
        n = len(self.joints)
        fig, axes = plt.subplots(n, 2, figsize=(11, 1.5 * n + 1), sharex='col')
        for col, (rec, title) in enumerate(runs):
            if not rec.complete:
                continue
            tm, measured, tp, predicted = rec.aligned()
            for j in range(n):
                ax = axes[j, col]
                ax.plot(tp, predicted[:, j], '--', label='predicted by the twin')
                ax.plot(tm, measured[:, j], label='measured on the hardware')
                ax.set_ylabel(f'{self.joints[j]}\n[rad]', fontsize=7)
                ax.grid(alpha=0.3)
            axes[0, col].set_title(title, fontsize=10)
            axes[-1, col].set_xlabel('time into the goal [s]')
        axes[0, 0].legend(fontsize=7)
        fig.suptitle('Shadow mode: the twin\'s prediction against the stand-in hardware')
        paths.append(self._save(plt, fig, 'twin_predicted_vs_measured.png'))

        fig, ax = plt.subplots(figsize=(8, 3.5))
        for rec, title in runs:
            if not rec.complete:
                continue
            tm, values, tp, predicted = rec.aligned()
            measured = np.array([np.interp(tp, tm, values[:, j]) for j in range(n)]).T
            ax.plot(tp, np.abs(measured - predicted).max(axis=1) * 1000, label=title)
        if report is not None:
            ax.axhline(report.threshold * 1000, color='red', linestyle=':', label='threshold')
            ax.axvline(report.time_into_goal, color='gray', linestyle=':',
                       label=f'hardware stopped ({report.joint})')
        ax.set_xlabel('time into the goal [s]')
        ax.set_ylabel('max |measured - predicted| [mrad]')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title('Divergence between reality and the twin')
        paths.append(self._save(plt, fig, 'twin_divergence.png'))
        return paths

    def _save(self, plt, fig, name: str) -> Path:
        fig.tight_layout()
        path = self.output / name
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path


def run_twin_demo(robot: str, output: str, overrides: dict | None = None) -> int:
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / 'twin_demo_nodes.log'
    demo = Demo(robot, out)
    specs = twin_graph(robot, hardware='standin', overrides=overrides)
    with open(log_path, 'w') as log, Stack(specs, echo=log) as stack:
        demo.say(f'started {len(specs)} nodes: ' + ', '.join(s.fully_qualified_name for s in specs)
                 + f' (log: {log_path})')
        rclpy.init()
        background = BackgroundNode('rdt_twin_demo')
        node = background.node
        try:
            demo.connect(node)
            deadline = time.monotonic() + 60
            while not all(c.wait_ready(1.0) for c in (demo.client, demo.hw, demo.sim)):
                dead = stack.dead()
                if dead or time.monotonic() > deadline:
                    print('rdt demo: ' + (dead[0].describe_exit() if dead else
                                          f'the graph did not come up; see {log_path}'),
                          file=sys.stderr)
                    return 1
            demo.say('the bridge serves /joint_trajectory_controller; twin under /sim, stand-in '
                     'hardware under /hw')
            return demo.run()
        except RuntimeError as exc:
            print(f'rdt demo: {exc}', file=sys.stderr)
            return 1
        finally:
            background.close()
            rclpy.shutdown()
