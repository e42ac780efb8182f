"""A load-generator process: real clients that call at a closed- or open-loop pace.

The runner spreads the clients over a few (``LoadGenerators``): one process on its one core
would measure itself. Each answers a JSON command on stdin with a JSON line of every call
(``points.Call``); stdin is its lifeline (``runtime.follow_stdin``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from itertools import cycle
from typing import IO, Any

from ..errors import RpcError
from ..lab.runtime import LOOPS, ChildError, ProcessGroup, follow_stdin, run, threadsafe
from .designs import Caller, connect
from .points import Call, LoopLag
from .stats import poisson_schedule

# A ticker late by x says the event loop was busy for x: a reply arriving meanwhile waited too.
LAG_TICK = 0.005
# An idle loop's timer wakes ~0.5 ms late (epoll rounds up), a reply does not: measured, subtracted.
SLACK_TICKS = 40
# Seconds a run may take beyond its windows and the calls' timeout before it is failed.
RUN_MARGIN = 30.0


@dataclass
class Load:
    """What one load-generator process does in one run."""

    client: str  # which client class (a key of designs.CLIENTS)
    queue: str
    clients: int
    loop: str  # "closed": send the next call when the last returns; "open": Poisson arrivals
    n: int
    warmup: float
    duration: float
    rate: float = 0.0  # open loop: calls per second from this process
    seed: int = 0
    timeout: float = 10.0
    start_at: float = 0.0  # time.monotonic() (machine-wide on Linux) at which the run starts
    client_offset: int = 0  # numbers this process's clients from here, for the CSV

    @property
    def deadline(self) -> float:
        """Seconds the whole run may take: its windows, one call's timeout, a margin."""
        return self.warmup + self.duration + self.timeout + RUN_MARGIN


class Generator:
    """The clients of one process, kept connected from run to run (keyed by client, queue)."""

    def __init__(self, url: str | None, slack: float = 0.0) -> None:
        self.url = url
        self.slack = slack  # seconds an idle loop's timer wakes late (see SLACK_TICKS)
        self.pools: dict[tuple[str, str], list[Caller]] = {}

    async def clients(self, load: Load) -> list[Caller]:
        """The first ``load.clients`` of the pool, connecting what it lacks."""
        pool = self.pools.setdefault((load.client, load.queue), [])
        missing = load.clients - len(pool)
        if missing > 0:  # all at once; if one fails, the others join the pool to be closed
            made = await asyncio.gather(
                *(connect(load.client, self.url, load.queue, load.timeout) for _ in range(missing)),
                return_exceptions=True)
            pool += [client for client in made if not isinstance(client, BaseException)]
            _raise_any(made)
        return pool[: load.clients]

    async def run(self, load: Load) -> tuple[list[Call], LoopLag]:
        """Every call of ``load``, and this event loop's lag in the measured window."""
        clients = await self.clients(load)
        records: list[Call] = []
        t0 = load.start_at
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        try:
            async with asyncio.timeout(load.deadline), asyncio.TaskGroup() as group:
                ticker = group.create_task(self._lag(t0, load.warmup, load.warmup + load.duration))
                if load.loop == "closed":
                    for index, client in enumerate(clients, start=load.client_offset):
                        group.create_task(_closed(load, index, client, records))
                else:
                    group.create_task(_open(load, clients, records, group))
        except TimeoutError:
            raise TimeoutError(f"a run of {load.clients} {load.loop}-loop clients did not "
                               f"finish within {load.deadline:g} s") from None
        except BaseExceptionGroup as failed:  # one failure: raised as itself
            if len(failed.exceptions) > 1:
                raise
            raise failed.exceptions[0] from None
        return records, ticker.result()

    async def _lag(self, t0: float, start: float, end: float) -> LoopLag:
        """How late beyond the idle slack the ticker woke: a full core, which Little's law hides."""
        lates = await _ticks(t0, start, end)
        excess = [max(0.0, late - self.slack) for late in lates] or [0.0]
        return LoopLag(worst=max(excess), mean=sum(excess) / len(excess))

    async def close(self) -> None:
        clients = [client for pool in self.pools.values() for client in pool]
        self.pools.clear()
        _raise_any(await asyncio.gather(*(c.close() for c in clients), return_exceptions=True))


def _raise_any(results: Sequence[object]) -> None:
    """Raise the first exception of a ``gather(..., return_exceptions=True)``."""
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _call(client: Caller, load: Load, number: int, out: list[Call],
                intended: float | None = None) -> None:
    """One call, recorded with its RPC error's name; any other exception fails the run."""
    sent = time.monotonic() - load.start_at
    error = ""
    try:
        await client.call(load.n, timeout=load.timeout)
    except (TimeoutError, RpcError) as failed:
        error = type(failed).__name__
    done = time.monotonic() - load.start_at
    out.append(Call(number, sent if intended is None else intended, sent, done, error))


async def _closed(load: Load, number: int, client: Caller, out: list[Call]) -> None:
    while time.monotonic() - load.start_at < load.warmup + load.duration:
        await _call(client, load, number, out)


