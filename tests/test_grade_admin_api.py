"""Grading through RabbitMQ's HTTP API (``make grade GRADE_ARGS="--admin-api URL"``):
for a class broker that is not on the teacher's machine (a Docker container, a server), where
``rabbitmqctl`` cannot reach it.

A private node of its own, with the management plugin enabled on a free port: the shared
broker is left alone, and a teacher's broker would have the plugin anyway (the
``rabbitmq:4-management`` image).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiormq.exceptions
import pytest
from ports import free_block
from private_node import wait_for_listener

from fibrpc_helpers.exercises.broker_users import HttpApi, admin_for, new_password, student_url
from fibrpc_helpers.lab import broker, nodes


@dataclass
class ManagedNode:
    url: str  # AMQP, as guest (the teacher)
    api: str  # the HTTP API, as guest


pytestmark = pytest.mark.timeout(300)  # the first test starts a node with a plugin


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedNode]:
    server = nodes.find_server()
    if server is None or not broker.can_start_nodes():
        pytest.skip("not run: no rabbitmq-server here to start a node with the HTTP API")
    plugins = Path(server).with_name("rabbitmq-plugins")
    port = free_block(2)  # AMQP on port, the HTTP API on port + 1
    state_dir = tmp_path_factory.mktemp("managed-broker") / f"node-{port}"
    state_dir.mkdir()
    listener = f'[{{ip, "127.0.0.1"}}, {{port, {port + 1}}}]'
    (state_dir / "advanced.config").write_text(
        f"[{{rabbitmq_management, [{{tcp_config, {listener}}}]}}].\n")
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    if not broker.ensure(url, state_dir=state_dir).started_by_us:
        pytest.fail(f"another broker took port {port} before our node did")
    try:
        enabled = subprocess.run(
            [str(plugins), "enable", "rabbitmq_management"], capture_output=True, text=True,
            env=nodes.node_environment(port, state_dir), timeout=120)
        if enabled.returncode != 0:
            pytest.skip(f"not run: this RabbitMQ cannot enable its management plugin: "
                        f"{enabled.stderr.strip()[-300:]}")
        wait_for_listener(port + 1, state_dir)
        yield ManagedNode(url, f"http://guest:guest@127.0.0.1:{port + 1}")
    finally:
        broker.stop(state_dir)


async def test_the_http_api_makes_a_user_limited_to_its_namespace_and_deletes_it(managed):
    """A graded user made through the HTTP API logs in with its password, may declare the
    queues of its namespace and the reference client's amq_<hex> callback queue, is refused
    any other queue, and is gone after ``delete_user``."""
    admin = admin_for(managed.url, managed.api)
    assert isinstance(admin, HttpApi)
    run = uuid.uuid4().hex[:6]
    user = namespace = f"api-graded-{run}"
    admin.add_user(user, password := new_password(), namespace)
    as_student = student_url(managed.url, user, password)
    try:
        async with await aio_pika.connect(as_student) as connection:
            channel = await connection.channel()
            await channel.declare_queue(f"{namespace}.rpc", durable=True)
            await channel.declare_queue(f"amq_{uuid.uuid4().hex}", exclusive=True)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await (await connection.channel()).declare_queue(f"someone-else.{run}",
                                                                 durable=True)
        assert f"{namespace}.rpc" in admin.queues()  # what grading checks after a student
    finally:
        admin.delete_user(user)
        async with await aio_pika.connect(managed.url) as connection:
            await (await connection.channel()).queue_delete(f"{namespace}.rpc")
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(as_student)


def test_a_wrong_admin_password_says_what_to_check_and_never_shows_it(managed):
    wrong = managed.api.replace("guest:guest@", "guest:not-the-password@")
    with pytest.raises(broker.BrokerError) as refused:
        HttpApi(wrong).queues()
    assert "(401): check the user and password in --admin-api" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_an_api_nobody_serves_says_to_enable_the_management_plugin():
    port = free_block(1)
    with pytest.raises(broker.BrokerError, match="is the management plugin enabled"):
        HttpApi(f"http://guest:guest@127.0.0.1:{port}").queues()
