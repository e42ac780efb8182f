"""Request queue types: a worker adopts the queue it finds, whatever its type, and declares a
durable quorum queue (RabbitMQ's tutorial six today) only when there is none.

The two tutorials declare the request queue differently: RabbitMQ's official code as a durable
quorum queue, aio-pika's as a classic non-durable one. RabbitMQ refuses (406) any declare that
differs from the existing queue, so a worker that insisted on its own shape would die beside a
server of the other shape.

RabbitMQ 4.3 as upstream ships it denies transient (non-durable) non-exclusive queues, so the
aio-pika tutorial's queue cannot exist there: on such a broker a worker asked for a classic
queue declares it durable, and the tests that need "a classic queue someone else declared"
use a durable one (``classic`` below). Each test expects what the broker it runs on does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aio_pika
import aiormq
import pytest
from waits import consumer_count

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, QueueMismatchError, fib
from fibrpc_helpers import request_queue as request_queue_module
from fibrpc_helpers.lab.processes import WorkerProcesses

QUORUM = {"durable": True, "arguments": {"x-queue-type": "quorum"}}  # the official tutorial's
CLASSIC = {}  # the aio-pika tutorial's: declare_queue(name)


@pytest.fixture(scope="session")
def transient_ok(url: str) -> bool:
    """Whether this broker takes the aio-pika tutorial's transient non-exclusive queue."""
    return asyncio.run(request_queue_module.transient_queues_permitted(url))


@pytest.fixture
def classic(transient_ok: bool) -> dict:
    """A classic queue as this broker takes it: the aio-pika tutorial's where it can exist,
    else durable (RabbitMQ 4.3 as shipped)."""
    return CLASSIC if transient_ok else {"durable": True, "arguments": {"x-queue-type": "classic"}}


async def declare(connection: aio_pika.abc.AbstractConnection, name: str, **options) -> None:
    channel = await connection.channel()
    await channel.declare_queue(name, **options)
    await channel.close()


async def accepts(connection: aio_pika.abc.AbstractConnection, name: str, **options) -> bool:
    """Whether the broker takes this declare as equivalent to the existing queue."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, **options)
    except aiormq.exceptions.ChannelPreconditionFailed:
        return False
    await channel.close()
    return True


async def serves(url: str, queue: str) -> None:
    async with await FibonacciRpcClient.connect(url, queue=queue) as client:
        assert await client.call(20, timeout=10) == fib(20)


async def serving_as(url: str, queue: str, queue_type: str | None = None) -> tuple[str, bool]:
    """Start a worker (asking for ``queue_type``), check that it answers a call, stop it;
    return the request queue's type and durability as the worker found or made them."""
    worker = await FibonacciRpcWorker.start(url, queue=queue, queue_type=queue_type)
    try:
        await serves(url, queue)
        return worker.queue_type, worker.durable
    finally:
        await worker.stop()


async def test_an_absent_queue_is_declared_durable_quorum_like_the_official_tutorial(
    url, queue_name, connection
):
    assert await serving_as(url, queue_name) == ("quorum", True)
    # The official tutorial's server declares it the same way: accepted as equivalent.
    assert await accepts(connection, queue_name, **QUORUM)
    assert not await accepts(connection, queue_name, **CLASSIC)


async def test_a_worker_adopts_an_existing_quorum_queue_and_serves(url, queue_name, connection):
    await declare(connection, queue_name, **QUORUM)  # the official tutorial's server ran first
    assert await serving_as(url, queue_name) == ("quorum", True)


async def test_a_worker_adopts_the_aio_pika_tutorials_classic_queue_and_serves(
    url, queue_name, connection, classic, transient_ok
):
    await declare(connection, queue_name, **classic)  # the aio-pika tutorial's server ran first
    assert await serving_as(url, queue_name) == ("classic", not transient_ok)
    assert await accepts(connection, queue_name, **classic), "the queue was left as it was"


async def test_a_quorum_queue_with_arguments_of_its_own_is_consumed_as_it_is(
    url, queue_name, connection
):
    """A delivery limit and dead-lettering make the queue match none of the tutorials'
    shapes, and AMQP cannot say which arguments a queue has: the worker consumes it without
    declaring it (passively), also when its robust channel comes back after a reconnection,
    so the queue keeps every argument and nothing is refused."""
    arguments = {"x-queue-type": "quorum", "x-delivery-limit": 3,
                 "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}
    await declare(connection, queue_name, durable=True, arguments=arguments)
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, queue_type="quorum")
    try:
        assert (worker.queue_type, worker.durable) == ("unknown", None)
        await serves(url, queue_name)
        await worker.connection.reconnect()  # the robust channel restores its queue
        await worker.channel.ready()
        await serves(url, queue_name)
    finally:
        await worker.stop()
    assert await accepts(connection, queue_name, durable=True, arguments=arguments)


async def test_asking_for_the_existing_type_adopts_its_durability(url, queue_name, connection):
    await declare(connection, queue_name, durable=True)  # classic, durable
    assert await serving_as(url, queue_name, "classic") == ("classic", True)


