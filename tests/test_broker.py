"""`broker ensure`'s decisions when there is no broker to be found.

These tests replace only the probe (the AMQP connection attempt) so that no traffic leaves
this machine; the broker itself is exercised by every other test and by test_cli.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fibrpc_helpers import mask_url
from fibrpc_helpers.lab import broker, nodes


@pytest.fixture
def nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "probe", lambda url=None, timeout=3.0: None)


def test_a_remote_broker_that_does_not_answer_is_not_started_here(nothing_answers):
    with pytest.raises(broker.BrokerError, match="not on this machine") as caught:
        broker.ensure("amqp://teacher:hunter2@class-broker.example.org:5672/")
    assert "hunter2" not in str(caught.value)


def test_without_rabbitmq_and_without_apt_it_names_the_ways_to_get_one(
    nothing_answers, monkeypatch, tmp_path
):
    monkeypatch.setattr(nodes, "find_server", lambda: None)
    monkeypatch.setattr(nodes, "can_apt_install", lambda: False)
    with pytest.raises(broker.BrokerError) as caught:
        broker.ensure("amqp://guest:s3cret@localhost:5999/", state_dir=tmp_path)
    message = str(caught.value)
    assert message == broker.how_to_get_one("amqp://guest:s3cret@localhost:5999/")
    assert "s3cret" not in message and "guest:****@localhost:5999" in message


@pytest.mark.parametrize(
    "platform, ways",
    [
        ("linux", ["sudo apt-get install rabbitmq-server"]),
        ("darwin", ["brew install rabbitmq"]),
        ("win32", ["https://www.rabbitmq.com/docs/install-windows", "choco install rabbitmq",
                   "RabbitMQ service"]),
    ],
)
def test_each_platform_is_told_its_own_way_to_get_a_broker(platform, ways):
    message = broker.how_to_get_one("amqp://guest:s3cret@localhost:5672/", platform)
    for way in [*ways, "docker run -d --name rabbitmq -p 5672:5672", "AMQP_URL=amqp://", ".env"]:
        assert way in message
    others = {"linux": "apt-get", "darwin": "brew", "win32": "choco"}
    assert not any(word in message for p, word in others.items() if p != platform)
    assert "s3cret" not in message


def test_on_windows_ensure_only_checks_and_says_how_to_get_one(nothing_answers, monkeypatch):
    """No node of our own on Windows (no process groups): not even rabbitmq-server is looked for."""
    monkeypatch.setattr(broker, "can_start_nodes", lambda: False)
    monkeypatch.setattr(nodes, "find_server", lambda: pytest.fail("must not look for a server"))
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(broker.BrokerError, match="choco install rabbitmq"):
        broker.ensure("amqp://guest:guest@localhost:5999/")


def test_on_windows_a_recorded_pid_is_never_signalled(monkeypatch, tmp_path):
    """On Windows os.kill(pid, 0) would END the process; there, no record is ever read.

    The bystander carries our node's name in its environment, so on Linux the record would
    say it is our node: only the platform guard keeps status and stop away from it."""
    env = {**os.environ, "RABBITMQ_NODENAME": "fibrpc5999@localhost"}
    sleeper = "import time; print('up', flush=True); time.sleep(60)"
    bystander = subprocess.Popen([sys.executable, "-c", sleeper], env=env, stdout=subprocess.PIPE)
    try:
        assert bystander.stdout is not None
        bystander.stdout.readline()  # running: its /proc environ is filled in by now
        (tmp_path / "node.json").write_text(
            json.dumps({"pid": bystander.pid, "nodename": "fibrpc5999@localhost", "port": 5999})
        )
        here = "amqp://guest:guest@localhost:5999/"
        if Path(f"/proc/{bystander.pid}/environ").exists():
            assert nodes.recorded_node(tmp_path) is not None  # what the guard must prevent
            assert broker.status(here, tmp_path).started_by_us
        monkeypatch.setattr(broker, "can_start_nodes", lambda: False)
        assert not broker.status(here, tmp_path).started_by_us
        assert "nothing stopped" in broker.stop(tmp_path)
        assert bystander.poll() is None  # still running
    finally:
        bystander.kill()
        bystander.wait()


def test_describe_masks_the_password():
    info = broker.BrokerInfo("amqp://guest:guest@localhost:5672/", "3.10.8", True)
    assert broker.describe(info) == (
        "RabbitMQ 3.10.8 at amqp://guest:****@localhost:5672/, started by this project"
        " (.broker/)"
    )


@pytest.mark.parametrize(
    "url, masked",
    [
        ("amqp://guest:guest@localhost:5672/", "amqp://guest:****@localhost:5672/"),
        ("amqps://u:p%40ss@host.example/vh", "amqps://u:****@host.example/vh"),
        ("amqp://localhost/", "amqp://localhost/"),
        ("amqp://u:pw@[::1]:5672/", "amqp://u:****@[::1]:5672/"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_stop_leaves_alone_a_process_that_only_reuses_the_recorded_pid(tmp_path):
    """The record names a pid; stop checks it is really our node before signalling it."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "node.json").write_text(
            json.dumps({"pid": bystander.pid, "nodename": "fibrpc5999@localhost", "port": 5999})
        )
        assert "nothing stopped" in broker.stop(tmp_path)
        assert bystander.poll() is None  # still running
    finally:
        bystander.kill()
        bystander.wait()


