"""Worker processes: start N real ``python -m fibrpc_helpers worker`` processes and stop them.

CPU-bound work (the tutorial's recursive fib) needs processes, not asyncio tasks: one event
loop runs one computation at a time. They run on the process runtime (``runtime``): a worker
stops with its owner, at exit, and (``--exit-with-parent``) when its parent is gone, finishing
what it holds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from ..client import DEFAULT_QUEUE
from .runtime import Child, ProcessGroup

READY = re.compile(r"^worker (\S+) is serving")
"""The line a worker prints once it consumes its queue (the CLI prints it first)."""


def worker_command(*, queue: str = DEFAULT_QUEUE, prefetch: int = 1, work: str = "fast",
                   sleep_ms: float = 0.0, max_n: int | None = None,
                   queue_type: str | None = None, loop: str = "auto") -> list[str]:
    """The command line of one worker process; the options are the CLI's ``worker`` flags.

    It names no broker: the process reads ``$AMQP_URL``, which ``WorkerProcesses`` sets (see
    ``ProcessGroup.spawn``'s ``env``)."""
    command = [sys.executable, "-m", "fibrpc_helpers", "worker", "--queue", queue,
               "--prefetch", str(prefetch), "--work", work, "--exit-with-parent"]
    optional = {"--sleep-ms": f"{sleep_ms:g}" if sleep_ms else None, "--max-n": max_n,
                "--queue-type": queue_type, "--loop": None if loop == "auto" else loop}
    for flag, value in optional.items():
        if value is not None:
            command += [flag, str(value)]
    return command


class WorkerProcesses:
    """``count`` worker processes on one queue; use ``with WorkerProcesses(...) as workers:``.

    ``url`` (default ``$AMQP_URL``) and the ``worker_command`` options say what they serve;
    ``stderr``: where their log goes, as for ``ProcessGroup``.
    """

    def __init__(self, count: int, *, stderr: Any = None, **options: object) -> None:
        if count < 1:
            raise ValueError(f"count must be 1 or more, got {count}")
        self.count = count
        url = options.pop("url", None)
        self.env = {"AMQP_URL": str(url)} if url else {}
        self.command = worker_command(**options)  # type: ignore[arg-type]
        self.group = ProcessGroup(stderr=stderr)
        self.names: list[str] = []
        self.ready_lines: list[str] = []  # each worker's "worker NAME is serving ..." line

    def start(self, timeout: float = 60.0) -> WorkerProcesses:
        """Start the processes and return once each one is consuming the queue."""
        try:
            children = [self.group.spawn(self.command, name="worker", env=self.env)
                        for _ in range(self.count)]
            self.ready_lines = self.group.wait_ready(children, READY, timeout)
        except BaseException:
            self.stop()
            raise
        self.names = [READY.match(line).group(1) for line in self.ready_lines]  # type: ignore[union-attr]
        return self

    @property
    def children(self) -> list[Child]:
        return self.group.children

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [child.process for child in self.group.children]

    @property
    def pids(self) -> list[int]:
        return self.group.pids

    def kill(self, index: int = 0) -> int:
        """SIGKILL one worker, as a crash would; returns its pid."""
        process = self.processes[index]
        process.kill()
        process.wait()
        return process.pid

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM every worker (each finishes what it holds) and wait; returns exit codes."""
        return self.group.stop(timeout)

    def __enter__(self) -> WorkerProcesses:
        return self.start() if not self.group.children else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        alive = sum(child.running for child in self.group.children)
        return f"<WorkerProcesses {alive}/{self.count} running: {', '.join(self.names)}>"
