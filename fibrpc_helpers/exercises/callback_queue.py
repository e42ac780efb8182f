"""Exercise of notebook 02: one callback queue per client, named by the broker, exclusive.

The student completes a small class (attribute names as 02's cells have them)::

    class OneQueueClient:
        def __init__(self, channel, request_queue_name: str) -> None:
            self.channel, self.request_queue_name = channel, request_queue_name
            self.replies: asyncio.Queue = asyncio.Queue()

        async def start(self) -> None:      # declare the callback queue, consume it
            ...
        async def call(self, n: int) -> int:  # publish with reply_to, wait for the reply
            ...

The check starts two such clients, each on a connection of its own, beside a worker that
answers every request and notes each request's ``reply_to``; each client makes two calls.
The ``reply_to`` values tell what the student's code did: a new queue per call, one named
queue that both clients share, a queue another connection could consume.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.exceptions import ChannelLockedResource

from ..fib import fib
from ..lab.namespace import namespaced
from .awkward import RecordingWorker
from .live import Playground
from .verdict import ExerciseFailed, described, failure, passed, student

NOTEBOOK = "02_callback_queue"
SECONDS = 5.0
CALLS = {"first client": (3, 4), "second client": (5, 6)}
STUB = ("in start, declare a callback queue with declare_queue(exclusive=True) and consume it "
        "into self.replies; in call, publish with reply_to=self.callback_queue.name and await "
        "self.replies.get() with a timeout")


async def check_callback_queue(client_class: type, url: str | None = None) -> str:
    """Check a notebook-02 client: ``client_class(channel, request_queue_name)`` with
    ``start()`` and ``call(n)``. Prints and returns the line of success; raises
    ExerciseFailed naming the first mistake found."""
    async with Playground("callback", url) as lab:
        worker = RecordingWorker(await lab.channel())
        request_queue = await lab.declare_request_queue(worker.channel)
        await worker.start(request_queue)
        clients = [await _started(client_class, await lab.channel(), request_queue, who)
                   for who in CALLS]
        results: dict[int, Any] = {}

        async def calls(client: Any, numbers: tuple[int, ...]) -> None:
            for n in numbers:  # one after another: 02's client waits for one reply at a time
                results[n] = await _called(client, n)

        # both clients at once: a callback queue they share costs one wait, not one per call
        try:
            async with asyncio.TaskGroup() as group:  # one failing cancels the other
                for client, numbers in zip(clients, CALLS.values(), strict=True):
                    group.create_task(calls(client, numbers))
        except* ExerciseFailed as failed:
            raise failed.exceptions[0] from None
        await _diagnose(lab, worker, results)
    return passed("one callback queue per client, named by the broker and exclusive: "
                  f"{len(results)} calls by two clients, every reply on its client's own queue")


async def _started(client_class: type, channel: Any, request_queue: str, who: str) -> Any:
    client = client_class(channel, request_queue)
    try:
        await student(client.start(), what=f"start() of the {who}", seconds=SECONDS,
                      hang="declaring and consuming a queue takes milliseconds; await only "
                      "the broker's answers, not the replies", stub=STUB, notebook=NOTEBOOK)
    except ChannelLockedResource:
        raise failure(f"start() of the {who} could not declare its callback queue: the first "
                      "client holds an exclusive queue of the same name (RESOURCE_LOCKED)",
                      "declare it with no name, so the broker picks a unique one",
                      NOTEBOOK) from None
    except ExerciseFailed:
        raise
    except Exception as error:
        raise failure(f"start() of the {who} raised {described(error)}", STUB,
                      NOTEBOOK) from None
    return client


async def _called(client: Any, n: int) -> Any:
    """The call's result, or the exception it ended with (diagnosed after all calls)."""
    try:
        return await student(client.call(n), what=f"call({n})", seconds=SECONDS + 2,
                             hang="wait for the reply with asyncio.wait_for(..., timeout=5)",
                             stub=STUB, notebook=NOTEBOOK)
    except ExerciseFailed as error:
        if "not written yet" in str(error):
            raise
        return error
    except Exception as error:
        return error


async def _diagnose(lab: Playground, worker: RecordingWorker, results: dict[int, Any]) -> None:
    """The first mistake, from what the worker saw, then from what the calls returned."""
    reply_queues: dict[str, set[str]] = {}
    for who, numbers in CALLS.items():
        queues = set()
        for n in numbers:
            seen = await worker.for_body(str(n).encode(), SECONDS)
            if not seen:
                raise failure(f"call({n}) sent no request to the request queue",
                              "publish to the default exchange with routing_key="
                              "self.request_queue_name, the body str(n).encode()", NOTEBOOK)
            if not seen[0].reply_to:
                raise failure(f"the request of call({n}) had no reply_to, so the worker "
                              "could not answer", "give the Message reply_to=self."
                              "callback_queue.name", NOTEBOOK)
            queues.update(s.reply_to for s in seen if s.reply_to)
        for queue in queues:
            if queue.startswith(namespaced("")):  # a named queue in the student's namespace:
                lab.forget_later(queue)           # ours to remove; never anyone else's
        if len(queues) > 1:
            raise failure(f"the {who}'s calls named {len(queues)} different callback queues "
                          "in reply_to: a new queue per call costs three round trips each",
                          "declare one callback queue in start() and reuse it in every call",
                          NOTEBOOK)
        reply_queues[who] = queues
    first, second = reply_queues.values()
    if first & second:
        raise failure(f"the two clients shared one callback queue, {min(first)}: each could "
                      "take the other's replies", "declare it with no name (server-named) "
                      "and exclusive=True, so each client has its own", NOTEBOOK)
    for queue in first | second:
        if await lab.exists(queue) is True:
            raise failure(f"the callback queue {queue} is not exclusive: another connection "
                          "could consume it and take the replies", "declare it with "
                          "exclusive=True", NOTEBOOK)
    for n, result in results.items():
        if isinstance(result, BaseException):
            raise failure(f"call({n}) ended with {described(result)}, though its reply was "
                          "sent", "consume the callback queue in start() into self.replies "
                          "and return int(reply.body)", NOTEBOOK)
        if result != fib(n):
            raise failure(f"call({n}) returned {result!r}, not fib({n}) = {fib(n)}",
                          "return int(reply.body) of the reply taken from self.replies",
                          NOTEBOOK)
