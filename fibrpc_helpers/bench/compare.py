"""Designs measured side by side in one run, interleaved, and what their figures say.

Every design keeps its own worker (on its own queue) for the whole comparison, and the points
take turns round by round (the order reversed every other round), so a burst of load from
elsewhere on the machine lands on all of them alike; each figure is the median over the
rounds. ``compare_speed`` does the same for clients a notebook holds (07: node vs cluster).
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import FibonacciRpcClient
from ..lab.cluster import run_calls
from .designs import Design
from .grid import Bench
from .points import Point
from .presets import TRIVIAL, Work


@dataclass
class Figures:
    """A design's medians at the comparison's two loads, and CPU per call at the busy one."""

    design: Design
    throughput: float  # calls/s at the busy load (C=many)
    p50_ms: float  # at C=1
    cpu_ms: dict[str, float] = field(default_factory=dict)  # role -> CPU ms per call, busy
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    many: int = 64  # the busy load's C

    def describe(self) -> str:
        cpu = ", ".join(f"{role} {ms:.3f}" for role, ms in self.cpu_ms.items())
        return (f"{self.design.name:8} p50 at C=1 {self.p50_ms:5.2f} ms, throughput at "
                f"C={self.many} {self.throughput:5.0f} calls/s, CPU ms per call: {cpu}")


def cpu_per_call(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median CPU ms per call of each role (broker, worker, clients) over ``rows``:
    CPU % of one core / calls per second x 10."""
    busy = [row for row in rows if row["throughput"] > 0]
    roles = {"broker": "cpu_broker", "worker": "cpu_workers", "clients": "cpu_loadgens"}
    return {role: statistics.median(10 * row[key] / row["throughput"] for row in busy)
            if busy else math.nan for role, key in roles.items()}


def interleaved(bench: Bench, designs: Sequence[Design], *, rounds: int, many: int = 64,
                work: Work = TRIVIAL, queue_type: str | None = None, kind: str = "design",
                what: str = "designs side by side") -> list[Figures]:
    """Throughput at C=``many`` and p50 at C=1 of every design, ``rounds`` rounds each;
    ``kind`` names the points, ``what`` the measurement (the progress bar, ``elapsed``)."""
    p = bench.preset
    rows: dict[str, dict[int, list[dict[str, Any]]]] = {d.name: {1: [], many: []} for d in designs}
    progress = bench._progress(2 * rounds * len(designs), what)
    with progress, bench.side_by_side(designs, work, queue_type=queue_type) as running:
        pairs = list(zip(designs, running, strict=True))
        for round_ in range(rounds):
            for clients in (many, 1):
                for chosen, workers in pairs if round_ % 2 == 0 else pairs[::-1]:
                    point = Point(kind=kind, design=chosen.name, work=work, workers=1,
                                  clients=clients, prefetch=workers.prefetch or 0,
                                  warmup=p.warmup, duration=p.duration)
                    rows[chosen.name][clients].append(bench.measure(point, workers, chosen).row())
    figures = []
    for chosen in designs:
        busy, single = rows[chosen.name][many], rows[chosen.name][1]
        figures.append(Figures(chosen, throughput=statistics.median(r["throughput"] for r in busy),
                               p50_ms=statistics.median(r["p50_ms"] for r in single),
                               cpu_ms=cpu_per_call(busy), rows=busy + single, many=many))
    return figures


QUEUE_TYPES = (
    Design("classic", "correlation-id", loop="auto", client_loop="asyncio", queue_type="classic"),
    Design("quorum", "correlation-id", loop="auto", client_loop="asyncio", queue_type="quorum"),
)
"""The reference on the aio-pika tutorial's request queue (classic, not durable: deleted when
the broker restarts) and on tutorial six's (quorum: durable and replicated, its messages
written to disk), as a student runs it."""


def queue_types(bench: Bench, *, rounds: int = 2, many: int = 16) -> list[Figures]:
    """The reference on a classic and on a quorum request queue, side by side, interleaved:
    what durability costs per call (p50 at C=1, throughput at C=``many``, CPU per call)."""
    return interleaved(bench, QUEUE_TYPES, rounds=rounds, many=many, kind="queue",
                       what="queue types")


@dataclass
class Speed:
    """What one set-up measured: median p50 at C=1, median throughput at C=``busy``."""

    name: str
    p50_ms: float
    throughput: float
    busy: int

    def describe(self) -> str:
        return (f"{self.name:16} p50 at C=1 {self.p50_ms:6.2f} ms   throughput at "
                f"C={self.busy} {self.throughput:6.0f} calls/s")


async def compare_speed(clients: Mapping[str, FibonacciRpcClient], *, rounds: int = 3,
                        single_calls: int = 100, busy_calls: int = 400,
                        busy: int = 16) -> list[Speed]:
    """p50 at C=1 and throughput at C=``busy`` of each client's set-up, taking turns."""
    p50s: dict[str, list[float]] = {name: [] for name in clients}
    rates: dict[str, list[float]] = {name: [] for name in clients}
    loop = asyncio.get_running_loop()
    for round_ in range(rounds):
        order = list(clients.items())
        for name, client in order if round_ % 2 == 0 else order[::-1]:
            single = await run_calls(client, [10] * single_calls, concurrency=1, timeout=10)
            p50s[name].append(1000 * statistics.median(c.ended - c.sent for c in single.calls))
            started = loop.time()
            many = await run_calls(client, [10] * busy_calls, concurrency=busy, timeout=10)
            rates[name].append(len(many.answered) / (loop.time() - started))
    return [Speed(name, statistics.median(p50s[name]), statistics.median(rates[name]), busy)
            for name in clients]
