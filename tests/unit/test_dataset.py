"""Datasets (core/dataset.py, `rdt dataset`): episodes written as a rosbag2 bag of MCAP files
with an index, read back by read_episodes (rosbags) and, independently, by mcap_ros2's decoder
(the parser Foxglove uses) from each file's embedded schemas. No ROS graph."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from reverse_digital_twin.core.dataset import STREAM_TYPES, DatasetError, DatasetWriter
from reverse_digital_twin.core.dataset import Streams, read_episodes, read_index
from reverse_digital_twin.dataset_cli import default_streams, env_dataset, step_rewards
from reverse_digital_twin.dataset_cli import sweep_dataset

JOINTS = ['a', 'b']


def decoded(file: Path) -> list[tuple[str, int, object]]:
    """(topic, log time, message) of one .mcap file, decoded by mcap_ros2 alone."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    with file.open('rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        return [(c.topic, m.log_time, d) for _, c, m, d in reader.iter_decoded_messages()]


@pytest.fixture
def streams() -> Streams:
    return default_streams()


@pytest.fixture
def written(tmp_path, streams):
    """Two synthetic episodes of five steps each."""
    path = tmp_path / 'data'
    with DatasetWriter(path, streams, source='test', robot='two_link', joints=JOINTS,
                       info={'note': 'synthetic'}, start_ns=1_000_000_000) as writer:
        for e in range(2):
            writer.begin_episode([0.5, -0.5], seed=10 + e, info={'draw': f'draw {e}'})
            for k in range(5):
                t = 0.05 * k
                writer.joint_state(t, [0.1 * k, -0.1 * k], [1.0, -1.0])
                writer.command(t, [0.05], [[0.1 * (k + 1), -0.1 * (k + 1)]])
                writer.step(t, np.arange(8, dtype=np.float32) + k, [0.25, -0.75],
                            reward=0.5 * k)
            writer.image(0.2, np.full((6, 4, 3), 7 + e, dtype=np.uint8), 'cam')
            writer.verdict(0.2, {'safe': False, 'summary': 'collision: link hits pillar',
                                 'collisions': [{'link': 'link', 'other': 'pillar',
                                                 'time': 0.1}]})
            writer.end_episode(e == 1, reason='' if e else 'ran out of steps')
    return path


def test_episodes_read_back_as_arrays(written):
    episodes = list(read_episodes(written))
    assert [e.index for e in episodes] == [0, 1]
    first = episodes[0]
    assert first.file.name == 'data_0.mcap' and first.seed == 10 and not first.success
    assert first.reason == 'ran out of steps' and episodes[1].success
    assert first.goal.tolist() == [0.5, -0.5] and first.joints == JOINTS
    assert first.steps == 5 and first.observations.shape == (5, 8)
    assert first.observations.dtype == np.float32 and first.observations[3, 0] == 3.0
    assert np.allclose(first.actions, [[0.25, -0.75]] * 5)
    assert first.rewards.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert first.episode_return == pytest.approx(5.0)
    assert np.allclose(first.step_times, [0.0, 0.05, 0.1, 0.15, 0.2])
    assert first.positions.shape == (5, 2) and np.allclose(first.positions[2], [0.2, -0.2])
    assert np.allclose(first.velocities, [[1.0, -1.0]] * 5)
    assert np.allclose(first.targets[-1], [0.5, -0.5])
    assert first.images.shape == (1, 6, 4, 3) and episodes[1].images[0, 0, 0, 0] == 8
    (verdict,) = first.verdicts
    assert not verdict['safe'] and verdict['collisions'] == [('link', 'pillar', 0.1)]
    assert first.info == {'draw': 'draw 0'}
    assert list(read_episodes(written, images=False))[0].images.shape[0] == 0


def test_the_index_and_the_bag_agree(written, streams):
    index = read_index(written)
    assert index['format'] == 'rdt-dataset' and index['source'] == 'test'
    assert index['streams'] == streams.as_dict() and index['joints'] == JOINTS
    assert [(e['file'], e['steps'], e['return'], e['success']) for e in index['episodes']] \
        == [('data_0.mcap', 5, 5.0, False), ('data_1.mcap', 5, 5.0, True)]
    assert index['summary'] == {'episodes': 2, 'steps': 10, 'success_rate': 0.5,
                                'mean_return': 5.0}
    with AnyReader([written]) as reader:  # the directory is a rosbag2 bag
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics[streams.observation] == STREAM_TYPES['observation']
        assert topics[streams.verdicts] == STREAM_TYPES['verdicts']
        assert reader.message_count == 2 * (5 * 5 + 1 + 2)


def test_each_file_decodes_with_an_independent_reader(written, streams):
    """mcap_ros2 parses the embedded .msg schemas and the CDR itself: no rosbags, no rclpy."""
    for e, file in enumerate(sorted(written.glob('*.mcap'))):
        messages = decoded(file)
        by_topic: dict[str, list] = {}
        for topic, _, msg in messages:
            by_topic.setdefault(topic, []).append(msg)
        assert [list(m.data) for m in by_topic[streams.observation]][2] == list(range(2, 10))
        assert [m.data for m in by_topic[streams.reward]] == [0.0, 0.5, 1.0, 1.5, 2.0]
        (goal,) = by_topic[streams.goal]
        assert list(goal.name) == JOINTS and list(goal.position) == [0.5, -0.5]
        (image,) = by_topic[streams.image]
        assert (image.width, image.height, image.encoding) == (4, 6, 'rgb8')
        assert set(bytes(image.data)) == {7 + e}
        (verdict,) = by_topic[streams.verdicts]
        assert verdict.summary == 'collision: link hits pillar'
        assert verdict.collisions[0].other == 'pillar'
        command = by_topic[streams.command][-1]
        assert list(command.joint_names) == JOINTS
        assert command.points[0].time_from_start.nanosec == 50_000_000
        times = [t for _, t, _ in messages]
        assert times == sorted(times)


