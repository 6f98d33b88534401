"""The node graph of each mode, described once.

Both the embedded runner (``rdt up``) and the ROS 2 launch files build their processes from
these descriptions, so the two cannot drift apart. A :class:`NodeSpec` is plain data: which
node, in which namespace, with which parameter files, overrides and remappings.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.ros_params import ParameterSource, overrides_key
from reverse_digital_twin.ros_params import parameter_arguments, read_node_parameters
from reverse_digital_twin.robot_setup import robot_config

PACKAGE = 'reverse_digital_twin'
SIM_NODE = 'pybullet_sim'
CONTROLLER_NODE = 'joint_trajectory_controller'
CAMERA_NODE = 'camera'
#: A camera's topics, under ``<world namespace>/<camera name>/`` (as a ROS camera driver's).
CAMERA_TOPICS = {'image': 'image_raw', 'depth': 'depth/image_raw', 'camera_info': 'camera_info',
                 'points': 'points'}
#: The parameters a world's camera node takes over from that world's sim node (or stand-in),
#: so that it renders the same robot, scene (with its cameras) and start pose: one source.
CAMERA_WORLD_PARAMETERS = ('robot_description_file', 'scene_file', 'initial_positions.')
#: What the stand-in's camera takes over from its perturbations: the payload it shows, and the
#: encoder offsets it takes off the measured joint states to show the true arm.
CAMERA_HARDWARE_PARAMETERS = ('perturbation.payload_mass', 'perturbation.payload_link',
                              'perturbation.joint_offsets.')


def camera_topic(camera: str, what: str) -> str:
    """A camera's topic relative to its world's namespace; ``what``: a key of
    :data:`CAMERA_TOPICS` (image, depth, camera_info, points)."""
    if what not in CAMERA_TOPICS:
        raise ValueError(f'no camera topic {what!r}; known: {sorted(CAMERA_TOPICS)}')
    return f'{camera}/{CAMERA_TOPICS[what]}'


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph, as `ros2 run`/launch_ros and the runner need it."""

    name: str  # node name; also the key of its section in the parameter file
    executable: str  # console script of this package (ros2 run / launch_ros Node)
    module: str  # Python module with main(), for the embedded runner
    namespace: str = ''
    parameter_files: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    #: Further nodes the same process hosts, in the same namespace (the stand-in driver hosts
    #: its controller, as ros2_control_node does). Their names are the executable's own: a
    #: process of several nodes is not renamed, and each node's overrides are keyed by name.
    hosted: tuple['NodeSpec', ...] = ()

    @property
    def fully_qualified_name(self) -> str:
        ns = self.namespace.strip('/')
        return f'/{ns}/{self.name}' if ns else f'/{self.name}'

    @property
    def enclave(self) -> str:
        """The process's SROS2 enclave: its (first) node's fully qualified name. With
        ROS_SECURITY_ENABLE it holds the keys and permissions that config/sros2_policy.xml
        grants that process (security_policy.py); without, rcl ignores it."""
        return self.fully_qualified_name

    @property
    def nodes(self) -> tuple['NodeSpec', ...]:
        """Every node of the process: this one, then the hosted ones."""
        return (self, *self.hosted)

    def own_overrides_key(self) -> str:
        """The section of this node's overrides in a process of several nodes: its own name
        (launch_ros's key for a lone node at the root, ``/**``, would reach them all)."""
        ns = self.namespace.strip('/')
        return f'/{ns}/{self.name}' if ns else f'/**/{self.name}'

    def parameter_sources(self) -> list[ParameterSource]:
        """The node's parameter sources in order: the parameter files, then the overrides.

        Later sources win (rcl's precedence), so the overrides beat the robot YAML. launch
        passes this list as ``parameters=`` and the runner as the equivalent arguments.
        """
        return [*self.parameter_files, *([dict(self.parameters)] if self.parameters else [])]

    def ros_arguments(self) -> list[str]:
        """The --ros-args that configure this node from the command line, as launch_ros
        builds them from :meth:`parameter_sources` (overrides in a file keyed by the node)."""
        args = ['--ros-args']
        if not self.hosted:
            args += ['-r', f'__node:={self.name}']
        if self.namespace.strip('/'):
            args += ['-r', f'__ns:=/{self.namespace.strip("/")}']
        if self.hosted:
            args += self.hosted_parameter_arguments()
        else:
            args += parameter_arguments(self.parameter_sources(),
                                        overrides_key(self.namespace, self.name))
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args + ['--enclave', self.enclave]

    def hosted_parameter_arguments(self) -> list[str]:
        """``--params-file`` arguments of a process of several nodes: each parameter file
        once, then each node's overrides under its own name."""
        files = list(dict.fromkeys(f for n in self.nodes for f in n.parameter_files))
        args = parameter_arguments(files, '')
        for node in self.nodes:
            if node.parameters:
                args += parameter_arguments([dict(node.parameters)], node.own_overrides_key())
        return args