def test_a_broker_that_refuses_the_password_is_reported_not_restarted(url):
    """Starting a second broker would not help; the message says to check the credentials."""
    wrong = url.replace("guest:guest@", "guest:not-the-password@")
    with pytest.raises(broker.BrokerError, match="refused the user name or password") as caught:
        broker.ensure(wrong)
    assert "not-the-password" not in str(caught.value)


@pytest.mark.parametrize(
    ("server", "version"),
    [("/usr/lib/rabbitmq/lib/rabbitmq_server-4.3.6/sbin/rabbitmq-server", (4, 3)),
     ("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/sbin/rabbitmq-server", (3, 10)),
     ("/opt/homebrew/Cellar/rabbitmq/4.1.0/sbin/rabbitmq-server", (4, 1)),
     ("/usr/local/sbin/rabbitmq-server", None)],
)
def test_the_server_version_is_read_from_where_its_script_lives(server, version):
    assert broker.server_version(server) == version


def test_each_config_key_is_written_only_for_the_versions_that_know_it():
    """An unknown key stops a node from starting: 3.10 knows neither 4.3 key."""
    deny = "deprecated_features.permit.transient_nonexcl_queues = false"
    timeout = f"consumer_disconnected_timeout = {broker.CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS}"
    old = broker.node_config(5672, (3, 10), clustered=True)
    assert deny not in old and "consumer_disconnected_timeout" not in old
    assert "listeners.tcp.default = 5672" in old
    unknown = broker.node_config(5672, None, clustered=True)
    assert deny not in unknown and "consumer_disconnected_timeout" not in unknown
    single = broker.node_config(5672, (4, 3))
    assert deny in single and "consumer_disconnected_timeout" not in single
    clustered = broker.node_config(5672, (4, 3), clustered=True)
    assert deny in clustered and timeout in clustered


def test_our_node_takes_transient_queues_exactly_when_upstream_does(url):
    """The node `ensure` started (the suite's broker): from 4.3 it denies transient
    non-exclusive queues as RabbitMQ ships 4.3, before that it takes them."""
    info = broker.status(url)
    if not info.started_by_us:
        pytest.skip("the suite's broker was not started by this project: its settings are its own")
    assert info.version is not None
    major, minor = map(int, info.version.split(".")[:2])
    said = broker.describe_transient_queues(url)
    expected = "denied" if (major, minor) >= (4, 3) else "permitted"
    assert said.startswith(f"transient non-exclusive queues: {expected}"), said


async def test_delete_queues_passes_over_gone_and_locked_queues_and_deletes_the_rest(url):
    """What a clean-up deletes: a queue already gone, or exclusive to a connection still
    open elsewhere (it goes with that connection), does not stop the others."""
    import uuid

    import aio_pika
    import aiormq.exceptions

    name = f"test-delete.{uuid.uuid4().hex[:8]}"
    async with await aio_pika.connect(url) as holder, await aio_pika.connect(url) as other:
        locked = await (await holder.channel()).declare_queue(f"{name}.locked", exclusive=True)
        await (await other.channel()).declare_queue(f"{name}.plain", durable=True)
        await broker.delete_queues(url, [f"{name}.gone", locked.name, f"{name}.plain"])
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await (await other.channel()).declare_queue(f"{name}.plain", passive=True)
        still = await (await holder.channel()).declare_queue(locked.name, passive=True)
        assert still.name == locked.name  # its connection is open: it stays with it
