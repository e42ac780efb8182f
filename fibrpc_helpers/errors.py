"""The exceptions of the RPC client and worker: every failure of connecting or of a call is
an :class:`RpcError` whose message says what to do (a bad argument stays a ``ValueError``).
:func:`translate` is the one place where aio-pika's and aiormq's exceptions become ours."""

from __future__ import annotations

import asyncio
import socket

import aiormq.channel
import aiormq.connection
import aiormq.exceptions


class RpcError(Exception):
    """Base class: a remote call, or connecting for one, ended without a result."""

    reply_code: int | None = None
    """The broker's AMQP reply code behind it (541, 406, 312...), when there is one."""


class RpcTimeout(RpcError, TimeoutError):
    """No reply arrived in time: no worker consumes the queue, or they are all busy or slow."""


class NoWorkerError(RpcError):
    """The broker could not route the request to any queue, so no worker can ever see it."""


class BrokerRefusedError(RpcError):
    """The broker refused the request (a publisher-confirm ``basic.nack``): its queue could
    not take it just then. Nothing was processed, so a retry is safe."""


class RemoteError(RpcError):
    """The worker answered with an error reply (AMQP ``type`` ``error``); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the worker answered with an error: {reason}")
        self.reason = reason


class RpcConnectionError(RpcError, ConnectionError):
    """No connection to the broker: it could not be made, or it was lost while a call waited
    (then its request may or may not have been processed: retry only idempotent work)."""


class QueueMismatchError(RpcError):
    """The request queue exists with another type than the ``queue_type`` a worker was asked
    for: RabbitMQ never changes a queue's type in place."""

    def __init__(self, message: str, *, queue: str, existing: str, asked: str) -> None:
        super().__init__(message)
        self.queue = queue
        self.existing = existing
        self.asked = asked


class ChannelClosedError(RpcError):
    """The broker refused an AMQP method and closed its channel (the connection stays open)."""


class AccessRefusedError(ChannelClosedError):
    """403 ACCESS_REFUSED: the user in the URL may not do this to that queue or exchange."""


class NotFoundError(ChannelClosedError):
    """404 NOT_FOUND: no queue or exchange of that name (e.g. a passive declare)."""


class PreconditionFailedError(ChannelClosedError):
    """406 PRECONDITION_FAILED: that queue or exchange exists with other properties."""


_LOST = ("the client reconnects by itself; the request may or may not have been processed, "
         "so retry only idempotent work")
_UNREACHABLE = ("Start one with `python -m fibrpc_helpers broker ensure`, or set AMQP_URL to a "
                "broker you have.")
_CODES = {kind: code for mapping in (aiormq.channel.EXCEPTION_MAPPING,  # aiormq's own tables
                                      aiormq.connection.EXCEPTION_MAPPING)
          for code, kind in mapping.items()}


def reply_code(error: BaseException) -> int | None:
    """The AMQP reply code an aiormq exception stands for (541, 406...), None if it has none."""
    for kind in type(error).__mro__:
        if kind in _CODES:
            return _CODES[kind]
    if isinstance(error, aiormq.exceptions.DeliveryError) and hasattr(error.frame, "reply_code"):
        return int(error.frame.reply_code)
    if isinstance(error, (aiormq.exceptions.ConnectionClosed, aiormq.exceptions.ChannelClosed)):
        code = error.args[0] if error.args else None
        return code if isinstance(code, int) else None
    return None


def translate(error: BaseException, *, doing: str) -> RpcError:
    """Ours for an aio-pika, aiormq or socket exception (``doing``: "connecting to ..."). A
    ``CancelledError`` passed here is aio-pika's (its channel closed under an operation)."""
    if isinstance(error, RpcError):
        return error
    translated = _translated(error, doing)
    translated.reply_code = reply_code(error)
    translated.__cause__ = error
    return translated


