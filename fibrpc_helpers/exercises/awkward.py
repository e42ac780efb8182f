"""Counterparts that misbehave on purpose, as real ones sometimes do.

A check runs the student's code against one of these instead of a polite reference: a
client's correlation map is only tested by replies that come out of order, twice, or for a
call nobody made; a worker's error handling only by input it cannot take. Each is plain
aio-pika on a channel the check gives it, so what the student's code meets is the broker's
real behaviour, never a mock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from ..fib import fib

SILENT_N = 99
"""A request for fib(99) is acked and never answered: it tests a caller's timeout."""


@dataclass(frozen=True)
class Seen:
    """A request as a worker received it."""

    body: bytes
    reply_to: str | None
    correlation_id: str | None
    message_id: str | None


def answer(body: bytes) -> bytes:
    """fib(n) for a request body that is a plain decimal n, as tutorial six encodes it."""
    return str(fib(int(body))).encode()


class RecordingWorker:
    """Answers every request at once and remembers each one (its ``reply_to`` above all)."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self.seen: list[Seen] = []
        self.arrived = asyncio.Condition()

    async def start(self, request_queue: str) -> None:
        queue = await self.channel.get_queue(request_queue)
        await queue.consume(self.on_request)

    async def on_request(self, request: AbstractIncomingMessage) -> None:
        async with self.arrived:  # noted before the reply: its caller may be done at once
            self.seen.append(Seen(request.body, request.reply_to, request.correlation_id,
                                  request.message_id))
            self.arrived.notify_all()
        if request.reply_to:
            reply = aio_pika.Message(answer(request.body), correlation_id=request.correlation_id)
            # not mandatory: a reply to a queue that is gone is simply dropped
            await self.channel.default_exchange.publish(
                reply, routing_key=request.reply_to, mandatory=False)
        await request.ack()

    async def for_body(self, body: bytes, seconds: float) -> list[Seen]:
        """The requests with this body, waiting up to ``seconds`` for the first: a call can
        end (with another call's reply) before its own request reaches this worker."""
        try:
            async with asyncio.timeout(seconds), self.arrived:
                await self.arrived.wait_for(lambda: any(s.body == body for s in self.seen))
        except TimeoutError:
            pass
        return [seen for seen in self.seen if seen.body == body]


class ShufflingWorker:
    """Holds ``batch`` requests, then answers them the worst way a client can meet.

    First a reply with a stranger's correlation id (a call this client never made), then
    the batch in reverse order, each reply twice (as after a worker that died between its
    reply and its ack). A request for fib(``SILENT_N``) is acked and never answered.
    """

    def __init__(self, channel: AbstractChannel, batch: int) -> None:
        self.channel = channel
        self.batch = batch
        self.held: list[AbstractIncomingMessage] = []
        self.stranger = f"stranger-{uuid.uuid4().hex[:8]}"
        self.silent = asyncio.Event()  # set when the fib(SILENT_N) request arrived
        self.replies_sent = 0

    async def start(self, request_queue: str) -> None:
        await self.channel.set_qos(prefetch_count=self.batch)
        queue = await self.channel.get_queue(request_queue)
        await queue.consume(self.on_request)

    async def on_request(self, request: AbstractIncomingMessage) -> None:
        if request.body == str(SILENT_N).encode():
            await request.ack()
            self.silent.set()
            return
        self.held.append(request)
        if len(self.held) < self.batch:
            return
        held, self.held = self.held, []
        await self._send(b"0", self.stranger, held[0].reply_to)
        for request in reversed(held):
            for _ in range(2):
                await self._send(answer(request.body), request.correlation_id, request.reply_to)
        for request in held:
            await request.ack()

    async def _send(self, body: bytes, correlation_id: str | None, reply_to: str | None) -> None:
        reply = aio_pika.Message(body, correlation_id=correlation_id)
        await self.channel.default_exchange.publish(reply, routing_key=reply_to or "",
                                                    mandatory=False)
        self.replies_sent += 1


@dataclass
class RawClient:
    """A client that sends whatever body and key it is told, and keeps every reply.

    It sends bad input a reference client would refuse to send, and the same idempotency
    key (``message_id``) on several requests, as a client retrying after a timeout does.
    Every reply is kept by correlation id, duplicates included.
    """

    channel: AbstractChannel
    request_queue: str
    callback_queue: str = ""
    replies: dict[str, list[AbstractIncomingMessage]] = field(
        default_factory=lambda: defaultdict(list))
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> RawClient:
        queue = await self.channel.declare_queue(exclusive=True)
        self.callback_queue = queue.name
        await queue.consume(self.on_reply, no_ack=True)
        return self

    async def on_reply(self, message: AbstractIncomingMessage) -> None:
        async with self.arrived:
            self.replies[message.correlation_id or ""].append(message)
            self.arrived.notify_all()

    async def send(self, body: bytes, key: str | None = None) -> str:
        """Publish a request; its correlation id (fresh for every request, as a try's is)."""
        correlation_id = uuid.uuid4().hex
        request = aio_pika.Message(body, correlation_id=correlation_id,
                                   reply_to=self.callback_queue, message_id=key)
        await self.channel.default_exchange.publish(request, routing_key=self.request_queue)
        return correlation_id

    async def replies_to(self, correlation_id: str, count: int = 1,
                         seconds: float = 5.0) -> list[AbstractIncomingMessage] | None:
        """The first ``count`` replies to a request, or None if they did not all come in time."""
        try:
            async with asyncio.timeout(seconds), self.arrived:
                await self.arrived.wait_for(lambda: len(self.replies[correlation_id]) >= count)
        except TimeoutError:
            return None
        return self.replies[correlation_id][:count]
