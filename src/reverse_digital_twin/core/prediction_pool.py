"""Predictions in a pool of worker processes, each with its own PyBullet world.

A :class:`Predictor` rollout holds the CPU (and, in-process, the GIL) for a good part of a
second. The planner runs them here instead: ``workers`` processes, each constructing its own
:class:`~reverse_digital_twin.core.prediction.Predictor` from a :class:`PredictorSpec` (so its
own world with the robot and the scene), answer one :class:`PredictionRequest` at a time.
Several requests run in parallel, one per idle worker; the rest wait in order.

Rules that keep one bad request from hurting the next:

- **Deadline**: a request may hold a worker no longer than :meth:`DeadlinePolicy.bound` of its
  trajectory (simulated duration + start delay + settling, over a conservative minimum speed,
  plus a fixed allowance, capped). Past it the worker is killed and respawned, and the request
  gets an unsafe :class:`Verdict` saying the prediction timed out.
- **Worker death** (crash, killed from outside): the worker is respawned and its request gets an
  unsafe verdict saying so; the goal was not checked, so it must not run.
- **Queueing**: a request that finds no free worker within ``max_time`` (workers busy or
  failing to start) gets an unsafe verdict saying so, rather than waiting forever.
- **Bad input** (a start state naming unknown joints, non-finite values): the request's future
  raises :class:`PredictionError` with the reason; the worker carries on.

Workers start with the 'forkserver' method (never 'fork': the planner is an rclpy process with
threads). No rclpy here.
"""
from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

import numpy as np

from reverse_digital_twin.core.controller import ControllerConfig
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal import TrajectoryGoal
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.physics import MotorSettings
from reverse_digital_twin.core.prediction import Predictor, Verdict
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.core.scene import Scene
from reverse_digital_twin.core.tolerances import SegmentTolerances
from reverse_digital_twin.core.deadlines import wall_deadline

#: Scheduling priority of prediction workers relative to the planner (higher = nicer).
WORKER_NICENESS = 5

#: Multiprocessing start method of the workers ('fork' is unsafe from a threaded rclpy process).
START_METHOD = 'forkserver'
#: Wall seconds a worker may take to build its world before the pool gives up on it.
STARTUP_TIMEOUT = 60.0


class PredictionError(ValueError):
    """A request the workers cannot predict (bad start state, bad goal data)."""


@dataclass(frozen=True)
class PredictorSpec:
    """Everything a worker needs to build its Predictor (the constructor's arguments).

    ``hardware``: the twin's model of the hardware (a calibration's), see Predictor.
    """

    model: RobotModel
    urdf_path: str
    scene: Scene | None
    physics_rate: float
    update_rate: float
    config: ControllerConfig
    motors: MotorSettings = MotorSettings()
    command_delay_cycles: int = 0
    allowed_contacts: tuple[tuple[str, str], ...] = ()
    initial_positions: Mapping[str, float] | None = None
    hardware: Perturbation | None = None

    def build(self) -> Predictor:
        return Predictor(self.model, self.urdf_path, self.scene, self.physics_rate,
                         self.update_rate, self.config, self.motors,
                         command_delay_cycles=self.command_delay_cycles,
                         allowed_contacts=self.allowed_contacts,
                         initial_positions=self.initial_positions,
                         hardware=self.hardware)


@dataclass(frozen=True)
class PredictionRequest:
    """One question for a worker: this goal, from this state, with these tolerances, at now."""

    goal: TrajectoryGoal
    start_positions: Mapping[str, float]
    start_velocities: Mapping[str, float] = field(default_factory=dict)
    tolerances: SegmentTolerances | None = None
    now: float = 0.0  # the controller clock at the start (s)


