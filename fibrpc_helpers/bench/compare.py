"""Designs measured side by side in one run, interleaved (README, Benchmarks), and their figures.

``compare_speed`` does the same for clients a notebook holds (07: node vs cluster)."""

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
    """Median CPU ms per call (CPU % of one core / calls per second x 10) of each role."""
    busy = [row for row in rows if row["throughput"] > 0]
    roles = {"broker": "cpu_broker", "worker": "cpu_workers", "clients": "cpu_loadgens"}
    return {role: statistics.median(10 * row[key] / row["throughput"] for row in busy)
            if busy else math.nan for role, key in roles.items()}


def interleaved(bench: Bench, designs: Sequence[Design], *, rounds: int, many: int = 64,
                work: Work = TRIVIAL, queue_type: str | None = None, kind: str = "design",
                what: str = "designs side by side") -> list[Figures]:
    """Throughput at C=``many`` and p50 at C=1 of every design over ``rounds`` (``in_turn``)."""
    points = bench.in_turn(designs, (many, 1), work, rounds=rounds, kind=kind, what=what,
                           queue_type=queue_type)
    figures = []
    for chosen in designs:
        busy, single = ([p.row() for p in points if p.design == chosen.name and p.clients == c]
                        for c in (many, 1))
        figures.append(Figures(chosen, throughput=statistics.median(r["throughput"] for r in busy),
                               p50_ms=statistics.median(r["p50_ms"] for r in single),
                               cpu_ms=cpu_per_call(busy), rows=busy + single, many=many))
    return figures


# The reference on the aio-pika tutorial's request queue (classic, not durable) and on tutorial
# six's (quorum: durable, replicated, on disk), as a student runs it.
QUEUE_TYPES = tuple(Design(kind, "correlation-id", loop="auto", client_loop="asyncio",
                           queue_type=kind) for kind in ("classic", "quorum"))


def queue_types(bench: Bench, *, rounds: int = 2, many: int = 16) -> list[Figures]:
    """The reference on a classic and on a quorum request queue: what durability costs a call."""
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
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}  # p50, rate
    loop, order = asyncio.get_running_loop(), list(clients.items())
    for round_ in range(rounds):
        for name, client in order if round_ % 2 == 0 else order[::-1]:
            single = await run_calls(client, [10] * single_calls, concurrency=1, timeout=10)
            started = loop.time()
            many = await run_calls(client, [10] * busy_calls, concurrency=busy, timeout=10)
            measured[name].append((1000 * statistics.median(c.ended - c.sent for c in single.calls),
                                   len(many.answered) / (loop.time() - started)))
    return [Speed(name, *map(statistics.median, zip(*runs, strict=True)), busy)
            for name, runs in measured.items()]
