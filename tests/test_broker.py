"""`broker ensure`'s decisions when there is no broker to be found.

These tests replace only the probe (the AMQP connection attempt) so that no traffic leaves
this machine; the broker itself is exercised by every other test and by test_cli.
"""

from __future__ import annotations

import pytest

from fibrpc_helpers import broker, mask_url


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
    monkeypatch.setattr(broker, "_find_server", lambda: None)
    monkeypatch.setattr(broker, "_can_apt_install", lambda: False)
    with pytest.raises(broker.BrokerError) as caught:
        broker.ensure("amqp://guest:s3cret@localhost:5999/", state_dir=tmp_path)
    message = str(caught.value)
    for way in ("apt-get install rabbitmq-server", "brew install rabbitmq", "docker run",
                "AMQP_URL"):
        assert way in message
    assert "s3cret" not in message and "guest:****@localhost:5999" in message


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
    import json
    import subprocess
    import sys

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
