"""The README's class-broker recipe, run for real on a private RabbitMQ node.

"Teaching with this series" tells a teacher which rabbitmqctl commands prepare a class broker
(a vhost, a user per student with permissions limited to their namespace). This test runs
the same commands on a node of its own, on another port, then checks that the recipe does
what the README promises: students' laptop workers share the teacher's rpc_queue in turn,
each student can use their own namespace, and no student can read another's queue.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiormq.exceptions
import pytest
from ports import free_block

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker
from fibrpc_helpers.lab import broker, nodes

STUDENTS = ("alice", "bob")


def student_permissions(student: str) -> tuple[str, str, str]:
    """configure, write, read: as in the README. Their own namespace, their callback queues
    (server-named amq.gen-..., or amq_... as aio-pika names them), and the demo's rpc_queue;
    publishing goes through the default exchange (amq.default)."""
    mine = rf"{student}\..*|amq_.*|amq\.gen-.*|rpc_queue"
    return f"^({mine})$", rf"^({student}\..*|amq\.default|rpc_queue)$", f"^({mine})$"


@pytest.fixture(scope="module")
def class_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private node prepared with the README's commands; yields its URL without a user."""
    server = nodes.find_server()
    if server is None:
        pytest.skip("not run: rabbitmq-server is not installed here, so this test cannot "
                    "start a private node (the shared broker is never reconfigured)")
    state = tmp_path_factory.mktemp("class-broker")
    port = free_block(1)
    broker.ensure(f"amqp://guest:guest@localhost:{port}/", state_dir=state)
    env = nodes.node_environment(port, state)
    ctl = str(Path(server).with_name("rabbitmqctl"))

    def rabbitmqctl(*args: str) -> None:
        done = subprocess.run([ctl, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    try:
        rabbitmqctl("add_vhost", "fibrpc")
        rabbitmqctl("add_user", "teacher", "teacher-pw")
        rabbitmqctl("set_permissions", "-p", "fibrpc", "teacher", ".*", ".*", ".*")
        for student in STUDENTS:
            rabbitmqctl("add_user", student, f"{student}-pw")
            rabbitmqctl("set_permissions", "-p", "fibrpc", student, *student_permissions(student))
        yield f"127.0.0.1:{port}/fibrpc"
    finally:
        broker.stop(state)


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer that is never meant to receive anything."""


def as_user(user: str, where: str) -> str:
    return f"amqp://{user}:{user}-pw@{where}"


@pytest.mark.timeout(180)
async def test_students_serve_the_teachers_queue_in_turn(class_broker):
    workers = [await FibonacciRpcWorker.start(as_user(s, class_broker), queue="rpc_queue")
               for s in STUDENTS]
    try:
        teacher = as_user("teacher", class_broker)
        async with await FibonacciRpcClient.connect(teacher, queue="rpc_queue") as client:
            results = await asyncio.gather(*(client.call(n, timeout=10) for n in range(20)))
    finally:
        for worker in workers:
            await worker.stop()
    assert results[10] == 55
    assert all(worker.counts.answered > 0 for worker in workers)  # round robin


@pytest.mark.timeout(180)
async def test_a_student_uses_their_namespace_and_cannot_read_anothers(class_broker):
    alice, bob = (as_user(s, class_broker) for s in STUDENTS)
    worker = await FibonacciRpcWorker.start(alice, queue="alice.04.rpc_queue")
    try:
        async with await FibonacciRpcClient.connect(alice, queue="alice.04.rpc_queue") as client:
            assert await client.call(10, timeout=10) == 55
        connection = await aio_pika.connect(bob)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue("alice.04.rpc_queue", ensure=False)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await queue.consume(ignore)  # bob tries to read alice's requests
            channel = await connection.channel()
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await channel.declare_queue("carol.rpc_queue", durable=True)
    finally:
        await worker.stop()
