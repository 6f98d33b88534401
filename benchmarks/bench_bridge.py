"""What the bridge costs and how fast it stops, measured through the running twin graph.

One graph (bridge + twin under /sim + stand-in under /hw, ``twin_graph(hardware='standin')``) in
its own ROS domain, localhost discovery, and in the same run the raw rclpy baselines:

- relay hop: arrival of a /sim/joint_states message here, and of the bridge's relay of it on
  /joint_states (same stamp); raw hop: a plain rclpy process publishing the same JointState
  (shape, rate, QoS) stamped with the wall clock, read here by the wall clock — both read by
  the same executor at the same time, so both carry the same load;
- goal acceptance of a 4 s goal through the bridge (prediction included) and direct to the
  twin's controller;
- streamed commands: a sine on one joint sent as JointTrajectory messages on the controller's
  ``joint_trajectory`` topic (each one point 0.2 s ahead) at 10 and 50 Hz, direct to the twin's
  controller and through the bridge (target sim); lag from a least-squares sine fit of the
  measured joint position, tracking error as RMS against the commanded sine;
- divergence detected -> hardware holding (heavy payload in shadow mode);
- soak: continuous safe goals in shadow mode on the stand-in for ``soak_minutes`` (default 10,
  env RDT_BENCH_SOAK_MINUTES or ``--soak-minutes``), every abort counted as a false trip;
- stand-in SIGKILLed mid-goal -> client goal aborted.
"""
from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from control_msgs.msg import JointTrajectoryControllerState
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from benchmarks import Target, log, peer_command, peer_env, ros
from reverse_digital_twin.client import BackgroundNode, make_trajectory, wait_for
from reverse_digital_twin.commander import TwinCommander, TwinError
from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS, seconds, to_duration
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import STANDIN_NODE, TwinNames, twin_graph
from reverse_digital_twin.robot_setup import load_robot

SOAK_MINUTES = 10.0
HOP_SAMPLES = 1000  # per figure, after a warm-up of 50
STREAM_RATES = (10, 50)  # Hz
STREAM_LEAD = 0.2  # s: each streamed point is this far ahead of now
STREAM_AMPLITUDE = 0.2  # rad
STREAM_FREQUENCY = 0.25  # Hz
STREAM_SECONDS = 8.0  # two periods; the first second is left out of the fit
HEAVY_PAYLOAD = 25.0  # kg


def soak_minutes_default() -> float:
    return float(os.environ.get('RDT_BENCH_SOAK_MINUTES', SOAK_MINUTES))


