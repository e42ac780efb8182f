"""Graceful shutdown: SIGTERM under load stops consuming, finishes what it holds, exits 0.

Nothing is lost: the requests the worker held are answered and acked before it exits, and
the ones it never received stay in the queue for the next worker.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from waits import queue_depth, wait_until

from fibrpc_helpers import FibonacciRpcClient, fib
from fibrpc_helpers.lab.processes import WorkerProcesses

pytestmark = pytest.mark.timeout(120)

CALLS = 200
PREFETCH = 8


async def test_sigterm_under_load_finishes_what_the_worker_holds_and_loses_nothing(
    url, queue_name, connection
):
    async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
        # 50 ms a request and 8 at a time: the worker always holds requests when told to stop.
        with WorkerProcesses(1, url=url, queue=queue_name, prefetch=PREFETCH,
                             sleep_ms=50) as first:
            ns = [n % 300 for n in range(CALLS)]
            calls = asyncio.gather(*(client.call(n, timeout=60) for n in ns))
            await wait_until(lambda: client.replies.answered >= 3 * PREFETCH, 30, "replies")
            answered_at_sigterm = client.replies.answered
            first.processes[0].send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.processes[0].wait, 30)
        assert code == 0, "a worker stopped with SIGTERM exits 0"

        # It answered what it held before exiting, so none of it goes back to the queue...
        async def settled() -> bool:  # its last replies may still be on their way to us
            return client.replies.answered + await queue_depth(connection, queue_name) == CALLS

        await wait_until(settled, 10, "every request answered or waiting in the queue")
        answered_by_first = client.replies.answered
        assert answered_by_first > answered_at_sigterm, "the held requests were not finished"
        waiting = await queue_depth(connection, queue_name)
        assert waiting == CALLS - answered_by_first, "requests lost or requeued"
        assert not calls.done()

        # ...and the rest wait in the queue for the next worker: every call ends right.
        with WorkerProcesses(1, url=url, queue=queue_name, prefetch=PREFETCH) as second:
            results = await asyncio.wait_for(calls, 60)
            assert second.stop() == [0]
        assert results == [fib(n) for n in ns]
        assert client.replies.answered == CALLS
        assert client.replies.discarded == 0, "nothing was answered twice"
