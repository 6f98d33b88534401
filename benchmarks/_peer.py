"""Raw rclpy peers for the same-run baselines (no project code on the message path).

``echo``: sends every ``bench/ping`` back on ``bench/pong`` (round trip);
``source RATE N``: publishes an N-joint JointState at RATE Hz on ``bench/one_way``, stamped with
the wall clock just before publishing, as a driver's joint_state_broadcaster would;
``relay``: republishes every ``bench/one_way`` on ``bench/one_way_relayed``, as the bridge relays
joint states (same QoS), with nothing else to do.
"""
from __future__ import annotations

import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from sensor_msgs.msg import JointState

from reverse_digital_twin.nodes.ros_common import PHYSICS_QOS, SYSTEM_DEFAULT_QOS


def echo() -> None:
    node = rclpy.create_node('bench_echo')
    pub = node.create_publisher(JointState, 'bench/pong', PHYSICS_QOS)
    node.create_subscription(JointState, 'bench/ping', pub.publish, PHYSICS_QOS)
    rclpy.spin(node)


def relay() -> None:
    node = rclpy.create_node('bench_relay')
    pub = node.create_publisher(JointState, 'bench/one_way_relayed', SYSTEM_DEFAULT_QOS)
    node.create_subscription(JointState, 'bench/one_way', pub.publish, SYSTEM_DEFAULT_QOS)
    rclpy.spin(node)


def source(rate: float, joints: int) -> None:
    """Publish like a driver's joint_state_broadcaster: same message shape, same QoS."""
    node = rclpy.create_node('bench_source')
    pub = node.create_publisher(JointState, 'bench/one_way', SYSTEM_DEFAULT_QOS)
    msg = JointState(name=[f'joint_{i}' for i in range(joints)], position=[0.1] * joints,
                     velocity=[0.0] * joints, effort=[0.0] * joints)
    period = 1.0 / rate
    next_time = time.monotonic()
    while rclpy.ok():
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        pub.publish(msg)
        next_time += period
        time.sleep(max(0.0, next_time - time.monotonic()))


def main(argv: list[str]) -> int:
    rclpy.init()
    try:
        if argv[0] == 'echo':
            echo()
        elif argv[0] == 'relay':
            relay()
        else:
            source(float(argv[1]), int(argv[2]))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
