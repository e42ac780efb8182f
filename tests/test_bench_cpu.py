"""Whose CPU was busy: the verdicts from known inputs, psutil's readings themselves, and a
machine where they cannot be read, where the figures are unknown and the report says so."""

from __future__ import annotations

import math
import os
import time
from urllib.parse import urlparse

import psutil
import pytest

from fibrpc_helpers.bench import cpu
from fibrpc_helpers.bench.cpu import CpuMeter, CpuUse, broker_pid, process_cpu_seconds
from fibrpc_helpers.bench.points import Call, Point
from fibrpc_helpers.bench.presets import Work
from fibrpc_helpers.bench.reports import describe

needs_cpu = pytest.mark.skipif(not cpu.available(), reason="CPU times cannot be read here")


def test_verdict_names_the_saturated_role() -> None:
    use = CpuUse(
        1.0,
        roles={"broker": [40.0], "workers": [97.0], "load generators": [20.0]},
        machine=160.0,
        cores=2,
    )
    assert use.bottleneck() == "workers CPU-bound"


def test_verdict_when_the_machine_is_full_says_who_used_it() -> None:
    use = CpuUse(
        1.0,
        roles={"broker": [50.0], "workers": [40.0], "load generators": [30.0]},
        machine=196.0,
        cores=2,
    )
    verdict = use.bottleneck()
    assert verdict.startswith("machine CPU full") and "other programs 76%" in verdict


def test_verdict_when_nothing_is_busy() -> None:
    use = CpuUse(1.0, roles={"broker": [5.0], "workers": [3.0, 4.0]}, machine=20.0, cores=2)
    assert use.bottleneck().startswith("no CPU saturated")
    assert use.total("workers") == 7.0 and use.peak("workers") == 4.0


@needs_cpu
def test_process_cpu_grows_with_work_and_a_gone_process_is_none() -> None:
    meter = CpuMeter({"me": [os.getpid()]})
    meter.start()
    before = process_cpu_seconds(os.getpid())
    total = 0
    while process_cpu_seconds(os.getpid()) - before < 0.05:  # burn 50 ms of CPU
        total += sum(range(1000))
    use = meter.stop()
    assert use.total("me") > 0 and use.machine > 0
    assert process_cpu_seconds(2**22 + 12345) is None


@needs_cpu
def test_process_cpu_is_user_plus_system_time_as_the_os_counts_it() -> None:
    """Our own process, read through psutil and through os.times, agree (within a tick or two)."""
    mine = os.times()
    read = process_cpu_seconds(os.getpid())
    assert read is not None and read == pytest.approx(mine.user + mine.system, abs=0.05)


@needs_cpu
def test_machine_cpu_counts_every_core_and_busy_is_part_of_it() -> None:
    started = time.monotonic()
    first = cpu.machine_cpu_seconds()
    time.sleep(1.0)
    second = cpu.machine_cpu_seconds()
    elapsed = time.monotonic() - started
    assert first is not None and second is not None
    busy, total = second[0] - first[0], second[1] - first[1]
    assert 0 <= busy <= total + 1e-6  # idle time 0: equal but for rounding
    cores = psutil.cpu_count() or 1
    # every core's seconds, not one's; wide bounds, as a virtual machine's kernel may lose
    # ticks (10 ms each) or count stolen time twice
    assert 0.6 * elapsed * cores <= total <= (elapsed + 0.25) * cores, (total, elapsed, cores)


@needs_cpu
def test_the_local_broker_is_found(url: str) -> None:
    where = urlparse(url)
    if where.hostname not in ("localhost", "127.0.0.1", "::1"):
        pytest.skip("the broker runs on another machine: its CPU cannot be read here")
    pid = broker_pid(where.port or 5672)
    assert pid is not None, "the broker of the test suite runs on this machine"
    assert psutil.Process(pid).name() == "beam.smp"
    assert any(c.pid == pid and c.laddr.port == (where.port or 5672)
               for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN)


def test_a_role_without_readings_is_unknown_not_idle() -> None:
    """A remote broker has no pid here: its CPU is NaN, and the verdict still comes out."""
    use = CpuUse(1.0, roles={"broker": [], "workers": [97.0]}, machine=120.0, cores=2)
    assert math.isnan(use.total("broker")) and math.isnan(use.peak("broker"))
    assert use.bottleneck() == "workers CPU-bound"


def test_where_nothing_can_be_read_the_bench_reports_cpu_as_not_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A machine whose CPU times psutil cannot read (a container without /proc): every
    reading is unknown and the report says so."""

    def refused(*args: object, **kwargs: object) -> None:
        raise psutil.AccessDenied()

    for name in ("cpu_times", "Process", "net_connections", "process_iter"):
        monkeypatch.setattr(psutil, name, refused)
    assert not cpu.available()
    assert process_cpu_seconds(os.getpid()) is None and broker_pid(5672) is None
    meter = CpuMeter({"broker": [broker_pid(5672)], "workers": [os.getpid()]})
    meter.start()
    use = meter.stop()
    assert not use.available and math.isnan(use.machine) and math.isnan(use.total("workers"))
    assert use.bottleneck() == cpu.NOT_AVAILABLE
    work = Work("io-1ms", sleep_ms=1)
    point = Point(kind="closed", design="reference", work=work, workers=1, clients=1,
                  prefetch=1, offered=math.nan, warmup=0.0, duration=1.0, cpu=use)
    point.records.append(Call(0, 0.1, 0.1, 0.102))  # one call: client, intended, sent, done
    row = point.row()  # a report row with CPU unknown: NaN figures, the reason as verdict
    assert math.isnan(row["cpu_workers"]) and math.isnan(row["cpu_machine"])
    assert row["bottleneck"] == cpu.NOT_AVAILABLE
    assert cpu.NOT_AVAILABLE in describe(row)
