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


def test_a_command_hung_inside_ros_is_stopped_and_says_where():
    """The watchdog of `rdt switch/arm/disarm`: a process stuck past its deadline exits 1 with
    the reason and every thread's stack (the stuck call is in it), instead of never ending."""
    import subprocess
    import sys
    import time
    stuck = ('import threading\n'
             'from reverse_digital_twin.cli import _exit_unless_done\n'
             "_exit_unless_done(0.5, 1, '`arm` hung for 0.5 s inside ROS and was stopped')\n"
             'def stuck_in_the_middleware():\n'
             '    threading.Event().wait()\n'
             'stuck_in_the_middleware()\n')
    started = time.monotonic()
    done = subprocess.run([sys.executable, '-c', stuck], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert time.monotonic() - started < 30
    assert '`arm` hung for 0.5 s inside ROS and was stopped' in done.stderr
    assert 'stuck_in_the_middleware' in done.stderr


def test_a_teardown_hung_after_the_reply_leaves_with_the_replys_exit_code():
    """After the reply is printed, a node teardown stuck in the middleware ends the process
    quietly with the reply's exit code: the command did its work."""
    import subprocess
    import sys
    stuck = ('import threading\n'
             'from reverse_digital_twin.cli import _exit_unless_done\n'
             "print('rdt: hardware armed', flush=True)\n"
             '_exit_unless_done(0.5, 0, None)\n'
             'threading.Event().wait()\n')
    done = subprocess.run([sys.executable, '-c', stuck], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, 'rdt: hardware armed\n', '')
