"""The grid runner: workers x clients x work, closed and open loop, every call recorded.

``Bench`` owns the processes of a run (load generators, worker groups) and the results. Each
measurement point starts the clients at one shared instant, drops the warm-up, records every
call, summarises the measured window and says whose CPU was busy meanwhile::

    with Bench(preset) as bench:
        bench.closed_grid()        # clients x workers for each kind of work
        bench.open_loop()          # Poisson arrivals at a fraction of capacity
        bench.designs()            # the four RPC designs side by side
        bench.save()               # results/<preset>-<time>/calls.csv, summary.csv
"""

from __future__ import annotations

import csv
import math
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import aio_pika
from tqdm import tqdm

from ..namespace import namespaced
from ..processes import WorkerProcesses
from ..urls import amqp_url
from .cpu import CpuMeter, CpuUse, broker_pid
from .designs import DESIGNS, PatternsWorkerProcesses
from .loadgen import Load, LoadGenerators, LoopLag, Record
from .stats import littles_law_ratio, mean_in_flight, summarize

RESULTS = Path("results")  # git-ignored; relative to where the run starts
# A point is flagged when its load generators' typical event-loop lag (the extra wait of a
# typical reply before the generator read it) is at least this share of the point's p50:
# then a tenth or more of the median latency may be the load generator's own delay rather
# than the RPC's. A smaller share is within what these short points vary from run to run.
LAG_SHARE = 0.10


@dataclass(frozen=True)
class Work:
    """What a worker does per request: fast exact fib(n), recursive fib(n), plus a sleep."""

    name: str
    n: int = 10
    work: str = "fast"  # "fast" or "recursive" (the tutorial's CPU-bound one)
    sleep_ms: float = 0.0  # I/O-like waiting per request

    @property
    def worker_options(self) -> dict[str, Any]:
        return {"work": self.work, "sleep_ms": self.sleep_ms}


TRIVIAL = Work("trivial", n=10)


@dataclass(frozen=True)
class Preset:
    """How much to measure; ``quick`` fits CI and the notebook, ``full`` a classroom run."""

    name: str
    clients: tuple[int, ...]
    workers: tuple[int, ...]
    works: tuple[Work, ...]
    warmup: float  # seconds per point whose calls are recorded but not summarised
    duration: float  # measured seconds per point
    prefetch: int = 1
    loadgens: int = 2
    open_work: Work = Work("io-10ms", n=10, sleep_ms=10)
    open_workers: int = 2
    open_loads: tuple[float, ...] = (0.2, 0.5, 0.8)  # fractions of the capacity W / S
    design_clients: tuple[int, ...] = (1, 16)
    timeout: float = 10.0
    # CPU-bound points may get a longer window: their throughput depends on which process
    # won the cores for a moment, and a short window on a shared machine measures that noise.
    cpu_warmup: float | None = None  # default: ``warmup``
    cpu_duration: float | None = None  # default: ``duration``

    def window(self, work: Work) -> tuple[float, float]:
        """(warm-up, measured seconds) of a closed-loop point of ``work``."""
        if work.work == "recursive":
            return (
                self.warmup if self.cpu_warmup is None else self.cpu_warmup,
                self.duration if self.cpu_duration is None else self.cpu_duration,
            )
        return self.warmup, self.duration


PRESETS = {
    "quick": Preset(
        "quick",
        clients=(1, 4, 16),
        workers=(1, 2, 4),
        works=(Work("io-10ms", sleep_ms=10), Work("cpu-fib18", n=18, work="recursive")),
        warmup=0.1,
        duration=0.25,
        cpu_warmup=0.2,
        cpu_duration=1.0,
        open_workers=4,
        open_loads=(0.3, 0.6, 0.85),
        design_clients=(1, 16),
    ),
    "full": Preset(
        "full",
        clients=(1, 2, 4, 8, 16, 32, 64),
        workers=(1, 2, 4, 8),
        works=(Work("io-10ms", sleep_ms=10), Work("cpu-fib20", n=20, work="recursive")),
        warmup=0.2,
        duration=0.5,
        open_workers=4,
        open_loads=(0.1, 0.3, 0.5, 0.7, 0.8, 0.9),
        design_clients=(1, 16, 64),
    ),
}

