"""ros2 launch reverse_digital_twin twin.launch.py [hardware:=standin|<controller>] ...

The reverse twin: the bridge serves /<controller_name>/follow_joint_trajectory, predicts every
goal with the twin (under /sim) and routes it to the sim, the hardware or both (shadow). The
nodes come from the same graph description (reverse_digital_twin.stack.twin_graph) as
`rdt up --hardware ...`.
"""

from launch import LaunchDescription
from launch.substitutions import LaunchConfiguration

from reverse_digital_twin.launch_support import graph_launch_description, launch_nodes
from reverse_digital_twin.stack import rviz_spec, twin_graph


ARGUMENTS = (
    ('robot', 'rdt_arm6', 'Robot configuration under config/ (rdt_arm6, panda) or a YAML path'),
    ('hardware', '', "'' (twin only), 'standin' (the stand-in robot under /hw), or the fully "
                     "qualified trajectory controller of a real driver"),
    ('hardware_joint_states', '', 'joint_states topic of a real driver (default: beside it)'),
    ('target', 'sim', 'Initial target of the bridge: sim | hardware | shadow'),
    ('armed', 'false', 'Start with the hardware armed (needed for target hardware/shadow)'),
    ('controller_name', 'joint_trajectory_controller', 'Controller name clients use'),
    ('calibration_file', '', "Calibration written by `rdt calibrate` ('' = none): the twin's "
                             'world, its predictions and the bridge\'s divergence threshold '
                             'take it; the stand-in never'),
    ('rviz', 'false', 'Start rviz2 with the shipped configuration'),
)


def _graph(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    return launch_nodes(twin_graph(
        value['robot'], value['hardware'], value['target'], value['armed'].lower() == 'true',
        value['controller_name'], value['hardware_joint_states'],
        calibration_file=value['calibration_file']))


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description(ARGUMENTS, _graph, lambda context: rviz_spec('twin'))
