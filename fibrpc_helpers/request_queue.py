"""The request queue: adopt it as it is, or declare it the way today's tutorial six does.

Tutorial six exists in two shapes that students meet side by side: RabbitMQ's official code
(every language) declares ``rpc_queue`` as a durable quorum queue, the aio-pika
documentation's as a classic non-durable one. RabbitMQ refuses (406 PRECONDITION_FAILED) a
declare whose properties differ from the existing queue's, so a worker that simply declared
its own shape would die beside a server of the other. :func:`declare_request_queue` finds
out what the queue is and declares it only when it is absent.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aio_pika
import aiormq.exceptions

from .errors import QueueMismatchError

log = logging.getLogger(__name__)

QueueType = Literal["quorum", "classic"]
QUEUE_TYPES: tuple[QueueType, ...] = ("quorum", "classic")
"""The types a worker declares when asked (``queue_type=`` / ``--queue-type``)."""

_MAX_PROBES = 12
"""Declares tried to learn an existing queue's properties: each 406 names one of them."""

# RabbitMQ's text for a declare that differs from the existing queue (rabbit_misc.erl,
# the same from 3.10 to 4.x): "inequivalent arg 'KEY' for queue 'NAME' in vhost 'V':
# received NEW but current is CURRENT", where a value reads "none" (absent), 'V' (a field
# such as durable, or a typed argument compared with a typed one), or "the value 'V' of
# type 'T'" (a typed argument compared with an absent one).
_INEQUIVALENT = re.compile(r"inequivalent arg '(?P<key>[^']+)' for .* but current is (?P<now>.*)$")
_TYPED = re.compile(r"^the value '(?P<value>.*)' of type '(?P<type>[^']+)'$")
_QUOTED = re.compile(r"^'(?P<value>.*)'$")
_INTEGER_TYPES = frozenset(
    {"byte", "short", "signedint", "long", "unsignedbyte", "unsignedshort", "unsignedint"}
)


@dataclass(frozen=True)
class RequestQueue:
    """What a request queue is: the properties and arguments a declare must repeat exactly.

    ``type`` is ``"quorum"``, ``"classic"``, ``"stream"``..., or ``"unknown"`` when the
    broker's answers could not be read (then ``durable`` is None and the worker only
    consumes, with a passive declare).
    """

    type: str
    durable: bool | None
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def asked(cls, queue_type: QueueType) -> RequestQueue:
        """The queue a worker declares when there is none.

        quorum: durable, as tutorial six's official code declares it today (a quorum queue
        must be durable, and cannot be exclusive or auto-delete). Replicated on a cluster,
        written to disk, the type RabbitMQ recommends; it honours the client's per-message
        TTL (``expiration``) from RabbitMQ 3.10 on. From RabbitMQ 4.0 a quorum queue also
        has a delivery limit of 20 by default: a request handed out that many times (one
        that kills every worker that takes it) is dropped, or dead-lettered if the queue has
        a dead-letter exchange, instead of going round forever.

        classic: not durable, exactly as the aio-pika tutorial declares it
        (``declare_queue(name)``), so that tutorial's server can share the queue whichever
        of the two starts first. RabbitMQ 4.3 as upstream ships it refuses a new non-durable,
        non-exclusive queue (the deprecated feature ``transient_nonexcl_queues``), and with it
        that tutorial's server: there :func:`declare_request_queue` declares the classic
        queue durable instead.
        """
        if queue_type not in QUEUE_TYPES:
            raise ValueError(
                f"queue_type must be one of {', '.join(map(repr, QUEUE_TYPES))} or None "
                f"(adopt the existing queue, else quorum), got {queue_type!r}"
            )
        return cls(queue_type, durable=queue_type == "quorum",
                   arguments={"x-queue-type": queue_type})

    @property
    def durability(self) -> str:
        """``durable`` or ``not durable`` (and ``auto-delete``), as a person reads it."""
        if self.durable is None:
            return "durability unknown"
        return ("durable" if self.durable else "not durable") + (
            ", auto-delete" if self.auto_delete else ""
        )

    def describe(self) -> str:
        """``quorum, durable``: what the start-up line says the worker serves."""
        return f"{self.type}, {self.durability}"


async def declare_request_queue(
    connection: aio_pika.abc.AbstractConnection,
    name: str,
    queue_type: QueueType | None = None,
) -> RequestQueue:
    """Find out what the request queue is, declaring it only when it is absent.

    Why so careful: RabbitMQ refuses (406 PRECONDITION_FAILED, closing the channel) a declare
    whose type, durability or arguments differ from the existing queue's, and tutorial six
    exists in two shapes, a durable quorum queue (RabbitMQ's official code, every language)
    and a classic non-durable one (aio-pika's tutorial). A worker that simply declared its own
    shape would die beside a server of the other. So:

    1. a passive declare (it never creates anything) tells whether the queue exists;
    2. if it exists, it is adopted as it is; AMQP has no "describe queue", so its type and
       durability are read from the 406 answers to equivalent declares (each names one
       property that differs and its current value);
    3. if it is absent, it is declared as asked (None: durable quorum). A 406 there means
       another worker declared it in between, differently: adopt that one as in 2.

    Only an explicit ``queue_type`` that differs from the existing queue's type raises
    :class:`QueueMismatchError`; a different durability of the same type is adopted.
    Every declare runs on a throwaway channel, because a refused one closes its channel.
    """
    wanted = RequestQueue.asked(queue_type or "quorum")
    existing = await _existing(connection, name)
    if existing is None and not wanted.durable and not await transient_queues_permitted(
        str(connection.url)
    ):
        wanted = RequestQueue(wanted.type, durable=True, arguments=wanted.arguments)
    if existing is None:
        refusal = await _declare(connection, name, wanted)
        if refusal is None:
            return wanted  # ours, or an equivalent one declared a moment before
        if _current_value(refusal) is None:  # not "inequivalent arg": the broker says no
            raise QueueMismatchError(
                f"the broker refused to declare the request queue {name!r} as a "
                f"{wanted.describe()} queue: {refusal}. Ask for another queue type "
                "(--queue-type), or have the queue declared by whoever may",
                queue=name, existing="absent", asked=wanted.describe(),
            )
        existing = await _learn(connection, name)
    if queue_type is not None and existing.type not in (queue_type, "unknown"):
        raise QueueMismatchError(
            f"the request queue {name!r} already exists as a {existing.type} queue "
            f"({existing.durability}), but a {queue_type} queue was asked for: start the worker "
            f"without a queue type (no --queue-type) to serve it as it is, or use another "
            f"queue name",
            queue=name, existing=existing.describe(), asked=queue_type,
        )
    if queue_type is not None and existing.type == "unknown":
        log.warning("could not tell the type of queue %r; serving it as it is", name)
    return existing


