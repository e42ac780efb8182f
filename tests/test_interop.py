"""Interop with both official versions of tutorial six, against the real broker.

Two servers beside our worker, each started before it and after it:

* RabbitMQ's official tutorial (pika, Java, Go, Node.js, .NET, Ruby...) declares
  ``rpc_queue`` durable and quorum, with prefetch 1 and an iterative fib:
  tests/tutorial_six/official_pika_server.py has its shape. Our worker declares the same
  queue when it is first, and adopts it when it is not.
* The aio-pika documentation's tutorial declares a classic, non-durable queue:
  tests/tutorial_six/aio_pika_docs_server.py has its shape. Our worker adopts that queue when
  the server is first; when our worker is first, it declares quorum and the aio-pika server
  dies with a 406, unless the worker was asked for ``--queue-type classic``. RabbitMQ 4.3 as
  upstream ships it denies such a transient non-exclusive queue: there the aio-pika server
  cannot declare its queue at all (541 INTERNAL_ERROR, its connection closed), and these
  tests expect exactly that refusal.

And two official-shaped clients, which never declare the request queue, call our worker: the
pika client (exclusive server-named callback queue) and the Node.js one (direct reply-to,
amqplib from npm, installed by the ``node_client`` fixture into tests/interop_node).

Every process a test starts is stopped at its end, pass or fail, before its queue is deleted.
Synchronisation is by events: a process's "consuming"/"serving" line, the queue's consumer
count; never a sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed
from waits import consumer_count, wait_until

from fibrpc_helpers import FibonacciRpcClient
from fibrpc_helpers.fib import fib
from fibrpc_helpers.lab.namespace import namespaced
from fibrpc_helpers.request_queue import transient_queues_permitted

TESTS = Path(__file__).parent
TUTORIAL = TESTS / "tutorial_six"
OFFICIAL_SERVER = TUTORIAL / "official_pika_server.py"
OFFICIAL_CLIENT = TUTORIAL / "official_pika_client.py"
AIO_PIKA_DOCS_SERVER = TUTORIAL / "aio_pika_docs_server.py"
NODE_DIR = TESTS / "interop_node"

START_TIMEOUT = 60.0
"""Seconds a process may take to say it is consuming (a loaded 2-core machine is slow)."""
CALL_TIMEOUT = 30.0
"""Seconds a client waits for all its replies."""
QUORUM = {"durable": True, "arguments": {"x-queue-type": "quorum"}}
"""The request queue as RabbitMQ's tutorial declares it today (pika, Java, Go, Node.js, .NET...)."""
CLASSIC = {"durable": False, "arguments": None}
"""The request queue as the aio-pika documentation's tutorial declares it."""
SERVER_REQUEST = re.compile(r"^request fib\(\d+\)$")
WORKER_READY = r"^worker \S+ is serving"


class Program:
    """A process a test started. Reader threads collect its output lines as they come, so the
    test can wait for a line (an event) and read everything it printed afterwards."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.stdout),
                                  (self.process.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            lines.append(line.rstrip("\n"))
        stream.close()

    @property
    def finished(self) -> bool:
        """The process exited and all it printed has been read."""
        return self.process.poll() is not None and not any(r.is_alive() for r in self._readers)

    def describe(self) -> str:
        stderr = "\n".join(self.stderr[-15:])
        return f"{self.name} (exit code {self.process.poll()}); its stderr ends:\n{stderr}"

    async def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> str:
        """The first stdout line matching ``pattern``, once printed; fails if the process
        exits without printing it, or after ``timeout`` seconds."""
        regex = re.compile(pattern)

        def printed() -> bool:
            if any(regex.search(line) for line in self.stdout):
                return True
            assert not self.finished, f"{self.describe()}\nit never printed {pattern!r}"
            return False

        await wait_until(printed, timeout, f"{self.name} to print {pattern!r}")
        return next(line for line in self.stdout if regex.search(line))

    async def wait_for_exit(self, timeout: float = START_TIMEOUT) -> int:
        """The exit code, once the process has exited by itself and its output is read."""
        await wait_until(lambda: self.finished, timeout, f"{self.name} to exit")
        code = self.process.poll()
        assert code is not None
        return code

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (our worker finishes what it holds and exits 0; the tutorial programs just
        die), SIGKILL if it does not go, and return the exit code once its output is read."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return await self.wait_for_exit(timeout)
        except AssertionError:
            self.process.kill()
            return await self.wait_for_exit(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


Start = Callable[..., Program]


@pytest.fixture
async def request_queue(url: str) -> AsyncIterator[str]:
    """A request queue name in this run's namespace, used by this test only; the queue is
    deleted at the end whatever its type (the quorum queues are durable: they would stay)."""
    name = namespaced(f"interop.{uuid.uuid4().hex[:12]}")
    yield name
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


@pytest.fixture
def start(request_queue: str) -> Iterator[Start]:
    """``start(name, *args)`` runs a program; every one is killed at the end of the test,
    before ``request_queue`` deletes the queue."""
    programs: list[Program] = []

    def run(name: str, *args: str | Path) -> Program:
        programs.append(Program(name, [str(arg) for arg in args]))
        return programs[-1]

    yield run
    for program in programs:
        program.kill()


def official_server(start: Start, url: str, queue: str) -> Program:
    return start("the official-shaped pika server", sys.executable, OFFICIAL_SERVER, url, queue)


def aio_pika_docs_server(start: Start, url: str, queue: str) -> Program:
    return start("the aio-pika-docs-shaped server", sys.executable, AIO_PIKA_DOCS_SERVER, url,
                 queue)


def our_worker(start: Start, url: str, queue: str, *options: str) -> Program:
    return start("our worker", sys.executable, "-m", "fibrpc_helpers", "worker", "--url", url,
                 "--queue", queue, *options)


async def wait_for_consumers(
    connection: aio_pika.abc.AbstractConnection, queue: str, count: int
) -> None:
    async def reached() -> bool:
        return await consumer_count(connection, queue) == count

    await wait_until(reached, START_TIMEOUT, f"{count} consumers on {queue}", interval=0.05)


async def declared_as(
    connection: aio_pika.abc.AbstractConnection, queue: str, declaration: dict[str, object]
) -> bool:
    """Whether the existing ``queue`` is equivalent to ``declaration``: the broker accepts a
    second declare only if its durability and type arguments match (else 406), so this tells
    the queue's type and durability through AMQP alone. Call it only on a queue that exists."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(queue, **declaration)  # type: ignore[arg-type]
    except ChannelPreconditionFailed:
        return False  # the broker closed the channel with the 406
    await channel.close()
    return True