def world_cameras(world: Mapping[str, Any]) -> tuple:
    """The cameras (core.scene.CameraSpec) of a world's scene, given the sim node's (or the
    stand-in's) flattened parameters; () when none, or when the scene cannot be read (its node
    then says why, with the file and key)."""
    from reverse_digital_twin.core.paths import resolve  # noqa: PLC0415
    from reverse_digital_twin.core.scene import load_scene  # noqa: PLC0415
    scene_file = world.get('scene_file')
    if not scene_file:
        return ()
    try:
        return load_scene(resolve(str(scene_file), 'scene_file')).cameras
    except ConfigError:
        return ()


def camera_node(world: Mapping[str, Any], namespace: str, config: str,
                overrides: Mapping[str, Any], mirrored: tuple[str, ...] = (),
                extra: Mapping[str, Any] | None = None) -> list[NodeSpec]:
    """The camera node of a world (``[]`` when its scene declares no cameras): it mirrors the
    world's robot, scene and start pose (:data:`CAMERA_WORLD_PARAMETERS` + ``mirrored``) from
    ``world``, the sim node's (or stand-in's) parameters with their overrides."""
    if not world_cameras(world):
        return []
    prefixes = CAMERA_WORLD_PARAMETERS + mirrored
    parameters = {**{k: v for k, v in world.items() if k.startswith(prefixes)},
                  **(extra or {}), **overrides}
    return [NodeSpec(CAMERA_NODE, 'camera', f'{PACKAGE}.nodes.camera_node', namespace,
                     (config,), parameters)]


#: The parameter of the sim node, the planner and the bridge that loads a calibration.
CALIBRATION_PARAMETER = 'calibration_file'


def calibration_parameters(calibration_file: str) -> dict[str, str]:
    """``{'calibration_file': <absolute path>}``, or {} for '' (no calibration).

    Absolute, so that every node reads the file the user named, whatever its working
    directory; whether the file exists and is valid is each node's to say (a clear
    configuration error at start).
    """
    if not calibration_file:
        return {}
    return {CALIBRATION_PARAMETER: str(Path(calibration_file).expanduser().absolute())}


def scenario_overrides(robot: str, scenario_file: str, seed: int = 0
                       ) -> tuple[dict[str, dict[str, Any]], str]:
    """A scenario applied to a twin graph: (node overrides, what was drawn).

    The stand-in (the "world") takes draw ``seed``'s dynamics on top of its configured
    perturbation (payload, joint friction and damping, command latency, sensor noise: its
    ``perturbation.*`` parameters) and plays the rest of the draw (a weak or locked joint,
    dropouts, lost commands, an obstacle at a given position, an emergency stop: its
    ``scenario.*`` parameters). The planner sweeps under the whole scenario (the "what if" of
    the bridge's min_success_probability).
    """
    from reverse_digital_twin.core.perturbation import Perturbation  # noqa: PLC0415
    from reverse_digital_twin.core.robot_model import load_robot_model  # noqa: PLC0415
    from reverse_digital_twin.core.paths import resolve  # noqa: PLC0415
    from reverse_digital_twin.core.scenario import load_scenario, scenario_path  # noqa: PLC0415
    config = robot_config(robot)
    standin = read_node_parameters(config, STANDIN_NODE)
    controller = read_node_parameters(config, 'joint_trajectory_controller')
    joints = list(controller.get('joints', []))
    model = load_robot_model(resolve(standin['robot_description_file']))
    scenario = load_scenario(scenario_file)
    scenario.check_robot(model, joints, list(controller.get('command_interfaces', ['position'])))
    base = Perturbation.from_parameters(standin, joints=[j.name for j in model.movable_joints])
    draw = scenario.draw(seed, joints, 0.0)
    path = str(scenario_path(scenario_file))
    overrides = {STANDIN_NODE: {**draw.perturbation(base).to_parameters(),
                                'scenario.file': path, 'scenario.seed': int(seed)},
                 PLANNER_NODE: {'sweep.scenario_file': path}}
    return overrides, draw.describe()


