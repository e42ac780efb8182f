"""Record the messages that flowed while a cell ran, and draw them as a sequence diagram.

The tutorial shows a static picture of RPC. A trace shows what actually happened in the cell
just run: which request went to which queue, which worker took it, when it replied and
acked, and when the reply came back on the callback queue, each call with its correlation id
and timings.

Use it around any code that talks to the broker in this Python process (a notebook kernel)::

    from fibrpc_helpers.trace import Trace

    async with Trace() as trace:   # `async with` also waits for the last acks
        print(f"fib(10) = {await client.call(10)}")
    trace.draw()            # a matplotlib Figure: the sequence diagram (Jupyter shows it)
    print(trace.table())    # one line per call: request, worker, reply, round trip
    trace.calls             # the same as a list of Call objects, for asserts

How it sees the messages: while a ``Trace`` is open, aio-pika's ``Exchange.publish``,
``IncomingMessage`` (every delivery) and ``IncomingMessage.ack/nack/reject`` are wrapped so
that each one is noted with a timestamp. Nothing is sent to the broker and no message is
changed. Only this process is seen: for a worker running in another process
(``WorkerProcesses``) the trace has the request and the reply, and the diagram draws the
worker's part dashed, named by the reply's ``app_id``.

Stable API (other notebooks build on it): ``Trace`` (``async with`` or ``with``; ``events``,
``calls``, ``workers``, ``table()``, ``draw()``, ``settle()``), ``Event``, ``Call`` (per
request: ``sent``, ``deliveries``, ``worker``, ``replied``, ``acked``, ``received``, ``reply``,
``app_id``, ``error``, ``replies``, ``returned``, ``round_trip``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.exceptions import PublishError
from aio_pika.message import IncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from .namespace import short_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_BODY_CHARS = 40  # enough for any fib request or a short reply/error text


@dataclass(frozen=True)
class Event:
    """One thing that happened to one message, seen from this process.

    ``kind`` is ``publish`` (sent to an exchange), ``return`` (the broker handed a mandatory
    message back: no queue took it), ``deliver`` (a consumer or ``queue.get`` received it),
    or ``ack`` / ``nack`` / ``reject`` (a consumer settled it).
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


@dataclass
class Call:
    """One request and what became of it (times in seconds since the trace started).

    A request received here but sent before the trace began or by another process (a
    classmate's client, on a shared queue) is a Call with ``sent`` None, and so is a reply
    that matches no traced request (an unknown correlation id). ``replies`` counts the
    replies delivered to the client: 2 or more means
    duplicates arrived, which the client must discard.
    """

    number: int
    correlation_id: str | None
    request: str | None  # the request body, e.g. "10"
    queue: str  # the request queue
    reply_to: str | None  # the callback queue
    sent: float | None = None
    delivered: float | None = None  # when a worker in this process received it
    worker: str | None = None  # "worker 1", ... (see Trace.workers)
    replied: float | None = None  # when the worker published the reply
    acked: float | None = None  # when the worker acked the request
    received: float | None = None  # when the first reply reached the client
    reply: str | None = None  # the first reply body, e.g. "55"
    app_id: str | None = None  # the first reply's app_id: which worker says it answered
    error: bool = False  # the reply has AMQP type "error"
    replies: int = 0
    redelivered: bool = False
    returned: bool = False  # the broker returned the request: no queue took it
    in_process: bool = False  # the worker ran in this process (its part was observed)
    deliveries: list[tuple[float, str | None, bool]] = field(default_factory=list)
    """Every delivery of the request to a worker here: (time, worker, redelivered). More
    than one: a worker died (or gave the request back) before acking it."""
    replies_sent: list[tuple[float, str | None, str]] = field(default_factory=list)
    """Every reply a worker here published: (time, worker, body). More than one: the
    request ran twice (a worker replied, then died before its ack)."""
    arrivals: list[float] = field(default_factory=list)
    """When each reply reached the client; all but the first are duplicates it discards."""

    @property
    def round_trip(self) -> float | None:
        """Seconds from sending the request to receiving its (first) reply."""
        if self.sent is None or self.received is None:
            return None
        return self.received - self.sent


_ACTIVE: list[Trace] = []
_ORIGINALS: dict[str, Any] = {}


def _body_text(body: bytes) -> str:
    text = body[:_BODY_CHARS].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > _BODY_CHARS else "")


def _note(kind: str, message: Any, routing_key: str | None = None, **extra: Any) -> None:
    if not _ACTIVE:
        return
    now = time.perf_counter()
    for trace in _ACTIVE:
        trace._add(
            Event(
                time=now - trace.started,
                kind=kind,
                routing_key=routing_key if routing_key is not None else (message.routing_key or ""),
                correlation_id=message.correlation_id,
                reply_to=message.reply_to,
                body=_body_text(message.body),
                type=message.type,
                app_id=message.app_id,
                **extra,
            )
        )


