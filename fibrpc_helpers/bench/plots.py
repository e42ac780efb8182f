"""The figures of the latency notebook, from the summary rows (``Point.row()``) of a run.

Made without pyplot, so a notebook shows each once (as the cell's value) and none stays open."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from .stats import mdc_latency, mmc_latency, percentile

Row = dict[str, Any]

# Candidate tick values per decade on a log axis, from sparse to dense.
_LOG_STEPS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))


def log_ticks(values: Sequence[float]) -> list[float]:
    """A few round values spanning ``values`` for a log axis: the sparsest series (1, 2, 5...)
    giving four to six ticks, else three; too narrow for three, evenly spaced (94, 96, 98)."""
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    if not finite:
        return []
    low, high = min(finite), max(finite)
    decades = range(math.floor(math.log10(low)), math.floor(math.log10(high)) + 1)
    series = [[float(f"{step * 10.0**decade:.6g}") for decade in decades for step in steps
               if low <= step * 10.0**decade <= high] for steps in _LOG_STEPS]
    fitting = [t for t in series if 4 <= len(t) <= 6] + [t for t in series if len(t) >= 3]
    if fitting:
        return fitting[0]
    for bins in (5, 10):
        even = MaxNLocator(nbins=bins, steps=[1, 2, 5, 10]).tick_values(low, high)
        ticks = [float(f"{v:.6g}") for v in even if low <= v <= high]
        if len(ticks) >= 3:
            break
    return ticks


def _label_log(axis: Axis, values: Sequence[float]) -> None:
    """Label a log axis at a few round values, as plain numbers (16, never 1.6 x 10^1)."""
    axis.set_major_locator(FixedLocator(log_ticks(values)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _select(rows: Sequence[Row], **match: Any) -> list[Row]:
    return [row for row in rows if all(row[key] == value for key, value in match.items())]


def _against_clients(axis: Axes, grid: Sequence[Row], key: str) -> dict[int, Line2D]:
    """One line of ``key`` against clients per worker count, labelled at the measured counts."""
    drawn: dict[int, Line2D] = {}
    for workers in sorted({r["workers"] for r in grid}):
        line = sorted((r for r in grid if r["workers"] == workers), key=lambda r: r["clients"])
        (drawn[workers],) = axis.plot([r["clients"] for r in line], [r[key] for r in line], "o-",
                                      label=f"W={workers}")
    axis.set(xscale="log", xlabel="concurrent clients C")
    axis.xaxis.set_major_locator(FixedLocator(sorted({r["clients"] for r in grid})))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0f}"))
    axis.xaxis.set_minor_locator(NullLocator())
    return drawn


def _title(key: str, rows: Sequence[Row]) -> str:
    """A percentile's name, and the fewest calls behind it when a p99 is only the max."""
    name = key.split("_")[0]
    fewest = min((r["calls"] for r in rows), default=0)
    if name == "p99" and fewest < 100:
        return f"p99 (some points: only {fewest} calls, so p99 = max)"
    return name


def percentiles_vs_clients(rows: Sequence[Row], work: str) -> Figure:
    """p50, p90 and p99 against clients, one line per worker count, log-log axes."""
    grid = _select(rows, kind="closed", work=work)
    fig = Figure(figsize=(12, 3.6), layout="tight")
    axes = fig.subplots(1, 3, sharey=True)
    keys = ("p50_ms", "p90_ms", "p99_ms")
    for axis, key in zip(axes, keys, strict=True):
        _against_clients(axis, grid, key)
        axis.set(yscale="log", title=_title(key, grid))
        _label_log(axis.yaxis, [r[k] for r in grid for k in keys])
        axis.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("latency (ms)")
    axes[-1].legend(title="workers")
    fig.suptitle(f"Latency percentiles vs clients ({work})")
    return fig


