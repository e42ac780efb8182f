"""What this process did with its messages, in order: publishes, deliveries, acks.

The worker exercise must tell a worker that acks after replying from one that acks first,
and one that holds one request at a time from one that takes them all. Both are orders of
operations inside the student's code, so the check reads them from the same pass-through
aio-pika hooks a ``Trace`` uses (:mod:`fibrpc_helpers.lab.trace_hooks`): no mock, the
student's code talks to the real broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..lab import trace_hooks
from ..lab.trace_hooks import Event
from .verdict import described


class Observed:
    """``with Observed() as seen:`` every message event of this process while it is open."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def __enter__(self) -> Observed:
        trace_hooks.install()
        trace_hooks.LISTENERS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self in trace_hooks.LISTENERS:
            trace_hooks.LISTENERS.remove(self)

    async def until(self, condition: Callable[[], bool], seconds: float) -> bool:
        """Wait (at most ``seconds``) for an event after which ``condition()`` holds."""
        try:
            async with asyncio.timeout(seconds):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pass
        return condition()

    def index(self, kind: str, routing_key: str, correlation_id: str) -> int | None:
        """Position of the first ``kind`` event of that message, None if there is none."""
        for position, event in enumerate(self.events):
            if (event.kind == kind and event.routing_key == routing_key
                    and event.correlation_id == correlation_id):
                return position
        return None

    def deliveries(self, queue: str) -> list[Event]:
        return [e for e in self.events if e.kind == "deliver" and e.routing_key == queue]

    def most_held(self, queue: str) -> int:
        """Most requests from ``queue`` delivered and not yet settled at one moment."""
        held = most = 0
        for event in self.events:
            if event.routing_key != queue:
                continue
            if event.kind == "deliver" and not event.no_ack:
                held += 1
                most = max(most, held)
            elif event.kind in ("ack", "nack", "reject"):
                held -= 1
        return most


class CallbackErrors(logging.Filter):
    """``with CallbackErrors() as raised:`` the exceptions that escape a consumer callback.

    aio-pika runs each delivery's callback in a task and does not re-raise what escapes it:
    aiormq logs it ("Consumer callback failed") and asyncio's loop reports it once more, two
    tracebacks above the check's one line. While open, such an exception is kept in
    ``errors`` instead, for the check to name the first (``first``). Anything else, and a
    kept exception no check named, is reported on exit as it would have been.
    """

    _LOGGER = "aiormq.channel"
    _MESSAGE = "Consumer callback failed"

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []
        self._first_named = False  # set by ``first``: errors[0] is in the check's line
        self._loop_reports: list[dict[str, Any]] = []  # the loop's, decided on exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: Any = None

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.msg != self._MESSAGE or not isinstance(error, Exception):
            return True
        if not any(error is kept for kept in self.errors):
            self.errors.append(error)
        return False

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), Exception):
            self._loop_reports.append(context)  # aiormq's record of it comes after
        else:
            self._report(loop, context)

    def _report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if self._handler is not None:
            self._handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def first(self) -> str:
        """The first exception, as ``ValueError: ...``; it counts as named."""
        self._first_named = True
        return described(self.errors[0])

    def __enter__(self) -> CallbackErrors:
        self._loop = asyncio.get_running_loop()  # first: without a loop, nothing is changed
        self._handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._on_loop_error)
        logging.getLogger(self._LOGGER).addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(self._LOGGER).removeFilter(self)
        assert self._loop is not None
        self._loop.set_exception_handler(self._handler)
        for context in self._loop_reports:  # the loop's reports of what was not kept
            if not any(context["exception"] is kept for kept in self.errors):
                self._report(self._loop, context)
        for kept in self.errors[1 if self._first_named else 0:]:
            logging.getLogger(self._LOGGER).error(self._MESSAGE, exc_info=kept)
