"""`make demo` / `rdt demo`: the reverse twin's story end to end, or the twin alone.

The twin story (default), in under a minute:
1. An unsafe goal (into the scene) is refused with the twin's reason; the hardware does not move.
2. A safe goal runs in the twin (sim).
3. The same goal, same client object, runs on the stand-in hardware in shadow mode.
4. A heavy payload is put on the stand-in: reality diverges from the prediction and the bridge
   stops the hardware.
Prints a report and writes plots of predicted vs measured joints and divergence over time.

``--sim-only``: the twin alone, looking like a driver; one 3-point trajectory through
FollowJointTrajectory exactly as MoveIt sends it, the result, the final joint error and a plot of
desired vs measured positions.

Nothing here is robot-specific: goals are derived from the robot's configuration and checked
with the twin's own prediction; every twin operation goes through TwinCommander.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from rdt_interfaces.msg import Divergence
from sensor_msgs.msg import JointState

from reverse_digital_twin.client import BackgroundNode, TrajectoryClient, make_trajectory
from reverse_digital_twin.client import wait_for
from reverse_digital_twin.commander import TwinCommander, TwinError
from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import CONTROLLER_NODE, NodeSpec, TwinNames
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.stack import twin_graph

HEAVY_PAYLOAD = 25.0  # kg: twice what a 6-DoF arm of this class is rated for


def demo_waypoints(robot: str, amplitude: float = 0.4) -> tuple[list[str], list[list[float]]]:
    """Three waypoints around the robot's start pose, inside its URDF limits.

    Everything comes from the robot's configuration: the controller joints, the start pose and
    the limits, so the demo runs on any configured robot.
    """
    setup = load_robot(robot)
    joints, start, model = setup.joints, setup.home, setup.model()
    lower = np.array([model.joint(j).limits.lower for j in joints])
    upper = np.array([model.joint(j).limits.upper for j in joints])
    signs = np.where(np.arange(len(joints)) % 2 == 0, -1.0, 1.0)
    waypoints = [start + amplitude * signs, start - 0.5 * amplitude * signs, start]
    margin = 0.05
    return joints, [np.clip(w, lower + margin, upper - margin).tolist() for w in waypoints]


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


class TwinStory:
    """The four steps of the twin story against a running twin graph with the stand-in."""

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
    def connect(self, node, names: TwinNames) -> None:
        self.node = node
        self.names = names
        self.commander = TwinCommander(node, names, timeout=30.0)
        self.client, self.hw, self.sim = (self.commander.client, self.commander.hardware,
                                          self.commander.sim)
        self.recording = Recording()
        self.divergences: list[Divergence] = self.commander.divergences
        node.create_subscription(JointState, names.hardware_joint_states, self._on_hw,
                                 SYSTEM_DEFAULT_QOS)
        node.create_subscription(JointState, names.predicted_joint_states, self._on_predicted,
                                 SYSTEM_DEFAULT_QOS)

    def _on_hw(self, msg: JointState) -> None:
        if self.recording.on:
            index = {n: i for i, n in enumerate(msg.name)}
            self.recording.times.append(time.monotonic())
            self.recording.measured.append([msg.position[index[j]] for j in self.joints])

    def _on_predicted(self, msg: JointState) -> None:
        if self.recording.on:
            self.recording.predicted_times.append(time.monotonic())
            self.recording.predicted.append(list(msg.position))

    def switch(self, target: str) -> None:
        reply = self.commander.switch(target, check=True)
        self.say(f'bridge: {reply.message}')

    def predict(self, waypoints, times) -> object:
        return self.commander.predict(make_trajectory(self.joints, waypoints, times))

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
        self.commander.arm(check=True)
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
        normal_payload = self.commander.perturbation()['payload_mass']
        self._set_standin('payload_mass', HEAVY_PAYLOAD)
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
        self._set_standin('payload_mass', normal_payload)
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
        self.commander.set_perturbation(**{name: value})
        self.say(f'stand-in: perturbation.{name} = {value:g}')

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


def run_twin_story(robot: str, output: str, overrides: dict | None = None) -> int:
    """The twin story on the full graph: bridge, twin under /sim, stand-in under /hw."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / 'twin_demo_nodes.log'
    demo = TwinStory(robot, out)
    names = TwinNames()
    specs = twin_graph(robot, hardware='standin', overrides=overrides)
    with open(log_path, 'w') as log, Stack(specs, echo=log) as stack:
        demo.say(f'started {len(specs)} nodes: ' + ', '.join(s.fully_qualified_name for s in specs)
                 + f' (log: {log_path})')
        rclpy.init()
        background = BackgroundNode('rdt_twin_demo')
        try:
            demo.connect(background.node, names)

            def dead() -> str | None:
                gone = stack.dead()
                return gone[0].describe_exit() if gone else None
            try:
                demo.commander.wait_ready(60.0, hardware=True, alive=dead)
            except TwinError as exc:
                print(f'rdt demo: the graph did not come up: {exc}; see {log_path}',
                      file=sys.stderr)
                return 1
            demo.say(f'the bridge serves {names.bridge}; twin under /{names.twin_namespace}, '
                     f'stand-in hardware under /{names.hardware_namespace}')
            return demo.run()
        except RuntimeError as exc:  # TwinError included
            print(f'rdt demo: {exc}', file=sys.stderr)
            return 1
        finally:
            if hasattr(demo, 'commander'):
                demo.commander.close()
            background.close()
            rclpy.shutdown()


