"""Where a trace meets aio-pika: pass-through wrappers of the public methods README.md's ``Trace``
paragraph lists, installed at import (a consumer hands over its callback once, as it starts);
they read only documented parameters, and while no trace is open only call the original."""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.exceptions import PublishError
from aio_pika.tools import ensure_awaitable
from aiormq.abc import DeliveredMessage

_BODY_CHARS = 40  # enough for any fib request or a short reply/error text
_MARK = "__fibrpc_trace_hook__"  # set on our wrappers, so a re-import never wraps twice


@dataclass(frozen=True)
class Event:
    """One thing that happened to one message, seen here; ``kind``: publish, return, deliver, ack,
    nack, reject, close (``consumer_tag``'s channel), killed (``mark_killed``; ``body``: note)."""

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


LISTENERS: list[Callable[[Event], None]] = []  # the open traces; none: the wrappers note nothing


def emit(event: Event) -> None:
    """Hand an event (``time`` from ``time.perf_counter()``) to every open trace."""
    for listener in list(LISTENERS):
        listener(event)


def _note(kind: str, message: Any, routing_key: str | None = None, **extra: Any) -> None:
    if not LISTENERS:
        return
    routing_key = routing_key if routing_key is not None else (message.routing_key or "")
    body = message.body[:_BODY_CHARS].decode("utf-8", errors="replace")
    body += "…" if len(message.body) > _BODY_CHARS else ""
    emit(Event(time.perf_counter(), kind, routing_key, message.correlation_id, message.reply_to,
               body, type=message.type, app_id=message.app_id, **extra))


def _note_delivery(message: Any, no_ack: bool) -> None:
    _note("deliver", message, redelivered=bool(message.redelivered),
          consumer_tag=message.consumer_tag, delivery_tag=message.delivery_tag, no_ack=no_ack)


def _observed(callback: Callable[[Any], Any], no_ack: bool) -> Callable[[Any], Any]:
    """The callback, noting each delivery first (a plain one made awaitable as aio-pika would)."""
    awaitable = ensure_awaitable(callback)

    @functools.wraps(callback)
    async def on_message(message: Any) -> Any:
        _note_delivery(message, no_ack)
        return await awaitable(message)

    return on_message


async def _consume(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    bound = inspect.signature(original).bind(self, *args, **kwargs)
    no_ack = bool(bound.arguments.get("no_ack", False))
    bound.arguments["callback"] = _observed(bound.arguments["callback"], no_ack)
    consumer_tag = await original(*bound.args, **bound.kwargs)

    def on_close(*_: Any) -> None:  # CallbackCollection passes (channel, exception)
        emit(Event(time.perf_counter(), "close", "", None, None, "", consumer_tag=consumer_tag))

    with contextlib.suppress(RuntimeError):  # the channel closed already: nothing to see
        self.channel.close_callbacks.add(on_close)
    return consumer_tag


async def _get(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    message = await original(self, *args, **kwargs)
    if message is not None and LISTENERS:  # no_ack is keyword-only
        _note_delivery(message, bool(kwargs.get("no_ack", False)))
    return message


async def _publish(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    if not LISTENERS:
        return await original(self, *args, **kwargs)
    arguments = inspect.signature(original).bind(self, *args, **kwargs).arguments
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


async def _settle(kind: str, original: Callable[..., Any], self: Any, *args: Any,
                  **kwargs: Any) -> Any:
    result = await original(self, *args, **kwargs)
    _note(kind, self, consumer_tag=self.consumer_tag, delivery_tag=self.delivery_tag)
    return result


def _wrapper(original: Callable[..., Any], hook: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await hook(original, self, *args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def install() -> None:
    """Wrap the methods README.md's ``Trace`` paragraph lists, once per process."""
    hooks = [(aio_pika.Queue, "consume", _consume), (aio_pika.Queue, "get", _get),
             (aio_pika.Exchange, "publish", _publish)]
    hooks += [(aio_pika.IncomingMessage, kind, functools.partial(_settle, kind))
              for kind in ("ack", "nack", "reject")]
    for owner, name, hook in hooks:
        if not getattr(getattr(owner, name), _MARK, False):
            setattr(owner, name, _wrapper(getattr(owner, name), hook))
