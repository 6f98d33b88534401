"""`rdt policy` and `rdt dataset` before they touch a graph: arguments, seeded targets and
perturbations. (Through a running graph: tests/integration/test_policy_node.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from reverse_digital_twin.dataset_cli import dataset_main, default_streams
from reverse_digital_twin.policy_cli import PERTURBATION_RANGES, perturbation_draw, policy_main
from reverse_digital_twin.policy_cli import seeded_targets


@pytest.fixture(scope='module')
def policy_file(tmp_path_factory):
    from reverse_digital_twin.core.policy import Policy
    from reverse_digital_twin.core.reach_task import ReachTask
    task = ReachTask.from_robot('rdt_arm6')
    n, m = task.observation_size, task.action_size
    path = tmp_path_factory.mktemp('policy') / 'zero.npz'
    Policy([(np.zeros((n, m)), np.zeros(m))], 'identity', np.zeros(n), np.ones(n),
           task.meta()).save(path)
    return path


def test_bad_arguments_exit_2_with_the_reason(policy_file, tmp_path, capsys):
    assert policy_main([str(tmp_path / 'missing.npz')]) == 2
    assert 'policy file not found' in capsys.readouterr().err
    assert policy_main([str(policy_file), '--goal', '1,2']) == 2
    assert 'wants 6 joints' in capsys.readouterr().err
    assert policy_main([str(policy_file), '--goal', '-0.1,x']) == 2
    assert 'comma-separated numbers' in capsys.readouterr().err
    assert policy_main([str(policy_file), '-n', '0']) == 2
    assert policy_main([str(policy_file), '--min-success', '2']) == 2
    assert policy_main(['--help']) == 0


def test_seeded_targets_are_the_environments_and_repeat(policy_file):
    from reverse_digital_twin.core.policy_runner import load_policy
    loaded = load_policy(policy_file)
    first = seeded_targets(loaded, 3, 7, 'env')
    again = seeded_targets(loaded, 3, 7, 'env')
    assert [t.seed for t in first] == [7, 8, 9]
    for a, b in zip(first, again):
        assert np.array_equal(a.goal, b.goal) and np.array_equal(a.start, b.start)
    assert not np.allclose(first[0].goal, first[1].goal)
    home = seeded_targets(loaded, 1, 7, 'home')[0]
    assert np.allclose(home.start, loaded.task.home, atol=1e-6)
    assert seeded_targets(loaded, 1, 7, 'here')[0].start is None


def test_perturbations_are_seeded_and_within_their_ranges():
    draws = [perturbation_draw(s) for s in range(20)]
    assert perturbation_draw(3) == draws[3]
    for name, (low, high) in PERTURBATION_RANGES.items():
        values = [d[name] for d in draws]
        assert all(low <= v <= high for v in values) and len(set(values)) == 20


def test_dataset_arguments_are_checked(tmp_path, capsys):
    (tmp_path / 'taken').mkdir()
    assert dataset_main([str(tmp_path / 'taken')]) == 2
    assert 'exists already' in capsys.readouterr().err
    assert dataset_main([str(tmp_path / 'live'), '--source', 'live']) == 2
    assert 'needs --policy' in capsys.readouterr().err
    assert dataset_main([str(tmp_path / 'sweep'), '--source', 'sweep']) == 2
    assert 'needs --scenario and --joints' in capsys.readouterr().err
    assert not (tmp_path / 'live').exists() and not (tmp_path / 'sweep').exists()


def test_dataset_topics_are_the_live_stacks():
    from reverse_digital_twin.stack import TwinNames
    names = TwinNames()
    streams = default_streams()
    assert streams.joint_states == names.joint_states and streams.verdicts == names.verdicts
    assert streams.command == names.joint_trajectory
    assert streams.observation == '/policy/observation'
    assert default_streams(camera='/hw/table_camera').image == '/hw/table_camera/image_raw'
    assert default_streams(camera='table_camera').image == '/sim/table_camera/image_raw'