@dataclass(frozen=True)
class DeadlinePolicy:
    """How long a request may hold a worker (wall s).

    ``(duration + start delay + settling) / min_speed + allowance``, at most ``max_time``;
    ``min_speed`` is a conservative floor of the rollout speed in simulated seconds per wall
    second (rollouts run several times faster than real time when the machine is not starved).
    """

    min_speed: float = 1.0
    allowance: float = 2.0  # s: request transfer, controller setup, verdict transfer
    max_time: float = 30.0
    settling: float = 1.0  # s simulated after the end when the goal_time tolerance is shorter

    def __post_init__(self) -> None:
        for name in ('min_speed', 'max_time'):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f'prediction deadline: {name} must be > 0, got {value}')
        for name in ('allowance', 'settling'):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f'prediction deadline: {name} must be >= 0, got {value}')

    def bound(self, request: PredictionRequest, default_goal_time: float = 0.0) -> float:
        """The wall time ``request`` may take before its worker is killed.

        ``default_goal_time``: the controller's goal_time tolerance, for requests without
        tolerances (the prediction waits that long after the end for the outcome)."""
        return wall_deadline(self.simulated(request, default_goal_time), self.min_speed,
                             self.allowance, self.max_time)

    def simulated(self, request: PredictionRequest, default_goal_time: float = 0.0) -> float:
        """Simulated seconds a rollout of ``request`` covers: start delay, trajectory,
        settling."""
        points = request.goal.points
        duration = float(points[-1].time_from_start) if points else 0.0
        delay = float(request.goal.stamp) - float(request.now) if request.goal.stamp else 0.0
        goal_time = request.tolerances.goal_time if request.tolerances is not None \
            else default_goal_time
        return duration + max(delay, 0.0) + max(goal_time, self.settling)

    def beyond_max_time(self, request: PredictionRequest,
                        default_goal_time: float = 0.0) -> str | None:
        """Why ``request`` cannot be predicted within ``max_time`` even at ``min_speed``, or
        None. Refusing it at once spares a worker held for ``max_time`` by a request that
        would time out anyway (a stamp far ahead, a goal of days)."""
        simulated = self.simulated(request, default_goal_time)
        if simulated / self.min_speed + self.allowance <= self.max_time:
            return None
        return (f'the goal spans {simulated:.6g} s of simulated time (start delay, trajectory '
                f'and settling), more than a prediction may take ({self.max_time:g} s at '
                f'{self.min_speed:g} x real time, parameters prediction.max_time and '
                'prediction.min_speed); it was not checked')


def failed_verdict(joints: tuple[str, ...], reason: str, wall: float = 0.0) -> Verdict:
    """An unsafe verdict with nothing rolled out: the goal was not checked and must not run."""
    n = len(joints)
    return Verdict(False, (reason,), (), (), None, 0.0, '', tuple(joints), np.zeros(0),
                   np.zeros((0, n)), np.zeros((0, n)), 0.0, wall)


def start_forkserver() -> None:
    """Start the workers' forkserver now, with SIGINT ignored (it and its workers inherit that).

    A Ctrl-C for the node's process group (the runner's stop) then never kills the forkserver
    halfway through importing its preload, with a traceback; the pool ends its processes
    itself. Call it from the main thread before rclpy installs its signal handlers (the
    handler is swapped for a moment). Without it, the forkserver starts with the first pool.
    """
    from multiprocessing import forkserver  # noqa: PLC0415
    multiprocessing.get_context('forkserver').set_forkserver_preload([__name__])
    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


# --- the worker process -------------------------------------------------------------------------

