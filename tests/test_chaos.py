"""Workers that die: real processes, SIGKILL under load, and the reply-then-die race.

A worker acks a request only after it has published its reply (on the same channel, so the
broker routes the reply first), so a worker killed at any moment loses nothing: the broker
redelivers what it held to another worker. Killed between the reply and the ack, it makes
the request run twice; the client keeps the first reply and discards (and counts) the second.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys

import aio_pika
import pytest
from waits import queue_depth, wait_for_depth, wait_until

from fibrpc_helpers import (
    FibonacciRpcClient,
    FibonacciRpcWorker,
    NoWorkerError,
    RpcTimeout,
    fib,
)
from fibrpc_helpers.lab.processes import WorkerProcesses

pytestmark = pytest.mark.timeout(120)

CALLS = 300
HELD = 4  # the requests the killed worker holds: its prefetch


async def test_a_worker_killed_with_sigkill_while_it_holds_requests_loses_no_call(
    url, queue_name, connection, request_queue
):
    """The killed worker provably holds requests: the broker must redeliver them.

    The victim starts alone on a queue holding HELD requests, so it takes all of them (its
    prefetch) and, at 10 minutes a request, answers none. Two other workers then serve
    hundreds more calls, and the victim is killed with SIGKILL mid-run. The request queue is
    durable quorum (tutorial six's today), whose redeliveries the workers adopt as they are.
    """

    async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
        held_ns = [30, 31, 32, 33]
        held = [asyncio.ensure_future(client.call(n, timeout=90)) for n in held_ns]
        await wait_for_depth(connection, queue_name, HELD, 30, f"{HELD} requests queued")
        with WorkerProcesses(1, url=url, queue=queue_name, prefetch=HELD,
                             sleep_ms=600_000) as victim:
            # The only consumer, with room for HELD: once the queue is empty, it holds them all.
            await wait_for_depth(connection, queue_name, 0, 30, "the victim to take them")
            with WorkerProcesses(2, url=url, queue=queue_name, prefetch=4,
                                 sleep_ms=50) as survivors:
                ns = [n % 500 for n in range(CALLS - HELD)]
                rest = asyncio.gather(*(client.call(n, timeout=90) for n in ns))
                await wait_until(lambda: client.replies.answered >= CALLS // 4, 60, "a quarter")
                answered_at_kill = client.replies.answered
                assert not any(call.done() for call in held), "the victim let go of a request"
                killed = victim.kill(0)
                results = await asyncio.wait_for(rest, 60)  # any lost call would raise here
                held_results = await asyncio.wait_for(asyncio.gather(*held), 60)
                survivor_codes = survivors.stop()
            victim_codes = victim.stop()

        assert 0 < answered_at_kill < CALLS - HELD, "the kill must land mid-run"
        assert results == [fib(n) for n in ns], "a wrong or mismatched result"
        # Delivered to the victim, unanswered when it died, answered now: each was redelivered
        # to a survivor, and answered exactly once.
        assert held_results == [fib(n) for n in held_ns], "a held request was lost or wrong"
        assert client.replies.answered == CALLS
        # The victim never replied, so there is no second reply to discard.
        assert client.replies.duplicate == client.replies.discarded == 0
        assert client.in_flight == 0
    assert victim_codes == [-9] and killed == victim.pids[0]
    assert survivor_codes == [0, 0], "the surviving workers exit cleanly on SIGTERM"
    assert await queue_depth(connection, queue_name) == 0


# A worker with the race in it, as a real process: it declares the request queue as RabbitMQ's
# tutorial six does today (durable quorum), takes one request, publishes the reply (and waits
# for the broker's confirm), then dies before it can ack.
REPLY_THEN_DIE = """
import asyncio, os, sys
import aio_pika
from fibrpc_helpers import fib

async def main(url, queue_name):
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(
        queue_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    async with queue.iterator() as requests:
        print("consuming", flush=True)
        async for request in requests:
            reply = aio_pika.Message(str(fib(int(request.body))).encode(),
                                     correlation_id=request.correlation_id)
            await channel.default_exchange.publish(reply, routing_key=request.reply_to)
            os._exit(17)  # dead before request.ack()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_worker_that_replies_and_dies_before_acking_makes_a_duplicate_reply(
    url, queue_name, connection
):
    dying = subprocess.Popen(
        [sys.executable, "-c", REPLY_THEN_DIE, url, queue_name],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert dying.stdout is not None
        assert dying.stdout.readline() == "consuming\n", "the dying worker did not start"
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            # The first reply answers the call...
            assert await client.call(20, timeout=30) == fib(20)
            assert await asyncio.to_thread(dying.wait, 30) == 17
            # ...and the broker, which never got the ack, puts the request back in the queue.
            await wait_for_depth(connection, queue_name, 1, 10, "the unacked request requeued")
            worker = await FibonacciRpcWorker.start(url, queue=queue_name)
            try:
                await wait_until(lambda: client.replies.duplicate == 1, 30, "the duplicate")
                assert worker.counts.answered == 1  # the redelivered request, answered again
                assert client.replies.answered == 1
                assert client.replies.discarded == 1
                assert await client.call(21, timeout=10) == fib(21)  # the client carries on
            finally:
                await worker.stop()
    finally:
        if dying.poll() is None:
            dying.kill()
        dying.wait()
        if dying.stdout:
            dying.stdout.close()
    assert await queue_depth(connection, queue_name) == 0


async def test_the_trace_draws_both_replies_of_the_race(
    url, queue_name, connection, request_queue
):
    """The same race in this process, traced: two deliveries, two replies, one answer."""
    from fibrpc_helpers.lab.trace import Trace

    async def reply_then_die() -> None:
        careless = await aio_pika.connect(url)
        channel = await careless.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        async with queue.iterator() as requests:
            async for request in requests:
                await channel.default_exchange.publish(
                    aio_pika.Message(b"6765", correlation_id=request.correlation_id),
                    routing_key=request.reply_to,
                )
                break  # no ack
        await careless.close()

    async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
        async with Trace() as trace:
            careless = asyncio.create_task(reply_then_die())
            assert await client.call(20, timeout=10) == 6765
            await careless
            worker = await FibonacciRpcWorker.start(url, queue=queue_name)
            await wait_until(lambda: client.replies.duplicate == 1, 10, "the duplicate")
        await worker.stop()
    (call,) = trace.calls
    # Two replies from two different workers (the lanes' names are the trace's business).
    repliers = [who for _, who, _ in call.replies_sent]
    assert len(repliers) == len(set(repliers)) == 2
    assert [body for _, _, body in call.replies_sent] == ["6765", "6765"]
    assert len(call.arrivals) == 2 and call.replies == 2 and call.redelivered
    assert call.acked is not None and call.acked > call.replies_sent[1][0]
    assert trace.draw().axes  # draws without error


@pytest.mark.skipif(
    int(importlib.metadata.version("aio-pika").split(".")[0]) < 10,
    reason="aio-pika < 10 does not restore a consumer that the broker cancelled",
)
async def test_a_worker_whose_queue_is_deleted_declares_it_again_and_serves(
    url, queue_name, connection
):
    """A teacher deletes the queue under a running worker: it comes back by itself."""
    worker = await FibonacciRpcWorker.start(url, queue=queue_name)
    try:
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            assert await client.call(10) == 55
            await (await connection.channel()).queue_delete(queue_name)
            # The broker cancels the worker's consumer; its robust channel re-declares the
            # queue and consumes again (until then, a call finds no queue: NoWorkerError).
            async def served() -> bool:
                try:
                    assert await client.call(11, timeout=5) == 89
                except (NoWorkerError, RpcTimeout):  # not consuming again yet
                    return False
                return True

            await wait_until(served, 15, "the worker to come back", interval=0.1)
    finally:
        await worker.stop()