CALL_COLUMNS = (
    "point",
    "kind",
    "design",
    "work",
    "workers",
    "clients",
    "prefetch",
    "offered",
    "client",
    "phase",
    "intended",
    "sent",
    "done",
    "latency",
    "error",
)


@dataclass
class Point:
    """One measured configuration: its calls and their summary."""

    kind: str  # "closed", "open" or "design"
    design: str
    work: Work
    workers: int
    clients: int
    prefetch: int
    offered: float  # open loop: calls per second offered; nan for a closed loop
    warmup: float
    duration: float
    records: list[Record] = field(default_factory=list, repr=False)
    cpu: CpuUse | None = None
    service_ms: float = math.nan  # open loop: the service time S its offered load assumed
    loop_lags: list[LoopLag] = field(default_factory=list)  # one per load generator

    def measured(self) -> list[Record]:
        """Calls whose intended start falls in the measured window (after the warm-up)."""
        end = self.warmup + self.duration
        return [r for r in self.records if self.warmup <= r[1] < end]

    def latencies(self) -> list[float]:
        return [r[3] - r[1] for r in self.measured() if not r[4]]

    def row(self) -> dict[str, Any]:
        """The summary row: percentiles in ms, throughput, Little's law, CPU, bottleneck."""
        measured = self.measured()
        errors = sum(1 for r in measured if r[4])
        s = summarize(self.latencies(), self.duration, errors)
        if self.kind == "open":
            window = (self.warmup, self.warmup + self.duration)
            concurrency = mean_in_flight([(r[1], r[3]) for r in self.records], *window)
        else:
            concurrency = float(self.clients)
        littles = littles_law_ratio(s.throughput, s.mean, concurrency) if s.calls else math.nan
        cpu = self.cpu
        lags = self.loop_lags
        lag_ms = max(lag.mean for lag in lags) * 1e3 if lags else math.nan
        # nan when there is no lag or no p50: nan >= LAG_SHARE is False, never flagged
        share = lag_ms / (s.p50 * 1e3) if s.calls and s.p50 > 0 else math.nan
        return {
            "kind": self.kind,
            "design": self.design,
            "work": self.work.name,
            "workers": self.workers,
            "clients": self.clients,
            "prefetch": self.prefetch,
            "offered": self.offered,
            "service_ms": self.service_ms,
            "calls": s.calls,
            "errors": s.errors,
            # Calls whose intended send fell in the window, per second: the arrival rate an
            # open loop really achieved (its offered rate is only the target).
            "arrivals": len(measured) / self.duration,
            "throughput": s.throughput,
            "mean_ms": s.mean * 1e3,
            "p50_ms": s.p50 * 1e3,
            "p90_ms": s.p90 * 1e3,
            "p99_ms": s.p99 * 1e3,
            "max_ms": s.max * 1e3,
            "in_system": concurrency,
            "littles": littles,
            "cpu_broker": cpu.total("broker") if cpu else math.nan,
            "cpu_workers": cpu.total("workers") if cpu else math.nan,
            "cpu_worker_peak": cpu.peak("workers") if cpu else math.nan,
            "cpu_loadgen_peak": cpu.peak("load generators") if cpu else math.nan,
            "cpu_loadgens": cpu.total("load generators") if cpu else math.nan,
            "cpu_machine": cpu.machine if cpu else math.nan,
            "bottleneck": cpu.bottleneck() if cpu else "",
            # How late a 5 ms ticker in the load generators woke during the window, beyond an
            # idle loop's timer slack: the wait of a reply arriving then before the generator
            # read it, counted in its call's latency. Mean: a typical reply (the laggier
            # generator's); worst: the longest stall in any generator.
            "loop_lag_ms": max(lag.worst for lag in lags) * 1e3 if lags else math.nan,
            "loop_lag_mean_ms": lag_ms,
            "loadgen_share": share,
            "loadgen_lagging": share >= LAG_SHARE,
        }


