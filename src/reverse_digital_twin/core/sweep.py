"""Risk sweeps: one motion rolled out under N scenario draws, summed up as probabilities.

A sweep asks "how likely is this motion to succeed when the world is not the model?": rollout
``i`` predicts the motion (a :class:`~reverse_digital_twin.core.prediction.Predictor`, exactly
as the planner does) under draw ``i`` of a :class:`~reverse_digital_twin.core.scenario.Scenario`
with seed :func:`~reverse_digital_twin.core.scenario.rollout_seed` (sweep seed, i). The report
gives the probability of success, of a collision and of each kind of limit violation (with 95 %
Wilson intervals), which joints and link pairs failed, how failures depend on the drawn
parameters, and the worst rollouts, each with the seed that replays it alone.

Rollouts run in worker processes that each build their predictor (their own PyBullet worlds)
once and reuse it: local processes (forkserver, as the prediction pool) by default, or Ray
actors, one per worker, on a local Ray instance or a cluster. A draw is undone after its
rollout and every rollout starts from the same saved world, so a rollout's result depends on
its seed alone: the same seed gives the same report with 1, 2 or 20 workers, locally or on Ray
(:func:`comparable` drops the timings, the only difference). No rclpy.
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TextIO

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal import TrajectoryGoal
from reverse_digital_twin.core.prediction import Verdict
from reverse_digital_twin.core.prediction_pool import PredictorSpec
from reverse_digital_twin.core.scenario import Scenario, ScenarioDraw, rollout_seed
from reverse_digital_twin.core.tolerances import SegmentTolerances

#: Multiprocessing start method of local workers ('fork' is unsafe next to threads).
START_METHOD = 'forkserver'
#: Wall seconds a worker may take to build its worlds.
STARTUP_TIMEOUT = 120.0
#: Rollouts queued per Ray actor, so that none waits for the driver between two rollouts.
RAY_IN_FLIGHT = 2
#: Worst rollouts named in a report.
WORST_CASES = 5
#: Outcome labels of a rollout, worst first: the first that applies names it.
LABELS = ('error', 'rejected', 'collision', 'limit_violation', 'emergency_stop', 'aborted',
          'no_outcome', 'unsafe', 'success')
LIMIT_KINDS = ('position', 'velocity', 'effort')
#: How a verdict's reason line for an emergency stop starts (core.scenario.ScenarioRun).
_ESTOP_PREFIX = 'emergency stop at '


class SweepError(RuntimeError):
    """A sweep could not run (a worker failed to start or died, Ray missing or failing)."""


@dataclass(frozen=True)
class SweepJob:
    """What every worker needs: the predictor, the scenario, the motion and its start."""

    spec: PredictorSpec
    scenario: Scenario
    goal: TrajectoryGoal
    start_positions: Mapping[str, float]
    seed: int = 0
    tolerances: SegmentTolerances | None = None

    @property
    def duration(self) -> float:
        return float(self.goal.points[-1].time_from_start) if self.goal.points else 0.0

    def draw(self, seed: int) -> ScenarioDraw:
        """The draw of the rollout with this (rollout) seed."""
        return self.scenario.draw(seed, list(self.spec.config.joints), self.duration)

    def check(self) -> None:
        """Refuse a scenario that does not fit the robot or its controller (ConfigError)."""
        config = self.spec.config
        self.scenario.check_robot(self.spec.model, list(config.joints),
                                  list(config.command_interfaces))


@dataclass(frozen=True)
class RolloutResult:
    """One rollout, in plain data (cheap to send between processes, JSON-ready)."""

    index: int
    seed: int
    label: str  # one of LABELS
    draw: dict[str, Any]  # ScenarioDraw.to_dict()
    summary: str  # ScenarioDraw.describe()
    reasons: tuple[str, ...] = ()
    collisions: tuple[tuple[str, str, float, float], ...] = ()  # link, other, time s, depth m
    violations: tuple[tuple[str, str, float], ...] = ()  # joint, kind, time s
    emergency_stop: bool = False
    aborted: bool = False  # the controller would abort
    max_tracking_error: float = 0.0
    max_tracking_error_joint: str = ''
    duration: float = 0.0  # simulated s
    wall: float = 0.0  # s of computation (a timing: not in the report)


def classify(verdict: Verdict) -> str:
    """The label of a rollout's verdict (see :data:`LABELS`)."""
    if verdict.safe:
        return 'success'
    if verdict.rejected:
        return 'rejected'
    if verdict.collisions:
        return 'collision'
    if verdict.limit_violations:
        return 'limit_violation'
    if any(r.startswith(_ESTOP_PREFIX) for r in verdict.reasons):
        return 'emergency_stop'
    if verdict.outcome is not None and not verdict.outcome.succeeded:
        return 'aborted'
    if verdict.outcome is None:
        return 'no_outcome'
    return 'unsafe'


