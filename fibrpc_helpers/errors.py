"""The exceptions a caller of the RPC client can get.

Every failure of a remote call is an :class:`RpcError`, so ``except RpcError`` catches them
all; each subclass names one way a call can end without a result, and its message says
what to do about it.
"""

from __future__ import annotations


class RpcError(Exception):
    """Base class: a remote call ended without a result."""


class RpcTimeout(RpcError, TimeoutError):
    """No reply arrived in time: no worker consumes the queue, or they are all busy or slow."""


class NoWorkerError(RpcError):
    """The broker could not route the request to any queue, so no worker can ever see it."""


class BrokerRefusedError(RpcError):
    """The broker refused the request (a publisher-confirm ``basic.nack``): its queue could
    not take it just then (a quorum queue electing a new leader, or a full queue whose
    overflow setting is ``reject-publish``). Nothing was processed, so a retry is safe."""


class RemoteError(RpcError):
    """The worker answered with an error reply (AMQP ``type`` property ``error``).

    ``reason`` is the worker's human-readable explanation, e.g. why the request was invalid.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the worker answered with an error: {reason}")
        self.reason = reason


class RpcConnectionError(RpcError, ConnectionError):
    """The connection to the broker was lost while the call waited for its reply.

    The request may or may not have been processed; a retry is safe because the work is
    idempotent.
    """


class QueueMismatchError(RpcError):
    """The request queue exists with another type than the one the worker was asked for.

    Raised only when a type was asked for explicitly (``queue_type=`` or ``--queue-type``):
    without one, a worker adopts the queue as it is. RabbitMQ never changes a queue's type or
    durability in place (a declare that differs is refused with 406 PRECONDITION_FAILED), so
    the way out is to serve the queue as it is, use another name, or delete it first. The
    message is one line naming the queue, what it is, what was asked and what to do.
    """

    def __init__(self, message: str, *, queue: str, existing: str, asked: str) -> None:
        super().__init__(message)
        self.queue = queue
        self.existing = existing
        self.asked = asked
