"""Sentences chosen from the measured numbers, so a notebook's conclusion holds on any machine.

Each is picked from the figures of the run that prints it and from ``os.cpu_count()``: the same
cell reads right on a 2-core CI runner and on an 8-core laptop, and a test can make each lever win.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

# A ratio counts as a difference at 1.2x or more either way: short points vary that much.
CLEAR = 1.2


def best_throughput(rows: Sequence[dict[str, Any]], work: str) -> dict[int, float]:
    """The highest throughput of each worker count W for ``work`` (closed-loop rows)."""
    mine = sorted((row["workers"], row["throughput"]) for row in rows if row["work"] == work)
    return dict(mine)  # sorted: each W's highest comes last


def scaling(rows: Sequence[dict[str, Any]], work: str, cores: int | None, *,
            cpu_bound: bool) -> str:
    """How ``work``'s throughput grew with the workers, and where it stopped, in sentences;
    ``cpu_bound``: a worker needs a core for its work (not a sleep), which changes a stop."""
    best = best_throughput(rows, work)
    if len(best) < 2:
        raise ValueError(f"{work} needs points at two worker counts or more, got {list(best)}")
    counts = list(best)
    steps = [(a, b, best[b] / best[a] if best[a] else math.inf) for a, b in pairwise(counts)]
    figures = ", ".join(f"W = {w}: {best[w]:.0f}" for w in counts)
    ratios = ", ".join(f"{a} to {b}: {r:.2f}x" for a, b, r in steps)
    said = f"{work}, calls/s at the best C ({figures}); from W = {ratios}. "
    machine = f"this machine's {cores} core{'' if cores == 1 else 's'}"
    stop = next(((a, b) for a, b, r in steps if r < CLEAR), None)
    if stop is not None and any(r >= CLEAR for a, _, r in steps if a >= stop[1]):
        gained = ", ".join(f"{a} to {b}" for a, b, r in steps if r >= CLEAR)
        return said + (f"It grew from W = {gained} but not at every step: one step's point fell "
                       "short (on a busy machine a short point can), so measure longer (`bench "
                       "full`) before drawing the line.")
    if stop is None:
        said += f"It grew at every step, up to W = {counts[-1]}, the most measured"
        if cpu_bound and cores and counts[-1] > cores:
            said += (f", more workers than {machine}: with prefetch 1 a worker also waits a "
                     "round trip for its next request, and meanwhile another can use its core")
        return said + "."
    last, next_ = stop
    said += f"It stopped growing after W = {last} (less than {CLEAR:g}x per step)"
    if cpu_bound and cores and last >= cores:
        said += f": {last} workers can already keep {machine} busy, more only take turns"
    elif cpu_bound and cores:
        said += (f", below {machine}: the broker, the load generators and other programs use "
                 "cores too")
    elif not cpu_bound:
        said += ": sleeping workers need little CPU, so something else limited them"
    verdict = next((r["bottleneck"] for r in rows if r["work"] == work
                    and r["workers"] == next_ and r["throughput"] == best[next_]), "")
    return said + (f". At W = {next_}: {verdict}." if verdict else ".")


def percent(value: float) -> str:
    """A CPU figure for a sentence: ``'27%'``, or ``'not available'`` where it is NaN."""
    return "not available" if math.isnan(value) else f"{value:.0f}%"


def direction(ratio: float) -> int:
    """+1 when ``ratio`` is ``CLEAR`` or more, -1 when 1 / ``CLEAR`` or less, else 0 (NaN too)."""
    return 1 if ratio >= CLEAR else -1 if ratio <= 1 / CLEAR else 0


def verdict(throughput: float, p50: float) -> str:
    """Faster, slower, a trade or nothing clear: what was measured, never what a change is for."""
    if math.isnan(throughput) or math.isnan(p50):
        return "not compared here: a point had no measured call (a stall on a busy machine)"
    faster, quicker = direction(throughput), -direction(p50)
    words = ({1: "more calls/s", -1: "fewer calls/s"}.get(faster),
             {1: "a lower p50", -1: "a higher p50"}.get(quicker))
    said = ", ".join(word for word in words if word)
    if faster == quicker == 0:
        return f"no clear difference here (within {CLEAR:g}x either way)"
    if faster >= 0 and quicker >= 0:
        return f"faster here ({said})"
    if faster <= 0 and quicker <= 0:
        return f"slower here ({said})"
    return f"a trade here ({said})"


def versus(name: str, other: str, throughput: float, p50: float, many: int) -> str:
    """``name``'s throughput and p50 as multiples of ``other``'s, and their ``verdict``."""
    return (f"{name}: {throughput:.2f}x the calls/s of {other} at C={many}, "
            f"{p50:.2f}x its p50 at C=1: {verdict(throughput, p50)}")


def compute_share(rows: Sequence[dict[str, Any]], work: str, compute_ms: float) -> str:
    """How much of ``work``'s machine CPU per call, at its busiest point, is its computation."""
    mine = [row for row in rows if row["work"] == work and row["throughput"] > 0]
    if not mine:
        raise ValueError(f"no measured points of {work}: run the closed grid first")
    busiest = max(mine, key=lambda row: (row["workers"], row["clients"]))
    if math.isnan(busiest["cpu_machine"]):
        return f"{work}: the machine's CPU could not be read here, so its share is unknown"
    per_call = busiest["cpu_machine"] * 10 / busiest["throughput"]
    share = compute_ms / per_call
    part = "most of a call is messaging" if share < 0.5 else "most of a call is computing"
    return (f"{work} at W = {busiest['workers']}, C = {busiest['clients']}: a call cost the "
            f"machine {per_call:.1f} ms of CPU (broker, worker, client), of which the "
            f"computation is {compute_ms:.1f} ms ({share:.0%}): {part}")