def test_writing_refuses_what_it_cannot_do(tmp_path, streams):
    (tmp_path / 'taken').mkdir()
    with pytest.raises(DatasetError, match='exists already'):
        DatasetWriter(tmp_path / 'taken', streams, source='x', robot='r', joints=JOINTS)
    writer = DatasetWriter(tmp_path / 'd', streams, source='x', robot='r', joints=JOINTS)
    with pytest.raises(DatasetError, match='begin_episode first'):
        writer.step(0.0, [1.0], [1.0])
    writer.begin_episode([0.0, 0.0])
    with pytest.raises(DatasetError, match='end_episode first'):
        writer.begin_episode([0.0, 0.0])
    with pytest.raises(DatasetError, match=r'\(H, W, 3\)'):
        writer.image(0.0, np.zeros((2, 2)))
    writer.close()  # the open episode is ended as stopped
    (entry,) = read_index(tmp_path / 'd')['episodes']
    assert entry['outcome'] == 'stopped' and not entry['success']
    with pytest.raises(DatasetError, match='not a dataset'):
        list(read_episodes(tmp_path))


def test_the_environment_writes_episodes_with_images(tmp_path, streams):
    path = env_dataset(tmp_path / 'env', '', 'rdt_arm6', episodes=2, seed=5, max_steps=4,
                       camera='table_camera', camera_size=(32, 24), scenario=None,
                       streams=streams)
    index = read_index(path)
    assert index['source'] == 'env' and index['robot'] == 'rdt_arm6'
    episodes = list(read_episodes(path))
    assert len(episodes) == 2 and [e.seed for e in episodes] == [5, 6]
    for episode, entry in zip(episodes, index['episodes']):
        assert 1 <= episode.steps <= 4 and episode.steps == entry['steps']
        assert np.all(np.isfinite(episode.rewards))
        assert episode.episode_return == pytest.approx(float(np.sum(episode.rewards)), 1e-6)
        assert episode.observations.shape[1] == 24 and episode.actions.shape[1] == 6
        assert np.all(np.abs(episode.actions) <= 1.0)
        assert len(episode.positions) == episode.steps + 1  # the start, then after each step
        assert episode.images.shape == (episode.steps + 1, 24, 32, 3)
        assert episode.targets.shape == (episode.steps, 6)
        assert entry['outcome'] in ('success', 'collision', 'truncated')
        assert len(episode.goal) == 6
    messages = decoded(sorted(path.glob('*.mcap'))[0])
    assert {t for t, _, _ in messages} >= {streams.observation, streams.action,
                                           streams.reward, streams.image, streams.joint_states}


def test_live_rewards_are_the_environments(tmp_path):
    """step_rewards (the live source's rewards, from the policy node's steps) gives what the
    environment gave for the same steps."""
    from reverse_digital_twin.core.policy_runner import REACHED, REFUSED, StepRecord
    from reverse_digital_twin.core.reach_env import ReachEnv
    env = ReachEnv('rdt_arm6', max_steps=6)
    try:
        env.reset(seed=3)
        rng = np.random.default_rng(0)
        records, rewards = [], []
        for k in range(6):
            action = rng.uniform(-1, 1, 6).astype(np.float32)
            records.append(StepRecord(k * 0.05, k * 0.05, env.positions, np.zeros(6),
                                      np.zeros(24, np.float32), action, env.positions))
            _, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
            if terminated or truncated:
                break
        # a contact ends an env episode; live, the bridge refuses the command instead
        outcome = REACHED if info['success'] else REFUSED if info['collision'] else 'max_steps'
        live = step_rewards(env.task, records, env.goal, env.positions, outcome)
    finally:
        env.close()
    assert live == pytest.approx(rewards, abs=1e-9)


def test_a_sweep_writes_one_episode_per_rollout(tmp_path, streams):
    path = sweep_dataset(tmp_path / 'sweep', 'rdt_arm6', '-0.3,-1.4,1.5,-1.6,-1.4,0.1',
                         'payload_range', episodes=2, seed=4, velocity_scaling=1.0,
                         streams=streams)
    index = read_index(path)
    assert index['source'] == 'sweep' and len(index['episodes']) == 2
    for episode, entry in zip(read_episodes(path), index['episodes']):
        (verdict,) = episode.verdicts
        assert verdict['safe'] == entry['success']
        assert len(episode.positions) > 10 and episode.steps == 0
        assert np.allclose(episode.targets[-1], [-0.3, -1.4, 1.5, -1.6, -1.4, 0.1])
        assert 'payload' in json.dumps(entry['info'])
        file_topics = {t for t, _, _ in decoded(episode.file)}
        assert file_topics == {streams.goal, streams.command, streams.verdicts,
                               streams.joint_states}
