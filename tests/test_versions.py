"""What differs between RabbitMQ versions for this series, shown on the broker the tests find.

The notebooks' stored outputs come from one broker, of one version; a student's broker may be
older or newer and behave differently where tutorial six is concerned. Each test here reads the
version from the broker it runs against and expects that version's own behaviour, so that run
against a 3.x node and a 4.3 node the suite shows both sides of every difference. Together they
back the table of version differences in notebook 01 (each row names the test that shows it).

Held deliveries of a consumer on a lost node (4.3's ``consumer_disconnected_timeout``) need a
cluster, and are covered elsewhere.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Literal

import aio_pika
import aiormq
import pytest

from fibrpc_helpers.lab.broker import probe_async
from fibrpc_helpers.request_queue import transient_queues_permitted
from fibrpc_helpers.urls import mask_url

Version = tuple[int, int]
Settle = Literal["reject", "nack"]

QUORUM: dict = {"durable": True, "arguments": {"x-queue-type": "quorum"}}
CLASSIC_DURABLE: dict = {"durable": True, "arguments": {"x-queue-type": "classic"}}
DEFAULT_DELIVERY_LIMIT = 20  # a quorum queue's, from RabbitMQ 4.0 on (none before)
REQUEUES = 25  # more than the default limit
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
NO_DELIVERY = 0.5
"""Seconds to watch for a delivery that must NOT come: an absence has no event to await, so
the tests that show one wait this bounded time (long enough for a local broker to deliver)."""


@pytest.fixture
async def version(url: str) -> Version:
    """(major, minor) of the broker under test, as it announces itself."""
    found = await probe_async(url)
    assert found is not None, f"no broker answers at {mask_url(url)}"
    match = re.match(r"(\d+)\.(\d+)", found)
    assert match is not None, f"cannot read the broker's version {found!r}"
    return int(match[1]), int(match[2])


@pytest.fixture
async def new_name(url: str) -> AsyncIterator[Callable[[], str]]:
    """Hands out unique queue names; every queue so named is deleted afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(f"test.versions.{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield make
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)  # an absent queue is fine too


async def _settle(message: aio_pika.abc.AbstractIncomingMessage, settle: Settle) -> None:
    """Give the message back to the queue: basic.reject or basic.nack, both with requeue."""
    if settle == "reject":
        await message.reject(requeue=True)
    else:
        await message.nack(requeue=True)


# 1. Quorum queues: the default delivery limit, and what counts toward it.


@pytest.mark.parametrize("settle", ["reject", "nack"])
async def test_quorum_delivery_limit(
    url: str, version: Version, new_name: Callable[[], str], settle: Settle
) -> None:
    """A message given back 25 times: from 4.0 a quorum queue drops it once it has been
    requeued more than 20 times (no dead-letter exchange here), so it is delivered 21 times;
    before 4.0 it keeps coming. In 4.3 only failed deliveries count: reject does, nack not."""
    counted = settle == "reject" or version < (4, 3)
    limited = version >= (4, 0) and counted
    expected = DEFAULT_DELIVERY_LIMIT + 1 if limited else REQUEUES + 1
    name = new_name()
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, **QUORUM)  # no x-delivery-limit argument
        await channel.default_exchange.publish(aio_pika.Message(b"poison"), name)
        deliveries = 0
        while deliveries <= REQUEUES:
            # basic.get answers "empty" at once, and the queue takes this channel's requeue
            # before its next get: None means the message is gone, with no waiting.
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            deliveries += 1
            if deliveries <= REQUEUES:
                await _settle(message, settle)
            else:
                await message.ack()
        assert deliveries == expected, f"RabbitMQ {version}, {settle}"
        again = await channel.declare_queue(name, passive=True)
        assert again.declaration_result.message_count == 0  # dropped, not kept aside


@pytest.mark.parametrize("settle", ["reject", "nack"])
async def test_quorum_redelivery_headers(
    url: str, version: Version, new_name: Callable[[], str], settle: Settle
) -> None:
    """A quorum-queue message given back once and delivered again: ``x-acquired-count`` (every
    time it was handed out) from 4.3 on; ``x-delivery-count`` counts every requeue before 4.3,
    and from 4.3 only failed deliveries (reject, not nack)."""
    name = new_name()
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, **QUORUM)
        await channel.default_exchange.publish(aio_pika.Message(b"again"), name)
        await _settle(await queue.get(no_ack=False), settle)
        redelivered = await queue.get(no_ack=False)
        headers = dict(redelivered.headers)
        await redelivered.ack()
    assert redelivered.redelivered
    assert headers.get("x-acquired-count") == (1 if version >= (4, 3) else None), headers
    failed_only = version >= (4, 3)
    counted = settle == "reject" or not failed_only
    assert headers.get("x-delivery-count") == (1 if counted else None), headers


# 2. Transient (non-durable) non-exclusive queues.


