"""The bad-input battery, sent by a raw aio-pika client to a real worker process.

The project's client refuses bad input before it sends anything, so it cannot test the
worker's defences: anything on the network can publish to the request queue. Every request
that can be answered gets an error reply (AMQP ``type`` "error", the request's
``correlation_id``, a readable reason); none is requeued; the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from malformed import MALFORMED, MAX_N

from fibrpc_helpers.lab.processes import WorkerProcesses

pytestmark = pytest.mark.timeout(120)

@pytest.fixture
def worker_process(url: str, queue_name: str):
    with WorkerProcesses(1, url=url, queue=queue_name, max_n=MAX_N) as workers:
        yield workers


async def test_every_malformed_request_gets_an_error_reply_and_the_worker_survives(
    worker_process, connection, queue_name
):
    channel = await connection.channel()
    replies_queue = await channel.declare_queue("", exclusive=True)
    replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await replies_queue.consume(replies.put, no_ack=True)

    async def send(body: bytes, **properties: object) -> None:
        await channel.default_exchange.publish(
            aio_pika.Message(body, **properties), routing_key=queue_name  # type: ignore[arg-type]
        )

    ids = {name: f"bad-{index}-{uuid.uuid4().hex[:6]}" for index, name in enumerate(MALFORMED)}
    for name, body in MALFORMED.items():
        await send(body, correlation_id=ids[name], reply_to=replies_queue.name)
    # Three that break the protocol rather than the body:
    await send(b"5", correlation_id="no-reply-to")  # nobody to answer: acked, dropped
    missing_queue = f"no-such-queue.{uuid.uuid4().hex}"
    await send(b"6", correlation_id="gone", reply_to=missing_queue)  # the reply is returned
    await send(b"abc", reply_to=replies_queue.name)  # no correlation_id: still answered
    # And a valid request last: the worker answers it, so it survived all of the above.
    await send(b"10", correlation_id="valid", reply_to=replies_queue.name)

    received = []  # the worker takes one request at a time, so "valid" is answered last
    while not received or received[-1].correlation_id != "valid":
        received.append(await asyncio.wait_for(replies.get(), 30))

    by_id = {message.correlation_id: message for message in received}
    for name in MALFORMED:
        reply = by_id.get(ids[name])
        assert reply is not None, f"no error reply to the {name!r} request"
        assert reply.type == "error", f"{name!r}: reply type {reply.type!r}"
        reason = reply.body.decode("utf-8")
        assert reason and reason.isprintable() and len(reason) < 300, f"{name!r}: {reason!r}"
    assert "at most 1000" in by_id[ids["above max n"]].body.decode()
    assert "10000000 bytes" in by_id[ids["10 MB"]].body.decode()

    anonymous = by_id[None]
    assert anonymous.type == "error" and b"abc" in anonymous.body
    assert "no-reply-to" not in by_id and "gone" not in by_id

    valid = by_id["valid"]
    assert valid.type is None and valid.body == b"55"
    assert len(received) == len(MALFORMED) + 2, "no reply is sent twice, nothing else arrives"

    # Stopping the worker requeues anything it has not acked: the queue must stay empty.
    assert worker_process.stop() == [0]
    declared = await channel.declare_queue(queue_name, passive=True)
    assert declared.declaration_result.message_count == 0
    assert declared.declaration_result.consumer_count == 0