def sim_graph(robot: str = 'rdt_arm6', namespace: str = '',
              overrides: Mapping[str, Mapping[str, Any]] | None = None,
              use_sim_time: bool = True, calibration_file: str = '') -> list[NodeSpec]:
    """Sim mode: the PyBullet sim node and the emulated controller, looking like a driver.

    Args:
        robot: robot name under config/ or a path to a parameter YAML.
        namespace: namespace of both nodes ('' = root, as a driver would be).
        overrides: node name -> parameter -> value, applied after the file; keys pybullet_sim,
            joint_trajectory_controller, camera (which mirrors the pybullet_sim section and
            overrides, :data:`CAMERA_WORLD_PARAMETERS`).
        use_sim_time: the controller follows /clock from the sim.
        calibration_file: a calibration (``rdt calibrate``) whose hardware dynamics the sim
            node's world takes ('' = none).
    """
    config = str(robot_config(robot))
    calibration = calibration_parameters(calibration_file)
    overrides = overrides or {}
    unknown = sorted(set(overrides) - {SIM_NODE, CONTROLLER_NODE, CAMERA_NODE})
    if unknown:
        raise ConfigError(f'parameter overrides for unknown nodes {unknown}; the sim graph has '
                          f'{SIM_NODE}, {CONTROLLER_NODE} and ({CAMERA_NODE}, when the scene '
                          'declares cameras)')
    sim = {**read_node_parameters(Path(config), SIM_NODE), **overrides.get(SIM_NODE, {})}
    return [
        NodeSpec(SIM_NODE, 'sim_node', f'{PACKAGE}.nodes.sim_node', namespace, (config,),
                 {**calibration, **overrides.get(SIM_NODE, {})}),
        NodeSpec(CONTROLLER_NODE, 'emulated_controller',
                 f'{PACKAGE}.nodes.emulated_controller_node', namespace, (config,),
                 {'use_sim_time': use_sim_time, **overrides.get(CONTROLLER_NODE, {})}),
        *camera_node(sim, namespace, config, overrides.get(CAMERA_NODE, {})),
    ]


@dataclass(frozen=True)
class RvizSpec:
    """rviz2 as a launch file starts it beside a graph (``rviz:=true``).

    The shipped configurations name their topics relative to one world (the twin's ``/sim``,
    or the sim graph's namespace): rviz runs in that namespace, and tf2's absolute /tf and
    /tf_static are remapped into it. The launch files and the test that checks each display
    against the live graph take this one description.
    """

    config: str  # file under the package's config/
    namespace: str = ''
    remappings: tuple[tuple[str, str], ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self, topic: str) -> str:
        """The fully qualified topic a display's topic name means for this rviz."""
        ns = self.namespace.strip('/')
        name = topic if topic.startswith('/') else (f'/{ns}/{topic}' if ns else f'/{topic}')
        return dict(self.remappings).get(name, name)


#: The shipped rviz configuration of each graph.
RVIZ_CONFIGS = {'twin': 'rdt.rviz', 'sim': 'rdt_sim.rviz'}