def describe(row: dict[str, Any]) -> str:
    """One printed line per point: the figures, Little's check and whose CPU was busy."""
    what = f"{row['kind']:6} {row['design']:17} {row['work']:9} "
    what += f"W={row['workers']:<2} C={row['clients']:<3}"
    if row["kind"] == "open":
        what += f" offered {row['offered']:5.0f}/s"
    return (
        f"{what} {row['throughput']:6.0f} calls/s  n={row['calls']:<5} "
        f"p50 {row['p50_ms']:6.2f}  p90 "
        f"{row['p90_ms']:6.2f}  p99 {row['p99_ms']:6.2f}  max {row['max_ms']:6.2f} ms  "
        f"Little {row['throughput']:.0f}/s x {row['mean_ms']:.2f} ms = "
        f"{row['throughput'] * row['mean_ms'] / 1e3:.1f} vs L {row['in_system']:.1f} "
        f"({row['littles']:.2f})  cpu broker {row['cpu_broker']:.0f}% workers "
        f"{row['cpu_workers']:.0f}% (peak {row['cpu_worker_peak']:.0f}%) loadgen peak "
        f"{row['cpu_loadgen_peak']:.0f}% machine {row['cpu_machine']:.0f}%: {row['bottleneck']}"
        + f"  loadgen loop lag mean {row['loop_lag_mean_ms']:.2f} worst {row['loop_lag_ms']:.1f} ms"
        + (
            f" (LAGGING: {row['loadgen_share']:.0%} of the p50 may be load-generator delay)"
            if row["loadgen_lagging"]
            else ""
        )
        + (f"  ERRORS {row['errors']}" if row["errors"] else "")
    )


TABLE = (
    ("kind", "{:6}"),
    ("design", "{:17}"),
    ("work", "{:9}"),
    ("workers", "W={:<2}"),
    ("clients", "C={:<3}"),
    ("throughput", "{:6.0f}/s"),
    ("calls", "n={:<5}"),  # a p99 is read with the number of calls it comes from
    ("p50_ms", "p50 {:6.1f}"),
    ("p99_ms", "p99 {:6.1f} ms"),
    ("littles", "Little {:4.2f}"),
    ("cpu_machine", "machine CPU {:3.0f}%"),
)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = TABLE) -> str:
    """Rows as aligned text lines: what a person reads in a notebook cell."""
    return "\n".join("  ".join(fmt.format(row[key]) for key, fmt in columns) for row in rows)


