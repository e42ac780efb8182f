"""The process runtime: child processes and event-loop tasks that have one owner each.

Worker processes, aio-pika's patterns workers and the benchmark's load generators are all
started and stopped here, one way (a Trio-style nursery for processes):

* ``ProcessGroup.spawn`` starts a child; ``wait_ready`` waits, within one deadline for the
  whole group, until each child prints the line that says it is ready (a child that exits,
  or never says so, fails the start and is killed);
* ``ProcessGroup.stop`` sends SIGTERM to every child first (they finish in parallel), waits
  within one deadline, then kills the stragglers; it runs on ``with`` exit and at interpreter
  exit for any group still open;
* every child learns its parent's pid (``FIBRPC_PARENT_PID``): ``watch_parent`` in the child
  returns when that parent is gone, so a child never outlives a killed Jupyter kernel (on
  Linux and macOS; see ``watch_parent`` for Windows).

``TaskGroup`` is the same idea for the coroutines of one event loop, a thin layer over
``asyncio.TaskGroup`` and ``asyncio.timeout`` that the benchmark's load generator uses: the
first task that fails, or the group's one deadline, cancels every other task, waits for them,
and the failure is raised with its own traceback.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import queue
import re
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import IO, Any, TypeVar

PARENT_PID = "FIBRPC_PARENT_PID"
"""Environment variable naming the pid of the process that started a child: the child
compares it with ``os.getppid()``, which changes when that parent dies (even if it died
before the child could look)."""

T = TypeVar("T")

_OPEN: weakref.WeakSet[ProcessGroup] = weakref.WeakSet()


class ChildError(RuntimeError):
    """A child process exited, failed or did not answer in time."""


class Child:
    """One child process and its stdout, read line by line with a deadline.

    A thread of its own reads the child's stdout into a queue (a pipe cannot be polled with
    a timeout on every platform), so a read waits no longer than its deadline.
    """

    def __init__(self, process: subprocess.Popen[bytes], name: str) -> None:
        self.process = process
        self.name = name
        self.ready_line = ""
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{name} stdout")
        self._reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            for line in stdout:
                self._lines.put(line)
        finally:  # end of file: the child has exited (or closed its stdout)
            stdout.close()
            self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def readline(self, deadline: float) -> str:
        """The next line the child prints (without its newline), by ``deadline``
        (``time.monotonic()``); ChildError if it exits or stays silent until then."""
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ChildError(f"{self.name} (pid {self.pid}) said nothing in time") from None
        if line is None:
            self._lines.put(None)  # every later read says so too
            raise ChildError(f"{self.name} (pid {self.pid}) exited with code {self.process.wait()}")
        return line.decode().rstrip("\r\n")

    def write(self, line: str) -> None:
        """Send one line to the child's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    @property
    def running(self) -> bool:
        return self.process.poll() is None


