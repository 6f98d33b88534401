"""Turn the graph description (stack.py) into launch_ros actions, for `ros2 launch`.

Only the launch files import this; it needs launch_ros from a ROS 2 install.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reverse_digital_twin.stack import PACKAGE, NodeSpec, RvizSpec


def node_arguments(spec: NodeSpec) -> dict[str, Any]:
    """The launch_ros ``Node`` keyword arguments of a spec (plain data, no launch import).

    ``parameters`` is :meth:`NodeSpec.parameter_sources`: the files, then the overrides as a
    dict, which launch_ros passes as a later ``--params-file`` keyed by the node's name. The
    embedded runner passes the same sources in the same order (:meth:`NodeSpec.ros_arguments`),
    so both ways of starting the graph give every node the same parameters.
    """
    enclave = ['--enclave', spec.enclave]  # as the runner's (NodeSpec.ros_arguments)
    if spec.hosted:  # several nodes, one process: no renaming, overrides keyed per node
        return dict(package=PACKAGE, executable=spec.executable,
                    namespace=spec.namespace.strip('/') or None,
                    parameters=hosted_parameter_files(spec), remappings=list(spec.remappings),
                    ros_arguments=enclave, output='screen', emulate_tty=True)
    return dict(package=PACKAGE, executable=spec.executable, name=spec.name,
                namespace=spec.namespace.strip('/') or None,
                parameters=spec.parameter_sources(), remappings=list(spec.remappings),
                ros_arguments=enclave, output='screen', emulate_tty=True)


def hosted_parameter_files(spec: NodeSpec) -> list[str]:
    """The parameter files of a process of several nodes, as the runner passes them
    (:meth:`NodeSpec.hosted_parameter_arguments`): launch_ros would key a dict by ``/**``."""
    args = spec.hosted_parameter_arguments()
    return [args[i + 1] for i, arg in enumerate(args) if arg == '--params-file']


def launch_nodes(specs: Sequence[NodeSpec]) -> list:
    """launch_ros Node actions for the specs: same executables, names, files and overrides."""
    from launch_ros.actions import Node  # noqa: PLC0415

    return [Node(**node_arguments(spec)) for spec in specs]


def rviz_arguments(spec: RvizSpec) -> dict[str, Any]:
    """The launch_ros ``Node`` keyword arguments of rviz2 (plain data, no launch import),
    besides its configuration file: the spec's namespace, remappings and parameters."""
    return dict(package='rviz2', executable='rviz2', namespace=spec.namespace or None,
                parameters=[dict(spec.parameters)] if spec.parameters else [],
                remappings=list(spec.remappings))


def graph_launch_description(arguments, graph, rviz):
    """The LaunchDescription both launch files share: their arguments (name, default,
    description), the graph built by ``graph(context)`` once they are known, and rviz2 with
    the shipped configuration behind ``rviz:=true``, as ``rviz(context)`` (a
    :class:`RvizSpec`) describes it."""
    from launch import LaunchDescription  # noqa: PLC0415
    from launch.actions import DeclareLaunchArgument, OpaqueFunction  # noqa: PLC0415
    from launch.conditions import IfCondition  # noqa: PLC0415
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution  # noqa: PLC0415
    from launch_ros.actions import Node  # noqa: PLC0415
    from launch_ros.substitutions import FindPackageShare  # noqa: PLC0415

    def rviz_node(context):
        spec = rviz(context)
        config = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', spec.config])
        return [Node(**rviz_arguments(spec), arguments=['-d', config],
                     condition=IfCondition(LaunchConfiguration('rviz')))]

    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, default, text in arguments),
        OpaqueFunction(function=graph),
        OpaqueFunction(function=rviz_node),
    ])
