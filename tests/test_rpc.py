"""The client and the worker against a real broker."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import aiormq
import pytest
from waits import wait_for_depth

from fibrpc_helpers import (
    BrokerRefusedError,
    FibonacciRpcClient,
    NoWorkerError,
    RemoteError,
    RpcConnectionError,
    RpcTimeout,
    fib,
)


async def test_a_call_returns_fib_of_n(worker, client):
    assert await client.call(10) == 55
    assert await client.call(0) == 0
    assert client.replies.answered == 2
    assert worker.counts.answered == 2


async def test_each_client_has_its_own_exclusive_callback_queue(url, worker, client, queue_name):
    async with await FibonacciRpcClient.connect(url, queue=queue_name) as other:
        assert other.callback_queue.name != client.callback_queue.name
        assert await asyncio.gather(client.call(7), other.call(8)) == [13, 21]
    # Exclusive: another connection may not even look at it.
    intruder = await aio_pika.connect(url)
    async with intruder:
        channel = await intruder.channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource):
            await channel.declare_queue(client.callback_queue.name, passive=True)


async def _reply_in_reverse(connection, queue_name: str, count: int, copies: int = 1) -> list:
    """A hand-made worker: takes `count` requests, then answers them newest first."""
    channel = await connection.channel()
    queue = await channel.declare_queue(queue_name, passive=True)  # it consumes, never declares
    requests = []
    async with queue.iterator() as messages:
        async for message in messages:
            requests.append(message)
            if len(requests) == count:
                break
    for message in reversed(requests):
        for _ in range(copies):
            await channel.default_exchange.publish(
                aio_pika.Message(str(fib(int(message.body))).encode(),
                                 correlation_id=message.correlation_id),
                routing_key=message.reply_to,
            )
        await message.ack()
    return [m.correlation_id for m in requests]


async def test_concurrent_calls_answered_out_of_order_are_matched(
    connection, client, queue_name, request_queue
):
    ns = list(range(20, 40))
    responder = asyncio.create_task(_reply_in_reverse(connection, queue_name, len(ns)))
    results = await asyncio.gather(*(client.call(n) for n in ns))
    assert results == [fib(n) for n in ns]
    correlation_ids = await responder
    assert len(set(correlation_ids)) == len(ns)  # a fresh id per call
    assert client.in_flight == 0


async def test_a_duplicate_reply_is_discarded_and_counted(
    connection, client, queue_name, request_queue
):
    responder = asyncio.create_task(_reply_in_reverse(connection, queue_name, 1, copies=2))
    assert await client.call(12) == 144
    await responder
    # The callback queue is FIFO: once a later reply arrived, the duplicate was handled.
    responder = asyncio.create_task(_reply_in_reverse(connection, queue_name, 1))
    assert await client.call(13) == 233
    await responder
    assert client.replies.duplicate == 1
    assert client.replies.answered == 2


async def test_a_stray_reply_is_discarded_and_counted(connection, worker, client):
    channel = await connection.channel()
    await channel.default_exchange.publish(
        aio_pika.Message(b"999", correlation_id=uuid.uuid4().hex),
        routing_key=client.callback_queue.name,
    )
    assert await client.call(5) == 5  # the stray reply is not taken as this call's answer
    assert client.replies.unknown == 1
    assert client.replies.discarded == 1


async def test_no_consumer_times_out_and_forgets_the_call(
    connection, client, queue_name, request_queue
):
    with pytest.raises(RpcTimeout):
        await client.call(5, timeout=0.3)
    assert client.in_flight == 0
    # The request carries the call's timeout as its expiration, and it sits at the head of
    # the queue (nobody consumes it), so the broker drops it about 0.3 s after it was
    # enqueued; a quorum queue honours per-message TTL from RabbitMQ 3.10 on.
    await wait_for_depth(connection, queue_name, 0, 5, "the broker to expire the request")


async def test_a_reply_after_the_timeout_is_counted_as_late(
    connection, client, queue_name, request_queue
):
    with pytest.raises(RpcTimeout):
        await client.call(5, timeout=0.2)
    channel = await connection.channel()
    await (await channel.declare_queue(queue_name, passive=True)).purge()  # the given-up request
    # Hand-reply to a request id the client gave up on, then make a normal call.
    late_id = next(iter(client._finished))
    await channel.default_exchange.publish(
        aio_pika.Message(b"5", correlation_id=late_id), routing_key=client.callback_queue.name
    )
    responder = asyncio.create_task(_reply_in_reverse(connection, queue_name, 1))
    assert await client.call(6) == 8
    await responder
    assert client.replies.late == 1


async def test_no_queue_means_no_worker_error_well_before_the_timeout(url):
    missing = f"test.no-such-queue.{uuid.uuid4().hex[:8]}"
    async with await FibonacciRpcClient.connect(url, queue=missing) as client:
        with pytest.raises(NoWorkerError, match="no queue named"):
            await asyncio.wait_for(client.call(5, timeout=60), 5)
        assert client.in_flight == 0


async def test_an_error_reply_raises_remote_error_with_the_workers_reason(worker, client):
    with pytest.raises(RemoteError, match="at most 1000") as caught:
        await client.call(1001)
    assert "at most 1000" in caught.value.reason
    assert await client.call(3) == 2  # the worker goes on serving


async def test_local_input_errors_never_reach_the_broker(client):
    with pytest.raises(ValueError, match="0 or more"):
        await client.call(-1)
    assert client.in_flight == 0


async def test_pending_calls_fail_clearly_when_the_client_closes(
    connection, url, queue_name, request_queue
):
    client = await FibonacciRpcClient.connect(url, queue=queue_name)
    call = asyncio.create_task(client.call(5, timeout=30))
    while client.in_flight == 0:
        await asyncio.sleep(0)
    await client.close()
    with pytest.raises(RpcConnectionError, match="client was closed while a call"):
        await call


async def test_connect_to_a_closed_port_says_how_to_get_a_broker():
    with pytest.raises(RpcConnectionError, match="broker ensure") as caught:
        await FibonacciRpcClient.connect("amqp://guest:secret@127.0.0.1:1/")
    assert "secret" not in str(caught.value)


async def test_many_calls_in_flight_on_one_client_with_a_prefetching_worker(url, queue_name):
    from fibrpc_helpers import FibonacciRpcWorker

    worker = await FibonacciRpcWorker.start(url, queue=queue_name, prefetch=16, service_time=0.05)
    try:
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            results = await asyncio.gather(*(client.call(n) for n in range(64)))
        assert results == [fib(n) for n in range(64)]
        assert worker.counts.answered == 64
    finally:
        await worker.stop()


async def test_a_request_the_broker_refuses_is_a_broker_refused_error(
    url, connection, queue_name
):
    """A basic.nack is the broker saying no, on a working connection: not a lost connection."""
    await (await connection.channel()).declare_queue(
        queue_name, durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
        with pytest.raises(BrokerRefusedError, match="refused the request"):
            await client.call(5, timeout=5)
        assert not client.channel.is_closed and client.in_flight == 0
