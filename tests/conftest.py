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
