"""The next stage of an asynchronous pipeline (fibrpc_helpers.pipeline) against a real broker.

The reference worker answers on whatever ``reply_to`` names; here that is a stage queue, so
results wait there with nobody waiting on each reply, and ``collect`` takes them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from waits import consumer_count, queue_depth, wait_for_depth, wait_until

from fibrpc_helpers import RemoteError, RpcConnectionError, fib
from fibrpc_helpers.pipeline import StageTimeout, collect


@pytest.fixture
async def stage(
    connection: aio_pika.abc.AbstractConnection,
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """The next stage's queue (a plain named queue, as a pipeline would declare); deleted after."""
    channel = await connection.channel()
    queue = await channel.declare_queue(
        f"test.pipeline-stage.{uuid.uuid4().hex[:8]}", durable=True
    )
    yield queue
    await queue.delete(if_unused=False, if_empty=False)
    await channel.close()


async def _push(
    connection: aio_pika.abc.AbstractConnection, queue_name: str, bodies: list[bytes], stage: str
) -> None:
    """Publish requests whose results go to ``stage``; nobody waits for any reply."""
    channel = await connection.channel()  # publisher confirms: each request reached the queue
    for i, body in enumerate(bodies):
        message = aio_pika.Message(body, correlation_id=f"c{i}", reply_to=stage)
        await channel.default_exchange.publish(message, routing_key=queue_name)
    await channel.close()


async def test_results_wait_in_the_stage_queue_until_the_next_stage_takes_them(
    worker, connection, queue_name, stage
):
    await _push(connection, queue_name, [b"10", b"20", b"oops", b"0"], stage.name)
    # Nobody consumes the stage yet: the worker's results wait in its queue.
    await wait_for_depth(connection, stage.name, 4, 10, "4 results in the stage queue")
    results = await collect(stage, 4, timeout=10)
    assert {k: v for k, v in results.items() if k != "c2"} == {
        "c0": fib(10), "c1": fib(20), "c3": 0
    }
    assert isinstance(results["c2"], RemoteError)  # a bad request: its error reply, kept
    assert await queue_depth(connection, stage.name) == 0  # every result acked
    assert await consumer_count(connection, stage.name) == 0  # the stage's consumer is gone


async def test_collect_times_out_saying_how_many_came_and_leaves_no_consumer(
    worker, connection, queue_name, stage
):
    await _push(connection, queue_name, [b"5", b"6"], stage.name)
    await wait_for_depth(connection, stage.name, 2, 10, "both results in the stage queue")
    with pytest.raises(StageTimeout, match="got 2 of 3 results"):
        await collect(stage, 3, timeout=3)
    assert await consumer_count(connection, stage.name) == 0
    assert await queue_depth(connection, stage.name) == 0


async def test_a_cancelled_collect_stays_cancelled_and_cancels_its_consumer(connection, stage):
    task = asyncio.create_task(collect(stage, 1, timeout=60))
    try:
        await wait_until(lambda: consumer_count(connection, stage.name), 10, "the stage's consumer")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        task.cancel()

    async def no_consumer() -> bool:
        return await consumer_count(connection, stage.name) == 0

    await wait_until(no_consumer, 10, "no consumer on the stage")


async def test_collect_whose_channel_closes_says_so_instead_of_returning_part(
    connection, stage
):
    """aio-pika 10 ends a closed channel's iterator at once (then collect says so); aio-pika 9
    keeps it waiting (then collect times out). Either way it never returns part quietly."""
    channel = await connection.channel()
    queue = await channel.declare_queue(stage.name, passive=True)
    task = asyncio.create_task(collect(queue, 2, timeout=3))
    try:
        await wait_until(lambda: consumer_count(connection, stage.name), 10, "the stage's consumer")
        await channel.close()
        with pytest.raises((RpcConnectionError, StageTimeout), match="0 of 2 results"):
            await asyncio.wait_for(task, 10)
    finally:
        task.cancel()


async def test_collect_refuses_a_negative_count_or_no_time(stage):
    with pytest.raises(ValueError, match="count"):
        await collect(stage, -1, timeout=1)
    with pytest.raises(ValueError, match="timeout"):
        await collect(stage, 1, timeout=0)
    assert await collect(stage, 0, timeout=1) == {}
