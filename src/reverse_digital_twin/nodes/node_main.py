"""The one main() every node shares: clear configuration errors, clean shutdown."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.nodes.ros_common import apply_niceness

#: Exit code of a node that refused its configuration (the runner reports it as such).
EXIT_CONFIG_ERROR = 2


class _SigintFlag:
    """Whether this process was asked to stop with SIGINT (Ctrl-C, the runner's stop)."""

    received = False


_sigint = _SigintFlag()


def _on_sigint(signum: int, frame: object) -> None:
    _sigint.received = True
    raise KeyboardInterrupt


def _watch_sigint() -> None:
    """Note SIGINTs (and raise KeyboardInterrupt, as Python does) from the main thread."""
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def run_node(factory: Callable[[], Node | Sequence[Node]], args: list[str] | None = None) -> int:
    """Create the node (or the nodes one process hosts, first the one whose ``niceness``
    counts), call each one's ``start()`` if it has one, and spin them until Ctrl-C or shutdown.

    A configuration problem ends the process with a one-line message naming the parameter or
    file and exit code 2, never a traceback.
    """
    _watch_sigint()  # before rclpy.init, whose signal handler chains to this one
    rclpy.init(args=args)
    nodes: list[Node] = []
    try:
        try:
            made = factory()
            nodes = [made] if isinstance(made, Node) else list(made)
            for node in nodes:  # threads and processes start once the nodes are configured
                start = getattr(node, 'start', None)
                if start is not None:
                    start()
            apply_niceness(nodes[0])  # every thread runs by now
        except ConfigError as exc:
            _ignore_sigint()  # the runner stops the graph now: nothing to interrupt any more
            print(f'[{factory.__name__}] configuration error: {exc}', file=sys.stderr, flush=True)
            return EXIT_CONFIG_ERROR
        except Exception:
            if not rclpy.ok():  # Ctrl-C while starting: rclpy shut the context down under us
                return 0
            raise
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        try:
            executor.spin()
        except RuntimeError:
            # Ctrl-C while the executor takes a message: the context shut down under it, or the
            # KeyboardInterrupt landed inside rclpy's C++ conversion, which reports it as
            # "Unable to convert call argument". A stop is not an error worth a traceback.
            if rclpy.ok() and not _sigint.received:
                raise
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # A terminal's Ctrl-C reaches every process of the group, and the runner forwards one
        # more: a second SIGINT must not cut the clean-up short (threads left spinning, the DDS
        # participant never announced gone, so the node lingers in other nodes' graphs).
        _ignore_sigint()
        for node in nodes:  # the hardware loop first: nothing drives a destroyed controller
            stop = getattr(node, 'stop', None)
            if stop is not None:
                stop()
        for node in reversed(nodes):
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def _ignore_sigint() -> None:
    """Ignore SIGINT from now on. One that arrives before it is ignored (the runner stopping
    the graph just as this node gave up on its configuration) raises KeyboardInterrupt here:
    it has asked for what is happening anyway, so try again instead of printing a traceback."""
    while True:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            return
        except KeyboardInterrupt:
            continue
