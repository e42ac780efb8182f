"""`watch` shows a namespace's queues live; laptop workers serve the teacher's queue in turn."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest

from fibrpc_helpers import FibonacciRpcWorker
from fibrpc_helpers.lab.watch import LiveTable, QueueState, render, snapshot

CLI = [sys.executable, "-m", "fibrpc_helpers"]


@pytest.fixture
async def namespace(url: str) -> AsyncIterator[str]:
    """A namespace no other test uses; its rpc_queue and extra queue are deleted afterwards."""
    name = f"test-watch-{uuid.uuid4().hex[:8]}"
    yield name
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in ("rpc_queue", "extra"):
            await channel.queue_delete(f"{name}.{queue}")


def start(*args: str) -> subprocess.Popen[str]:
    """A long-running CLI process, returned once it printed its first line (it is ready)."""
    process = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    assert process.stdout.readline(), process.stderr.read() if process.stderr else ""
    return process


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=20)


async def test_snapshot_counts_ready_messages_and_consumers(connection, url, namespace):
    channel = await connection.channel()
    await channel.declare_queue(f"{namespace}.extra", durable=True)
    for n in (1, 2, 3):
        await channel.default_exchange.publish(aio_pika.Message(str(n).encode()),
                                               routing_key=f"{namespace}.extra")
    worker = await FibonacciRpcWorker.start(url, queue=f"{namespace}.rpc_queue")
    try:
        names = [f"{namespace}.missing", f"{namespace}.rpc_queue", f"{namespace}.extra"]
        states = await snapshot(connection, names)
    finally:
        await worker.stop()
    # a missing queue closes the channel; the next ones are still read on a fresh one
    assert states == [
        QueueState(f"{namespace}.missing", problem="not declared"),
        QueueState(f"{namespace}.rpc_queue", ready=0, consumers=1),
        QueueState(f"{namespace}.extra", ready=3, consumers=0),
    ]
    assert not (await snapshot(connection, [f"{namespace}.extra"]))[0].consumers


async def test_another_clients_exclusive_queue_is_shown_as_such(connection, url, namespace):
    other = await aio_pika.connect(url)
    async with other:
        queue = await (await other.channel()).declare_queue(f"{namespace}.extra", exclusive=True)
        [state] = await snapshot(connection, [queue.name])
    assert state.problem == "exclusive to another connection"


def test_render_names_queues_inside_the_namespace_and_masks_the_url():
    states = [QueueState("ns.rpc_queue", ready=12, consumers=3),
              QueueState("ns.dead_letters", problem="not declared"),
              QueueState("ns.01.rpc_queue", problem="exclusive to another connection"),
              QueueState("ns.02.rpc_queue", problem="not declared")]
    lines = render(states, namespace="ns", url="amqp://class:secret@broker:5672/", at=0)
    assert "namespace 'ns' at amqp://class:****@broker:5672/" in lines[0]
    assert "secret" not in "\n".join(lines)
    assert lines[1:] == [
        "queue           ready  consumers",
        "rpc_queue          12          3",
        "01.rpc_queue        -          -  exclusive to another connection",
        "not declared (yet): dead_letters, 02.rpc_queue",
    ]


def test_a_terminal_gets_each_table_drawn_over_the_previous_one():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    table = LiveTable(screen)
    table.show(["header", "a  1"])
    table.show(["header", "a  2"])
    # cursor up 2 lines, clear to the end of the screen, redraw
    assert screen.getvalue() == "header\na  1\n\x1b[2F\x1b[Jheader\na  2\n"

    log = io.StringIO()  # not a terminal: tables one after another, nothing to overwrite
    table = LiveTable(log)
    table.show(["t1"])
    table.show(["t2"])
    assert log.getvalue() == "t1\n\nt2\n"


def test_watch_once_shows_a_laptop_worker_serving_the_teachers_queue(
    url, namespace, processes
):
    # the teacher's request queue, served by a worker started as a student would on a laptop
    teacher_queue = f"{namespace}.rpc_queue"
    processes.append(start("worker", "--url", url, "--queue", teacher_queue))
    done = subprocess.run(
        [*CLI, "watch", "--once", "--url", url, "--namespace", namespace, "--queue", "extra"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"queues of namespace '{namespace}' at amqp://guest:****@")
    assert lines[2].split() == ["rpc_queue", "0", "1"]
    assert lines[3].startswith("not declared (yet): 00.rpc_queue, 01.rpc_queue,")
    assert lines[-1].endswith(", extra")  # the name given with --queue is watched too


def test_watch_refreshes_live_as_workers_join(url, namespace, processes):
    watcher = start("watch", "--url", url, "--namespace", namespace, "--interval", "0.2")
    processes.append(watcher)
    assert watcher.stdout is not None

    def next_row() -> list[str]:
        while True:
            line = watcher.stdout.readline()
            assert line, "watch exited"
            if line.startswith("rpc_queue "):
                return line.split()

    assert watcher.stdout.readline().split() == ["queue", "ready", "consumers"]
    assert watcher.stdout.readline().startswith("not declared (yet): rpc_queue,")
    for _ in range(2):
        processes.append(start("worker", "--url", url, "--queue", f"{namespace}.rpc_queue"))
    while next_row() != ["rpc_queue", "0", "2"]:  # a few refreshes, each read as it comes
        pass
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=10) == 0


async def test_round_robin_across_laptop_workers_on_the_teachers_queue(url, namespace, processes):
    """The class demo: each student's worker process serves the teacher's queue, in turn."""
    teacher_queue = f"{namespace}.rpc_queue"
    for _ in range(3):  # three "laptops"
        processes.append(start("worker", "--url", url, "--queue", teacher_queue))
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)
        answered: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await replies.consume(answered.put, no_ack=True)
        for n in range(30):
            await channel.default_exchange.publish(
                aio_pika.Message(str(n).encode(), reply_to=replies.name, correlation_id=str(n)),
                routing_key=teacher_queue,
            )
        messages = [await asyncio.wait_for(answered.get(), 20) for _ in range(30)]
    by_worker = Counter(message.app_id for message in messages)
    assert len(by_worker) == 3, by_worker  # every laptop answered some
    assert sorted(int(m.correlation_id or "") for m in messages) == list(range(30))
