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

from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.nodes.ros_common import CLOCK_QOS, PHYSICS_QOS, seconds
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import SIM_NODE, load_robot, sim_graph


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


def twin_timings(robot: str) -> dict:
    """Relay latency of the bridge, divergence-to-hold and death-to-abort, on the real graph."""
    from control_msgs.msg import JointTrajectoryControllerState  # noqa: PLC0415
    from rcl_interfaces.srv import SetParameters  # noqa: PLC0415
    from rclpy.parameter import Parameter  # noqa: PLC0415
    from rdt_interfaces.msg import Divergence  # noqa: PLC0415
    from rdt_interfaces.srv import SwitchTarget  # noqa: PLC0415
    from std_srvs.srv import SetBool  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode, TrajectoryClient  # noqa: PLC0415
    from reverse_digital_twin.client import make_trajectory  # noqa: PLC0415
    from reverse_digital_twin.client import wait_for  # noqa: PLC0415
    from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS  # noqa: PLC0415
    from reverse_digital_twin.stack import twin_graph  # noqa: PLC0415
    out: dict = {}
    with Stack(twin_graph(robot, hardware='standin'), echo=None) as stack:
        background = BackgroundNode('bench_twin')
        node = background.node
        try:
            arrivals: dict[str, dict[float, float]] = {'direct': {}, 'relayed': {}}

            def arrival(kind: str):
                return lambda m: arrivals[kind].setdefault(seconds(m.header.stamp),
                                                           time.perf_counter())
            node.create_subscription(JointState, '/sim/joint_states', arrival('direct'),
                                     SYSTEM_DEFAULT_QOS)
            node.create_subscription(JointState, '/joint_states', arrival('relayed'),
                                     SYSTEM_DEFAULT_QOS)
            client = TrajectoryClient(node)
            hw = TrajectoryClient(node, '/hw/joint_trajectory_controller', '/hw/joint_states')
            if not (client.wait_ready(60) and hw.wait_ready(60)):
                raise RuntimeError('the twin graph did not come up')
            wait_for(lambda: len(arrivals['relayed']) > 400, 10)
            common = sorted(set(arrivals['direct']) & set(arrivals['relayed']))[50:]
            hops = [arrivals['relayed'][t] - arrivals['direct'][t] for t in common]
            out['relay_hop_p50_ms'] = statistics.median(hops) * 1e3
            out['relay_hop_p99_ms'] = statistics.quantiles(hops, n=100)[98] * 1e3

            def call(srv_type, name, request):
                cli = node.create_client(srv_type, name)
                cli.wait_for_service(timeout_sec=10)
                future = cli.call_async(request)
                wait_for(future.done, 10)
                return future.result()
            setup = load_robot(robot)
            joints, home = setup.joints, setup.home.tolist()
            goal = make_trajectory(joints, [[q + (0.3 if i % 2 else -0.3)
                                             for i, q in enumerate(home)], home], [2.0, 4.0])
            # goal acceptance through the bridge (prediction included) vs direct
            t0 = time.perf_counter()
            pending = client.send_async(goal)
            pending.responded.wait(30)
            out['accept_via_bridge_ms'] = (time.perf_counter() - t0) * 1e3
            client.wait_result(pending, 30)
            direct = TrajectoryClient(node, '/sim/joint_trajectory_controller',
                                      '/sim/joint_states')
            direct.wait_ready(10)
            t0 = time.perf_counter()
            pending = direct.send_async(goal)
            pending.responded.wait(30)
            out['accept_direct_ms'] = (time.perf_counter() - t0) * 1e3
            direct.wait_result(pending, 30)

            # divergence -> hold: shadow mode, heavy payload on the stand-in
            call(SetBool, '/joint_trajectory_controller/arm_hardware', SetBool.Request(data=True))
            call(SwitchTarget, '/joint_trajectory_controller/switch_target',
                 SwitchTarget.Request(target='shadow'))
            call(SetParameters, '/hw/standin_robot/set_parameters', SetParameters.Request(
                parameters=[Parameter('perturbation.payload_mass', value=25.0)
                            .to_parameter_msg()]))
            reports: list = []
            holds: list = []
            node.create_subscription(Divergence, '/joint_trajectory_controller/divergence',
                                     reports.append, 10)

            def on_state(msg) -> None:
                if reports and not holds and msg.reference.velocities and \
                        max(abs(v) for v in msg.reference.velocities) == 0.0 and \
                        seconds(msg.header.stamp) >= seconds(reports[0].header.stamp):
                    holds.append(seconds(msg.header.stamp))
            node.create_subscription(JointTrajectoryControllerState,
                                     '/hw/joint_trajectory_controller/controller_state',
                                     on_state, SYSTEM_DEFAULT_QOS)
            client.send(goal, timeout=30)
            wait_for(lambda: holds, 5)
            if reports and holds:
                out['divergence_to_hold_ms'] = (holds[0] - seconds(reports[0].header.stamp)) * 1e3
            call(SetParameters, '/hw/standin_robot/set_parameters', SetParameters.Request(
                parameters=[Parameter('perturbation.payload_mass', value=0.5)
                            .to_parameter_msg()]))

            # hardware death -> client abort
            call(SwitchTarget, '/joint_trajectory_controller/switch_target',
                 SwitchTarget.Request(target='sim'))
            call(SetBool, '/joint_trajectory_controller/arm_hardware', SetBool.Request(data=True))
            call(SwitchTarget, '/joint_trajectory_controller/switch_target',
                 SwitchTarget.Request(target='hardware'))
            pending = client.send_async(make_trajectory(joints, [home], [4.0]))
            pending.responded.wait(30)
            count = hw.received
            wait_for(lambda: hw.received > count + 50, 5)
            killed = time.perf_counter()
            stack.process('standin_robot').signal(signal.SIGKILL)
            client.wait_result(pending, 30)
            out['death_to_abort_ms'] = (time.perf_counter() - killed) * 1e3
        finally:
            background.close()
    return out


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
        say('the twin graph: bridge relay, goal acceptance, divergence stop, hardware death ...')
        results.update(twin_timings(robot))
    finally:
        rclpy.shutdown()
    say('prediction of a 10 s trajectory vs bare stepping ...')
    predict_s, bare_s = prediction_speed(robot)
    results['predict_10s_ms'] = predict_s * 1e3
    results['bare_steps_10s_ms'] = bare_s * 1e3
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
        ('predict a 10 s trajectory (forked world + control law)',
         f'{results["predict_10s_ms"]:.0f} ms '
         f'({10000 / results["predict_10s_ms"]:.0f} x real time)',
         f'{results["predict_10s_ms"] / results["bare_steps_10s_ms"]:.2f} x bare stepping '
         f'({results["bare_steps_10s_ms"]:.0f} ms)'),
        ('bridge relay hop, /sim/joint_states -> /joint_states (p50 / p99)',
         f'{results["relay_hop_p50_ms"]:.3f} / {results["relay_hop_p99_ms"]:.3f} ms',
         f'{results["relay_hop_p50_ms"] / (results["rclpy_round_trip_p50_ms"] / 2):.2f} x raw '
         'one-way (p50)'),
        ('goal accepted: via the bridge (incl. prediction) / direct',
         f'{results["accept_via_bridge_ms"]:.0f} / {results["accept_direct_ms"]:.1f} ms', ''),
        ('divergence detected -> hardware holding',
         f'{results.get("divergence_to_hold_ms", float("nan")):.0f} ms', ''),
        ('hardware killed -> client goal aborted',
         f'{results["death_to_abort_ms"]:.0f} ms', ''),
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