def throughput_vs_clients(rows: Sequence[Row], work: str,
                          service_ms: float | None = None) -> Figure:
    """Throughput against clients per worker count; dashed: the ceiling W / S when S is known."""
    grid = _select(rows, kind="closed", work=work)
    fig = Figure(figsize=(6.5, 3.8), layout="tight")
    axis = fig.subplots()
    for workers, drawn in _against_clients(axis, grid, "throughput").items():
        if service_ms:
            axis.axhline(workers / (service_ms / 1000), color=drawn.get_color(), ls="--", lw=1)
    ceiling = f"; dashed: ceiling W/S, S = {service_ms:g} ms" if service_ms else ""
    axis.set(ylabel="calls per second", title=f"Throughput vs clients ({work}){ceiling}")
    axis.set_ylim(bottom=0)  # from zero: a few percent of noise must not look like a trend
    axis.grid(True, alpha=0.3)
    axis.legend(title="workers")
    return fig


def latency_vs_load(rows: Sequence[Row], service_ms: float) -> Figure:
    """Open loop: measured latency against the arrival rate achieved (a short Poisson schedule
    lands off its offered target), beside the M/D/c and M/M/c means."""
    points = sorted(_select(rows, kind="open"), key=lambda r: r["offered"])
    if not points:
        raise ValueError("no open-loop rows: run bench.open_loop() first")
    servers = points[0]["workers"]
    capacity = servers / (service_ms / 1000)
    fig = Figure(figsize=(6.5, 3.8), layout="tight")
    axis = fig.subplots()
    arrived = [r.get("arrivals", r["offered"]) for r in points]
    calls = sorted(r["calls"] for r in points)
    tail = f"measured p99 (of {calls[0]}–{calls[-1]} calls"
    tail += ": ≈ the slowest)" if calls[0] < 100 else ")"
    axis.plot(arrived, [r["mean_ms"] for r in points], "o-", label="measured mean")
    axis.plot(arrived, [r["p99_ms"] for r in points], "s:", label=tail)
    for x, r in zip(arrived, points, strict=True):
        axis.annotate(f"offered {r['offered']:.0f}/s", (x, r["mean_ms"]), xytext=(0, -12),
                      textcoords="offset points", ha="center", fontsize=7, color="dimgrey")
    model = [capacity * k / 100 for k in range(1, 97)]
    for latency, style, colour, name in ((mdc_latency, "-", "black", "D"),
                                         (mmc_latency, "--", "grey", "M")):
        axis.plot(model, [latency(x, service_ms / 1000, servers) * 1000 for x in model], style,
                  color=colour, lw=1, label=f"M/{name}/{servers} mean (model)")
    axis.axvline(capacity, color="red", lw=1, ls=":", label=f"capacity W/S = {capacity:.0f}/s")
    axis.set(xlabel="arrival rate (calls per second, Poisson; measured)",
             ylabel="latency (ms)", yscale="log",
             title=f"Open loop, W={servers}, S = {service_ms:.1f} ms per call per worker at "
             "saturation")
    _label_log(axis.yaxis, axis.get_ylim())
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=8)
    return fig


def cdf(latencies: dict[str, Sequence[float]]) -> Figure:
    """Empirical CDF of each labelled list of latencies (seconds), log latency axis."""
    fig = Figure(figsize=(6.5, 3.8), layout="tight")
    axis = fig.subplots()
    every: list[float] = []
    for label, values in latencies.items():
        ordered = sorted(v * 1000 for v in values)
        every += ordered
        axis.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post",
                  label=f"{label} ({len(ordered)} calls)")
    only = [v * 1000 for v in next(iter(latencies.values()))] if len(latencies) == 1 else []
    for p in (0.5, 0.9, 0.99):
        axis.axhline(p, color="grey", lw=0.6, ls=":")
        text = f"p{p * 100:.0f}" + (f" = {percentile(only, p * 100):.0f} ms" if only else "")
        if only and p == 0.99 and len(only) < 100:  # nearest rank: p99 of < 100 calls is the max
            text += f" (the slowest of {len(only)} calls)"
        axis.text(0.01, p, text, transform=axis.get_yaxis_transform(), fontsize=8,
                  color="dimgrey", va="bottom")
    axis.set(xscale="log", xlabel="latency (ms)", ylabel="fraction of calls <= latency",
             title="Latency distribution (CDF)")
    _label_log(axis.xaxis, every)
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(True, which="major", alpha=0.3)
    return fig


