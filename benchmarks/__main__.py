"""`make bench` / `python -m benchmarks`: every benchmark of the run, one table, one JSON.

Runs bench_core (physics, lockstep, raw rclpy) and bench_bridge (the running twin graph), and,
if present, bench_prediction, bench_planner, bench_calibration, bench_cameras, bench_planning,
bench_sweep, bench_env, bench_train (the figures `make train` measured), bench_policy,
bench_soak (lost/duplicated goals and memory growth over ``--soak-minutes`` or ``--hours``),
bench_fuzz and bench_faults (the bridge killed mid-goal) (each
``measure(robot) -> dict``); merges their figures, prints each with its
same-run ratio or target, and writes artifacts/benchmarks.json with a ``targets`` section marking
each target met or missed.

``--only`` re-runs some benchmarks and keeps the other benchmarks' figures already in the file
(``measured_at`` says when each benchmark ran; every ratio is still computed within one
benchmark's run); ``--fresh`` starts the file over.

A module may declare targets with ``targets(results) -> list[Target]`` or a ``TARGETS`` dict
``{key: (op, limit)}``; one that fails is reported and the others still run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from benchmarks import ROOT, Target, add_soak_arguments, isolate, log
from benchmarks import soak_minutes_argument

MODULES = ('core', 'bridge', 'prediction', 'planner', 'calibration', 'cameras', 'planning',
           'sweep', 'env', 'train', 'policy', 'soak', 'fuzz', 'faults')


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f'benchmarks.bench_{name}')
    except ModuleNotFoundError as exc:
        if exc.name == f'benchmarks.bench_{name}':
            return None  # not written (yet)
        raise


def _targets(module: ModuleType, results: dict) -> list[Target]:
    if hasattr(module, 'targets'):
        return list(module.targets(results))
    declared = getattr(module, 'TARGETS', {})
    return [Target(key, float(limit), op, 'declared by the module')
            for key, (op, limit) in declared.items()]


def _value(value: object) -> str:
    if isinstance(value, float):
        return f'{value:,.3f}' if abs(value) < 100 else f'{value:,.0f}'
    return str(value)


def _earlier(path: Path, robot: str, rerun: list[str]) -> tuple[dict, dict[str, list[str]]]:
    """The figures of the benchmarks not re-run now, from an earlier file of the same robot."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, {}
    if old.get('robot') != robot or not isinstance(old.get('produced'), dict):
        return {}, {}
    kept = {m: keys for m, keys in old['produced'].items() if m not in rerun and m in MODULES}
    figures = {k: old[k] for keys in kept.values() for k in keys if k in old}
    figures['measured_at'] = {m: t for m, t in old.get('measured_at', {}).items() if m in kept}
    failures = {k: v for k, v in old.get('failures', {}).items() if k.split('.')[0] in kept}
    if failures:
        figures['failures'] = failures
    return figures, kept