def rviz_spec(graph: str, namespace: str = '') -> RvizSpec:
    """rviz2 for the ``twin`` graph (the twin's world under /sim: robot, ghost, prediction
    markers, cameras) or the ``sim`` graph in ``namespace`` (robot, cameras). Both follow sim
    time, as the world's stamps do."""
    if graph not in RVIZ_CONFIGS:
        raise ConfigError(f'rviz for graph {graph!r}: known graphs are {sorted(RVIZ_CONFIGS)}')
    ns = TWIN_NAMESPACE if graph == 'twin' else namespace.strip('/')
    remappings = tuple((f'/{t}', f'/{ns}/{t}') for t in ('tf', 'tf_static')) if ns else ()
    return RvizSpec(RVIZ_CONFIGS[graph], ns, remappings, {'use_sim_time': True})


STANDIN_NODE = 'standin_robot'
#: Niceness of the stand-in hardware's processes (its physics loop and its controller). Left
#: at 0: at -10 the stand-in catching up starved the twin's prediction workers (nice +5) on two
#: cores, and a goal's verdict came too late (CI, test_twin_panda).
HARDWARE_NICENESS = 0
PLANNER_NODE = 'planner'
BRIDGE_EXECUTABLE = 'bridge'
TWIN_NAMESPACE = 'sim'
HARDWARE_NAMESPACE = 'hw'
#: The sim node's parameters the planner takes over, so that its prediction worlds are the
#: twin's (one source: the sim section of the robot file, plus the sim node's overrides).
PLANNER_TWIN_PARAMETERS = ('robot_description_file', 'scene_file', 'physics_rate',
                           'update_rate', 'lockstep', 'position_gain', 'velocity_gain',
                           'gravity_compensation', 'initial_positions.')
PREDICTION_VIEW_NODE = 'prediction_view'
#: The sim node's parameters the prediction view takes over: it draws in the twin's world.
PREDICTION_VIEW_TWIN_PARAMETERS = ('robot_description_file', 'scene_file', 'initial_positions.')
#: Topics of the prediction view, relative to the twin's namespace.
PREDICTION_MARKERS_TOPIC = 'prediction/markers'
GHOST_JOINT_STATES_TOPIC = 'prediction/ghost_joint_states'
#: The ghost's frames are the twin's links under this prefix (rviz RobotModel "TF Prefix").
GHOST_TF_PREFIX = 'twin'


