"""`rdt move`: ask the twin to move the arm to joint positions or an end-effector pose.

A client of the twin planner's ``/<namespace>/planner/move_to`` action: the twin plans a
limit-respecting motion, predicts it, and only if it is safe sends it through the bridge to the
active target. Prints the stages and the result (with the twin's verdict when it refused).

Exit codes: 0 the arm got there, 1 it did not (refused, aborted, canceled, no server), 2 bad
arguments.
"""
from __future__ import annotations

import argparse
import math
import re
import sys

from reverse_digital_twin.cli import comma_floats, parse_arguments

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='rdt move',
        description='Move the arm to joint positions or an end-effector pose. The twin plans a '
        'synchronized, limit-respecting motion, simulates it first and refuses it if it would '
        'collide or exceed a limit; otherwise the bridge sends it to the active target.')
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--joints', metavar='Q1,Q2,...',
                      help='target joint positions (rad | m), comma-separated; in the '
                      "controller's joint order unless --names is given")
    what.add_argument('--pose', nargs='+', type=float, metavar='V',
                      help='target pose of the tip link: X Y Z (m; any orientation) or '
                      'X Y Z QX QY QZ QW')
    parser.add_argument('--names', metavar='J1,J2,...',
                        help='with --joints: the joints the positions are for (others stay)')
    parser.add_argument('--frame', default='',
                        help="with --pose: the pose's frame, the scene's world frame (default) "
                        "or the robot's root link")
    parser.add_argument('--tip', default='',
                        help='with --pose: the link to place (default: the end of the arm)')
    parser.add_argument('--velocity-scaling', type=float, default=0.5,
                        help='fraction of the URDF velocity limits, in (0, 1] (default 0.5)')
    parser.add_argument('--namespace', default='sim',
                        help="the twin's namespace (default sim: /sim/planner/move_to)")
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='give up after this many seconds (default 120)')
    return parser


def _goal_fields(args: argparse.Namespace) -> dict:
    """Check the arguments; the MoveTo goal fields. Raises ValueError with the reason."""
    if not (math.isfinite(args.velocity_scaling) and 0.0 < args.velocity_scaling <= 1.0):
        raise ValueError(f'--velocity-scaling must be in (0, 1], got {args.velocity_scaling}')
    if not (args.timeout > 0):
        raise ValueError(f'--timeout must be > 0 s, got {args.timeout}')
    fields: dict = {'velocity_scaling': float(args.velocity_scaling)}
    if args.joints is not None:
        if args.frame or args.tip:
            raise ValueError('--frame and --tip go with --pose, not --joints')
        positions = comma_floats(args.joints, '--joints')
        names = [n.strip() for n in args.names.split(',') if n.strip()] if args.names else []
        if args.names is not None and len(names) != len(positions):
            raise ValueError(f'--names has {len(names)} joints but --joints {len(positions)} '
                             'positions')
        if not all(math.isfinite(v) for v in positions):
            raise ValueError(f'--joints: positions must be finite, got {positions}')
        fields.update(joint_names=names, positions=positions)
        return fields
    if args.names is not None:
        raise ValueError('--names goes with --joints, not --pose')
    if len(args.pose) not in (3, 7):
        raise ValueError(f'--pose takes X Y Z or X Y Z QX QY QZ QW, got {len(args.pose)} numbers')
    if not all(math.isfinite(v) for v in args.pose):
        raise ValueError(f'--pose: values must be finite, got {args.pose}')
    quaternion = args.pose[3:] if len(args.pose) == 7 else [0.0, 0.0, 0.0, 0.0]
    if len(args.pose) == 7 and math.sqrt(sum(v * v for v in quaternion)) < 1e-6:
        raise ValueError('--pose: the quaternion is zero')
    fields.update(position=args.pose[:3], quaternion=quaternion, frame=args.frame,
                  tip_link=args.tip)
    return fields


