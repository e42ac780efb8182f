"""What a run's points become for a reader: printed lines, text tables and CSV files."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .points import Point

CALL_COLUMNS = ("point", "kind", "design", "work", "workers", "clients", "prefetch", "offered",
                "client", "phase", "intended", "sent", "done", "latency", "error")

_DESCRIBE = (
    "{kind:6} {design:17} {work:9} W={workers:<2} C={clients:<3}{offer} {throughput:6.0f} "
    "calls/s  n={calls:<5} p50 {p50_ms:6.2f}  p90 {p90_ms:6.2f}  p99 {p99_ms:6.2f}  "
    "max {max_ms:6.2f} ms  Little {throughput:.0f}/s x {mean_ms:.2f} ms = {in_flight:.1f} "
    "vs L {in_system:.1f} ({littles:.2f})  cpu broker {cpu_broker:.0f}% workers "
    "{cpu_workers:.0f}% (peak {cpu_worker_peak:.0f}%) loadgen peak {cpu_loadgen_peak:.0f}% "
    "machine {cpu_machine:.0f}%: {bottleneck}  loadgen loop lag mean {loop_lag_mean_ms:.2f} "
    "worst {loop_lag_ms:.1f} ms"
)


def describe(row: dict[str, Any]) -> str:
    """One printed line per point: the figures, Little's check and whose CPU was busy."""
    offer = f" offered {row['offered']:5.0f}/s" if row["kind"] == "open" else ""
    line = _DESCRIBE.format(**row, offer=offer,
                            in_flight=row["throughput"] * row["mean_ms"] / 1e3)
    if row["loadgen_lagging"]:
        line += f" (LAGGING: {row['loadgen_share']:.0%} of the p50 may be load-generator delay)"
    return line + (f"  ERRORS {row['errors']}" if row["errors"] else "")


TABLE = (
    ("kind", "{:6}"), ("design", "{:17}"), ("work", "{:9}"), ("workers", "W={:<2}"),
    ("clients", "C={:<3}"), ("throughput", "{:6.0f}/s"),
    ("calls", "n={:<5}"),  # a p99 is read with the number of calls it comes from
    ("p50_ms", "p50 {:6.1f}"), ("p99_ms", "p99 {:6.1f} ms"), ("littles", "Little {:4.2f}"),
    ("cpu_machine", "machine CPU {:3.0f}%"),
)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = TABLE) -> str:
    """Rows as aligned text lines: what a person reads in a notebook cell."""
    return "\n".join("  ".join(fmt.format(row[key]) for key, fmt in columns) for row in rows)


def call_rows(points: Sequence[Point]) -> Iterator[dict[str, Any]]:
    """Every call of every point, one dict per call (the tidy CSV's rows)."""
    for index, point in enumerate(points):
        end = point.warmup + point.duration
        for call in point.records:
            phase = "measured" if point.warmup <= call.intended < end else "warmup"
            times = (round(t, 6) for t in (call.intended, call.sent, call.done, call.latency))
            yield dict(zip(CALL_COLUMNS, (index, point.kind, point.design, point.work.name,
                                          point.workers, point.clients, point.prefetch,
                                          point.offered, call.client, phase, *times, call.error),
                           strict=True))


def write_csv(path: Path, rows: Sequence[dict[str, Any]] | Iterator[dict[str, Any]],
              columns: Sequence[str] | None = None) -> None:
    """Dict rows as a CSV with a header (default: the first row's keys); no rows, no file."""
    rows = iter(rows)
    if (first := next(rows, None)) is None:
        return
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, list(columns or first))
        writer.writeheader()
        writer.writerow(first)
        writer.writerows(rows)


def save(points: Sequence[Point], folder: Path) -> Path:
    """Write calls.csv (every call) and summary.csv (one row per point); return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "calls.csv", call_rows(points), CALL_COLUMNS)
    write_csv(folder / "summary.csv", [point.row() for point in points])
    return folder
