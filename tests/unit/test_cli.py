"""`rdt` subcommands that need no ROS graph."""
import matplotlib.pyplot as plt
import numpy as np
import pytest

from reverse_digital_twin.cli import main


@pytest.mark.parametrize('robot', ['rdt_arm6', 'panda'])
def test_snapshot_renders_the_scene(tmp_path, robot):
    out = tmp_path / 'scene.png'
    assert main(['snapshot', '--robot', robot, '--output', str(out)]) == 0
    image = plt.imread(out)
    assert image.shape[:2] == (600, 800)
    assert np.std(image[:, :, :3]) > 0.05  # a picture, not a blank frame


def test_bad_override_syntax_is_a_clear_error(capsys):
    assert main(['up', '-p', 'real_time_factor=2']) == 2
    assert 'use -p <node>:<parameter>:=<value>' in capsys.readouterr().err
