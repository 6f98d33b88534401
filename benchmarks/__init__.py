"""Benchmarks: speed against limits measured in the same run.

Not part of the installed package: run from the checkout with ``python -m benchmarks`` (``make
bench``). Each ``bench_*.py`` module exposes ``measure(robot) -> dict``; ``__main__`` merges them,
prints every figure beside its same-run ratio or target and writes artifacts/benchmarks.json.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def log(text: str) -> None:
    print(f'[bench] {text}', flush=True)


def isolate() -> str:
    """Own ROS domain and localhost-only discovery for this run and every process it starts
    (set before rclpy.init): a benchmark must not see, nor disturb, another graph."""
    if os.environ.get('RDT_BENCH_DOMAIN_ID'):
        os.environ['ROS_DOMAIN_ID'] = os.environ['RDT_BENCH_DOMAIN_ID']
    else:
        domain = str(random.SystemRandom().randint(101, 200))
        os.environ['ROS_DOMAIN_ID'] = os.environ['RDT_BENCH_DOMAIN_ID'] = domain
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.pop('ROS_STATIC_PEERS', None)
    return os.environ['ROS_DOMAIN_ID']


@contextmanager
def ros() -> Iterator[None]:
    """rclpy initialised in an isolated domain for the block (reused if already up)."""
    import rclpy  # noqa: PLC0415
    isolate()
    owner = not rclpy.ok()
    if owner:
        rclpy.init()
    try:
        yield
    finally:
        if owner and rclpy.ok():
            rclpy.shutdown()


def peer_command(*args: str) -> list[str]:
    """A helper process of this package (benchmarks._peer), found from any working directory."""
    return [sys.executable, '-m', 'benchmarks._peer', *args]


def peer_env() -> dict[str, str]:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(ROOT), env.get('PYTHONPATH', '')) if p)
    return env


@dataclass(frozen=True)
class Target:
    """A figure's target: ``key`` compared with ``limit`` (a number, often from the same run)."""

    key: str
    limit: float
    op: str = '<='  # <= | >= | ==
    basis: str = ''  # where the limit comes from

    def met(self, results: dict) -> bool | None:
        """True/False, or None when the figure was not measured."""
        value = results.get(self.key)
        if not isinstance(value, (int, float)):
            return None
        return {'<=': value <= self.limit, '>=': value >= self.limit,
                '==': value == self.limit}[self.op]


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """--soak-minutes / --hours, for the aggregator and a soak run alone."""
    parser.add_argument('--soak-minutes', type=float, default=None,
                        help='length of the soaks (default 10, or RDT_BENCH_SOAK_MINUTES); '
                        '0.5 for a smoke run')
    parser.add_argument('--hours', type=float, default=None,
                        help='length of the soaks in hours (instead of --soak-minutes)')


def soak_minutes_argument(args: argparse.Namespace) -> float | None:
    return args.hours * 60.0 if args.hours is not None else args.soak_minutes


def run_alone(measure: Callable[..., dict], description: str,
              argv: Sequence[str] | None = None, soak: bool = False) -> int:
    """`python -m benchmarks.bench_x [robot]`: one benchmark's figures as JSON (the aggregator,
    `python -m benchmarks --only x`, also compares them with their targets). With ``soak``
    the soak's length options too (passed on as ``soak_minutes``)."""
    import json  # noqa: PLC0415
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument('robot', nargs='?', default='rdt_arm6')
    if soak:
        add_soak_arguments(parser)
    args = parser.parse_args(argv)
    figures = measure(args.robot, soak_minutes=soak_minutes_argument(args)) if soak \
        else measure(args.robot)
    print(json.dumps(figures, indent=2, default=str))
    return 0
