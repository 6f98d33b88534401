"""Training figures: how long `make train` takes to a reaching policy that succeeds.

Training takes minutes and needs torch, which `make bench` does not install, so this
benchmark does not train: it reports the figures `make train` measured
(``python -m reverse_digital_twin.train``; its report artifacts/train_<robot>.json), or, without
a report, those recorded in the kept policy's file (policies/reach_<robot>.npz, ``meta``):

- ``train_minutes``: wall minutes until the exported policy first succeeded in >= 90 % of the
  seeded randomised evaluation episodes (target <= 15 on the project's 2-core machine);
- ``train_success_rate``: the final policy's success rate on those episodes (target >= 0.9);
- ``train_timesteps``: env steps trained; ``train_source``: where the figures come from.

Standalone: ``python -m benchmarks.bench_train [robot]``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import ROOT, run_alone
from reverse_digital_twin.core.policy import Policy

TARGETS = {'train_minutes': ('<=', 15.0), 'train_success_rate': ('>=', 0.9)}


def measure(robot: str = 'rdt_arm6', artifacts: Path = ROOT / 'artifacts') -> dict:
    name = Path(robot).stem
    report = artifacts / f'train_{name}.json'
    if report.is_file():
        data = json.loads(report.read_text())
        return {'train_minutes': data['train_minutes'],
                'train_success_rate': data['train_success_rate'],
                'train_timesteps': data['train_timesteps'],
                'train_source': str(report.relative_to(ROOT)) if report.is_relative_to(ROOT)
                else str(report)}
    kept = ROOT / 'policies' / f'reach_{name}.npz'
    if not kept.is_file():
        raise FileNotFoundError(f'no training report {report} and no kept policy {kept}: run '
                                '`make train`')
    training = Policy.load(kept).meta.get('training', {})
    return {'train_minutes': training.get('minutes_to_target'),
            'train_success_rate': training.get('success_rate'),
            'train_timesteps': training.get('timesteps'),
            'train_source': str(kept.relative_to(ROOT))}


if __name__ == '__main__':
    sys.exit(run_alone(measure, __doc__))
