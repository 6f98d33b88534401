"""Embedded runner: starts a node graph as separate processes, without `ros2 launch`.

Every node runs in its own process (``python -m <module> --ros-args ...``), its output is
prefixed with its name, Ctrl-C is forwarded, and when a node dies the runner says which one,
how, and what it printed last, then stops the others.
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from reverse_digital_twin.stack import NodeSpec

_SIGNALS = {s.value: s.name for s in signal.Signals}


class NodeProcess:
    """One running node and the tail of what it printed."""

    def __init__(self, spec: NodeSpec, env: dict[str, str], echo: TextIO | None) -> None:
        self.spec = spec
        self.tail: collections.deque[str] = collections.deque(maxlen=30)
        self._echo = echo
        self.popen = subprocess.Popen(
            [sys.executable, '-u', '-m', 'reverse_digital_twin.nodes.run', spec.module,
             *spec.ros_arguments()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, text=True, bufsize=1, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f'out-{spec.name}')
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            line = line.rstrip('\n')
            self.tail.append(line)
            if self._echo is not None:
                try:
                    print(f'[{self.spec.name}] {line}', file=self._echo, flush=True)
                except ValueError:  # echo stream closed at interpreter exit
                    return

    @property
    def name(self) -> str:
        return self.spec.fully_qualified_name

    def describe_exit(self) -> str:
        code = self.popen.returncode
        if code is None:
            return f'{self.name} is running'
        how = f'was killed by {_SIGNALS.get(-code, -code)}' if code < 0 else \
            f'exited with code {code}'
        if code == 2:
            how += ' (configuration error)'
        self._reader.join(timeout=1.0)
        last = '\n'.join(f'    {line}' for line in list(self.tail)[-12:]) or '    (no output)'
        return f'node {self.name} {how}; its last output:\n{last}'

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass


class Stack:
    """A node graph running as processes. Use as a context manager, or start()/stop()."""

    def __init__(self, specs: Sequence[NodeSpec], env: dict[str, str] | None = None,
                 echo: TextIO | None = sys.stdout) -> None:
        self.specs = list(specs)
        self.env = dict(os.environ if env is None else env)
        self.echo = echo
        self.processes: list[NodeProcess] = []
        self._expected_exit = False

    def start(self) -> 'Stack':
        for spec in self.specs:
            self.processes.append(NodeProcess(spec, self.env, self.echo))
        return self

    def __enter__(self) -> 'Stack':
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def process(self, name: str) -> NodeProcess:
        """A node's process by node name, or by fully qualified name (``/sim/...``) where
        node names repeat across namespaces (the bridge and the twin's controller)."""
        for p in self.processes:
            if (p.name if name.startswith('/') else p.spec.name) == name:
                return p
        raise KeyError(name)

    def restart(self, name: str) -> NodeProcess:
        """Start a node again with the same description (after it died or was killed)."""
        old = self.process(name)
        old.signal(signal.SIGKILL)
        old.popen.wait(timeout=10)
        new = NodeProcess(old.spec, self.env, self.echo)
        self.processes[self.processes.index(old)] = new
        return new

    def dead(self) -> list[NodeProcess]:
        """Nodes that exited although nobody asked them to."""
        if self._expected_exit:
            return []
        return [p for p in self.processes if p.popen.poll() is not None]

    def wait(self, timeout: float | None = None) -> NodeProcess | None:
        """Block until a node dies (returned) or the timeout passes (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            dead = self.dead()
            if dead:
                return dead[0]
            time.sleep(0.1)
        return None

    def stop(self, timeout: float = 5.0) -> list[str]:
        """Ctrl-C every node, then SIGTERM/SIGKILL stragglers. Returns what had to be killed."""
        self._expected_exit = True
        forced = []
        for p in reversed(self.processes):
            p.signal(signal.SIGINT)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(p.popen.poll() is None
                                                      for p in self.processes):
                time.sleep(0.05)
            for p in self.processes:
                if p.popen.poll() is None:
                    forced.append(f'{p.name} ({sig.name})')
                    p.signal(sig)
        for p in self.processes:
            try:
                p.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        return forced
