"""A private RabbitMQ node that the test starts, restarts and stops: recovery, and TLS.

The shared broker on 5672 is never touched. This module starts its own node on a free port
(``broker.ensure(url, state_dir=...)``), also listening for TLS with a throwaway certificate
authority, so that it can restart that node under a live client and worker, and check that
``amqps://`` works by URL alone. Where rabbitmq-server is not installed the module is
skipped, and the skip says why.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from private_node import PrivateNode, node_fixture  # noqa: F401  (the fixture `node`)
from waits import wait_until

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, RpcConnectionError, fib
from fibrpc_helpers.lab import broker, nodes
from fibrpc_helpers.lab.processes import WorkerProcesses
from fibrpc_helpers.urls import url_port

pytestmark = [
    pytest.mark.skipif(
        nodes.find_server() is None,
        reason="rabbitmq-server is not installed here, so this test cannot start and "
        "restart a broker of its own (install it: apt-get install rabbitmq-server)",
    ),
    pytest.mark.timeout(300),
]


async def test_tls_works_by_url_alone(node):
    if node.tls_url is None:
        pytest.skip("openssl is not installed here, so no test certificate can be made")
    queue = f"test.tls.{uuid.uuid4().hex[:8]}"
    worker = await FibonacciRpcWorker.start(node.tls_url, queue=queue)
    try:
        async with await FibonacciRpcClient.connect(node.tls_url, queue=queue) as client:
            assert await client.call(30, timeout=10) == fib(30)
            assert client.connection.transport.connection.url.scheme == "amqps"
    finally:
        await worker.stop()


async def test_client_and_worker_recover_by_themselves_after_a_broker_restart(node):
    queue = f"test.restart.{uuid.uuid4().hex[:8]}"
    # service_time holds requests in the worker, so some calls are in flight at the stop.
    worker = await FibonacciRpcWorker.start(node.url, queue=queue, service_time=3.0)
    client = await FibonacciRpcClient.connect(node.url, queue=queue)
    try:
        assert await client.call(10, timeout=10) == 55
        callback_queue = client.callback_queue.name

        in_flight = [asyncio.create_task(client.call(n, timeout=60)) for n in range(20, 25)]
        await wait_until(lambda: client.in_flight == 5, 10, "5 calls in flight")
        stopped = time.monotonic()
        await asyncio.to_thread(broker.stop, node.state_dir)

        # Every call in flight ends on its own, long before its 60 s timeout, with a
        # clear error (or with its result, if the reply beat the shutdown).
        done, pending = await asyncio.wait(in_flight, timeout=10)
        assert not pending, "calls in flight hung after the broker went away"
        assert time.monotonic() - stopped < 40
        errors = [call.exception() for call in done if call.exception() is not None]
        assert errors, "the worker takes 3 s a call: some of the 5 were still waiting"
        for error in errors:
            assert isinstance(error, RpcConnectionError), repr(error)
            # Waiting for the reply ("closed while waiting") or, on a request the broker had
            # not confirmed yet (a quorum queue confirms after its disk write), for the
            # confirm ("lost while sending"): either way the caller is told.
            assert re.search("connection to the broker (closed|was lost)", str(error))
            assert "guest:guest" not in str(error)

        # A call made while the broker is down waits (its timeout) for the reconnection,
        # then says the broker was unreachable: nothing was sent.
        with pytest.raises(RpcConnectionError, match="unreachable") as caught:
            await client.call(5, timeout=1)
        assert "guest:****@" in str(caught.value) and "guest:guest" not in str(caught.value)
        assert client.in_flight == 0

        await asyncio.to_thread(broker.ensure, node.url, node.state_dir)

        # Nobody reconnects them: a call made now waits for the client's recovery, and
        # succeeds once the worker has recovered too (the queue and consumers re-declared).
        await asyncio.wait_for(worker.channel.ready(), 30)
        assert await client.call(11, timeout=30) == 89
        assert client.callback_queue.name == callback_queue  # same name, re-declared
        assert await asyncio.gather(*(client.call(n, timeout=30) for n in range(5))) == [
            0, 1, 1, 2, 3
        ]
    finally:
        await client.close()
        await worker.stop()


def _add_user(node: PrivateNode, user: str, password: str) -> None:
    """A user of the private node's own, made with rabbitmqctl in the node's environment."""
    server = nodes.find_server()
    assert server is not None
    rabbitmqctl = Path(server).with_name("rabbitmqctl")
    ctl = str(rabbitmqctl) if rabbitmqctl.exists() else shutil.which("rabbitmqctl")
    assert ctl, "rabbitmq-server is installed without rabbitmqctl"
    env = nodes.node_environment(url_port(node.url), node.state_dir)
    for args in (
        ["add_user", user, password],
        ["set_permissions", "-p", "/", user, ".*", ".*", ".*"],
    ):
        subprocess.run([ctl, *args], env=env, check=True, capture_output=True, timeout=120)


async def test_a_password_shows_nowhere_in_logs_or_errors_across_a_broker_restart(
    node, caplog, tmp_path
):
    """Every log line (aio-pika, aiormq and ours, at DEBUG) and every error, of an in-process
    client and worker and of a worker process, through a call, an outage, a reconnection and
    a wrong password: the password never appears, the masked URL does."""
    password = f"Mask-Me-{uuid.uuid4().hex[:10]}"
    user = f"masked{uuid.uuid4().hex[:6]}"
    _add_user(node, user, password)
    url = node.url.replace("guest:guest@", f"{user}:{password}@")
    for name in ("aio_pika", "aiormq", "fibrpc_helpers"):
        caplog.set_level(logging.DEBUG, logger=name)
    queue = f"test.masked.{uuid.uuid4().hex[:8]}"
    said: list[str] = []  # every error message the test saw

    worker = await FibonacciRpcWorker.start(url, queue=queue, service_time=0.5)
    process_log = tmp_path / "worker-process.log"
    with open(process_log, "w") as stderr:
        # Both workers take 0.5 s a request, so calls are still in flight at the stop.
        processes = WorkerProcesses(1, url=url, queue=queue, sleep_ms=500, stderr=stderr).start()
    client = await FibonacciRpcClient.connect(url, queue=queue)
    try:
        assert await client.call(10, timeout=10) == 55
        in_flight = [asyncio.create_task(client.call(n, timeout=60)) for n in range(20, 23)]
        await wait_until(lambda: client.in_flight == 3, 10, "3 calls in flight")
        await asyncio.to_thread(broker.stop, node.state_dir)
        try:
            done, pending = await asyncio.wait(in_flight, timeout=20)
            assert not pending, "calls in flight hung after the broker went away"
            said += [str(call.exception()) for call in done if call.exception()]
            with pytest.raises(RpcConnectionError, match="unreachable") as down:
                await client.call(5, timeout=1)
            said.append(str(down.value))
            assert f"{user}:****@" in str(down.value), "the error names the masked URL"
        finally:
            await asyncio.to_thread(broker.ensure, node.url, node.state_dir)
        await asyncio.wait_for(worker.channel.ready(), 30)
        assert await client.call(11, timeout=30) == 89  # recovered, with the same password
        reconnections = [r for r in caplog.records if r.name.startswith("aio_pika.robust")]
        assert reconnections, "no reconnection was logged: the test saw no restart"
    finally:
        await client.close()
        await worker.stop()
        codes = processes.stop()
    assert codes == [0], "the worker process recovered and stopped cleanly"

    wrong = url.replace(password, f"Wrong-{password}")
    with pytest.raises(RpcConnectionError) as refused:
        await FibonacciRpcClient.connect(wrong, queue=queue)
    said.append(str(refused.value))
    assert f"{user}:****@" in str(refused.value)

    logged = caplog.text  # the formatted lines, tracebacks included
    assert caplog.records and "****" in logged + "".join(said)
    everything = {"log": logged, "errors": "\n".join(said), "process": process_log.read_text()}
    for where, text in everything.items():
        assert password not in text, f"the password leaked into the {where}"
