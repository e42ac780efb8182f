"""The benchmark's designs are the reference with one part swapped: they keep the rest of
its promises (real broker, real worker), and the ladder runs end to end on a tiny scale."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, RemoteError
from fibrpc_helpers.bench import grid
from fibrpc_helpers.bench.compare import compare_speed
from fibrpc_helpers.bench.designs import (
    DirectNoConfirmsClient,
    DirectReplyToClient,
    NoConfirmsClient,
    QueuePerRequestClient,
)
from fibrpc_helpers.bench.ladder import RUNGS, ladder
from fibrpc_helpers.errors import NoWorkerError, RpcTimeout

VARIANTS = [QueuePerRequestClient, DirectReplyToClient, NoConfirmsClient, DirectNoConfirmsClient]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
async def test_every_variant_is_the_reference_with_its_answers_and_errors(
    url, worker, queue_name, variant
):
    assert issubclass(variant, FibonacciRpcClient)
    async with await variant.connect(url, queue=queue_name, timeout=10) as client:
        assert await asyncio.gather(*(client.call(n) for n in range(12))) == [
            0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89
        ]
        with pytest.raises(RemoteError, match="at most 1000"):  # the reference's mapping
            await client.call(1001)
        assert client.in_flight == 0 and client.replies.answered == 13


@pytest.mark.parametrize("variant", [DirectReplyToClient, QueuePerRequestClient],
                         ids=lambda v: v.__name__)
async def test_a_variant_with_confirms_still_says_no_worker(url, variant):
    missing = f"test.no-such-queue.{uuid.uuid4().hex[:8]}"
    async with await variant.connect(url, queue=missing) as client:
        with pytest.raises(NoWorkerError, match="no queue named"):
            await asyncio.wait_for(client.call(5, timeout=60), 5)


async def test_without_confirms_a_missing_queue_is_only_a_timeout(url):
    """What the no-confirms rung gives up, shown: the request is dropped without a word."""
    missing = f"test.no-such-queue.{uuid.uuid4().hex[:8]}"
    async with await NoConfirmsClient.connect(url, queue=missing) as client:
        with pytest.raises(RpcTimeout):
            await client.call(5, timeout=0.5)


def test_the_ladder_runs_end_to_end_and_names_its_fastest_rung(url, tmp_path, monkeypatch):
    monkeypatch.setattr(grid, "RESULTS", tmp_path)
    result = ladder(url, rounds=1, warmup=0.1, duration=0.5, many=4,
                    rungs=(RUNGS[0], RUNGS[-1]), progress=False)
    assert [f.design.name for f in result.rungs] == ["reference", "raw aiormq"]
    for figures in [result.baseline, *result.rungs]:
        assert figures.throughput > 0 and figures.p50_ms > 0, figures.design.name
        assert all(row["errors"] == 0 for row in figures.rows), figures.design.name
    assert re.fullmatch(r"fastest rung: (reference|raw aiormq): \d+\.\d\dx patterns\.RPC "
                        r"throughput at C=4, \d+\.\d\dx its p50 at C=1", result.verdict())


async def test_compare_speed_measures_each_client_in_turn(url, queue_name):
    """07's comparison: every client makes every call of every round, and gets its figures."""
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, prefetch=4)
    try:
        async with (await FibonacciRpcClient.connect(url, queue=queue_name) as first,
                    await FibonacciRpcClient.connect(url, queue=queue_name) as second):
            speeds = await compare_speed({"first": first, "second": second}, rounds=2,
                                         single_calls=5, busy_calls=20, busy=4)
            answered = (first.replies.answered, second.replies.answered)
    finally:
        await worker.stop()
    assert [speed.name for speed in speeds] == ["first", "second"]
    assert all(speed.p50_ms > 0 and speed.throughput > 0 and speed.busy == 4 for speed in speeds)
    assert answered == (2 * (5 + 20), 2 * (5 + 20))
    assert "p50 at C=1" in speeds[0].describe() and "throughput at C=4" in speeds[0].describe()