def _glue_negative_joints(argv: list[str]) -> list[str]:
    """'--joints -0.6,1.2' reads as an option to argparse: make it '--joints=-0.6,1.2'."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == '--joints' and i + 1 < len(argv) \
                and re.match(r'^-[\d.]', argv[i + 1]) is not None:
            out.append(f'--joints={argv[i + 1]}')
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def action_name(namespace: str) -> str:
    """The planner's move_to action in the twin's namespace (TwinNames: /sim/planner/move_to)."""
    from reverse_digital_twin.stack import PLANNER_NODE, TwinNames  # noqa: PLC0415
    ns = namespace.strip('/')
    return TwinNames(twin_namespace=ns).move_to if ns else f'/{PLANNER_NODE}/move_to'


def move_main(argv: list[str] | None = None) -> int:
    """`rdt move ...`; returns the exit code."""
    parser = _parser()
    args = parse_arguments(parser, _glue_negative_joints(
        list(sys.argv[1:] if argv is None else argv)))
    if isinstance(args, int):
        return args
    try:
        fields = _goal_fields(args)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f'rdt move: {exc}', file=sys.stderr)
        return EXIT_USAGE
    return _run(action_name(args.namespace), fields, args.timeout)


def _run(name: str, fields: dict, timeout: float) -> int:
    import rclpy  # noqa: PLC0415 - ROS only when actually moving
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415

    from reverse_digital_twin.client import BackgroundNode  # noqa: PLC0415
    from reverse_digital_twin.commander import TwinCommander, TwinError  # noqa: PLC0415

    if 'positions' in fields:
        names = fields['joint_names'] or "the controller's joints"
        print(f'rdt move: joints {names} -> {fields["positions"]}', flush=True)
        target = dict(positions=fields['positions'], joint_names=fields['joint_names'])
    else:
        orientation = 'any orientation' if not any(fields['quaternion']) \
            else f'orientation {fields["quaternion"]}'
        print(f'rdt move: {fields["tip_link"] or "tip link"} -> {fields["position"]} m in '
              f'{fields["frame"] or "the world frame"}, {orientation}', flush=True)
        target = dict(position=fields['position'], quaternion=fields['quaternion'],
                      frame=fields['frame'], tip_link=fields['tip_link'])
    last = {'stage': '', 'quarter': -1}

    def on_feedback(fb) -> None:
        if fb.stage != last['stage']:
            last['stage'], last['quarter'] = fb.stage, -1
            print(f'  {fb.stage}', flush=True)
        if fb.stage == 'executing':
            quarter = int(fb.progress * 4 + 1e-9)
            if quarter > last['quarter'] and quarter > 0:
                last['quarter'] = quarter
                print(f'  executing {min(quarter * 25, 100)} %', flush=True)

    # No rclpy signal handlers: Ctrl-C must leave the context up to cancel the goal.
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    background = BackgroundNode('rdt_move')
    commander = TwinCommander(background.node, timeout=min(10.0, timeout))
    try:
        outcome = commander.move(**target, velocity_scaling=fields['velocity_scaling'],
                                 timeout=timeout, on_feedback=on_feedback, action=name)
    except TwinError as exc:
        print(f'rdt move: {exc}', file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print('rdt move: interrupted; the goal was cancelled', file=sys.stderr)
        return EXIT_FAILED
    finally:
        commander.close()
        background.close()
        rclpy.try_shutdown()
    if not outcome.accepted:
        print(f'rdt move: {name} rejected the goal', file=sys.stderr)
        return EXIT_FAILED
    ok = outcome.succeeded
    text = f': {outcome.error_string}' if outcome.error_string else ''
    print(f'rdt move: {outcome.status_name} ({outcome.error_name}){text}',
          file=sys.stdout if ok else sys.stderr, flush=True)
    verdict = outcome.verdict
    if verdict is not None and (verdict.duration > 0 or verdict.summary):
        if verdict.safe:
            print(f'  twin: safe; predicted {verdict.duration:.2f} s, max tracking error '
                  f'{verdict.max_tracking_error:.4f} ({verdict.max_tracking_error_joint})')
        elif verdict.summary and verdict.summary not in outcome.error_string:
            print('  twin refused it:\n' + '\n'.join(
                f'    {line}' for line in verdict.summary.splitlines()), file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == '__main__':
    raise SystemExit(move_main(sys.argv[1:]))
