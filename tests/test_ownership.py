"""One owner for every call and task: what a close, a stop or a clean-up leaves behind.

Each test here failed before the fix it names: a call stranded by ``close()``, a worker stop
that leaked its connection when cancelled, notebook workers started on ``$AMQP_URL`` instead
of the notebook's URL, a clean-up that cut a worker's stop short and said so at INFO only,
a worker that counted a reply before publishing it and dropped a request uncounted, and a
task group that neither waited for its tasks nor retrieved failures after its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from waits import wait_until
from yarl import URL

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker
from fibrpc_helpers.errors import RpcConnectionError
from fibrpc_helpers.lab import notebook
from fibrpc_helpers.lab.notebook import Notebook
from fibrpc_helpers.wire import encode_request

pytestmark = pytest.mark.timeout(120)


class Relay:
    """A TCP relay in front of the broker: a client that connects through it loses its
    broker, for real, when the relay stops (its listener closes, so every reconnection
    attempt is refused, and its connections are reset)."""

    def __init__(self, url: str) -> None:
        self.target = URL(url)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> Relay:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return str(self.target.with_host("127.0.0.1").with_port(port))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            self.target.host, self.target.port or 5672
        )
        self.writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.ensure_future(self._pump(source, sink))
            self.pumps.add(pump)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        sink.close()

    async def stop(self) -> None:
        """The broker goes away: no new connection, every open one reset."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()
        if self.pumps:
            await asyncio.wait(self.pumps)
        await self.server.wait_closed()


@pytest.fixture
async def relay(url: str) -> AsyncIterator[Relay]:
    relay = await Relay(url).start()
    yield relay
    await relay.stop()


async def test_close_fails_a_call_waiting_for_the_broker_at_once(relay, queue_name):
    """Before: the call waited in ``_wait_for_broker`` untracked, so ``close()`` did not end
    it; it ended at its own deadline and said the broker was unreachable."""
    client = await FibonacciRpcClient.connect(relay.url, queue=queue_name)
    try:
        await relay.stop()
        await wait_until(lambda: not client._connected, 30, "the client to see its broker gone")
        call = asyncio.ensure_future(client.call(5, timeout=60))
        await asyncio.sleep(0)  # one turn of the loop: the call starts waiting for the broker
        assert not call.done(), "the call ended before close(): nothing was tested"
    finally:
        started = time.monotonic()
        await asyncio.wait_for(client.close(), 30)
    with pytest.raises(RpcConnectionError, match="client was closed"):
        await asyncio.wait_for(call, 10)
    assert time.monotonic() - started < 5


async def test_a_cancelled_worker_stop_still_closes_its_connection(url, queue_name, connection):
    """Before: ``connection.close()`` came after the wait for held requests, not in a
    ``finally``, so a stop cancelled meanwhile left a robust connection open (reconnecting)."""
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, service_time=2.0)
    try:
        await _request(connection, queue_name)
        await wait_until(lambda: worker.in_flight == 1, 10, "the worker to hold the request")
        stopping = asyncio.ensure_future(worker.stop())
        await wait_until(lambda: worker._consumer_tag is None, 10, "stop to cancel the consumer")
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert worker.connection.is_closed
    finally:
        if not worker.connection.is_closed:
            await worker.connection.close()
        await wait_until(lambda: worker.in_flight == 0, 10, "the held request to end")


async def test_worker_processes_use_the_notebooks_url(url, queue_name, monkeypatch):
    """Before: ``worker_processes`` without ``url=`` started workers on ``$AMQP_URL``."""
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")  # nothing listens
    nb = Notebook(f"98_ownership_{uuid.uuid4().hex[:6]}", url)
    try:
        await nb.worker_processes(1, queue=queue_name, max_n=100)
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            assert await client.call(10, timeout=30) == 55
    finally:
        await nb.cleanup(quiet=True)
        nb.worker_log.unlink(missing_ok=True)


async def test_cleanup_gives_a_worker_stop_the_time_it_may_take(url, queue_name, monkeypatch):
    """Before: each clean-up step had ``_STEP_TIMEOUT`` (15 s), less than the 60 s a worker's
    stop may spend finishing held requests; shrunk here so that a 1 s request shows it."""
    monkeypatch.setattr(notebook, "_STEP_TIMEOUT", 0.2)
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, service_time=1.0)
    nb = Notebook(f"98_ownership_{uuid.uuid4().hex[:6]}", url)
    nb.track(worker)
    try:
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            call = asyncio.ensure_future(client.call(10, timeout=30))
            await wait_until(lambda: worker.in_flight == 1, 10, "the worker to hold the request")
            await nb.cleanup(quiet=True)
            assert worker.connection.is_closed, "clean-up gave up on the worker's stop"
            assert worker.counts.answered == 1
            assert await call == 55
    finally:
        if not worker.connection.is_closed:
            await worker.stop()


async def test_cleanup_says_at_warning_what_it_abandoned(url, monkeypatch, caplog):
    """Before: a task that outlived its cancellation was dropped silently, and a step that
    timed out was logged at INFO."""
    monkeypatch.setattr(notebook, "_STEP_TIMEOUT", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                pass  # ignores the clean-up's cancellation until released

    class Stuck:
        async def stop(self) -> None:
            await release.wait()

    nb = Notebook(f"98_ownership_{uuid.uuid4().hex[:6]}", url)
    task = nb.track(asyncio.ensure_future(stubborn()))
    nb.track(Stuck())
    try:
        with caplog.at_level(logging.INFO, logger="fibrpc_helpers.lab.notebook"):
            await nb.cleanup(quiet=True)
    finally:
        release.set()
        await asyncio.wait_for(task, 10)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Stuck" in line for line in warned), caplog.text
    assert any("stubborn" in line for line in warned), caplog.text


async def test_a_reply_that_cannot_be_published_is_not_answered_and_its_drop_is_counted(
    url, queue_name, connection
):
    """Before: ``answered`` went up before the reply was published (here, twice for none),
    and the redelivered request, dropped on its second failure, was counted nowhere.

    A reply's ``app_id`` is the worker's name, an AMQP short string (at most 255 bytes): a
    longer name makes every reply fail to encode, while the channel stays open."""
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, name="w" * 300)
    try:
        await _request(connection, queue_name)
        await wait_until(lambda: worker.counts.abandoned == 1, 10, "the request to be dropped")
        assert worker.in_flight == 0
        assert (worker.counts.answered, worker.counts.errors) == (0, 0)
    finally:
        await worker.stop()


async def _request(connection: aio_pika.abc.AbstractConnection, queue: str) -> None:
    """Publish fib(10)'s request, with a reply queue that exists (exclusive: it goes with
    the test's connection)."""
    channel = await connection.channel()
    replies = await channel.declare_queue(exclusive=True)
    await channel.default_exchange.publish(
        aio_pika.Message(encode_request(10), correlation_id="1", reply_to=replies.name),
        routing_key=queue,
    )
