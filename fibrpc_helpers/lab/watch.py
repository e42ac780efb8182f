"""Watch, live, the queues of a namespace: messages waiting and consumers (``python -m
fibrpc_helpers watch``, on a class's projector). AMQP cannot list queues: it passively declares
the names it knows (``KNOWN_NAMES``, ``--queue``); README.md's "What `watch` can see"."""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from ..client import DEFAULT_QUEUE
from ..errors import RpcConnectionError
from ..urls import amqp_url, mask_url
from .namespace import namespace as default_namespace

# The series' names in a namespace, as shown: the CLI's default, each notebook's (00 to 09).
KNOWN_NAMES: tuple[str, ...] = (DEFAULT_QUEUE, *(f"{n:02d}.{DEFAULT_QUEUE}" for n in range(10)))

_PROBLEMS = {  # what a failed passive declare means
    aiormq.exceptions.ChannelNotFoundEntity: "not declared",
    aiormq.exceptions.ChannelLockedResource: "exclusive to another connection",
    aiormq.exceptions.ChannelAccessRefused: "no permission on this vhost",
}


@dataclass(frozen=True)
class QueueState:
    """What a passive declare says about one queue (counts are None when it has none)."""

    name: str
    ready: int | None = None  # messages waiting, not yet delivered to a consumer
    consumers: int | None = None
    problem: str = ""  # "not declared", "exclusive to another connection", ...


async def snapshot(connection: AbstractConnection, queues: Iterable[str]) -> list[QueueState]:
    """The state of each queue, read with passive declares on one short-lived channel."""
    states: list[QueueState] = []
    channel: AbstractChannel | None = None
    try:
        for name in queues:
            if channel is None or channel.is_closed:  # a failed passive declare closes it
                channel = await connection.channel(publisher_confirms=False)
            try:
                result = (await channel.declare_queue(name, passive=True)).declaration_result
            except tuple(_PROBLEMS) as error:  # aiormq raises these very classes
                states.append(QueueState(name, problem=_PROBLEMS[type(error)]))
            else:
                states.append(QueueState(name, result.message_count, result.consumer_count))
    finally:
        if channel is not None and not channel.is_closed:
            await channel.close()
    return states


def render(states: list[QueueState], *, namespace: str, url: str, at: float) -> list[str]:
    """The table's lines: a row per queue that exists, then the names of those that do not."""
    prefix = f"{namespace}." if namespace else ""
    rows = [(state.name.removeprefix(prefix), state) for state in states]
    width = max([len("queue"), *(len(name) for name, _ in rows)])
    clock = time.strftime("%H:%M:%S", time.localtime(at))
    where = f"namespace {namespace!r}" if namespace else "no namespace"
    lines = [f"queues of {where} at {mask_url(url)}  ({clock})",
             f"{'queue':<{width}}  {'ready':>7}  {'consumers':>9}"]
    for name, state in rows:
        if state.ready is not None:
            lines.append(f"{name:<{width}}  {state.ready:>7}  {state.consumers:>9}")
        elif state.problem != "not declared":
            lines.append(f"{name:<{width}}  {'-':>7}  {'-':>9}  {state.problem}")
    absent = [name for name, state in rows if state.problem == "not declared"]
    if absent:
        lines += textwrap.wrap(f"not declared (yet): {', '.join(absent)}", width=79,
                               subsequent_indent="  ", break_on_hyphens=False)
    return lines


class LiveTable:
    """Each table over the previous one on a terminal; elsewhere (a pipe, a log) below it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.in_place = out.isatty()
        self._drawn = 0  # lines of the previous table still on screen

    def show(self, lines: list[str]) -> None:
        if self.in_place:  # a line the terminal wraps would throw the cursor-up count off
            columns = shutil.get_terminal_size().columns
            lines = [line[: columns - 1] for line in lines]
        if self._drawn:  # a terminal: go N lines up and clear the rest; elsewhere, a blank line
            self.out.write(f"\x1b[{self._drawn}F\x1b[J" if self.in_place else "\n")
        self.out.write("".join(f"{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)


async def _connect(url: str) -> AbstractConnection:
    try:
        return await aio_pika.connect(url, timeout=5)
    except (TimeoutError, ConnectionError, OSError) as error:
        raise RpcConnectionError(
            f"cannot connect to the broker at {mask_url(url)} ({error or 'timed out'}). "
            "Check AMQP_URL (or --url), or start one with `python -m fibrpc_helpers broker "
            "ensure`.") from None


async def watch(url: str | None = None, *, namespace: str | None = None,
                names: Iterable[str] = (), interval: float = 1.0, once: bool = False,
                out: TextIO | None = None) -> None:
    """Show the namespace's queues every ``interval`` seconds until cancelled, or ``once``."""
    url = amqp_url(url)
    namespace = default_namespace() if namespace is None else namespace
    prefix = f"{namespace}." if namespace else ""  # an empty namespace: the bare names
    queues = [f"{prefix}{name}" for name in dict.fromkeys([*KNOWN_NAMES, *names])]
    table = LiveTable(out or sys.stdout)
    connection: AbstractConnection | None = await _connect(url)
    try:
        while True:
            try:
                if connection is None or connection.is_closed:
                    connection = await _connect(url)
                states = await snapshot(connection, queues)
                lines = render(states, namespace=namespace, url=url, at=time.time())
            except (RpcConnectionError, aiormq.exceptions.AMQPConnectionError, OSError) as error:
                if once:
                    raise
                connection = None  # a live view outlives a broker restart: retry next tick
                lines = [f"lost the broker at {mask_url(url)}: {error}; retrying"]
            table.show(lines)
            if once:
                return
            await asyncio.sleep(interval)
    finally:
        if connection is not None:
            await connection.close()
