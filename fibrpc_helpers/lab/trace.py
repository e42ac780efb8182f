"""Record the messages that flowed while a cell ran (``async with Trace() as trace:``) and show
them: ``trace.draw()``, ``trace.table()``, ``trace.calls``. It sees this process's only, through
``trace_hooks`` (README.md says more): import it before starting consumers."""

from __future__ import annotations

import asyncio
import string
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import trace_hooks
from .trace_hooks import Event

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Call", "Event", "Trace", "Worker"]

trace_hooks.install()

GONE_BEFORE_ACK = "gone before its ack"


@dataclass
class Worker:
    """A worker seen: a consumer here (``queue.get``'s is "basic.get"), else its replies' app_id."""

    label: str  # "worker A", "worker B", ... in the order the workers first appear
    app_id: str | None = None  # what its replies say (the reference worker: host:pid)
    consumer_tag: str | None = None  # in this process only
    gone: float | None = None  # when it went away holding a request it never acked
    note: str = ""  # how: "gone before its ack" or the note given to Trace.mark_killed
    in_process: bool = False  # it ran in this process: what it received or sent was seen


@dataclass
class Call:
    """One request and its fate, in seconds since the trace began (``sent`` None: not sent here)."""

    number: int
    correlation_id: str | None
    request: str | None  # the request body, e.g. "10"
    queue: str  # the request queue
    reply_to: str | None  # the callback queue
    sent: float | None = None
    delivered: float | None = None  # when a worker in this process received it
    worker: str | None = None  # "worker A", ... (see Trace.workers); None: unknown sender
    replied: float | None = None  # when the worker published the reply
    acked: float | None = None  # when the worker acked the request
    received: float | None = None  # when the first reply reached the client
    reply: str | None = None  # the first reply body, e.g. "55"
    app_id: str | None = None  # the first reply's app_id: which worker says it answered
    error: bool = False  # the reply has AMQP type "error"
    replies: int = 0  # replies delivered to the client: 2 or more, it discarded duplicates
    redelivered: bool = False
    returned: bool = False  # the broker returned the request: no queue took it
    in_process: bool = False  # the worker ran in this process (its part was observed)
    # each delivery to a worker here (more than one: a worker died or gave it back unacked),
    # and each reply published here (more than one: the request ran twice)
    deliveries: list[tuple[float, str | None, bool]] = field(default_factory=list)
    replies_sent: list[tuple[float, str | None, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # of each reply at the client

    @property
    def round_trip(self) -> float | None:
        """Seconds from sending the request to receiving its (first) reply."""
        return None if self.sent is None or self.received is None else self.received - self.sent


class Trace:
    """The messages this process sent and received while it was open (traces can nest)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.events: list[Event] = []
        self.duration: float | None = None

    def __enter__(self) -> Trace:
        self.started, self.events, self.duration = time.perf_counter(), [], None
        trace_hooks.LISTENERS.append(self._add)
        return self

    def __exit__(self, *exc: object) -> None:
        self.duration = time.perf_counter() - self.started
        if self._add in trace_hooks.LISTENERS:
            trace_hooks.LISTENERS.remove(self._add)

    async def __aenter__(self) -> Trace:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        """Like ``with``, but ``settle`` first: a worker acks after its reply reaches the client."""
        if exc[0] is None:
            await self.settle()
        self.__exit__(*exc)

    async def settle(self, quiet: float = 0.05, timeout: float = 2.0) -> None:
        """Wait until a worker here has settled each request it replied to, then ``quiet`` seconds
        of silence (``timeout`` in all): the ack follows the reply's confirm, maybe by more."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            seen = len(self.events)
            await asyncio.sleep(quiet)
            if len(self.events) == seen and not self._read()[2]:
                return

    def _add(self, event: Event) -> None:
        self.events.append(replace(event, time=event.time - self.started))

    def mark_killed(self, app_id: str, note: str = "killed") -> None:
        """Note, now, the death of the worker whose replies carry ``app_id`` (a process's)."""
        if not app_id:
            raise ValueError("mark_killed needs the app_id of the worker (e.g. host:pid)")
        self._add(Event(time.perf_counter(), "killed", "", None, None, note, app_id=app_id))

    @property
    def workers(self) -> dict[str, Worker]:
        """The workers seen, by label ("worker A", ...), in the order they first appear."""
        return self._read()[1]

    @property
    def calls(self) -> list[Call]:
        """One Call per request (and per unmatched reply), in the order they were sent, matched
        by ``correlation_id``, else (notebook 02) first in, first out per queue, as the broker."""
        return self._read()[0]

    def _read(self) -> tuple[list[Call], dict[str, Worker], list[Call]]:
        """Calls, workers, and the replied requests a worker here still holds unsettled."""
        reply_queues = {e.reply_to for e in self.events if e.reply_to}  # or server-named: amq.*
        calls: list[Call] = []
        by_id: dict[str, Call] = {}
        workers: dict[tuple[str, str], Worker] = {}  # ("tag", consumer tag) / ("app", app_id)
        holding: dict[tuple[str | None, int | None], tuple[Call, Worker]] = {}  # unsettled

        def worker(kind: str, identity: str) -> Worker:
            known = next((w for w in workers.values() if w.app_id == identity), None)
            if kind == "app" and known is not None:  # a worker here whose replies carry it
                return known
            n, tag = len(workers), kind == "tag"
            label = f"worker {string.ascii_uppercase[n] if n < 26 else n + 1}"
            return workers.setdefault((kind, identity), Worker(
                label, None if tag else identity, identity if tag else None, in_process=tag))

        def gone(who: Worker, when: float, note: str) -> None:
            if who.gone is None:
                who.gone, who.note = when, note

        def new_call(event: Event, queue: str, request: str | None = None) -> Call:
            call = Call(len(calls) + 1, event.correlation_id, request, queue, event.reply_to)
            calls.append(call)
            if event.correlation_id is not None:
                by_id[event.correlation_id] = call
            return call

        for event in self.events:
            cid, queue = event.correlation_id, event.routing_key
            reply = not event.reply_to and (queue in reply_queues or queue.startswith("amq"))
            key = (event.consumer_tag, event.delivery_tag)
            if event.kind == "killed":
                gone(worker("app", event.app_id or ""), event.time, event.body)
            elif event.kind == "close":  # a consumer's channel closed: it lost what it held
                for held in [k for k in holding if k[0] == event.consumer_tag]:
                    gone(holding.pop(held)[1], event.time, GONE_BEFORE_ACK)
            elif event.kind == "publish" and not reply:
                new_call(event, queue, event.body).sent = event.time
            elif event.kind == "return":
                call = by_id.get(cid) if cid else next((
                    c for c in calls if c.sent is not None and c.queue == queue
                    and c.request == event.body and not c.returned and c.delivered is None), None)
                if call is not None and not reply:
                    call.returned = True
            elif event.kind in ("ack", "nack", "reject"):
                settled = holding.pop(key, None)
                call = settled[0] if settled else by_id.get(cid) if cid else None
                if call is not None and not reply and call.acked is None:
                    call.acked = event.time
            elif event.kind == "deliver" and not reply:
                call = by_id.get(cid) if cid else next((
                    c for c in calls if c.queue == queue and c.request == event.body
                    and c.delivered is None and c.sent is not None), None)
                if call is None:  # sent before the trace began, or by another process
                    call = new_call(event, queue, event.body)
                for held, (other, who) in list(holding.items()):
                    if other is call:  # back from a worker that never settled it: gone
                        del holding[held]
                        gone(who, event.time, GONE_BEFORE_ACK)
                taker = worker("tag", event.consumer_tag or "basic.get")
                if not event.no_ack:
                    holding[key] = (call, taker)
                call.delivered = event.time if call.delivered is None else call.delivered
                call.worker = taker.label
                call.deliveries.append((event.time, taker.label, event.redelivered))
                call.in_process = True
                call.redelivered = call.redelivered or event.redelivered
            elif event.kind == "publish":  # a reply, published in this process
                call = by_id.get(cid) if cid else next((
                    c for c in calls if c.reply_to == queue and c.delivered is not None
                    and c.replied is None), None)
                if call is None:  # a reply to a request we never saw
                    call = new_call(event, "")
                    if event.app_id:
                        call.worker = worker("app", event.app_id).label
                publisher = next((w for w in workers.values() if w.label == call.worker), None)
                if publisher is not None:
                    publisher.in_process = True
                    publisher.app_id = publisher.app_id or event.app_id
                call.replied = event.time if call.replied is None else call.replied
                call.replies_sent.append((event.time, call.worker, event.body))
                call.reply_to = call.reply_to or queue
            elif event.kind == "deliver":  # a reply reaches the client
                call = by_id.get(cid) if cid else next((
                    c for c in calls if c.reply_to == queue and c.received is None
                    and (c.replied is not None or not c.in_process)), None)
                if call is None:
                    call = new_call(event, "")
                    call.reply_to = queue
                call.replies += 1
                call.arrivals.append(event.time)
                if call.received is None:
                    call.received, call.reply, call.app_id = event.time, event.body, event.app_id
                    call.error = event.type == "error"
                    if call.worker is None and event.app_id:
                        call.worker = worker("app", event.app_id).label
        held = [call for call, _ in holding.values()
                if call.replied is not None or call.received is not None]
        return calls, {found.label: found for found in workers.values()}, held

    def table(self) -> str:
        """One line per call: number, request, worker, reply, round trip (ms)."""
        lines = [f"{'call':>4}  {'request':<10} {'worker':<9} {'reply':<14} round trip"]
        for call in self.calls:
            request = "(none)" if call.request is None else f"fib({call.request})"
            if call.returned:
                reply = "returned"
            elif call.reply is None and call.sent is None and call.replied is not None:
                reply = "(sent away)"  # the client is in another process
            elif call.reply is None:
                reply = "(no reply)"
            else:
                reply = ("error: " if call.error else "") + call.reply
                reply += f" ×{call.replies}" if call.replies > 1 else ""
            trip = "" if call.round_trip is None else f"{call.round_trip * 1000:.1f} ms"
            worker = call.worker or "-"
            lines.append(f"{call.number:>4}  {request:<10} {worker:<9} {reply[:14]:<14} {trip}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Trace {len(self.events)} events, {len(self.calls)} calls>"

    def draw(self, title: str | None = None, *, max_calls: int = 10, gap: float = 0.01) -> Figure:
        """The sequence diagram (``trace_draw``) of the first ``max_calls`` calls, broken where
        more than ``gap`` s pass; dashed: a worker in another process, its steps unseen."""
        from .trace_draw import draw  # matplotlib is needed to draw, not to record

        return draw(self, title, max_calls=max_calls, gap=gap)
