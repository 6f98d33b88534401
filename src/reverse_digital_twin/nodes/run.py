"""Start one node module as a process: `python -m reverse_digital_twin.nodes.run <module> ...`.

The embedded runner starts nodes through this so that a Ctrl-C arriving while a node is still
importing its libraries ends it quietly (no KeyboardInterrupt traceback in the user's console);
once rclpy is initialised, its own signal handling takes over.
"""
import importlib
import signal
import sys


def _quit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGTERM, _quit)
    if len(sys.argv) < 2:
        print('usage: python -m reverse_digital_twin.nodes.run <node module> [--ros-args ...]',
              file=sys.stderr)
        return 2
    module = importlib.import_module(sys.argv[1])
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the node's own shutdown path
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return module.main(sys.argv[2:])


if __name__ == '__main__':
    sys.exit(main())
