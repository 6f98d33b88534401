"""The `rdt` command: run the twin's node graph without `ros2 launch`, and the demo."""
from __future__ import annotations

import argparse
import faulthandler
import importlib
import math
import os
import signal
import sys
import threading
from typing import Any

import yaml

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.stack import CONTROLLER_NODE

#: Subcommands with parsers of their own (imported only when run): name -> (module, function).
OWN_PARSERS = {
    'move': ('move_cli', 'move_main'),
    'record': ('record_cli', 'record_main'),
    'calibrate': ('calibrate_cli', 'calibrate_main'),
    'sweep': ('sweep_cli', 'sweep_main'),
    'policy': ('policy_cli', 'policy_main'),
    'dataset': ('dataset_cli', 'dataset_main'),
}


def comma_floats(text: str, what: str) -> list[float]:
    """Numbers a person typed as 'a,b,c' (or space-separated) for option ``what``; ConfigError
    (a ValueError) saying what was wrong otherwise."""
    try:
        values = [float(v) for v in text.replace(' ', ',').split(',') if v]
    except ValueError:
        raise ConfigError(f'{what}: expected comma-separated numbers, got {text!r}') from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ConfigError(f'{what}: expected finite comma-separated numbers, got {text!r}')
    return values


def parse_arguments(parser: argparse.ArgumentParser,
                    argv: list[str]) -> argparse.Namespace | int:
    """A subcommand's arguments, or the exit code argparse chose: 0 after --help, 2 after a
    usage error (it has printed why); the subcommands return it instead of exiting."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2


def _overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """-p node:param:=value pairs -> {node: {param: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, value = pair.partition(':=')
        node, sep2, param = target.partition(':')
        if not sep or not sep2 or not node or not param:
            raise ConfigError(f'bad -p {pair!r}: use -p <node>:<parameter>:=<value>, e.g. '
                              '-p pybullet_sim:real_time_factor:=2.0')
        out.setdefault(node, {})[param] = yaml.safe_load(value)
    return out


def _graph_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--robot', default='rdt_arm6',
                        help='robot name under config/ (rdt_arm6, panda) or a parameter YAML')
    parser.add_argument('--hardware', default='',
                        help="'standin' (the stand-in robot under /hw) or a real driver's "
                        'controller, e.g. /hw/scaled_joint_trajectory_controller')
    parser.add_argument('--hardware-joint-states', default='',
                        help="joint_states topic of a real driver (default: next to its "
                        'controller)')
    parser.add_argument('--target', default='sim', choices=['sim', 'hardware', 'shadow'],
                        help='where the bridge sends goals at start')
    parser.add_argument('--arm', action='store_true',
                        help='start with the hardware armed (needed for --target hardware/shadow)')
    parser.add_argument('--controller-name', default=CONTROLLER_NODE,
                        help='the controller name clients use (the bridge serves it)')
    parser.add_argument('--sim-only', action='store_true',
                        help='no bridge: the twin alone at --namespace, looking like a driver')
    parser.add_argument('--namespace', default='', help='with --sim-only: namespace of the nodes')
    parser.add_argument('--real-time-factor', type=float, default=None,
                        help="the twin's simulated seconds per wall second; 0 = as fast as "
                        'possible (the stand-in always runs in real time)')
    parser.add_argument('-p', dest='params', action='append', default=[],
                        metavar='NODE:PARAM:=VALUE',
                        help='override a parameter; NODE is pybullet_sim, '
                        'joint_trajectory_controller (the twin\'s), standin_robot, '
                        'hardware_controller or bridge')


def _specs(args: argparse.Namespace):
    from reverse_digital_twin.stack import SIM_NODE, sim_graph, twin_graph  # noqa: PLC0415
    overrides = _overrides(args.params)
    if args.real_time_factor is not None:
        overrides.setdefault(SIM_NODE, {})['real_time_factor'] = args.real_time_factor
    calibration = getattr(args, 'calibration', '')  # rdt up only
    if getattr(args, 'scenario', ''):  # rdt up only
        from reverse_digital_twin.stack import scenario_overrides  # noqa: PLC0415
        drawn, description = scenario_overrides(args.robot, args.scenario, args.scenario_seed)
        for node, values in drawn.items():  # -p wins over the scenario
            overrides[node] = {**values, **overrides.get(node, {})}
        print(f'rdt: scenario {args.scenario}, draw {args.scenario_seed} for the stand-in: '
              f"{description}; the planner's risk sweeps draw from the whole scenario",
              flush=True)
    if getattr(args, 'hardware_only', False):  # rdt up only
        from reverse_digital_twin.stack import standin_graph  # noqa: PLC0415
        if args.hardware not in ('', 'standin') or args.sim_only or calibration:
            raise ConfigError('--hardware-only starts the stand-in robot alone: it takes no '
                              '--hardware driver, --sim-only or --calibration')
        return standin_graph(args.robot, overrides)
    if args.sim_only:
        return sim_graph(args.robot, args.namespace, overrides, calibration_file=calibration)
    return twin_graph(args.robot, args.hardware, args.target, args.arm, args.controller_name,
                      args.hardware_joint_states, overrides, calibration_file=calibration)


def cmd_up(args: argparse.Namespace) -> int:
    """Start the graph and keep it running until Ctrl-C or until a node dies."""
    from reverse_digital_twin.runner import Stack  # noqa: PLC0415
    specs = _specs(args)
    stack = Stack(specs)
    print(f'rdt: starting {", ".join(s.fully_qualified_name for s in specs)} '
          f'(ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}); Ctrl-C stops', flush=True)
    interrupted = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack.start()
    dead = None
    while not interrupted and dead is None:
        dead = stack.wait(timeout=0.2)
    if dead is not None:
        print(f'rdt: {dead.describe_exit()}', file=sys.stderr, flush=True)
    forced = stack.stop()
    if forced:
        print(f'rdt: had to force {", ".join(forced)}', file=sys.stderr)
    print('rdt: stopped', flush=True)
    return 1 if dead is not None else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The twin story, or with --sim-only one trajectory on the twin alone."""
    from reverse_digital_twin.demo import run  # noqa: PLC0415
    return run(args.robot, args.output, args.sim_only,
               _specs(args) if args.sim_only else None, _overrides(args.params))


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Render the robot in its scene at its start pose to a PNG (no ROS needed)."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from reverse_digital_twin.core.physics import PhysicsWorld, render_rgb  # noqa: PLC0415
    from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
    setup = load_robot(args.robot)
    with PhysicsWorld(setup.model(), str(setup.urdf), setup.scene(),
                      initial_positions=setup.initial_positions) as world:
        image = render_rgb(world, 800, 600)
    plt.imsave(args.output, image)
    print(f'rdt: wrote {args.output}')
    return 0


#: A command against the running twin ends within this many seconds, whatever ROS does: its
#: calls have 10 s deadlines, so only a hang in the middleware (creating the node, discovery)
#: can reach it.
COMMAND_DEADLINE = 45.0
#: Once the reply is printed, tearing the node down may take this long before the process
#: leaves without it (the command has done its work; the exit code is the reply's).
TEARDOWN_DEADLINE = 10.0


def _exit_unless_done(deadline: float, code: int, why: str | None) -> threading.Timer:
    """A started timer that ends the process with ``code`` after ``deadline`` s unless cancelled:
    a script that calls `rdt arm` must never wait forever. With ``why``, it says so on stderr
    with every thread's stack (for a bug report)."""
    def expire() -> None:
        if why:
            print(f'rdt: {why}; please report it with the stacks below', file=sys.stderr,
                  flush=True)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stdout.flush()
        os._exit(code)
    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    timer.start()
    return timer


def _commanded(args: argparse.Namespace, operation) -> int:
    """Run ``operation(commander)`` against the running twin; print its reply, 0 if it
    succeeded."""
    import rclpy  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode  # noqa: PLC0415
    from reverse_digital_twin.commander import TwinCommander, TwinError  # noqa: PLC0415
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    command = ' '.join(sys.argv[1:]) or 'rdt'
    watchdog = _exit_unless_done(
        COMMAND_DEADLINE, 1, f'`{command}` hung for {COMMAND_DEADLINE:g} s inside ROS and was '
        'stopped')
    rclpy.init()
    code = 1
    try:
        with BackgroundNode('rdt_cli') as node:
            commander = TwinCommander(node, TwinNames(client_controller=args.controller_name))
            try:
                reply = operation(commander)
            except TwinError as exc:
                print(f'rdt: {exc}', file=sys.stderr)
            else:
                text = f' (active target: {reply.active_target})' \
                    if hasattr(reply, 'active_target') else ''
                print(f'rdt: {reply.message}{text}', flush=True)
                code = 0 if reply.success else 1
            finally:
                # The answer is in: a teardown stuck in the middleware ends with it, quietly.
                watchdog.cancel()
                watchdog = _exit_unless_done(TEARDOWN_DEADLINE, code, None)
                commander.close()
    finally:
        rclpy.shutdown()
        watchdog.cancel()
    return code


def cmd_switch(args: argparse.Namespace) -> int:
    """Switch the bridge's target (between goals)."""
    return _commanded(args, lambda commander: commander.switch(args.target))


def cmd_arm(args: argparse.Namespace) -> int:
    """Arm or disarm the hardware behind the bridge."""
    return _commanded(args, lambda commander: commander.arm(args.command == 'arm'))


def cmd_view(args: argparse.Namespace) -> int:
    """Serve the web view of the running twin graph until Ctrl-C."""
    from rclpy.parameter import Parameter  # noqa: PLC0415

    from reverse_digital_twin.nodes.node_main import run_node  # noqa: PLC0415
    from reverse_digital_twin.nodes.web_view_node import WebViewNode  # noqa: PLC0415
    overrides = [Parameter('host', value=args.host), Parameter('port', value=args.port),
                 Parameter('camera', value=args.camera),
                 Parameter('controller_name', value=args.controller_name)]

    def web_view() -> WebViewNode:
        return WebViewNode(parameter_overrides=overrides)
    return run_node(web_view, [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='rdt', description='Reverse digital twin: a PyBullet twin behind the interface of '
        "ros2_control's joint_trajectory_controller.")
    sub = parser.add_subparsers(dest='command', required=True)
    up = sub.add_parser('up', help='run the node graph until Ctrl-C')
    _graph_args(up)
    up.add_argument('--calibration', default='', metavar='FILE',
                    help='a calibration written by `rdt calibrate`: the twin\'s world takes its '
                    'payload, damping and friction, the predictions its whole hardware model '
                    '(also latency and encoder offsets), the bridge its divergence threshold '
                    'and time slack (unless -p bridge:divergence_threshold:=... etc. is given); '
                    'the stand-in never')
    up.add_argument('--scenario', default='', metavar='FILE',
                    help='a scenario (config/scenarios/ name or YAML): the stand-in plays one '
                    'draw (payload, friction, damping, latency, noise, a weak or locked joint, '
                    "dropouts, lost commands, an emergency stop), the planner's risk sweeps "
                    'draw from the whole scenario')
    up.add_argument('--hardware-only', action='store_true',
                    help='only the stand-in robot under /hw, as a real robot\'s driver runs '
                    'beside the twin: start the twin in another terminal with `rdt up '
                    '--hardware /hw/joint_trajectory_controller`; a twin graph that stops or '
                    'dies leaves it running')
    up.add_argument('--scenario-seed', type=int, default=0, metavar='N',
                    help='which draw of --scenario the stand-in takes (default 0)')
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser('demo', help="the twin's story: an unsafe goal refused, a safe one in "
                          'sim then on the stand-in in shadow mode, a divergence stopping it '
                          '(--sim-only: one trajectory on the twin alone)')
    _graph_args(demo)
    demo.add_argument('--output', default='artifacts', help='folder for plots and logs')
    demo.set_defaults(func=cmd_demo)
    snap = sub.add_parser('snapshot', help='render the robot in its scene to a PNG')
    snap.add_argument('--robot', default='rdt_arm6')
    snap.add_argument('--output', default='scene.png')
    snap.set_defaults(func=cmd_snapshot)
    switch = sub.add_parser('switch', help='route goals to sim, hardware or shadow')
    switch.add_argument('target', choices=['sim', 'hardware', 'shadow'])
    switch.add_argument('--controller-name', default=CONTROLLER_NODE)
    switch.set_defaults(func=cmd_switch)
    for name, text in (('arm', 'allow goals to reach the hardware'),
                       ('disarm', 'forbid goals to reach the hardware')):
        arm = sub.add_parser(name, help=text)
        arm.add_argument('--controller-name', default=CONTROLLER_NODE)
        arm.set_defaults(func=cmd_arm)
    view = sub.add_parser('view', help='serve a web page of the running twin: the robot, the '
                          "twin's prediction, a camera, the bridge's state, switch/arm/disarm")
    view.add_argument('--port', type=int, default=8080, help='TCP port of the page')
    view.add_argument('--host', default='127.0.0.1',
                      help='address to serve on (0.0.0.0: every interface; the page can arm '
                      'the hardware, so only on a trusted network)')
    view.add_argument('--camera', default='', metavar='PREFIX',
                      help='camera topic prefix, e.g. /hw/table_camera (default: the first '
                      "camera found, the hardware's first; 'none': no camera)")
    view.add_argument('--controller-name', default=CONTROLLER_NODE)
    view.set_defaults(func=cmd_view)
    move = sub.add_parser('move', add_help=False,
                          help='let the twin plan, predict and execute a motion (rdt move -h)')
    move.set_defaults(func=None)
    record = sub.add_parser('record', add_help=False,
                            help='record the twin\'s topics into a rosbag2 bag (MCAP) until '
                            'Ctrl-C (rdt record -h)')
    record.set_defaults(func=None)
    calibrate = sub.add_parser('calibrate', add_help=False,
                               help='fit the twin to recorded hardware motion, or record such '
                               'motion with --excite (rdt calibrate -h)')
    calibrate.set_defaults(func=None)
    sweep = sub.add_parser('sweep', add_help=False,
                           help='roll a motion out under N drawn edge-case scenarios (payload, '
                           'locked joint, noise, obstacle...) and report the probability of '
                           'success, collision and limit violations (rdt sweep -h)')
    sweep.set_defaults(func=None)
    policy = sub.add_parser('policy', add_help=False,
                            help='run an exported policy through the bridge toward a goal or '
                            'N seeded targets; unsafe commands are refused and it stops saying '
                            'why (rdt policy -h)')
    policy.set_defaults(func=None)
    dataset = sub.add_parser('dataset', add_help=False,
                             help='write episodes (observations, actions, rewards, images, the '
                             "twin's verdicts) from the environment, a sweep or the live stack "
                             'as MCAP with an index (rdt dataset -h)')
    dataset.set_defaults(func=None)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in OWN_PARSERS:  # subcommands that parse their own arguments
        module_name, function = OWN_PARSERS[argv[0]]
        module = importlib.import_module(f'reverse_digital_twin.{module_name}')
        return getattr(module, function)(argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f'rdt: configuration error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    raise SystemExit(main())
