"""Turn the graph description (stack.py) into launch_ros actions, for `ros2 launch`.

Only the launch files import this; it needs launch_ros from a ROS 2 install.
"""
from __future__ import annotations

from collections.abc import Sequence

from reverse_digital_twin.stack import PACKAGE, NodeSpec


def launch_nodes(specs: Sequence[NodeSpec]) -> list:
    """launch_ros Node actions for the specs: same executables, names, files and overrides.

    Overrides go in as ``-p`` ros arguments, exactly as the embedded runner passes them, so
    both ways of starting the graph give every node the same parameters.
    """
    from launch_ros.actions import Node  # noqa: PLC0415

    actions = []
    for spec in specs:
        actions.append(Node(
            package=PACKAGE, executable=spec.executable, name=spec.name,
            namespace=spec.namespace.strip('/') or None,
            parameters=list(spec.parameter_files), ros_arguments=spec.override_arguments(),
            remappings=list(spec.remappings), output='screen', emulate_tty=True))
    return actions


def graph_launch_description(arguments, graph, rviz_remappings=(), rviz_parameters=()):
    """The LaunchDescription both launch files share: their arguments (name, default,
    description), the graph built by ``graph(context)`` once they are known, and rviz2 with
    the shipped configuration behind ``rviz:=true``."""
    from launch import LaunchDescription  # noqa: PLC0415
    from launch.actions import DeclareLaunchArgument, OpaqueFunction  # noqa: PLC0415
    from launch.conditions import IfCondition  # noqa: PLC0415
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution  # noqa: PLC0415
    from launch_ros.actions import Node  # noqa: PLC0415
    from launch_ros.substitutions import FindPackageShare  # noqa: PLC0415

    rviz_config = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'rdt.rviz'])
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, default, text in arguments),
        OpaqueFunction(function=graph),
        Node(package='rviz2', executable='rviz2', arguments=['-d', rviz_config],
             parameters=list(rviz_parameters), remappings=list(rviz_remappings),
             condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
