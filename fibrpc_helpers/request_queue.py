"""The request queue: adopt it as it is, or declare it the way today's tutorial six does.

RabbitMQ's tutorial six declares ``rpc_queue`` durable quorum, aio-pika's classic non-durable,
and RabbitMQ refuses (406) a declare that differs from the existing queue: a worker declaring
its own shape would die beside a server of the other.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import aio_pika

from .errors import NotFoundError, PreconditionFailedError, QueueMismatchError, RpcError, translate

log = logging.getLogger(__name__)

QueueType = Literal["quorum", "classic"]
QUEUE_TYPES: tuple[QueueType, ...] = ("quorum", "classic")
"""The types a worker declares when asked (``queue_type=`` / ``--queue-type``)."""


@dataclass(frozen=True)
class RequestQueue:
    """The properties a declare must repeat exactly; ``unknown`` (``durable`` None) for a queue
    with arguments of its own: the worker only consumes it, never declares it."""

    type: str
    durable: bool | None
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def asked(cls, queue_type: QueueType) -> RequestQueue:
        """The queue a worker declares when there is none. quorum: durable, as tutorial six's
        official code has it; replicated, the type RabbitMQ recommends (from 4.0 a request that
        kills every worker that takes it is dropped after 20 deliveries). classic: not durable,
        as the aio-pika tutorial has it, so its server can share the queue (durable where the
        broker denies transient queues, see :func:`transient_queues_permitted`)."""
        if queue_type not in QUEUE_TYPES:
            raise ValueError(f"queue_type must be one of {', '.join(map(repr, QUEUE_TYPES))} or "
                             f"None (adopt the existing queue, else quorum), got {queue_type!r}")
        return cls(queue_type, durable=queue_type == "quorum",
                   arguments={"x-queue-type": queue_type})

    @property
    def durability(self) -> str:
        """``durable``, ``not durable`` or ``durability unknown``, as a person reads it."""
        return {True: "durable", False: "not durable", None: "durability unknown"}[self.durable]

    def describe(self) -> str:
        """``quorum, durable``: what the start-up line says the worker serves."""
        return f"{self.type}, {self.durability}"


UNKNOWN = RequestQueue("unknown", durable=None)

_SHAPES = (
    RequestQueue("quorum", durable=True, arguments={"x-queue-type": "quorum"}),
    RequestQueue("classic", durable=True, arguments={"x-queue-type": "classic"}),
    RequestQueue("classic", durable=False, arguments={"x-queue-type": "classic"}),
)
"""What an existing queue is tried as, in this order (a classic queue declared without
``x-queue-type`` accepts a declare that names ``classic``)."""


async def declare_request_queue(connection: aio_pika.abc.AbstractConnection, name: str,
                                queue_type: QueueType | None = None) -> RequestQueue:
    """Find out what the request queue is, declaring it only when it is absent.

    AMQP has no "describe queue": an existing queue's shape is learned by what the broker
    accepts (an equivalent declare changes nothing, another is refused). An absent one is
    declared as asked (None: quorum); a 406 then means another worker declared it meanwhile.
    Only an explicit ``queue_type`` of another type raises :class:`QueueMismatchError`.
    """
    wanted = RequestQueue.asked(queue_type or "quorum")
    async with await aio_pika.connect(connection.url) as probing:
        existing = await _existing(probing, name)
        if existing is None:
            if not wanted.durable and not await transient_queues_permitted(str(connection.url),
                                                                           prefix=name):
                wanted = replace(wanted, durable=True)
            refusal = await _declare(probing, name, wanted)
            if refusal is None:
                return wanted  # ours, or an equivalent one declared a moment before
            if not isinstance(refusal, PreconditionFailedError):
                raise refusal
            existing = await _learn(probing, name)
    if queue_type is not None and existing.type not in (queue_type, "unknown"):
        raise QueueMismatchError(
            f"the request queue {name!r} already exists as a {existing.type} queue "
            f"({existing.durability}), but a {queue_type} queue was asked for: start the worker "
            "without a queue type (no --queue-type) to serve it as it is, or use another queue "
            "name", queue=name, existing=existing.describe(), asked=queue_type)
    if queue_type is not None and existing is UNKNOWN:
        log.warning("could not tell the type of queue %r; serving it as it is", name)
    return existing


async def _existing(connection: aio_pika.abc.AbstractConnection, name: str
                    ) -> RequestQueue | None:
    """The existing queue's shape, or None when there is no such queue."""
    refusal = await _declare(connection, name, None)  # passive: it never creates anything
    if isinstance(refusal, NotFoundError):
        return None
    if refusal is not None:
        raise refusal
    return await _learn(connection, name)


async def _learn(connection: aio_pika.abc.AbstractConnection, name: str) -> RequestQueue:
    """The first of the tutorials' shapes the broker accepts for the existing queue."""
    for shape in _SHAPES:
        refusal = await _declare(connection, name, shape)
        if refusal is None:
            return shape
        if not isinstance(refusal, PreconditionFailedError):
            raise refusal
    log.info("queue %r has arguments of its own; the worker consumes it as it is", name)
    return UNKNOWN


async def _declare(connection: aio_pika.abc.AbstractConnection, name: str,
                   queue: RequestQueue | None, **options: Any) -> RpcError | None:
    """Declare on a throwaway plain channel (None: passively; a robust channel closed by a
    refusal would come back); None when accepted, else the broker's refusal as one of ours."""
    async with aio_pika.Channel(connection, publisher_confirms=False) as channel:
        try:
            if queue is None:
                await channel.declare_queue(name, passive=True)
            else:
                await channel.declare_queue(name, durable=bool(queue.durable),
                                            arguments=dict(queue.arguments), **options)
        except Exception as error:
            return translate(error, doing=f"declaring queue {name!r}")
    return None


_PROBING: contextvars.ContextVar[bool] = contextvars.ContextVar("fibrpc_probing", default=False)
# A probe's own connection logs nothing: its refusal is an answer, not an error. Its tasks
# start inside the probe, so they carry _PROBING; every other connection logs as before. A
# logger's filter sees only the records made by that logger itself, so each module's.
for _module in ("aiormq.connection", "aiormq.channel", "aiormq.base", "aiormq.tools",
                "aio_pika.connection", "aio_pika.channel", "aio_pika.tools", "aio_pika.queue"):
    logging.getLogger(_module).addFilter(lambda record: not _PROBING.get())

_TRANSIENT_DENIED = 541  # RabbitMQ's refusal of a deprecated feature (INTERNAL_ERROR)


async def transient_queues_permitted(url: str, prefix: str = "fibrpc") -> bool:
    """Whether the broker at ``url`` takes a transient (non-durable) non-exclusive queue,
    the shape of aio-pika's tutorial six ``rpc_queue``.

    Upstream RabbitMQ 4.3 denies one (``transient_nonexcl_queues``) with a 541 that closes
    the whole connection, hence a connection of its own. Any other refusal counts as
    permitted: the real declare then speaks for itself. The probe queue, named after
    ``prefix``, expires after 10 s even if this call is cancelled before deleting it.
    """
    name = f"{prefix}.transient-probe.{uuid.uuid4().hex[:12]}"
    token = _PROBING.set(True)
    try:
        async with await aio_pika.connect(url) as connection:
            probe = RequestQueue("classic", durable=False, arguments={"x-expires": 10_000})
            refused = await _declare(connection, name, probe, auto_delete=True)
            if refused is not None:
                return refused.reply_code != _TRANSIENT_DENIED
            async with aio_pika.Channel(connection) as channel:
                await channel.queue_delete(name)
            return True
    finally:
        _PROBING.reset(token)
