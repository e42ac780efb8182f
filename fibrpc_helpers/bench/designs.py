"""The RPC designs the benchmark compares (``CLIENTS``): the reference with one part swapped.

``raw-aiormq`` (the ladder's floor) and ``patterns`` (aio-pika's ``patterns.RPC``, JSON: this
project never pickles) have workers of their own (``serve``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import uuid4

import aiormq
from aio_pika.abc import AbstractRobustConnection
from aio_pika.patterns import JsonRPC
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from ..client import DEFAULT_TIMEOUT, DIRECT_REPLY_TO, FibonacciRpcClient, connect_robust
from ..errors import RpcTimeout, translate
from ..urls import amqp_url, mask_url
from ..wire import decode_reply, encode_request


class Caller(Protocol):
    async def call(self, n: int, *, timeout: float | None = None) -> int: ...
    async def close(self) -> None: ...


class QueuePerRequestClient(FibonacciRpcClient):
    """The reference, but each call declares, consumes and deletes a callback queue of its own."""

    async def call(self, n: int, *, timeout: float | None = None, **options: Any) -> int:
        once = await FibonacciRpcClient.create(self.connection, self.channel, queue=self.queue,
                                               timeout=self.timeout)
        try:
            return await once.call(n, timeout=timeout, **options)
        finally:
            await once.close()
            for name in vars(self.replies):  # this client's counts cover every call's
                setattr(self.replies, name,
                        getattr(self.replies, name) + getattr(once.replies, name))


class DirectReplyToClient(FibonacciRpcClient):
    """The reference, but replies come on ``amq.rabbitmq.reply-to`` (its cost: ``ladder.RUNGS``)."""

    @classmethod
    async def connect(cls, url: str | None = None, **options: Any) -> FibonacciRpcClient:
        return await super().connect(url, reply_to=DIRECT_REPLY_TO, **options)


class NoConfirmsClient(FibonacciRpcClient):
    """The reference, but its channel has no publisher confirms (its cost: ``ladder.RUNGS``)."""

    @classmethod
    async def connect(cls, url: str | None = None, **options: Any) -> FibonacciRpcClient:
        return await super().connect(url, publisher_confirms=False, **options)


class DirectNoConfirmsClient(FibonacciRpcClient):
    """Direct reply-to and no publisher confirms: both swaps at once."""

    @classmethod
    async def connect(cls, url: str | None = None, **options: Any) -> FibonacciRpcClient:
        return await super().connect(url, reply_to=DIRECT_REPLY_TO, publisher_confirms=False,
                                     **options)


class RawAiormqClient:
    """The floor: aiormq, direct reply-to, no confirms, a deadline (its cost: ``ladder.RUNGS``)."""

    def __init__(self, connection: Any, channel: Any, queue: str, timeout: float) -> None:
        self.connection, self.channel = connection, channel
        self.queue, self.timeout = queue, timeout
        self.pending: dict[str, asyncio.Future[bytes]] = {}

    @classmethod
    async def connect(cls, url: str | None = None, *, queue: str,
                      timeout: float = DEFAULT_TIMEOUT) -> RawAiormqClient:
        try:
            connection = await aiormq.connect(amqp_url(url))
        except Exception as error:
            raise translate(error, doing=f"connecting to {mask_url(amqp_url(url))}") from error
        try:
            channel = await connection.channel(publisher_confirms=False)
            client = cls(connection, channel, queue, timeout)
            await channel.basic_consume(DIRECT_REPLY_TO, client._on_reply, no_ack=True)
        except BaseException:
            await connection.close()
            raise
        return client

    async def _on_reply(self, message: DeliveredMessage) -> None:
        future = self.pending.pop(message.header.properties.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(self, n: int, *, timeout: float | None = None) -> int:
        timeout = self.timeout if timeout is None else timeout
        correlation_id = uuid4().hex
        future = self.pending[correlation_id] = asyncio.get_running_loop().create_future()
        properties = Basic.Properties(correlation_id=correlation_id, reply_to=DIRECT_REPLY_TO)
        try:
            await self.channel.basic_publish(encode_request(n), routing_key=self.queue,
                                             properties=properties)
            body = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RpcTimeout(f"no reply to fib({n}) within {timeout:g} s") from None
        except Exception as error:
            raise translate(error, doing=f"calling fib({n}) on queue {self.queue!r}") from error
        finally:
            self.pending.pop(correlation_id, None)
        return decode_reply(body, None)

    async def close(self) -> None:
        await self.connection.close()


class PatternsClient:
    """aio-pika's ``patterns.JsonRPC`` calling ``fib`` on the patterns worker."""

    def __init__(self, connection: AbstractRobustConnection, rpc: JsonRPC, queue: str,
                 timeout: float) -> None:
        self.connection, self.rpc, self.queue, self.timeout = connection, rpc, queue, timeout

    @classmethod
    async def connect(cls, url: str | None = None, *, queue: str,
                      timeout: float = DEFAULT_TIMEOUT) -> PatternsClient:
        connection = await connect_robust(url)
        try:
            # Exclusive: RabbitMQ 4.3 refuses patterns.RPC's default, transient non-exclusive.
            rpc = await JsonRPC.create(await connection.channel(), exclusive=True)
        except BaseException:
            await connection.close()
            raise
        return cls(connection, rpc, queue, timeout)

    async def call(self, n: int, *, timeout: float | None = None) -> int:
        timeout = self.timeout if timeout is None else timeout
        try:
            # patterns.RPC sets the request's expiration from its own timeout argument
            return int(await asyncio.wait_for(self.rpc.call(self.queue, {"n": n}), timeout))
        except TimeoutError:
            raise RpcTimeout(f"no reply to fib({n}) within {timeout:g} s") from None
        except Exception as error:
            raise translate(error, doing=f"calling fib({n}) on queue {self.queue!r}") from error

    async def close(self) -> None:
        # Not rpc.close(): its delete of the result queue if-empty fails while a late reply waits.
        await self.connection.close()