async def call_many(url: str, queue: str, count: int) -> None:
    """``count`` concurrent calls through our client; each result must be right."""
    async with await FibonacciRpcClient.connect(url, queue=queue) as client:
        numbers = [n % 25 for n in range(count)]  # small: one server computes recursively
        results = await asyncio.gather(*(client.call(n, timeout=CALL_TIMEOUT) for n in numbers))
    assert results == [fib(n) for n in numbers]


def answered_by_our_worker(worker: Program) -> int:
    """How many requests our worker answered, from the line it logs when it stops."""
    stopped = [line for line in worker.stderr if re.search(r"stopped: \d+ answered", line)]
    assert stopped, worker.describe()
    return int(re.search(r"(\d+) answered", stopped[-1]).group(1))  # type: ignore[union-attr]


async def assert_both_served(server: Program, worker: Program, calls: int) -> None:
    """Stop both and check that each answered some of the calls and together all of them.

    Our worker stops first: it acks all it holds before it exits. The tutorial server is
    killed, and the ack of the last request it answered may still be on its way; killed first,
    it would hand that request back to the queue and our worker would answer it again.
    """
    assert await worker.stop() == 0, worker.describe()
    await server.stop()
    by_server = sum(bool(SERVER_REQUEST.match(line)) for line in server.stdout)
    by_worker = answered_by_our_worker(worker)
    counts = f"{server.name} took {by_server}, our worker answered {by_worker}"
    details = f"{counts}\n{server.describe()}\n{server.stdout}\n{worker.describe()}"
    assert by_server + by_worker == calls, details
    assert by_server >= 1 and by_worker >= 1, details


# -- today's official tutorial (durable quorum request queue) -----------------------------


async def test_our_call_gets_its_answer_from_the_official_server(start, url, request_queue):
    server = official_server(start, url, request_queue)
    await server.wait_for_line("^consuming ")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fibrpc_helpers", "call", "--url", url, "--queue", request_queue,
         "30", "0", "1"],
        capture_output=True, text=True, timeout=CALL_TIMEOUT + 30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "fib(30) = 832040\nfib(0) = 0\nfib(1) = 1\n"


@pytest.mark.parametrize("first", ["official server first", "our worker first"])
async def test_official_server_and_our_worker_share_a_durable_quorum_queue(
    first, start, url, request_queue, connection
):
    if first == "official server first":
        server = official_server(start, url, request_queue)
        await server.wait_for_line("^consuming ")
        assert await declared_as(connection, request_queue, QUORUM)
        worker = our_worker(start, url, request_queue)
        ready = await worker.wait_for_line(WORKER_READY)
    else:
        worker = our_worker(start, url, request_queue)
        ready = await worker.wait_for_line(WORKER_READY)
        assert await declared_as(connection, request_queue, QUORUM)  # as the official one does
        server = official_server(start, url, request_queue)
        await server.wait_for_line("^consuming ")  # no 406: it found its own declaration
    assert "quorum" in ready, ready  # the worker says what it serves
    await wait_for_consumers(connection, request_queue, 2)
    await call_many(url, request_queue, 40)
    await assert_both_served(server, worker, 40)
    assert await declared_as(connection, request_queue, QUORUM)