_E = aiormq.exceptions
_MEANINGS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...],
                       type[RpcError], str], ...] = (
    # (what the library raised, ours, what it means and what to do): the first match wins.
    (_E.DeliveryError, BrokerRefusedError,
     "the broker refused the request (basic.nack: {error}); the request queue could not take "
     "it just now (a quorum queue electing a new leader, or a length limit with overflow "
     "reject-publish). Nothing was processed: retry."),
    ((_E.ProbableAuthenticationError, _E.AuthenticationError), RpcConnectionError,
     "the broker refused the user name or password while {doing} ({error}); check the "
     "credentials in AMQP_URL (or in .env)."),
    (_E.IncompatibleProtocolError, RpcConnectionError,
     "what answered while {doing} does not speak AMQP 0-9-1 ({error!r}); check the host and "
     "port in AMQP_URL (RabbitMQ listens on 5672, 5671 with TLS)."),
    (_E.ConnectionNotAllowed, RpcConnectionError,
     "the broker does not allow this user on the virtual host while {doing} ({error}); check "
     "the virtual host in AMQP_URL and the user's permissions."),
    (_E.ConnectionInternalError, RpcConnectionError,
     "the broker failed internally while {doing} and closed the connection ({error}); "
     + _LOST),
    (_E.ConnectionClosed, RpcConnectionError,
     "the connection to the broker was lost while {doing} (the broker closed it: {error!r}); "
     + _LOST),
    (_E.ProtocolSyntaxError, RpcConnectionError,
     "the broker answered with a frame this client did not expect while {doing} ({error}), "
     "and the connection is unusable. When connecting, check that the virtual host in "
     "AMQP_URL exists and the user may use it."),
    (_E.ChannelAccessRefused, AccessRefusedError,
     "the broker refused access while {doing} ({error}): the user in AMQP_URL lacks the "
     "permission. Ask whoever runs the broker, or use a name you may use."),
    (_E.ChannelNotFoundEntity, NotFoundError,
     "the broker has no such queue or exchange while {doing} ({error}); declare it first, or "
     "check the name."),
    (_E.ChannelPreconditionFailed, PreconditionFailedError,
     "the broker refused it while {doing} ({error}): that queue or exchange exists with other "
     "properties. Declare it exactly as it is, passively, or use another name."),
    ((_E.AMQPChannelError, _E.ChannelInvalidStateError), ChannelClosedError,
     "the channel was closed while {doing} ({error!r}); open a new channel (a client or "
     "worker: reconnect) and try again."),
    (asyncio.CancelledError, RpcConnectionError,  # aio-pika's: the channel closed under it
     "the channel or connection to the broker closed while {doing}; " + _LOST),
    (TimeoutError, RpcTimeout,
     "the broker did not answer in time while {doing}; is it overloaded or blocked (low disk "
     "or memory)?"),
    ((ConnectionRefusedError, socket.gaierror), RpcConnectionError,
     "cannot reach the broker while {doing} ({error}). " + _UNREACHABLE),
    ((ConnectionError, OSError), RpcConnectionError,  # reset, broken pipe, AMQPConnectionError
     "the connection to the broker was lost while {doing} ({error!r}); " + _LOST),
)


def _translated(error: BaseException, doing: str) -> RpcError:
    if isinstance(error, _E.PublishError):  # returned: no queue took it (before DeliveryError)
        frame = error.frame
        if not getattr(frame, "exchange", ""):
            queue = getattr(frame, "routing_key", "")
            return NoWorkerError(f"the broker has no queue named {queue!r}, so no worker can "
                                 f"receive the request. Start a worker (`python -m fibrpc_helpers "
                                 f"worker --queue {queue}`) or check the queue name.")
        return NoWorkerError(f"the broker routed the message to no queue while {doing} "
                             f"({error}); check the exchange, its bindings and the routing key.")
    if type(error) is _E.AMQPConnectionError and isinstance(error.__cause__, OSError):
        # aiormq's wrapper of a connect that failed: say what the socket said
        return RpcConnectionError(f"cannot reach the broker while {doing} ({error.__cause__}). "
                                  f"{_UNREACHABLE}")
    for kinds, ours, meaning in _MEANINGS:
        if isinstance(error, kinds):
            return ours(meaning.format(doing=doing, error=error))
    return RpcError(f"{type(error).__name__} while {doing}: {error}")
