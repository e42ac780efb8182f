"""Where a trace meets aio-pika: pass-through wrappers of public aio-pika methods.

A ``Trace`` (``fibrpc_helpers.lab.trace``) needs to see every message this process publishes,
receives and settles. Importing this module (``fibrpc_helpers.lab.trace`` does) wraps, once per
process, these public aio-pika methods, documented in aio-pika's API reference:

- ``Queue.consume(callback, no_ack=..., ...)``: the ``callback`` is wrapped so that every
  delivery to the consumer is noted before the callback runs; and a callback added to the
  queue's channel's public ``close_callbacks`` notes when the consumer's channel closes
  (a worker that goes away holding a request). ``queue.iterator()`` consumes through
  ``Queue.consume`` too, and so does ``RobustQueue.consume`` (it calls ``super().consume``).
- ``Queue.get(...)``: notes the message it returns.
- ``Exchange.publish(message, routing_key, ...)``: notes the message, and a return (the
  documented ``PublishError``, or the returned ``aiormq.abc.DeliveredMessage``).
- ``IncomingMessage.ack/nack/reject(...)``: notes the settlement once it is done
  (``async with message.process()`` calls these too).

Each wrapper takes ``*args, **kwargs`` and passes them on unchanged; it reads only the
documented parameters (``callback``, ``no_ack``, ``message``, ``routing_key``) and public
message properties (``correlation_id``, ``consumer_tag``, ``delivery_tag``, ...). No private
attribute or signature of aio-pika is used, so a new aio-pika release that keeps its public
API keeps the traces working. When no trace is open, a wrapper only calls the original.

Why at import, not when a trace opens: a consumer hands its callback over once, when it
starts, and notebooks start their workers before they open a trace. A consumer started
before ``fibrpc_helpers.lab.trace`` was imported is not seen: import it first (every notebook
does, in its first cell).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.exceptions import PublishError
from aiormq.abc import DeliveredMessage

_BODY_CHARS = 40  # enough for any fib request or a short reply/error text
_MARK = "__fibrpc_trace_hook__"  # set on our wrappers, so a re-import never wraps twice


@dataclass(frozen=True)
class Event:
    """One thing that happened to one message, seen from this process.

    ``kind`` is ``publish`` (sent to an exchange), ``return`` (the broker handed a mandatory
    message back: no queue took it), ``deliver`` (a consumer or ``queue.get`` received it),
    ``ack`` / ``nack`` / ``reject`` (a consumer settled it), ``close`` (the channel of the
    consumer ``consumer_tag`` closed) or ``killed`` (``Trace.mark_killed``: the worker whose
    ``app_id`` is given was killed; ``body`` is the note).
    """

    time: float  # seconds since the trace started
    kind: str
    routing_key: str  # with the default exchange: the name of the queue
    correlation_id: str | None
    reply_to: str | None
    body: str
    type: str | None = None
    app_id: str | None = None
    redelivered: bool = False
    consumer_tag: str | None = None
    delivery_tag: int | None = None  # with consumer_tag: which delivery an ack settles
    no_ack: bool = False  # a delivery the broker counts as settled at once (never acked)


Listener = Callable[[Event], None]
LISTENERS: list[Listener] = []
"""The open traces' ``add`` methods; a wrapper notes nothing while this is empty."""


def body_text(body: bytes) -> str:
    """The first characters of a body, for a table or a diagram."""
    text = body[:_BODY_CHARS].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > _BODY_CHARS else "")


def emit(event: Event) -> None:
    """Hand an event (``time`` from ``time.perf_counter()``) to every open trace."""
    for listener in list(LISTENERS):
        listener(event)


def _note(kind: str, message: Any, routing_key: str | None = None, **extra: Any) -> None:
    if not LISTENERS:
        return
    emit(
        Event(
            time=time.perf_counter(),
            kind=kind,
            routing_key=routing_key if routing_key is not None else (message.routing_key or ""),
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            body=body_text(message.body),
            type=message.type,
            app_id=message.app_id,
            **extra,
        )
    )