async def test_the_official_pika_client_gets_its_answers_from_our_worker(
    start, url, request_queue
):
    worker = our_worker(start, url, request_queue)
    await worker.wait_for_line(WORKER_READY)
    client = start("the official-shaped pika client", sys.executable, OFFICIAL_CLIENT, url,
                   request_queue, str(CALL_TIMEOUT), "30", "12", "0")
    assert await client.wait_for_exit(CALL_TIMEOUT + START_TIMEOUT) == 0, client.describe()
    assert client.stdout == ["fib(30) = 832040", "fib(12) = 144", "fib(0) = 0"]


# -- the Node.js client: direct reply-to with amqplib -------------------------------------


@pytest.fixture(scope="session")
def node_client() -> list[str]:
    """The command that runs tests/interop_node/rpc_client.js, once amqplib (the version
    package.json pins) is in tests/interop_node/node_modules: installed with npm the first
    time, found there afterwards. Skips where Node.js or npm is not installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the Node.js interop test needs `node` and `npm` on PATH (Node.js from "
                    "nodejs.org or your package manager); neither is needed for anything else")
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["amqplib"]
    installed = NODE_DIR / "node_modules" / "amqplib" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
            text=True, timeout=300,
        )
        assert done.returncode == 0, f"`npm ci` in {NODE_DIR} failed:\n{done.stderr[-2000:]}"
    return [node, str(NODE_DIR / "rpc_client.js")]


async def test_a_node_client_with_direct_reply_to_gets_its_answers_from_our_worker(
    node_client, start, url, request_queue
):
    worker = our_worker(start, url, request_queue)
    await worker.wait_for_line(WORKER_READY)
    client = start("the Node.js direct reply-to client", *node_client, url, request_queue,
                   str(CALL_TIMEOUT), "30", "10", "0", "-1", "20")
    assert await client.wait_for_exit(CALL_TIMEOUT + START_TIMEOUT) == 1, client.describe()
    assert client.stdout[:3] == ["fib(30) = 832040", "fib(10) = 55", "fib(0) = 0"]
    assert client.stdout[3].startswith("error: fib(-1): ")  # our error reply reaches it too
    assert client.stdout[4:] == ["fib(20) = 6765"]


# -- the aio-pika documentation's tutorial (classic, non-durable request queue) -----------


@pytest.fixture(scope="session")
def transient_ok(url: str) -> bool:
    """Whether this broker takes a transient non-exclusive queue (RabbitMQ 4.3 as shipped
    does not), the aio-pika tutorial server's request queue."""
    return asyncio.run(transient_queues_permitted(url))


def assert_refused_as_transient(server: Program) -> None:
    """The aio-pika tutorial server died at its declare: the broker denies its queue."""
    said = "\n".join(server.stderr)
    assert "transient_nonexcl_queues" in said and "INTERNAL_ERROR" in said, server.describe()



async def test_our_worker_adopts_the_classic_queue_of_an_aio_pika_tutorial_server(
    start, url, request_queue, connection, transient_ok
):
    server = aio_pika_docs_server(start, url, request_queue)
    if not transient_ok:  # RabbitMQ 4.3 as shipped: that server cannot run at all
        assert await server.wait_for_exit() != 0
        assert_refused_as_transient(server)
        return
    await server.wait_for_line("^consuming ")
    worker = our_worker(start, url, request_queue)
    ready = await worker.wait_for_line(WORKER_READY)
    assert "classic" in ready, ready
    await wait_for_consumers(connection, request_queue, 2)
    await call_many(url, request_queue, 40)
    await assert_both_served(server, worker, 40)
    assert await declared_as(connection, request_queue, CLASSIC)


async def test_an_aio_pika_tutorial_server_started_after_our_worker_gets_a_406(
    start, url, request_queue, connection
):
    worker = our_worker(start, url, request_queue)  # declares durable quorum, as told
    await worker.wait_for_line(WORKER_READY)
    server = aio_pika_docs_server(start, url, request_queue)
    assert await server.wait_for_exit() != 0
    assert "PRECONDITION_FAILED - inequivalent arg 'durable'" in "\n".join(server.stderr), (
        server.describe()
    )
    assert await consumer_count(connection, request_queue) == 1  # our worker is still there
    await call_many(url, request_queue, 3)
    assert await declared_as(connection, request_queue, QUORUM)


async def test_with_queue_type_classic_an_aio_pika_tutorial_server_can_join_our_worker(
    start, url, request_queue, connection, transient_ok
):
    worker = our_worker(start, url, request_queue, "--queue-type", "classic")
    ready = await worker.wait_for_line(WORKER_READY)
    assert "classic" in ready, ready
    if not transient_ok:  # our worker's classic queue is durable there: the server gets a 406
        assert "(classic, durable)" in ready, ready
        server = aio_pika_docs_server(start, url, request_queue)
        assert await server.wait_for_exit() != 0
        assert "PRECONDITION_FAILED - inequivalent arg 'durable'" in "\n".join(server.stderr)
        await call_many(url, request_queue, 3)
        return
    assert await declared_as(connection, request_queue, CLASSIC)
    server = aio_pika_docs_server(start, url, request_queue)
    await server.wait_for_line("^consuming ")
    await wait_for_consumers(connection, request_queue, 2)
    await call_many(url, request_queue, 40)
    await assert_both_served(server, worker, 40)
