"""`python -m benchmarks --only X` keeps the other benchmarks' figures in benchmarks.json."""
from __future__ import annotations

import json
from types import SimpleNamespace

import benchmarks.__main__ as bench


def _module(figures: dict, targets: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(measure=lambda robot: dict(figures), TARGETS=targets or {})


def test_only_reruns_and_keeps_the_rest(tmp_path, monkeypatch) -> None:
    fakes = {'planner': _module({'plan_ms': 10.0}, {'plan_ms': ('<=', 20.0)}),
             'cameras': _module({'camera_fps': 30.0})}
    monkeypatch.setattr(bench, '_load', lambda name: fakes.get(name))
    bench.run('arm', tmp_path, ['planner', 'cameras'], None)
    fakes['cameras'] = _module({'camera_fps': 12.0})
    results = bench.run('arm', tmp_path, ['cameras'], None)
    saved = json.loads((tmp_path / 'benchmarks.json').read_text())
    assert saved['plan_ms'] == 10.0 and saved['camera_fps'] == 12.0
    assert set(saved['measured_at']) == {'planner', 'cameras'}
    assert results['targets']['plan_ms']['met'] is True  # a kept figure is still judged


def test_fresh_and_another_robot_start_over(tmp_path, monkeypatch) -> None:
    fakes = {'planner': _module({'plan_ms': 10.0}), 'cameras': _module({'camera_fps': 30.0})}
    monkeypatch.setattr(bench, '_load', lambda name: fakes.get(name))
    bench.run('arm', tmp_path, ['planner'], None)
    assert 'plan_ms' not in bench.run('arm', tmp_path, ['cameras'], None, fresh=True)
    bench.run('arm', tmp_path, ['planner'], None)
    assert 'plan_ms' not in bench.run('panda', tmp_path, ['cameras'], None)


def test_a_kept_benchmark_whose_key_was_renamed_does_not_lose_the_new_figures(
        tmp_path, monkeypatch) -> None:
    """An earlier file lists a figure of a kept benchmark that it no longer holds (a key was
    renamed): the run still prints its table and writes the new figures."""
    fakes = {'planner': _module({'plan_ms': 10.0}), 'cameras': _module({'camera_fps': 30.0})}
    monkeypatch.setattr(bench, '_load', lambda name: fakes.get(name))
    bench.run('arm', tmp_path, ['planner'], None)
    path = tmp_path / 'benchmarks.json'
    saved = json.loads(path.read_text())
    saved['produced']['planner'].append('plan_ms_old_name')
    path.write_text(json.dumps(saved))
    bench.run('arm', tmp_path, ['cameras'], None)
    saved = json.loads(path.read_text())
    assert saved['camera_fps'] == 30.0 and saved['plan_ms'] == 10.0
