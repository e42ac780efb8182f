"""The command line end to end: real worker and call processes, and tutorial six's own code."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

CLI = [sys.executable, "-m", "fibrpc_helpers"]


def run(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


def start(*args: str) -> subprocess.Popen[str]:
    """Start a long-running process and wait for its first line (it is ready then)."""
    process = subprocess.Popen(
        [*args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first, f"{args} exited early: {process.stderr.read() if process.stderr else ''}"
    return process


@pytest.fixture
def cli_worker(url: str, queue_name: str) -> Iterator[subprocess.Popen[str]]:
    worker = start(*CLI, "worker", "--url", url, "--queue", queue_name, "--max-n", "500")
    yield worker
    if worker.poll() is None:
        worker.kill()
        worker.wait()


def test_call_prints_one_result_per_line(cli_worker, url, queue_name):
    done = run(*CLI, "call", "--url", url, "--queue", queue_name, "10", "20", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "fib(10) = 55\nfib(20) = 6765\nfib(0) = 0\n"


def test_worker_exits_0_on_sigterm_after_serving(cli_worker, url, queue_name):
    assert run(*CLI, "call", "--url", url, "--queue", queue_name, "7").stdout == "fib(7) = 13\n"
    cli_worker.send_signal(signal.SIGTERM)
    assert cli_worker.wait(timeout=20) == 0
    summary = cli_worker.stderr.read() if cli_worker.stderr else ""
    assert "stopped: 1 answered, 0 error replies, 0 dropped (no reply_to), 0 expired" in summary


def test_a_remote_error_is_one_line_on_stderr_and_exit_1(cli_worker, url, queue_name):
    done = run(*CLI, "call", "--url", url, "--queue", queue_name, "501")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "at most 500" in done.stderr


def test_negative_n_is_refused_before_sending(url, queue_name):
    done = run(*CLI, "call", "--url", url, "--queue", queue_name, "-5")
    assert done.returncode == 1
    assert "0 or more" in done.stderr


def test_no_worker_is_a_clear_error(url, queue_name):
    done = run(*CLI, "call", "--url", url, "--queue", queue_name, "--timeout", "20", "5")
    assert done.returncode == 1
    assert "no queue named" in done.stderr
    assert done.stderr.count("\n") == 1


def test_cannot_connect_masks_the_password():
    done = run(*CLI, "call", "--url", "amqp://guest:hunter2@127.0.0.1:1/", "5")
    assert done.returncode == 1
    assert "hunter2" not in done.stderr
    assert "guest:****@127.0.0.1:1" in done.stderr


def test_processes_runs_several_workers_and_stops_them_all(url, queue_name):
    parent = start(*CLI, "worker", "--url", url, "--queue", queue_name, "--processes", "2")
    try:
        assert parent.stdout is not None
        second = parent.stdout.readline()
        assert "is serving" in second
        done = run(*CLI, "call", "--url", url, "--queue", queue_name, *map(str, range(30)))
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.splitlines()) == 30
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
    finally:
        if parent.poll() is None:
            parent.kill()


def test_broker_status_shows_version_and_masks_the_password(url):
    done = run(*CLI, "broker", "status")
    assert done.returncode == 0
    assert re.search(r"RabbitMQ \d+\.\d+", done.stdout), done.stdout
    assert ":****@" in done.stdout and "guest:guest" not in done.stdout


def test_broker_stop_never_stops_a_broker_it_did_not_start(url, tmp_path):
    done = run(*CLI, "broker", "stop", FIBRPC_BROKER_DIR=str(tmp_path))
    assert done.returncode == 0
    assert "nothing stopped" in done.stdout
    assert run(*CLI, "broker", "status").returncode == 0  # still there


def test_a_recursive_worker_refuses_an_n_that_would_hold_it_for_hours(url, queue_name):
    worker = start(*CLI, "worker", "--url", url, "--queue", queue_name, "--work", "recursive")
    try:
        done = run(*CLI, "call", "--url", url, "--queue", queue_name, "50", "20")
        assert done.returncode == 1
        assert "at most 35" in done.stderr
        assert done.stdout == "fib(20) = 6765\n"  # and it goes on serving
    finally:
        worker.kill()
        worker.wait()