def _install() -> None:
    """Wrap the aio-pika methods that see messages; undone by ``_uninstall``."""
    if _ORIGINALS:
        return
    publish = aio_pika.Exchange.publish
    init = IncomingMessage.__init__
    settle = {name: getattr(IncomingMessage, name) for name in ("ack", "nack", "reject")}

    async def traced_publish(self: Any, message: Any, routing_key: str, **kwargs: Any) -> Any:
        _note("publish", message, routing_key)
        try:
            result = await publish(self, message, routing_key, **kwargs)
        except PublishError:
            _note("return", message, routing_key)
            raise
        if isinstance(result, DeliveredMessage):  # returned, with on_return_raises=False
            _note("return", message, routing_key)
        return result

    def traced_init(self: Any, message: DeliveredMessage, no_ack: bool = False) -> None:
        init(self, message, no_ack=no_ack)
        if not isinstance(message.delivery, Basic.Return):  # returns are noted at publish
            _note(
                "deliver",
                self,
                redelivered=bool(self.redelivered),
                consumer_tag=self.consumer_tag,
                delivery_tag=self.delivery_tag,
            )

    def make_settle(name: str) -> Any:
        original = settle[name]

        async def traced(self: Any, *args: Any, **kwargs: Any) -> None:
            await original(self, *args, **kwargs)
            _note(name, self, consumer_tag=self.consumer_tag, delivery_tag=self.delivery_tag)

        return traced

    _ORIGINALS.update(publish=publish, init=init, **settle)
    aio_pika.Exchange.publish = traced_publish  # type: ignore[method-assign]
    IncomingMessage.__init__ = traced_init  # type: ignore[method-assign]
    for name in settle:
        setattr(IncomingMessage, name, make_settle(name))


def _uninstall() -> None:
    if not _ORIGINALS:
        return
    aio_pika.Exchange.publish = _ORIGINALS.pop("publish")  # type: ignore[method-assign]
    IncomingMessage.__init__ = _ORIGINALS.pop("init")  # type: ignore[method-assign]
    for name in ("ack", "nack", "reject"):
        setattr(IncomingMessage, name, _ORIGINALS.pop(name))


