"""The reference RPC client of tutorial six, as the notebooks build it: one callback queue,
a correlation id per call. A reply that matches no waiting call is discarded and counted,
never raised: a worker that dies between reply and ack answers the request twice."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from yarl import URL

from .errors import BrokerRefusedError, NoWorkerError, RpcConnectionError, RpcTimeout, translate
from .urls import amqp_url, mask_url
from .wire import DEADLINE_HEADER, decode_reply, encode_request

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "rpc_queue"
DEFAULT_TIMEOUT = 10.0
"""Seconds a call waits for its reply unless told otherwise: no call waits forever."""
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
"""RabbitMQ's direct reply-to pseudo-queue: replies go straight to the client's channel."""
MAX_TIMEOUT = (2**32 - 1) / 1000
"""The longest timeout, in seconds (about 49.7 days): RabbitMQ's longest expiration."""
RECONNECT_INTERVAL = 1.0
"""Seconds between reconnection attempts (aio-pika's default is 5; the URL's overrides it)."""

_REMEMBERED_IDS = 10_000  # how many finished correlation ids we remember, to name discards
_PROBE_LEAD = 1.0  # the queue check starts this long (at most half the try) before a deadline
_PROBE_FRESH = 1.0  # seconds a queue check stays good for every call that times out
_CLOSED = "the client was closed while a call waited for its reply"

Reply = asyncio.Future[AbstractIncomingMessage]


@dataclass
class ReplyCounts:
    """What happened to the replies that reached this client's callback queue."""

    answered: int = 0
    duplicate: int = 0  # a second reply to a call already answered (redelivered request)
    late: int = 0  # a reply to a call that had already timed out or failed
    unknown: int = 0  # a correlation id this client never sent (recently)

    @property
    def discarded(self) -> int:
        return self.duplicate + self.late + self.unknown


async def connect_robust(url: str | None) -> AbstractRobustConnection:
    """Open a robust connection (it reconnects by itself), or say how to get a broker."""
    url = amqp_url(url)
    options: dict[str, Any] = {}
    if "reconnect_interval" not in URL(url).query:
        options["reconnect_interval"] = RECONNECT_INTERVAL
    try:
        return await aio_pika.connect_robust(url, **options)
    except Exception as error:
        raise translate(error, doing=f"connecting to {mask_url(url)}") from error


class _NoReply(RpcTimeout):
    """A try's timer went off; ``call`` retries, or says why (``why``, else from the broker)."""

    def __init__(self, message: str, why: str | None = None) -> None:
        super().__init__(message)
        self.why = why


