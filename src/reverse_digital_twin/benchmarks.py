"""`make bench`: the twin's speed as ratios against limits measured in the same run.

- physics: sim node free-running (real_time_factor 0) versus a bare PyBullet loop of the same
  robot and scene (stepSimulation only), and versus the same loop with the sim node's per-cycle
  work (command + state read) but no ROS;
- control loop: sim node + emulated controller in lockstep (one DDS round trip per control
  cycle) versus a raw rclpy JointState ping-pong between two processes.

Results are printed as a table and written to artifacts/benchmarks.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from reverse_digital_twin.core.paths import resolve
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.robot_model import load_robot_model
from reverse_digital_twin.core.scene import load_scene
from reverse_digital_twin.nodes.ros_common import CLOCK_QOS, PHYSICS_QOS, seconds
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import SIM_NODE, read_node_parameters, robot_config, sim_graph


def _world(robot: str) -> tuple[PhysicsWorld, float, int]:
    sim = read_node_parameters(robot_config(robot), SIM_NODE)
    urdf = resolve(sim['robot_description_file'])
    scene = load_scene(resolve(sim['scene_file'])) if sim.get('scene_file') else None
    rate = float(sim.get('physics_rate', 1000.0))
    per_cycle = max(1, round(rate / float(sim.get('update_rate', 100.0))))
    return PhysicsWorld(load_robot_model(urdf), str(urdf), scene, rate), rate, per_cycle


def bare_pybullet(robot: str, steps: int = 30000) -> float:
    """stepSimulation alone, same robot and scene: the physics limit (steps/s)."""
    world, _, _ = _world(robot)
    try:
        client = world.client
        t0 = time.perf_counter()
        for _ in range(steps):
            client.stepSimulation()
        return steps / (time.perf_counter() - t0)
    finally:
        world.close()


def core_loop(robot: str, steps: int = 30000) -> float:
    """The sim node's work without ROS: read state + apply a command every control cycle."""
    world, _, per_cycle = _world(robot)
    try:
        joints = world.movable_joints
        t0 = time.perf_counter()
        for _ in range(steps // per_cycle):
            state = world.read_state(joints)
            world.apply_command(joints, positions=state.positions.tolist())
            world.step(per_cycle)
        return (steps // per_cycle) * per_cycle / (time.perf_counter() - t0)
    finally:
        world.close()


def sim_node_rate(robot: str, lockstep: bool, warmup: float = 3.0,
                  window: float = 4.0) -> tuple[float, float]:
    """Physics steps/s and control cycles/s of the running graph, from /clock."""
    sim = read_node_parameters(robot_config(robot), SIM_NODE)
    physics_rate = float(sim.get('physics_rate', 1000.0))
    update_rate = float(sim.get('update_rate', 100.0))
    overrides = {SIM_NODE: {'real_time_factor': 0.0, 'lockstep': lockstep,
                            'tf_publish_rate': 50.0}}
    latest = [0.0]
    with Stack(sim_graph(robot, 'bench', overrides), echo=None):
        node = rclpy.create_node('bench_clock')
        node.create_subscription(Clock, '/clock', lambda m: latest.__setitem__(
            0, seconds(m.clock)), CLOCK_QOS)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            end = time.monotonic() + warmup
            while time.monotonic() < end or latest[0] == 0.0:
                executor.spin_once(timeout_sec=0.05)
            start_sim, start_wall = latest[0], time.monotonic()
            while time.monotonic() < start_wall + window:
                executor.spin_once(timeout_sec=0.05)
            sim_per_wall = (latest[0] - start_sim) / (time.monotonic() - start_wall)
        finally:
            executor.shutdown()
            node.destroy_node()
    return sim_per_wall * physics_rate, sim_per_wall * update_rate


def echo_main() -> None:
    """The other process of the raw rclpy baseline: sends every ping back."""
    rclpy.init()
    node = rclpy.create_node('bench_echo')
    pub = node.create_publisher(JointState, 'bench/pong', PHYSICS_QOS)
    node.create_subscription(JointState, 'bench/ping', pub.publish, PHYSICS_QOS)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


def rclpy_round_trip(samples: int = 1000) -> list[float]:
    """Raw rclpy: 7-joint JointState to another process and back, reliable QoS (s)."""
    proc = subprocess.Popen([sys.executable, '-m', 'reverse_digital_twin.benchmarks', 'echo'],
                            stdin=subprocess.DEVNULL)
    node = rclpy.create_node('bench_ping')
    got = threading.Event()
    node.create_subscription(JointState, 'bench/pong', lambda m: got.set(), PHYSICS_QOS)
    pub = node.create_publisher(JointState, 'bench/ping', PHYSICS_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    msg = JointState(name=[f'j{i}' for i in range(7)], position=[0.1] * 7, velocity=[0.0] * 7,
                     effort=[0.0] * 7)
    times = []
    try:
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 or node.count_publishers('bench/pong') == 0:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() > deadline:
                raise RuntimeError('echo process did not appear')
        for i in range(samples + 50):
            got.clear()
            t0 = time.perf_counter()
            pub.publish(msg)
            while not got.is_set():
                executor.spin_once(timeout_sec=1.0)
            if i >= 50:  # warm-up
                times.append(time.perf_counter() - t0)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        executor.shutdown()
        node.destroy_node()
    return times


def run(robot: str, output: Path) -> dict:
    def say(text: str) -> None:
        print(f'[bench] {text}', flush=True)

    results: dict = {'robot': robot, 'machine_cores': os.cpu_count()}
    say(f'{robot}: bare PyBullet stepping ...')
    results['bare_pybullet_steps_per_s'] = bare_pybullet(robot)
    say(f'  {results["bare_pybullet_steps_per_s"]:,.0f} steps/s')
    say('core loop (state read + command every cycle, no ROS) ...')
    results['core_loop_steps_per_s'] = core_loop(robot)
    rclpy.init()
    try:
        say('sim node free-running (real_time_factor 0, no lockstep) ...')
        steps, _ = sim_node_rate(robot, lockstep=False)
        results['sim_node_free_steps_per_s'] = steps
        say('sim node + emulated controller in lockstep ...')
        steps, cycles = sim_node_rate(robot, lockstep=True)
        results['lockstep_steps_per_s'] = steps
        results['lockstep_cycles_per_s'] = cycles
        say('raw rclpy ping-pong between two processes ...')
        rtt = rclpy_round_trip()
    finally:
        rclpy.shutdown()
    results['rclpy_round_trip_p50_ms'] = statistics.median(rtt) * 1e3
    results['rclpy_round_trip_p99_ms'] = statistics.quantiles(rtt, n=100)[98] * 1e3
    results['lockstep_cycle_ms'] = 1e3 / results['lockstep_cycles_per_s']
    bare = results['bare_pybullet_steps_per_s']
    rows = [
        ('bare PyBullet stepSimulation', f'{bare:,.0f} steps/s', '1.00 (baseline)'),
        ('core loop, no ROS', f'{results["core_loop_steps_per_s"]:,.0f} steps/s',
         f'{results["core_loop_steps_per_s"] / bare:.2f} x bare'),
        ('sim node free-running', f'{results["sim_node_free_steps_per_s"]:,.0f} steps/s',
         f'{results["sim_node_free_steps_per_s"] / bare:.2f} x bare'),
        ('sim node + controller, lockstep', f'{results["lockstep_steps_per_s"]:,.0f} steps/s '
         f'({results["lockstep_cycles_per_s"]:,.0f} cycles/s)',
         f'{results["lockstep_steps_per_s"] / bare:.2f} x bare'),
        ('raw rclpy round trip (p50 / p99)', f'{results["rclpy_round_trip_p50_ms"]:.3f} / '
         f'{results["rclpy_round_trip_p99_ms"]:.3f} ms', '1.00 (baseline)'),
        ('lockstep control cycle', f'{results["lockstep_cycle_ms"]:.3f} ms',
         f'{results["lockstep_cycle_ms"] / results["rclpy_round_trip_p50_ms"]:.2f} x raw p50'),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f'| {"measurement":<{width}} | result | ratio |')
    print(f'|{"-" * (width + 2)}|---|---|')
    for name, value, ratio in rows:
        print(f'| {name:<{width}} | {value} | {ratio} |')
    output.mkdir(parents=True, exist_ok=True)
    (output / 'benchmarks.json').write_text(json.dumps(results, indent=2))
    print(f'\n[bench] written to {output / "benchmarks.json"}')
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mode', nargs='?', default='run', choices=['run', 'echo'])
    parser.add_argument('--robot', default='rdt_arm6')
    parser.add_argument('--output', default='artifacts')
    args = parser.parse_args(argv)
    if args.mode == 'echo':
        echo_main()
        return 0
    run(args.robot, Path(args.output))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
