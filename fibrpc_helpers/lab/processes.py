"""N ``python -m fibrpc_helpers worker`` processes, as CPU-bound work (the tutorial's recursive
fib) needs: one event loop computes one at a time. They end with their owner (``runtime``)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from ..client import DEFAULT_QUEUE
from .runtime import ProcessGroup

READY = re.compile(r"^worker (\S+) is serving")  # printed first, once it consumes its queue


def worker_command(*, queue: str = DEFAULT_QUEUE, prefetch: int = 1, work: str = "fast",
                   sleep_ms: float = 0.0, max_n: int | None = None,
                   queue_type: str | None = None, loop: str = "auto") -> list[str]:
    """One worker process's command line; no broker in it: ``WorkerProcesses`` sets AMQP_URL."""
    command = [sys.executable, "-m", "fibrpc_helpers", "worker", "--queue", queue,
               "--prefetch", str(prefetch), "--work", work, "--exit-with-parent"]
    optional = {"--sleep-ms": f"{sleep_ms:g}" if sleep_ms else None, "--max-n": max_n,
                "--queue-type": queue_type, "--loop": None if loop == "auto" else loop}
    for flag, value in optional.items():
        if value is not None:
            command += [flag, str(value)]
    return command


class WorkerProcesses(ProcessGroup):
    """``count`` worker processes (``url``, default AMQP_URL, and ``worker_command``'s options)."""

    def __init__(self, count: int, *, stderr: Any = None, **options: object) -> None:
        if count < 1:
            raise ValueError(f"count must be 1 or more, got {count}")
        super().__init__(stderr=stderr)
        self.count = count
        url = options.pop("url", None)
        self.env = {"AMQP_URL": str(url)} if url else {}
        self.command = worker_command(**options)  # type: ignore[arg-type]
        self.names: list[str] = []
        self.ready_lines: list[str] = []  # each worker's "worker NAME is serving ..." line

    def start(self, timeout: float = 60.0) -> WorkerProcesses:
        """Start the processes and return once each one is consuming the queue."""
        try:
            spawned = [self.spawn(self.command, name="worker", env=self.env)
                       for _ in range(self.count)]
            self.ready_lines = self.wait_ready(spawned, READY, timeout)
        except BaseException:
            self.stop()
            raise
        self.names = [READY.match(line).group(1) for line in self.ready_lines]  # type: ignore[union-attr]
        return self

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [child.process for child in self.children]

    def kill(self, index: int = 0) -> int:
        """SIGKILL one worker, as a crash would; returns its pid."""
        process = self.processes[index]
        process.kill()
        process.wait()
        return process.pid

    def __enter__(self) -> WorkerProcesses:
        return self.start() if not self.children else self

    def __repr__(self) -> str:
        alive = sum(child.running for child in self.children)
        return f"<WorkerProcesses {alive}/{self.count} running: {', '.join(self.names)}>"
