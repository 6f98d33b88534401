"""The twin's speed against the limits, measured in the same run.

- physics: sim node free-running (real_time_factor 0) versus a bare PyBullet loop of the same
  robot and scene, and versus the same loop with the sim node's per-cycle work but no ROS;
- control loop: sim node + emulated controller in lockstep (one DDS round trip per control
  cycle) versus a raw rclpy JointState ping-pong between two processes;
- prediction of a 10 s trajectory versus bare stepping as many steps (when bench_prediction is
  absent; it measures this more thoroughly).
"""
from __future__ import annotations

import signal
import statistics
import subprocess
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from benchmarks import Target, log, peer_command, peer_env, ros
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.nodes.ros_common import CLOCK_QOS, PHYSICS_QOS, seconds
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import SIM_NODE, sim_graph
from reverse_digital_twin.robot_setup import load_robot


def _world(robot: str) -> tuple[PhysicsWorld, float, int]:
    setup = load_robot(robot)
    rate = float(setup.sim.get('physics_rate', 1000.0))
    per_cycle = max(1, round(rate / float(setup.sim.get('update_rate', 100.0))))
    return PhysicsWorld(setup.model(), str(setup.urdf), setup.scene(), rate), rate, per_cycle


def bare_pybullet(robot: str, steps: int = 30000) -> float:
    """stepSimulation alone, same robot and scene: the physics limit (steps/s)."""
    world, _, _ = _world(robot)
    try:
        t0 = time.perf_counter()
        world.step_bare(steps)
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
    sim = load_robot(robot).sim
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


def rclpy_round_trip(samples: int = 1000) -> list[float]:
    """Raw rclpy: 7-joint JointState to another process and back, reliable QoS (s)."""
    proc = subprocess.Popen(peer_command('echo'), stdin=subprocess.DEVNULL, env=peer_env())
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


def prediction_speed(robot: str, duration: float = 10.0) -> tuple[float, float]:
    """Wall time to predict a `duration` s trajectory, and of bare stepping as many steps."""
    from reverse_digital_twin.core.controller_config import controller_config  # noqa: PLC0415
    from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal  # noqa: PLC0415
    from reverse_digital_twin.core.prediction import Predictor  # noqa: PLC0415
    setup = load_robot(robot)
    model = setup.model()
    config = controller_config(setup.controller, model)
    initial = setup.initial_positions
    start = dict(zip(setup.joints, setup.home.tolist()))
    sim, urdf, scene = setup.sim, setup.urdf, setup.scene()
    q0 = [start[j] for j in config.joints]
    wiggle = [q + (0.2 if i % 2 else -0.2) for i, q in enumerate(q0)]
    goal = TrajectoryGoal(list(config.joints), [GoalPoint(duration / 2, wiggle),
                                                GoalPoint(duration, q0)])
    rate = float(sim.get('physics_rate', 1000.0))
    with Predictor(model, str(urdf), scene, rate, float(sim.get('update_rate', 100.0)), config,
                   initial_positions=initial) as predictor:
        predictor.predict(goal, start)  # warm-up
        t0 = time.perf_counter()
        verdict = predictor.predict(goal, start)
        predict_s = time.perf_counter() - t0
        steps = int(round(verdict.duration * rate))
        t0 = time.perf_counter()
        predictor.world.step_bare(steps)
        bare_s = time.perf_counter() - t0
    return predict_s, bare_s


def measure(robot: str = 'rdt_arm6', prediction: bool = True) -> dict:
    """Physics, lockstep and raw rclpy figures (and the 10 s prediction with ``prediction``)."""
    out: dict = {}
    log(f'{robot}: bare PyBullet stepping ...')
    out['bare_pybullet_steps_per_s'] = bare_pybullet(robot)
    log('core loop (state read + command every cycle, no ROS) ...')
    out['core_loop_steps_per_s'] = core_loop(robot)
    with ros():
        log('sim node free-running (real_time_factor 0, no lockstep) ...')
        out['sim_node_free_steps_per_s'], _ = sim_node_rate(robot, lockstep=False)
        log('sim node + emulated controller in lockstep ...')
        steps, cycles = sim_node_rate(robot, lockstep=True)
        out['lockstep_steps_per_s'], out['lockstep_cycles_per_s'] = steps, cycles
        log('raw rclpy ping-pong between two processes ...')
        rtt = rclpy_round_trip()
    out['rclpy_round_trip_p50_ms'] = statistics.median(rtt) * 1e3
    out['rclpy_round_trip_p99_ms'] = statistics.quantiles(rtt, n=100)[98] * 1e3
    out['lockstep_cycle_ms'] = 1e3 / out['lockstep_cycles_per_s']
    if prediction:
        log('prediction of a 10 s trajectory vs bare stepping ...')
        predict_s, bare_s = prediction_speed(robot)
        out['predict_10s_ms'] = predict_s * 1e3
        out['bare_steps_10s_ms'] = bare_s * 1e3
    return out


def rows(r: dict) -> list[tuple[str, str, str]]:
    """(measurement, result, same-run ratio) for the table."""
    bare = r['bare_pybullet_steps_per_s']
    out = [
        ('bare PyBullet stepSimulation', f'{bare:,.0f} steps/s', '1.00 (baseline)'),
        ('core loop, no ROS', f'{r["core_loop_steps_per_s"]:,.0f} steps/s',
         f'{r["core_loop_steps_per_s"] / bare:.2f} x bare'),
        ('sim node free-running', f'{r["sim_node_free_steps_per_s"]:,.0f} steps/s',
         f'{r["sim_node_free_steps_per_s"] / bare:.2f} x bare'),
        ('sim node + controller, lockstep', f'{r["lockstep_steps_per_s"]:,.0f} steps/s '
         f'({r["lockstep_cycles_per_s"]:,.0f} cycles/s)',
         f'{r["lockstep_steps_per_s"] / bare:.2f} x bare'),
        ('raw rclpy round trip (p50 / p99)', f'{r["rclpy_round_trip_p50_ms"]:.3f} / '
         f'{r["rclpy_round_trip_p99_ms"]:.3f} ms', '1.00 (baseline)'),
        ('lockstep control cycle', f'{r["lockstep_cycle_ms"]:.3f} ms',
         f'{r["lockstep_cycle_ms"] / r["rclpy_round_trip_p50_ms"]:.2f} x raw p50'),
    ]
    if 'predict_10s_ms' in r and 'bare_steps_10s_ms' in r:
        out.append(('predict a 10 s trajectory', f'{r["predict_10s_ms"]:.0f} ms '
                    f'({10000 / r["predict_10s_ms"]:.0f} x real time)',
                    f'{r["predict_10s_ms"] / r["bare_steps_10s_ms"]:.2f} x bare stepping '
                    f'({r["bare_steps_10s_ms"]:.0f} ms)'))
    return out


def targets(r: dict) -> list[Target]:
    """The issue's target for the sim node, against the core loop of the same run."""
    if 'core_loop_steps_per_s' not in r:
        return []
    return [Target('sim_node_free_steps_per_s', 0.85 * r['core_loop_steps_per_s'], '>=',
                   '0.85 x the core loop without ROS, same run')]