class ProcessGroup:
    """Child processes started together and stopped together; ``with ProcessGroup() as g:``."""

    def __init__(self, *, stderr: IO[Any] | int | None = None) -> None:
        """``stderr``: where the children's logs go (a file, ``subprocess.DEVNULL``); by
        default this process's stderr."""
        self.stderr = stderr
        self.children: list[Child] = []

    def spawn(
        self,
        command: Sequence[str],
        *,
        name: str = "child",
        stdin: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start ``command``; its stdout is ours to read, its stdin too if ``stdin``.

        ``env``: variables added to this process's environment for the child (a secret such
        as a broker URL with its password belongs here, not on the command line, which
        other users of the machine may be able to read).

        On Linux and macOS the child gets a session (and process group) of its own: Jupyter
        interrupts a kernel by signalling the kernel's whole process group, and an
        interrupted cell must not stop the workers the notebook started. Only its owner
        stops a child (``stop``), or the end of its parent."""
        _OPEN.add(self)
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1",
                 PARENT_PID: str(os.getpid())},
            start_new_session=os.name == "posix",
        )
        child = Child(process, name)
        self.children.append(child)
        return child

    def wait_ready(
        self, children: Sequence[Child], ready: str | re.Pattern[str], timeout: float
    ) -> list[str]:
        """Each child's first line matching ``ready``, all within ``timeout`` seconds.

        A child that exits first, or has not said it by then, is killed with the whole
        group, and ChildError says which one and why.
        """
        pattern = re.compile(ready) if isinstance(ready, str) else ready
        deadline = time.monotonic() + timeout
        try:
            for child in children:
                while not pattern.search(line := child.readline(deadline)):
                    pass
                child.ready_line = line
        except ChildError as error:
            self.stop(timeout=0)
            raise ChildError(
                f"{error} before it was ready (waited up to {timeout:g} s); its error, if "
                "any, is in its log (this process's stderr, or the file given as stderr=)"
            ) from None
        except BaseException:
            self.stop(timeout=0)
            raise
        return [child.ready_line for child in children]

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM every running child, wait for all within ``timeout``, SIGKILL the rest.

        Returns the exit codes (negative: killed by that signal), in spawn order.
        """
        for child in self.children:
            if child.running:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = []
        for child in self.children:
            try:
                codes.append(child.process.wait(max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                child.process.kill()
                codes.append(child.process.wait())
            if child.process.stdin is not None:  # stdout: its reader closes it at its end
                try:
                    child.process.stdin.close()
                except OSError:  # a stdin whose reader is gone
                    pass
        _OPEN.discard(self)
        return codes

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_all() -> None:
    """Stop every ProcessGroup still open in this Python process (runs at exit)."""
    for group in list(_OPEN):
        group.stop(timeout=10)


atexit.register(stop_all)


def _parent() -> int:
    """The pid of the process that started us: as the runtime said, else our parent now."""
    said = os.environ.get(PARENT_PID, "")
    return int(said) if said.isdigit() else os.getppid()


async def watch_parent(interval: float = 0.5) -> None:
    """Return once the process that started this one is gone.

    Polling ``getppid`` works on Linux and macOS, where an orphan gets a new parent; Linux's
    PR_SET_PDEATHSIG would fire when the parent's *thread* that forked us ends, which a
    Jupyter kernel's threads do. On Windows ``getppid`` keeps naming the dead parent, so
    there this never returns: a child outlives a killed parent (a clean exit still stops
    it, through ``ProcessGroup.stop`` at exit).
    """
    parent = _parent()
    while os.getppid() == parent:
        await asyncio.sleep(interval)


LOOPS = ("auto", "asyncio", "uvloop")
"""Event loops a process of ours can run on; "auto" is uvloop where it is installed."""


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def run(coroutine: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """Run ``coroutine`` to its end on a new event loop, as ``asyncio.run`` does.

    ``loop``: "uvloop" (an event loop written in C, about twice as fast per message; no
    Windows build), "asyncio" (the standard one), or "auto": uvloop where it is installed.
    For our own processes only (workers, the command line, the benchmark): a Jupyter
    kernel runs its own loop, and notebooks never change it.
    """
    if loop not in LOOPS:
        coroutine.close()
        raise ValueError(f"unknown event loop {loop!r}; choose one of {', '.join(LOOPS)}")
    if loop == "uvloop" or (loop == "auto" and uvloop_installed()):
        import uvloop  # uvloop.run: no event loop policy (deprecated in Python 3.14)

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


class TaskGroup:
    """Coroutines that end together, within one deadline: ``asyncio.TaskGroup`` under
    ``asyncio.timeout``, with a ``spawn`` that may also come before ``wait``.

    ``spawn`` adds a task (also from inside another task of the group); ``wait(timeout)``
    returns when every task has finished. The first task to fail cancels all the others, and
    ``wait`` raises its exception (traceback and all) once they are gone, or the
    ``ExceptionGroup`` of every failure when several failed; at the deadline every task is
    cancelled and ``wait`` raises TimeoutError (from what failed meanwhile, if anything). A
    cancellation of the waiter cancels the tasks too and stays a cancellation, even when a
    task fails as it is cancelled. ``async with TaskGroup() as group:`` waits for the tasks at
    the end of the block, without a deadline. Nothing outlives ``wait``.
    """

    def __init__(self, what: str = "tasks") -> None:
        self.what = what
        self.tasks: list[asyncio.Task[Any]] = []
        self._group: asyncio.TaskGroup | None = None  # while ``wait`` runs

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        if self._group is not None:
            task = self._group.create_task(coroutine)
        else:  # before ``wait``: it runs at once, and ``wait`` adopts it
            task = asyncio.ensure_future(coroutine)
        self.tasks.append(task)
        return task

    async def wait(self, timeout: float | None) -> None:
        waiter = asyncio.current_task()
        assert waiter is not None
        cancelling = waiter.cancelling()
        deadline = asyncio.timeout(timeout)
        failed: BaseExceptionGroup[BaseException] | None = None
        # The asyncio.TaskGroup runs in a task of its own: on Python 3.11 one whose task fails
        # while it exits leaves its parent marked as being cancelled (fixed in 3.12), and
        # that mark on the waiter is how a cancellation from outside is told apart here.
        runner = asyncio.ensure_future(self._run(deadline))
        try:
            await runner
        except BaseExceptionGroup as failures:
            failed = failures
        except TimeoutError:
            if not deadline.expired():
                raise
        finally:
            self._group = None
            # Spawned before a wait cancelled before its group began: never joined.
            leftovers = [task for task in self.tasks if not task.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.wait(leftovers)
            for task in leftovers:  # retrieved: the cancellation is what is raised
                if not task.cancelled():
                    task.exception()
        # Raised outside the except clauses, so that no exception becomes another's context.
        failure: BaseException | None = failed
        if failed is not None and len(failed.exceptions) == 1:
            failure = failed.exceptions[0]
        if failed is not None and waiter.cancelling() > cancelling:
            # Cancelled from outside, and a task failed as it was cancelled: still a
            # cancellation (asyncio.TaskGroup alone would raise the failure instead).
            raise asyncio.CancelledError() from failure
        if deadline.expired():
            raise TimeoutError(f"{self.what} did not finish within {timeout:g} s") from failure
        if failure is not None:
            raise failure

    async def _run(self, deadline: asyncio.Timeout) -> None:
        async with deadline, asyncio.TaskGroup() as group:
            self._group = group
            for task in self.tasks:
                group.create_task(_join(task))  # cancelling the join cancels the task

    async def __aenter__(self) -> TaskGroup:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.wait(None)
            return
        for task in self.tasks:  # the body failed: nothing it started may outlive it
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)


async def _join(task: asyncio.Task[T]) -> T:
    return await task
