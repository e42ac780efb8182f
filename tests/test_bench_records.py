"""Typed call records, the load generator's task group and the ladder's verdict (no broker)."""

from __future__ import annotations

import asyncio
import math
import re
import time

import pytest

from fibrpc_helpers.bench.compare import Figures, cpu_per_call
from fibrpc_helpers.bench.designs import Design
from fibrpc_helpers.bench.ladder import BASELINE, Ladder
from fibrpc_helpers.bench.loadgen import Generator, Load
from fibrpc_helpers.bench.points import Call, Point
from fibrpc_helpers.bench.presets import TRIVIAL
from fibrpc_helpers.bench.reports import call_rows
from fibrpc_helpers.errors import RpcTimeout


def test_a_call_names_its_fields_and_its_latency_counts_from_the_intended_send() -> None:
    call = Call(client=3, intended=1.0, sent=1.25, done=1.5)
    assert call.latency == 0.5 and call.error == ""
    point = Point(kind="open", design="correlation-id", work=TRIVIAL, workers=1, clients=4,
                  prefetch=1, warmup=0.5, duration=1.0, records=[Call(0, 0.2, 0.2, 0.3), call])
    assert point.measured() == [call] and point.latencies() == [0.5]
    (warm, measured) = call_rows([point])
    assert warm["phase"] == "warmup" and measured["phase"] == "measured"
    assert measured["client"] == 3 and measured["latency"] == 0.5


class Caller:
    """A client that answers after ``delay`` s, or raises ``error``; counts calls in flight."""

    def __init__(self, delay: float = 0.001, error: BaseException | None = None) -> None:
        self.delay, self.error, self.in_flight = delay, error, 0

    async def call(self, n: int, *, timeout: float | None = None) -> int:
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
            if self.error is not None:
                raise self.error
            return n
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        pass


def _load(clients: int, loop: str = "closed") -> Load:
    return Load(client="fake", queue="q", clients=clients, loop=loop, n=5, warmup=0.05,
                duration=0.2, rate=200.0, start_at=time.monotonic(), timeout=1.0)


async def test_rpc_errors_are_recorded_by_name_and_the_run_goes_on() -> None:
    generator = Generator(None)
    generator.pools[("fake", "q")] = [Caller(), Caller(error=RpcTimeout("late"))]
    calls, lag = await generator.run(_load(2))
    assert {call.error for call in calls if call.client == 0} == {""}
    assert {call.error for call in calls if call.client == 1} == {"RpcTimeout"}
    assert lag.worst >= lag.mean >= 0


@pytest.mark.parametrize("loop", ["closed", "open"])
async def test_an_unexpected_exception_fails_the_run_and_leaves_no_loop_behind(loop: str) -> None:
    healthy = [Caller(delay=0.01) for _ in range(3)]
    broken = Caller(delay=0.03, error=KeyError("a bug"))
    generator = Generator(None)
    generator.pools[("fake", "q")] = [*healthy, broken]
    before = asyncio.all_tasks()
    with pytest.raises(KeyError, match="a bug"):
        await generator.run(_load(4, loop))
    assert asyncio.all_tasks() == before  # the ticker, the loops and their calls are gone
    assert all(caller.in_flight == 0 for caller in healthy)


def _figures(name: str, throughput: float, p50: float) -> Figures:
    cpu = {"clients": 0.4, "worker": 0.3, "broker": 0.3}
    return Figures(Design(name, "correlation-id"), throughput=throughput, p50_ms=p50, cpu_ms=cpu)


def test_the_ladder_names_its_fastest_rung_in_its_last_line() -> None:
    ladder = Ladder(
        _figures(BASELINE.name, 1000.0, 1.0),
        [_figures("reference", 1200.0, 0.9), _figures("+ fast", 2500.0, 0.64)],
    )
    assert ladder.ratios(ladder.rungs[0]) == pytest.approx((1.2, 0.9))
    verdict = ladder.verdict()
    assert verdict == (
        "fastest rung: + fast: 2.50x patterns.RPC throughput at C=64, 0.64x its p50 at C=1"
    )
    assert re.fullmatch(r"fastest rung: .+: \d+\.\d\dx patterns\.RPC throughput at C=64, "
                        r"\d+\.\d\dx its p50 at C=1", verdict)
    assert ladder.table().splitlines()[1].startswith("patterns.RPC")


def test_cpu_per_call_is_percent_of_a_core_over_calls_per_second() -> None:
    rows = [{"throughput": 1000.0, "cpu_broker": 50.0, "cpu_workers": 40.0, "cpu_loadgens": 60.0}]
    assert cpu_per_call(rows) == pytest.approx({"broker": 0.5, "worker": 0.4, "clients": 0.6})
    assert all(math.isnan(v) for v in cpu_per_call([{"throughput": 0.0}]).values())