CLIENTS: dict[str, Any] = {
    "correlation-id": FibonacciRpcClient,
    "queue-per-request": QueuePerRequestClient,
    "direct-reply-to": DirectReplyToClient,
    "no-confirms": NoConfirmsClient,
    "direct-no-confirms": DirectNoConfirmsClient,
    "raw-aiormq": RawAiormqClient,
    "patterns": PatternsClient,
}


@dataclass(frozen=True)
class Design:
    """One side-by-side contender: a client, the worker that serves it, their event loop."""

    name: str  # what the report calls it
    client: str  # a key of CLIENTS
    server: str = "reference"  # "reference" (FibonacciRpcWorker), "patterns" or "raw-aiormq"
    loop: str = "asyncio"  # the worker's event loop: "asyncio", "uvloop" or "auto"
    client_loop: str | None = None  # the clients' (load generators'); None: ``loop``
    prefetch: int | None = None  # the worker's; None: the run's (patterns: no limit)
    queue_type: str | None = None  # its request queue's: "classic", "quorum"; None: the run's
    gives_up: str = ""  # what this design no longer promises, next to its figures

    @property
    def clients_loop(self) -> str:
        return self.loop if self.client_loop is None else self.client_loop


DESIGNS = ("queue-per-request", "correlation-id", "direct-reply-to", "patterns")  # as taught


def design(name: str) -> Design:
    """The named design as a student runs it: the reference worker's loop "auto", others asyncio."""
    if name not in CLIENTS:
        raise ValueError(f"unknown design {name!r}; choose one of {', '.join(CLIENTS)}")
    if name == "patterns":
        return Design(name, name, server="patterns")
    return Design(name, name, loop="auto", client_loop="asyncio")


async def connect(client: str, url: str | None, queue: str, timeout: float) -> Caller:
    """A connected client of the named kind (a key of CLIENTS)."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")
    return await CLIENTS[client].connect(url, queue=queue, timeout=timeout)