def _worker_main(spec: PredictorSpec, conn: Connection) -> None:
    """Build the Predictor, then answer requests until the pipe closes.

    Ctrl-C reaches the whole process group; the pool (the parent) ends its workers, so they
    ignore SIGINT rather than print a traceback halfway through a world.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Predictions yield the CPU to the twin's physics and to the hardware's drivers: on a busy
    # machine a late verdict is a slower goal acceptance, a late joint state is a false alarm.
    os.nice(WORKER_NICENESS)
    try:
        predictor = spec.build()
    except Exception as exc:  # noqa: BLE001 - reported to the pool, which raises ConfigError
        try:
            conn.send(('fatal', f'{type(exc).__name__}: {exc}'))
        except OSError:
            pass  # the pool is gone
        return
    try:
        conn.send(('ready', os.getpid()))
        while True:
            try:
                ticket, request = conn.recv()
            except (EOFError, OSError):
                return
            try:
                verdict = predictor.predict(request.goal, request.start_positions,
                                            request.start_velocities, request.tolerances,
                                            now=request.now)
                conn.send((ticket, 'ok', verdict))
            except Exception as exc:  # noqa: BLE001 - a bad request must not end the worker
                conn.send((ticket, 'error', f'{type(exc).__name__}: {exc}'))
    except (OSError, KeyboardInterrupt):
        return  # the pool is gone
    finally:
        predictor.close()


# --- the pool -----------------------------------------------------------------------------------

@dataclass
class _Job:
    request: PredictionRequest
    future: Future
    ticket: int
    submitted: float
    started: float = 0.0
    deadline: float = 0.0


class _Worker:
    """One worker process and its end of the pipe."""

    def __init__(self, context, spec: PredictorSpec, index: int) -> None:
        self.index = index
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(spec, child),
                                       name=f'prediction-worker-{index}', daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.job: _Job | None = None
        self.started = time.monotonic()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5.0)
        self.conn.close()

    def describe_exit(self) -> str:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        if code is None:
            return 'is unresponsive'
        return f'exited with code {code}' if code >= 0 else f'was killed by signal {-code}'


class PredictionPool:
    """Answers :class:`PredictionRequest` s with :class:`Verdict` s in worker processes.

    Args:
        spec: how each worker builds its Predictor.
        workers: number of worker processes (predictions run in parallel up to this number).
        deadline: how long one request may hold a worker.
        start_method: multiprocessing start method ('forkserver' or 'spawn').

    ``start()`` (or the context manager) launches the workers and waits until each has built
    its world; a world that cannot be built raises :class:`ConfigError`. ``submit()`` returns a
    :class:`concurrent.futures.Future`; ``predict()`` waits for it.
    """

    def __init__(self, spec: PredictorSpec, workers: int = 2,
                 deadline: DeadlinePolicy = DeadlinePolicy(),
                 start_method: str = START_METHOD) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f'prediction workers must be an integer >= 1, got {workers!r}')
        if start_method == 'fork':
            raise ConfigError("prediction workers cannot use the 'fork' start method (unsafe "
                              "in a threaded process); use 'forkserver' or 'spawn'")
        self.spec = spec
        self.joints = tuple(spec.config.joints)
        self.size = workers
        self.deadline = deadline
        self._context = multiprocessing.get_context(start_method)
        if start_method == 'forkserver':
            self._context.set_forkserver_preload([__name__])
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._queue: deque[_Job] = deque()
        self._workers: list[_Worker] = []
        self._tickets = itertools.count(1)
        self._closed = False
        self._thread: threading.Thread | None = None
        #: Counters, for logs and tests.
        self.timeouts = 0
        self.deaths = 0
        self.respawns = 0

    # --- life cycle -----------------------------------------------------------------------------
    def start(self, timeout: float = STARTUP_TIMEOUT) -> 'PredictionPool':
        """Launch the workers; return when every one has built its world."""
        self._workers = [_Worker(self._context, self.spec, i) for i in range(self.size)]
        end = time.monotonic() + timeout
        for worker in self._workers:
            problem = self._await_ready(worker, end - time.monotonic())
            if problem is not None:
                self.close()
                raise ConfigError(f'prediction worker could not build its world: {problem}')
        self._thread = threading.Thread(target=self._dispatch, name='prediction-pool',
                                        daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _await_ready(worker: _Worker, timeout: float) -> str | None:
        """None when ready; else what went wrong."""
        if not worker.conn.poll(max(timeout, 0.0)):
            return f'no answer within {STARTUP_TIMEOUT:g} s'
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            return f'the worker {worker.describe_exit()} while starting'
        if kind != 'ready':
            return str(payload)
        worker.ready = True
        return None

    def close(self) -> None:
        """Stop the workers; waiting requests fail with PredictionError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        for worker in self._workers:
            if worker.job is not None:
                _resolve_error(worker.job.future, 'the prediction pool was closed')
            worker.kill()
        with self._lock:
            pending, self._queue = list(self._queue), deque()
        for job in pending:
            _resolve_error(job.future, 'the prediction pool was closed')
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> 'PredictionPool':
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -------------------------------------------------------------------------------
    def submit(self, request: PredictionRequest) -> Future:
        """Queue a request; the future's result is a Verdict (or PredictionError)."""
        future: Future = Future()
        if not isinstance(request, PredictionRequest) or not request.goal.points:
            future.set_exception(PredictionError(
                'a prediction request needs a PredictionRequest with a non-empty trajectory'))
            return future
        with self._lock:
            if self._closed or self._thread is None:
                future.set_exception(PredictionError('the prediction pool is not running'))
                return future
            self._queue.append(_Job(request, future, next(self._tickets), time.monotonic()))
        self._wake()
        return future

    def predict(self, request: PredictionRequest, timeout: float | None = None) -> Verdict:
        """Submit and wait for the verdict."""
        return self.submit(request).result(timeout)

    @property
    def busy(self) -> int:
        """Workers answering a request now."""
        return sum(1 for w in self._workers if w.job is not None)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def worker_pids(self) -> list[int | None]:
        return [w.process.pid for w in self._workers]

    # --- the dispatcher thread ------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b'.')
        except OSError:
            pass  # closing

    def _dispatch(self) -> None:
        while not self._closed:
            self._assign()
            now = time.monotonic()
            deadlines = [w.job.deadline for w in self._workers if w.job is not None]
            with self._lock:
                if self._queue:
                    deadlines.append(self._queue[0].submitted + self.deadline.max_time)
            timeout = max(min(deadlines) - now, 0.0) if deadlines else None
            busy_or_starting = [w.conn for w in self._workers if w.job is not None or not w.ready]
            if any(not w.ready for w in self._workers):
                timeout = 0.5 if timeout is None else min(timeout, 0.5)
            ready = wait([self._wake_r, *busy_or_starting], timeout)
            if self._closed:
                return
            if self._wake_r in ready:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            for worker in list(self._workers):
                if worker.conn in ready:
                    self._receive(worker)
            self._expire(time.monotonic())

    def _assign(self) -> None:
        for worker in self._workers:
            if not worker.ready or worker.job is not None:
                continue
            with self._lock:
                if not self._queue:
                    return
                job = self._queue.popleft()
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            job.started = time.monotonic()
            job.deadline = job.started + self.deadline.bound(
                job.request, self.spec.config.default_tolerances.goal_time)
            worker.job = job
            try:
                worker.conn.send((job.ticket, job.request))
            except (OSError, ValueError) as exc:  # pipe gone (dead worker), or unpicklable
                worker.job = None
                if isinstance(exc, OSError):
                    self._lost(worker, job, f'prediction worker {worker.index} '
                                            f'{worker.describe_exit()}')
                else:
                    _resolve_error(job.future, f'cannot send the request: {exc}')

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            job, worker.job = worker.job, None
            self._lost(worker, job, f'prediction worker {worker.index} {worker.describe_exit()}')
            return
        if not worker.ready:
            if message[0] == 'ready':
                worker.ready = True
            else:  # could not rebuild its world: nothing will get better by retrying fast
                self._lost(worker, None, f'prediction worker {worker.index} failed to start: '
                                         f'{message[1]}', respawn_delay=1.0)
            return
        ticket, kind, payload = message
        job = worker.job
        if job is None or job.ticket != ticket:
            return  # a late answer to a request that already failed
        worker.job = None
        if kind == 'ok':
            _resolve(job.future, payload)
        else:
            _resolve_error(job.future, payload)

    def _expire(self, now: float) -> None:
        limit = self.deadline.max_time
        with self._lock:
            stale = [job for job in self._queue if now - job.submitted > limit]
            for job in stale:
                self._queue.remove(job)
        for job in stale:
            self.timeouts += 1
            _resolve(job.future, failed_verdict(
                self.joints, f'the prediction timed out: no prediction worker was free within '
                f'{limit:g} s; the goal was not checked', now - job.submitted))
        for worker in list(self._workers):
            if not worker.ready and now - worker.started > STARTUP_TIMEOUT:
                self._lost(worker, None, f'prediction worker {worker.index} did not start')
                continue
            job = worker.job
            if job is None or now < job.deadline:
                continue
            self.timeouts += 1
            bound = job.deadline - job.started
            worker.job = None
            worker.kill()
            self._replace(worker)
            _resolve(job.future, failed_verdict(
                self.joints, f'the prediction timed out: no verdict within {bound:.1f} s (the '
                f'bound for this trajectory); the goal was not checked', now - job.started))

    def _lost(self, worker: _Worker, job: _Job | None, reason: str,
              respawn_delay: float = 0.0) -> None:
        """A worker died (or could not start): respawn it; its request fails clearly."""
        self.deaths += 1
        worker.kill()
        if respawn_delay:
            time.sleep(respawn_delay)
        self._replace(worker)
        if job is not None:
            _resolve(job.future, failed_verdict(
                self.joints, f'the prediction failed: {reason}; the goal was not checked',
                time.monotonic() - job.started))

    def _replace(self, worker: _Worker) -> None:
        if self._closed:
            return
        self.respawns += 1
        self._workers[self._workers.index(worker)] = _Worker(self._context, self.spec,
                                                             worker.index)


def _resolve(future: Future, verdict: Verdict) -> None:
    if not future.done():
        future.set_result(verdict)


def _resolve_error(future: Future, reason: str) -> None:
    if not future.done():
        future.set_exception(PredictionError(reason))