class FibonacciRpcClient:
    """Calls fib(n) on whichever worker consumes the request queue: ``await
    FibonacciRpcClient.connect()``, then ``async with`` or ``close()``; calls run at once."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractRobustChannel,
                 callback_queue: AbstractQueue, *, queue: str, timeout: float) -> None:
        self.connection = connection
        self.channel = channel
        self.callback_queue = callback_queue
        self.queue = queue
        self.timeout = timeout
        self.replies = ReplyCounts()
        self._pending: dict[str, Reply] = {}  # correlation id -> the try waiting for it
        self._tries: set[Reply] = set()  # every running try, sent or not, for close() to end
        self._finished: OrderedDict[str, str] = OrderedDict()  # correlation id -> how it ended
        self._closing = False
        self._connected = True  # False from a lost connection until the channel is restored
        self._probe: asyncio.Task[None] | None = None  # the queue check of timed-out calls
        self._probed: tuple[float, str] | None = None  # (loop time, what the check found)
        self._owns_connection = False  # True when ``connect`` opened it: close() closes it
        self._owns_callback_queue = False  # True when ``create`` declared it: close() deletes it
        self._consumer_tag: str | None = None

    @classmethod
    async def connect(cls, url: str | None = None, *, queue: str = DEFAULT_QUEUE,
                      timeout: float = DEFAULT_TIMEOUT, publisher_confirms: bool = True,
                      reply_to: str | None = None) -> FibonacciRpcClient:
        """Connect, declare this client's exclusive callback queue (``reply_to``: see
        :meth:`create`) and consume it. Without ``publisher_confirms`` a request no queue takes
        is dropped unreported (a timeout, never ``NoWorkerError``)."""
        connection = await connect_robust(url)
        try:
            channel = await connection.channel(publisher_confirms=publisher_confirms,
                                               on_return_raises=publisher_confirms)
            client = await cls.create(connection, channel, queue=queue, timeout=timeout,
                                      reply_to=reply_to)
        except BaseException:
            await connection.close()
            raise
        client._owns_connection = True
        return client

    @classmethod
    async def create(cls, connection: AbstractRobustConnection, channel: AbstractRobustChannel,
                     *, queue: str = DEFAULT_QUEUE, timeout: float = DEFAULT_TIMEOUT,
                     reply_to: str | None = None) -> FibonacciRpcClient:
        """A client on a connection and channel someone else owns (as aio-pika's
        ``RPC.create``). ``reply_to``: None declares an exclusive callback queue (aio-pika
        names it ``amq_<hex>``, which unlike ``amq.gen-`` can be declared again after a
        reconnect); a name, e.g. ``DIRECT_REPLY_TO``, is consumed without declaring it."""
        if reply_to is None:
            callback_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        else:
            callback_queue = await channel.get_queue(reply_to, ensure=False)
        client = cls(connection, channel, callback_queue, queue=queue, timeout=timeout)
        client._owns_callback_queue = reply_to is None
        client._consumer_tag = await callback_queue.consume(client._on_reply, no_ack=True)
        connection.close_callbacks.add(client._on_connection_closed)
        return client

    async def call(self, n: int, *, timeout: float | None = None,
                   idempotency_key: str | None = None, retries: int = 0) -> int:
        """Return fib(n) computed by a worker.

        ``timeout`` (default: the client's) is the whole call; each of ``retries`` + 1 tries
        gets an equal share of what is left, with its own ``correlation_id`` and the same
        ``message_id``: the idempotency key (``idempotency_key``, else a fresh one). Raises
        NoWorkerError, RpcTimeout, RemoteError (an error reply) or RpcConnectionError; a
        cancellation stays a cancellation."""
        timeout = self.timeout if timeout is None else timeout
        if not 0 < timeout <= MAX_TIMEOUT:  # NaN and infinity fail this too
            raise ValueError(f"timeout must be a positive number of seconds, at most "
                             f"{MAX_TIMEOUT:g} (RabbitMQ's longest message expiration), got "
                             f"{timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number, 0 or more, got {retries!r}")
        body = encode_request(n)  # bad input fails here, before anything is sent
        if self._closing:
            raise RpcConnectionError("this client is closed; connect a new one to make calls")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = uuid4().hex if idempotency_key is None else idempotency_key  # one per call
        tries = retries + 1
        for attempt in range(tries):
            left = timeout if attempt == 0 else deadline - loop.time()
            if left <= 0:
                break  # the last try ended at (or after) the call's deadline
            try:
                reply = await self._try(n, body, left / (tries - attempt), key)
            except _NoReply as error:
                timed_out = error
                if attempt + 1 < tries:
                    log.info("%s; trying again (%d of %d)", error, attempt + 2, tries)
                continue
            return decode_reply(reply.body, reply.type)
        said = f" ({attempt + 1} tries, the same idempotency key)" if attempt else ""
        raise RpcTimeout(f"no reply to fib({n}) from queue {self.queue!r} within {timeout:g} s"
                         f"{said}: {timed_out.why or self._why_no_reply()}") from None

    async def _try(self, n: int, body: bytes, timeout: float, key: str) -> AbstractIncomingMessage:
        """One try of a call: publish with a fresh correlation id, wait for its reply. The
        future is in ``_tries`` from the start, so ``close`` ends it whatever it waits for."""
        loop = asyncio.get_running_loop()
        if self._closing:  # a retry that comes after close()
            raise RpcConnectionError(_CLOSED)
        future: Reply = loop.create_future()
        self._tries.add(future)
        correlation_id = uuid4().hex
        deadline = loop.time() + timeout
        # Timers fail the future themselves, so the reply wait needs no extra task: the
        # first starts the queue check shortly before the deadline, the second ends the try.
        timers = [
            loop.call_at(deadline - min(_PROBE_LEAD, timeout / 2), self._start_probe),
            loop.call_at(deadline, self._time_out, future, n, timeout, correlation_id),
        ]
        request = aio_pika.Message(
            body,
            correlation_id=correlation_id,
            message_id=key,
            reply_to=self.callback_queue.name,
            # RabbitMQ drops the request if it is still queued when nobody waits any more...
            expiration=timeout,
            # ...and the worker drops it if it gets it too late (queued or prefetched).
            headers={DEADLINE_HEADER: int((time.time() + timeout) * 1000)},
        )
        try:
            if not self._connected:
                await self._wait_for_broker(future, n, timeout)
            # Registered before publishing: the reply can arrive before the publisher confirm.
            self._pending[correlation_id] = future
            await self._publish(request, future, n)
            return await future
        finally:
            self._tries.discard(future)
            for timer in timers:
                timer.cancel()
            if self._pending.pop(correlation_id, None) is not None:
                self._remember(correlation_id, "late")
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: the try has already ended another way

    def _time_out(self, future: Reply, n: int, timeout: float, correlation_id: str) -> None:
        if self._pending.pop(correlation_id, None) is not None:
            self._remember(correlation_id, "late")  # from now on, its reply is late
        if not future.done():
            future.set_exception(_NoReply(f"no reply to fib({n}) from queue {self.queue!r} "
                                          f"within {timeout:g} s"))

    async def _wait_for_broker(self, future: Reply, n: int, timeout: float) -> None:
        """Wait, within the try, for the connection to come back with the callback queue."""
        ready = asyncio.ensure_future(self.channel.ready())
        try:
            await asyncio.wait((ready, future), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            await asyncio.wait((ready,))
        failed = future.exception() if future.done() and not future.cancelled() else None
        if failed is not None and not isinstance(failed, _NoReply):
            raise failed  # the client was closed meanwhile
        if not ready.done() or ready.cancelled() or ready.exception() is not None:
            where = mask_url(str(self.connection.url.with_query(None)))
            raise RpcConnectionError(f"the broker at {where} was unreachable for {timeout:g} s, "
                                     f"so fib({n}) was not sent. The client keeps reconnecting "
                                     "by itself: retry later, or check that the broker is "
                                     "running.")
        self._connected = True

    def _start_probe(self) -> None:
        """Ask the broker in the background whether anyone consumes the request queue, so a
        timeout can say why without waiting. One check (``close`` awaits it) serves them all."""
        running = self._probe is not None and not self._probe.done()
        fresh = self._probed and self._probed[0] > asyncio.get_running_loop().time() - _PROBE_FRESH
        if not (self._closing or running or fresh):
            self._probe = asyncio.ensure_future(self._check_queue())

    def _why_no_reply(self) -> str:
        """Why a call timed out, from the latest queue check (never waits for one)."""
        advice = (f"is a worker running? Start one with `python -m fibrpc_helpers worker --queue "
                  f"{self.queue}`, or pass a longer timeout.")
        fresh = asyncio.get_running_loop().time() - 2 * _PROBE_FRESH
        if self._probed is None or self._probed[0] < fresh or not self._probed[1]:
            return advice
        found = self._probed[1]
        return f"{found}: {advice}" if found.startswith("nobody") else found

    async def _check_queue(self) -> None:
        """Note in ``_probed`` whether anyone consumes the request queue ('' if unknown)."""
        loop = asyncio.get_running_loop()
        found = ""
        try:
            # A throwaway plain channel: a failed passive declare closes it (a robust channel
            # would come back). No timeout of its own: no call waits for it.
            async with aio_pika.Channel(self.connection, publisher_confirms=False) as channel:
                queue = await channel.declare_queue(self.queue, passive=True)
                declared = queue.declaration_result
                if not declared.consumer_count:
                    found = (f"nobody consumes that queue ({declared.message_count} request(s) "
                             "waiting in it)")
                else:
                    found = (f"{declared.consumer_count} worker(s) consume that queue but none "
                             "answered in time: they are busy or slow. Pass a longer timeout or "
                             "start more workers.")
                self._probed = (loop.time(), found)  # known before the channel is closed
        except Exception as error:  # the check is advice only: it must never fail a call
            log.debug("%s", translate(error, doing=f"checking queue {self.queue!r}"))
        if not found:
            self._probed = (loop.time(), found)

    async def _publish(self, request: aio_pika.Message, future: Reply, n: int) -> None:
        """Publish a request; the broker confirms it, or returns it when no queue takes it.

        It waits no longer than the try's ``future``. The publish is a task of its own, so
        that a cancellation from outside (the caller's) and one from inside aio-pika (its
        channel closed under the publish) cannot be confused, on every Python.
        """
        publishing = asyncio.ensure_future(
            self.channel.default_exchange.publish(request, routing_key=self.queue, mandatory=True)
        )
        try:
            await asyncio.wait((publishing, future), return_when=asyncio.FIRST_COMPLETED)
            if not publishing.done() and future.done():
                # The try is over before the broker confirmed: it timed out, the connection
                # was lost, or the reply came first (then the confirm no longer matters).
                publishing.cancel()
            await asyncio.wait((publishing,))
        except asyncio.CancelledError:
            publishing.cancel()
            await asyncio.wait((publishing,))
            raise  # our caller cancelled the call
        if future.done() and not future.cancelled() and future.exception() is None:
            return  # answered: the caller gets the reply whatever became of the confirm
        if publishing.cancelled() and future.done() and not future.cancelled():
            failed = future.exception()
            if isinstance(failed, _NoReply):
                raise _NoReply(str(failed), why="the broker did not confirm the request in time; "
                               "is it overloaded or blocked (low disk or memory)?")
            if failed is not None:
                raise failed
        try:
            publishing.result()
        except (asyncio.CancelledError, Exception) as error:
            # A returned request (no queue), a nack, or the channel closed under the publish
            # (then aio-pika cancels it, or aiormq re-raises the close reason, even as a bare
            # Exception, when the client closes): the broker never confirmed it.
            failure = translate(error, doing=f"sending fib({n}) to queue {self.queue!r}")
            if self._closing and not isinstance(failure, (NoWorkerError, BrokerRefusedError)):
                failure = RpcConnectionError("the client was closed while a call was being sent")
            raise failure from error

    @property
    def in_flight(self) -> int:
        """Calls sent and still waiting for their reply."""
        return len(self._pending)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        """Match a reply to its call; discard (and count) anything else."""
        correlation_id = message.correlation_id or ""
        future = self._pending.pop(correlation_id, None)
        if future is None or future.done():
            kind = self._finished.get(correlation_id, "unknown")
            kind = "duplicate" if kind == "answered" else kind
            setattr(self.replies, kind, getattr(self.replies, kind) + 1)
            log.info("discarded a %s reply (correlation_id=%r)", kind, correlation_id)
            return
        self.replies.answered += 1
        self._remember(correlation_id, "answered")
        future.set_result(message)

    def _remember(self, correlation_id: str, how: str) -> None:
        self._finished[correlation_id] = how
        if len(self._finished) > _REMEMBERED_IDS:
            self._finished.popitem(last=False)

    def _on_connection_closed(self, _connection: Any, error: BaseException | None) -> None:
        """Fail every waiting call: its reply may have been lost with the connection."""
        if self._closing:
            reason = _CLOSED
        else:
            self._connected = False
            reason = (f"the connection to the broker closed while waiting for a reply ({error!r}); "
                      "the request may or may not have been processed, so retry only idempotent "
                      "work")
        for correlation_id, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(RpcConnectionError(reason))
            self._pending.pop(correlation_id, None)
            self._remember(correlation_id, "late")

    async def close(self) -> None:
        """Close the connection; every call still running fails at once (RpcConnectionError).
        A client made with ``create`` removes only its consumer or callback queue."""
        self._closing = True
        for future in self._tries:
            if not future.done():
                future.set_exception(RpcConnectionError(_CLOSED))
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.wait((self._probe,))
        if self._owns_connection:
            await self.connection.close()
            return
        self.connection.close_callbacks.discard(self._on_connection_closed)
        if self.channel.is_closed:
            return
        if self._owns_callback_queue:  # deleting it ends its consumer; the channel forgets it
            await self.channel.queue_delete(self.callback_queue.name)
        elif self._consumer_tag is not None:
            await self.callback_queue.cancel(self._consumer_tag)

    async def __aenter__(self) -> FibonacciRpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (f"<FibonacciRpcClient queue={self.queue!r} callback_queue="
                f"{self.callback_queue.name!r} in_flight={len(self._pending)}>")
