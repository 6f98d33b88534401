"""The kept reaching policy through the driver interface: success rates in sim and on the
perturbed stand-in.

One twin graph (bridge + twin + planner + stand-in, ``twin_graph(hardware='standin')``) in its own
ROS domain; the kept policy (policies/reach_<robot>.npz) runs as `rdt policy` runs it, in a
process of its own, toward 20 seeded targets, every command predicted and gated by the bridge:

- ``policy_success_rate_sim``: target sim (goal >= 0.9);
- ``policy_success_rate_standin``: target hardware, armed, the stand-in's payload, command latency
  and sensor noise drawn anew for each target (``--perturb``; goal >= 0.8).

Standalone: ``python -m benchmarks.bench_policy [robot]``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import ROOT, Target, log, ros, run_alone
from reverse_digital_twin.client import BackgroundNode
from reverse_digital_twin.commander import TwinCommander
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import TwinNames, twin_graph

TARGETS = 20
SEEDS = {'sim': 1000, 'standin': 2000}  # as tests/integration/test_policy_node.py


def _run_policy(policy: Path, seed: int, perturb: bool, report: Path) -> dict:
    """`rdt policy` toward TARGETS seeded targets; its JSON report."""
    command = [sys.executable, '-m', 'reverse_digital_twin.cli', 'policy', str(policy),
               '-n', str(TARGETS), '--seed', str(seed), '--report', str(report)]
    if perturb:
        command.append('--perturb')
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                            stdin=subprocess.DEVNULL)
    if not report.is_file():
        raise RuntimeError(f'rdt policy wrote no report: {result.stdout[-2000:]}'
                           f'{result.stderr[-2000:]}')
    return json.loads(report.read_text())


def measure(robot: str = 'rdt_arm6') -> dict:
    policy = ROOT / 'policies' / f'reach_{Path(robot).stem}.npz'
    if not policy.is_file():
        raise FileNotFoundError(f'no kept policy {policy}: run `make train` and copy it there')
    out: dict = {}
    with ros(), tempfile.TemporaryDirectory() as tmp:
        stack = Stack(twin_graph(robot, hardware='standin'), echo=None).start()
        background = BackgroundNode('bench_policy')
        commander = TwinCommander(background.node, TwinNames(), timeout=30.0)
        try:
            commander.wait_ready(120.0, hardware=True)
            log(f'policy: {policy.name} toward {TARGETS} seeded targets on the twin ...')
            sim = _run_policy(policy, SEEDS['sim'], False, Path(tmp) / 'sim.json')
            out['policy_success_rate_sim'] = sim['success_rate']
            log(f'policy: {sim["success_rate"]:.2f}; now on the perturbed stand-in ...')
            commander.arm(True, check=True)
            commander.switch('hardware', check=True)
            hw = _run_policy(policy, SEEDS['standin'], True, Path(tmp) / 'hw.json')
            out['policy_success_rate_standin'] = hw['success_rate']
            out['policy_targets'] = TARGETS
            out['policy_outcomes_sim'] = sim['outcomes']
            out['policy_outcomes_standin'] = hw['outcomes']
        finally:
            commander.close()
            background.close()
            stack.stop()
    return out


def rows(r: dict) -> list[tuple[str, str, str]]:
    return [(f'kept policy via the bridge, {TARGETS} seeded targets: sim / perturbed stand-in',
             f'{r.get("policy_success_rate_sim", float("nan")):.2f} / '
             f'{r.get("policy_success_rate_standin", float("nan")):.2f}', '')]


def targets(r: dict) -> list[Target]:
    return [Target('policy_success_rate_sim', 0.9, '>=', 'issue 10: >= 90 % in sim'),
            Target('policy_success_rate_standin', 0.8, '>=',
                   'issue 10: >= 80 % on the stand-in with randomised perturbations')]


if __name__ == '__main__':
    sys.exit(run_alone(measure, __doc__))
