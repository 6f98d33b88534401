"""The graph description: one source for the runner's command lines and the launch files."""
import ast
from pathlib import Path

import pytest

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.stack import PLANNER_TWIN_PARAMETERS, TwinNames, read_node_parameters
from reverse_digital_twin.stack import robot_config, sim_graph

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('robot', ['rdt_arm6', 'panda'])
def test_sim_graph_names_both_nodes_with_their_config(robot):
    sim, ctrl, _camera = sim_graph(robot, namespace='sim',
                                   overrides={'pybullet_sim': {'lockstep': True}})
    assert sim.fully_qualified_name == '/sim/pybullet_sim'
    assert ctrl.fully_qualified_name == '/sim/joint_trajectory_controller'
    args = sim.ros_arguments()
    assert args[:3] == ['--ros-args', '-r', '__node:=pybullet_sim']
    assert '__ns:=/sim' in args
    files = [args[i + 1] for i, a in enumerate(args) if a == '--params-file']
    assert files[0] == str(robot_config(robot))  # overrides come after the file
    assert sim.parameter_sources() == [str(robot_config(robot)), {'lockstep': True}]
    assert ctrl.parameter_sources()[-1] == {'use_sim_time': True}


def test_robot_configs_are_consistent():
    for robot in ('rdt_arm6', 'panda'):
        ctrl = read_node_parameters(robot_config(robot), 'joint_trajectory_controller')
        sim = read_node_parameters(robot_config(robot), 'pybullet_sim')
        assert ctrl['joints'], robot
        assert ctrl['update_rate'] == sim['update_rate'], robot
        for j in ctrl['joints']:
            assert f'constraints.{j}.goal' in ctrl, (robot, j)


def test_unknown_robot_and_node_are_refused():
    with pytest.raises(ConfigError, match='available'):
        robot_config('no_such_robot')
    with pytest.raises(ConfigError, match='unknown nodes'):
        sim_graph('rdt_arm6', overrides={'no_such_node': {'x': 1}})


@pytest.mark.parametrize('launch_file, graph', [('sim.launch.py', 'sim_graph'),
                                                ('twin.launch.py', 'twin_graph')])
