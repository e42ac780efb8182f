"""The reference RPC worker of tutorial six: answer on ``reply_to``, then ack.

The order is the point: both go out on one channel, whose frames AMQP processes in order, so
a worker that dies at any moment loses nothing (a publisher confirm per reply would add no
safety, for a fifth of the CPU). A worker dying between the two makes the request run twice:
the work must be idempotent. Bad input gets an error reply (AMQP ``type`` ``error``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from .client import DEFAULT_QUEUE, connect_robust
from .errors import translate
from .fib import DEFAULT_MAX_N, fib
from .request_queue import QueueType, RequestQueue, declare_request_queue
from .wire import DEADLINE_HEADER, ERROR_TYPE, BadRequest, decode_request, encode_result

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 30.0
"""Seconds a reply may take to be written (a broker short of memory or disk blocks us)."""
STOP_TIMEOUT = 60.0
"""Seconds ``stop`` waits for the requests in hand before closing anyway."""
LOG_INTERVAL = 1.0
"""Seconds between two warnings of one kind: a burst of expired requests logs a line a second."""

_START_TRIES = 3  # a broker's internal error at start-up (see ``start``) is retried this often
_INTERNAL_ERROR = 541  # AMQP INTERNAL_ERROR


@dataclass
class WorkerCounts:
    """What this worker did with the requests it received."""

    answered: int = 0  # success replies published
    errors: int = 0  # error replies published (bad input, or the work failed)
    dropped: int = 0  # requests without reply_to: nobody to answer, acked and logged
    expired: int = 0  # requests whose x-deadline had passed: acked, neither computed nor answered
    abandoned: int = 0  # a redelivered request's reply failed again: nacked without requeue


async def _consume_as_it_is(channel: AbstractRobustChannel, name: str, kind: RequestQueue
                            ) -> AbstractQueue:
    """The request queue on the robust channel, re-declared so after every reconnection (a
    restart deletes a transient queue); passively if ``unknown``, as it could only be wrong."""
    if kind.durable is None:
        return await channel.declare_queue(name, passive=True)
    return await channel.declare_queue(name, durable=kind.durable, arguments=dict(kind.arguments))


class FibonacciRpcWorker:
    """Consumes a request queue and answers each request on its ``reply_to`` queue: ``await
    FibonacciRpcWorker.start()``, then ``await worker.stop()``. ``worker.request_queue`` says
    what it serves, ``worker.counts`` what it did."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractRobustChannel,
                 queue: AbstractQueue, *, compute: Callable[[int], int], max_n: int,
                 service_time: float, name: str, request_queue: RequestQueue) -> None:
        self.connection = connection
        self.channel = channel
        self.queue = queue
        self.compute = compute
        self.max_n = max_n
        self.service_time = service_time
        self.name = name
        self.request_queue = request_queue
        self.counts = WorkerCounts()
        self._last_warning: dict[str, float] = {}  # what was warned about -> when (monotonic)
        self._consumer_tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    async def start(cls, url: str | None = None, *, queue: str = DEFAULT_QUEUE, prefetch: int = 1,
                    compute: Callable[[int], int] = fib, max_n: int = DEFAULT_MAX_N,
                    service_time: float = 0.0, name: str | None = None,
                    queue_type: QueueType | None = None) -> FibonacciRpcWorker:
        """Connect, adopt or declare the request queue (``queue_type``: see
        :func:`declare_request_queue`), and serve it. ``prefetch``: unacked requests held at
        once (1 = fair dispatch); ``service_time``: seconds of I/O-like waiting per request."""
        if prefetch < 1:
            raise ValueError(f"prefetch must be 1 or more, got {prefetch}")
        if queue_type is not None:
            RequestQueue.asked(queue_type)  # a bad value fails before connecting
        for attempt in range(1, _START_TRIES + 1):
            connection = await connect_robust(url)
            try:
                # No publisher confirms: the reply and the ack go out in order on this channel.
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=prefetch)
                kind = await declare_request_queue(connection, queue, queue_type)
                consumed = await _consume_as_it_is(channel, queue, kind)
                worker = cls(connection, channel, consumed,  # type: ignore[arg-type]
                             compute=compute, max_n=max_n, service_time=service_time,
                             name=name or f"{socket.gethostname()}:{os.getpid()}",
                             request_queue=kind)
                worker._consumer_tag = await consumed.consume(worker._on_request)
                return worker
            except BaseException as error:
                await connection.close()
                if not isinstance(error, Exception):
                    raise  # a cancellation
                failure = translate(error, doing=f"starting a worker on queue {queue!r}")
                # RabbitMQ 3.x can fail the start of one of two workers that create the
                # same quorum queue at the same moment (541 INTERNAL_ERROR, which closes the
                # connection): that one starts again, and then finds the queue ready.
                if failure.reply_code != _INTERNAL_ERROR or attempt == _START_TRIES:
                    if failure is error:
                        raise
                    raise failure from error
                log.info("the broker failed this worker's start (%s); starting again", failure)
        raise AssertionError("unreachable: the last try returns or raises")

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._handle(message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        if not message.reply_to:
            self.counts.dropped += 1
            log.warning("request %r (correlation_id=%r) has no reply_to, so no one can get the "
                        "answer; acked and dropped", message.body[:20], message.correlation_id)
            await self._ack(message)
            return
        if self._expired(message):
            await self._ack(message)
            return
        reply = await self._reply_for(message.body, message.correlation_id)
        try:
            # mandatory=False (aio-pika's default is True): a reply whose queue has gone (the
            # client left) is dropped, and its request acked like any other.
            await self.channel.default_exchange.publish(reply, routing_key=message.reply_to,
                                                        mandatory=False, timeout=PUBLISH_TIMEOUT)
        except Exception as error:
            # Not acked: handed back (once, so nothing loops forever) so that a prefetch-1
            # worker does not stall holding it; if the channel is gone, the broker redelivers.
            requeue = not message.redelivered
            log.warning("%s; %s",
                        translate(error, doing=f"publishing the reply to {message.reply_to!r}"),
                        "the request goes back to the queue" if requeue else
                        "the request had already come back once, so it is dropped unanswered")
            try:
                await message.nack(requeue=requeue)
            except Exception:
                return  # the channel is gone: the broker redelivers it
            if not requeue:
                self.counts.abandoned += 1
            return
        # Counted once published: a reply that never left is not an answer.
        if reply.type == ERROR_TYPE:
            self.counts.errors += 1
        else:
            self.counts.answered += 1
        await self._ack(message)

    def _expired(self, message: AbstractIncomingMessage) -> bool:
        """Whether the caller's deadline (header ``x-deadline``) has passed: then nobody
        waits for the answer, and computing it would only delay the requests behind it.

        Checked when the worker starts on the request: with prefetch > 1 it can wait in this
        worker's buffer, where the queue's per-message TTL no longer reaches it. Wall-clock
        time: the clocks must agree (NTP) to well within a call's timeout. No integer header
        means no deadline (other tutorials' clients send none).
        """
        deadline = (message.headers or {}).get(DEADLINE_HEADER)
        if deadline is None:
            return False
        if isinstance(deadline, bool) or not isinstance(deadline, int):
            self._warn("malformed", "request (correlation_id=%r) has an %s header %r that is not "
                       "an integer number of milliseconds since the epoch; computing it as if it "
                       "had none", message.correlation_id, DEADLINE_HEADER, deadline)
            return False
        late_ms = time.time() * 1000 - deadline
        if late_ms < 0:
            return False
        self.counts.expired += 1
        self._warn("expired", "dropped request (correlation_id=%r) whose caller's deadline "
                   "passed %.0f ms ago: acked, not computed, no reply (%d expired so far)",
                   message.correlation_id, late_ms, self.counts.expired)
        return True

    def _warn(self, what: str, message: str, *args: object) -> None:
        """Log a warning, at most one per LOG_INTERVAL for each ``what``."""
        now = time.monotonic()
        if now - self._last_warning.get(what, float("-inf")) >= LOG_INTERVAL:
            self._last_warning[what] = now
            log.warning(message, *args)

    @staticmethod
    async def _ack(message: AbstractIncomingMessage) -> None:
        try:
            await message.ack()
        except Exception as error:
            # The broker redelivers the request, and the client discards the second reply.
            log.warning("%s; the broker will redeliver the request",
                        translate(error, doing="acking a request"))

    async def _reply_for(self, body: bytes, correlation_id: str | None) -> aio_pika.Message:
        """The reply message for a request body: the result, or an error reply."""
        kind: str | None = ERROR_TYPE
        try:
            n = decode_request(body, max_n=self.max_n)
            if self.service_time:
                await asyncio.sleep(self.service_time)
            value = self.compute(n)
        except BadRequest as error:
            answer = str(error).encode()
        except Exception as error:  # the work itself failed: answer, never crash the worker
            log.exception("the work failed on request %r", body[:20])
            answer = f"the worker failed on this request: {type(error).__name__}: {error}".encode()
        else:
            answer, kind = encode_result(value), None
        # All properties at construction: setting them afterwards costs a check per field.
        return aio_pika.Message(answer, correlation_id=correlation_id, app_id=self.name, type=kind)

    @property
    def queue_type(self) -> str:
        """The type of the request queue this worker serves: "quorum", "classic"..."""
        return self.request_queue.type

    @property
    def durable(self) -> bool | None:
        """Whether the request queue survives a broker restart (None: could not tell)."""
        return self.request_queue.durable

    @property
    def in_flight(self) -> int:
        """Requests received and not yet acked."""
        return self._in_flight

    async def stop(self) -> None:
        """Stop consuming, finish (reply to and ack) what we hold, then close the connection
        whatever happens: a robust one left open would reconnect and consume in the background."""
        try:
            if self._consumer_tag is not None and not self.channel.is_closed:
                await self.queue.cancel(self._consumer_tag)
                self._consumer_tag = None
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("%d request(s) still in progress after %g s; closing anyway (the "
                            "broker redelivers them to another worker)", self._in_flight,
                            STOP_TIMEOUT)
        finally:
            await self.connection.close()

    def __repr__(self) -> str:
        return (f"<FibonacciRpcWorker {self.name} queue={self.queue.name!r} "
                f"({self.request_queue.describe()})>")
