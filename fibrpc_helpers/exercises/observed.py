"""What this process did with its messages, in order: publishes, deliveries, acks.

The worker exercise must tell a worker that acks after replying from one that acks first,
and one that holds one request at a time from one that takes them all. Both are orders of
operations inside the student's code, so the check reads them from the same pass-through
aio-pika hooks a ``Trace`` uses (:mod:`fibrpc_helpers.lab.trace_hooks`): no mock, the
student's code talks to the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

from ..lab import trace_hooks
from ..lab.trace_hooks import Event


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

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
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
