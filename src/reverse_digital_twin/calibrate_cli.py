"""`rdt calibrate`: fit the twin to recorded hardware motion, or record motion to fit it to.

``rdt calibrate RECORDING`` reads a bag (``rdt record``'s, or any rosbag2 MCAP bag with the
hardware's joint_states and its controller's controller_state), fits the twin's unknowns in
replay worker processes (:mod:`~reverse_digital_twin.core.identification`), prints every
estimate with its uncertainty and the RMS error per joint before and after, and writes the
calibration file (loaded with ``rdt up --calibration FILE``), a plot, and the proposed
divergence threshold.

``rdt calibrate --excite`` drives the armed hardware through the bridge with motions that
excite the unknowns (seeded brisk point-to-point goals of every joint, ≤ 30 s in total, each
predicted safe by the twin first), records them, and fits them.

Exit codes: 0 calibrated/recorded, 1 the twin or hardware refused, 2 bad input or a recording
that cannot identify the unknowns (the message says why).
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reverse_digital_twin.cli import parse_arguments

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='rdt calibrate',
        description='Fit the twin (payload, friction, damping, command latency, encoder '
        'offsets) to recorded hardware motion; or, with --excite, record such motion first.')
    parser.add_argument('recording', nargs='?', default='',
                        help='bag directory or .mcap file to fit (with --excite: where to '
                        'record; default calibration_YYYY_MM_DD-HH_MM_SS)')
    parser.add_argument('--excite', action='store_true',
                        help='drive the armed hardware through the bridge with exciting '
                        'motions (predicted safe first), record them, then fit')
    parser.add_argument('--duration', type=float, default=30.0,
                        help='--excite: seconds of motion (at most 30)')
    parser.add_argument('--seed', type=int, default=0, help='--excite: seed of the motions')
    parser.add_argument('--robot', default='rdt_arm6',
                        help='robot name under config/ or a parameter YAML')
    parser.add_argument('--output', default='',
                        help='calibration file to write (default: calibration.yaml inside the '
                        'bag directory)')
    parser.add_argument('--workers', type=int, default=2, help='replay worker processes')
    parser.add_argument('--joint-states', default='', help='measured joint states topic '
                        '(default: the hardware\'s, /hw/joint_states)')
    parser.add_argument('--controller-state', default='', help='controller_state topic of the '
                        'hardware\'s controller (default: /hw/joint_trajectory_controller/'
                        'controller_state)')
    parser.add_argument('--max-iterations', type=int, default=8,
                        help='cap on the fit\'s Jacobian evaluations')
    return parser


def calibrate_main(argv: list[str] | None = None) -> int:
    """`rdt calibrate ...`; returns the exit code."""
    parser = _parser()
    args = parse_arguments(parser, list(sys.argv[1:] if argv is None else argv))
    if isinstance(args, int):
        return args
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    try:
        if args.excite:
            if not (0 < args.duration <= 30.0):
                raise ConfigError(f'--duration must be in (0, 30] s, got {args.duration}')
            recording = Path(args.recording or time.strftime('calibration_%Y_%m_%d-%H_%M_%S'))
            if recording.exists():
                raise ConfigError(f'{recording} exists already; a recording never overwrites')
            code = excite(args, recording)
            if code != EXIT_OK:
                return code
        else:
            if not args.recording:
                raise ConfigError('give the recording to fit (a bag directory or .mcap file), '
                                  'or --excite to record one')
            recording = Path(args.recording)
        return fit(args, recording)
    except ConfigError as exc:
        print(f'rdt calibrate: {exc}', file=sys.stderr)
        return EXIT_USAGE


# --- fitting ----------------------------------------------------------------------------------

def load_recording(path: Path, joint_states: str, controller_state: str):
    """The hardware's commands and joint states from a bag, as identification needs them."""
    from reverse_digital_twin.core.bag import BagError, read_bag  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.core.identification import Recording  # noqa: PLC0415
    if not path.exists():
        raise ConfigError(f'recording {path} does not exist')
    states, commands = [], []
    try:
        for topic, _, msg in read_bag(path, [joint_states, controller_state]):
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if topic == joint_states:
                states.append((stamp, list(msg.name), list(msg.position), list(msg.velocity)))
            else:
                out = msg.output
                commands.append((stamp, list(msg.joint_names), list(out.positions),
                                 list(out.velocities), list(out.effort)))
    except BagError as exc:
        raise ConfigError(f'recording {path}: {exc}') from None
    return Recording.from_messages(states, commands)


