"""`rdt record`: record the twin's topics into a rosbag2 bag (MCAP files) until Ctrl-C.

Runs the recorder node (nodes/recorder_node.py) in this process. The bag is what
``ros2 bag record -s mcap`` writes: ``ros2 bag info``/``play``, Foxglove and rosbags read it.
Ctrl-C (or --duration) ends it cleanly: metadata.yaml is written and a per-topic summary
printed.

Exit codes: 0 recorded, 2 bad arguments (existing or unwritable output, bad topic name).
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reverse_digital_twin.cli import parse_arguments

if TYPE_CHECKING:
    from reverse_digital_twin.core.bag import BagWriter

EXIT_OK, EXIT_USAGE = 0, 2


def _parser() -> argparse.ArgumentParser:
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    parser = argparse.ArgumentParser(
        prog='rdt record',
        description='Record the twin\'s topics into a rosbag2 bag of MCAP files (ros2 bag '
        'info/play, Foxglove and rosbags read it) until Ctrl-C.')
    parser.add_argument('output', nargs='?', default='',
                        help='bag directory to create (default: rosbag2_YYYY_MM_DD-HH_MM_SS '
                        'in the working directory)')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC',
                        help='topics to record (default: '
                        f'{" ".join(TwinNames().recorded_topics)})')
    parser.add_argument('--per-goal', action='store_true',
                        help='one .mcap file per client goal: a new file starts when a goal '
                        'ends')
    parser.add_argument('--duration', type=float, default=0.0, metavar='S',
                        help='stop after S seconds (default: until Ctrl-C)')
    return parser


def record_main(argv: list[str] | None = None) -> int:
    """`rdt record ...`; returns the exit code."""
    parser = _parser()
    args = parse_arguments(parser, list(sys.argv[1:] if argv is None else argv))
    if isinstance(args, int):
        return args
    from reverse_digital_twin.core.bag import default_bag_name  # noqa: PLC0415
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.nodes.recorder_node import check_topic_names  # noqa: PLC0415
    output = Path(args.output or default_bag_name())
    try:
        if not (math.isfinite(args.duration) and args.duration >= 0):
            raise ConfigError(f'--duration must be >= 0 s, got {args.duration}')
        topics = check_topic_names(args.topics) if args.topics else None
        _check_output(output)
    except ConfigError as exc:
        print(f'rdt record: {exc}', file=sys.stderr)
        return EXIT_USAGE
    return _record(output, topics, args.per_goal, args.duration)


def _check_output(output: Path) -> None:
    """ConfigError unless the bag directory can be created (before anything starts)."""
    import os  # noqa: PLC0415

    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    if output.exists():
        raise ConfigError(f'{output} exists already; a recording never overwrites')
    existing = output.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f'cannot create {output}: {existing} is not a directory')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f'cannot create {output}: {existing} is not writable')


def _record(output: Path, topics: list[str] | None, per_goal: bool, duration: float) -> int:
    stop = threading.Event()  # Ctrl-C from now on ends the recording cleanly

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    import rclpy  # noqa: PLC0415 - ROS only when recording
    from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415
    from rclpy.parameter import Parameter  # noqa: PLC0415
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415

    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    from reverse_digital_twin.nodes.recorder_node import Recorder  # noqa: PLC0415

    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    overrides = [Parameter('output', value=str(output)), Parameter('per_goal', value=per_goal),
                 Parameter('duration', value=float(duration))]
    if topics:
        overrides.append(Parameter('topics', value=list(topics)))
    try:
        node = Recorder(shutdown_when_done=False, parameter_overrides=overrides)
    except ConfigError as exc:
        rclpy.try_shutdown()
        print(f'rdt record: {exc}', file=sys.stderr)
        return EXIT_USAGE
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print(f'rdt record: writing {node.bag.path}' + (', one file per goal' if per_goal else '')
          + ' (Ctrl-C stops)', flush=True)
    announced = waited = False
    started = time.monotonic()
    try:
        while not stop.is_set() and not node.done:
            executor.spin_once(timeout_sec=0.1)
            if not announced and node.ready:
                announced = True
                print(f'rdt record: recording all {len(node.topics)} topics', flush=True)
            elif not announced and not waited \
                    and time.monotonic() - started > node.discovery_timeout:
                waited = True
                missing = node.missing()
                print(f'rdt record: recording {len(node.topics) - len(missing)} of '
                      f'{len(node.topics)} topics; still waiting for '
                      + ', '.join(f'{t} ({why})' for t, why in missing.items()), flush=True)
        _drain(executor, node)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut it short
        node.stop()
        missing = node.missing()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    print(summary(node.bag, missing), flush=True)
    return EXIT_OK


def _drain(executor: Any, node: Any, budget: float = 1.0) -> None:
    """Take what had arrived when the recording was asked to stop: a busy machine delays the
    recorder, and messages wait in the queues. Until one received after the request is
    written, for at most ``budget`` seconds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asked = time.time_ns()
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline \
            and max((f.end for f in node.bag.files), default=0) < asked:
        executor.spin_once(timeout_sec=0.01)


def summary(bag: BagWriter, missing: dict[str, str]) -> str:
    """What was written, per topic, as `ros2 bag info` lists it."""
    spans = [f for f in bag.files if f.count]
    seconds = (max(f.end for f in spans) - min(f.start for f in spans)) * 1e-9 if spans else 0.0
    lines = [f'rdt record: wrote {bag.path} ({len(bag.files)} file'
             f'{"s" if len(bag.files) != 1 else ""}, {seconds:.1f} s, '
             f'{bag.message_count} messages)']
    width = max((len(t) for t in [*bag.topics, *missing]), default=0)
    for topic in bag.topics.values():
        lines.append(f'  {topic.name:<{width}}  {topic.count:>7}  {topic.type}')
    for topic, why in missing.items():
        lines.append(f'  {topic:<{width}}  {"-":>7}  not recorded: {why}')
    for record in bag.files:
        goals = bag.custom_data.get(f'rdt.goals.{record.path.name}')
        lines.append(f'  {record.path.name}: {record.count} messages'
                     + (f', goal {goals}' if goals else ''))
    return '\n'.join(lines)


if __name__ == '__main__':
    raise SystemExit(record_main(sys.argv[1:]))