def run(robot: str, output: str, sim_only: bool = False, specs: list[NodeSpec] | None = None,
        overrides: dict | None = None) -> int:
    """`rdt demo`: the twin story, or with ``sim_only`` the twin alone (``specs``: its graph)."""
    if sim_only:
        from reverse_digital_twin.stack import sim_graph  # noqa: PLC0415
        return run_sim_only(robot, specs or sim_graph(robot, overrides=overrides), output)
    return run_twin_story(robot, output, overrides)


def run_sim_only(robot: str, specs: list[NodeSpec], output: str) -> int:
    """The twin alone (no bridge): one trajectory, as MoveIt would send it to a driver."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / 'demo_nodes.log'
    joints, waypoints = demo_waypoints(robot)
    times = [1.5, 3.0, 4.5]
    controller = next(s for s in specs if s.name == CONTROLLER_NODE).fully_qualified_name
    ns = next(s for s in specs if s.name == CONTROLLER_NODE).namespace.strip('/')
    step = _Steps()
    with open(log_path, 'w') as log, Stack(specs, echo=log) as stack:
        names = ', '.join(s.fully_qualified_name for s in specs)
        step(f'started {len(specs)} nodes as processes ({names}); '
             f'their output goes to {log_path}')
        rclpy.init()
        background = BackgroundNode('rdt_demo_client')
        node = background.node
        try:
            client = TrajectoryClient(node, controller,
                                      TwinNames(twin_namespace=ns).sim_joint_states if ns
                                      else TwinNames().joint_states)
            t0 = time.monotonic()
            while not client.wait_ready(timeout=1.0):
                dead = stack.dead()
                if dead:
                    print(f'rdt demo: {dead[0].describe_exit()}', file=sys.stderr)
                    return 1
                if time.monotonic() - t0 > 60:
                    print('rdt demo: the controller did not come up within 60 s; see '
                          f'{log_path}', file=sys.stderr)
                    return 1
            step(f'{controller}/follow_joint_trajectory is up and /joint_states arrive '
                 f'({time.monotonic() - t0:.1f} s)')
            for t, w in zip(times, waypoints):
                values = ', '.join(f'{j}={v:+.3f}' for j, v in zip(joints, w))
                step(f'  waypoint at {t:.1f} s: {values}')
            client.record = True
            started = time.monotonic()
            outcome = client.send(make_trajectory(joints, waypoints, times),
                                  timeout=times[-1] + 10)
            client.record = False
            step(f'result after {time.monotonic() - started:.2f} s: {outcome.status_name}, '
                 f'error_code {outcome.error_code} ({outcome.error_name}) '
                 f'"{outcome.error_string}"; {len(outcome.feedback)} feedback messages')
            final = np.array(client.positions(joints))
            error = final - np.array(waypoints[-1])
            step('final joint error: ' + ', '.join(f'{j} {e * 1000:+.2f} mrad'
                                                   for j, e in zip(joints, error)))
            step(f'max |error| {np.abs(error).max() * 1000:.2f} mrad')
            plot = out / 'demo_trajectory.png'
            if _plot(client, joints, waypoints, times, outcome.feedback, plot):
                step(f'plot of desired vs measured joint positions: {plot}')
            return 0 if outcome.status_name == 'SUCCEEDED' else 1
        finally:
            background.close()
            rclpy.shutdown()


class _Steps:
    """Numbered, timestamped progress lines."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f'[{time.monotonic() - self.t0:6.2f} s] {text}', flush=True)


def _plot(client: TrajectoryClient, joints: list[str], waypoints, times, feedback,
          path: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    history = client.history
    if not history or not feedback:
        return False
    t0 = history[0].header.stamp.sec + history[0].header.stamp.nanosec * 1e-9
    ts = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - t0 for m in history]
    index = {n: i for i, n in enumerate(history[0].name)}
    fb_t = [f.feedback.header.stamp.sec + f.feedback.header.stamp.nanosec * 1e-9 - t0
            for f in feedback]
    fig, axes = plt.subplots(len(joints), 1, figsize=(8, 1.6 * len(joints)), sharex=True)
    for k, (ax, j) in enumerate(zip(np.atleast_1d(axes), joints)):
        ax.plot(ts, [m.position[index[j]] for m in history], label='measured (/joint_states)')
        ax.plot(fb_t, [f.feedback.desired.positions[k] for f in feedback], '--',
                label='desired (feedback)')
        ax.set_ylabel(f'{j}\n[rad]', fontsize=7)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc='upper right')
    np.atleast_1d(axes)[-1].set_xlabel('time [s]')
    fig.suptitle('FollowJointTrajectory on the PyBullet twin')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
