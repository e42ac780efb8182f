"""The runner: ``Bench`` owns a run's processes (``loadgen``, ``serve``) and keeps its points.

``with Bench("quick") as bench:`` then ``closed_grid()``, ``open_loop()``, ``designs()``,
``save()``; a notebook awaits ``closed_grid_async()``... (``run_async``), so its loop goes on."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime
from itertools import product
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from tqdm import tqdm

from ..lab import broker
from ..lab.namespace import namespaced
from ..lab.notebook import NotebookLine, in_notebook
from ..lab.runtime import Child, ProcessGroup
from ..urls import amqp_url
from .cpu import CpuMeter, broker_pid
from .designs import DESIGNS, Design, design
from .loadgen import Load, LoadGenerators
from .points import Point
from .presets import PRESETS, TRIVIAL, Preset, Work
from .reports import describe, save
from .serve import READY, command

T = TypeVar("T")

RESULTS = Path("results")  # git-ignored; relative to where the run starts
REFERENCE = design("correlation-id")


def delete_queues(url: str, names: Sequence[str]) -> None:
    """``broker.delete_queues``, in a thread of its own: a notebook's event loop may be running."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, broker.delete_queues(url, names)).result()


class Workers:
    """The worker processes of one design on one queue; ``grow`` adds more."""

    def __init__(self, group: ProcessGroup, *, url: str, queue: str, design: Design, work: Work,
                 prefetch: int | None, queue_type: str | None = None) -> None:
        self.group, self.queue, self.design, self.work = group, queue, design, work
        self.prefetch = prefetch
        self.env = {"AMQP_URL": url}  # off the command line (see ProcessGroup.spawn)
        self.command = command(design.server, queue=queue, loop=design.loop, prefetch=prefetch,
                               work=work.work, sleep_ms=work.sleep_ms, queue_type=queue_type)
        self.children: list[Child] = []

    @property
    def count(self) -> int:
        return len(self.children)

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def spawn(self, count: int) -> list[Child]:
        return [self.group.spawn(self.command, name="worker", env=self.env) for _ in range(count)]

    def grow(self, total: int, timeout: float = 60.0) -> Workers:
        """Start more processes until there are ``total``, all consuming the queue."""
        new = self.spawn(total - self.count)
        self.group.wait_ready(new, READY, timeout)
        self.children += new
        return self


