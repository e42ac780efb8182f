"""The benchmark harness end to end on a tiny grid, against the real broker (no timing asserted)."""

from __future__ import annotations

import asyncio
import csv
import math
import subprocess
import time
import uuid

import pytest

from fibrpc_helpers.bench import grid
from fibrpc_helpers.bench.designs import DESIGNS, design
from fibrpc_helpers.bench.grid import Bench
from fibrpc_helpers.bench.loadgen import Generator, LoadGenerators, idle_slack
from fibrpc_helpers.bench.points import LAG_SHARE, Call, LoopLag, Point
from fibrpc_helpers.bench.presets import Preset, Work
from fibrpc_helpers.bench.reports import CALL_COLUMNS, describe
from fibrpc_helpers.lab.runtime import ProcessGroup

IO_5MS = Work("io-5ms", n=7, sleep_ms=5)


@pytest.fixture
def bench(url: str, tmp_path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(grid, "RESULTS", tmp_path)
    preset = Preset(
        "test",
        clients=(3,),
        workers=(1,),
        works=(IO_5MS,),
        warmup=0.3,
        duration=1.0,
        open_workers=1,
        open_work=IO_5MS,
        open_loads=(0.5,),
        design_clients=(2,),
    )
    with Bench(preset, url=url, progress=False, verbose=False) as bench:
        yield bench


def test_closed_loop_records_every_call_and_excludes_the_warmup(bench: Bench) -> None:
    (point,) = bench.closed_grid()
    assert point.records and all(call.error == "" for call in point.records)
    assert {call.client for call in point.records} == {0, 1, 2}  # every client called
    warmup = [call for call in point.records if call.intended < point.warmup]
    assert warmup and not set(warmup) & set(point.measured())
    for call in point.records:
        assert call.intended == call.sent <= call.done  # closed loop: sent when intended
    row = point.row()
    assert row["calls"] == len(point.measured())
    assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["p50_ms"] >= 5  # nobody answers faster than the worker's sleep
    assert 0.3 < row["littles"] < 2.0  # closed loop: throughput x latency ~ C (loosely)
    assert row["cpu_workers"] >= 0 and row["bottleneck"]


def test_open_loop_measures_from_the_intended_send_time(bench: Bench) -> None:
    (point,) = bench.open_loop(service_ms=5.0)
    assert point.offered == pytest.approx(100.0)  # half of W / S = 1 / 5 ms
    assert point.records
    for call in point.records:
        assert call.error == "" and call.intended <= call.sent + 0.001 and call.sent <= call.done
    row = point.row()
    latencies = point.latencies()
    assert min(latencies) >= 0.005 and row["calls"] == len(latencies)
    assert not math.isnan(row["in_system"])


def test_designs_all_answer_and_the_csv_is_tidy(bench: Bench) -> None:
    points = bench.designs(clients=(2,))
    assert [p.design for p in points] == list(DESIGNS)
    for point in points:
        assert point.row()["calls"] > 0 and point.row()["errors"] == 0, point.design
    folder = bench.save()
    with open(folder / "calls.csv", newline="") as calls:
        rows = list(csv.DictReader(calls))
    assert tuple(rows[0]) == CALL_COLUMNS
    assert len(rows) == sum(len(p.records) for p in points)
    assert {row["phase"] for row in rows} == {"warmup", "measured"}
    with open(folder / "summary.csv", newline="") as summary:
        assert len(list(csv.DictReader(summary))) == len(points)


def test_each_point_reports_its_load_generators_event_loop_lag(bench: Bench) -> None:
    (point,) = bench.closed_grid(works=[IO_5MS], workers=(1,), clients=(2,))
    assert len(point.loop_lags) == 2  # one figure per load-generator process that ran clients
    row = point.row()
    assert 0 <= row["loop_lag_mean_ms"] <= row["loop_lag_ms"] < 1000
    assert row["loadgen_share"] == pytest.approx(row["loop_lag_mean_ms"] / row["p50_ms"])
    assert row["loadgen_lagging"] == (row["loadgen_share"] >= LAG_SHARE)
    assert "loadgen loop lag" in describe(row)


def _point(lag_ms: float) -> Point:
    """A closed point of 10 calls of 10 ms each, its load generator lagging ``lag_ms``."""
    records = [Call(0, 0.1 + i * 0.01, 0.1 + i * 0.01, 0.11 + i * 0.01) for i in range(10)]
    point = Point(kind="closed", design="correlation-id", work=IO_5MS, workers=1, clients=1,
                  prefetch=1, warmup=0.1, duration=0.1, records=records)
    point.loop_lags = [LoopLag(worst=0.02, mean=0.0), LoopLag(worst=0.005, mean=lag_ms / 1e3)]
    return point


def test_a_point_is_flagged_only_when_the_lag_is_a_sizeable_share_of_its_p50() -> None:
    calm, lagging = _point(0.5).row(), _point(2.0).row()
    assert calm["p50_ms"] == pytest.approx(10)
    assert calm["loop_lag_ms"] == pytest.approx(20)  # one long stall alone flags nothing
    assert calm["loadgen_share"] == pytest.approx(0.05) and not calm["loadgen_lagging"]
    assert lagging["loadgen_share"] == pytest.approx(0.2) and lagging["loadgen_lagging"]
    assert "20% of the p50 may be load-generator delay" in describe(lagging)


async def test_the_lag_ticker_sees_a_blocked_event_loop_beyond_its_idle_slack() -> None:
    slack = await idle_slack(ticks=10)
    assert 0 <= slack < 0.05
    t0 = time.monotonic()
    ticker = asyncio.create_task(Generator(None, slack=slack)._lag(t0, 0.0, 0.1))
    await asyncio.sleep(0.02)
    time.sleep(0.04)  # noqa: ASYNC251 - blocks the event loop on purpose: the lag to measure
    lag = await ticker
    assert lag.worst >= 0.02 and 0 < lag.mean <= lag.worst


def _process_file(pid: int, name: str) -> list[bytes]:
    with open(f"/proc/{pid}/{name}", "rb") as file:  # Linux's view of a process
        return file.read().split(b"\0")


@pytest.mark.parametrize("name", ["correlation-id", "patterns", "raw-aiormq"])
def test_benchmark_processes_find_the_broker_in_their_environment_not_their_command_line(
    url: str, name: str
) -> None:
    """A command line is public (``ps``), so a URL with its password never goes there."""
    group = ProcessGroup(stderr=subprocess.DEVNULL)
    workers = grid.Workers(group, url=url, queue=f"test.env.{uuid.uuid4().hex[:8]}",
                           design=design(name), work=IO_5MS, prefetch=1, queue_type="classic")
    with group, LoadGenerators(1, url) as generators:
        workers.grow(1)
        for pid in (workers.pids[0], generators.pids[0]):
            assert not any(b"amqp://" in part for part in _process_file(pid, "cmdline"))
            assert f"AMQP_URL={url}".encode() in _process_file(pid, "environ")
    grid.delete_queues(url, [workers.queue])
