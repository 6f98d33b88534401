"""A side executor stops cleanly while its subscription is busy: its thread ends before the
executor and the helper node are torn down, and no callback fails under them (real rclpy, real
DDS, in the test process)."""
from __future__ import annotations

import threading

import pytest
from rclpy.node import Node
from sensor_msgs.msg import JointState

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.nodes.side_executor import SideExecutor

pytestmark = pytest.mark.integration
#: Stops while messages pour in (before the fix, a few of each 100 failed in the thread with
#: AttributeError: 'NoneType' object has no attribute 'trigger', from rclpy's executor).
STOPS = 100
#: Subscriptions of each helper: several ready at once widen the window the race needs.
SUBSCRIPTIONS = 4


def test_stop_while_messages_flow_joins_the_thread_without_an_error(ros_node: Node,
                                                                    monkeypatch) -> None:
    errors: list[str] = []
    monkeypatch.setattr(threading, 'excepthook',
                        lambda args: errors.append(f'{args.thread.name}: {args.exc_value!r}'))
    topic = f'/side_executor_test_{id(errors)}'
    publisher = ros_node.create_publisher(JointState, topic, 10)
    flooding = threading.Event()

    def flood() -> None:
        msg = JointState(name=['a'], position=[0.0])
        while not flooding.is_set():
            publisher.publish(msg)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    received = [0]
    try:
        for i in range(STOPS):
            side = SideExecutor(ros_node, f'side_test_{i}')
            for _ in range(SUBSCRIPTIONS):
                side.subscribe(JointState, topic,
                               lambda _: received.__setitem__(0, received[0] + 1), 10)
            side.start()
            before = received[0]
            assert wait_for(lambda b=before: received[0] > b + 10, 10.0, poll=0.001), \
                f'stop {i}: no messages on {topic}'
            side.stop()
            purpose = f'side_test_{i}'  # the thread's name
            assert all(t.name != purpose for t in threading.enumerate()), \
                f'stop {i}: the thread still runs'
    finally:
        flooding.set()
        flooder.join()
        ros_node.destroy_publisher(publisher)
    assert errors == []