@dataclass(frozen=True)
class TwinNames:
    """Fully qualified names of the twin graph, as clients see them.

    The commander, the CLI, the demo, the benchmarks and the tests take every name from here
    (and :func:`twin_graph` wires the nodes with the same values), so a name lives in one place.
    """

    client_controller: str = CONTROLLER_NODE  # the bridge's node name = what clients use
    twin_namespace: str = TWIN_NAMESPACE
    hardware_namespace: str = HARDWARE_NAMESPACE

    @property
    def bridge(self) -> str:
        return f'/{self.client_controller.strip("/")}'

    @property
    def joint_states(self) -> str:
        return '/joint_states'

    @property
    def switch_target(self) -> str:
        return f'{self.bridge}/switch_target'

    @property
    def arm_hardware(self) -> str:
        return f'{self.bridge}/arm_hardware'

    @property
    def status(self) -> str:
        return f'{self.bridge}/status'

    @property
    def divergence(self) -> str:
        return f'{self.bridge}/divergence'

    @property
    def predicted_joint_states(self) -> str:
        return f'{self.bridge}/predicted_joint_states'

    @property
    def verdicts(self) -> str:
        """Every verdict the bridge receives from the twin (goals and streamed trajectories)."""
        return f'{self.bridge}/verdicts'

    @property
    def follow_joint_trajectory(self) -> str:
        return f'{self.bridge}/follow_joint_trajectory'

    @property
    def joint_trajectory(self) -> str:
        """The streaming interface clients publish trajectories on (the driver's topic)."""
        return f'{self.bridge}/joint_trajectory'

    @property
    def goal_status(self) -> str:
        """The client action's goal status array (action_msgs/GoalStatusArray)."""
        return f'{self.follow_joint_trajectory}/_action/status'

    @property
    def sim_node(self) -> str:
        return f'/{self.twin_namespace}/{SIM_NODE}'

    @property
    def sim_controller(self) -> str:
        return f'/{self.twin_namespace}/{CONTROLLER_NODE}'

    @property
    def sim_joint_states(self) -> str:
        return f'/{self.twin_namespace}/joint_states'

    @property
    def planner(self) -> str:
        return f'/{self.twin_namespace}/{PLANNER_NODE}'

    @property
    def predict_trajectory(self) -> str:
        return f'{self.planner}/predict_trajectory'

    @property
    def move_to(self) -> str:
        return f'{self.planner}/move_to'

    @property
    def hardware_controller(self) -> str:
        return f'/{self.hardware_namespace}/{CONTROLLER_NODE}'

    @property
    def hardware_joint_states(self) -> str:
        return f'/{self.hardware_namespace}/joint_states'

    @property
    def hardware_controller_state(self) -> str:
        """Its ``output`` is the command reaching the hardware each cycle, ``reference`` the
        sampled trajectory."""
        return f'{self.hardware_controller}/controller_state'

    @property
    def hardware_joint_trajectory(self) -> str:
        """Streamed trajectories the bridge forwards to the hardware."""
        return f'{self.hardware_controller}/joint_trajectory'

    @property
    def recorded_topics(self) -> tuple[str, ...]:
        """What ``rdt record`` records by default: both joint-state streams, the commands
        reaching the hardware, the twin's prediction, verdicts, divergence reports, the bridge's
        events and the client goals' status."""
        return (self.sim_joint_states, self.hardware_joint_states,
                self.hardware_controller_state, self.hardware_joint_trajectory,
                self.predicted_joint_states, self.verdicts, self.divergence, self.status,
                self.goal_status)

    @property
    def standin(self) -> str:
        return f'/{self.hardware_namespace}/{STANDIN_NODE}'

    def camera_node(self, world_namespace: str) -> str:
        """The camera node of a world: ``twin_namespace`` or ``hardware_namespace``."""
        return f'/{world_namespace.strip("/")}/{CAMERA_NODE}'

    def camera_topic(self, world_namespace: str, camera: str, what: str) -> str:
        """A camera's topic in a world (``twin_namespace`` or ``hardware_namespace``);
        ``what``: image, depth, camera_info or points (:data:`CAMERA_TOPICS`)."""
        return f'/{world_namespace.strip("/")}/{camera_topic(camera, what)}'

    def world_tf(self, world_namespace: str) -> tuple[str, str]:
        """(tf, tf_static) of a world: its sim node's (or stand-in's) and cameras' frames."""
        ns = world_namespace.strip('/')
        return f'/{ns}/tf', f'/{ns}/tf_static'

    @property
    def prediction_view(self) -> str:
        return f'/{self.twin_namespace}/{PREDICTION_VIEW_NODE}'

    @property
    def prediction_markers(self) -> str:
        """The latest prediction drawn (visualization_msgs/MarkerArray, latched)."""
        return f'/{self.twin_namespace}/{PREDICTION_MARKERS_TOPIC}'

    @property
    def ghost_joint_states(self) -> str:
        """The predicted motion played back in real time (sensor_msgs/JointState)."""
        return f'/{self.twin_namespace}/{GHOST_JOINT_STATES_TOPIC}'

    @property
    def sim_tf(self) -> str:
        """The twin's TF (and the ghost's, under :data:`GHOST_TF_PREFIX`)."""
        return f'/{self.twin_namespace}/tf'

    @property
    def sim_tf_static(self) -> str:
        return f'/{self.twin_namespace}/tf_static'

    @property
    def robot_description(self) -> str:
        """The twin's robot_description (std_msgs/String, latched): the URDF, meshes named by
        absolute file:// URIs."""
        return f'/{self.twin_namespace}/robot_description'


#: Override keys of :func:`standin_graph`'s nodes.
STANDIN_GRAPH_NODES = (STANDIN_NODE, 'hardware_controller', 'hardware_camera')


