"""A policy deployed through the driver interface: the policy node commands the arm only via
the bridge's joint_trajectory topic, so the twin predicts and gates every command; the same
policy file drives the twin and the stand-in hardware unchanged; an unsafe command is refused,
nothing moves for it, and the node stops saying why.

Real processes over real DDS: the graph (bridge, twin, planner, stand-in) and the policy node
(`rdt policy`, or the node alone as `ros2 run` starts it) in processes of their own.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reverse_digital_twin.client import wait_for

from .conftest import Twin, contacts_along

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
#: The policy kept in the repository (trained by the reaching environment's training).
KEPT_POLICY = ROOT / 'policies' / 'reach_rdt_arm6.npz'
RDT_POLICY = [sys.executable, '-m', 'reverse_digital_twin.cli', 'policy']
NODE = [sys.executable, '-m', 'reverse_digital_twin.nodes.run',
        'reverse_digital_twin.nodes.policy_node']
#: The first joint (the pan) of rdt_arm6 at this angle, the rest at home, keeps the forearm
#: just clear of the pillar of config/scene_default.yaml; one action of +1 on the pan puts it
#: inside (contact from ~0.17 rad).
NEAR_PILLAR_PAN = 0.13


@pytest.fixture(scope='module')
def kept() -> Path:
    assert KEPT_POLICY.is_file(), f'the kept policy {KEPT_POLICY.relative_to(ROOT)} is missing'
    return KEPT_POLICY


def _rdt_policy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*RDT_POLICY, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _report(path: Path, result: subprocess.CompletedProcess) -> dict:
    assert path.is_file(), result.stdout + result.stderr
    return json.loads(path.read_text())


def _pillar_policy(tmp_path: Path) -> Path:
    """A policy that always turns the pan at full speed: toward the pillar from near it."""
    from reverse_digital_twin.core.policy import Policy
    from reverse_digital_twin.core.reach_task import ReachTask
    task = ReachTask.from_robot('rdt_arm6')
    n, m = task.observation_size, task.action_size
    bias = np.zeros(m)
    bias[0] = 1.0
    path = tmp_path / 'into_the_pillar.npz'
    Policy([(np.zeros((n, m)), bias)], 'identity', np.zeros(n), np.ones(n),
           task.meta()).save(path)
    return path


def _home(twin: Twin) -> None:
    """Back home around the pillar (the twin's planner: a straight line from where a policy
    left the arm may cross it), so that the next test's reset finds the arm at home."""
    outcome = twin.commander.move(positions=twin.home.tolist(), timeout=120)
    assert outcome.succeeded, outcome


def _steering_policy(tmp_path: Path, top: float = 0.6) -> Path:
    """A two-layer policy, exact in the exported format: each joint's action is
    ``top * tanh(goal error / one full step)``. Not at full speed: a full-speed step's
    rest-to-rest spline can carry a heavy joint past its velocity limit, which the bridge
    refuses (rightly; the training environment does not check velocity limits)."""
    from reverse_digital_twin.core.policy import Policy
    from reverse_digital_twin.core.reach_task import ReachTask
    task = ReachTask.from_robot('rdt_arm6')
    n, m, size = len(task.joints), task.action_size, task.observation_size
    first = np.zeros((size, m))
    # observation[3n:4n] = (goal - q) / error_scale (core/reach_task.py)
    first[3 * n:4 * n, :] = np.diag(task.error_scale / (task.max_speed * task.action_period))
    path = tmp_path / 'steering.npz'
    Policy([(first, np.zeros(m)), (top * np.eye(m), np.zeros(m))], 'tanh', np.zeros(size),
           np.ones(size), task.meta()).save(path)
    return path


