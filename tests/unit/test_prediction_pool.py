"""Unit tests for core.prediction_pool (worker processes, no ROS).

Parallelism is checked structurally (both workers busy at once; the pair's wall time well under
the sum of their own computation times), never against an absolute speed.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

import numpy as np
import pytest

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.core.controller_config import controller_config
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.prediction_pool import DeadlinePolicy, PredictionError
from reverse_digital_twin.core.prediction_pool import PredictionPool, PredictionRequest
from reverse_digital_twin.core.prediction_pool import PredictorSpec, start_forkserver
from reverse_digital_twin.robot_setup import load_robot


def make_spec(robot: str = 'rdt_arm6') -> PredictorSpec:
    setup = load_robot(robot)
    model = setup.model()
    config = controller_config(setup.controller, model, f'{setup.config}')
    return PredictorSpec(model, str(setup.urdf), setup.scene(),
                         float(setup.sim.get('physics_rate', 1000.0)),
                         float(setup.sim.get('update_rate', 100.0)), config,
                         command_delay_cycles=1, initial_positions=setup.initial_positions)


@pytest.fixture(scope='module')
def spec() -> PredictorSpec:
    return make_spec()


@pytest.fixture(scope='module')
def pool(spec):
    with PredictionPool(spec, workers=2) as running:
        yield running


def request(spec: PredictorSpec, duration: float = 3.0, amplitude: float = 0.2,
            **kwargs) -> PredictionRequest:
    """A safe motion from home: away from the scene's obstacle (first joint negative)."""
    joints = spec.config.joints
    home = np.array([spec.initial_positions[j] for j in joints])
    signs = np.where(np.arange(len(joints)) % 2 == 0, -1.0, 1.0)
    target = home + amplitude * signs
    goal = TrajectoryGoal(joints, [GoalPoint(duration, target.tolist(), [0.0] * len(joints))])
    return PredictionRequest(goal, dict(zip(joints, home.tolist())), **kwargs)


def test_a_safe_motion_is_predicted_safe(pool, spec):
    verdict = pool.predict(request(spec), timeout=60)
    assert verdict.safe, verdict.summary
    assert verdict.outcome is not None and verdict.outcome.succeeded
    assert verdict.duration >= 3.0


def test_two_requests_on_two_workers_run_in_parallel(pool, spec):
    pool.predict(request(spec, 1.0), timeout=60)  # both warm: every worker has answered once
    pool.predict(request(spec, 1.0), timeout=60)
    start = time.perf_counter()
    futures = [pool.submit(request(spec, 6.0)) for _ in range(2)]
    assert wait_for(lambda: pool.busy == 2 or all(f.done() for f in futures), 30)
    verdicts = [f.result(timeout=60) for f in futures]
    elapsed = time.perf_counter() - start
    assert all(v.safe for v in verdicts), [v.summary for v in verdicts]
    serial = sum(v.computation_time for v in verdicts)
    assert elapsed < 0.8 * serial + 0.2, \
        f'two predictions took {elapsed:.2f} s; one after the other they take {serial:.2f} s'


def test_requests_beyond_the_workers_wait_their_turn(pool, spec):
    futures = [pool.submit(request(spec, 1.0, amplitude=0.1 + 0.05 * k)) for k in range(5)]
    verdicts = [f.result(timeout=120) for f in futures]
    assert all(v.safe for v in verdicts)
    finals = [v.final_positions[1] for v in verdicts]
    assert len(set(np.round(finals, 3))) == 5  # each answer belongs to its own request


def test_bad_input_is_a_clear_error_and_the_worker_carries_on(pool, spec):
    bad = replace(request(spec), start_positions={'no_such_joint': 0.0})
    with pytest.raises(PredictionError, match='unknown joints'):
        pool.predict(bad, timeout=60)
    nan = replace(request(spec), start_positions={spec.config.joints[0]: float('nan')})
    with pytest.raises(PredictionError, match='not finite'):
        pool.predict(nan, timeout=60)
    with pytest.raises(PredictionError, match='non-empty trajectory'):
        pool.predict(replace(request(spec), goal=TrajectoryGoal(spec.config.joints, [])))
    assert pool.predict(request(spec, 1.0), timeout=60).safe


def test_a_goal_the_controller_refuses_is_an_unsafe_verdict(pool, spec):
    goal = TrajectoryGoal(['no_such_joint'], [GoalPoint(1.0, [0.0])])
    verdict = pool.predict(replace(request(spec), goal=goal), timeout=60)
    assert not verdict.safe and verdict.rejected
    assert 'reject' in verdict.summary


def test_the_deadline_grows_with_the_trajectory_and_is_capped(spec):
    policy = DeadlinePolicy(min_speed=2.0, allowance=1.0, max_time=20.0, settling=1.0)
    short, long = request(spec, 1.0), request(spec, 9.0)
    assert policy.bound(short) == pytest.approx((1.0 + 1.0) / 2.0 + 1.0)
    assert policy.bound(long) == pytest.approx((9.0 + 1.0) / 2.0 + 1.0)
    delayed = replace(long, goal=replace(long.goal, stamp=105.0), now=100.0)
    assert policy.bound(delayed) == pytest.approx((9.0 + 5.0 + 1.0) / 2.0 + 1.0)
    assert policy.bound(request(spec, 1000.0)) == 20.0
    assert policy.bound(short, default_goal_time=5.0) == pytest.approx((1.0 + 5.0) / 2.0 + 1.0)
    with pytest.raises(ConfigError, match='min_speed'):
        DeadlinePolicy(min_speed=0.0)


