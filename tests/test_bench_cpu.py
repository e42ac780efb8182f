"""Whose CPU was busy: the verdicts from known inputs, and the /proc readings themselves."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from fibrpc_helpers.bench.cpu import CpuMeter, CpuUse, broker_pid, process_cpu_seconds


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


def test_the_local_broker_is_found(url: str) -> None:
    where = urlparse(url)
    if where.hostname not in ("localhost", "127.0.0.1", "::1"):
        pytest.skip("the broker runs on another machine: its CPU cannot be read here")
    pid = broker_pid(where.port or 5672)
    assert pid is not None, "the broker of the test suite runs on this machine"
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "beam.smp"
