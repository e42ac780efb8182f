"""A teacher points everything at the class broker in one place: AMQP_URL, or a `.env` file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fibrpc_helpers import amqp_url, urls
from fibrpc_helpers.lab.namespace import namespaced

CLI = [sys.executable, "-m", "fibrpc_helpers"]


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `.env` file in use, with AMQP_URL absent from the environment."""
    path = tmp_path / ".env"
    monkeypatch.setenv("FIBRPC_ENV_FILE", str(path))
    monkeypatch.delenv("AMQP_URL", raising=False)
    return path


def run_cli(*args: str, env_file: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The CLI with no AMQP_URL in its environment, reading `env_file`."""
    env = {key: value for key, value in os.environ.items() if key != "AMQP_URL"}
    env["FIBRPC_ENV_FILE"] = str(env_file)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_the_env_file_gives_the_url_when_the_environment_does_not(env_file):
    env_file.write_text("# the class broker\nAMQP_URL=amqp://class:pw@broker.school:5672/fib\n")
    assert amqp_url() == "amqp://class:pw@broker.school:5672/fib"


def test_the_environment_wins_over_the_env_file(env_file, monkeypatch):
    env_file.write_text("AMQP_URL=amqp://class:pw@broker.school:5672/\n")
    monkeypatch.setenv("AMQP_URL", "amqp://me:mine@localhost:5672/")
    assert amqp_url() == "amqp://me:mine@localhost:5672/"
    assert amqp_url("amqp://given@host/") == "amqp://given@host/"  # an explicit URL wins all


def test_no_env_file_means_the_local_default(env_file):
    assert not env_file.exists()
    assert amqp_url() == urls.DEFAULT_URL


def test_the_env_file_format_a_shell_can_also_source(env_file):
    env_file.write_text(
        "\n".join([
            "# comments and blank lines are skipped",
            "",
            "FIBRPC_NAMESPACE=alice",
            "not a setting",
            "export AMQP_URL='amqp://class:pa$$word#1@broker.school:5672/'",
        ])
    )
    assert urls.read_env_file(env_file) == {
        "FIBRPC_NAMESPACE": "alice",
        "AMQP_URL": "amqp://class:pa$$word#1@broker.school:5672/",
    }
    assert amqp_url() == "amqp://class:pa$$word#1@broker.school:5672/"
    assert "pa$$word" not in urls.mask_url(amqp_url())


def test_the_default_env_file_is_git_ignored_at_the_project_root(monkeypatch):
    monkeypatch.delenv("FIBRPC_ENV_FILE", raising=False)
    assert urls.env_file() == urls.PROJECT_DIR / ".env"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=urls.PROJECT_DIR)
    assert ignored.returncode == 0, "a .env holds a password: it must never be committed"


def test_cli_worker_and_call_follow_the_env_file(url, env_file, queue_name):
    # The same broker under another spelling, so we can see that the file was read.
    env_file.write_text(f"AMQP_URL={url.replace('localhost', '127.0.0.1')}\n")
    worker = subprocess.Popen(
        [*CLI, "worker", "--queue", queue_name], stdout=subprocess.PIPE, text=True,
        stderr=subprocess.DEVNULL,
        env={**{k: v for k, v in os.environ.items() if k != "AMQP_URL"},
             "FIBRPC_ENV_FILE": str(env_file), "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert worker.stdout is not None
        ready = worker.stdout.readline()
        assert f"@127.0.0.1:{urls.url_port(url)}/" in ready and ":****@" in ready
        done = run_cli("call", "--queue", queue_name, "10", env_file=env_file)
        assert done.stdout == "fib(10) = 55\n", done.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=20)


def test_a_wrong_env_file_url_fails_clearly_without_leaking_the_password(env_file):
    env_file.write_text("AMQP_URL=amqp://class:s3cret-pw@127.0.0.1:1/\n")
    done = run_cli("call", "5", env_file=env_file)
    assert done.returncode == 1
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert "class:****@127.0.0.1:1" in done.stderr


@pytest.mark.parametrize("password", ["pa#ss", "p/w", "p?w", "p@w", "a:b", "plain"])
def test_a_password_typed_unencoded_is_still_masked(password):
    masked = urls.mask_url(f"amqp://class:{password}@broker.school:5672/fib")
    assert masked == "amqp://class:****@broker.school:5672/fib"


def test_the_env_file_can_set_the_namespace_too(env_file, monkeypatch):
    monkeypatch.delenv("FIBRPC_NAMESPACE", raising=False)
    env_file.write_text("AMQP_URL=amqp://alice:pw@broker.school/fibrpc\nFIBRPC_NAMESPACE=alice\n")
    assert namespaced("rpc_queue") == "alice.rpc_queue"
    monkeypatch.setenv("FIBRPC_NAMESPACE", "bob")  # the environment wins here too
    assert namespaced("rpc_queue") == "bob.rpc_queue"