def _quantiles(values: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in ms of values in s."""
    return statistics.median(values) * 1e3, statistics.quantiles(values, n=100)[98] * 1e3


class _Bench:
    """The running graph and the clients that measure it."""

    def __init__(self, robot: str) -> None:
        self.names = TwinNames()
        self.setup = load_robot(robot)
        self.joints, self.home = self.setup.joints, self.setup.home
        model = self.setup.model()
        self.lower = np.array([model.joint(j).limits.lower for j in self.joints]) + 0.05
        self.upper = np.array([model.joint(j).limits.upper for j in self.joints]) - 0.05
        self.stack = Stack(twin_graph(robot, hardware='standin'), echo=None).start()
        self.background = BackgroundNode('bench_bridge')
        self.node = self.background.node
        # Arrival times are taken on a node of their own, so the commander's traffic does not
        # delay them.
        self.timing = BackgroundNode('bench_bridge_timing')
        self.commander = TwinCommander(self.node, self.names, timeout=30.0)
        try:
            self.commander.wait_ready(120.0, hardware=True, alive=self._dead)
            self.payload = self.commander.perturbation()['payload_mass']
        except TwinError:
            self.close()
            raise

    def _dead(self) -> str | None:
        dead = self.stack.dead()
        return dead[0].describe_exit() if dead else None

    def close(self) -> None:
        self.commander.close()
        self.timing.close()
        self.background.close()
        self.stack.stop()

    def recover(self) -> None:
        """After a failed phase: target sim, stand-in perturbations as configured, arm home."""
        try:
            self.commander.switch('sim')
            self.commander.set_perturbation(payload_mass=self.payload)
            self.home_via(self.commander.client)
        except (RuntimeError, TwinError) as exc:
            log(f'bridge: could not recover ({exc})')

    def pose(self, amplitude: float) -> np.ndarray:
        signs = np.where(np.arange(len(self.joints)) % 2 == 0, -1.0, 1.0)
        return np.clip(self.home + amplitude * signs, self.lower, self.upper)

    def out_and_back(self, amplitude: float = 0.3) -> JointTrajectory:
        """A 4 s goal the twin predicts safe: out to a pose and back home."""
        for a in (amplitude, -amplitude, amplitude / 2, -amplitude / 2):
            goal = make_trajectory(self.joints, [self.pose(a), self.home], [2.0, 4.0])
            if self.commander.predict(goal).safe:
                return goal
        raise RuntimeError('no safe out-and-back goal around the start pose')

    def home_via(self, view, attempts: int = 3) -> None:
        """Back to the start pose (retried: a loaded machine may trip the bridge's watch)."""
        for _ in range(attempts):
            outcome = view.send(make_trajectory(self.joints, [self.home], [2.0]), timeout=30)
            if outcome.status_name == 'SUCCEEDED':
                return
            log(f'  going home: {outcome.status_name} {outcome.error_string[:200]}')
            if 'not armed' in outcome.error_string or 'disarmed' in outcome.error_string:
                self.commander.arm()
        raise RuntimeError(f'could not go home: {outcome.status_name} {outcome.error_string}')

    # --- relay hop vs raw one-way hop ----------------------------------------------------------
    def hops(self) -> dict:
        """The bridge's relay against a raw rclpy relay process, read the same way: the hop is
        the arrival here of the relayed message minus that of the original (same stamp), so
        this process's own scheduling delay cancels out of both."""
        node = self.timing.node
        arrivals: dict[str, dict[tuple, float]] = {k: {} for k in (
            'direct', 'relayed', 'raw', 'raw_relayed')}
        wall: list[float] = []

        def arrival(kind: str) -> Callable[[JointState], None]:
            into = arrivals[kind]

            def on(msg: JointState) -> None:
                now = time.perf_counter()
                stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
                into.setdefault(stamp, now)
                if kind == 'raw':
                    wall.append(time.time() - stamp[0] - stamp[1] * 1e-9)
            return on
        topics = {'direct': self.names.sim_joint_states, 'relayed': self.names.joint_states,
                  'raw': 'bench/one_way', 'raw_relayed': 'bench/one_way_relayed'}
        subs = [node.create_subscription(JointState, topic, arrival(kind), SYSTEM_DEFAULT_QOS)
                for kind, topic in topics.items()]
        rate = float(self.setup.sim.get('update_rate', 100.0))
        peers = [subprocess.Popen(peer_command(*args), stdin=subprocess.DEVNULL, env=peer_env())
                 for args in (('relay',), ('source', str(rate), str(len(self.joints))))]
        need = HOP_SAMPLES + 50
        try:
            if not wait_for(lambda: min(len(arrivals['relayed']),
                                        len(arrivals['raw_relayed'])) > need,
                            need / rate * 3 + 30):
                raise RuntimeError('hop samples: ' + ', '.join(
                    f'{len(v)} {k}' for k, v in arrivals.items()))
        finally:
            for peer in peers:
                peer.send_signal(signal.SIGINT)
                peer.wait(timeout=10)
            for sub in subs:
                node.destroy_subscription(sub)
        out: dict = {}
        for key, first, second in (('relay_hop', 'direct', 'relayed'),
                                   ('raw_hop', 'raw', 'raw_relayed')):
            a, b = arrivals[first], arrivals[second]
            common = sorted(set(a) & set(b))[50:]
            if len(common) < 100:
                raise RuntimeError(f'{key}: only {len(common)} relayed messages kept their stamp')
            out[f'{key}_p50_ms'], out[f'{key}_p99_ms'] = _quantiles(
                [b[t] - a[t] for t in common])
            out[f'{key}_samples'] = len(common)
        # Wall-clock one-way from the source, this process's scheduling included: how loaded
        # the machine was while the hops were measured.
        out['raw_one_way_wall_clock_p50_ms'], out['raw_one_way_wall_clock_p99_ms'] = \
            _quantiles(wall[50:])
        return out

    # --- goal acceptance -----------------------------------------------------------------------
    def acceptance(self, repeats: int = 3) -> dict:
        goal = self.out_and_back()
        out: dict = {}
        for key, view in (('accept_via_bridge_ms', self.commander.client),
                          ('accept_direct_ms', self.commander.sim)):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                pending = view.send_async(goal)
                if not pending.responded.wait(30):
                    raise RuntimeError(f'{key}: no goal response')
                times.append((time.perf_counter() - t0) * 1e3)
                outcome = view.wait_result(pending, 30)
                if not outcome.accepted or outcome.status_name != 'SUCCEEDED':
                    raise RuntimeError(f'{key}: {outcome.status_name} {outcome.error_string}')
            out[key] = statistics.median(times)
            out[f'{key.removesuffix("_ms")}_samples_ms'] = times
        return out

    # --- streamed commands ---------------------------------------------------------------------
    def stream(self, controller: str, rate: float,
               joint: int = 0) -> tuple[float, float, float]:
        """Stream a sine on one joint to ``controller``; (lag s, RMS tracking error rad,
        followed amplitude / commanded: a lag means little if the arm barely moved)."""
        node = self.timing.node
        pub = node.create_publisher(JointTrajectory, f'{controller}/joint_trajectory',
                                    SYSTEM_DEFAULT_QOS)
        samples: list[tuple[float, float]] = []
        recording = threading.Event()

        def on_state(msg: JointState) -> None:
            if recording.is_set():
                samples.append((time.perf_counter(), msg.position[
                    list(msg.name).index(self.joints[joint])]))
        sub = node.create_subscription(JointState, self.names.sim_joint_states, on_state,
                                       SYSTEM_DEFAULT_QOS)
        omega = 2 * math.pi * STREAM_FREQUENCY
        try:
            if not wait_for(lambda: pub.get_subscription_count() > 0, 10):
                raise RuntimeError(f'nobody subscribes to {controller}/joint_trajectory')
            t0 = time.perf_counter()
            recording.set()
            tick = 0
            while True:
                now = time.perf_counter() - t0
                if now > STREAM_SECONDS:
                    break
                q = self.home.copy()
                q[joint] += STREAM_AMPLITUDE * math.sin(omega * (now + STREAM_LEAD))
                pub.publish(JointTrajectory(joint_names=self.joints, points=[
                    JointTrajectoryPoint(positions=q.tolist(),
                                         time_from_start=to_duration(STREAM_LEAD))]))
                tick += 1
                time.sleep(max(0.0, t0 + tick / rate - time.perf_counter()))
            recording.clear()
        finally:
            node.destroy_subscription(sub)
            node.destroy_publisher(pub)
        t = np.array([s[0] for s in samples]) - t0
        q = np.array([s[1] for s in samples]) - self.home[joint]
        keep = t >= 1.0
        t, q = t[keep], q[keep]
        basis = np.column_stack([np.sin(omega * t), np.cos(omega * t), np.ones_like(t)])
        (a, b, _), *_ = np.linalg.lstsq(basis, q, rcond=None)
        lag = -math.atan2(b, a) / omega  # measured = R sin(w (t - lag))
        error = float(np.sqrt(np.mean((q - STREAM_AMPLITUDE * np.sin(omega * t)) ** 2)))
        return lag, error, math.hypot(a, b) / STREAM_AMPLITUDE

    def stream_joint(self) -> int:
        """A joint whose sine the twin predicts safe (the direct stream has no gate: a sine
        into the scene would leave the twin in collision)."""
        omega = 2 * math.pi * STREAM_FREQUENCY
        n = len(self.joints)
        times = np.arange(0.1, STREAM_SECONDS + 1.0, 0.1)
        for joint in [0, n - 1, *range(1, n - 1)]:
            points = np.repeat(self.home[None, :], len(times), axis=0)
            points[:, joint] += STREAM_AMPLITUDE * np.sin(omega * times)
            if not (np.all(points >= self.lower) and np.all(points <= self.upper)):
                continue
            if self.commander.predict(make_trajectory(self.joints, points, times)).safe:
                return joint
        raise RuntimeError('no joint of this robot can follow the sine safely')

    def streams(self) -> dict:
        joint = self.stream_joint()
        out: dict = {'stream_joint': self.joints[joint]}
        for rate in STREAM_RATES:
            lags = {}
            for via, controller in (('direct', self.names.sim_controller),
                                    ('bridge', self.names.bridge)):
                self.home_via(self.commander.client)
                lag, error, ratio = self.stream(controller, rate, joint)
                out[f'stream_amplitude_ratio_{via}_{rate}hz'] = ratio
                lags[via] = lag
                out[f'stream_lag_ms_{via}_{rate}hz'] = lag * 1e3
                out[f'stream_tracking_error_mrad_{via}_{rate}hz'] = error * 1e3
            out[f'stream_lag_added_ms_{rate}hz'] = (lags['bridge'] - lags['direct']) * 1e3
        self.home_via(self.commander.client)
        return out

    # --- divergence -> hold --------------------------------------------------------------------
    def divergence_to_hold(self) -> dict:
        c = self.commander
        goal = self.out_and_back()
        c.arm(check=True)
        c.switch('shadow', check=True)
        normal = c.perturbation()['payload_mass']
        reports = c.divergences
        reports.clear()
        holds: list[float] = []

        def on_state(msg: JointTrajectoryControllerState) -> None:
            if reports and not holds and msg.reference.velocities and \
                    max(abs(v) for v in msg.reference.velocities) == 0.0 and \
                    seconds(msg.header.stamp) >= seconds(reports[0].header.stamp):
                holds.append(seconds(msg.header.stamp))
        sub = self.timing.node.create_subscription(
            JointTrajectoryControllerState, f'{self.names.hardware_controller}/controller_state',
            on_state, SYSTEM_DEFAULT_QOS)
        try:
            c.set_perturbation(payload_mass=HEAVY_PAYLOAD)
            outcome = c.client.send(goal, timeout=30)
            wait_for(lambda: bool(holds), 5)
        finally:
            c.set_perturbation(payload_mass=normal)
            self.timing.node.destroy_subscription(sub)
        out: dict = {'divergence_abort': f'{outcome.status_name} {outcome.error_name}'}
        if reports and holds:
            out['divergence_to_hold_ms'] = (holds[0] - seconds(reports[0].header.stamp)) * 1e3
        return out

    # --- soak ----------------------------------------------------------------------------------
    def soak(self, minutes: float) -> dict:
        """Continuous safe goals in shadow mode on the stand-in; every abort is a false trip."""
        c = self.commander
        c.arm(check=True)
        c.switch('shadow', check=True)
        self.home_via(c.client)
        goal = self.out_and_back()
        trips, rejected, goals, reasons = 0, 0, 0, []
        end = time.monotonic() + minutes * 60.0
        while time.monotonic() < end:
            outcome = c.client.send(goal, timeout=60)
            goals += 1
            if not outcome.accepted:
                rejected += 1
                reasons.append(f'rejected: {outcome.error_string}'[:300])
            elif outcome.status_name != 'SUCCEEDED':
                trips += 1
                reasons.append(f'{outcome.status_name} {outcome.error_name}: '
                               f'{outcome.error_string}'[:300])
                log(f'  false trip: {reasons[-1]}')
                status = c.status()
                if status is not None and not status.hardware_armed:
                    c.arm(check=True)  # a liveness abort disarms; re-arm to go on measuring
                if c.status() is not None and c.status().active_target != 'shadow':
                    c.switch('shadow', check=True)
        c.switch('sim', check=True)
        return {'false_trips_10min': trips, 'soak_minutes': minutes, 'soak_goals': goals,
                'soak_rejected_goals': rejected, 'soak_trip_reasons': reasons[:20]}

    # --- hardware death -> client abort --------------------------------------------------------
    def death_to_abort(self) -> dict:
        c = self.commander
        c.arm(check=True)
        c.switch('hardware', check=True)
        pending = c.client.send_async(make_trajectory(self.joints, [self.pose(0.2), self.home],
                                                      [2.0, 4.0]))
        if not pending.responded.wait(30) or not pending.outcome.accepted:
            raise RuntimeError('death_to_abort: the goal was not accepted')
        count, t0 = c.hardware.received, time.perf_counter()
        wait_for(lambda: c.hardware.received > count + 100, 5)
        rate = (c.hardware.received - count) / (time.perf_counter() - t0)
        killed = time.perf_counter()
        self.stack.process(STANDIN_NODE).signal(signal.SIGKILL)
        outcome = c.client.wait_result(pending, 30)
        elapsed = (time.perf_counter() - killed) * 1e3
        return {'death_to_abort_ms': elapsed, 'hardware_joint_state_rate_hz': rate,
                'death_abort': f'{outcome.status_name} {outcome.error_name}: '
                               f'{outcome.error_string}'[:300]}


def measure(robot: str = 'rdt_arm6', soak_minutes: float | None = None) -> dict:
    """Every bridge figure on one running twin graph; see the module. A phase that fails is
    reported under ``bridge_errors`` and the others still run."""
    minutes = soak_minutes_default() if soak_minutes is None else soak_minutes
    out: dict = {}
    errors: dict[str, str] = {}
    with ros():
        log('bridge: starting the twin graph with the stand-in ...')
        bench = _Bench(robot)
        phases = [
            ('hops', 'relay hop vs raw rclpy one-way hop', bench.hops),
            ('acceptance', 'goal acceptance via the bridge vs direct', bench.acceptance),
            ('streams', f'streamed commands at {STREAM_RATES} Hz, direct vs via the bridge',
             bench.streams),
            ('divergence', 'divergence -> hardware holding', bench.divergence_to_hold),
            ('soak', f'soak, {minutes:g} min of safe goals in shadow mode',
             lambda: bench.soak(minutes)),
            ('death', 'stand-in killed mid-goal -> client abort', bench.death_to_abort),
        ]
        try:
            for name, text, phase in phases:
                log(f'bridge: {text} ...')
                try:
                    out.update(phase())
                except (RuntimeError, TwinError) as exc:
                    errors[name] = str(exc)
                    log(f'bridge: {name} FAILED: {exc}')
                    bench.recover()
        finally:
            bench.close()
    if errors:
        out['bridge_errors'] = errors
    return out


def targets(r: dict) -> list[Target]:
    """The issue's targets, against figures of the same run where they have one."""
    out = []
    if 'raw_hop_p99_ms' in r:
        out.append(Target('relay_hop_p99_ms', r['raw_hop_p99_ms'] + 0.5, '<=',
                          'raw rclpy relay hop p99 + 0.5 ms, same run'))
    out.append(Target('death_to_abort_ms', 100.0, '<=',
                      'driver publishing >= 100 Hz'
                      + (f' (stand-in: {r["hardware_joint_state_rate_hz"]:.0f} Hz)'
                         if 'hardware_joint_state_rate_hz' in r else '')))
    minutes = r.get('soak_minutes', SOAK_MINUTES)
    out.append(Target('false_trips_10min', 0, '==',
                      f'{minutes:g} min soak' + (' (shorter than the 10 min the target is for)'
                                                 if minutes < 10 else '')))
    out.append(Target('accept_via_bridge_ms', 60.0, '<=', '4 s goal, prediction included'))
    for rate in STREAM_RATES:
        out.append(Target(f'stream_lag_added_ms_{rate}hz', 20.0, '<=', 'bridge minus direct'))
        direct = r.get(f'stream_tracking_error_mrad_direct_{rate}hz')
        if direct is not None:
            out.append(Target(f'stream_tracking_error_mrad_bridge_{rate}hz', 1.5 * direct, '<=',
                              '1.5 x direct, same run'))
    return out


def rows(r: dict) -> list[tuple[str, str, str]]:
    """(measurement, result, same-run comparison) for the table."""
    def get(key: str, fmt: str = '.3f') -> str:
        return format(r[key], fmt) if key in r else 'n/a'
    out = [
        ('bridge relay hop /sim/joint_states -> /joint_states (p50 / p99)',
         f'{get("relay_hop_p50_ms")} / {get("relay_hop_p99_ms")} ms',
         f'raw rclpy relay process {get("raw_hop_p50_ms")} / {get("raw_hop_p99_ms")} ms '
         f'(wall-clock one-way {get("raw_one_way_wall_clock_p50_ms")} / '
         f'{get("raw_one_way_wall_clock_p99_ms")} ms)'),
        ('4 s goal accepted: via the bridge (incl. prediction) / direct',
         f'{get("accept_via_bridge_ms", ".1f")} / {get("accept_direct_ms", ".1f")} ms', ''),
    ]
    for rate in STREAM_RATES:
        out.append((f'streamed sine at {rate} Hz: lag direct / bridge (added)',
                    f'{get(f"stream_lag_ms_direct_{rate}hz", ".1f")} / '
                    f'{get(f"stream_lag_ms_bridge_{rate}hz", ".1f")} ms '
                    f'({get(f"stream_lag_added_ms_{rate}hz", "+.1f")} ms)',
                    f'{r.get("stream_joint", "?")}, amplitude followed '
                    f'{get(f"stream_amplitude_ratio_direct_{rate}hz", ".2f")} / '
                    f'{get(f"stream_amplitude_ratio_bridge_{rate}hz", ".2f")}'))
        out.append((f'streamed sine at {rate} Hz: RMS tracking error direct / bridge',
                    f'{get(f"stream_tracking_error_mrad_direct_{rate}hz", ".2f")} / '
                    f'{get(f"stream_tracking_error_mrad_bridge_{rate}hz", ".2f")} mrad', ''))
    out += [
        ('divergence detected -> hardware holding', f'{get("divergence_to_hold_ms", ".0f")} ms',
         ''),
        (f'false trips in {r.get("soak_minutes", SOAK_MINUTES):g} min of shadow-mode goals',
         f'{r.get("false_trips_10min", "n/a")} of {r.get("soak_goals", "n/a")} goals', ''),
        ('stand-in killed mid-goal -> client goal aborted',
         f'{get("death_to_abort_ms", ".0f")} ms',
         f'stand-in joint states at {get("hardware_joint_state_rate_hz", ".0f")} Hz'),
    ]
    return out