def standin_graph(robot: str = 'rdt_arm6',
                  overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[NodeSpec]:
    """The stand-in robot under /hw: its physics with the robot file's perturbations, the
    emulated controller it hosts, and its camera when the scene has one. Part of the twin's
    graph (``hardware='standin'``), or a graph of its own, as a real robot's driver runs.

    Args:
        overrides: keys standin_robot, hardware_controller, hardware_camera.
    """
    config = str(robot_config(robot))
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(STANDIN_GRAPH_NODES))
    if unknown:
        raise ConfigError(f'parameter overrides for unknown nodes {unknown}; the stand-in\'s '
                          f'graph has {", ".join(STANDIN_GRAPH_NODES)}')
    # One process, the hardware's loop: the stand-in hosts its controller and runs the
    # controller's cycle itself (as ros2_control_node does), so no topic between them can be
    # late on a busy machine
    controller = NodeSpec(CONTROLLER_NODE, 'emulated_controller',
                          f'{PACKAGE}.nodes.emulated_controller_node', HARDWARE_NAMESPACE,
                          (config,), {'use_sim_time': False,
                                      **overrides.get('hardware_controller', {})})
    standin = {**read_node_parameters(Path(config), STANDIN_NODE),
               **overrides.get(STANDIN_NODE, {})}
    return [NodeSpec(STANDIN_NODE, 'standin_robot', f'{PACKAGE}.nodes.standin_node',
                     HARDWARE_NAMESPACE, (config,),
                     {'niceness': HARDWARE_NICENESS, **overrides.get(STANDIN_NODE, {})},
                     hosted=(controller,)),
            *camera_node(standin, HARDWARE_NAMESPACE, config,
                         overrides.get('hardware_camera', {}), CAMERA_HARDWARE_PARAMETERS,
                         {'payload_parameters_node': TwinNames().standin})]


