"""`make demo` keeps telling its story (it is the README's front door)."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_twin_demo_tells_the_whole_story(tmp_path):
    result = subprocess.run(
        [sys.executable, '-m', 'reverse_digital_twin.cli', 'demo', '--output', str(tmp_path)],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert 'The twin refused the goal' in out
    assert 'sim: SUCCEEDED' in out and 'hardware (shadow): SUCCEEDED' in out
    assert 'diverged from the twin' in out
    assert 'all four steps behaved as expected' in out
    for name in ('twin_predicted_vs_measured.png', 'twin_divergence.png'):
        assert (tmp_path / name).stat().st_size > 10_000