def run(robot: str, output: Path, only: list[str], soak_minutes: float | None,
        fresh: bool = False) -> dict:
    path = output / 'benchmarks.json'
    earlier, kept = ({}, {}) if fresh else _earlier(path, robot, only)
    results: dict = {'robot': robot, 'machine_cores': os.cpu_count(),
                     'ros_domain_id': int(isolate())}
    results.update({k: v for k, v in earlier.items() if k not in ('failures', 'measured_at')})
    measured_at: dict[str, str] = dict(earlier.get('measured_at', {}))
    failures: dict[str, str] = dict(earlier.get('failures', {}))
    modules: dict[str, ModuleType] = {}
    produced: dict[str, list[str]] = dict(kept)
    for name in only:
        module = _load(name)
        if module is None:
            log(f'bench_{name}.py is not there: skipped')
            continue
        modules[name] = module
    t_start = time.monotonic()
    for name, module in modules.items():
        log(f'--- bench_{name} ---')
        try:
            if name == 'core':
                figures = module.measure(robot, prediction='prediction' not in modules)
            elif name in ('bridge', 'soak'):
                figures = module.measure(robot, soak_minutes=soak_minutes)
            else:
                figures = module.measure(robot)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the rest
            traceback.print_exc()
            failures[name] = f'{type(exc).__name__}: {exc}'
            continue
        clashes = sorted(k for k in figures if k in results and k != 'robot'
                         and results[k] != figures[k])
        if clashes:
            log(f'bench_{name} also measured {clashes}; its values are kept')
        results.update({k: v for k, v in figures.items() if k != 'robot'})
        for phase, reason in figures.get(f'{name}_errors', {}).items():
            failures[f'{name}.{phase}'] = reason
        produced[name] = [k for k in figures if k != 'robot']
        measured_at[name] = time.strftime('%Y-%m-%dT%H:%M:%S%z')
    # One source per figure: bench_prediction's bare stepping is the legacy bare_steps_10s_ms.
    if 'predict_bare_10s_ms' in results:
        results['bare_steps_10s_ms'] = results['predict_bare_10s_ms']
    results['wall_time_s'] = time.monotonic() - t_start
    results['measured_at'] = measured_at
    results['produced'] = produced
    if failures:
        results['failures'] = failures

    # The kept benchmarks' targets are judged and their rows printed from their kept figures
    shown = {name: module for name in produced
             if (module := modules.get(name) or _load(name)) is not None}
    targets: dict[str, dict] = {}
    for module in shown.values():
        for target in _targets(module, results):
            met = target.met(results)
            targets[target.key] = {'value': results.get(target.key), 'op': target.op,
                                   'limit': target.limit, 'basis': target.basis,
                                   'met': met}
    results['targets'] = targets
    # Written before the table is printed: a long soak's figures must never be lost to it
    output.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    _print(results, shown, targets, produced)
    log(f'written to {path}')
    return results


def _print(results: dict, modules: dict[str, ModuleType], targets: dict[str, dict],
           produced: dict[str, list[str]]) -> None:
    rows: list[tuple[str, str, str]] = []
    shown: set[str] = set()
    for name, module in modules.items():
        if hasattr(module, 'rows'):
            try:
                rows += module.rows(results)
            except KeyError as exc:  # a figure missing after a failure
                rows.append((f'bench_{name}', f'missing {exc}', ''))
    for key in sorted(targets):
        t = targets[key]
        state = {True: 'MET', False: 'MISSED', None: 'NOT MEASURED'}[t['met']]
        rows.append((f'target {key}', _value(t['value']),
                     f'{state}: {t["op"]} {_value(t["limit"])} ({t["basis"]})'))
        shown.add(key)
    for name, module in modules.items():
        if not hasattr(module, 'rows'):
            rows += [(key, _value(results[key]), '') for key in produced.get(name, [])
                     if isinstance(results.get(key), (int, float)) and key not in shown]
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    print(f'| {"measurement":<{width}} | result | same-run ratio / target |')
    print(f'|{"-" * (width + 2)}|---|---|')
    for name, value, ratio in rows:
        print(f'| {name:<{width}} | {value} | {ratio} |')
    missed = [k for k, t in targets.items() if t['met'] is False]
    print(f'\n[bench] targets: {sum(t["met"] is True for t in targets.values())} met, '
          f'{len(missed)} missed{": " + ", ".join(missed) if missed else ""}')
    for name, reason in results.get('failures', {}).items():
        print(f'[bench] bench_{name} FAILED: {reason}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m benchmarks',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--robot', default='rdt_arm6')
    parser.add_argument('--output', default=str(ROOT / 'artifacts'))
    parser.add_argument('--only', default=','.join(MODULES),
                        help=f'comma-separated subset of {",".join(MODULES)}')
    add_soak_arguments(parser)
    parser.add_argument('--fresh', action='store_true',
                        help='start benchmarks.json over instead of keeping the figures of '
                        'benchmarks not run now')
    args = parser.parse_args(argv)
    only = [m.strip() for m in args.only.split(',') if m.strip()]
    unknown = sorted(set(only) - set(MODULES))
    if unknown:
        parser.error(f'unknown benchmark(s) {unknown}; known: {MODULES}')
    results = run(args.robot, Path(args.output), only, soak_minutes_argument(args), args.fresh)
    return 1 if results.get('failures') else 0


if __name__ == '__main__':
    sys.exit(main())
