"""Style, as `colcon test` would check it with ament_flake8 (99 columns)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_flake8_is_clean():
    result = subprocess.run([sys.executable, '-m', 'flake8', 'src', 'tests', 'launch',
                             'benchmarks', 'setup.py'],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