def fit(args: argparse.Namespace, recording_path: Path) -> int:
    """Fit, print the estimates and errors, write the calibration file and the plot."""
    print(f'rdt calibrate: fitting {recording_path} in {args.workers} worker processes',
          flush=True)
    fitted = fit_recording(recording_path, args.robot, args.workers, args.max_iterations,
                           Path(args.output) if args.output else None, args.joint_states,
                           args.controller_state, lambda line: print(f'  {line}', flush=True))
    result, joints = fitted.result, fitted.joints
    print(f'\n{"parameter":38s} {"estimate":>12s} {"± 1 sigma":>12s}  unit')
    for e in result.estimates:
        mark = '' if e.observable else '  (not observable: kept at 0)'
        print(f'{e.key:38s} {e.value:12.5g} {e.uncertainty:12.2g}  {e.unit}{mark}')
    print(f'\n{"joint":24s} {"RMS before":>12s} {"RMS after":>12s}  (mrad)')
    for j, b, a in zip(joints, result.rms_before, result.rms_after):
        print(f'{j:24s} {b * 1e3:12.3f} {a * 1e3:12.3f}')
    for note in result.notes:
        print(f'note: {note}')
    print(f'\nrdt calibrate: fitted in {fitted.wall_time:.1f} s ({result.evaluations} replays); '
          f'proposed divergence threshold {result.threshold * 1e3:.1f} mrad, time slack '
          f'{result.time_slack * 1e3:.0f} ms\n'
          f'rdt calibrate: wrote {fitted.output} and {fitted.plot}; use it with '
          f'`rdt up --calibration {fitted.output}`')
    return EXIT_OK


@dataclass
class Fitted:
    """What :func:`fit_recording` produced."""

    result: object  # IdentificationResult
    calibration: object  # Calibration
    joints: tuple[str, ...]
    output: Path
    plot: Path
    wall_time: float  # s, reading the bag included


def nominal_model(setup) -> 'object':
    """The twin's model of the hardware before calibration, as its predictions assume it:
    nothing added, commands acting one control cycle after they are computed."""
    from reverse_digital_twin.core.perturbation import Perturbation  # noqa: PLC0415
    return Perturbation(command_latency=1.0 / float(setup.sim.get('update_rate', 100.0)))


def fit_recording(recording_path: Path, robot: str = 'rdt_arm6', workers: int = 2,
                  max_iterations: int = 8, output: Path | None = None,
                  joint_states: str = '', controller_state: str = '',
                  progress=None, parameters=None) -> Fitted:
    """Read a bag, fit the hardware model, write the calibration file and its plot.

    Raises:
        ConfigError: missing/unreadable bag, a robot that lacks the recorded joints, or
            :class:`UnidentifiableRecording` with the reason.
    """
    from reverse_digital_twin.core.calibration import Calibration  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.core.identification import identify  # noqa: PLC0415
    from reverse_digital_twin.core.replay_workers import ReplayWorkers  # noqa: PLC0415
    wall0 = time.perf_counter()
    topics = hardware_topics()
    recording = load_recording(recording_path, joint_states or topics[0],
                               controller_state or topics[1])
    setup, spec = world_spec(robot)
    missing = [j for j in recording.joints if j not in setup.joints]
    if missing:
        raise ConfigError(f'the recording commands joints {missing} that robot {robot!r} '
                          f'does not have ({setup.joints}): wrong --robot?')
    if progress:
        progress(f'{recording.duration:.1f} s recorded: {len(recording.state_times)} joint '
                 f'states, {len(recording.commands.times)} commands')
    with ReplayWorkers(spec, workers) as pool:
        result = identify(recording, pool, nominal_model(setup), parameters=parameters,
                          max_evaluations=max_iterations, progress=progress)
    output = output or (recording_path / 'calibration.yaml' if recording_path.is_dir()
                        else recording_path.with_suffix('.calibration.yaml'))
    uncertainty: dict = {}
    for e in result.estimates:
        head, _, joint = e.key.partition('.')
        if joint:
            uncertainty.setdefault(head, {})[joint] = e.uncertainty
        else:
            uncertainty[head] = e.uncertainty
    calibration = Calibration(
        hardware=result.model, divergence_threshold=result.threshold,
        divergence_time_slack=result.time_slack, robot=robot,
        recording=str(recording_path.resolve()), uncertainty=uncertainty,
        residual_rms_before=dict(zip(recording.joints, result.rms_before.tolist())),
        residual_rms_after=dict(zip(recording.joints, result.rms_after.tolist())),
        notes=tuple(result.notes))
    calibration.save(output)
    plot = output.with_suffix('.png')
    plot_residuals(result, recording.joints, plot)
    return Fitted(result, calibration, recording.joints, output, plot,
                  time.perf_counter() - wall0)


