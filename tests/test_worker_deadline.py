"""The worker skips requests nobody waits for: the ``x-deadline`` header, checked before
computing.

RabbitMQ's per-message ``expiration`` removes an expired request only at the head of the
queue; one already delivered to a worker's prefetch buffer is computed anyway. So the client
also sends its deadline (integer milliseconds since the Unix epoch), and the worker checks it
when it starts on each request it holds. These tests publish with raw aio-pika, setting the
header themselves, as any client could.
"""

from __future__ import annotations

import asyncio
import decimal
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
from waits import wait_for_depth

from fibrpc_helpers import FibonacciRpcWorker, fib
from fibrpc_helpers.wire import DEADLINE_HEADER

SLOW_N = 30
SLOW_SECONDS = 1.5  # the slow request holds the worker this long...
DEADLINE_SECONDS = 0.5  # ...well past the deadline of the requests prefetched behind it


class Recorder:
    """A ``compute=`` that records every n it computes; SLOW_N blocks the worker's event
    loop for SLOW_SECONDS, as CPU-bound work does."""

    def __init__(self) -> None:
        self.computed: list[int] = []

    def __call__(self, n: int) -> int:
        if n == SLOW_N:
            time.sleep(SLOW_SECONDS)
        self.computed.append(n)
        return fib(n)


class Requester:
    """A raw client: an exclusive reply queue, and requests published with any headers."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
        self.channel = channel
        self.queue = queue
        self.replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        self.reply_to = ""

    async def start(self) -> Requester:
        replies = await self.channel.declare_queue("", exclusive=True)
        await replies.consume(self.replies.put, no_ack=True)
        self.reply_to = replies.name
        return self

    async def send(self, n: int, correlation_id: str, **headers: object) -> None:
        await self.channel.default_exchange.publish(
            aio_pika.Message(str(n).encode(), correlation_id=correlation_id,
                             reply_to=self.reply_to, headers=headers or None),  # type: ignore[arg-type]
            routing_key=self.queue,
        )

    async def replies_until(self, correlation_id: str, timeout: float = 30) -> list[str]:
        """The correlation ids of the replies received, up to and including this one."""
        received: list[str] = []
        while not received or received[-1] != correlation_id:
            reply = await asyncio.wait_for(self.replies.get(), timeout)
            received.append(reply.correlation_id or "")
        return received


def deadline_in(seconds: float) -> int:
    return int((time.time() + seconds) * 1000)


@pytest.fixture
async def requester(connection, queue_name) -> Requester:
    return await Requester(await connection.channel(), queue_name).start()


@pytest.fixture
async def start_worker(
    url: str, queue_name: str
) -> AsyncIterator[Callable[..., Awaitable[FibonacciRpcWorker]]]:
    """Start a worker on the test's queue with these options; stopped after the test."""
    started: list[FibonacciRpcWorker] = []

    async def start(**options: Any) -> FibonacciRpcWorker:
        worker = await FibonacciRpcWorker.start(url, queue=queue_name, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop()


async def test_a_prefetched_burst_whose_deadline_passes_behind_a_slow_request_is_not_computed(
    connection, queue_name, requester, start_worker
):
    # The queue fills before the worker starts, so it receives all of it at once (prefetch):
    # no message carries an expiration, so the broker has nothing to expire either.
    await (await connection.channel()).declare_queue(
        queue_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await requester.send(SLOW_N, "slow")  # no deadline: computed, whenever
    burst = range(1, 8)
    for n in burst:
        await requester.send(n, f"burst-{n}", **{DEADLINE_HEADER: deadline_in(DEADLINE_SECONDS)})
    await requester.send(10, "after", **{DEADLINE_HEADER: deadline_in(600)})  # still wanted
    recorder = Recorder()
    worker = await start_worker(prefetch=9, compute=recorder)

    assert await requester.replies_until("after") == ["slow", "after"]
    assert recorder.computed == [SLOW_N, 10], "a request nobody waited for was computed"
    assert worker.counts.expired == len(burst)
    assert worker.counts.answered == 2
    # Acked, not requeued: nothing waits in the queue, nothing is held.
    await wait_for_depth(connection, queue_name, 0, 10, "an empty queue")
    assert worker.in_flight == 0


async def test_a_request_whose_deadline_passed_before_delivery_is_dropped_and_logged(
    connection, queue_name, requester, start_worker, caplog
):
    recorder = Recorder()
    worker = await start_worker(compute=recorder)
    with caplog.at_level(logging.WARNING, logger="fibrpc_helpers.worker"):
        await requester.send(5, "gone", **{DEADLINE_HEADER: deadline_in(-1)})
        await requester.send(6, "wanted", **{DEADLINE_HEADER: deadline_in(600)})
        assert await requester.replies_until("wanted") == ["wanted"]
    assert recorder.computed == [6]
    assert worker.counts.expired == 1
    [warning] = [r.getMessage() for r in caplog.records if "deadline passed" in r.getMessage()]
    assert "correlation_id='gone'" in warning and "1 expired so far" in warning


async def test_a_burst_of_expired_requests_logs_a_few_lines_not_one_per_request(
    connection, queue_name, requester, start_worker, caplog
):
    worker = await start_worker(prefetch=50, compute=Recorder())
    with caplog.at_level(logging.WARNING, logger="fibrpc_helpers.worker"):
        for index in range(200):
            await requester.send(3, f"gone-{index}", **{DEADLINE_HEADER: deadline_in(-1)})
        await requester.send(4, "wanted")
        assert await requester.replies_until("wanted") == ["wanted"]
    assert worker.counts.expired == 200
    lines = [r for r in caplog.records if "deadline passed" in r.getMessage()]
    assert 1 <= len(lines) < 20, "one warning per LOG_INTERVAL, each with the running total"


async def test_a_request_without_the_header_is_computed(requester, start_worker):
    """Other tutorials' clients send no deadline: their requests are answered as always."""
    recorder = Recorder()
    worker = await start_worker(compute=recorder)
    await requester.send(12, "plain")
    assert await requester.replies_until("plain") == ["plain"]
    assert recorder.computed == [12]
    assert (worker.counts.answered, worker.counts.expired) == (1, 0)


MALFORMED_DEADLINES: dict[str, object] = {
    "text": "soon",
    "digits as text": str(deadline_in(-10)),
    "float": time.time() * 1000 - 10_000,
    "bool": True,
    "decimal": decimal.Decimal("1.5"),
    "void": None,
    "list": [1, 2],
    "table": {"at": 1},
}


async def test_a_malformed_deadline_means_no_deadline_and_the_worker_keeps_serving(
    requester, start_worker, caplog
):
    recorder = Recorder()
    worker = await start_worker(compute=recorder)
    with caplog.at_level(logging.WARNING, logger="fibrpc_helpers.worker"):
        for index, (name, value) in enumerate(MALFORMED_DEADLINES.items()):
            await requester.send(index, name, **{DEADLINE_HEADER: value})
        await requester.send(20, "valid")
        received = await requester.replies_until("valid")
    assert received == [*MALFORMED_DEADLINES, "valid"], "each one answered once, in order"
    assert recorder.computed == [*range(len(MALFORMED_DEADLINES)), 20]
    assert (worker.counts.answered, worker.counts.expired) == (len(MALFORMED_DEADLINES) + 1, 0)
    assert any("not an integer" in record.getMessage() for record in caplog.records)
