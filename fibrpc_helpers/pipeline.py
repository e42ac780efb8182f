"""The next stage of an asynchronous pipeline: what tutorial six's "A note on RPC" recommends.

Nobody waits for a reply: each request names the *next stage's* queue in ``reply_to``, where
results wait, not in a caller's memory, until the next stage (``collect``) consumes them.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractQueue

from .errors import RemoteError, RpcConnectionError, RpcTimeout, translate
from .wire import decode_reply

Result = int | RemoteError
"""A result as the next stage sees it: fib(n), or the worker's error reply."""


class StageTimeout(RpcTimeout):
    """The next stage did not get all the results it expected before its deadline."""


async def collect(queue: AbstractQueue, count: int, *, timeout: float) -> dict[str, Result]:
    """Consume ``queue`` (declared by the caller) until ``count`` results arrived, an error
    reply as its ``RemoteError``; return them by correlation id. ``timeout`` is the whole wait."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive (seconds), got {timeout}")
    results: dict[str, Result] = {}
    if count == 0:
        return results

    async def take() -> None:
        # The iterator cancels its consumer on exit and requeues what it took but did not
        # hand out; each message is acked once its result is stored.
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    try:
                        result: Result = decode_reply(message.body, message.type)
                    except RemoteError as error:
                        result = error
                    results[message.correlation_id or ""] = result
                if len(results) >= count:
                    return

    # One task, owned here: awaited on every path, cancelled if it is still running.
    task = asyncio.ensure_future(take())
    try:
        await asyncio.wait([task], timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():  # our deadline cancelled it (an outside cancel raised above)
        raise StageTimeout(f"the next stage got {len(results)} of {count} results from queue "
                           f"{queue.name!r} in {timeout:g} s; check that workers consume the "
                           "request queue and that each request's reply_to names this queue")
    error = task.exception()
    if error is not None:  # a failure of the consumer: raise it here, as one of ours
        raise translate(error, doing=f"consuming the next stage's queue {queue.name!r}") from error
    if len(results) < count:  # the iterator ends quietly when its channel closes
        raise RpcConnectionError(f"the next stage's consumer of queue {queue.name!r} stopped "
                                 f"after {len(results)} of {count} results: its channel or "
                                 "connection closed. The results not taken are still in the "
                                 "queue; collect them again on a new channel.")
    return results
