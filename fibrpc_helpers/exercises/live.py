"""The broker side of one check: its own connections and queues, removed whatever happens.

A check runs in the notebook's kernel against the notebook's broker (``AMQP_URL``), and its
queues are named in the student's namespace (``alice@laptop.exercise.worker.1a2b3c4d.rpc``),
so thirty students checking at once on a class broker never meet, and a grading run with a
broker user limited to one namespace can declare them. Every name gets a fresh suffix: a
check run twice, or interrupted, never finds its previous queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from ..errors import translate
from ..lab.namespace import namespaced
from ..urls import amqp_url, mask_url
from .verdict import ExerciseFailed

BROKER_SECONDS = 10.0
"""Longest a step of the check's own (connect, declare, delete) may take."""

QUORUM = {"durable": True, "arguments": {"x-queue-type": "quorum"}}
"""The request queue as tutorial six (and every notebook) declares it."""


class Playground:
    """Connections and queues of one check; ``async with Playground("worker") as lab:``."""

    def __init__(self, exercise: str, url: str | None = None) -> None:
        self.url = amqp_url(url)
        self.prefix = namespaced(f"exercise.{exercise}.{uuid.uuid4().hex[:8]}")
        self.queues: list[str] = []
        self.connections: list[AbstractConnection] = []

    def name(self, what: str) -> str:
        """A queue name of this check's own, deleted at the end."""
        name = f"{self.prefix}.{what}"
        self.forget_later(name)
        return name

    def forget_later(self, queue: str) -> None:
        """Delete ``queue`` at the end too (a named queue the student's code declared)."""
        if queue not in self.queues:
            self.queues.append(queue)

    async def connect(self) -> AbstractConnection:
        """A plain connection, closed at the end (with it, its exclusive queues go)."""
        try:
            async with asyncio.timeout(BROKER_SECONDS):
                connection = await aio_pika.connect(self.url)
        except Exception as error:
            raise ExerciseFailed(
                f"the check could not connect to {mask_url(self.url)}: "
                f"{translate(error, doing='connecting')}; run the notebook's first cell again"
            ) from None
        self.connections.append(connection)
        return connection

    async def channel(self) -> AbstractChannel:
        """A channel on a connection of its own."""
        return await (await self.connect()).channel()

    async def declare_request_queue(self, channel: AbstractChannel, what: str = "rpc") -> str:
        """A request queue as tutorial six declares it (durable quorum); its name."""
        name = self.name(what)
        async with asyncio.timeout(BROKER_SECONDS):
            await channel.declare_queue(name, **QUORUM)
        return name

    async def exists(self, queue: str) -> bool | None:
        """Whether ``queue`` exists and others may use it: True; exclusive to another
        connection: None (405 RESOURCE_LOCKED); no such queue or no right to look: False."""
        connection = await self.connect()
        try:
            channel = await connection.channel()
            async with asyncio.timeout(BROKER_SECONDS):
                await channel.declare_queue(queue, passive=True)
            return True
        except aiormq.exceptions.ChannelLockedResource:
            return None
        except aio_pika.exceptions.AMQPError:
            return False
        finally:
            await self._close(connection)

    async def __aenter__(self) -> Playground:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection, then delete every queue (each step with a deadline)."""
        while self.connections:
            await self._close(self.connections.pop())
        if not self.queues:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(BROKER_SECONDS):
                connection = await aio_pika.connect(self.url)
            try:
                for queue in self.queues:
                    channel = await connection.channel()  # a refused delete closes its channel
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(BROKER_SECONDS):
                            await channel.queue_delete(queue)
                    if not channel.is_closed:
                        with contextlib.suppress(Exception):
                            await channel.close()
            finally:
                await self._close(connection)
        self.queues = []

    @staticmethod
    async def _close(connection: AbstractConnection) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(BROKER_SECONDS):
                await connection.close()
