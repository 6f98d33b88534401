"""Test-run isolation: every run gets its own ROS domain and localhost-only discovery.

Set before anything imports rclpy, and inherited by every node process the tests start, so
parallel runs (another checkout, CI, a developer's `rdt up`) never see each other.
"""
import os
import random

if 'RDT_TEST_DOMAIN_ID' in os.environ:
    os.environ['ROS_DOMAIN_ID'] = os.environ['RDT_TEST_DOMAIN_ID']
else:
    # 1..100: valid everywhere and clear of the default 0.
    os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.pop('ROS_STATIC_PEERS', None)


# --- a hang must end the run with every thread's stack, not eat CI's time budget --------------
# pytest-timeout (pytest.ini: 300 s, signal method) fails a slow test and goes on, but its
# SIGALRM handler only runs between Python bytecodes: a test stuck inside C (a DDS mutex, a
# join without timeout) is never interrupted. faulthandler's watchdog thread is plain C: after
# the test's timeout plus HARD_MARGIN_S it prints every thread's stack and exits the run.
import faulthandler  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

#: Seconds beyond the test's own pytest-timeout (pytest.ini or @pytest.mark.timeout) before
#: the watchdog ends the run.
HARD_MARGIN_S = float(os.environ.get('RDT_TEST_HARD_MARGIN_S', '120'))
_real_stderr = None


def pytest_configure(config) -> None:
    """Keep a handle on the terminal's stderr: during a test, fd 2 is pytest's capture file."""
    global _real_stderr
    _real_stderr = os.fdopen(os.dup(sys.stderr.fileno()), 'w')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    marker = item.get_closest_marker('timeout')
    limit = float(marker.args[0]) if marker and marker.args else \
        float(item.config.getini('timeout') or 300)
    faulthandler.dump_traceback_later(limit + HARD_MARGIN_S, exit=True,
                                      file=_real_stderr or sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