async def test_asking_for_classic_declares_the_aio_pika_tutorials_queue(
    url, queue_name, connection, classic, transient_ok
):
    """Where the broker takes it; where it denies transient non-exclusive queues (RabbitMQ
    4.3 as shipped), a durable classic queue instead."""
    assert await serving_as(url, queue_name, "classic") == ("classic", not transient_ok)
    assert await accepts(connection, queue_name, **classic)


@pytest.mark.parametrize(
    ("existing", "asked", "says"),
    [("quorum", "classic", "as a quorum queue (durable), but a classic queue was asked for"),
     ("classic", "quorum", "as a classic queue ({durability}), but a quorum queue was asked for")],
    ids=["quorum-asked-classic", "classic-asked-quorum"],
)
async def test_an_explicit_other_type_raises_a_one_line_queue_mismatch_error(
    url, queue_name, connection, existing, asked, says, classic, transient_ok
):
    existing = QUORUM if existing == "quorum" else classic
    says = says.format(durability="not durable" if transient_ok else "durable")
    await declare(connection, queue_name, **existing)
    with pytest.raises(QueueMismatchError) as caught:
        await FibonacciRpcWorker.start(url, queue=queue_name, queue_type=asked)
    message = str(caught.value)
    assert "\n" not in message
    assert f"the request queue {queue_name!r} already exists {says}" in message
    assert "without a queue type" in message and "another queue name" in message
    assert await accepts(connection, queue_name, **existing), "the queue was changed"
    assert await consumer_count(connection, queue_name) == 0, "the failed worker left a consumer"


async def test_an_unknown_queue_type_is_refused_before_connecting():
    with pytest.raises(ValueError, match="queue_type must be one of 'quorum', 'classic'"):
        await FibonacciRpcWorker.start("amqp://guest:guest@127.0.0.1:1/", queue_type="stream")


async def test_two_workers_starting_at_once_on_an_absent_queue_both_serve(url, queue_name):
    first, second = await asyncio.gather(
        FibonacciRpcWorker.start(url, queue=queue_name),
        FibonacciRpcWorker.start(url, queue=queue_name),
    )
    try:
        assert first.queue_type == second.queue_type == "quorum"
        async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
            results = await asyncio.gather(*(client.call(n, timeout=20) for n in range(40)))
        assert results == [fib(n) for n in range(40)]
        assert first.counts.answered > 0 and second.counts.answered > 0
        assert first.counts.answered + second.counts.answered == 40
    finally:
        await asyncio.gather(first.stop(), second.stop())


@pytest.mark.parametrize("asked", [None, "quorum"])
async def test_a_queue_declared_differently_between_the_look_and_the_declare(
    url, queue_name, connection, monkeypatch, asked, classic, transient_ok
):
    """The race itself, made certain: the passive declare finds no queue, then the aio-pika
    tutorial's server declares its classic queue before the worker declares. The worker's
    declare is refused (406); it adopts the queue, or (explicit quorum) says they differ."""
    really_existing = request_queue_module._existing

    async def absent_until_someone_else_declares(connection_, name):
        assert await really_existing(connection_, name) is None
        await declare(connection, name, **classic)
        return None

    monkeypatch.setattr(request_queue_module, "_existing", absent_until_someone_else_declares)
    if asked is None:
        assert await serving_as(url, queue_name) == ("classic", not transient_ok)
    else:
        with pytest.raises(QueueMismatchError, match="already exists as a classic queue"):
            await FibonacciRpcWorker.start(url, queue=queue_name, queue_type=asked)


def test_worker_processes_pass_the_queue_type_and_say_what_they_serve(
    url, queue_name, transient_ok
):
    with WorkerProcesses(1, url=url, queue=queue_name, queue_type="classic") as workers:
        [line] = workers.ready_lines
    durability = "not durable" if transient_ok else "durable"
    assert line.startswith(f"worker {workers.names[0]} is serving queue {queue_name!r} "
                           f"(classic, {durability}) at amqp://guest:****@")


CLI = [sys.executable, "-m", "fibrpc_helpers"]


def test_the_cli_start_up_line_names_the_queue_type(url, queue_name):
    worker = subprocess.Popen(
        [*CLI, "worker", "--url", url, "--queue", queue_name], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert f"is serving queue {queue_name!r} (quorum, durable) at" in line
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_the_cli_exits_1_with_one_line_and_no_traceback_on_a_mismatch(
    url, queue_name, connection, processes
):
    await declare(connection, queue_name, **QUORUM)
    done = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "worker", "--url", url, "--queue", queue_name, "--queue-type", "classic",
         "--processes", processes],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == (
        f"error: the request queue {queue_name!r} already exists as a quorum queue (durable), "
        "but a classic queue was asked for: start the worker without a queue type "
        "(no --queue-type) to serve it as it is, or use another queue name"
    )
    if processes == "1":
        assert len(lines) == 1
