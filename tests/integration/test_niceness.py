"""The niceness parameter: every thread of the node's process, the ones it started included."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import os, threading, time
import rclpy
from rclpy.parameter import Parameter
from reverse_digital_twin.nodes.node_main import apply_niceness
from reverse_digital_twin.nodes.ros_common import declare_niceness
rclpy.init()
node = rclpy.create_node('nice_probe', parameter_overrides=[Parameter('niceness', value=NICE)])
declare_niceness(node)
threading.Thread(target=time.sleep, args=(2,), daemon=True).start()  # started before
apply_niceness(node)
late = threading.Thread(target=time.sleep, args=(2,), daemon=True)  # started after
late.start()
print(sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir('/proc/self/task')}))
node.destroy_node()
rclpy.shutdown()
"""


@pytest.mark.parametrize('nice', [3, -2])
def test_every_thread_takes_the_niceness(nice):
    """Raising niceness is always permitted; lowering it needs root (or a warning)."""
    import os  # noqa: PLC0415
    out = subprocess.run([sys.executable, '-c', SCRIPT.replace('NICE', str(nice))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if nice > 0 or os.geteuid() == 0:
        assert out.stdout.strip() == f'[{nice}]', out.stdout + out.stderr
    else:
        assert out.stdout.strip() == '[0]' and 'not permitted' in out.stderr
