"""One deadline per call, and a cancellation that stays a cancellation.

A call's timeout is its whole time: publishing, waiting for the reply and saying why no
reply came all fit inside it, even when the broker stops answering. To make a broker that
stops answering, this module freezes a private RabbitMQ node (SIGSTOP to its Erlang VM) and
thaws it afterwards (SIGCONT); the shared broker on 5672 is never touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aio_pika
import pytest
from private_node import PrivateNode, node_fixture  # noqa: F401  (the fixture `node`)
from waits import assert_ended_on_time, wait_for_depth, wait_until, watch_loop

from fibrpc_helpers import FibonacciRpcClient, RpcTimeout
from fibrpc_helpers.lab import nodes

pytestmark = [
    pytest.mark.skipif(
        nodes.find_server() is None or not hasattr(signal, "SIGSTOP"),
        reason="needs rabbitmq-server (apt-get install rabbitmq-server) and POSIX signals "
        "to freeze a private node",
    ),
    pytest.mark.timeout(300),  # a private node starts in its fixture
]


@contextmanager
def frozen(node: PrivateNode) -> Iterator[None]:
    """The node's Erlang VM stopped (it answers nothing) until the block ends."""
    vm = int((node.state_dir / "rabbitmq.pid").read_text().strip())
    os.kill(vm, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(vm, signal.SIGCONT)


@pytest.fixture
async def private_client(
    node: PrivateNode, queue_name: str
) -> AsyncIterator[FibonacciRpcClient]:
    """A client of the private node, on a queue that exists and that nobody consumes."""
    connection = await aio_pika.connect(node.url)
    async with connection:
        await (await connection.channel()).declare_queue(queue_name, durable=True)
        client = await FibonacciRpcClient.connect(node.url, queue=queue_name)
        try:
            yield client
        finally:
            await client.close()
            await (await connection.channel()).queue_delete(queue_name)


async def test_a_call_ends_at_its_timeout_when_the_broker_freezes(node, private_client):
    """The broker takes the request, then stops answering: the call still ends on time.

    Before: the wait had the call's timeout, and then asking the broker why no reply came
    had up to three seconds of its own (about 7 s in all here for a 4 s call). The call has
    4 s so that the request, which expires with it, is surely still queued when the test sees
    it and freezes the node, even on a machine that stalls for a second or two.
    """
    connection = await aio_pika.connect(node.url)
    async with connection, watch_loop() as watch:
        call = asyncio.ensure_future(private_client.call(5, timeout=4))
        await wait_for_depth(connection, private_client.queue, 1, 4, "the request queued")
        assert not call.done(), "the call ended before the broker froze: nothing was tested"
        with frozen(node):
            with pytest.raises(RpcTimeout, match="within 4 s"):
                await call
    assert_ended_on_time(watch, 4)


async def test_a_call_to_a_frozen_broker_ends_at_its_timeout(node, private_client):
    with frozen(node):
        async with watch_loop() as watch:
            with pytest.raises(RpcTimeout, match="did not confirm the request in time"):
                await private_client.call(5, timeout=0.5)
    assert_ended_on_time(watch, 0.5)


async def test_a_timed_out_call_still_says_why_within_its_timeout(private_client):
    """The queue check runs while the call waits, so the reason costs no extra time."""
    async with watch_loop() as watch:
        with pytest.raises(RpcTimeout, match="nobody consumes that queue"):
            await private_client.call(5, timeout=2)  # the check starts 1 s before the deadline
    assert_ended_on_time(watch, 2)


async def test_retries_share_the_call_timeout(private_client):
    async with watch_loop() as watch:
        with pytest.raises(RpcTimeout, match=r"within 0.6 s \(3 tries"):
            await private_client.call(5, timeout=0.6, retries=2)
    assert watch.took > 0.6 - 0.01, f"a 0.6 s call with retries ended after {watch.took:.2f} s"
    assert_ended_on_time(watch, 0.6)  # each try taking 0.6 s would take 1.8 s


async def test_a_cancelled_call_raises_cancelled_error_even_while_the_client_closes(
    node, private_client
):
    """A cancellation from outside is the caller's, whatever else happens at that moment.

    Before: on Python 3.10, which cannot tell who cancelled, a call cancelled while its
    client was closing raised RpcConnectionError.
    """
    with frozen(node):
        call = asyncio.ensure_future(private_client.call(5, timeout=30))
        await wait_until(lambda: private_client.in_flight == 1, 5, "the request in flight")
        # In one step: the close is scheduled first and runs first, then the call wakes up
        # to the caller's cancellation, with its channel already closing.
        closing = asyncio.ensure_future(private_client.close())
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    await asyncio.wait_for(closing, 30)  # thawed: the close completes


async def test_a_cancelled_call_while_waiting_for_the_reply_raises_cancelled_error(
    private_client,
):
    call = asyncio.ensure_future(private_client.call(5, timeout=30))
    await wait_until(lambda: private_client.in_flight == 1, 5, "the request in flight")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert private_client.in_flight == 0