def _note_delivery(message: Any, no_ack: bool) -> None:
    if LISTENERS:
        _note(
            "deliver",
            message,
            redelivered=bool(message.redelivered),
            consumer_tag=message.consumer_tag,
            delivery_tag=message.delivery_tag,
            no_ack=no_ack,
        )


def _observed(callback: Callable[[Any], Any], no_ack: bool) -> Callable[[Any], Any]:
    """The consumer callback, noting each delivery first. A coroutine function stays one
    and a plain function stays plain, so aio-pika treats the wrapper as it would the
    callback (including its warning for a plain function)."""
    call = type(callback).__call__  # an object with an async __call__ is awaited too
    if inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(call):

        @functools.wraps(callback)
        async def on_message_async(message: Any) -> Any:
            _note_delivery(message, no_ack)
            return await callback(message)

        return on_message_async

    @functools.wraps(callback)
    def on_message(message: Any) -> Any:
        _note_delivery(message, no_ack)
        return callback(message)

    return on_message


def _close_noter(consumer_tag: str) -> Callable[..., None]:
    def on_close(*_: Any) -> None:  # CallbackCollection passes (channel, exception)
        if LISTENERS:
            emit(Event(time.perf_counter(), "close", "", None, None, "",
                       consumer_tag=consumer_tag))

    return on_close


def _wrap_consume(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    async def consume(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        no_ack = bool(bound.arguments.get("no_ack", False))
        bound.arguments["callback"] = _observed(bound.arguments["callback"], no_ack)
        consumer_tag = await original(*bound.args, **bound.kwargs)
        try:
            self.channel.close_callbacks.add(_close_noter(consumer_tag))
        except RuntimeError:  # the channel closed already ("Collection frozen"): nothing to see
            pass
        return consumer_tag

    return consume


def _wrap_get(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    async def get(self: Any, *args: Any, **kwargs: Any) -> Any:
        message = await original(self, *args, **kwargs)
        if message is not None and LISTENERS:
            no_ack = signature.bind(self, *args, **kwargs).arguments.get("no_ack", False)
            _note_delivery(message, bool(no_ack))
        return message

    return get


def _wrap_publish(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    async def publish(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not LISTENERS:
            return await original(self, *args, **kwargs)
        arguments = signature.bind(self, *args, **kwargs).arguments
        message, routing_key = arguments["message"], arguments["routing_key"]
        _note("publish", message, routing_key)
        try:
            result = await original(self, *args, **kwargs)
        except PublishError:  # returned, on a channel with on_return_raises=True
            _note("return", message, routing_key)
            raise
        if isinstance(result, DeliveredMessage):  # returned, with on_return_raises=False
            _note("return", message, routing_key)
        return result

    return publish


def _wrap_settle(original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    @functools.wraps(original)
    async def settle(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        if LISTENERS:
            _note(kind, self, consumer_tag=self.consumer_tag, delivery_tag=self.delivery_tag)
        return result

    return settle


Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def _install(owner: type, name: str, wrap: Wrap) -> None:
    original = getattr(owner, name)
    if getattr(original, _MARK, False):
        return
    wrapper = wrap(original)
    setattr(wrapper, _MARK, True)
    setattr(owner, name, wrapper)


def install() -> None:
    """Wrap the public methods listed in the module docstring, once per process."""
    _install(aio_pika.Queue, "consume", _wrap_consume)
    _install(aio_pika.Queue, "get", _wrap_get)
    _install(aio_pika.Exchange, "publish", _wrap_publish)
    for kind in ("ack", "nack", "reject"):
        _install(aio_pika.IncomingMessage, kind, functools.partial(_wrap_settle, kind=kind))


def installed() -> bool:
    """True when every wrapper is in place (for tests and for a curious reader)."""
    return all(
        getattr(getattr(owner, name), _MARK, False)
        for owner, name in [(aio_pika.Queue, "consume"), (aio_pika.Queue, "get"),
                            (aio_pika.Exchange, "publish"), (aio_pika.IncomingMessage, "ack"),
                            (aio_pika.IncomingMessage, "nack"),
                            (aio_pika.IncomingMessage, "reject")]
    )