class Bench:
    """Runs a preset's measurements and keeps every call; a context manager owning processes."""

    def __init__(
        self,
        preset: str | Preset = "quick",
        *,
        url: str | None = None,
        progress: bool = True,
        verbose: bool = True,
        **overrides: Any,
    ) -> None:
        base = PRESETS[preset] if isinstance(preset, str) else preset
        self.preset = replace(base, **overrides)
        self.url = amqp_url(url)
        self.progress, self.verbose = progress, verbose
        self.points: list[Point] = []
        self.loadgens = LoadGenerators(self.preset.loadgens, url=self.url)
        self.broker_pid = broker_pid(urlparse(self.url).port or 5672)
        self.run_id = uuid.uuid4().hex[:8]
        self.folder = RESULTS / f"{self.preset.name}-{datetime.now():%Y%m%d-%H%M%S}"
        self.folder.mkdir(parents=True, exist_ok=True)
        # The worker and load-generator processes log here, not into the terminal or cell.
        self.log_path = self.folder / "processes.log"
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed by close()
        self.loadgens.stderr = self._log
        self._queues: list[str] = []
        self._bar: tqdm | None = None
        self._bar_in_notebook = False
        # Wall seconds each measurement took ("closed loop", "open loop", "designs"): the
        # notebook's run time on this machine, windows plus starting and stopping processes.
        self.elapsed: dict[str, float] = {}

    # -- processes ------------------------------------------------------------------------
    def start(self) -> Bench:
        """Start the load-generator processes (workers start per measurement)."""
        if not self.loadgens.processes:
            self.loadgens.start()
        return self

    def __enter__(self) -> Bench:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the load generators and delete this run's queues (workers stop per use)."""
        self.loadgens.stop()
        self.loadgens.processes.clear()
        self._delete_queues()
        self._log.close()

    def queue(self, label: str) -> str:
        """A fresh namespaced queue name for this run; deleted when the bench closes."""
        name = namespaced(f"bench.{self.run_id}.{label}")
        self._queues.append(name)
        return name

    def _delete_queues(self) -> None:
        import asyncio

        async def delete() -> None:
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                for name in self._queues:
                    await channel.queue_delete(name)

        if self._queues:
            try:
                asyncio.get_running_loop()
                running = True
            except RuntimeError:
                running = False
            if running:  # in a notebook: a loop is already running in this thread
                import threading

                thread = threading.Thread(target=lambda: asyncio.run(delete()))
                thread.start()
                thread.join()
            else:
                asyncio.run(delete())
            self._queues.clear()

    @contextmanager
    def workers(
        self, queue: str, work: Work, count: int, patterns: bool = False
    ) -> Iterator[list[WorkerProcesses]]:
        """Worker groups on ``queue``, to grow with ``grow(groups, total)``; stopped after."""
        groups: list[WorkerProcesses] = []
        try:
            self.grow(groups, queue, work, count, patterns)
            yield groups
        finally:
            for group in groups:  # signal them all first: they finish in parallel
                for process in group.processes:
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
            for group in groups:
                group.stop()
            self.loadgens.close_clients()

    def grow(
        self,
        groups: list[WorkerProcesses],
        queue: str,
        work: Work,
        total: int,
        patterns: bool = False,
    ) -> None:
        """Start more worker processes on ``queue`` until there are ``total``."""
        have = sum(group.count for group in groups)
        if total > have:
            if patterns:
                group: WorkerProcesses = PatternsWorkerProcesses(
                    total - have, url=self.url, queue=queue, stderr=self._log
                )
            else:
                group = WorkerProcesses(
                    total - have,
                    url=self.url,
                    queue=queue,
                    prefetch=self.preset.prefetch,
                    stderr=self._log,
                    **work.worker_options,
                )
            groups.append(group.start())

    # -- one point --------------------------------------------------------------------------
    def measure(self, point: Point, queue: str, groups: Sequence[WorkerProcesses]) -> Point:
        """Run one point: every load generator starts at once; CPU measured over the window."""
        p = self.preset
        load = Load(
            design=point.design,
            queue=queue,
            clients=point.clients,
            loop="open" if point.kind == "open" else "closed",
            n=point.work.n,
            warmup=point.warmup,
            duration=point.duration,
            rate=point.offered if point.kind == "open" else 0.0,
            seed=len(self.points),
            timeout=p.timeout,
        )
        busy = self.loadgens.send(load)
        meter = CpuMeter(
            {
                "broker": [self.broker_pid],
                "workers": [pid for group in groups for pid in group.pids],
                "load generators": self.loadgens.pids,
            }
        )
        _sleep_until(load.start_at + point.warmup)
        meter.start()
        _sleep_until(load.start_at + point.warmup + point.duration)
        point.cpu = meter.stop()
        point.records, point.loop_lags = self.loadgens.collect(busy, timeout=p.timeout + 60)
        self.points.append(point)
        if self._bar is not None:
            self._bar.update()
        if self.verbose:
            # A terminal bar moves below the line; a notebook's bar is a display of its own.
            terminal = self._bar is not None and not self._bar_in_notebook
            (self._bar.write if terminal else print)(describe(point.row()))
        return point

    @contextmanager
    def _progress(self, total: int, what: str) -> Iterator[None]:
        notebook = self._bar_in_notebook = self.progress and _in_notebook()
        self._bar = tqdm(
            total=total,
            desc=what,
            unit="point",
            disable=not self.progress,
            file=NotebookLine() if notebook else sys.stdout,
            mininterval=0.5 if notebook else 0.1,
            ncols=90,
        )
        started = time.monotonic()
        try:
            yield
        finally:
            self._bar.close()
            self._bar = None
            self.elapsed[what] = self.elapsed.get(what, 0.0) + time.monotonic() - started

    # -- what a preset measures ----------------------------------------------------------------
    def closed_grid(
        self,
        works: Sequence[Work] | None = None,
        workers: Sequence[int] | None = None,
        clients: Sequence[int] | None = None,
        repeat: int = 1,
    ) -> list[Point]:
        """Closed loop over clients x workers for each kind of work (default: the preset's)."""
        p = self.preset
        works = p.works if works is None else works
        workers = p.workers if workers is None else workers
        clients = p.clients if clients is None else clients
        done = []
        with self._progress(len(works) * len(workers) * len(clients) * repeat, "closed loop"):
            for work in works:
                queue = self.queue(work.name)
                with self.workers(queue, work, min(workers)) as groups:
                    for count in sorted(workers):
                        self.grow(groups, queue, work, count)
                        for number in clients:
                            for _ in range(repeat):
                                point = Point(
                                    "closed",
                                    "correlation-id",
                                    work,
                                    count,
                                    number,
                                    p.prefetch,
                                    math.nan,
                                    *p.window(work),
                                )
                                done.append(self.measure(point, queue, groups))
        return done

    def open_loop(
        self,
        work: Work | None = None,
        workers: int | None = None,
        loads: Sequence[float] | None = None,
        service_ms: float | None = None,
    ) -> list[Point]:
        """Poisson arrivals at fractions of the capacity W / S; latency from intended send.

        S is each worker's time per call at saturation (see ``service_ms``), so W / S is a
        throughput the closed grid really reached, not one below it.
        """
        p = self.preset
        work = p.open_work if work is None else work
        workers = p.open_workers if workers is None else workers
        loads = p.open_loads if loads is None else loads
        service_ms = self.service_ms(work) if service_ms is None else service_ms
        capacity = workers / (service_ms / 1000)
        clients = max(2, workers * 2)
        queue = self.queue(f"open-{work.name}")
        done = []
        with self._progress(len(loads), "open loop"), self.workers(queue, work, workers) as groups:
            for load in loads:
                # Twice the closed-loop window: a light Poisson load has few calls per second.
                point = Point(
                    "open",
                    "correlation-id",
                    work,
                    workers,
                    clients,
                    p.prefetch,
                    load * capacity,
                    p.warmup,
                    2 * p.duration,
                    service_ms=service_ms,
                )
                done.append(self.measure(point, queue, groups))
        return done

    def service_ms(self, work: Work, workers: int | None = None) -> float:
        """One worker's time per call at saturation, in ms: W / throughput at the largest C.

        With every worker's queue full, W workers finish throughput calls per second, so each
        spends W / throughput per call: the S for which W / S is the measured capacity. (The
        mean latency of a lone call would include the whole round trip, and W / S would then
        fall below a throughput the closed grid measured.) Uses the closed points of
        ``work`` with ``workers`` (default: the open loop's W, else the fewest measured) at
        their largest C, provided C >= 2W; else the work's sleep.
        """
        workers = self.preset.open_workers if workers is None else workers
        rows = [
            point.row()
            for point in self.points
            if point.kind == "closed" and point.work == work and point.clients >= 2 * point.workers
        ]
        counts = {row["workers"] for row in rows if row["throughput"] > 0}
        if counts:
            count = workers if workers in counts else min(counts)
            mine = [row for row in rows if row["workers"] == count and row["throughput"] > 0]
            busiest = max(row["clients"] for row in mine)
            saturated = [row for row in mine if row["clients"] == busiest]
            return statistics.median(count * 1000 / row["throughput"] for row in saturated)
        if work.sleep_ms:
            return work.sleep_ms
        raise ValueError(f"no service time known for {work.name}: pass service_ms=")

    def designs(
        self,
        designs: Sequence[str] = DESIGNS,
        clients: Sequence[int] | None = None,
        work: Work = TRIVIAL,
    ) -> list[Point]:
        """The four RPC designs side by side, each against one worker, closed loop.

        The three tutorial-six designs share one worker of this package (they differ only on
        the client side); ``patterns`` gets its own aio-pika worker.
        """
        p = self.preset
        clients = p.design_clients if clients is None else clients
        done = []
        kinds = [[d for d in designs if d != "patterns"], [d for d in designs if d == "patterns"]]
        with self._progress(len(designs) * len(clients), "designs"):
            for same_worker in kinds:
                if not same_worker:
                    continue
                patterns = same_worker == ["patterns"]
                queue = self.queue("design-patterns" if patterns else "design")
                with self.workers(queue, work, 1, patterns=patterns) as groups:
                    for design in same_worker:
                        for count in clients:
                            point = Point(
                                "design",
                                design,
                                work,
                                1,
                                count,
                                p.prefetch,
                                math.nan,
                                p.warmup,
                                p.duration,
                            )
                            done.append(self.measure(point, queue, groups))
        return done

    # -- results ------------------------------------------------------------------------------
    def rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [point.row() for point in self.points if kind is None or point.kind == kind]

    def calls(self) -> Iterator[dict[str, Any]]:
        """Every call of every point, one dict per call (the tidy CSV's rows)."""
        for index, point in enumerate(self.points):
            end = point.warmup + point.duration
            for client, intended, sent, done, error in point.records:
                yield {
                    "point": index,
                    "kind": point.kind,
                    "design": point.design,
                    "work": point.work.name,
                    "workers": point.workers,
                    "clients": point.clients,
                    "prefetch": point.prefetch,
                    "offered": point.offered,
                    "client": client,
                    "phase": "measured" if point.warmup <= intended < end else "warmup",
                    "intended": round(intended, 6),
                    "sent": round(sent, 6),
                    "done": round(done, 6),
                    "latency": round(done - intended, 6),
                    "error": error,
                }

    def save(self, folder: Path | str | None = None) -> Path:
        """Write calls.csv (every call) and summary.csv (one row per point); return the folder."""
        folder = Path(folder) if folder else self.folder
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "calls.csv", "w", newline="") as out:
            writer = csv.DictWriter(out, CALL_COLUMNS)
            writer.writeheader()
            writer.writerows(self.calls())
        rows = self.rows()
        if rows:
            with open(folder / "summary.csv", "w", newline="") as out:
                writer = csv.DictWriter(out, list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        return folder


class NotebookLine:
    """Where the progress bar writes in a notebook: one output, updated in place.

    A terminal redraws a bar with carriage returns; a notebook keeps every write as a
    separate output, so a saved notebook would hold each redraw. Here each redraw replaces
    one display (by its display id): the saved notebook keeps the final line only.
    """

    encoding = "utf-8"

    def __init__(self) -> None:
        from IPython.display import DisplayHandle

        self._handle = DisplayHandle()
        self._shown = False

    def write(self, text: str) -> int:
        line = text.split("\r")[-1].rstrip("\n")
        if line.strip():
            data = {"text/plain": line}
            if self._shown:
                self._handle.update(data, raw=True)
            else:
                self._handle.display(data, raw=True)
                self._shown = True
        return len(text)

    def flush(self) -> None:
        pass


def _in_notebook() -> bool:
    """True in a Jupyter kernel (ipykernel), where stdout is not a terminal."""
    if "ipykernel" not in sys.modules or sys.stdout.isatty():
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)
