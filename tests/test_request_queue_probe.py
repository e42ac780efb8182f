"""Learning an existing request queue's shape by what the broker accepts, never by its text.

Each shape the tutorials use is declared by "someone else" first; ``declare_request_queue``
must name it, leave it as it was, and leave the caller's connection open (its probes run on
a short-lived connection of their own, so even a refusal that closes a whole connection,
541 on RabbitMQ 4.3, cannot take the worker's down with it).
"""

from __future__ import annotations

import aio_pika
import pytest

from fibrpc_helpers.request_queue import (
    UNKNOWN,
    RequestQueue,
    declare_request_queue,
    transient_queues_permitted,
)

SHAPES = {
    "official-quorum": ({"durable": True, "arguments": {"x-queue-type": "quorum"}},
                        ("quorum", True)),
    "classic-durable-no-type-argument": ({"durable": True}, ("classic", True)),
    "classic-durable": ({"durable": True, "arguments": {"x-queue-type": "classic"}},
                        ("classic", True)),
    "aio-pika-tutorial": ({}, ("classic", False)),
    "quorum-with-a-delivery-limit": (
        {"durable": True, "arguments": {"x-queue-type": "quorum", "x-delivery-limit": 5}},
        (UNKNOWN.type, None),
    ),
}


@pytest.fixture
async def robust(url: str):
    connection = await aio_pika.connect_robust(url)
    yield connection
    await connection.close()


async def _declare(connection, name: str, **options) -> None:
    async with connection.channel() as channel:
        await channel.declare_queue(name, **options)


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_existing_queue_is_named_by_the_declare_the_broker_accepts(
    url, connection, robust, queue_name, shape
):
    options, expected = SHAPES[shape]
    if not options.get("durable"):
        if not await transient_queues_permitted(url):
            pytest.skip("this broker denies transient non-exclusive queues (RabbitMQ 4.3)")
    await _declare(connection, queue_name, **options)
    found = await declare_request_queue(robust, queue_name)
    assert (found.type, found.durable) == expected
    assert not robust.is_closed
    await _declare(connection, queue_name, **options)  # still equivalent: left as it was


async def test_an_absent_queue_is_declared_durable_quorum(robust, queue_name, connection):
    assert await declare_request_queue(robust, queue_name) == RequestQueue.asked("quorum")
    await _declare(connection, queue_name, durable=True, arguments={"x-queue-type": "quorum"})


async def test_asking_for_classic_keeps_the_callers_connection_on_every_broker(
    robust, queue_name
):
    """On RabbitMQ 4.3 as shipped, a transient declare would close the connection (541):
    the classic queue is declared durable there, and the caller's connection is untouched."""
    found = await declare_request_queue(robust, queue_name, "classic")
    assert found.type == "classic" and found.durable is not None
    assert not robust.is_closed