def twin_graph(robot: str = 'rdt_arm6', hardware: str = '', target: str = 'sim',
               armed: bool = False, client_controller: str = CONTROLLER_NODE,
               hardware_joint_states: str = '',
               overrides: Mapping[str, Mapping[str, Any]] | None = None,
               calibration_file: str = '') -> list[NodeSpec]:
    """The reverse twin: the bridge in front, the twin under /sim, optionally hardware.

    Args:
        robot: robot name under config/ or a parameter YAML.
        hardware: '' (no hardware), 'standin' (the stand-in robot under /hw, with the
            perturbations of the robot file's standin_robot section), or the fully qualified
            name of a real driver's trajectory controller, e.g.
            '/scaled_joint_trajectory_controller'.
        target: the bridge's initial target: sim | hardware | shadow.
        armed: start with the hardware armed (needed for target hardware/shadow).
        client_controller: the controller name clients use; the bridge serves it at the root.
        hardware_joint_states: joint_states topic of a real driver (default: next to it).
        overrides: node key -> parameter -> value; keys: pybullet_sim, joint_trajectory_controller
            (both the twin's), planner, standin_robot, hardware_controller, bridge,
            prediction_view, camera (the twin's), hardware_camera. The planner and the
            prediction view mirror the pybullet_sim section and overrides
            (:data:`PLANNER_TWIN_PARAMETERS`, :data:`PREDICTION_VIEW_TWIN_PARAMETERS`); each
            camera node its world's (:data:`CAMERA_WORLD_PARAMETERS`; the stand-in's also its
            payload and encoder offsets, :data:`CAMERA_HARDWARE_PARAMETERS`), and is there only
            when that world's scene declares cameras.
        calibration_file: a calibration (``rdt calibrate``), one parameter for the twin's
            model of the hardware: the sim node's world takes its dynamics, the planner's
            predictions its whole hardware model, the bridge its divergence threshold (unless
            ``divergence_threshold`` is given). '' = none; the stand-in never takes it.
    """
    config = str(robot_config(robot))
    calibration = calibration_parameters(calibration_file)
    overrides = dict(overrides or {})
    known = {SIM_NODE, CONTROLLER_NODE, PLANNER_NODE, STANDIN_NODE, 'hardware_controller',
             'bridge', PREDICTION_VIEW_NODE, CAMERA_NODE, 'hardware_camera'}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f'parameter overrides for unknown nodes {unknown}; known: '
                          f'{sorted(known)}')
    twin = f'/{TWIN_NAMESPACE}'
    names = TwinNames(client_controller=client_controller)
    sim = {**read_node_parameters(Path(config), SIM_NODE), **overrides.get(SIM_NODE, {})}
    planner = {
        **{k: v for k, v in sim.items() if k.startswith(PLANNER_TWIN_PARAMETERS)},
        'controller_parameters_file': config,
        'controller_name': CONTROLLER_NODE,
        'twin_joint_states': names.sim_joint_states,
        'bridge_controller': names.bridge,
        'move_to_start_joint_states': names.joint_states,
        **calibration,
        **overrides.get(PLANNER_NODE, {}),
    }
    specs = [
        NodeSpec(SIM_NODE, 'sim_node', f'{PACKAGE}.nodes.sim_node', TWIN_NAMESPACE, (config,),
                 {**calibration, **overrides.get(SIM_NODE, {})}),
        NodeSpec(CONTROLLER_NODE, 'emulated_controller',
                 f'{PACKAGE}.nodes.emulated_controller_node', TWIN_NAMESPACE, (config,),
                 {'use_sim_time': True, **overrides.get(CONTROLLER_NODE, {})}),
        NodeSpec(PLANNER_NODE, 'planner', f'{PACKAGE}.nodes.planner_node', TWIN_NAMESPACE,
                 (config,), planner),
        *camera_node(sim, TWIN_NAMESPACE, config, overrides.get(CAMERA_NODE, {})),
    ]
    if hardware == 'standin':
        hw_controller = f'/{HARDWARE_NAMESPACE}/{CONTROLLER_NODE}'
        hw_joint_states = f'/{HARDWARE_NAMESPACE}/joint_states'
        specs += standin_graph(robot, {k: v for k, v in overrides.items()
                                       if k in STANDIN_GRAPH_NODES})
    elif hardware:
        if not hardware.startswith('/'):
            raise ConfigError(f'hardware {hardware!r}: use "standin" or the fully qualified name '
                              'of the driver\'s controller, e.g. '
                              '/scaled_joint_trajectory_controller')
        hw_controller = hardware.rstrip('/')
        ns = hw_controller.rsplit('/', 1)[0]
        hw_joint_states = hardware_joint_states or f'{ns}/joint_states'
        if hw_joint_states == '/joint_states':
            raise ConfigError('the hardware must not publish /joint_states: the bridge relays '
                              'the active target there. Start the driver in a namespace or remap '
                              'its joint_states (e.g. -r joint_states:=/hw/joint_states) and pass '
                              '--hardware-joint-states')
    else:
        hw_controller = f'/{HARDWARE_NAMESPACE}/{CONTROLLER_NODE}'
        hw_joint_states = f'/{HARDWARE_NAMESPACE}/joint_states'
    bridge = {
        'sim_controller': f'{twin}/{CONTROLLER_NODE}',
        'sim_joint_states': f'{twin}/joint_states',
        'hardware_controller': hw_controller,
        'hardware_joint_states': hw_joint_states,
        'predict_service': names.predict_trajectory,
        'target': target,
        'hardware_armed': armed,
        'goal_time': float(read_node_parameters(Path(config), CONTROLLER_NODE).get(
            'constraints.goal_time', 0.0)),
        **calibration,
        **overrides.get('bridge', {}),
    }
    view = {
        **{k: v for k, v in sim.items() if k.startswith(PREDICTION_VIEW_TWIN_PARAMETERS)},
        'verdicts': names.verdicts,
        'divergence': names.divergence,
        'joint_states': names.joint_states,
        **overrides.get(PREDICTION_VIEW_NODE, {}),
    }
    specs.append(NodeSpec(PREDICTION_VIEW_NODE, 'prediction_view',
                          f'{PACKAGE}.nodes.prediction_view_node', TWIN_NAMESPACE, (config,),
                          view))
    specs.append(NodeSpec(client_controller, BRIDGE_EXECUTABLE, f'{PACKAGE}.nodes.bridge_node',
                          '', (), bridge))
    return specs
