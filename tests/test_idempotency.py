"""Idempotency keys and retries: one key per logical call, one correlation id per try.

A worker that must not repeat a side effect needs a key that names the logical call: the
same on a redelivery and on every retry. The client sends it as the request's
``message_id``; each try gets a fresh ``correlation_id`` so that a late reply to an earlier
try is discarded like any other. The tests play the worker themselves with a raw consumer,
so they see every request exactly as the broker delivers it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from waits import assert_ended_on_time, watch_loop

from fibrpc_helpers import RpcTimeout, fib
from fibrpc_helpers.wire import DEADLINE_HEADER


class RawWorker:
    """A worker of the test's own: records every request, answers the tries it is told to."""

    def __init__(self, answer: Callable[[int], bool]) -> None:
        self.answer = answer  # answer(number of this try, from 1) -> reply or stay silent
        self.requests: list[AbstractIncomingMessage] = []
        self.channel: aio_pika.abc.AbstractChannel | None = None

    async def on_request(self, message: AbstractIncomingMessage) -> None:
        async with message.process():  # ack after the (optional) reply
            self.requests.append(message)
            if self.answer(len(self.requests)):
                assert self.channel is not None and message.reply_to
                await self.channel.default_exchange.publish(
                    aio_pika.Message(
                        str(fib(int(message.body))).encode(),
                        correlation_id=message.correlation_id,
                    ),
                    routing_key=message.reply_to,
                )


@pytest.fixture
async def serve(connection, queue_name) -> AsyncIterator[Callable[..., RawWorker]]:
    """``serve(answer)`` starts a RawWorker on the test's request queue."""

    async def start(answer: Callable[[int], bool]) -> RawWorker:
        worker = RawWorker(answer)
        worker.channel = await connection.channel()
        queue = await worker.channel.declare_queue(queue_name, durable=True)
        await queue.consume(worker.on_request)
        return worker

    yield start


async def test_a_retry_carries_the_same_key_and_a_new_correlation_id(serve, client):
    worker = await serve(lambda attempt: attempt == 2)  # silent on the first try
    assert await client.call(10, timeout=4, idempotency_key="order-42", retries=1) == 55
    first, second = worker.requests
    assert first.message_id == second.message_id == "order-42"
    assert first.correlation_id != second.correlation_id
    assert client.replies.answered == 1


async def test_without_a_key_each_logical_call_gets_its_own_on_every_try(serve, client):
    worker = await serve(lambda attempt: attempt in (2, 3))
    assert await client.call(7, timeout=4, retries=1) == 13  # tries 1 (silent) and 2
    assert await client.call(8, timeout=4) == 21  # try 3
    first, retry, other = worker.requests
    assert first.message_id and first.message_id == retry.message_id
    assert other.message_id and other.message_id != first.message_id


async def test_every_try_times_out_then_the_call_says_how_many(serve, client):
    worker = await serve(lambda attempt: False)  # a worker that never answers
    async with watch_loop() as watch:
        with pytest.raises(RpcTimeout, match=r"within 0.9 s \(3 tries, the same idempotency key\)"):
            await client.call(5, timeout=0.9, idempotency_key="k", retries=2)
    assert_ended_on_time(watch, 0.9)  # each try taking 0.9 s would take 2.7 s
    assert [r.message_id for r in worker.requests] == ["k", "k", "k"]
    assert len({r.correlation_id for r in worker.requests}) == 3


async def test_a_request_carries_its_deadline_and_expiration(serve, client):
    worker = await serve(lambda attempt: True)
    before = time.time()
    assert await client.call(3, timeout=2) == 2
    (request,) = worker.requests
    deadline_ms = request.headers[DEADLINE_HEADER]
    assert isinstance(deadline_ms, int)
    assert (before + 2) * 1000 - 50 <= deadline_ms <= (time.time() + 2) * 1000 + 50
    assert request.expiration == 2


@pytest.mark.parametrize(
    "options, complaint",
    [
        ({"retries": -1}, "retries must be a whole number"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"timeout": float("inf")}, "timeout must be a positive number"),
        ({"timeout": 50 * 24 * 3600}, "RabbitMQ's longest message expiration"),
    ],
)
async def test_bad_options_fail_before_anything_is_sent(client, options, complaint):
    with pytest.raises(ValueError, match=complaint):
        await client.call(3, **options)
    assert client.in_flight == 0