def test_a_policy_file_drives_the_twin_through_the_bridge_in_both_command_modes(
        fresh: Twin, tmp_path: Path):
    """Without the kept policy too: a linear policy reaches seeded targets through the
    bridge's joint_trajectory topic, and one goal through follow_joint_trajectory goals."""
    policy = _steering_policy(tmp_path)
    report = tmp_path / 'topic.json'
    result = _rdt_policy(str(policy), '-n', '3', '--seed', '7', '--report', str(report))
    data = _report(report, result)
    assert data['reached'] == 3, result.stdout + result.stderr
    _home(fresh)
    goal = fresh.home + np.array([-0.2, 0.1, -0.1, 0.1, 0.1, 0.2])  # away from the pillar
    result = _rdt_policy(str(policy), '--mode', 'action', '--goal',
                         ','.join(f'{v:.4f}' for v in goal), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert np.abs(fresh.positions(fresh.sim) - goal).max() < 0.05
    _home(fresh)


def test_an_unsafe_command_is_refused_nothing_moves_and_the_node_says_why(
        fresh: Twin, tmp_path: Path):
    """The node as `ros2 run` starts it, against the bridge: its first command would put the
    forearm into the pillar; the twin refuses it, the arm stays, the process ends with exit
    code 1 and the twin's reason."""
    twin = fresh
    near = twin.home.copy()
    near[0] = NEAR_PILLAR_PAN
    outcome = twin.send([near], [1.5])
    assert outcome.status_name == 'SUCCEEDED', outcome
    assert wait_for(lambda: np.abs(twin.positions(twin.sim) - near).max() < 1e-3, 10)
    goal = twin.home.copy()
    goal[0] = 1.57
    before = twin.positions(twin.sim)
    twin.sim.history.clear()
    twin.sim.record = True
    try:
        result = subprocess.run(
            [*NODE, '--ros-args', '-p', f'policy_file:={_pillar_policy(tmp_path)}',
             '-p', f'goal:={[float(v) for v in goal]}', '-p', 'exit_when_done:=true'],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        start = twin.sim.received
        assert wait_for(lambda: twin.sim.received > start + 50, 5)
    finally:
        twin.sim.record = False
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert 'stopped: refused' in output and 'the bridge refused a command' in output, output
    assert 'obstacle' in output, output
    moved = np.abs(twin.positions(twin.sim) - before)
    assert moved.max() < 2e-3, f'the arm moved by {moved.round(4)}'
    assert contacts_along(twin, list(twin.sim.history)) == []


@pytest.mark.slow  # 20 episodes, each after a planned move to its start
def test_the_kept_policy_reaches_seeded_targets_on_the_twin(
        fresh: Twin, kept: Path, tmp_path: Path):
    report = tmp_path / 'sim.json'
    result = _rdt_policy(str(kept), '-n', '20', '--seed', '1000', '--report', str(report))
    data = _report(report, result)
    _home(fresh)
    assert data['targets'] == 20
    assert data['success_rate'] >= 0.9, result.stdout + result.stderr
    assert 'rdt policy: reached' in result.stdout


@pytest.mark.slow  # 20 episodes, each after a planned move to its start
def test_the_same_file_drives_the_perturbed_stand_in(fresh: Twin, kept: Path, tmp_path: Path):
    """Unchanged, through the same bridge, on the hardware: a payload, command latency and
    sensor noise drawn anew for each target."""
    twin = fresh
    report = tmp_path / 'hw.json'
    assert twin.arm(True).success and twin.switch('hardware').success
    try:
        result = _rdt_policy(str(kept), '-n', '20', '--seed', '2000', '--perturb',
                             '--report', str(report))
        data = _report(report, result)
    finally:
        _home(twin)
        twin.reset()
    assert data['targets'] == 20 and data['perturb']
    assert len({e['perturbation']['payload_mass'] for e in data['episodes']}) == 20
    assert data['success_rate'] >= 0.8, result.stdout + result.stderr


def test_the_kept_policy_toward_a_goal_inside_the_pillar_is_stopped_before_it(
        fresh: Twin, kept: Path):
    """The policy heads straight for a goal whose pose is inside the pillar: the bridge
    refuses the first command that would touch it, the node stops saying why, and the arm
    never touches anything."""
    twin = fresh
    goal = twin.home.copy()
    goal[0] = 0.7
    twin.sim.history.clear()
    twin.sim.record = True
    try:
        result = _rdt_policy(str(kept), '--goal', ','.join(f'{v:.4f}' for v in goal),
                             timeout=120)
        start = twin.sim.received
        assert wait_for(lambda: twin.sim.received > start + 50, 5)
    finally:
        twin.sim.record = False
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert 'refused' in output and 'obstacle' in output, output
    assert contacts_along(twin, list(twin.sim.history)) == []


@pytest.mark.slow
def test_a_live_dataset_holds_each_episode_and_reads_back(fresh: Twin, tmp_path: Path):
    """`rdt dataset --source live`: the recorder writes the graph's topics while the policy
    node drives, one MCAP file per episode, read back by read_episodes and, independently,
    by mcap_ros2 from the files' own schemas."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from reverse_digital_twin.core.dataset import read_episodes, read_index
    output = tmp_path / 'live'
    result = subprocess.run(
        [sys.executable, '-m', 'reverse_digital_twin.cli', 'dataset', str(output), '--source',
         'live', '--policy', str(_steering_policy(tmp_path)), '-n', '2', '--seed', '7'],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    _home(fresh)
    assert result.returncode == 0, result.stdout + result.stderr
    index = read_index(output)
    assert index['source'] == 'live' and len(index['episodes']) == 2, result.stdout
    streams = index['streams']
    for episode, entry in zip(read_episodes(output), index['episodes']):
        assert episode.success and entry['outcome'] == 'reached', entry
        assert episode.steps == entry['steps'] > 3
        assert episode.observations.shape == (episode.steps, 24)
        assert np.all(np.isfinite(episode.rewards))
        assert episode.episode_return == pytest.approx(entry['return'])
        # paced: every command was predicted, each verdict safe
        assert len(episode.verdicts) == len(episode.targets) == episode.steps
        assert all(v['safe'] for v in episode.verdicts)
        assert len(episode.positions) > episode.steps  # /joint_states at the driver's rate
        assert np.abs(episode.positions[-1] - episode.goal).max() < 0.05
        with episode.file.open('rb') as stream:
            reader = make_reader(stream, decoder_factories=[DecoderFactory()])
            topics = [c.topic for _, c, _, _ in reader.iter_decoded_messages()]
        assert topics.count(streams['action']) == episode.steps
        assert topics.count(streams['goal']) == 1