class SweepWorker:
    """Rolls a job's motion out under one draw after another, in one predictor (built once).

    The same class runs in a local worker process and as a Ray actor.
    """

    def __init__(self, job: SweepJob) -> None:
        self.job = job
        self.predictor = job.spec.build()

    def ready(self) -> int:
        """The worker's process id, once its worlds are built."""
        return os.getpid()

    def verdict(self, seed: int) -> tuple[ScenarioDraw, Verdict]:
        """The draw of this rollout seed and the prediction under it."""
        job = self.job
        draw = job.draw(seed)
        verdict = self.predictor.predict(job.goal, job.start_positions,
                                         tolerances=job.tolerances, what_if=draw)
        return draw, verdict

    def run(self, index: int, seed: int) -> RolloutResult:
        """Rollout ``index`` with its seed; an exception becomes an 'error' result."""
        try:
            draw, v = self.verdict(seed)
        except Exception as exc:  # noqa: BLE001 - one bad draw must not end the sweep
            try:
                summary = self.job.draw(seed).describe()
                described = self.job.draw(seed).to_dict()
            except Exception:  # noqa: BLE001
                summary, described = 'the draw failed', {'seed': seed}
            return RolloutResult(index, seed, 'error', described, summary,
                                 (f'{type(exc).__name__}: {exc}',))
        return RolloutResult(
            index, seed, classify(v), draw.to_dict(), draw.describe(), tuple(v.reasons),
            tuple((c.link, c.other, round(c.time, 6), round(c.depth, 6)) for c in v.collisions),
            tuple((x.joint, x.kind, round(x.time, 6)) for x in v.limit_violations),
            any(r.startswith(_ESTOP_PREFIX) for r in v.reasons),
            v.outcome is not None and not v.outcome.succeeded,
            round(float(v.max_tracking_error), 9), v.max_tracking_error_joint,
            round(float(v.duration), 6), v.computation_time)

    def close(self) -> None:
        self.predictor.close()


# --- running: local processes or Ray ------------------------------------------------------------

@dataclass
class Execution:
    """How a sweep ran: the only part of a report that differs between runs of one seed."""

    backend: str  # 'local' | 'ray'
    workers: int
    address: str = ''  # Ray cluster, '' = a local instance
    startup_s: float = 0.0  # workers building their worlds
    rollouts_s: float = 0.0  # from the first rollout sent to the last result
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)

    def as_dict(self, count: int) -> dict[str, Any]:
        return {'backend': self.backend, 'workers': self.workers, 'address': self.address,
                'startup_s': round(self.startup_s, 3), 'rollouts_s': round(self.rollouts_s, 3),
                'rollouts_per_s': round(count / self.rollouts_s, 3) if self.rollouts_s else None,
                'machine_cores': self.cpu_count}


Progress = Callable[[int, int], None]


