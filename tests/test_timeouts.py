"""A timed-out call says why: nobody consumes the queue, or the workers are too slow."""

from __future__ import annotations

import pytest

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, RpcTimeout


async def test_a_timeout_on_a_queue_nobody_consumes_says_so(connection, client, queue_name):
    await (await connection.channel()).declare_queue(queue_name)
    with pytest.raises(RpcTimeout, match="nobody consumes that queue") as caught:
        await client.call(5, timeout=0.3)
    assert "request(s) waiting" in str(caught.value)
    assert f"worker --queue {queue_name}" in str(caught.value)  # what to run about it
    assert client.in_flight == 0


async def test_a_timeout_with_a_slow_worker_says_the_workers_are_busy(url, queue_name):
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, service_time=2)
    try:
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            with pytest.raises(RpcTimeout, match="1 worker\\(s\\) consume that queue"):
                await client.call(5, timeout=0.3)
    finally:
        await worker.stop()
