"""A wrong password on a live broker: refused, and masked in every error and log line.

The shared broker accepts only guest:guest, so here the password is wrong on purpose; it
gets as far as the broker's login and comes back refused. (The restart test in
test_broker_restart.py does the same with a right password, across a reconnection.)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid

import pytest

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, RpcConnectionError

CLI = [sys.executable, "-m", "fibrpc_helpers"]


@pytest.fixture
def wrong_url(url: str) -> tuple[str, str]:
    """The shared broker's URL with a distinctive wrong password (with a percent-encoded
    '#', which must not cut the masking short), and the part of it to look for."""
    secret = f"Wr0ng-{uuid.uuid4().hex[:8]}"
    assert "guest:guest@" in url, "these tests expect the shared broker's guest login"
    return url.replace("guest:guest@", f"guest:x%23{secret}@"), secret


async def test_a_refused_login_is_masked_in_errors_and_every_log_line(wrong_url, caplog):
    url, secret = wrong_url
    for name in ("aio_pika", "aiormq", "fibrpc_helpers"):
        caplog.set_level(logging.DEBUG, logger=name)
    with pytest.raises(RpcConnectionError, match="ACCESS_REFUSED") as client_error:
        await FibonacciRpcClient.connect(url, queue="test.masked.client")
    with pytest.raises(RpcConnectionError, match="ACCESS_REFUSED") as worker_error:
        await FibonacciRpcWorker.start(url, queue="test.masked.worker")
    errors = f"{client_error.value}\n{worker_error.value}"
    assert errors.count("guest:****@") == 2, errors
    assert caplog.records, "aio-pika logged nothing at DEBUG: the capture is not working"
    assert secret not in errors and secret not in caplog.text


@pytest.mark.parametrize("command", [["call", "5"], ["worker"]])
def test_a_refused_login_is_masked_in_what_the_cli_prints(wrong_url, command, queue_name):
    url, secret = wrong_url
    done = subprocess.run(
        [*CLI, *command, "--queue", queue_name],
        capture_output=True, text=True, timeout=60, env={**os.environ, "AMQP_URL": url},
    )
    assert done.returncode == 1
    assert "ACCESS_REFUSED" in done.stderr and "guest:****@" in done.stderr
    assert secret not in done.stdout + done.stderr
