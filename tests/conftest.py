"""Fixtures: a real broker (started if needed), unique queue names, real workers and clients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from machine_pauses import PauseWatch, SkipAcrossPauses

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, amqp_url
from fibrpc_helpers.lab import broker


def pytest_configure(config: pytest.Config) -> None:
    """Every test, notebooks included: a failure across a frozen machine is a skip."""
    config.pluginmanager.register(SkipAcrossPauses(PauseWatch().start()), "machine-pauses")


@pytest.fixture(scope="session")
def url() -> str:
    """The broker URL; fails (never skips) with `broker ensure`'s message if there is none."""
    try:
        broker.ensure()
    except broker.BrokerError as error:
        pytest.fail(f"these tests need a RabbitMQ broker: {error}", pytrace=False)
    return amqp_url()


@pytest.fixture
async def connection(url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """A plain connection for the test's own raw AMQP traffic."""
    connection = await aio_pika.connect(url)
    yield connection
    await connection.close()


@pytest.fixture
async def queue_name(request: pytest.FixtureRequest, url: str) -> AsyncIterator[str]:
    """A request-queue name no other test uses; the queue is deleted afterwards (workers
    declare durable quorum queues, which nothing else would ever remove)."""
    name = f"test.{request.node.name[:40]}.{uuid.uuid4().hex[:8]}"
    yield name
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


OFFICIAL_QUEUE: dict = {"durable": True, "arguments": {"x-queue-type": "quorum"}}
"""How RabbitMQ's tutorial six declares the request queue today (and the worker, by default)."""


@pytest.fixture
async def request_queue(connection: aio_pika.abc.AbstractConnection, queue_name: str) -> str:
    """The test's request queue, declared as RabbitMQ's tutorial six declares it today
    (durable quorum), with nobody consuming it yet; deleted afterwards (``queue_name``).

    Durable: a queue left behind would outlive even a broker restart, hence the delete."""
    channel = await connection.channel()
    await channel.declare_queue(queue_name, **OFFICIAL_QUEUE)
    await channel.close()
    return queue_name


@pytest.fixture
async def worker(url: str, queue_name: str) -> AsyncIterator[FibonacciRpcWorker]:
    worker = await FibonacciRpcWorker.start(url, queue=queue_name, max_n=1000)
    yield worker
    await worker.stop()


@pytest.fixture
async def client(url: str, queue_name: str) -> AsyncIterator[FibonacciRpcClient]:
    """A client with no timeout given: its calls use the default, DEFAULT_TIMEOUT."""
    async with await FibonacciRpcClient.connect(url, queue=queue_name) as client:
        yield client
