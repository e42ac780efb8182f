"""A load-generator process: real clients that call at a closed- or open-loop pace.

One Python process runs one event loop on one core, so a single process driving 64 clients
would measure itself, not the RPC. The grid runner starts a few of these processes
(``LoadGenerators``) and spreads the clients over them. Each process reads one JSON command
per line on stdin, runs it, and answers one JSON line on stdout with every call it made:
``[client, intended, sent, done, error]``, times in seconds from the run's start.

All processes share the start instant: ``time.monotonic()`` is the machine-wide
CLOCK_MONOTONIC on Linux, so the parent can say "start at t" to every process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import cycle
from types import TracebackType
from typing import Any

from ..errors import RpcError
from .designs import Caller, connect
from .stats import poisson_schedule

Record = tuple[int, float, float, float, str]  # client, intended, sent, done, error ("" = ok)

# How often the lag ticker wakes. A ticker that asks to wake every 5 ms and wakes late by x
# says that the event loop was busy (or its process waited for a core) for x: a reply that
# arrived meanwhile waited about as long, and that wait was counted in its call's latency.
LAG_TICK = 0.005
# An idle event loop wakes a timer late by itself: epoll counts its timeout in whole
# milliseconds, rounded up, so a ticker on an idle loop reads about 0.5 ms of "lag" that no
# reply (which wakes the loop through its socket) ever waits. Each process measures this
# slack on its idle loop when it starts, and subtracts it.
SLACK_TICKS = 40


@dataclass(frozen=True)
class LoopLag:
    """How late a load generator's event loop was during one window, beyond its idle slack.

    ``mean`` is about the extra wait of a typical reply before the generator read it (the
    ticks fall at moments unrelated to the replies); ``worst`` is the longest single stall.
    """

    worst: float  # seconds
    mean: float  # seconds


@dataclass
class Load:
    """What one load-generator process does in one run."""

    design: str
    queue: str
    clients: int
    loop: str  # "closed": send the next call when the last returns; "open": Poisson arrivals
    n: int
    warmup: float
    duration: float
    rate: float = 0.0  # open loop: calls per second from this process
    seed: int = 0
    timeout: float = 10.0
    start_at: float = 0.0  # time.monotonic() at which the run starts
    client_offset: int = 0  # numbers this process's clients from here, for the CSV


class Generator:
    """The clients of one process, kept connected from run to run (keyed by design, queue)."""

    def __init__(self, url: str | None, slack: float = 0.0) -> None:
        self.url = url
        self.slack = slack  # seconds an idle loop's timer wakes late (see SLACK_TICKS)
        self.pools: dict[tuple[str, str], list[Caller]] = {}

    async def clients(self, load: Load) -> list[Caller]:
        pool = self.pools.setdefault((load.design, load.queue), [])
        missing = load.clients - len(pool)
        if missing > 0:
            pool += await asyncio.gather(
                *(connect(load.design, self.url, load.queue, load.timeout) for _ in range(missing))
            )
        return pool[: load.clients]

    async def run(self, load: Load) -> tuple[list[Record], LoopLag]:
        """Every call of ``load``, and this event loop's lag in the measured window."""
        clients = await self.clients(load)
        records: list[Record] = []
        delay = load.start_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = load.start_at
        window = (load.warmup, load.warmup + load.duration)
        ticker = asyncio.create_task(self._lag(t0, *window, slack=self.slack))
        try:
            if load.loop == "closed":
                calls = (self._closed(load, i, c, t0, records) for i, c in enumerate(clients))
                await asyncio.gather(*calls)
            else:
                await self._open(load, clients, t0, records)
        except BaseException:  # the calls failed: the ticker goes with them
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            raise
        return records, await ticker

    @staticmethod
    async def _lag(t0: float, start: float, end: float, slack: float = 0.0) -> LoopLag:
        """The lateness beyond ``slack`` of a ticker due every LAG_TICK s in [start, end).

        A load generator whose one core is full times its own queueing: its calls look
        slower, and Little's law still holds. The lag of its event loop is what shows it.
        """
        lates = await _ticks(t0, start, end)
        excess = [max(0.0, late - slack) for late in lates] or [0.0]
        return LoopLag(worst=max(excess), mean=sum(excess) / len(excess))

    async def _closed(
        self, load: Load, index: int, client: Caller, t0: float, out: list[Record]
    ) -> None:
        end = load.warmup + load.duration
        number = load.client_offset + index
        while (sent := time.monotonic() - t0) < end:
            error = await self._call(client, load)
            out.append((number, sent, sent, time.monotonic() - t0, error))

    async def _open(
        self, load: Load, clients: Sequence[Caller], t0: float, out: list[Record]
    ) -> None:
        schedule = poisson_schedule(load.rate, load.warmup + load.duration, load.seed)
        tasks = []
        numbered = cycle(enumerate(clients))

        async def one(intended: float, number: int, client: Caller) -> None:
            sent = time.monotonic() - t0
            error = await self._call(client, load)
            out.append((number, intended, sent, time.monotonic() - t0, error))

        for intended in schedule:
            delay = t0 + intended - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            index, client = next(numbered)
            tasks.append(asyncio.create_task(one(intended, load.client_offset + index, client)))
        await asyncio.gather(*tasks)

    @staticmethod
    async def _call(client: Caller, load: Load) -> str:
        try:
            await client.call(load.n, timeout=load.timeout)
        except (RpcError, ValueError, asyncio.TimeoutError) as error:
            return type(error).__name__
        return ""

    async def close(self) -> None:
        for pool in self.pools.values():
            for client in pool:
                await client.close()
        self.pools.clear()


