"""The reference client and worker against ``aio_pika.patterns.RPC``, side by side in one run.

Printed as figures and ratios, never asserted in a timed test (a 2-core machine shared with
other work is too noisy for a pass/fail on speed):

* throughput at C=64, W=1, trivial n: the reference design vs ``aio_pika.patterns.RPC``
  with its own worker (target >= 1.5x);
* sequential (C=1) p50 latency: reference vs patterns (target <= 0.8x);
* I/O-bound work of 20 ms at C=32: W=4 throughput vs W=1 (target >= 3.5x);
* and, as figures without a target, what a durable quorum request queue costs the reference
  against a classic one (``compare.queue_types``).

Like for like: both request queues are classic (patterns.RPC declares a classic queue), and
the clients of both run on asyncio's event loop, as in a notebook. Each worker runs as it
ships: the reference worker on the command line's loop (``loop``, "auto": uvloop where it is
installed), patterns.RPC's on asyncio's. The two sides alternate point by point (see
``compare``) and each figure is the median over ``rounds`` rounds.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from .compare import interleaved, queue_types
from .designs import Design
from .grid import Bench
from .presets import Preset, Work

IO_20MS = Work("io-20ms", n=10, sleep_ms=20)
REFERENCE_PREFETCH = 16
"""Prefetch of the reference worker here: with prefetch 1 a worker idles for a broker round
trip (reply, ack, next delivery) between requests; patterns' worker has no limit."""


@dataclass
class Ratio:
    what: str
    ours: float
    theirs: float
    unit: str
    target: float
    higher_is_better: bool
    ours_label: str = "reference"
    theirs_label: str = "aio_pika.patterns.RPC"

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else float("nan")

    @property
    def met(self) -> bool:
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return (
            f"{self.what}: {self.ours_label} {self.ours:.1f} {self.unit}, {self.theirs_label} "
            f"{self.theirs:.1f} {self.unit}: ratio {self.ratio:.2f} (target {sign} "
            f"{self.target:g}: {'met' if self.met else 'NOT met'})"
        )


@dataclass
class Ratios:
    items: list[Ratio] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    prefetch: int = REFERENCE_PREFETCH
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # side -> role -> ms
    loop: str = "auto"
    durability: str = ""  # the queue-type comparison's line

    def describe(self) -> str:
        lines = [item.describe() for item in self.items]
        if self.durability:
            lines.append(self.durability)
        for label, roles in self.cpu.items():
            lines.append(
                f"CPU per call at C=64, {label}: broker {roles['broker']:.2f} ms, worker "
                f"{roles['worker']:.2f} ms, clients (load generators) {roles['clients']:.2f} ms"
            )
        machine = [row["cpu_machine"] for row in self.rows if row["kind"] == "design"]
        if machine:
            lines.append(
                "machine CPU during the trivial-work points: median "
                f"{statistics.median(machine):.0f}%"
                f" of {100 * (os.cpu_count() or 1)}% (busy machine: every side shares it)"
            )
        return "\n".join(lines)


def ratios(
    url: str | None = None,
    *,
    rounds: int = 6,
    warmup: float = 0.2,
    duration: float = 0.6,
    prefetch: int = REFERENCE_PREFETCH,
    loop: str = "auto",
    loadgens: int = 2,
    progress: bool = True,
    verbose: bool = True,
) -> Ratios:
    """Measure the three comparisons; returns the ratios and the summary rows they came from."""
    preset = Preset("ratios", clients=(), workers=(), works=(), warmup=warmup,
                    duration=duration, loadgens=loadgens, prefetch=prefetch)
    reference = Design("reference", "correlation-id", loop=loop, client_loop="asyncio",
                       prefetch=prefetch)
    patterns = Design("patterns.RPC", "patterns", server="patterns")
    with Bench(preset, url=url, progress=progress, verbose=verbose) as bench:
        ours, theirs = interleaved(bench, [reference, patterns], rounds=rounds,
                                   queue_type="classic")
        result = Ratios(prefetch=prefetch, loop=loop, rows=ours.rows + theirs.rows)
        result.items += [
            Ratio("throughput at C=64, W=1, trivial n", ours.throughput, theirs.throughput,
                  "calls/s", 1.5, True),
            Ratio("sequential C=1 p50 latency", ours.p50_ms, theirs.p50_ms, "ms", 0.8, False),
        ]
        result.cpu = {"reference": ours.cpu_ms, "patterns.RPC": theirs.cpu_ms}
        classic, quorum = queue_types(bench, rounds=rounds, many=64)
        result.rows += classic.rows + quorum.rows
        result.durability = (
            "what durability costs the reference (quorum vs classic request queue, "
            f"{rounds} interleaved rounds): p50 at C=1 {quorum.p50_ms / classic.p50_ms:.2f}x "
            f"({quorum.p50_ms:.2f} vs {classic.p50_ms:.2f} ms), throughput at C=64 "
            f"{quorum.throughput / classic.throughput:.2f}x, broker CPU per call "
            f"{quorum.cpu_ms['broker'] / classic.cpu_ms['broker']:.2f}x"
        )
        # Worker scaling is about processes: each worker holds one request (prefetch 1),
        # otherwise one asyncio worker would overlap the sleeps by itself.
        bench.preset = replace(bench.preset, prefetch=1)
        io = bench.closed_grid(works=[IO_20MS], workers=(1, 4), clients=(32,),
                               repeat=min(rounds, 3))
        rows = [point.row() for point in io]
        result.rows += rows
        one = [row["throughput"] for row in rows if row["workers"] == 1]
        four = [row["throughput"] for row in rows if row["workers"] == 4]
        result.items.append(
            Ratio("I/O-bound 20 ms at C=32, prefetch 1: throughput", statistics.median(four),
                  statistics.median(one), "calls/s", 3.5, True, ours_label="W=4",
                  theirs_label="W=1")
        )
        return result
