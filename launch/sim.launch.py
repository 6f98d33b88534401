"""ros2 launch reverse_digital_twin sim.launch.py [robot:=rdt_arm6|panda|<yaml>] ...

The PyBullet twin and the emulated joint_trajectory_controller: from outside, a robot driver.
The nodes come from the same graph description (reverse_digital_twin.stack) as `rdt up`.
"""

from launch import LaunchDescription
from launch.substitutions import LaunchConfiguration

from reverse_digital_twin.launch_support import graph_launch_description, launch_nodes
from reverse_digital_twin.stack import SIM_NODE, rviz_spec, sim_graph


ARGUMENTS = (
    ('robot', 'rdt_arm6', 'Robot configuration under config/ (rdt_arm6, panda) or a YAML path'),
    ('namespace', '', 'Namespace of the nodes (empty: root, as a driver)'),
    ('real_time_factor', '1.0', 'Simulated seconds per wall second; 0 = as fast as possible'),
    ('calibration_file', '', "Calibration written by `rdt calibrate` ('' = none): the sim's "
                             'world takes its payload, damping and friction'),
    ('rviz', 'false', 'Start rviz2 with the shipped configuration'),
)


def _graph(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    overrides = {SIM_NODE: {'real_time_factor': float(value['real_time_factor'])}}
    return launch_nodes(sim_graph(value['robot'], value['namespace'], overrides,
                                  calibration_file=value['calibration_file']))


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description(
        ARGUMENTS, _graph,
        lambda context: rviz_spec('sim', LaunchConfiguration('namespace').perform(context)))