class Trace:
    """The messages this process sent and received between ``__enter__`` and ``__exit__``.

    Traces can nest or overlap; each sees every message while it is open.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.events: list[Event] = []
        self.duration: float | None = None

    def __enter__(self) -> Trace:
        self.started = time.perf_counter()
        self.events = []
        self.duration = None
        _install()
        _ACTIVE.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.duration = time.perf_counter() - self.started
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if not _ACTIVE:
            _uninstall()

    async def __aenter__(self) -> Trace:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Like ``with``, but first let the last messages settle: a worker acks just after
        its reply reaches the client, so a plain ``with`` may close before the ack."""
        if exc_type is None:
            await self.settle()
        self.__exit__(exc_type, exc, tb)

    async def settle(self, quiet: float = 0.05, timeout: float = 1.0) -> None:
        """Wait until no message event happened for ``quiet`` seconds (at most ``timeout``)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            seen = len(self.events)
            await asyncio.sleep(quiet)
            if len(self.events) == seen:
                return

    def _add(self, event: Event) -> None:
        self.events.append(event)

    # -- what the events mean -------------------------------------------------------------

    def _reply_queues(self) -> set[str]:
        return {event.reply_to for event in self.events if event.reply_to}

    def _is_reply(self, event: Event, reply_queues: set[str]) -> bool:
        """A reply goes to a callback queue: one named in some reply_to, or server-named."""
        return not event.reply_to and (
            event.routing_key in reply_queues or event.routing_key.startswith("amq")
        )

    @property
    def workers(self) -> dict[str, str]:
        """Worker label ("worker 1", ...) -> who it is: a consumer tag in this process, or
        the ``app_id`` of a worker in another process (``host:pid``)."""
        return {label: identity for identity, label in self._worker_labels().items()}

    def _worker_labels(self) -> dict[str, str]:
        """Worker identity -> label, numbered in the order the workers first appear."""
        labels: dict[str, str] = {}
        reply_queues = self._reply_queues()
        received_here = {  # requests that a consumer in this process received
            event.correlation_id
            for event in self.events
            if event.kind == "deliver" and not self._is_reply(event, reply_queues)
        }
        for event in self.events:
            identity = None
            if event.kind == "deliver" and not self._is_reply(event, reply_queues):
                identity = event.consumer_tag or "basic.get"
            elif event.kind == "deliver" and event.app_id:
                if event.correlation_id not in received_here:
                    identity = event.app_id  # a reply from a worker in another process
            if identity and identity not in labels:
                labels[identity] = f"worker {len(labels) + 1}"
        return labels

    @property
    def calls(self) -> list[Call]:
        """One Call per request (and per unmatched reply), in the order they were sent.

        Messages are matched to their call by ``correlation_id``. Messages without one (as in
        notebook 02, before correlation ids are introduced) are matched the way the broker
        moves them: first in, first out per queue, and an ack to the delivery it settles.
        """
        reply_queues = self._reply_queues()
        labels = self._worker_labels()
        calls: list[Call] = []
        by_id: dict[str, Call] = {}
        by_delivery: dict[tuple[str | None, int | None], Call] = {}

        def new_call(event: Event, queue: str) -> Call:
            call = Call(len(calls) + 1, event.correlation_id, None, queue, event.reply_to)
            calls.append(call)
            if event.correlation_id is not None:
                by_id[event.correlation_id] = call
            return call

        def first(condition: Any) -> Call | None:
            return next((call for call in calls if condition(call)), None)

        for event in self.events:
            reply = self._is_reply(event, reply_queues)
            cid = event.correlation_id
            key = (event.consumer_tag, event.delivery_tag)
            if event.kind == "publish" and not reply:
                call = new_call(event, event.routing_key)
                call.request, call.sent = event.body, event.time
                continue
            if event.kind == "return":
                call = by_id.get(cid) if cid else first(
                    lambda c, event=event: c.sent is not None and c.queue == event.routing_key
                    and c.request == event.body and not c.returned and c.delivered is None)
                if call is not None and not reply:
                    call.returned = True
                continue
            if event.kind in ("ack", "nack", "reject"):
                call = by_delivery.get(key) or (by_id.get(cid) if cid else None)
                if call is not None and not reply and call.acked is None:
                    call.acked = event.time
                continue
            if event.kind == "deliver" and not reply:
                call = by_id.get(cid) if cid else first(
                    lambda c, event=event: c.queue == event.routing_key and c.request == event.body
                    and c.delivered is None and c.sent is not None)
                if call is None:  # sent before the trace began, or by another process
                    call = new_call(event, event.routing_key)
                    call.request = event.body
                by_delivery[key] = call
                call.delivered = event.time if call.delivered is None else call.delivered
                call.worker = labels.get(event.consumer_tag or "basic.get")
                call.deliveries.append((event.time, call.worker, event.redelivered))
                call.in_process = True
                call.redelivered = call.redelivered or event.redelivered
            elif event.kind == "publish":  # a reply, published by a worker in this process
                call = by_id.get(cid) if cid else first(
                    lambda c, event=event: c.reply_to == event.routing_key
                    and c.delivered is not None and c.replied is None)
                if call is None:
                    call = new_call(event, "")  # a reply to a request we never saw
                call.replied = event.time if call.replied is None else call.replied
                call.replies_sent.append((event.time, call.worker, event.body))
                call.reply_to = call.reply_to or event.routing_key
            elif event.kind == "deliver":  # a reply reaches the client
                call = by_id.get(cid) if cid else first(
                    lambda c, event=event: c.reply_to == event.routing_key and c.received is None
                    and (c.replied is not None or not c.in_process))
                if call is None:
                    call = new_call(event, "")
                    call.reply_to = event.routing_key
                call.replies += 1
                call.arrivals.append(event.time)
                if call.received is None:
                    call.received, call.reply = event.time, event.body
                    call.error = event.type == "error"
                    call.app_id = event.app_id
                    if call.worker is None and event.app_id:
                        call.worker = labels.get(event.app_id)
        return calls

    # -- for people -------------------------------------------------------------------------

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
            lines.append(
                f"{call.number:>4}  {request:<10} {call.worker or '-':<9} {reply[:14]:<14} {trip}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Trace {len(self.events)} events, {len(self.calls)} calls>"

    def draw(self, title: str | None = None, *, max_calls: int = 10) -> Figure:
        """The sequence diagram of the traced calls (at most ``max_calls``), as a Figure.

        Lanes, left to right: client, request queue(s), worker(s) (named by the ``app_id`` of
        their replies when they set one, else "worker 1", ...), callback queue. Each arrow
        is one message, one row per step, in time order (the time in ms since the trace
        started is on the left). Each call has its own colour and is labelled with the first
        characters of its correlation id. Dashed: the worker ran in another process, so only
        the request and the reply were seen. ✓ marks the worker's ack.
        """
        return _draw(self, title, max_calls)


def _lanes(calls: list[Call], workers: list[str]) -> dict[str, float]:
    names = ["client"]
    queues = [call.queue for call in calls if call.queue]
    names += sorted(set(queues), key=queues.index)
    names += workers
    if any(call.sent is None or (call.received and not call.worker) for call in calls):
        names.append("someone else")
    names.append("callback queue")
    return {name: float(index) for index, name in enumerate(names)}


@dataclass
class _Step:
    """One arrow (or ack mark, when start == end) of the diagram."""

    time: float
    start: float
    end: float
    colour: Any
    label: str = ""
    dashed: bool = False


def _steps(calls: list[Call], lanes: dict[str, float], colours: Any) -> list[_Step]:
    client, callback = lanes["client"], lanes["callback queue"]
    steps: list[_Step] = []
    for call in calls:
        colour = colours((call.number - 1) % 10)
        tag = f"{call.correlation_id[:6]}: " if call.correlation_id else ""
        queue = lanes.get(call.queue, client)
        worker = lanes.get(call.worker or "someone else", lanes.get("someone else", queue))
        if call.sent is not None:
            returned = "  (returned: no queue took it)" if call.returned else ""
            steps.append(_Step(call.sent, client, queue, colour,
                               f"{tag}fib({call.request}){returned}"))
        if call.in_process and call.delivered is not None:
            for time_, who, redelivered in call.deliveries:
                to = lanes.get(who or "someone else", worker)
                steps.append(_Step(time_, queue, to, colour, "redelivered" if redelivered else ""))
            for time_, who, body in call.replies_sent:  # two: the request ran twice
                steps.append(_Step(time_, lanes.get(who or "someone else", worker), callback,
                                   colour, body))
            if call.acked is not None:
                steps.append(_Step(call.acked, worker, worker, colour, "ack"))
        elif call.received is not None and call.sent is not None:
            middle = (call.sent + call.received) / 2  # unseen: the worker is in another process
            steps.append(_Step(middle, queue, worker, colour, "(another process)", dashed=True))
            steps.append(_Step(middle, worker, callback, colour, call.reply or "", dashed=True))
        elif call.replied is not None:
            steps.append(_Step(call.replied, worker, callback, colour, call.reply or ""))
        if call.received is not None:
            reply = ("error: " if call.error else "") + (call.reply or "")
            steps.append(_Step(call.received, callback, client, colour, f"{tag}{reply}"))
            for later in call.arrivals[1:]:
                steps.append(_Step(later, callback, client, colour,
                                   f"{tag}duplicate: discarded"))
        elif call.sent is not None and not call.returned:
            steps.append(_Step(call.sent, client, client, colour, "no reply"))
    steps.sort(key=lambda step: step.time)
    return steps


def _draw(trace: Trace, title: str | None, max_calls: int) -> Figure:
    import matplotlib.pyplot as plt  # imported here: recording needs no matplotlib

    calls = trace.calls[:max_calls]
    lanes = _lanes(calls, list(trace.workers))
    steps = _steps(calls, lanes, plt.get_cmap("tab10"))
    rows = max(len(steps), 1)
    fig, ax = plt.subplots(figsize=(1.9 * len(lanes) + 1.6, 1.3 + 0.3 * rows))
    says = {}  # worker label -> the app_id its replies carry (its name), when there is one
    for worker in trace.workers:
        app_ids = {call.app_id for call in calls if call.worker == worker and call.app_id}
        if len(app_ids) == 1 and app_ids != {worker}:
            says[worker] = app_ids.pop()
    for name, x in lanes.items():
        ax.plot([x, x], [-0.5, rows - 0.5], color="0.8", lw=1, zorder=0)
        ax.text(x, -0.8, says.get(name, short_name(name)), ha="center", va="bottom",
                fontsize=9, fontweight="bold")
    for row, step in enumerate(steps):
        if step.start == step.end:  # a mark on one lane: an ack, or a call with no reply
            mark = "✓ ack" if step.label == "ack" else "✗ no reply"
            ax.text(step.start + 0.05, row, mark, color=step.colour, fontsize=8, va="center")
            continue
        ax.annotate("", xy=(step.end, row), xytext=(step.start, row),
                    arrowprops={"arrowstyle": "-|>", "color": step.colour, "lw": 1.3,
                                "linestyle": "--" if step.dashed else "-"})
        ax.text((step.start + step.end) / 2, row - 0.12, step.label, fontsize=7,
                color=step.colour, ha="center", va="bottom")
    ticks = ["unseen" if step.dashed else f"{step.time * 1000:.1f} ms" for step in steps]
    ax.set_yticks(range(len(steps)), ticks, fontsize=7)
    ax.set_xlim(-0.5, len(lanes) - 0.5)
    ax.set_ylim(rows - 0.4, -1.2)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    total = len(trace.calls)
    shown = f" (first {len(calls)} of {total} calls)" if total > len(calls) else ""
    ax.set_title((title or "messages in this cell") + shown, fontsize=10)
    fig.tight_layout()
    plt.close(fig)  # returned, not shown twice: Jupyter displays the returned Figure
    return fig
