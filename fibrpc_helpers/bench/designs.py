"""The RPC designs the series builds, as clients the benchmark can drive side by side.

* ``queue-per-request``: a new exclusive callback queue for every call (the first idea a
  student has; it costs a queue declare, a consume and a delete per call);
* ``correlation-id``: one callback queue per client, a correlation id per call; this is the
  package's FibonacciRpcClient, the reference design;
* ``direct-reply-to``: RabbitMQ's ``amq.rabbitmq.reply-to`` pseudo-queue: no callback queue
  at all, the broker hands the reply straight to the consuming channel;
* ``patterns``: aio-pika's own ``aio_pika.patterns.RPC``, in its JSON flavour (``JsonRPC``,
  the same class with JSON instead of pickle: this project never pickles across the wire),
  served by its own worker process (``python -m fibrpc_helpers.bench.designs worker``).

The first three speak tutorial six's wire format, so the package's worker serves them all;
each variant is a few lines over the reference client because only the reply path differs.
All of them publish with confirms and ``mandatory``, and time out, like the reference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any, Protocol
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.patterns import JsonRPC

from ..client import DEFAULT_TIMEOUT, FibonacciRpcClient, connect_robust
from ..errors import NoWorkerError, RpcTimeout
from ..fib import fib
from ..processes import WorkerProcesses
from ..wire import decode_reply, encode_request
from ..worker import DIRECT_REPLY_TO

DESIGNS = ("queue-per-request", "correlation-id", "direct-reply-to", "patterns")


class Caller(Protocol):
    async def call(self, n: int, *, timeout: float | None = None) -> int: ...
    async def close(self) -> None: ...


class _OneChannelClient:
    """Shared plumbing of the two variants: one connection, one confirming channel."""

    def __init__(self, connection: Any, channel: Any, queue: str, timeout: float) -> None:
        self.connection, self.channel, self.queue, self.timeout = (
            connection,
            channel,
            queue,
            timeout,
        )

    @classmethod
    async def _open(cls, url: str | None, queue: str, timeout: float) -> Any:
        connection = await connect_robust(url)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(connection, channel, queue, timeout)

    async def _publish(self, n: int, correlation_id: str, reply_to: str) -> None:
        message = aio_pika.Message(
            encode_request(n), correlation_id=correlation_id, reply_to=reply_to
        )
        try:
            await self.channel.default_exchange.publish(
                message, routing_key=self.queue, mandatory=True
            )
        except aio_pika.exceptions.PublishError:
            raise NoWorkerError(f"no queue named {self.queue!r}: start a worker") from None

    async def close(self) -> None:
        await self.connection.close()


class QueuePerRequestClient(_OneChannelClient):
    """Declares, consumes and deletes a fresh exclusive callback queue for every call."""

    @classmethod
    async def connect(cls, url: str | None = None, *, queue: str, timeout: float = DEFAULT_TIMEOUT):  # type: ignore[no-untyped-def]
        return await cls._open(url, queue, timeout)

    async def call(self, n: int, *, timeout: float | None = None) -> int:
        timeout = self.timeout if timeout is None else timeout
        callback = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        reply: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        correlation_id = uuid4().hex

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if message.correlation_id == correlation_id and not reply.done():
                reply.set_result(message)

        tag = await callback.consume(on_reply, no_ack=True)
        try:
            await self._publish(n, correlation_id, callback.name)
            message = await asyncio.wait_for(reply, timeout)
        except asyncio.TimeoutError:
            raise RpcTimeout(f"no reply to fib({n}) within {timeout:g} s") from None
        finally:
            await callback.cancel(tag)
            await callback.delete(if_unused=False, if_empty=False)
        return decode_reply(message.body, message.type)


class DirectReplyToClient(_OneChannelClient):
    """Consumes ``amq.rabbitmq.reply-to``: replies go straight to this channel, no queue."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pending: dict[str, asyncio.Future[AbstractIncomingMessage]] = {}

    @classmethod
    async def connect(cls, url: str | None = None, *, queue: str, timeout: float = DEFAULT_TIMEOUT):  # type: ignore[no-untyped-def]
        client = await cls._open(url, queue, timeout)
        pseudo = await client.channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await pseudo.consume(client._on_reply, no_ack=True)  # must come before publishing
        return client

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self.pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message)

    async def call(self, n: int, *, timeout: float | None = None) -> int:
        timeout = self.timeout if timeout is None else timeout
        correlation_id = uuid4().hex
        future = self.pending[correlation_id] = asyncio.get_running_loop().create_future()
        try:
            await self._publish(n, correlation_id, DIRECT_REPLY_TO)
            message = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise RpcTimeout(f"no reply to fib({n}) within {timeout:g} s") from None
        finally:
            self.pending.pop(correlation_id, None)
        return decode_reply(message.body, message.type)


class PatternsClient:
    """aio-pika's ``patterns.JsonRPC`` calling ``fib`` on the patterns worker."""

    def __init__(self, connection: Any, rpc: JsonRPC, queue: str, timeout: float) -> None:
        self.connection, self.rpc, self.queue, self.timeout = connection, rpc, queue, timeout

    @classmethod
    async def connect(
        cls, url: str | None = None, *, queue: str, timeout: float = DEFAULT_TIMEOUT
    ) -> PatternsClient:
        connection = await connect_robust(url)
        channel = await connection.channel()
        return cls(connection, await JsonRPC.create(channel), queue, timeout)

    async def call(self, n: int, *, timeout: float | None = None) -> int:
        timeout = self.timeout if timeout is None else timeout
        try:
            return int(await asyncio.wait_for(self.rpc.call(self.queue, {"n": n}), timeout))
        except asyncio.TimeoutError:
            raise RpcTimeout(f"no reply to fib({n}) within {timeout:g} s") from None

    async def close(self) -> None:
        await self.connection.close()


async def connect(design: str, url: str | None, queue: str, timeout: float) -> Caller:
    """A connected client of the named design."""
    kinds: dict[str, Any] = {
        "queue-per-request": QueuePerRequestClient,
        "correlation-id": FibonacciRpcClient,
        "direct-reply-to": DirectReplyToClient,
        "patterns": PatternsClient,
    }
    if design not in kinds:
        raise ValueError(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}")
    return await kinds[design].connect(url, queue=queue, timeout=timeout)


class PatternsWorkerProcesses(WorkerProcesses):
    """``count`` processes serving ``fib`` with ``aio_pika.patterns.JsonRPC``."""

    def __init__(
        self, count: int, *, url: str | None = None, queue: str, stderr: Any = None
    ) -> None:
        super().__init__(count, stderr=stderr)
        self.command = [sys.executable, "-m", "fibrpc_helpers.bench.designs", "--queue", queue]
        if url:
            self.command += ["--url", url]


async def _serve_patterns(url: str | None, queue: str) -> None:
    """The patterns worker: registers ``fib`` under the queue's name and serves it."""
    connection = await connect_robust(url)
    channel = await connection.channel()
    rpc = await JsonRPC.create(channel)

    async def fib_call(*, n: int) -> int:
        return fib(n)

    await rpc.register(queue, fib_call, auto_delete=True)
    print(f"worker patterns:{os.getpid()} is serving queue {queue!r}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    parent = os.getppid()
    while not stopping.is_set() and os.getppid() == parent:  # exit with a dead parent
        try:
            await asyncio.wait_for(stopping.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    await rpc.close()
    await connection.close()


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description="aio_pika.patterns.JsonRPC fib worker")
    arguments.add_argument("--url")
    arguments.add_argument("--queue", required=True)
    options = arguments.parse_args()
    asyncio.run(_serve_patterns(options.url, options.queue))
