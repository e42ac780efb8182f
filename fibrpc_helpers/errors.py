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