async def _existing(connection: aio_pika.abc.AbstractConnection, name: str
                    ) -> RequestQueue | None:
    """The existing queue's properties, or None when there is no such queue."""
    channel = await _throwaway_channel(connection)
    try:
        await channel.queue_declare(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()
    return await _learn(connection, name)


async def _learn(connection: aio_pika.abc.AbstractConnection, name: str) -> RequestQueue:
    """Declare equivalents until the broker accepts one: that one is the queue as it is.

    Starts from a durable quorum queue (a quorum declare is never taken for a classic queue,
    even where RabbitMQ relaxes its checks); each refusal names one property or argument
    and its current value, which the next try repeats.
    """
    guess = RequestQueue.asked("quorum")
    arguments = dict(guess.arguments)
    durable, auto_delete = True, False
    for _ in range(_MAX_PROBES):
        guess = RequestQueue(str(arguments["x-queue-type"]), durable, auto_delete, arguments)
        refusal = await _declare(connection, name, guess)
        if refusal is None:
            return guess
        learned = _current_value(refusal)
        if learned is None:
            break
        key, value = learned
        if key == "durable" and isinstance(value, bool):
            durable = value
        elif key == "auto_delete" and isinstance(value, bool):
            auto_delete = value
        elif key == "x-queue-type" and value is None:
            arguments[key] = "classic"  # a classic queue declared without the argument
        elif value is not None and key not in ("durable", "auto_delete"):
            arguments[key] = value
        else:
            break
        arguments = dict(arguments)
    log.warning("could not read the properties of queue %r from the broker's answers", name)
    return RequestQueue("unknown", durable=None)


def _current_value(refusal: str) -> tuple[str, Any] | None:
    """(key, current value) from a 406 text, or None when it is not one we can read back."""
    match = _INEQUIVALENT.search(refusal)
    if match is None:
        return None
    key, now = match["key"], match["now"].strip()
    if now == "none":
        return key, None
    typed = _TYPED.match(now)
    if typed:
        value, kind = typed["value"], typed["type"]
        if kind == "longstr":
            return key, value
        if kind in _INTEGER_TYPES:
            return key, int(value)
        if kind == "bool":
            return key, value == "true"
        return None  # a float, table or array argument: not worth reading back
    quoted = _QUOTED.match(now)
    if quoted is None:
        return None
    value = quoted["value"]
    if value in ("true", "false"):
        return key, value == "true"
    return key, value


async def _throwaway_channel(connection: aio_pika.abc.AbstractConnection) -> Any:
    """A plain channel on the connection underneath: a robust channel closed by a refused
    declare would try to come back, and it would re-declare the queue each time it did."""
    underlay = connection.transport.connection  # type: ignore[union-attr]
    return await underlay.channel()


async def _declare(connection: aio_pika.abc.AbstractConnection, name: str,
                   queue: RequestQueue) -> str | None:
    """Declare on a throwaway channel; None when accepted, else the 406 text."""
    channel = await _throwaway_channel(connection)
    try:
        await channel.queue_declare(
            name, durable=bool(queue.durable), auto_delete=queue.auto_delete,
            arguments=dict(queue.arguments),
        )
    except aiormq.exceptions.ChannelPreconditionFailed as error:
        return str(error)
    finally:
        if not channel.is_closed:
            await channel.close()
    return None


async def transient_queues_permitted(url: str) -> bool:
    """Whether the broker at ``url`` takes a transient (non-durable) non-exclusive queue,
    the shape of aio-pika's tutorial six ``rpc_queue``.

    RabbitMQ 4.3 as upstream ships it denies one (the deprecated feature
    ``transient_nonexcl_queues``; Debian's 4.3 package permits it), and its refusal is a
    541 INTERNAL_ERROR that closes the whole connection, not just a channel: so the question
    is asked on a connection of its own. An accepted probe queue is deleted at once.
    """
    name = f"fibrpc.transient-probe.{uuid.uuid4().hex[:12]}"
    quiet = [logging.getLogger(module) for module in ("aiormq", "aio_pika")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # the refusal is the answer here, not an error to log
        logger.setLevel(logging.CRITICAL)
    try:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, durable=False, auto_delete=True)
            except (aiormq.exceptions.AMQPError, ConnectionError):
                return False
            await channel.queue_delete(name)
            return True
        finally:
            await connection.close()
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
