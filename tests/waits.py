"""Event-based waits for the tests: poll a condition until it holds, within a deadline.

The machine running the tests is shared and noisy, so no test sleeps a fixed time to let
something happen: it waits for the thing itself, and fails with what it was waiting for when
the deadline passes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    what: str,
    *,
    interval: float = 0.01,
) -> None:
    """Return once ``condition()`` is true (it may be a coroutine function); fail after
    ``timeout`` seconds naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(interval)


async def _passive_declare(
    connection: aio_pika.abc.AbstractConnection, queue_name: str
) -> aio_pika.abc.AbstractQueue:
    channel = await connection.channel()
    try:
        return await channel.declare_queue(queue_name, passive=True)
    finally:
        await channel.close()


async def queue_depth(connection: aio_pika.abc.AbstractConnection, queue_name: str) -> int:
    """How many requests wait (ready, not held by a worker) in the queue."""
    declared = await _passive_declare(connection, queue_name)
    return declared.declaration_result.message_count


async def consumer_count(connection: aio_pika.abc.AbstractConnection, queue_name: str) -> int:
    """How many consumers (workers) the queue has now."""
    declared = await _passive_declare(connection, queue_name)
    return declared.declaration_result.consumer_count


async def wait_for_depth(
    connection: aio_pika.abc.AbstractConnection,
    queue_name: str,
    depth: int,
    timeout: float,
    what: str,
) -> None:
    """Return once exactly ``depth`` requests wait in the queue; fail naming ``what``."""

    async def reached() -> bool:
        return await queue_depth(connection, queue_name) == depth

    await wait_until(reached, timeout, what, interval=0.05)


@dataclass
class LoopWatch:
    """What :func:`watch_loop` saw: the block's wall time and the loop's longest stall."""

    took: float = 0.0
    longest_gap: float = 0.0


@asynccontextmanager
async def watch_loop() -> AsyncIterator[LoopWatch]:
    """Time the block while a task ticks every 10 ms, noting the longest gap between ticks.

    A bound on a call's wall time then allows for what the machine took from this process:
    a timer cannot fire while the loop is stalled, so ``took < timeout + slack +
    longest_gap`` holds for a correct call on a machine that stalls, and still fails a call
    that waits a whole extra timeout.
    """
    watch = LoopWatch()

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            watch.longest_gap = max(watch.longest_gap, now - last)
            last = now

    ticking = asyncio.ensure_future(ticker())
    try:
        await asyncio.sleep(0.02)  # ticking before the block's first step
        started = time.monotonic()
        yield watch
        watch.took = time.monotonic() - started
        await asyncio.sleep(0.02)  # a gap that lasted to the block's end is noted too
    finally:
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)


def assert_ended_on_time(watch: LoopWatch, timeout: float, slack: float = 0.3) -> None:
    """The call in ``watch``'s block ended within its timeout, plus ``slack``, plus whatever
    the loop was stalled."""
    allowed = timeout + slack + watch.longest_gap
    assert watch.took < allowed, (
        f"a {timeout:g} s call took {watch.took:.2f} s (allowed {allowed:.2f} s, "
        f"of which the loop's longest stall {watch.longest_gap:.2f} s)"
    )


async def longest_tick_gap(awaitable: Awaitable[Any]) -> tuple[Any, float]:
    """Await ``awaitable`` under :func:`watch_loop`; its result and the longest gap."""
    async with watch_loop() as watch:
        result = await awaitable
    return result, watch.longest_gap
