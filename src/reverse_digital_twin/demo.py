"""`rdt demo` / `make demo`: the twin driven exactly as MoveIt drives a real arm.

Starts the sim graph, sends a 3-point trajectory through FollowJointTrajectory, prints the
result and the final joint error, and plots desired vs measured joint positions.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import rclpy

from reverse_digital_twin.client import BackgroundNode, TrajectoryClient, make_trajectory
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import CONTROLLER_NODE, NodeSpec, load_robot


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


def run_demo(robot: str, specs: list[NodeSpec], output: str) -> int:
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
                                      f'/{ns}/joint_states' if ns else '/joint_states')
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