async def test_transient_nonexclusive_queue(
    url: str, version: Version, new_name: Callable[[], str]
) -> None:
    """aio-pika's ``declare_queue(name)`` (durable=False): taken before 4.3; upstream 4.3
    denies it (Debian's 4.3 package permits it) with a 541 that closes the whole connection."""
    permitted = await transient_queues_permitted(url)
    if version < (4, 3):
        assert permitted, f"RabbitMQ {version} denied a transient non-exclusive queue"
    denied = version >= (4, 3) and not permitted
    name = new_name()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        if denied:
            with pytest.raises(aiormq.exceptions.ConnectionInternalError) as refusal:
                await channel.declare_queue(name)
            assert "transient_nonexcl_queues" in str(refusal.value)
            assert connection.transport.connection.is_closed  # type: ignore[union-attr]
        else:
            queue = await channel.declare_queue(name)
            assert not queue.durable
            await queue.delete()
    finally:
        await connection.close()


@pytest.mark.parametrize("kind", [{"exclusive": True}, CLASSIC_DURABLE], ids=["exclusive",
                                                                              "durable"])
async def test_exclusive_or_durable_queue_taken(
    url: str, new_name: Callable[[], str], kind: dict
) -> None:
    """The ways around the 4.3 deny: an exclusive or a durable queue, taken on every version."""
    name = new_name()
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(name, **kind)
        found = await channel.declare_queue(name, passive=True)
        assert found.declaration_result.message_count == 0
        await channel.queue_delete(name)


# 3. basic.qos with global=True.


async def test_global_prefetch(url: str, version: Version, new_name: Callable[[], str]) -> None:
    """prefetch_count=1 with global=True on a channel with two consumers: one delivery in all
    before 4.3; from 4.3 (deprecated feature ``global_qos`` denied) it is silently taken as a
    per-consumer prefetch, so one delivery each."""
    expected = 2 if version >= (4, 3) else 1
    name = new_name()
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(name, **CLASSIC_DURABLE)
        for n in range(4):
            await channel.default_exchange.publish(aio_pika.Message(b"%d" % n), name)
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=1, global_=True)  # no error on any version
        queue = await consuming.get_queue(name, ensure=False)
        tags: list[str | None] = []
        enough = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            tags.append(message.consumer_tag)  # never acked: each holds its prefetch slot
            if len(tags) >= expected:
                enough.set()

        for _ in range(2):
            await queue.consume(on_message)
        try:
            await asyncio.wait_for(enough.wait(), timeout=5)
        except TimeoutError:
            pytest.fail(f"RabbitMQ {version}: {len(tags)} deliveries, expected {expected}")
        await asyncio.sleep(NO_DELIVERY)  # the delivery that must not come has no event
        assert len(tags) == expected, f"RabbitMQ {version}: {tags}"
        assert len(set(tags)) == expected  # from 4.3, one to each consumer


# 4. Direct reply-to: a mandatory reply.


async def _reply(channel: aio_pika.abc.AbstractChannel, reply_to: str) -> str:
    """Publish a reply with mandatory=True on a confirming channel that raises on a return:
    "returned" (basic.return, 312 NO_ROUTE) or "routed" (basic.ack, no return)."""
    try:
        confirm = await channel.default_exchange.publish(
            aio_pika.Message(b"reply"), reply_to, mandatory=True
        )
    except aio_pika.exceptions.PublishError as error:
        assert error.frame.reply_code == 312, error
        return "returned"
    assert isinstance(confirm, aiormq.spec.Basic.Ack), confirm
    return "routed"


@pytest.mark.parametrize("requester", ["alive", "gone"])
async def test_direct_reply_to_mandatory_reply(
    url: str, version: Version, new_name: Callable[[], str], requester: str
) -> None:
    """A mandatory reply to a genuine ``amq.rabbitmq.reply-to.<...>`` name. Before 4.2 the
    pseudo-queue never counts as routed, so EVERY such reply is returned, even one that the
    live requester receives: the return says nothing about the requester. From 4.2 a reply
    counts as routed: delivered to a live requester, silently dropped for a gone one."""
    expected = "routed" if version >= (4, 2) else "returned"
    name = new_name()
    async with await aio_pika.connect(url) as server:
        channel = await server.channel(on_return_raises=True)
        requests = await channel.declare_queue(name, exclusive=True)
        client = await aio_pika.connect(url)
        try:
            client_channel = await client.channel()
            replies = await client_channel.get_queue(DIRECT_REPLY_TO, ensure=False)
            received = asyncio.Event()

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                received.set()

            await replies.consume(on_reply, no_ack=True)
            await client_channel.default_exchange.publish(
                aio_pika.Message(b"request", reply_to=DIRECT_REPLY_TO), name
            )  # confirmed, so the request is in the queue now
            request = await requests.get(no_ack=True, timeout=5)
            reply_to = request.reply_to or ""
            assert reply_to.startswith(DIRECT_REPLY_TO + "."), reply_to
            if requester == "alive":
                assert await _reply(channel, reply_to) == expected, f"RabbitMQ {version}"
                await asyncio.wait_for(received.wait(), timeout=5)  # delivered all the same
        finally:
            await client.close()
        if requester == "gone":
            assert await _reply(channel, reply_to) == expected, f"RabbitMQ {version}"
