"""A timed-out call says why: nobody consumes the queue, or the workers are too slow."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fibrpc_helpers import DEFAULT_TIMEOUT, FibonacciRpcClient, FibonacciRpcWorker, RpcTimeout


async def test_a_timeout_on_a_queue_nobody_consumes_says_so(connection, client, queue_name):
    await (await connection.channel()).declare_queue(queue_name, durable=True)
    with pytest.raises(RpcTimeout, match="nobody consumes that queue") as caught:
        await client.call(5, timeout=2)  # the queue check starts 1 s before the deadline
    assert "request(s) waiting" in str(caught.value)
    assert f"worker --queue {queue_name}" in str(caught.value)  # what to run about it
    assert client.in_flight == 0


async def test_a_timeout_with_a_slow_worker_says_the_workers_are_busy(url, queue_name):
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, service_time=4)
    try:
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            with pytest.raises(RpcTimeout, match="1 worker\\(s\\) consume that queue"):
                await client.call(5, timeout=2)
    finally:
        await worker.stop()


async def test_a_call_with_no_timeout_anywhere_ends_at_the_default_timeout(
    url, connection, queue_name, monkeypatch
):
    """No timeout at connect, none at call: the call still ends, at DEFAULT_TIMEOUT.

    Waiting the real 10 s would slow the suite, so timers of DEFAULT_TIMEOUT / 2 seconds or
    more (whoever asks for them) are shortened by DEFAULT_TIMEOUT - 2 s, but never below a
    tenth: the call's deadline comes after 2 s, and the queue check keeps its real second
    before it. The call must have asked for a timer of DEFAULT_TIMEOUT, and must end with
    RpcTimeout when it fires; the request it left in the queue carries the same expiration.
    """
    assert 0 < DEFAULT_TIMEOUT <= 60, "the default must be finite and sensible"
    loop = asyncio.get_running_loop()
    asked: list[float] = []
    call_later, call_at = loop.call_later, loop.call_at

    def compress(delay: float) -> float:
        if delay < DEFAULT_TIMEOUT / 2:
            return delay
        asked.append(delay)
        return max(delay / 10, delay - (DEFAULT_TIMEOUT - 2.0))

    def compressed_call_later(delay: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        return call_later(compress(delay), *args, **kwargs)

    def compressed_call_at(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        return call_at(loop.time() + compress(when - loop.time()), *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", compressed_call_later)
    monkeypatch.setattr(loop, "call_at", compressed_call_at)  # asyncio.timeout, wait_for

    channel = await connection.channel()
    await channel.declare_queue(queue_name, durable=True)  # a queue nobody consumes
    client = await FibonacciRpcClient.connect(url, queue=queue_name)
    try:
        assert client.timeout == DEFAULT_TIMEOUT
        started = time.monotonic()
        with pytest.raises(RpcTimeout, match=f"within {DEFAULT_TIMEOUT:g} s") as caught:
            await asyncio.wait_for(client.call(7), 30)  # wait_for: a hang fails, not blocks
        assert "nobody consumes that queue" in str(caught.value)
        assert time.monotonic() - started < DEFAULT_TIMEOUT / 2, "the clock was not compressed"
        assert any(abs(delay - DEFAULT_TIMEOUT) < 0.05 for delay in asked), (
            f"the call armed no timer of DEFAULT_TIMEOUT = {DEFAULT_TIMEOUT:g} s: {asked}"
        )
        assert client.in_flight == 0

        # The request it sent expires when its caller stops waiting: nobody computes it later.
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        request = await queue.get(no_ack=True, timeout=5)
        assert request.body == b"7" and request.reply_to == client.callback_queue.name
        assert request.expiration == DEFAULT_TIMEOUT  # aio-pika decodes the wire's "10000" ms
    finally:
        await client.close()


async def test_retries_whose_time_runs_out_end_in_a_timeout_and_leave_the_client_working(
    connection, client, queue_name
):
    """The event loop stalls (a blocking call elsewhere in the program), so the tries' timers
    fire late: no try may then be sent with no time left (a negative expiration, which
    RabbitMQ refuses by closing the client's channel under every call)."""
    channel = await connection.channel()
    await channel.declare_queue(queue_name, durable=True)  # a queue nobody consumes
    loop = asyncio.get_running_loop()
    for _ in range(5):
        call = asyncio.ensure_future(client.call(5, timeout=0.002, retries=8))
        loop.call_later(0.001, time.sleep, 0.03)  # the stall
        with pytest.raises(RpcTimeout, match="within 0.002 s"):
            await call
    assert not client.channel.is_closed
    with pytest.raises(RpcTimeout, match="nobody consumes that queue"):
        await client.call(5, timeout=2)