def designs_bar(rows: Sequence[Row]) -> Figure:
    """p50 at the fewest clients and throughput at the most, one bar per design."""
    points = _select(rows, kind="design")
    designs = list(dict.fromkeys(r["design"] for r in points))
    few, many = min(r["clients"] for r in points), max(r["clients"] for r in points)
    fig = Figure(figsize=(11, 3.6), layout="tight")
    left, right = fig.subplots(1, 2)
    colors = [f"C{i}" for i in range(len(designs))]
    left.bar(designs, [_select(points, design=d, clients=few)[0]["p50_ms"] for d in designs],
             color=colors)
    left.set(ylabel="p50 latency (ms)", title=f"p50 latency, C={few} (lower is better)")
    right.bar(designs, [_select(points, design=d, clients=many)[0]["throughput"]
                        for d in designs], color=colors)
    right.set(ylabel="calls per second", title=f"throughput, C={many} (higher is better)")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=15)
        axis.grid(True, axis="y", alpha=0.3)
    return fig


def save_all(rows: Sequence[Row], folder: Path | str, *, service_ms: dict[str, float],
             open_service_ms: float | None = None,
             cdfs: dict[str, Sequence[float]] | None = None) -> list[Path]:
    """Draw every figure the rows allow and write them as PNG files; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Figure] = {}
    for work in dict.fromkeys(r["work"] for r in rows if r["kind"] == "closed"):
        figures[f"percentiles-{work}"] = percentiles_vs_clients(rows, work)
        figures[f"throughput-{work}"] = throughput_vs_clients(rows, work, service_ms.get(work))
    if open_service_ms and _select(rows, kind="open"):
        figures["latency-vs-load"] = latency_vs_load(rows, open_service_ms)
    if cdfs:
        figures["cdf"] = cdf(cdfs)
    if _select(rows, kind="design"):
        figures["designs"] = designs_bar(rows)
    for name, figure in figures.items():
        figure.savefig(folder / f"{name}.png", dpi=100)
    return [folder / f"{name}.png" for name in figures]


def ladder_bars(ladder: Any) -> Figure:
    """A ``ladder.Ladder``: each rung's figures as multiples of patterns.RPC's, CPU per call."""
    rungs = [ladder.baseline, *ladder.rungs]
    names = [figures.design.name for figures in rungs]
    rates, p50s = zip(*(ladder.ratios(figures) for figures in rungs), strict=True)
    fig = Figure(figsize=(12, 3.8), layout="tight")
    left, middle, right = fig.subplots(1, 3)
    colors = ["0.6"] + [f"C{i}" for i in range(len(rungs) - 1)]
    left.set(xlabel="× patterns.RPC", title=f"throughput, C={ladder.many} (higher is better)")
    middle.set(xlabel="× patterns.RPC", title="p50 latency, C=1 (lower is better)")
    for axis, values in ((left, rates), (middle, p50s)):
        axis.barh(names, values, color=colors)
        axis.axvline(1.0, color="0.3", linestyle="--", linewidth=1)
        axis.invert_yaxis()
        axis.grid(True, axis="x", alpha=0.3)
        for y, value in enumerate(values):
            axis.annotate(f"{value:.2f}x", (value, y), xytext=(3, 0),
                          textcoords="offset points", va="center", fontsize=8)
        axis.set_xlim(0, max(values) * 1.25)
    left_edge = [0.0] * len(rungs)
    for role, color in (("clients", "C0"), ("worker", "C1"), ("broker", "C2")):
        values = [figures.cpu_ms[role] * 1000 for figures in rungs]
        right.barh(names, values, left=left_edge, color=color, label=role)
        left_edge = [a + b for a, b in zip(left_edge, values, strict=True)]
    right.set(xlabel="CPU µs per call", title=f"CPU per call at C={ladder.many}")
    for axis in (middle, right):
        axis.set_yticklabels([])
    right.invert_yaxis()
    right.legend(fontsize=8, loc="lower right")
    right.grid(True, axis="x", alpha=0.3)
    return fig