def test_launch_files_build_from_the_same_graph_description(launch_file, graph):
    tree = ast.parse((ROOT / 'launch' / launch_file).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert {graph, 'launch_nodes', 'generate_launch_description'} <= names


def test_twin_graph_modes():
    from reverse_digital_twin.stack import twin_graph
    specs = twin_graph('rdt_arm6', hardware='standin', target='shadow', armed=True)
    names = [s.fully_qualified_name for s in specs]
    assert names == ['/sim/pybullet_sim', '/sim/joint_trajectory_controller', '/sim/planner',
                     '/sim/camera', '/hw/standin_robot', '/hw/camera', '/sim/prediction_view',
                     '/joint_trajectory_controller']
    # the stand-in's process hosts its controller (as ros2_control_node hosts controllers)
    standin = specs[4]
    assert [n.fully_qualified_name for n in standin.nodes] == \
        ['/hw/standin_robot', '/hw/joint_trajectory_controller']
    bridge = specs[-1]
    assert bridge.parameter_files == ()  # the controller sections are not the bridge's
    assert bridge.parameters['target'] == 'shadow' and bridge.parameters['hardware_armed']
    assert bridge.parameters['predict_service'] == TwinNames().predict_trajectory \
        == '/sim/planner/predict_trajectory'
    real = twin_graph('rdt_arm6', hardware='/ur/scaled_joint_trajectory_controller',
                      client_controller='scaled_joint_trajectory_controller')
    assert [s.fully_qualified_name for s in real][-1] == '/scaled_joint_trajectory_controller'
    assert real[-1].parameters['hardware_joint_states'] == '/ur/joint_states'
    with pytest.raises(ConfigError, match='must not publish /joint_states'):
        twin_graph('rdt_arm6', hardware='/scaled_joint_trajectory_controller')
    with pytest.raises(ConfigError, match='fully qualified'):
        twin_graph('rdt_arm6', hardware='ur5')


def test_the_planner_predicts_in_the_twins_world():
    """The planner gets the sim section's robot, scene, rates, motors and initial positions (and
    the sim node's overrides); nothing of it is written twice in the robot file."""
    from reverse_digital_twin.stack import twin_graph
    specs = twin_graph('panda', overrides={'pybullet_sim': {'physics_rate': 500.0,
                                                            'real_time_factor': 0.0},
                                           'planner': {'prediction.workers': 3}})
    sim_spec, planner = specs[0], next(s for s in specs if s.name == 'planner')
    assert planner.fully_qualified_name == TwinNames().planner
    sim = read_node_parameters(robot_config('panda'), 'pybullet_sim')
    assert planner.parameters['robot_description_file'] == sim['robot_description_file']
    assert planner.parameters['scene_file'] == sim['scene_file']
    assert planner.parameters['physics_rate'] == 500.0
    assert 'real_time_factor' not in planner.parameters
    assert planner.parameters['initial_positions.panda_joint4'] == \
        sim['initial_positions.panda_joint4']
    assert planner.parameters['prediction.workers'] == 3
    assert planner.parameters['twin_joint_states'] == TwinNames().sim_joint_states
    assert planner.parameters['bridge_controller'] == TwinNames().bridge
    own = read_node_parameters(robot_config('panda'), 'planner')
    assert own and not any(k.startswith(PLANNER_TWIN_PARAMETERS) for k in own)
    assert 'controller_parameters_file' not in sim_spec.parameters  # the sim only simulates


def test_the_prediction_view_draws_in_the_twins_world_from_the_bridges_reports():
    from reverse_digital_twin.stack import twin_graph
    names = TwinNames()
    specs = twin_graph('panda', overrides={'pybullet_sim': {'physics_rate': 500.0},
                                           'prediction_view': {'ghost_rate': 10.0}})
    view = next(s for s in specs if s.name == 'prediction_view')
    assert specs.index(view) == len(specs) - 2  # up before the bridge that it listens to
    assert view.fully_qualified_name == names.prediction_view == '/sim/prediction_view'
    sim = read_node_parameters(robot_config('panda'), 'pybullet_sim')
    assert view.parameters['robot_description_file'] == sim['robot_description_file']
    assert view.parameters['scene_file'] == sim['scene_file']
    assert view.parameters['initial_positions.panda_finger_joint1'] == \
        sim['initial_positions.panda_finger_joint1']
    assert 'physics_rate' not in view.parameters  # it draws, it does not simulate
    assert view.parameters['verdicts'] == names.verdicts
    assert view.parameters['divergence'] == names.divergence
    assert view.parameters['ghost_rate'] == 10.0
    assert names.prediction_markers == '/sim/prediction/markers'
    assert names.ghost_joint_states == '/sim/prediction/ghost_joint_states'
    assert not any(s.name == 'prediction_view' for s in sim_graph('panda'))  # twin graph only


def test_a_process_of_two_nodes_is_not_renamed_and_keys_each_nodes_overrides():
    """rcl's ``__node:=`` would rename every node of the process, and launch_ros keys a lone
    root node's dict by ``/**``: a hosting process gets neither, each node its own section."""
    from reverse_digital_twin.ros_params import node_parameters
    from reverse_digital_twin.stack import twin_graph
    specs = twin_graph('rdt_arm6', hardware='standin',
                       overrides={'standin_robot': {'perturbation.payload_mass': 2.0},
                                  'hardware_controller': {'action_monitor_rate': 30.0}})
    standin = next(s for s in specs if s.hosted)
    args = standin.ros_arguments()
    assert not any(a.startswith('__node:=') for a in args)
    assert args[args.index('-r') + 1] == '__ns:=/hw'
    assert args.count(str(robot_config('rdt_arm6'))) == 1  # the robot file once
    robot = node_parameters(args, '/hw/standin_robot')
    controller = node_parameters(args, '/hw/joint_trajectory_controller')
    assert robot['perturbation.payload_mass'] == 2.0 and 'action_monitor_rate' not in robot
    assert controller['action_monitor_rate'] == 30.0
    assert controller['use_sim_time'] is False and 'perturbation.payload_mass' not in controller
    assert 'joints' in controller and 'robot_description_file' in robot  # the robot file's


def test_each_world_has_a_camera_node_mirroring_it_when_its_scene_declares_cameras(tmp_path):
    from reverse_digital_twin.stack import CAMERA_NODE, twin_graph
    names = TwinNames()
    specs = {s.fully_qualified_name: s for s in twin_graph(
        'panda', hardware='standin',
        overrides={'standin_robot': {'perturbation.payload_mass': 2.0},
                   'camera': {'niceness': 12}, 'hardware_camera': {'niceness': 15}})}
    twin, hardware = specs[names.camera_node('sim')], specs[names.camera_node('hw')]
    assert (twin.name, twin.executable, twin.namespace) == (CAMERA_NODE, 'camera', 'sim')
    assert hardware.fully_qualified_name == '/hw/camera'
    for camera, section in ((twin, 'pybullet_sim'), (hardware, 'standin_robot')):
        world = read_node_parameters(robot_config('panda'), section)
        mirrored = {k: v for k, v in world.items()
                    if k.startswith(('robot_description_file', 'scene_file', 'initial_'))}
        assert mirrored and mirrored.items() <= camera.parameters.items()
        assert 'physics_rate' not in camera.parameters  # it renders, it does not simulate
    assert twin.parameters['niceness'] == 12 and hardware.parameters['niceness'] == 15
    # the real camera sees the stand-in's payload (overrides included) and true arm
    assert hardware.parameters['perturbation.payload_mass'] == 2.0
    assert hardware.parameters['perturbation.joint_offsets.panda_joint4'] == 0.002
    assert hardware.parameters['payload_parameters_node'] == names.standin == '/hw/standin_robot'
    assert not any(k.startswith('perturbation.') for k in twin.parameters)
    assert names.camera_topic('sim', 'table_camera', 'points') == '/sim/table_camera/points'
    assert names.camera_topic('hw', 'wrist_camera', 'depth') == '/hw/wrist_camera/depth/image_raw'
    assert names.world_tf('hw') == ('/hw/tf', '/hw/tf_static')
    # the sim graph: beside the sim node; none for a scene without cameras
    assert [s.fully_qualified_name for s in sim_graph('rdt_arm6', 'x')][-1] == '/x/camera'
    bare = tmp_path / 'scene.yaml'
    bare.write_text('objects: []\n')
    assert not any(s.name == CAMERA_NODE for s in sim_graph(
        'rdt_arm6', overrides={'pybullet_sim': {'scene_file': str(bare)}}))
    assert not any(s.name == CAMERA_NODE for s in twin_graph(
        'rdt_arm6', hardware='standin', overrides={'pybullet_sim': {'scene_file': str(bare)},
                                                   'standin_robot': {'scene_file': str(bare)}}))


def test_each_process_runs_in_an_enclave_of_its_own_for_the_runner_and_launch():
    """SROS2 (config/sros2_policy.xml): one enclave per process, the same by both ways of
    starting the graph."""
    from reverse_digital_twin.launch_support import node_arguments
    from reverse_digital_twin.stack import twin_graph
    specs = twin_graph('rdt_arm6', hardware='standin')
    enclaves = [s.enclave for s in specs]
    assert len(set(enclaves)) == len(specs)
    for spec in specs:
        args = spec.ros_arguments()
        assert args[args.index('--enclave') + 1] == spec.enclave == spec.fully_qualified_name
        assert node_arguments(spec)['ros_arguments'] == ['--enclave', spec.enclave]
