"""The speed targets of the reference client and worker, measured side by side in one run.

Printed as figures and ratios, never asserted in a timed test (a 2-core machine shared with
other work is too noisy for a pass/fail on speed):

* throughput at C=64, W=1, trivial n: the reference design vs ``aio_pika.patterns.RPC``
  with its own worker (target >= 1.5x);
* sequential (C=1) p50 latency: reference vs patterns (target <= 0.85x);
* I/O-bound work of 20 ms at C=32: W=4 throughput vs W=1 (target >= 3.5x).

Both sides run at once (each with its worker), and the measurement alternates between them
for ``rounds`` rounds and takes the median of each, so a burst of load from elsewhere on the
machine hits both sides alike.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .grid import TRIVIAL, Bench, Point, Preset, Work

IO_20MS = Work("io-20ms", n=10, sleep_ms=20)
REFERENCE_PREFETCH = 16
"""Prefetch of the reference worker here: with prefetch 1 a worker idles for a broker round
trip (reply confirm, ack, next delivery) between requests; patterns' worker has no limit."""


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

    def describe(self) -> str:
        lines = [item.describe() for item in self.items]
        for design, label in (("correlation-id", "reference"), ("patterns", "patterns.RPC")):
            busy = [
                r
                for r in self.rows
                if r["design"] == design and r["clients"] == 64 and r["throughput"] > 0
            ]
            if busy:

                def per_call(key: str, rows: list[dict[str, Any]] = busy) -> float:
                    return statistics.median(10 * r[key] / r["throughput"] for r in rows)

                lines.append(
                    f"CPU per call at C=64, {label}: broker {per_call('cpu_broker'):.2f} ms, "
                    f"worker {per_call('cpu_workers'):.2f} ms, clients (load generators) "
                    f"{per_call('cpu_loadgens'):.2f} ms"
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
    loadgens: int = 2,
    progress: bool = True,
    verbose: bool = True,
    bench: Bench | None = None,
) -> Ratios:
    """Measure the three comparisons; returns the ratios and the summary rows they came from."""
    preset = Preset(
        "ratios",
        clients=(),
        workers=(),
        works=(),
        warmup=warmup,
        duration=duration,
        loadgens=loadgens,
        prefetch=prefetch,
    )
    own = bench is None
    bench = bench or Bench(preset, url=url, progress=progress, verbose=verbose).__enter__()
    try:
        result = Ratios(prefetch=bench.preset.prefetch)

        def median(rows: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float]) -> float:
            return statistics.median(pick(row) for row in rows)

        ours_queue, theirs_queue = bench.queue("ratio-reference"), bench.queue("ratio-patterns")
        # Both workers stay up and the two sides alternate point by point, so a burst of
        # load from elsewhere on the machine lands on both alike.
        with (
            bench.workers(ours_queue, TRIVIAL, 1) as ours_workers,
            bench.workers(theirs_queue, TRIVIAL, 1, patterns=True) as theirs_workers,
        ):
            sides = [
                ("correlation-id", ours_queue, ours_workers),
                ("patterns", theirs_queue, theirs_workers),
            ]
            for clients, what, key, unit, target, higher in (
                (64, "throughput at C=64, W=1, trivial n", "throughput", "calls/s", 1.5, True),
                (1, "sequential C=1 p50 latency", "p50_ms", "ms", 0.85, False),
            ):
                measured: dict[str, list[dict[str, Any]]] = {"correlation-id": [], "patterns": []}
                with bench._progress(2 * rounds, f"ratios C={clients}"):
                    for round_ in range(rounds):
                        for design, queue, groups in sides[:: 1 if round_ % 2 == 0 else -1]:
                            point = Point(
                                "design",
                                design,
                                TRIVIAL,
                                1,
                                clients,
                                bench.preset.prefetch if design != "patterns" else 0,
                                math.nan,
                                bench.preset.warmup,
                                bench.preset.duration,
                            )
                            measured[design].append(bench.measure(point, queue, groups).row())
                ours, theirs = measured["correlation-id"], measured["patterns"]
                result.rows += ours + theirs
                result.items.append(
                    Ratio(
                        what,
                        median(ours, lambda r, key=key: r[key]),
                        median(theirs, lambda r, key=key: r[key]),
                        unit,
                        target,
                        higher,
                    )
                )
        # Worker scaling is about processes: each worker holds one request (prefetch 1),
        # otherwise one asyncio worker would overlap the sleeps by itself.
        trivial_preset, bench.preset = bench.preset, replace(bench.preset, prefetch=1)
        try:
            io = bench.closed_grid(
                works=[IO_20MS], workers=(1, 4), clients=(32,), repeat=min(rounds, 3)
            )
        finally:
            bench.preset = trivial_preset
        rows = [point.row() for point in io]
        result.rows += rows
        one = [row for row in rows if row["workers"] == 1]
        four = [row for row in rows if row["workers"] == 4]
        result.items.append(
            Ratio(
                "I/O-bound 20 ms at C=32, prefetch 1: throughput",
                median(four, lambda r: r["throughput"]),
                median(one, lambda r: r["throughput"]),
                "calls/s",
                3.5,
                True,
                ours_label="W=4",
                theirs_label="W=1",
            )
        )
        return result
    finally:
        if own:
            bench.close()
