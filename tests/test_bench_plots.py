"""The benchmark's figures read well: ticks at measured values, plain labels, honest axes."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from fibrpc_helpers.bench.plots import (
    cdf,
    log_ticks,
    percentiles_vs_clients,
    throughput_vs_clients,
)
from fibrpc_helpers.bench.presets import PRESETS, TRIVIAL, Work


def _rows() -> list[dict[str, Any]]:
    rows = []
    for workers in (1, 2, 4):
        for clients in (1, 4, 16):
            latency = 12.0 * max(1.0, clients / workers)
            rows.append(
                {
                    "kind": "closed",
                    "work": "io-10ms",
                    "workers": workers,
                    "clients": clients,
                    "p50_ms": latency,
                    "p90_ms": latency * 1.1,
                    "p99_ms": latency * 1.3,
                    "throughput": 1000 + workers,  # nearly flat: must not look like a trend
                    "calls": 20 * workers,
                }
            )
    return rows


def _labels(figure: Figure, axis: int = 0, which: str = "x") -> list[str]:
    figure.canvas.draw()  # tick labels are formatted when drawn
    ax = figure.axes[axis]
    ticks = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks if t.get_text()]


def test_log_ticks_are_few_round_values_inside_the_range() -> None:
    assert log_ticks([10, 200]) == [10, 20, 50, 100, 200]
    assert log_ticks([1.2, 3]) == [1.5, 2, 3]
    assert log_ticks([0.5, 2000]) == [1, 10, 100, 1000]
    assert log_ticks([14, 197]) == [20, 50, 100]  # 15, 20, 30, 50, 70, 100, 150 is a crowd
    assert log_ticks([93.4, 101.5]) == [94, 96, 98, 100]  # too narrow: evenly spaced
    assert log_ticks([94.3, 99.6]) == [95, 96, 97, 98, 99]
    assert log_ticks([]) == []


def test_clients_axis_is_labelled_at_the_measured_counts_only() -> None:
    figure = percentiles_vs_clients(_rows(), "io-10ms")
    assert _labels(figure) == ["1", "4", "16"]
    assert all(not t.get_text() for t in figure.axes[0].get_xminorticklabels())
    y = _labels(figure, which="y")
    assert y and all("10^" not in t and "$" not in t for t in y), y
    assert all(not t.get_text() for t in figure.axes[0].get_yminorticklabels())


def test_throughput_axis_starts_at_zero() -> None:
    figure = throughput_vs_clients(_rows(), "io-10ms", service_ms=10)
    assert figure.axes[0].get_ylim()[0] == 0
    assert _labels(figure) == ["1", "4", "16"]


def test_cdf_has_plain_ms_labels_and_named_percentile_lines() -> None:
    figure = cdf({"one": [0.080 + i * 0.0002 for i in range(100)]})
    labels = _labels(figure)
    assert labels and all("$" not in t and "10^" not in t for t in labels), labels
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert [t.split(" ")[0] for t in texts] == ["p50", "p90", "p99"]
    assert texts[0] == "p50 = 90 ms"  # nearest rank: the 50th of 80.0, 80.2, ... ms


def test_quick_preset_measures_cpu_bound_points_longer() -> None:
    quick = PRESETS["quick"]
    cpu = Work("cpu", n=18, work="recursive")
    assert quick.window(TRIVIAL) == (quick.warmup, quick.duration)
    assert quick.window(cpu)[1] > quick.duration
    full = PRESETS["full"]
    assert full.window(cpu) == (full.warmup, full.duration)  # unset: the common window


def test_p99_of_few_calls_says_how_few() -> None:
    figure = percentiles_vs_clients(_rows(), "io-10ms")
    assert "20 calls" in figure.axes[2].get_title()  # the p99 panel
    assert figure.axes[0].get_title() == "p50"


def _closed_point(workers: int, clients: int, calls: int, latency: float) -> Any:
    """A closed point of io-10ms whose ``calls`` calls of ``latency`` s fill a 1 s window."""
    from fibrpc_helpers.bench.points import Call, Point

    io = Work("io-10ms", sleep_ms=10)
    point = Point(kind="closed", design="correlation-id", work=io, workers=workers,
                  clients=clients, prefetch=1, warmup=0.0, duration=1.0)
    point.records = [Call(0, i / calls, i / calls, i / calls + latency) for i in range(calls)]
    return point


def test_service_time_is_per_worker_time_at_saturation_not_a_lone_round_trip() -> None:
    from types import SimpleNamespace

    from fibrpc_helpers.bench.grid import Bench

    points = [
        _closed_point(1, 1, 80, 0.0125),  # a lone call: 12.5 ms round trip
        _closed_point(1, 16, 90, 0.18),
        _closed_point(4, 1, 80, 0.0125),
        _closed_point(4, 16, 360, 0.045),  # saturated: 4 workers, 360 calls/s
    ]
    bench = SimpleNamespace(points=points, preset=PRESETS["quick"])  # open loop: W=4
    io = Work("io-10ms", sleep_ms=10)
    s = Bench.service_ms(bench, io)  # type: ignore[arg-type]
    assert s == 4 * 1000 / 360  # 11.1 ms, so W / S = 360/s: the measured throughput
    assert Bench.service_ms(bench, io, workers=1) == 1000 / 90  # type: ignore[arg-type]
    unmeasured = SimpleNamespace(points=[], preset=PRESETS["quick"])
    assert Bench.service_ms(unmeasured, io) == 10  # type: ignore[arg-type]  # its sleep


def test_open_loop_points_sit_at_the_measured_arrival_rate() -> None:
    from fibrpc_helpers.bench.plots import latency_vs_load

    rows = [
        {
            "kind": "open",
            "workers": 4,
            "offered": offered,
            "arrivals": arrived,
            "calls": 60,
            "mean_ms": 12.0,
            "p99_ms": 20.0,
        }
        for offered, arrived in ((100, 96), (200, 215))
    ]
    figure = latency_vs_load(rows, 11.0)
    axis = figure.axes[0]
    assert list(axis.lines[0].get_xdata()) == [96, 215]
    notes = [t.get_text() for t in axis.texts]
    assert notes == ["offered 100/s", "offered 200/s"]
    assert "60" in axis.lines[1].get_label()  # the p99 says how many calls it comes from