def test_a_request_that_could_never_finish_in_time_is_named_before_it_holds_a_worker(spec):
    """Found by fuzzing predict_trajectory: a stamp 1e9 s ahead held a worker for max_time
    (600 s by default); with both workers held, every goal through the bridge waited."""
    policy = DeadlinePolicy(min_speed=1.0, allowance=2.0, max_time=600.0, settling=1.0)
    assert policy.beyond_max_time(request(spec, 200.0)) is None  # a long goal is predicted
    far_ahead = request(spec, 1.0)
    far_ahead = replace(far_ahead, goal=replace(far_ahead.goal, stamp=1e9 + 100.0), now=100.0)
    reason = policy.beyond_max_time(far_ahead)
    assert reason and 'prediction.max_time' in reason and 'not checked' in reason
    assert policy.beyond_max_time(request(spec, 598.0)) is not None  # + settling + allowance


def test_a_timed_out_prediction_is_killed_and_the_next_one_runs(spec):
    with PredictionPool(spec, workers=1,
                        deadline=DeadlinePolicy(min_speed=1e4, allowance=0.01)) as pool:
        pid = pool.worker_pids()[0]
        verdict = pool.predict(request(spec, 20.0), timeout=30)
        assert not verdict.safe and 'timed out' in verdict.summary, verdict.summary
        assert pool.timeouts == 1
        assert pool.worker_pids()[0] != pid  # killed and respawned
        pool.deadline = DeadlinePolicy()
        verdict = pool.predict(request(spec, 1.0), timeout=60)
        assert verdict.safe, verdict.summary


def test_a_dead_worker_is_respawned_and_its_request_fails_clearly(spec):
    with PredictionPool(spec, workers=1) as pool:
        pid = pool.worker_pids()[0]
        future = pool.submit(request(spec, 30.0))
        assert wait_for(lambda: pool.busy == 1, 10)
        os.kill(pid, signal.SIGKILL)
        verdict = future.result(timeout=30)
        assert not verdict.safe
        assert 'worker' in verdict.summary and 'not checked' in verdict.summary
        assert pool.deaths == 1 and pool.worker_pids()[0] != pid
        assert pool.predict(request(spec, 1.0), timeout=60).safe


def test_bad_pool_configuration_is_refused(spec):
    with pytest.raises(ConfigError, match='workers'):
        PredictionPool(spec, workers=0)
    with pytest.raises(ConfigError, match='fork'):
        PredictionPool(spec, start_method='fork')
    broken = replace(spec, physics_rate=-1.0)
    with pytest.raises(ConfigError, match='could not build its world'):
        PredictionPool(broken, workers=1).start()


def test_a_closed_pool_refuses_requests(spec):
    pool = PredictionPool(spec, workers=1).start()
    pool.close()
    with pytest.raises(PredictionError, match='not running'):
        pool.predict(request(spec))


def _sigint_ignored_or_blocked(pid: int) -> bool:
    fields = dict(line.split(':', 1) for line in open(f'/proc/{pid}/status'))
    bit = 1 << (signal.SIGINT - 1)
    return bool((int(fields['SigBlk'], 16) | int(fields['SigIgn'], 16)) & bit)


@pytest.mark.skipif(not os.path.exists('/proc/self/status'), reason='needs /proc')
def test_ctrl_c_for_the_process_group_leaves_the_workers_to_the_pool(spec):
    """The runner's Ctrl-C reaches every process of the node's group: the forkserver and the
    workers must neither die nor print a traceback (the pool ends them)."""
    from multiprocessing import forkserver
    start_forkserver()  # as the planner does before rclpy.init
    with PredictionPool(spec, workers=1) as pool:
        pids = [pool.worker_pids()[0], forkserver._forkserver._forkserver_pid]
        assert all(_sigint_ignored_or_blocked(pid) for pid in pids)
        os.kill(pids[0], signal.SIGINT)
        assert pool.predict(request(spec, 1.0), timeout=60).safe
        assert pool.worker_pids()[0] == pids[0] and pool.deaths == 0


def test_a_request_that_finds_no_free_worker_in_time_is_refused(spec):
    with PredictionPool(spec, workers=1,
                        deadline=DeadlinePolicy(min_speed=0.01, max_time=0.3)) as pool:
        # 300 s rollouts: far longer than the 0.3 s allowed, however fast the machine
        first, second = pool.submit(request(spec, 300.0)), pool.submit(request(spec, 300.0))
        assert 'timed out' in first.result(timeout=30).summary
        verdict = second.result(timeout=30)
        # it waited max_time for the only worker: refused, whether the queue check or the
        # respawned worker's own deadline comes first (a matter of scheduling)
        assert not verdict.safe
        assert 'no prediction worker was free' in verdict.summary \
            or 'timed out' in verdict.summary, verdict.summary
