"""The process runtime: child processes and event-loop tasks that have one owner each.

Worker processes, aio-pika's patterns workers and the benchmark's load generators are all
started and stopped here, one way (a Trio-style nursery for processes):

* ``ProcessGroup.spawn`` starts a child, and ``wait_ready`` waits for every child's ready
  line within one deadline for the whole group;
* ``ProcessGroup.stop`` sends SIGTERM to every child first (they finish in parallel), then
  kills the stragglers; it runs on ``with`` exit and at interpreter exit for a group still open;
* every child's stdin is a pipe from its parent, its lifeline: the child ends when the
  parent does, however it ends (``hold_lifeline``).

Coroutines inside one event loop use ``asyncio.TaskGroup`` and ``asyncio.timeout`` directly.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import queue
import re
import signal
import stat
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import IO, Any, TypeVar

LIFELINE = "FIBRPC_LIFELINE"
"""Set to "stdin" by ``ProcessGroup.spawn`` for its children: they hold a lifeline."""
ORPHAN_GRACE = 90.0
"""Seconds a child whose parent is gone may take to stop cleanly (``parent_gone``) before it
is ended outright; a worker finishing what it holds may take ``worker.STOP_TIMEOUT`` (60 s)."""

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
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start ``command``; its stdout is ours to read, and its stdin is a pipe from us.

        The stdin pipe is the child's lifeline (``hold_lifeline``), and carries the lines of
        ``Child.write``; the group closes it at ``stop`` (or when it is garbage-collected),
        so a child lives no longer than its group.

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
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", LIFELINE: "stdin"},
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

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all() -> None:
    """Stop every ProcessGroup still open in this Python process (runs at exit)."""
    for group in list(_OPEN):
        group.stop(timeout=10)


atexit.register(stop_all)


def follow_stdin(
    on_data: Callable[[bytes], object] | None = None,
    on_end: Callable[[], object] | None = None,
    grace: float = ORPHAN_GRACE,
) -> None:
    """Read this process's stdin in a daemon thread until it closes, then end the process.

    Each chunk read goes to ``on_data`` (from that thread); at the end ``on_end`` runs (from
    that thread too), and the process is ended ``grace`` seconds later if it still runs; with
    no ``on_end``, at once (``os._exit(1)``: nothing is worth finishing). It reads the file
    descriptor itself, not ``sys.stdin``: a daemon thread blocked inside ``sys.stdin``'s
    buffer holds its lock, and Python aborts at exit when one does (``Fatal Python error:
    _enter_buffered_busy``).
    """

    def follow() -> None:
        try:
            while data := os.read(0, 65536):
                if on_data is not None:
                    on_data(data)
        except OSError:  # no stdin at all: the same as a closed one
            pass
        try:
            if on_end is not None:
                on_end()
                time.sleep(grace)
        finally:
            os._exit(1)

    threading.Thread(target=follow, daemon=True, name="lifeline").start()


def _lifeline_given() -> bool:
    """Whether ``spawn`` gave this process a lifeline (``LIFELINE`` set, stdin a pipe). Taken
    once: the variable is removed, so that a process this one starts does not take it as its own."""
    if os.environ.pop(LIFELINE, None) != "stdin":
        return False
    try:
        if os.isatty(0):
            return False
        return os.name != "posix" or stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:  # no stdin at all
        return False


def hold_lifeline(on_end: Callable[[], object] | None = None,
                  on_data: Callable[[bytes], object] | None = None) -> bool:
    """End this process when the process that started it (``ProcessGroup.spawn``) is gone.

    Every child that ``spawn`` starts gets a stdin pipe, its lifeline: the parent keeps its
    end open (writing to it only to send commands, ``Child.write``, which reach ``on_data``),
    and the operating system closes that end when the parent ends, however it ends (killed,
    crashed, exited; a killed Jupyter kernel too), on every platform. Then ``on_end`` runs
    and the process ends ``ORPHAN_GRACE`` seconds later, or at once with no ``on_end`` (see
    ``follow_stdin``). Returns False, and does nothing, in a process that ``spawn`` did not
    start (by hand, its stdin a terminal): it never ends because of its stdin. Once per
    process; the process must not read its stdin itself.
    """
    if not _lifeline_given():
        return False
    follow_stdin(on_data=on_data, on_end=on_end)
    return True


def threadsafe(
    function: Callable[..., object], loop: asyncio.AbstractEventLoop | None = None
) -> Callable[..., None]:
    """``function``, to call from another thread (such as ``follow_stdin``'s): it runs in
    ``loop`` (the running one by default), or nowhere once that loop is closed."""
    loop = loop or asyncio.get_running_loop()

    def call(*args: object) -> None:
        try:
            loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closed: the process is on its way out
            pass

    return call


async def parent_gone() -> None:
    """Return once the parent is gone (``hold_lifeline``), so that this process can stop
    cleanly within ``ORPHAN_GRACE`` seconds; never, in one started by hand. Await it once."""
    gone = asyncio.Event()
    hold_lifeline(threadsafe(gone.set))
    await gone.wait()


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
