"""Notebook plumbing, so that a cell shows the idea it teaches, not bookkeeping: ``nb = await
start(name)`` checks the broker; ``nb.queue``, ``nb.track``, ``nb.worker_processes`` note what it
makes, for its last cell's ``await nb.cleanup()``. ``start`` and ``queue`` make a re-run safe."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import aio_pika

from .. import worker as _worker
from ..urls import amqp_url, mask_url
from . import broker
from .namespace import namespace, namespaced, short_name
from .processes import WorkerProcesses
from .runtime import Child, ChildError, ProcessGroup

T = TypeVar("T")

HOW_TO_FIX = """\
No RabbitMQ broker answers at {url}.
To fix it, run one of these in a terminal in the project folder, then run this cell again:
  make lab                                          (starts a broker, then JupyterLab)
  .venv/bin/python -m fibrpc_helpers broker ensure  (starts a broker only)
In a class with a shared broker, put the address your teacher gives you in the .env file
at the project root (a line AMQP_URL=amqp://...), then run the notebook again."""

# ``reading_minutes``'s weights: prose read slowly beside code; a code cell run; an exercise.
WORDS_PER_MINUTE = 130
MINUTES_PER_CODE_CELL = 1.0
MINUTES_PER_TRY_IT = 5.0

_log = logging.getLogger(__name__)
_NOTEBOOKS: dict[str, Notebook] = {}
_STEP_TIMEOUT = 15.0  # seconds a cleanup step may take, beyond what a worker's own stop may
_EXERCISE = re.compile(r" {0,3}#{1,6}\s+(Try it|Exercise)\b")  # a CommonMark ATX heading


async def check_broker(url: str | None = None) -> bool:
    """Print whether a broker answers at ``url`` (default AMQP_URL) and, if not, how to fix it."""
    url = amqp_url(url)
    try:
        version = await broker.probe_async(url)
    except broker.BrokerError as error:  # it answers, but not to these credentials
        print(error)
        return False
    if version is None:
        print(HOW_TO_FIX.format(url=mask_url(url)))
        return False
    print(f"RabbitMQ {version} answers at {mask_url(url)}")
    return True


async def start(name: str, url: str | None = None) -> Notebook:
    """Check the broker (else BrokerError), clean up an earlier run of ``name``: its Notebook."""
    url = amqp_url(url)
    if not await check_broker(url):
        raise broker.BrokerError(f"no RabbitMQ broker answers at {mask_url(url)}; see above")
    if name in _NOTEBOOKS:
        await _NOTEBOOKS[name].cleanup(quiet=True)
    for logger in ("aio_pika", "aiormq"):  # a connection closed with consumers warns: noise here
        logging.getLogger(logger).setLevel(logging.ERROR)
    _NOTEBOOKS[name] = Notebook(name, url)
    return _NOTEBOOKS[name]


class Notebook:
    """What one notebook declared and started, so that its last cell can undo it."""

    def __init__(self, name: str, url: str | None = None) -> None:
        self.name = name
        self.url = amqp_url(url)
        self.queues: list[str] = []
        self.things: list[Any] = []
        self.worker_log = Path(tempfile.gettempdir()) / f"fibrpc-{namespace()}-{name}-workers.log"

    async def queue(self, name: str) -> str:
        """This notebook's ``name`` in your namespace (``01.rpc_queue``), a leftover deleted."""
        full = namespaced(f"{self.name[:2]}.{name}")
        if full not in self.queues:
            self.queues.append(full)
            await broker.delete_queues(self.url, [full])
        return full

    async def worker_processes(self, count: int, **options: Any) -> WorkerProcesses:
        """``count`` ``WorkerProcesses``, tracked, on this notebook's broker unless ``url=``."""
        options.setdefault("url", self.url)
        with self._child_log() as log:
            # Tracked before it starts: a cell interrupted meanwhile leaves them to cleanup.
            workers = self.track(WorkerProcesses(count, stderr=log, **options))
            await asyncio.to_thread(workers.start)
        return workers

    async def script_process(self, script: str, *args: str, name: str, ready: str = "ready",
                             timeout: float = 30.0) -> Child:
        """Run ``python script *args`` (``run_script``), tracked, until it prints ``ready``."""
        command = [sys.executable, "-m", "fibrpc_helpers.lab.run_script", script, *args]
        with self._child_log() as log:
            group = self.track(ProcessGroup(stderr=log))
            child = group.spawn(command, name=name, env={"AMQP_URL": self.url})
            await asyncio.to_thread(group.wait_ready, [child], re.escape(ready), timeout)
        return child

    @contextlib.contextmanager
    def _child_log(self) -> Iterator[IO[str]]:
        """The log of processes started here (not whichever cell runs); a failure shows its end."""
        with open(self.worker_log, "a") as log:  # each child holds its own copy of the file
            began = log.tell()
            try:
                yield log
            except ChildError as error:  # one exited, or was not ready in time
                written = self.worker_log.read_bytes()[began:].decode(errors="replace")
                raise ChildError(f"{error}. The whole log is {self.worker_log}; its last lines:\n"
                                 + "\n".join(written.splitlines()[-5:])) from None

    def track(self, thing: T) -> T:
        """Remember ``thing`` (with ``stop()`` or ``close()``, or a task) for cleanup."""
        if not any(thing is known for known in self.things):
            self.things.append(thing)
        return thing

    async def cleanup(self, quiet: bool = False) -> None:
        """Stop and close what was tracked (last first), then delete this notebook's queues."""
        done: Counter[str] = Counter()
        while self.things:
            done[await _finish(self.things.pop())] += 1
        deleted = [short_name(name) for name in self.queues]
        await broker.delete_queues(self.url, self.queues)
        self.queues = []
        if not quiet:
            parts = [f"{n} {kind}" + ("" if n == 1 else "es" if kind.endswith("s") else "s")
                     for kind, n in done.items()]  # 1 task, 2 tasks, 2 processes
            print("stopped or closed: " + (", ".join(parts) or "nothing"))
            print("deleted queues: " + (", ".join(deleted) or "none"))


async def _finish(thing: Any) -> str:
    """Stop, close or cancel one thing, or give up on it at WARNING in time; returns its kind."""
    if isinstance(thing, asyncio.Task):
        thing.cancel()
        await asyncio.wait([thing], timeout=_STEP_TIMEOUT)
        if not thing.done():
            _log.warning("cleanup gave up on %r: still running %g s after it was cancelled",
                         thing, _STEP_TIMEOUT)
        return "task"
    if isinstance(thing, ProcessGroup):  # WorkerProcesses too
        await asyncio.to_thread(thing.stop)
        if not isinstance(thing, WorkerProcesses):
            return "process"
        return "worker process" if thing.count == 1 else "worker process group"
    kinds = {aio_pika.abc.AbstractConnection: "connection", aio_pika.abc.AbstractChannel: "channel"}
    kind = next((k for cls, k in kinds.items() if isinstance(thing, cls)), type(thing).__name__)
    method = getattr(thing, "stop", None) or getattr(thing, "close", None)
    if method is None:
        raise TypeError(f"cannot clean up {thing!r}: it has neither stop() nor close()")
    held = isinstance(thing, _worker.FibonacciRpcWorker)  # its stop finishes held requests
    timeout = _STEP_TIMEOUT + (_worker.STOP_TIMEOUT if held else 0)
    deadline = asyncio.timeout(timeout)
    try:
        result = method()
        if inspect.isawaitable(result):
            async with deadline:
                await result
    except Exception as error:
        if deadline.expired():
            _log.warning("cleanup gave up on %r after %g s: it may still run or hold a "
                         "connection open", thing, timeout)
        else:  # already closed, connection lost: nothing left to undo
            _log.info("cleanup of %r: %r", thing, error)
    return kind


class NotebookLine:
    """Where the progress bar writes in a notebook: one display that each write replaces (a
    notebook saves every output, so a bar redrawn with carriage returns would save each)."""

    encoding = "utf-8"

    def __init__(self) -> None:
        from IPython.display import DisplayHandle

        self._handle = DisplayHandle()
        self._shown = False

    def write(self, text: str) -> int:
        line = text.split("\r")[-1].rstrip("\n")
        if line.strip():
            show = self._handle.update if self._shown else self._handle.display
            show({"text/plain": line}, raw=True)
            self._shown = True
        return len(text)

    def flush(self) -> None:
        pass


def in_notebook() -> bool:
    """True in a Jupyter kernel (ipykernel), where stdout is not a terminal."""
    if "ipykernel" not in sys.modules or sys.stdout.isatty():
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


class Reading(NamedTuple):
    """What ``reading_minutes`` counts (navigation cells left out), and its result."""

    words: int  # of markdown prose
    code_cells: int
    exercises: int  # markdown headings of a "Try it" or an "Exercise"
    minutes: int


def reading(notebook: Mapping[str, Any]) -> Reading:
    """Count the prose words, code cells and exercises of ``notebook`` (its JSON, as loaded)."""
    words = code_cells = exercises = 0
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("fibrpc", {}).get("navigation"):
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            words += len(source.split())
            exercises += sum(1 for line in source.splitlines() if _EXERCISE.match(line))
        elif cell["cell_type"] == "code":
            code_cells += 1
    minutes = (words / WORDS_PER_MINUTE + code_cells * MINUTES_PER_CODE_CELL
               + exercises * MINUTES_PER_TRY_IT)
    return Reading(words, code_cells, exercises, max(5, 5 * math.ceil(minutes / 5)))


def reading_minutes(notebook: Mapping[str, Any]) -> int:
    """Minutes a first sitting with ``notebook`` takes (a multiple of 5): its introduction says."""
    return reading(notebook).minutes