async def _open(load: Load, clients: Sequence[Caller], out: list[Call],
                group: asyncio.TaskGroup) -> None:
    """Each call at its Poisson arrival, on the clients in turn, however many are waiting."""
    numbered = cycle(enumerate(clients, start=load.client_offset))
    for intended in poisson_schedule(load.rate, load.warmup + load.duration, load.seed):
        if (delay := load.start_at + intended - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        number, client = next(numbered)
        group.create_task(_call(client, load, number, out, intended))


async def _ticks(t0: float, start: float, end: float) -> list[float]:
    """How late (s) a ticker due every LAG_TICK s in [start, end) after ``t0`` woke each time."""
    lates, due = [], start
    while due < end:
        if (delay := t0 + due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        lates.append(time.monotonic() - t0 - due)
        due += LAG_TICK
    return lates


async def idle_slack(ticks: int = SLACK_TICKS) -> float:
    """How late this event loop's timer wakes when nothing else runs: the median lateness."""
    return statistics.median_high(await _ticks(time.monotonic(), 0.0, ticks * LAG_TICK))


async def _serve(url: str | None) -> None:
    """Answer the parent's commands until quit; SIGTERM or the end of stdin cancels them."""
    generator = Generator(url, slack=await idle_slack())
    stdin = asyncio.StreamReader()

    async def answer() -> None:
        while (line := await stdin.readline()) and line.strip() != b"quit":
            print(json.dumps(await _obey(generator, json.loads(line))), flush=True)

    serving = asyncio.ensure_future(answer())  # a task of its own: cancelling it spares close
    follow_stdin(threadsafe(stdin.feed_data), threadsafe(serving.cancel))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    try:
        await serving
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # ours, not only the commands': pass it on
            raise
    finally:
        await generator.close()


async def _obey(generator: Generator, command: dict[str, Any]) -> dict[str, Any]:
    """The answer to one command of the parent's (a failure's traceback too)."""
    try:
        if command.get("close"):
            await generator.close()
            return {"closed": True}
        if "connect" in command:  # connect first, so all processes start together
            return {"connected": len(await generator.clients(Load(**command["connect"])))}
        calls, lag = await generator.run(Load(**command))
        rows = [[c.client, c.intended, c.sent, c.done, c.error] for c in calls]
        return {"records": rows, "lag": asdict(lag)}
    except Exception:  # the parent raises it, traceback and all
        return {"error": traceback.format_exc()}


class LoadGenerators:
    """``count`` load-generator processes on one event loop kind; ``send`` spreads a load."""

    def __init__(self, count: int, url: str | None = None, *, loop: str = "asyncio",
                 stderr: IO[Any] | int | None = None) -> None:
        if loop not in LOOPS:
            raise ValueError(f"unknown event loop {loop!r}; choose one of {', '.join(LOOPS)}")
        self.count, self.url, self.loop = count, url, loop
        self.group = ProcessGroup(stderr=stderr)
        self._ready = False

    def spawn(self) -> LoadGenerators:
        """Start the processes without waiting for them (see ``ready``)."""
        command = [sys.executable, "-m", "fibrpc_helpers.bench.loadgen", "--loop", self.loop]
        env = {"AMQP_URL": self.url} if self.url else {}  # see ProcessGroup.spawn
        for _ in range(self.count):
            self.group.spawn(command, name="load generator", env=env)
        self._ready = False
        return self

    def ready(self, timeout: float = 60.0) -> LoadGenerators:
        """Wait, once, until every process has said it is ready."""
        if not self._ready:
            self.group.wait_ready(self.group.children, '^{"ready"', timeout)
            self._ready = True
        return self

    def start(self, timeout: float = 60.0) -> LoadGenerators:
        return self.spawn().ready(timeout)

    @property
    def pids(self) -> list[int]:
        return self.group.pids

    def _read(self, child: Any, timeout: float) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = json.loads(child.readline(time.monotonic() + timeout))
        except ChildError:
            self.stop()
            raise
        if "error" in answer:
            self.stop()
            raise RuntimeError(f"load generator {child.pid} failed:\n{answer['error']}")
        return answer

    def shares(self, load: Load) -> list[tuple[Any, Load]]:
        """Each process's share of ``load``: clients split evenly, the rate in proportion."""
        shares, offset = [], 0
        for i, child in enumerate(self.group.children):
            clients = load.clients // self.count + (i < load.clients % self.count)
            if clients:
                shares.append((child, replace(load, clients=clients, client_offset=offset,
                                              rate=load.rate * clients / load.clients,
                                              seed=load.seed * 1000 + i)))
                offset += clients
        return shares

    def send(self, load: Load, timeout: float = 60.0) -> list[Any]:
        """Connect every share's clients, then start all processes at the same instant."""
        shares = self.shares(load)
        for child, share in shares:
            child.write(json.dumps({"connect": asdict(share)}))
        for child, _ in shares:
            self._read(child, timeout)
        load.start_at = time.monotonic() + 0.02
        for child, share in shares:
            child.write(json.dumps(asdict(replace(share, start_at=load.start_at))))
        return [child for child, _ in shares]

    def collect(self, busy: Sequence[Any], load: Load) -> tuple[list[Call], list[LoopLag]]:
        """Every process's calls, and each process's event-loop lag."""
        answers = [self._read(child, load.deadline + 10) for child in busy]
        calls = [Call(*row) for answer in answers for row in answer["records"]]
        return calls, [LoopLag(**answer["lag"]) for answer in answers]

    def close_clients(self) -> None:
        """Close every client (between designs or queues), keeping the processes."""
        self.ready()
        for child in self.group.children:
            child.write(json.dumps({"close": True}))
        for child in self.group.children:
            self._read(child, 30)

    def stop(self) -> None:
        for child in self.group.children:
            if child.running:
                with suppress(OSError):
                    child.write("quit")
        self.group.stop(timeout=10)

    def __enter__(self) -> LoadGenerators:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description="a benchmark load-generator process")
    arguments.add_argument("--url")
    arguments.add_argument("--loop", choices=LOOPS, default="asyncio")
    options = arguments.parse_args()
    run(_serve(options.url), options.loop)