class Bench:
    """Runs a preset's measurements and keeps every point; a context manager owning processes."""

    def __init__(self, preset: str | Preset = "quick", *, url: str | None = None,
                 progress: bool = True, verbose: bool = True, **overrides: Any) -> None:
        self.preset = replace(PRESETS[preset] if isinstance(preset, str) else preset, **overrides)
        self.url = amqp_url(url)
        self.progress, self.verbose = progress, verbose
        self.points: list[Point] = []
        self.broker_pid = broker_pid(urlparse(self.url).port or 5672)
        self.run_id = uuid.uuid4().hex[:8]
        self.folder = RESULTS / f"{self.preset.name}-{datetime.now():%Y%m%d-%H%M%S}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path = self.folder / "processes.log"
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed by close()
        self._loadgens: dict[str, LoadGenerators] = {}
        self._queues: list[str] = []
        self._bar: tqdm[Any] | None = None
        self._inner = 0.0  # seconds of the measurements inside the one under way
        # Wall seconds per measurement ("closed loop", ...), starting processes included.
        self.elapsed: dict[str, float] = {}
        self._thread: ThreadPoolExecutor | None = None  # the async face's one thread

    def loadgens(self, loop: str = "asyncio", *, wait: bool = True) -> LoadGenerators:
        """The load generators for clients on ``loop``, started on first use (ready if ``wait``)."""
        if loop not in self._loadgens:
            self._loadgens[loop] = LoadGenerators(self.preset.loadgens, self.url, loop=loop,
                                                  stderr=self._log).spawn()
        return self._loadgens[loop].ready() if wait else self._loadgens[loop]

    def start(self) -> Bench:
        """Start the load generators: they get ready while the first workers start."""
        self.loadgens(wait=False)
        return self

    def __enter__(self) -> Bench:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the load generators and delete this run's queues (workers stop per use)."""
        try:
            if self._thread is not None:
                self._thread.shutdown()
                self._thread = None
            for generators in self._loadgens.values():
                generators.stop()
            self._loadgens.clear()
            delete_queues(self.url, self._queues)
            self._queues.clear()
        finally:
            self._log.close()

    def queue(self, label: str) -> str:
        """A fresh namespaced queue name for this run; deleted when the bench closes."""
        name = namespaced(f"bench.{self.run_id}.{label}")
        self._queues.append(name)
        return name

    def _prefetch(self, design: Design) -> int | None:
        """The worker prefetch of ``design``: its own, else the run's (patterns: no limit)."""
        if design.prefetch is not None:
            return design.prefetch
        return None if design.server == "patterns" else self.preset.prefetch

    @contextmanager
    def workers(self, queue: str, work: Work, count: int,
                design: Design = REFERENCE) -> Iterator[Workers]:
        """``count`` workers of ``design`` on ``queue``, as ``side_by_side`` runs them."""
        with self.side_by_side([design], work, count=count, queues=[queue]) as (workers,):
            yield workers

    @contextmanager
    def side_by_side(self, designs: Sequence[Design], work: Work = TRIVIAL, *, count: int = 1,
                     queue_type: str | None = None,
                     queues: Sequence[str] | None = None) -> Iterator[list[Workers]]:
        """``count`` workers for each design, started and stopped together; designs whose
        workers are the same share them and their queue. A design's own ``queue_type`` wins."""
        with ProcessGroup(stderr=self._log) as group:
            shared: dict[tuple[str, str, int | None, str | None], Workers] = {}
            running = []
            for index, chosen in enumerate(designs):
                kind = chosen.queue_type or queue_type
                key = (chosen.server, chosen.loop, self._prefetch(chosen), kind)
                if key not in shared:
                    label = f"{chosen.name}-{kind or 'default'}".replace(" ", "").strip("+")
                    queue = queues[index] if queues else self.queue(label)
                    shared[key] = Workers(group, url=self.url, queue=queue, design=chosen,
                                          work=work, prefetch=key[2], queue_type=kind)
                running.append(shared[key])
            new = {workers: workers.spawn(count) for workers in shared.values()}
            group.wait_ready([child for children in new.values() for child in children], READY, 60)
            for workers, children in new.items():
                workers.children += children
            try:
                yield running
            finally:
                group.stop()  # before closing clients: no reply is left to lose
                for generators in self._loadgens.values():
                    generators.close_clients()

    def measure(self, point: Point, workers: Workers, design: Design | None = None) -> Point:
        """Run one point of ``design`` (default: the workers' own) against ``workers``."""
        design = workers.design if design is None else design
        generators = self.loadgens(design.clients_loop)
        opened = point.kind == "open"
        load = Load(client=design.client, queue=workers.queue, clients=point.clients,
                    loop="open" if opened else "closed", n=point.work.n, warmup=point.warmup,
                    duration=point.duration, rate=point.offered if opened else 0.0,
                    seed=len(self.points), timeout=self.preset.timeout)
        busy = generators.send(load)
        meter = CpuMeter({"broker": [self.broker_pid], "workers": workers.pids,
                          "load generators": generators.pids})
        # A blocking sleep: in the bench's own thread when awaited (``run_async``).
        time.sleep(max(0.0, load.start_at + point.warmup - time.monotonic()))
        meter.start()
        time.sleep(max(0.0, load.start_at + point.warmup + point.duration - time.monotonic()))
        point.cpu = meter.stop()
        point.records, point.loop_lags = generators.collect(busy, load)
        self.points.append(point)
        if self._bar is not None:
            self._bar.update()
        if self.verbose:  # a terminal's bar moves below the line; a notebook's is a display
            tqdm.write(describe(point.row()))
        return point

    @contextmanager
    def _progress(self, total: int, what: str) -> Iterator[None]:
        """A bar of ``total`` points; a nested measurement's time is not counted twice."""
        notebook = self.progress and in_notebook()
        outer, outer_inner = self._bar, self._inner
        self._bar = tqdm(total=total, desc=what, unit="point", disable=not self.progress,
                         ncols=90, file=NotebookLine() if notebook else sys.stdout,
                         mininterval=0.5 if notebook else 0.1)
        self._inner, started = 0.0, time.monotonic()
        try:
            yield
        finally:
            self._bar.close()
            took = time.monotonic() - started
            self.elapsed[what] = self.elapsed.get(what, 0.0) + took - self._inner
            self._bar, self._inner = outer, outer_inner + took

    def closed_grid(self, works: Sequence[Work] | None = None,
                    workers: Sequence[int] | None = None, clients: Sequence[int] | None = None,
                    repeat: int = 1, *, open_loop: bool = False) -> list[Point]:
        """Closed loop over clients x workers for each work; ``open_loop``: on these workers too."""
        p = self.preset
        works = p.works if works is None else works
        workers = p.workers if workers is None else workers
        grid = {work: p.clients_of(work) if clients is None else clients for work in works}
        done = []
        total = sum(len(counts) for counts in grid.values()) * len(workers) * repeat
        with self._progress(total, "closed loop"):
            for work, counts in grid.items():
                warmup, duration = p.window(work)
                with self.workers(self.queue(work.name), work, min(workers)) as running:
                    for count in sorted(workers):
                        running.grow(count)
                        for number, _ in product(counts, range(repeat)):
                            point = Point(kind="closed", design=REFERENCE.name, work=work,
                                          workers=count, clients=number, warmup=warmup,
                                          duration=duration, prefetch=running.prefetch or 0)
                            done.append(self.measure(point, running))
                        if open_loop and work == p.open_work and count == p.open_workers:
                            self.open_loop(running=running)
        return done

    def open_loop(self, work: Work | None = None, workers: int | None = None,
                  loads: Sequence[float] | None = None, service_ms: float | None = None, *,
                  running: Workers | None = None) -> list[Point]:
        """Poisson arrivals at fractions of the capacity W / S; ``running``: workers to reuse."""
        p = self.preset
        work = p.open_work if work is None else work
        workers = p.open_workers if workers is None else workers
        if running is not None and (running.work != work or running.count != workers):
            raise ValueError(f"the running workers are not {workers} of {work.name}")
        loads = p.open_loads if loads is None else loads
        service_ms = self.service_ms(work) if service_ms is None else service_ms
        capacity = workers / (service_ms / 1000)
        done = []
        with self._progress(len(loads), "open loop"), ExitStack() as stack:
            if running is None:
                queue = self.queue(f"open-{work.name}")
                running = stack.enter_context(self.workers(queue, work, workers))
            for load in loads:
                # Twice the closed-loop window: a light Poisson load has few calls per second.
                point = Point(kind="open", design=REFERENCE.name, work=work, workers=workers,
                              clients=max(2, workers * 2), prefetch=running.prefetch or 0,
                              offered=load * capacity, warmup=p.warmup,
                              duration=2 * p.duration, service_ms=service_ms)
                done.append(self.measure(point, running))
        return done

    def service_ms(self, work: Work, workers: int | None = None) -> float:
        """One worker's time per call at saturation, in ms: W / throughput at the largest C
        (>= 2W) measured (not a lone call's latency, round trip and all); else the work's sleep."""
        workers = self.preset.open_workers if workers is None else workers
        closed = [point.row() for point in self.points if point.kind == "closed"
                  and point.work == work and point.clients >= 2 * point.workers]
        if rows := [row for row in closed if row["throughput"] > 0]:
            counts = {row["workers"] for row in rows}
            count = workers if workers in counts else min(counts)
            mine = [row for row in rows if row["workers"] == count]
            busiest = max(row["clients"] for row in mine)
            return statistics.median(count * 1000 / row["throughput"] for row in mine
                                     if row["clients"] == busiest)
        if work.sleep_ms:
            return work.sleep_ms
        raise ValueError(f"no service time known for {work.name}: pass service_ms=")

    def designs(self, designs: Sequence[str] = DESIGNS, clients: Sequence[int] | None = None,
                work: Work = TRIVIAL) -> list[Point]:
        """The named designs side by side (``in_turn``) on classic queues, as patterns.RPC's."""
        clients = self.preset.design_clients if clients is None else clients
        return self.in_turn([design(name) for name in designs], clients, work, queue_type="classic")

    def in_turn(self, designs: Sequence[Design], clients: Sequence[int], work: Work = TRIVIAL, *,
                rounds: int = 1, kind: str = "design", what: str = "designs",
                queue_type: str | None = None) -> list[Point]:
        """One worker per design, taking turns at each C, the order reversed every other round;
        ``kind`` names the points, ``what`` the measurement (the progress bar, ``elapsed``)."""
        p = self.preset
        done = []
        with (self._progress(rounds * len(clients) * len(designs), what),
              self.side_by_side(designs, work, queue_type=queue_type) as running):
            pairs = list(zip(designs, running, strict=True))
            for round_, count in product(range(rounds), clients):
                for one, workers in pairs if round_ % 2 == 0 else pairs[::-1]:
                    point = Point(kind=kind, design=one.name, work=work, workers=1, clients=count,
                                  prefetch=workers.prefetch or 0, warmup=p.warmup,
                                  duration=p.duration)
                    done.append(self.measure(point, workers, one))
        return done

    async def run_async(self, measurement: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``measurement(*args, **kwargs)`` awaited in the bench's one thread: none overlap."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="bench")
        context = contextvars.copy_context()  # as asyncio.to_thread: prints reach the cell
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, functools.partial(context.run, measurement, *args, **kwargs))

    async def closed_grid_async(self, *args: Any, **kwargs: Any) -> list[Point]:
        return await self.run_async(self.closed_grid, *args, **kwargs)

    async def open_loop_async(self, *args: Any, **kwargs: Any) -> list[Point]:
        return await self.run_async(self.open_loop, *args, **kwargs)

    async def designs_async(self, *args: Any, **kwargs: Any) -> list[Point]:
        return await self.run_async(self.designs, *args, **kwargs)

    def rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [point.row() for point in self.points if kind is None or point.kind == kind]

    def save(self, folder: Path | str | None = None) -> Path:
        """``reports.save`` of every point, into this run's folder unless ``folder`` is given."""
        return save(self.points, Path(folder) if folder else self.folder)
