"""Exercise of notebook 03: the correlation map, a future per ``correlation_id``.

The student completes ``on_reply`` and ``call`` of a class like 03's ``RpcClient``::

    class MatchingClient:
        def __init__(self, channel, callback_queue, request_queue_name: str) -> None:
            self.channel, self.callback_queue = channel, callback_queue
            self.request_queue_name = request_queue_name
            self.pending: dict[str, asyncio.Future] = {}  # correlation id -> its call's future
            self.discarded = 0  # replies that matched no waiting call

        async def on_reply(self, message) -> None: ...   # resolve its future, or discard
        async def call(self, n: int, timeout: float = 5.0) -> int: ...

The check declares the callback queue and consumes it with the student's ``on_reply`` (so
it sees an exception raised there, which aio-pika would only log), then makes five calls at
once through a :class:`~.awkward.ShufflingWorker`: a stranger's reply first, then the five
replies in reverse order, each twice. Last, a call that is never answered must time out
and leave nothing in ``pending``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from ..fib import fib
from .awkward import SILENT_N, ShufflingWorker
from .live import Playground
from .verdict import ExerciseFailed, described, failure, passed, student

NOTEBOOK = "03_correlation_id"
NUMBERS = (2, 3, 4, 5, 6)  # fib 1, 2, 3, 5, 8: a reply matched to the wrong call shows
SECONDS = 8.0
SILENT_TIMEOUT = 0.5
STUB = ("in call, register a future in self.pending under a fresh correlation id, publish "
        "with correlation_id and reply_to, await the future with a timeout and pop the id in "
        "a finally; in on_reply, pop the future of message.correlation_id and set its result, "
        "or count the reply in self.discarded")


class _Guarded:
    """The student's ``on_reply`` as the consumer, with every exception it raises kept and
    every reply counted once it has been handled."""

    def __init__(self, on_reply: Any, expected: int) -> None:
        self.on_reply, self.expected = on_reply, expected
        self.errors: list[tuple[str | None, BaseException]] = []
        self.handled = 0
        self.all_handled = asyncio.Event()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        try:
            async with asyncio.timeout(SECONDS):
                await self.on_reply(message)
        except Exception as error:  # TimeoutError included: on_reply must never wait long
            self.errors.append((message.correlation_id, error))
        finally:
            self.handled += 1
            if self.handled >= self.expected:
                self.all_handled.set()


async def check_correlation_map(client_class: type, url: str | None = None) -> str:
    """Check a notebook-03 client: ``client_class(channel, callback_queue, request_queue_name)``
    with ``pending``, ``discarded``, ``on_reply(message)`` and ``call(n, timeout)``. Prints and
    returns the line of success; raises ExerciseFailed naming the first mistake found."""
    async with Playground("correlation", url) as lab:
        worker = ShufflingWorker(await lab.channel(), batch=len(NUMBERS))
        request_queue = await lab.declare_request_queue(worker.channel)
        await worker.start(request_queue)
        channel = await lab.channel()
        callback_queue = await channel.declare_queue(exclusive=True)
        client = client_class(channel, callback_queue, request_queue)
        guarded = _Guarded(client.on_reply, expected=2 * len(NUMBERS) + 1)
        await callback_queue.consume(guarded, no_ack=True)

        results = await student(
            asyncio.gather(*(client.call(n) for n in NUMBERS), return_exceptions=True),
            what=f"{len(NUMBERS)} calls at once", seconds=SECONDS, stub=STUB,
            hang="every call must end: await its future with asyncio.wait_for(future, timeout)",
            notebook=NOTEBOOK)
        _check_calls(dict(zip(NUMBERS, results, strict=True)), worker, guarded)
        try:
            async with asyncio.timeout(SECONDS):
                await guarded.all_handled.wait()
        except TimeoutError:
            pass  # fewer replies reached on_reply: the errors or the count below say why
        _check_replies(client, guarded, worker)
        await _check_timeout(client, worker)
    return passed(f"{len(NUMBERS)} calls answered out of order, each reply twice, plus a "
                  "stranger's: every call got its own answer, 6 replies discarded and "
                  "counted, none raised; an unanswered call timed out and left pending empty")


def _check_calls(results: dict[int, Any], worker: ShufflingWorker, guarded: _Guarded) -> None:
    for result in results.values():
        if isinstance(result, NotImplementedError):
            raise failure("call is not written yet (it raises NotImplementedError)", STUB,
                          NOTEBOOK)
    if any(isinstance(error, NotImplementedError) for _, error in guarded.errors):
        # the calls time out because no reply reaches them: say which method is missing
        raise failure("on_reply is not written yet (it raises NotImplementedError)", STUB,
                      NOTEBOOK)
    for n, result in results.items():
        if isinstance(result, TimeoutError) and guarded.errors:  # the replies came, and failed
            raise failure(f"call({n}) timed out: on_reply raised "
                          f"{described(guarded.errors[0][1])} on its reply", STUB, NOTEBOOK)
        if isinstance(result, TimeoutError):
            sent = worker.replies_sent > 0
            raise failure(
                f"call({n}) timed out" + (", though its reply came (twice)" if sent else
                                          ": no reply came, as no worker saw all the requests"),
                "publish with correlation_id and reply_to=self.callback_queue.name, and in "
                "on_reply set the result of the future that message.correlation_id names"
                if sent else "publish each request to self.request_queue_name, with "
                "correlation_id and reply_to", NOTEBOOK)
        if isinstance(result, BaseException):
            raise failure(f"call({n}) raised {described(result)}", STUB, NOTEBOOK)
    for n, result in results.items():
        if result != fib(n):
            raise failure(
                f"call({n}) returned {result!r}, not fib({n}) = {fib(n)}: the replies came in "
                "another order than the requests", "match a reply to its call by "
                "correlation_id (self.pending), never by the order replies arrive in",
                NOTEBOOK)


def _check_replies(client: Any, guarded: _Guarded, worker: ShufflingWorker) -> None:
    for correlation_id, error in guarded.errors:
        if isinstance(error, NotImplementedError):
            raise failure("on_reply is not written yet (it raises NotImplementedError)", STUB,
                          NOTEBOOK)
        if correlation_id == worker.stranger:
            kind = type(error).__name__
            raise failure(f"a reply with an unknown correlation_id raised {kind}",
                          "discard it (self.pending.pop(id, None)) and count it in "
                          "self.discarded, never raise", NOTEBOOK)
        if isinstance(error, asyncio.InvalidStateError):
            raise failure("a duplicate reply raised InvalidStateError (its future already "
                          "had a result)", "pop the future when its reply comes, and discard "
                          "a reply whose id is no longer pending", NOTEBOOK)
        raise failure(f"on_reply raised {described(error)} on a duplicate reply",
                      "discard a reply that matches no waiting call and count it, never raise",
                      NOTEBOOK)
    expected = len(NUMBERS) + 1
    if client.discarded != expected:
        raise failure(f"self.discarded is {client.discarded!r} after {len(NUMBERS)} duplicate "
                      f"replies and 1 with an unknown correlation_id, not {expected}",
                      "add 1 to self.discarded for every reply that matches no waiting call",
                      NOTEBOOK)
    if client.pending:
        raise failure(f"self.pending still holds {len(client.pending)} id(s) after every "
                      "call ended", "remove a call's id in a finally, however the call ends",
                      NOTEBOOK)


async def _check_timeout(client: Any, worker: ShufflingWorker) -> None:
    try:
        result = await student(
            client.call(SILENT_N, timeout=SILENT_TIMEOUT), what=f"call({SILENT_N}, "
            f"timeout={SILENT_TIMEOUT}), which no worker answers", seconds=SECONDS / 2,
            hang="give up after timeout: asyncio.wait_for(future, timeout)", stub=STUB,
            notebook=NOTEBOOK)
    except ExerciseFailed:
        raise
    except TimeoutError:
        if client.pending:
            left = len(client.pending)
            raise failure(f"a call that timed out left its id in self.pending ({left} left)",
                          "pop the id in a finally, so a timed-out call leaves nothing behind",
                          NOTEBOOK) from None
        return
    except Exception as error:
        raise failure(f"call({SILENT_N}, timeout={SILENT_TIMEOUT}), which no worker answers, "
                      f"raised {described(error)} instead of TimeoutError",
                      "let asyncio.wait_for's TimeoutError reach the caller", NOTEBOOK) from None
    raise failure(f"call({SILENT_N}, timeout={SILENT_TIMEOUT}), which no worker answers, "
                  f"returned {result!r}", "return only the result of the call's own reply",
                  NOTEBOOK)
