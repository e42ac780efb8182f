"""Sentences chosen from the measured numbers, so a notebook's conclusion holds on any machine.

A sentence typed into a notebook ("W = 4 does no better than W = 2") is true of the machine
it was written on. These functions pick the sentence from the rows of the run that printed
them and from ``os.cpu_count()``, so the same cell reads right on a 2-core CI runner and on
an 8-core laptop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

GROWTH = 1.2
"""A step from W to more workers counts as a gain at 1.2x the throughput or more: short
points on a shared machine vary by about that much between runs."""


def best_throughput(rows: Sequence[dict[str, Any]], work: str) -> dict[int, float]:
    """The highest throughput of each worker count W for ``work`` (closed-loop rows)."""
    best: dict[int, float] = {}
    for row in rows:
        if row["work"] == work:
            best[row["workers"]] = max(best.get(row["workers"], 0.0), row["throughput"])
    return dict(sorted(best.items()))


def scaling(
    rows: Sequence[dict[str, Any]], work: str, cores: int | None, *, cpu_bound: bool
) -> str:
    """How ``work``'s throughput grew with the workers, and where it stopped, in sentences.

    ``cores`` is ``os.cpu_count()``; ``cpu_bound`` says whether a worker needs a core for
    its work (the recursive fib) or mostly waits (a sleep), which changes what a stop means.
    """
    best = best_throughput(rows, work)
    if len(best) < 2:
        raise ValueError(f"{work} needs points at two worker counts or more, got {list(best)}")
    counts = list(best)
    pairs = zip(counts, counts[1:], strict=False)
    steps = [(a, b, best[b] / best[a] if best[a] else math.inf) for a, b in pairs]
    figures = ", ".join(f"W = {w}: {best[w]:.0f}" for w in counts)
    ratios = ", ".join(f"{a} to {b}: {r:.2f}x" for a, b, r in steps)
    said = f"{work}, calls/s at the best C ({figures}); from W = {ratios}. "
    machine = f"this machine's {cores} core{'' if cores == 1 else 's'}"
    stop = next(((a, b) for a, b, r in steps if r < GROWTH), None)
    if stop is None:
        said += f"It grew at every step, up to W = {counts[-1]}, the most measured"
        if cpu_bound and cores and counts[-1] > cores:
            said += (
                f", more workers than {machine}: with prefetch 1 a worker also waits a round "
                "trip for its next request, and meanwhile another can use its core"
            )
        return said + "."
    last, next_ = stop
    said += f"It stopped growing after W = {last} (less than {GROWTH:g}x per step)"
    if cpu_bound and cores and last >= cores:
        said += f": {last} workers can already keep {machine} busy, more only take turns"
    elif cpu_bound and cores:
        said += f", below {machine}: the broker, the load generators and other programs use"
        said += " cores too"
    elif not cpu_bound:
        said += ": sleeping workers need little CPU, so something else limited them"
    verdict = next(
        (r["bottleneck"] for r in rows if r["work"] == work and r["workers"] == next_
         and r["throughput"] == best[next_]),
        "",
    )
    return said + (f". At W = {next_}: {verdict}." if verdict else ".")


def percent(value: float) -> str:
    """A CPU figure for a sentence: ``'27%'``, or ``'not available'`` where it is NaN."""
    return "not available" if math.isnan(value) else f"{value:.0f}%"