def run_sweep(job: SweepJob, count: int, workers: int | None = None, use_ray: bool = False,
              ray_address: str = '', progress: Progress | None = None,
              start_method: str = START_METHOD) -> tuple[list[RolloutResult], Execution]:
    """Roll ``job``'s motion out under ``count`` draws; the results in rollout order.

    Args:
        job: the motion, scenario and sweep seed.
        count: rollouts (N >= 1).
        workers: worker processes or Ray actors (default: the machine's cores; on a Ray
            cluster, its CPUs).
        use_ray: run on Ray: a local instance with ``workers`` CPUs, or the cluster at
            ``ray_address`` (its workers need this package installed).
        progress: called with (done, count) after each rollout.
        start_method: local workers' multiprocessing start method.

    Raises:
        ConfigError: a bad count or worker number, a scenario that does not fit the robot.
        SweepError: workers that cannot start or die; Ray missing or failing.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f'rollouts: expected a whole number >= 1, got {count!r}')
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ConfigError(f'workers: expected a whole number >= 1, got {workers!r}')
    if start_method == 'fork':
        raise ConfigError("sweep workers cannot use the 'fork' start method; use 'forkserver' "
                          "or 'spawn'")
    job.check()
    tasks = [(i, rollout_seed(job.seed, i)) for i in range(count)]
    results: dict[int, RolloutResult] = {}

    def collect(result: RolloutResult) -> None:
        results[result.index] = result
        if progress is not None:
            progress(len(results), count)

    if use_ray:
        execution = _run_ray(job, tasks, workers, ray_address, collect)
    else:
        execution = _run_local(job, tasks, min(workers or os.cpu_count() or 1, count),
                               collect, start_method)
    return [results[i] for i in range(count)], execution


def sweep_outcome(results: Sequence[RolloutResult], scenario: str, seed: int
                  ) -> tuple[float, str]:
    """(share of successful rollouts, one line saying so and naming the worst failures):
    what a gate needs from a sweep."""
    total = len(results)
    labels = Counter(r.label for r in results)
    share = labels['success'] / total if total else 0.0
    failures = ', '.join(f'{n} {label}' for label, n in labels.most_common()
                         if label != 'success')
    worst = sorted((r for r in results if r.label != 'success'), key=_severity)[:1]
    line = (f'{labels["success"]} of {total} rollouts under scenario {scenario!r} (seed {seed}) '
            f'succeed' + (f'; {failures}' if failures else ''))
    if worst:
        line += f'; worst: rollout seed {worst[0].seed}, {worst[0].summary}'
    return share, line


def replay(job: SweepJob, seed: int) -> tuple[ScenarioDraw, Verdict]:
    """One rollout of a sweep, in this process, from its seed alone (a report's worst case)."""
    job.check()
    worker = SweepWorker(job)
    try:
        return worker.verdict(int(seed))
    finally:
        worker.close()


def _local_main(job: SweepJob, conn: Connection) -> None:
    """A local worker: build the worlds, then answer (index, seed) until None or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends its workers
    devnull = os.open(os.devnull, os.O_WRONLY)  # PyBullet prints a line per world built
    os.dup2(devnull, 1)
    try:
        worker = SweepWorker(job)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(('fatal', f'{type(exc).__name__}: {exc}'))
        return
    try:
        conn.send(('ready', os.getpid()))
        while True:
            task = conn.recv()
            if task is None:
                return
            conn.send(('ok', worker.run(*task)))
    except (EOFError, OSError, KeyboardInterrupt):
        return
    finally:
        worker.close()


def _describe_exit(process: multiprocessing.process.BaseProcess) -> str:
    process.join(timeout=1.0)
    code = process.exitcode
    if code is None:
        return 'stopped answering'
    return f'exited with code {code}' if code >= 0 else f'was killed by signal {-code}'


def _run_local(job: SweepJob, tasks: list[tuple[int, int]], workers: int,
               collect: Callable[[RolloutResult], None], start_method: str) -> Execution:
    context = multiprocessing.get_context(start_method)
    if start_method == 'forkserver':
        context.set_forkserver_preload([__name__])
    execution = Execution('local', workers)
    procs: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    t0 = time.perf_counter()
    try:
        for k in range(workers):
            conn, child = context.Pipe(duplex=True)
            process = context.Process(target=_local_main, args=(job, child), daemon=True,
                                      name=f'sweep-worker-{k}')
            process.start()
            child.close()
            procs.append((process, conn))
        end = time.monotonic() + STARTUP_TIMEOUT
        for k, (process, conn) in enumerate(procs):
            if not conn.poll(max(end - time.monotonic(), 0.0)):
                raise SweepError(f'sweep worker {k} did not build its worlds within '
                                 f'{STARTUP_TIMEOUT:g} s')
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                raise SweepError(f'sweep worker {k} {_describe_exit(process)} while building '
                                 'its worlds') from None
            if kind != 'ready':
                raise SweepError(f'sweep worker {k} could not build its worlds: {payload}')
        t1 = time.perf_counter()
        execution.startup_s = t1 - t0
        pending = list(reversed(tasks))
        busy: dict[Connection, tuple[int, tuple[int, int]]] = {}
        for k, (process, conn) in enumerate(procs):
            if pending:
                task = pending.pop()
                conn.send(task)
                busy[conn] = (k, task)
        while busy:
            for conn in wait(list(busy)):
                k, (index, seed) = busy.pop(conn)
                try:
                    _, result = conn.recv()
                except (EOFError, OSError):
                    raise SweepError(
                        f'sweep worker {k} {_describe_exit(procs[k][0])} during rollout '
                        f'{index} (seed {seed}); replay it alone with --replay {seed}') from None
                collect(result)
                if pending:
                    task = pending.pop()
                    conn.send(task)
                    busy[conn] = (k, task)
        execution.rollouts_s = time.perf_counter() - t1
        return execution
    finally:
        for process, conn in procs:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for process, conn in procs:
            process.join(timeout=5.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=5.0)
            conn.close()


def _run_ray(job: SweepJob, tasks: list[tuple[int, int]], workers: int | None, address: str,
             collect: Callable[[RolloutResult], None]) -> Execution:
    try:
        import ray  # noqa: PLC0415 - optional: only for --ray
    except ImportError:
        raise SweepError('--ray needs the ray package: pip install ray (tools/requirements.txt '
                         'pins the tested version)') from None
    started_here = False
    actors: list[Any] = []
    t0 = time.perf_counter()
    try:
        if not ray.is_initialized():
            ray.init(address=address or None,
                     num_cpus=None if address else (workers or os.cpu_count() or 1),
                     include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
            started_here = True
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get('CPU', 1)))
        workers = min(workers, len(tasks))
        execution = Execution('ray', workers, address)
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(SweepWorker)
        job_ref = ray.put(job)
        actors = [actor_class.remote(job_ref) for _ in range(workers)]
        ray.get([a.ready.remote() for a in actors], timeout=STARTUP_TIMEOUT)
        t1 = time.perf_counter()
        execution.startup_s = t1 - t0
        pending = list(reversed(tasks))
        inflight: dict[Any, tuple[int, int]] = {}  # ref -> (actor, seed)

        def submit(k: int) -> None:
            index, seed = pending.pop()
            inflight[actors[k].run.remote(index, seed)] = (k, seed)

        for _ in range(RAY_IN_FLIGHT):
            for k in range(workers):
                if pending:
                    submit(k)
        while inflight:
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                k, seed = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise SweepError(f'Ray actor {k} failed during the rollout with seed {seed} '
                                     f'(replay it alone with --replay {seed}): '
                                     f'{str(exc).splitlines()[0]}') from None
                collect(result)
                if pending:
                    submit(k)
        execution.rollouts_s = time.perf_counter() - t1
        return execution
    except ray.exceptions.RayError as exc:
        raise SweepError(f'Ray failed: {str(exc).splitlines()[0]}') from None
    except ConnectionError as exc:
        raise SweepError(f'cannot connect to the Ray cluster at {address!r}: {exc}') from None
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if started_here:
            ray.shutdown()


# --- the report ---------------------------------------------------------------------------------

def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound at 0 and N, unlike p +- 2 sigma)."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(count: int, total: int) -> dict[str, Any]:
    low, high = wilson_interval(count, total)
    return {'count': count, 'probability': round(count / total, 6) if total else 0.0,
            'ci95': [round(low, 6), round(high, 6)]}


def _severity(r: RolloutResult) -> tuple:
    """Sort key, worst first: the label's rank, then deepest contact, most violations, largest
    tracking error, then the index (a stable order)."""
    depth = max((c[3] for c in r.collisions), default=0.0)
    return (LABELS.index(r.label), -depth, -len(r.violations), -r.max_tracking_error, r.index)


def _flatten(draw: Mapping[str, Any]) -> dict[str, Any]:
    """A draw as flat parameters: 'payload_mass', 'joint_friction.elbow_joint', 'obstacle.time'."""
    out: dict[str, Any] = {}
    for key, value in draw.items():
        if key == 'seed':
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                if not isinstance(v, list):
                    out[f'{key}.{sub}'] = v
        elif not isinstance(value, list):
            out[key] = value
    return out


def _parameters(results: Sequence[RolloutResult]) -> dict[str, Any]:
    """Per drawn parameter: its range and mean among successes and failures (numbers), or the
    rollouts and failures per value (names): what the failures depend on."""
    values: dict[str, list[tuple[Any, bool]]] = {}
    for r in results:
        for key, value in _flatten(r.draw).items():
            values.setdefault(key, []).append((value, r.label == 'success'))
    out: dict[str, Any] = {}
    for key in sorted(values):
        pairs = values[key]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in pairs):
            ok = [float(v) for v, s in pairs if s]
            bad = [float(v) for v, s in pairs if not s]
            every = ok + bad
            out[key] = {'rollouts': len(pairs), 'min': round(min(every), 6),
                        'max': round(max(every), 6),
                        'mean': round(sum(every) / len(every), 6),
                        'mean_success': round(sum(ok) / len(ok), 6) if ok else None,
                        'mean_failure': round(sum(bad) / len(bad), 6) if bad else None}
        else:
            counts = Counter(str(v) for v, _ in pairs)
            failures = Counter(str(v) for v, s in pairs if not s)
            out[key] = {v: {'rollouts': n, 'failures': failures.get(v, 0)}
                        for v, n in sorted(counts.items())}
    return out


def build_report(results: Sequence[RolloutResult], info: Mapping[str, Any],
                 execution: Execution | None = None, worst: int = WORST_CASES,
                 replay_command: str = '') -> dict[str, Any]:
    """The sweep's report, JSON-ready.

    ``outcomes`` counts every rollout that had each outcome (a collision may come with an
    effort limit and an abort: they overlap); ``labels`` names each rollout once, by the worst
    that applies (:data:`LABELS`).

    Args:
        results: every rollout, in order.
        info: what was swept (scenario, robot, motion, seed...), copied in as it is.
        execution: how it ran (the report's only timing-dependent part, under 'execution').
        worst: how many of the worst rollouts to name.
        replay_command: the command that replays one rollout, with ``{seed}`` for its seed.
    """
    total = len(results)
    labels = Counter(r.label for r in results)
    kinds = {k: sum(1 for r in results if any(v[1] == k for v in r.violations))
             for k in LIMIT_KINDS}
    outcomes = {
        'success': _rate(labels['success'], total),
        'collision': _rate(sum(1 for r in results if r.collisions), total),
        'limit_violation': _rate(sum(1 for r in results if r.violations), total),
        **{f'{k}_limit': _rate(n, total) for k, n in kinds.items()},
        'emergency_stop': _rate(sum(1 for r in results if r.emergency_stop), total),
        'aborted': _rate(sum(1 for r in results if r.aborted), total),
        'no_outcome': _rate(labels['no_outcome'], total),
        'rejected': _rate(labels['rejected'], total),
        'error': _rate(labels['error'], total),
    }
    by_joint: dict[str, dict[str, int]] = {}
    for r in results:
        for joint, kind in {(v[0], v[1]) for v in r.violations}:
            by_joint.setdefault(joint, {}).setdefault(kind, 0)
            by_joint[joint][kind] += 1
    pairs = Counter(f'{link} / {other}' for r in results
                    for link, other in {(c[0], c[1]) for c in r.collisions})
    failures = sorted((r for r in results if r.label != 'success'), key=_severity)
    worst_cases = [{
        'rank': k + 1, 'index': r.index, 'seed': r.seed, 'label': r.label,
        'summary': r.summary, 'draw': r.draw, 'reasons': list(r.reasons),
        'max_tracking_error': r.max_tracking_error,
        **({'replay': replay_command.format(seed=r.seed)} if replay_command else {}),
    } for k, r in enumerate(failures[:worst])]
    report: dict[str, Any] = {
        **dict(info),
        'rollouts': total,
        'outcomes': outcomes,
        'labels': {label: labels[label] for label in LABELS if labels[label]},
        'limit_violations_by_joint': {j: dict(sorted(k.items()))
                                      for j, k in sorted(by_joint.items())},
        'collisions_by_pair': dict(sorted(pairs.items())),
        'parameters': _parameters(results),
        'worst': worst_cases,
        'results': [{
            'index': r.index, 'seed': r.seed, 'label': r.label, 'draw': r.draw,
            'max_tracking_error': r.max_tracking_error,
            'max_tracking_error_joint': r.max_tracking_error_joint,
            'duration': r.duration, 'reasons': list(r.reasons)} for r in results],
    }
    if execution is not None:
        report['execution'] = execution.as_dict(total)
    return report


def comparable(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report without how it ran (backend, workers, timings): equal for equal seeds."""
    return {k: v for k, v in report.items() if k != 'execution'}


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The report in a few lines for a terminal."""
    o = report['outcomes']

    def rate(name: str) -> str:
        low, high = o[name]['ci95']
        return f'{o[name]["probability"]:.3f} [{low:.3f}, {high:.3f}]'

    lines = [f'success {rate("success")}   collision {rate("collision")}   (95 % intervals)',
             'limit violations: ' + ', '.join(f'{k} {o[f"{k}_limit"]["probability"]:.3f}'
                                              for k in LIMIT_KINDS)
             + f'   aborted {o["aborted"]["probability"]:.3f}'
             + (f'   emergency stop {o["emergency_stop"]["probability"]:.3f}'
                if o['emergency_stop']['count'] else '')
             + (f'   errors {o["error"]["count"]}' if o['error']['count'] else '')]
    if report['worst']:
        lines.append('worst rollouts:')
        for w in report['worst']:
            lines.append(f'  {w["rank"]}. rollout {w["index"]} (seed {w["seed"]}, {w["label"]})'
                         f': {w["summary"]}')
            lines += [f'       {reason}' for reason in w['reasons'][:2]]
            if 'replay' in w:
                lines.append(f'       replay: {w["replay"]}')
    else:
        lines.append('no rollout failed')
    return lines


def write_report(report: Mapping[str, Any], path: str | Path) -> Path:
    import json  # noqa: PLC0415
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + '\n')
    return path


_COLOURS = {'success': '#2e7d32', 'collision': '#c62828', 'limit_violation': '#ef6c00',
            'emergency_stop': '#6a1b9a', 'aborted': '#f9a825', 'no_outcome': '#795548',
            'rejected': '#455a64', 'error': '#000000', 'unsafe': '#9e9e9e'}


_UNITS = {'payload_mass': 'kg', 'joint_friction': 'N*m', 'joint_damping': 'N*m*s/rad',
          'weak_effort_scale': 'share of the URDF effort', 'position_noise': 'rad',
          'velocity_noise': 'rad/s', 'sensor_dropout': 'share lost', 'command_latency': 's',
          'command_loss': 'share lost', 'emergency_stop': 's after the start',
          'obstacle': ''}


def _key_parameter(report: Mapping[str, Any]) -> str | None:
    """The drawn number that separates failures from successes most (relative to its range),
    for the plot's x axis; None without a varying number."""
    best, score = None, -1.0
    for key, p in report['parameters'].items():
        if 'min' not in p or p['max'] <= p['min'] or p['rollouts'] < report['rollouts'] / 2:
            continue
        gap = 0.0
        if p['mean_success'] is not None and p['mean_failure'] is not None:
            gap = abs(p['mean_failure'] - p['mean_success']) / (p['max'] - p['min'])
        if gap > score:
            best, score = key, gap
    return best


def plot_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """A PNG: the outcome probabilities with their intervals, and every rollout's largest
    tracking error against the drawn parameter that matters most, coloured by outcome."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    outcomes = report['outcomes']
    names = [n for n in outcomes if n in ('success', 'collision', 'limit_violation')
             or outcomes[n]['count']]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), width_ratios=(1, 1.4))
    values = [outcomes[n]['probability'] for n in names]
    lows = [v - outcomes[n]['ci95'][0] for v, n in zip(values, names)]
    highs = [outcomes[n]['ci95'][1] - v for v, n in zip(values, names)]
    colours = [_COLOURS.get(n.replace('_limit', '') if n.endswith('_limit') else n, '#ef6c00')
               for n in names]
    y = list(range(len(names)))[::-1]
    left.barh(y, values, xerr=[lows, highs], color=colours, capsize=3)
    left.set_yticks(y, [f'{n.replace("_", " ")}  {v:.3f}' for n, v in zip(names, values)])
    left.set_xlim(0, 1)
    left.set_xlabel('probability (95 % Wilson interval)')
    key = _key_parameter(report)
    rows = report['results']
    xs = [_flatten(r['draw']).get(key, math.nan) if key else r['index'] for r in rows]
    errors = [max(r['max_tracking_error'], 1e-6) for r in rows]
    for label in LABELS:
        picked = [(x, e) for x, e, r in zip(xs, errors, rows) if r['label'] == label]
        if picked:
            right.scatter(*zip(*picked), s=14, color=_COLOURS[label], label=label.replace(
                '_', ' '), alpha=0.8)
    right.set_yscale('log')
    unit = _UNITS.get(key.split('.')[0], '') if key else ''
    right.set_xlabel(f'{key} ({unit})' if key and unit else key or 'rollout')
    right.set_ylabel('largest tracking error (rad | m)')
    right.legend(fontsize=8, loc='best')
    right.grid(alpha=0.3)
    fig.suptitle(f'{report.get("scenario", "scenario")}: {report["rollouts"]} rollouts, seed '
                 f'{report.get("seed", "?")} ({report.get("robot", "")})')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


class TextProgress:
    """A progress bar on a terminal (redrawn in place), or a line per 10 % elsewhere."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.t0 = time.monotonic()
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else math.inf
        filled = round(self.width * done / total)
        text = (f'[{"#" * filled}{"." * (self.width - filled)}] {done}/{total} rollouts  '
                f'{rate:.1f}/s' + (f'  {eta:.0f} s left' if done < total and
                                   math.isfinite(eta) else ''))
        if self.tty:
            self.stream.write(f'\r{text}' + ('\n' if done == total else ''))
        else:
            decile = done * 10 // total
            if decile == self._shown:
                return
            self._shown = decile
            self.stream.write(text + '\n')
        self.stream.flush()
