"""Worker processes: start N real ``python -m fibrpc_helpers worker`` processes and stop them.

CPU-bound work (the tutorial's recursive fib) needs processes, not asyncio tasks: one event
loop runs one computation at a time. Notebooks, tests and the benchmark start workers through
this class; every process started here is stopped when its owner is closed, when the Python
process exits, and (``--exit-with-parent``) when its parent dies without cleaning up, e.g. a
Jupyter kernel that is restarted.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
import weakref
from types import TracebackType
from typing import Any

from .client import DEFAULT_QUEUE

_READY = re.compile(r"^worker (\S+) is serving")
_RUNNING: weakref.WeakSet[WorkerProcesses] = weakref.WeakSet()


def worker_command(
    *,
    url: str | None = None,
    queue: str = DEFAULT_QUEUE,
    prefetch: int = 1,
    work: str = "fast",
    sleep_ms: float = 0.0,
    max_n: int | None = None,
    queue_type: str | None = None,
) -> list[str]:
    """The command line of one worker process (``queue_type``: see
    :meth:`FibonacciRpcWorker.start`; None adopts the queue, else declares quorum)."""
    command = [sys.executable, "-m", "fibrpc_helpers", "worker", "--queue", queue]
    command += ["--prefetch", str(prefetch), "--work", work, "--exit-with-parent"]
    if url:
        command += ["--url", url]
    if sleep_ms:
        command += ["--sleep-ms", f"{sleep_ms:g}"]
    if max_n is not None:
        command += ["--max-n", str(max_n)]
    if queue_type is not None:
        command += ["--queue-type", queue_type]
    return command


class WorkerProcesses:
    """``count`` worker processes on one queue; use ``with WorkerProcesses(...) as workers:``."""

    def __init__(self, count: int, *, stderr: Any = None, **options: object) -> None:
        """``stderr``: where the workers' log goes (a file, ``subprocess.DEVNULL``); by
        default this process's stderr. A notebook sends it to a file, so that log lines do
        not land in whichever cell happens to be running."""
        if count < 1:
            raise ValueError(f"count must be 1 or more, got {count}")
        self.count = count
        self.stderr = stderr
        self.command = worker_command(**options)  # type: ignore[arg-type]
        self.processes: list[subprocess.Popen[str]] = []
        self.names: list[str] = []
        self.ready_lines: list[str] = []  # each worker's "worker NAME is serving ..." line

    def start(self, timeout: float = 60.0) -> WorkerProcesses:
        """Start the processes and return once each one is consuming the queue."""
        _RUNNING.add(self)
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    self.command,
                    stdout=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    stderr=self.stderr,
                    text=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            )
        try:
            self.ready_lines = [self._wait_ready(process, timeout) for process in self.processes]
            self.names = [_READY.match(line).group(1) for line in self.ready_lines]  # type: ignore[union-attr]
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _wait_ready(process: subprocess.Popen[str], timeout: float) -> str:
        """The worker's ready line (it names the worker and the queue type it serves)."""
        assert process.stdout is not None
        timer = threading.Timer(timeout, process.kill)  # unblocks readline if it never says so
        timer.start()
        try:
            for line in process.stdout:
                if _READY.match(line):
                    return line.rstrip("\n")
        finally:
            timer.cancel()
        raise RuntimeError(
            f"worker process {process.pid} exited (code {process.wait()}) before it was "
            "ready; its error is in the workers' log (this process's stderr, or the file "
            "given as stderr=)"
        )

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def kill(self, index: int = 0) -> int:
        """SIGKILL one worker, as a crash would; returns its pid."""
        process = self.processes[index]
        process.kill()
        process.wait()
        return process.pid

    def stop(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every worker (each finishes what it holds) and wait; returns exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
            if process.stdout:
                process.stdout.close()
        _RUNNING.discard(self)
        return codes

    def __enter__(self) -> WorkerProcesses:
        return self.start() if not self.processes else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        alive = sum(process.poll() is None for process in self.processes)
        return f"<WorkerProcesses {alive}/{self.count} running: {', '.join(self.names)}>"


def stop_all() -> None:
    """Stop every WorkerProcesses still running in this Python process."""
    for workers in list(_RUNNING):
        workers.stop()


atexit.register(stop_all)