async def _ticks(t0: float, start: float, end: float) -> list[float]:
    """How late (s) a ticker due every LAG_TICK s in [start, end) after ``t0`` woke each time."""
    lates, due = [], start
    while due < end:
        delay = t0 + due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lates.append(time.monotonic() - t0 - due)
        due += LAG_TICK
    return lates


async def idle_slack(ticks: int = SLACK_TICKS) -> float:
    """How late this event loop's timer wakes when nothing else runs: the median lateness."""
    lates = sorted(await _ticks(time.monotonic(), 0.0, ticks * LAG_TICK))
    return lates[len(lates) // 2]


async def _serve(url: str | None) -> None:
    generator = Generator(url, slack=await idle_slack())
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        command = json.loads(line)
        if command.get("close"):
            await generator.close()
            print(json.dumps({"closed": True}), flush=True)
            continue
        try:
            if "connect" in command:  # connect the clients first, so all processes start together
                clients = await generator.clients(Load(**command["connect"]))
                print(json.dumps({"connected": len(clients)}), flush=True)
                continue
            records, lag = await generator.run(Load(**command))
            print(json.dumps({"records": records, "lag": asdict(lag)}), flush=True)
        except Exception as error:  # report it to the parent, which raises it there
            print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
    await generator.close()


class LoadGenerators:
    """``count`` load-generator processes; ``run()`` spreads clients and rate over them."""

    def __init__(self, count: int, url: str | None = None) -> None:
        self.count, self.url = count, url
        self.stderr: Any = None  # where the processes' errors go (a log file); None: ours
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, timeout: float = 60.0) -> LoadGenerators:
        command = [sys.executable, "-m", "fibrpc_helpers.bench.loadgen"]
        if self.url:
            command += ["--url", self.url]
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self.stderr,
                    text=True,
                )
            )
        for process in self.processes:
            self._read(process, timeout)
        return self

    @staticmethod
    def _read(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        assert process.stdout is not None
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            line = process.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            raise RuntimeError(
                f"load generator {process.pid} exited (code {process.wait()}); its error is "
                "on stderr"
            )
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load generator {process.pid} failed: {answer['error']}")
        return answer

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def shares(self, load: Load) -> list[tuple[subprocess.Popen[str], Load]]:
        """Each process's share of ``load``: clients split evenly, the rate in proportion."""
        shares = []
        offset = 0
        for i, process in enumerate(self.processes):
            clients = load.clients // self.count + (i < load.clients % self.count)
            if clients == 0:
                continue
            share = Load(
                **{
                    **asdict(load),
                    "clients": clients,
                    "client_offset": offset,
                    "rate": load.rate * clients / load.clients,
                    "seed": load.seed * 1000 + i,
                }
            )
            offset += clients
            shares.append((process, share))
        return shares

    @staticmethod
    def _write(process: subprocess.Popen[str], command: dict[str, Any]) -> None:
        assert process.stdin is not None
        process.stdin.write(json.dumps(command) + "\n")
        process.stdin.flush()

    def send(self, load: Load, timeout: float = 60.0) -> list[subprocess.Popen[str]]:
        """Connect every share's clients, then start all processes at the same instant."""
        shares = self.shares(load)
        for process, share in shares:
            self._write(process, {"connect": asdict(share)})
        for process, _ in shares:
            self._read(process, timeout)
        load.start_at = time.monotonic() + 0.02
        for process, share in shares:
            share.start_at = load.start_at
            self._write(process, asdict(share))
        return [process for process, _ in shares]

    def collect(
        self, busy: Sequence[subprocess.Popen[str]], timeout: float
    ) -> tuple[list[Record], list[LoopLag]]:
        """Every process's calls, and each process's event-loop lag."""
        records: list[Record] = []
        lags: list[LoopLag] = []
        for process in busy:
            answer = self._read(process, timeout)
            records += [tuple(r) for r in answer["records"]]  # type: ignore[misc]
            lags.append(LoopLag(**answer["lag"]))
        return records, lags

    def close_clients(self) -> None:
        """Close every client (between designs or queues), keeping the processes."""
        for process in self.processes:
            self._write(process, {"close": True})
        for process in self.processes:
            self._read(process, 30)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None and process.stdin:
                try:
                    process.stdin.write("quit\n")
                    process.stdin.close()
                except OSError:
                    pass
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout:
                process.stdout.close()

    def __enter__(self) -> LoadGenerators:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    url = sys.argv[sys.argv.index("--url") + 1] if "--url" in sys.argv else None
    asyncio.run(_serve(url))
