"""Child processes with one owner each (a Trio-style nursery): a ``ProcessGroup`` stops them
together (on ``with`` exit, or at interpreter exit), and each child's stdin is a pipe from its
parent, its lifeline: it ends when the parent does, however that ends (``hold_lifeline``)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import os
import queue
import re
import stat
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import IO, Any, TypeVar

LIFELINE = "FIBRPC_LIFELINE"  # set to "stdin" by ``ProcessGroup.spawn`` for its children
ORPHAN_GRACE = 90.0  # seconds an orphan may take to stop cleanly (worker.STOP_TIMEOUT is 60)
LOOPS = ("auto", "asyncio", "uvloop")  # what ``run`` runs on; "auto": uvloop where installed

T = TypeVar("T")

_OPEN: weakref.WeakSet[ProcessGroup] = weakref.WeakSet()


class ChildError(RuntimeError):
    """A child process exited, failed or did not answer in time."""


class Child:
    """One child process; a thread reads its stdout into a queue: not every pipe can be polled."""

    def __init__(self, process: subprocess.Popen[bytes], name: str) -> None:
        self.process, self.pid, self.name = process, process.pid, name
        self.ready_line = ""
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True, name=f"{name} stdout").start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                self._lines.put(line)
        finally:  # end of file: the child has exited (or closed its stdout)
            self.process.stdout.close()
            self._lines.put(None)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def readline(self, deadline: float) -> str:
        """The next line it prints by ``deadline`` (``time.monotonic()``), else ChildError."""
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ChildError(f"{self.name} (pid {self.pid}) said nothing in time") from None
        if line is None:
            self._lines.put(None)  # every later read says so too
            raise ChildError(f"{self.name} (pid {self.pid}) exited with code {self.process.wait()}")
        return line.decode().rstrip("\r\n")

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()


class ProcessGroup(contextlib.AbstractContextManager["ProcessGroup"]):
    """Child processes started and stopped together; ``stderr``: where they log (default: ours)."""

    def __init__(self, *, stderr: IO[Any] | int | None = None) -> None:
        self.stderr = stderr
        self.children: list[Child] = []

    def spawn(self, command: Sequence[str], *, name: str = "child",
              env: Mapping[str, str] | None = None) -> Child:
        """Start ``command``; ``env`` adds variables (a password: others may read command lines).
        Its own POSIX session: Jupyter interrupts a kernel by signalling its process group."""
        _OPEN.add(self)
        environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", LIFELINE: "stdin"}
        process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env=environment, start_new_session=os.name == "posix",
        )
        self.children.append(Child(process, name))
        return self.children[-1]

    def wait_ready(self, children: Sequence[Child], ready: str | re.Pattern[str],
                   timeout: float) -> list[str]:
        """Each child's first line matching ``ready`` within ``timeout`` s, else all killed."""
        pattern = re.compile(ready)
        deadline = time.monotonic() + timeout
        try:
            for child in children:
                while not pattern.search(line := child.readline(deadline)):
                    pass
                child.ready_line = line
        except BaseException as error:
            self.stop(timeout=0)
            if not isinstance(error, ChildError):
                raise
            raise ChildError(f"{error} before it was ready (waited up to {timeout:g} s); its "
                             "error, if any, is in its log (this process's stderr, or the file "
                             "given as stderr=)") from None
        return [child.ready_line for child in children]

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM all, SIGKILL those left after ``timeout``; the exit codes, in spawn order."""
        for child in self.children:
            child.process.terminate()  # SIGTERM; nothing for one that has exited
        deadline = time.monotonic() + timeout
        codes = []
        for child in self.children:
            try:
                codes.append(child.process.wait(max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                child.process.kill()
                codes.append(child.process.wait())
            if child.process.stdin is not None:  # stdout: its reader closes it at its end
                with contextlib.suppress(OSError):  # a stdin whose reader is gone
                    child.process.stdin.close()
        _OPEN.discard(self)
        return codes

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def stop_all() -> None:
    """Stop every ProcessGroup still open in this Python process (runs at exit)."""
    for group in list(_OPEN):
        group.stop(timeout=10)


def follow_stdin(on_data: Callable[[bytes], object] | None = None,
                 on_end: Callable[[], object] | None = None, grace: float = ORPHAN_GRACE) -> None:
    """Pass stdin's chunks to ``on_data`` in a daemon thread until it closes, then run ``on_end``
    and end the process ``grace`` s later (at once without one). It reads fd 0: a daemon thread
    blocked in ``sys.stdin``'s buffer aborts Python at exit (``_enter_buffered_busy``)."""

    def follow() -> None:
        with contextlib.suppress(OSError):  # no stdin at all: the same as a closed one
            while data := os.read(0, 65536):
                if on_data is not None:
                    on_data(data)
        try:
            if on_end is not None:
                on_end()
                time.sleep(grace)
        finally:
            os._exit(1)

    threading.Thread(target=follow, daemon=True, name="lifeline").start()


def hold_lifeline(on_end: Callable[[], object] | None = None,
                  on_data: Callable[[bytes], object] | None = None) -> bool:
    """End this process when its parent ends, however (the system closes our stdin's pipe then);
    False where ``spawn`` gave no lifeline (``LIFELINE``, removed here, or stdin a terminal).
    Once per process, which must not read stdin."""
    if os.environ.pop(LIFELINE, None) != "stdin":
        return False
    with contextlib.suppress(OSError):  # no stdin at all: no lifeline
        if not os.isatty(0) and (os.name != "posix" or stat.S_ISFIFO(os.fstat(0).st_mode)):
            follow_stdin(on_data=on_data, on_end=on_end)
            return True
    return False


def threadsafe(function: Callable[..., object],
               loop: asyncio.AbstractEventLoop | None = None) -> Callable[..., None]:
    """``function`` for another thread to call: it runs in ``loop`` (default: the running one)."""
    loop = loop or asyncio.get_running_loop()

    def call(*args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are on our way out
            loop.call_soon_threadsafe(function, *args)

    return call


async def parent_gone() -> None:
    """Return once the parent is gone (``hold_lifeline``); never in one started by hand. Once."""
    gone = asyncio.Event()
    hold_lifeline(threadsafe(gone.set))
    await gone.wait()


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def run(coroutine: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """``asyncio.run`` on ``loop`` (``LOOPS``): uvloop, in C, is about twice as fast per message."""
    if loop not in LOOPS:
        coroutine.close()
        raise ValueError(f"unknown event loop {loop!r}; choose one of {', '.join(LOOPS)}")
    if loop == "uvloop" or (loop == "auto" and uvloop_installed()):
        import uvloop  # uvloop.run: no event loop policy (deprecated in Python 3.14)

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)