def world_spec(robot: str):
    """The robot's setup and the world the replays run in (the twin's, at its physics rate)."""
    from reverse_digital_twin.core.physics import MotorSettings  # noqa: PLC0415
    from reverse_digital_twin.core.replay_workers import WorldSpec  # noqa: PLC0415
    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    setup = load_robot(robot)
    sim = setup.sim
    motors = MotorSettings(position_gain=float(sim.get('position_gain', 0.3)),
                           velocity_gain=float(sim.get('velocity_gain', 1.0)),
                           gravity_compensation=bool(sim.get('gravity_compensation', False)))
    spec = WorldSpec(setup.model(), str(setup.urdf), setup.scene(),
                     float(sim.get('physics_rate', 1000.0)), motors, setup.initial_positions)
    return setup, spec


def plot_residuals(result, joints, path: Path) -> None:
    """Measured - predicted per joint over the moving segments, before and after."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, axes = plt.subplots(len(joints), 1, figsize=(10, 1.6 * len(joints) + 1), sharex=True)
    axes = np.atleast_1d(axes)
    before = np.vstack(result.residuals_before) if result.residuals_before else None
    after = np.vstack(result.residuals_after) if result.residuals_after else None
    for k, (ax, joint) in enumerate(zip(axes, joints)):
        if before is not None:
            ax.plot(before[:, k] * 1e3, lw=0.7, color='tab:red',
                    label=f'nominal twin (RMS {result.rms_before[k] * 1e3:.2f})')
        if after is not None:
            ax.plot(after[:, k] * 1e3, lw=0.7, color='tab:green',
                    label=f'calibrated (RMS {result.rms_after[k] * 1e3:.2f})')
        ax.set_ylabel(f'{joint}\nmrad', fontsize=7)
        ax.legend(fontsize=6, loc='upper right')
    axes[-1].set_xlabel('sample (moving segments, 100 Hz)')
    fig.suptitle('measured - predicted joint position')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- excitation -------------------------------------------------------------------------------

def excitation_goals(setup, duration: float, seed: int, amplitude: float = 0.3
                     ) -> list[tuple[np.ndarray, float, float]]:
    """(target, move time, rest time) point-to-point goals of every joint around the start
    pose: random targets and durations (0.5-1.5 s: slow and brisk speeds, so that damping and
    friction separate), each followed by a short rest (offsets, and a known start)."""
    rng = np.random.default_rng(seed)
    model = setup.model()
    joints, home = setup.joints, setup.home
    lower = np.array([model.joint(j).limits.lower for j in joints]) + 0.05
    upper = np.array([model.joint(j).limits.upper for j in joints]) - 0.05
    goals, total = [], 0.0
    while True:
        move, rest = float(rng.uniform(0.5, 1.5)), 0.3
        if total + move + rest > duration:
            break
        target = np.clip(home + rng.uniform(-amplitude, amplitude, len(joints)), lower, upper)
        goals.append((target, move, rest))
        total += move + rest
    return goals


class ExcitationError(RuntimeError):
    """The hardware could not be driven through the motions; the message says why."""


class Recorder:
    """`rdt record` of the given topics in a process of its own, for the block."""

    def __init__(self, path: Path, topics: list[str], timeout: float = 30.0) -> None:
        from reverse_digital_twin.client import wait_for  # noqa: PLC0415
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'reverse_digital_twin.cli', 'record', str(path),
             '--topics', *topics], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout),
                         daemon=True).start()
        if not wait_for(lambda: any('recording all' in line for line in self.lines)
                        or self.process.poll() is not None, timeout):
            self.stop()
            raise ExcitationError(f'the recorder did not find the topics {topics} within '
                                  f'{timeout:g} s: {"".join(self.lines)[-500:]}')
        if self.process.poll() is not None:
            raise ExcitationError(f'the recorder stopped: {"".join(self.lines)[-500:]}')

    def stop(self) -> str:
        """End the recording (SIGINT, as Ctrl-C); its summary."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return ''.join(self.lines[-12:]).rstrip()


