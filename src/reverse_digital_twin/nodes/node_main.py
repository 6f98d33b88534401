"""The one main() every node shares: clear configuration errors, clean shutdown."""
from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

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
    file and exit code 2, never a traceback: run_node does not return then (see
    :func:`_exit_on_config_error`).
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
            _exit_on_config_error(nodes)
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


def _exit_on_config_error(nodes: Sequence[Node]) -> NoReturn:
    """End the process with EXIT_CONFIG_ERROR: stop the threads and processes of the nodes
    built so far, then exit at once, leaving the DDS participant to the end of the process.

    Deleting the participant (destroying the node, rclpy.shutdown(), or the interpreter's exit
    collecting the half-built node) can crash the process: a node that refuses its
    configuration does so moments after its participant appeared, while the participant still
    asks the running graph for its types, and Fast DDS 3.2.3 tears its type-lookup service
    down while the thread handling the replies still sends with it (core dumps: the main thread
    in ~TypeLookupManager, the reply thread in WriterHistory::create_change on a history
    without its mutex: SIGSEGV, exit code -11 instead of 2). os._exit runs no destructor at
    all; the participant's peers drop it when its lease runs out, as for a killed process.
    """
    for node in nodes:
        stop = getattr(node, 'stop', None)
        if stop is not None:
            stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_CONFIG_ERROR)


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
