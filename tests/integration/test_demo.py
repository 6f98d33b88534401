"""`make demo` keeps telling its story (it is the README's front door), in both modes."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'reverse_digital_twin.cli', 'demo', *args],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_twin_demo_tells_the_whole_story(tmp_path):
    result = _demo('--output', str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert 'The twin refused the goal' in out
    assert 'sim: SUCCEEDED' in out and 'hardware (shadow): SUCCEEDED' in out
    assert 'diverged from the twin' in out
    assert 'all four steps behaved as expected' in out
    for name in ('twin_predicted_vs_measured.png', 'twin_divergence.png'):
        assert (tmp_path / name).stat().st_size > 10_000


def test_sim_only_demo_drives_the_twin_as_a_driver(tmp_path):
    result = _demo('--sim-only', '--output', str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert 'result after' in out and 'SUCCEEDED' in out
    assert 'max |error|' in out
    assert (tmp_path / 'demo_trajectory.png').stat().st_size > 10_000