def hardware_topics() -> list[str]:
    """What calibration reads: the hardware's joint states and its controller's state."""
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    names = TwinNames()
    return [names.hardware_joint_states, f'{names.hardware_controller}/controller_state']


def record_motions(commander, setup, motions: list[tuple[np.ndarray, float, float]],
                   path: Path, progress=print) -> int:
    """Drive the armed hardware through ``motions`` via the bridge (target hardware) while
    recording; returns how many ran. Each motion is predicted first; unsafe ones are skipped.
    The bridge's target is restored afterwards.

    Raises:
        ExcitationError: not armed, a refused switch, a motion that did not succeed, no recorder.
    """
    from reverse_digital_twin.client import make_trajectory  # noqa: PLC0415
    status = commander.status(timeout=5.0)
    if status is None or not status.hardware_armed:
        raise ExcitationError('the hardware is not armed; arm it first (`rdt arm`): the '
                              'excitation moves it')
    previous = status.active_target
    reply = commander.switch('hardware')
    if not reply.success:
        raise ExcitationError(reply.message)
    joints = setup.joints
    home = make_trajectory(joints, [setup.home], [2.0])
    recorder = None
    done = 0
    try:
        commander.client.send(home, timeout=30)
        # All predicted first, each from where the one before ends, so the motions then run
        # back to back: the recording is motion, not waiting for verdicts
        from sensor_msgs.msg import JointState  # noqa: PLC0415
        goals, start = [], setup.home
        for k, (target, move, rest) in enumerate(motions):
            goal = make_trajectory(joints, [target, target], [move, move + rest])
            verdict = commander.predict(goal, JointState(name=list(joints),
                                                         position=[float(v) for v in start]))
            if not verdict.safe:
                progress(f'  motion {k + 1}: predicted unsafe, skipped')
                continue
            goals.append((k, goal, move, rest))
            start = target
        recorder = Recorder(path, hardware_topics())
        for k, goal, move, rest in goals:
            outcome = commander.client.send(goal, timeout=move + rest + 20)
            if outcome.status_name != 'SUCCEEDED':
                raise ExcitationError(f'motion {k + 1} ended {outcome.status_name}: '
                                      f'{outcome.error_string}')
            done += 1
            progress(f'  motion {k + 1}/{len(motions)}: {move:.2f} s')
    finally:
        if recorder is not None:
            progress(recorder.stop())
        commander.client.send(home, timeout=30)
        commander.switch(previous)
    return done


def excite(args: argparse.Namespace, recording: Path) -> int:
    """`rdt calibrate --excite`: record exciting motions of the armed hardware."""
    import rclpy  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode  # noqa: PLC0415
    from reverse_digital_twin.commander import TwinCommander, TwinError  # noqa: PLC0415
    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    setup = load_robot(args.robot)
    motions = excitation_goals(setup, args.duration, args.seed)
    rclpy.init()
    try:
        with BackgroundNode('rdt_calibrate') as node:
            commander = TwinCommander(node, TwinNames())
            try:
                commander.wait_ready(30.0, hardware=True)
                done = record_motions(commander, setup, motions, recording,
                                      lambda line: print(line, flush=True))
            except (TwinError, ExcitationError) as exc:
                print(f'rdt calibrate: {exc}', file=sys.stderr)
                return EXIT_REFUSED
            finally:
                commander.close()
    finally:
        rclpy.shutdown()
    print(f'rdt calibrate: {done} exciting motions recorded in {recording}', flush=True)
    return EXIT_OK


def score_recording(recording_path: Path, models: list, robot: str = 'rdt_arm6',
                    workers: int = 2) -> list[np.ndarray]:
    """RMS error per joint (rad) of each hardware model replaying a (held-out) recording."""
    from reverse_digital_twin.core.identification import evaluate  # noqa: PLC0415
    from reverse_digital_twin.core.replay_workers import ReplayWorkers  # noqa: PLC0415
    topics = hardware_topics()
    recording = load_recording(recording_path, *topics)
    _, spec = world_spec(robot)
    with ReplayWorkers(spec, workers) as pool:
        return evaluate(recording, pool, models)
