"""Exercise of notebook 04: the worker. Reply, then ack; one request at a time; an error
reply for bad input.

The student completes one function, like 04's ``start_worker``::

    async def serve_requests(channel, request_queue_name: str) -> None:
        '''Start consuming request_queue_name on channel; return once consuming.'''

The check queues six requests first and only then calls it, so a worker without a
prefetch limit is handed all six at once (and is seen holding several); it reads the order
of each reply and its ack from this process's aio-pika hooks (:mod:`.observed`). Then a
client of :mod:`.awkward` sends input no honest client would, and one good request after
it: the worker must answer each with an error reply (AMQP ``type`` = ``error``), ack it,
and go on serving.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..fib import fib
from ..wire import ERROR_TYPE
from .awkward import RawClient
from .live import Playground
from .observed import CallbackErrors, Observed
from .verdict import failure, passed, student

NOTEBOOK = "04_the_worker"
BURST = (1, 2, 3, 4, 5, 6)
BAD_BODIES = (b"ten", b"-5", b"2.5", b"")
SECONDS = 5.0
STUB = ("set prefetch_count=1 on the channel, consume the request queue, and in the callback "
        "publish the reply to request.reply_to with its correlation_id, then ack the request")


async def check_worker(serve: Callable[[Any, str], Awaitable[None]],
                       url: str | None = None) -> str:
    """Check a notebook-04 worker: ``await serve(channel, request_queue_name)`` starts it.
    Prints and returns the line of success; raises ExerciseFailed naming the first mistake."""
    async with Playground("worker", url) as lab:
        client = await RawClient(await lab.channel(), "").start()
        client.request_queue = await lab.declare_request_queue(client.channel)
        queue = client.request_queue
        burst = {n: await client.send(str(n).encode()) for n in BURST}  # queued before it runs
        with Observed() as seen, CallbackErrors() as raised:
            await student(serve(await lab.channel(), queue), what="serve_requests(channel, "
                          "request_queue_name)", seconds=SECONDS, stub=STUB, notebook=NOTEBOOK,
                          hang="start consuming (queue.consume(on_request)) and return; the "
                          "broker calls on_request for each request")
            await _check_answers(client, seen, burst)
            await _check_ack_after_reply(client, seen, burst)
            _check_prefetch(seen, queue)
            await _check_bad_input(client, seen, raised)
    return passed(f"{len(BURST)} requests answered one at a time (prefetch 1), each reply "
                  f"published before its ack; {len(BAD_BODIES)} bad requests answered with "
                  "error replies and acked, and the worker kept serving")


async def _check_answers(client: RawClient, seen: Observed, burst: dict[int, str]) -> None:
    for n, correlation_id in burst.items():
        replies = await client.replies_to(correlation_id, seconds=SECONDS)
        if replies is None:
            queue = client.request_queue
            if not seen.deliveries(queue):
                raise failure("the worker received no request: it does not consume the request "
                              "queue", "await queue.consume(on_request) on the queue named "
                              "request_queue_name", NOTEBOOK)
            if not any(e.kind == "publish" and e.routing_key == client.callback_queue
                       for e in seen.events):
                raise failure(f"the request for fib({n}) got no reply: nothing was published "
                              "to its reply_to", "publish the reply to the default exchange "
                              "with routing_key=request.reply_to", NOTEBOOK)
            raise failure(f"the reply to fib({n}) did not carry the request's correlation_id",
                          "copy it: aio_pika.Message(body, correlation_id=request."
                          "correlation_id)", NOTEBOOK)
        (reply,) = replies
        if reply.body != str(fib(n)).encode() or reply.type == ERROR_TYPE:
            raise failure(f"the reply to fib({n}) was {reply.body[:30]!r}, not "
                          f"{str(fib(n)).encode()!r}", "answer str(fib(n)).encode()", NOTEBOOK)


async def _check_ack_after_reply(client: RawClient, seen: Observed,
                                 burst: dict[int, str]) -> None:
    queue = client.request_queue
    if any(e.no_ack for e in seen.deliveries(queue)):
        raise failure("the worker consumes the request queue with no_ack=True: the broker "
                      "forgets each request the moment it is delivered, so a worker that dies "
                      "loses it", "consume without no_ack and ack after the reply", NOTEBOOK)

    def all_acked() -> bool:
        return all(seen.index("ack", queue, c) is not None for c in burst.values())

    if not await seen.until(all_acked, SECONDS):
        raise failure("the worker replied but never acked a request: the broker keeps it, "
                      "and hands it to another worker when this one goes", "await "
                      "request.ack() after publishing the reply", NOTEBOOK)
    for n, correlation_id in burst.items():
        acked = seen.index("ack", queue, correlation_id)
        replied = seen.index("publish", client.callback_queue, correlation_id)
        if acked is not None and replied is not None and acked < replied:
            raise failure(f"the worker acked the request for fib({n}) before publishing its "
                          "reply: a worker dying in between loses the request for good",
                          "publish the reply first, then ack", NOTEBOOK)


def _check_prefetch(seen: Observed, queue: str) -> None:
    held = seen.most_held(queue)
    if held > 1:
        raise failure(f"the worker held {held} requests at once: with no prefetch limit the "
                      "broker hands a busy worker more while others sit idle", "await "
                      "channel.set_qos(prefetch_count=1) before consuming, for fair dispatch",
                      NOTEBOOK)


async def _check_bad_input(client: RawClient, seen: Observed, raised: CallbackErrors) -> None:
    queue = client.request_queue
    sent = {body: await client.send(body) for body in BAD_BODIES}
    for body, correlation_id in sent.items():
        replies = await client.replies_to(correlation_id, seconds=SECONDS)
        if replies is None:
            why = f": the callback raised {raised.first()}" if raised.errors else ""
            raise failure(f"the bad request {body!r} got no reply{why}, so its caller "
                          "waits until it times out", "catch the ValueError and "
                          "publish an error reply, aio_pika.Message(reason, correlation_id=..., "
                          "type='error')", NOTEBOOK)
        if replies[0].type != ERROR_TYPE:
            raise failure(f"the reply to the bad request {body!r} was {replies[0].body[:30]!r} "
                          f"with type {replies[0].type!r}", "mark an error reply with "
                          "type='error' and say why in its body (see fibrpc_helpers/wire.py)",
                          NOTEBOOK)
    if not await seen.until(lambda: all(seen.index("ack", queue, c) is not None
                                        for c in sent.values()), SECONDS):
        raise failure("a bad request was answered but never acked: the broker would hand it "
                      "out again and again", "ack a bad request after its error reply, like "
                      "any other", NOTEBOOK)
    still = await client.send(b"10")
    replies = await client.replies_to(still, seconds=SECONDS)
    if replies is None or replies[0].body != str(fib(10)).encode():
        raise failure("after the bad requests the worker no longer answers fib(10)",
                      "never let an exception escape the callback: answer it and go on",
                      NOTEBOOK)
