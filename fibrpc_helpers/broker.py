"""Make sure a RabbitMQ broker answers at ``AMQP_URL``: find one, or start our own node.

``make lab`` and ``make test`` call ``python -m fibrpc_helpers broker ensure``, so a fresh
machine needs no other step. The node this module starts keeps its data, logs and Erlang
cookie under ``.broker/`` in the project (git-ignored), listens on the URL's port, and is
recorded in ``.broker/node.json`` so that ``stop`` stops that node and never anything else.

Starting and stopping a node of our own needs POSIX process groups and signals, so it happens
on Linux and macOS only. On Windows RabbitMQ runs as a Windows service (its installer sets one
up), so ``ensure`` there only checks that a broker answers and otherwise says how to get one;
``status`` works everywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiormq

from .urls import PROJECT_DIR, amqp_url, mask_url, url_host, url_port


def default_state_dir() -> Path:
    """Where our node keeps its data: ``$FIBRPC_BROKER_DIR``, else ``.broker/``."""
    return Path(os.environ.get("FIBRPC_BROKER_DIR") or PROJECT_DIR / ".broker")

START_TIMEOUT = 120.0

# Debian puts the real scripts here; /usr/sbin/rabbitmq-server is a wrapper that insists on
# running as the `rabbitmq` user, which our project-local node does not want. Then Homebrew's
# places (Intel, Apple Silicon), as RabbitMQ's Homebrew guide lists them.
_SCRIPT_DIRS = (
    "/usr/lib/rabbitmq/bin",
    "/usr/local/opt/rabbitmq/sbin",
    "/opt/homebrew/opt/rabbitmq/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/sbin",
)

# How to install RabbitMQ, per platform: one entry per way, continuation lines indented.
_INSTALL = {
    "linux": [
        "Debian/Ubuntu:  sudo apt-get install rabbitmq-server\n"
        "(as root, `broker ensure` runs apt-get itself)",
        "other Linux:    your distribution's rabbitmq-server package",
    ],
    "darwin": [
        "macOS:          brew install rabbitmq   (Homebrew; `broker ensure` then starts a\n"
        "node of its own from it, with its data in .broker/)",
    ],
    "win32": [
        "Windows:        RabbitMQ's installer (https://www.rabbitmq.com/docs/install-windows;\n"
        "it needs Erlang first) or `choco install rabbitmq`. Both run RabbitMQ as a\n"
        "Windows service that starts by itself; if it is installed but stopped, start\n"
        "the RabbitMQ service in the Services panel.",
    ],
}


def how_to_get_one(url: str, platform: str | None = None) -> str:
    """What to do when nothing answers at the local ``url`` and no node can be started here.

    ``platform`` is a ``sys.platform`` value (this machine's by default): each platform gets
    its own way to install RabbitMQ, then the ways that work everywhere (Docker, or the class
    broker's URL in ``.env``)."""
    platform = platform or sys.platform
    key = "win32" if platform.startswith("win") else "darwin" if platform == "darwin" else "linux"
    why = (
        "this project starts no node of its own on Windows" if key == "win32"
        else "rabbitmq-server is not installed"
    )
    ways = [*_INSTALL[key], "Docker:         docker run -d --name rabbitmq -p 5672:5672 rabbitmq:4"]
    lines = [
        f"No RabbitMQ broker answers at {mask_url(url)}, and {why}.",
        "Get one, then run `python -m fibrpc_helpers broker ensure` again:",
        *("  * " + way.replace("\n", "\n                    ") for way in ways),
        "Or use a broker you already have (the class broker): put its URL in a file named .env",
        "at the project root, one line:",
        "  AMQP_URL=amqp://user:password@broker.example.org:5672/vhost",
        "or set the AMQP_URL environment variable (README: Teaching with this series).",
    ]
    return "\n".join(lines)


def can_start_nodes() -> bool:
    """Whether this module can start and stop a node of its own here: POSIX only (it uses
    process groups and signals); on Windows RabbitMQ runs as a service."""
    return os.name == "posix"


class BrokerError(RuntimeError):
    """No broker could be found or started; the message says what to do."""


@dataclass
class BrokerInfo:
    url: str
    version: str | None  # None when nothing answers
    started_by_us: bool


async def probe_async(url: str | None = None, timeout: float = 3.0) -> str | None:
    """The broker's version if an AMQP connection to ``url`` succeeds, else None.

    Raises BrokerError when a broker answers but refuses the user name or password, since
    starting another one would not help. Uses aiormq directly: a failed attempt leaves no
    half-made connection object behind to be closed later (a warning in a notebook cell).
    """
    url = amqp_url(url)
    logger = logging.getLogger("aiormq")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # a refused connection is an answer here, not an error
    try:
        connection = await asyncio.wait_for(aiormq.connect(url), timeout)
    except aiormq.exceptions.ProbableAuthenticationError:
        raise BrokerError(
            f"a broker answers at {mask_url(url)} but refused the user name or password; "
            "check the credentials in AMQP_URL (or in .env)"
        ) from None
    except (TimeoutError, OSError, aiormq.exceptions.AMQPError):
        return None
    finally:
        logger.setLevel(level)
    try:
        version = connection.server_properties.get("version", "unknown")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()


def probe(url: str | None = None, timeout: float = 3.0) -> str | None:
    """``probe_async`` for code that has no event loop running (the command line)."""
    return asyncio.run(probe_async(url, timeout))


def _recorded_node(state_dir: Path) -> dict | None:
    """The node we started, if its recorded process is still alive and is that node."""
    if not can_start_nodes():
        return None  # none was started here (and os.kill(pid, 0) would END it on Windows)
    try:
        record = json.loads((state_dir / "node.json").read_text())
        pid = int(record["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError):
        return None
    environ = Path(f"/proc/{pid}/environ")
    if environ.exists():  # Linux: the node's own environment names it
        marker = f"RABBITMQ_NODENAME={record['nodename']}".encode()
        return record if marker in environ.read_bytes() else None
    # Elsewhere (macOS): the same pid with the same start time is the same process.
    started = _process_start_time(pid)
    return record if started is not None and started == record.get("started") else None


def _process_start_time(pid: int) -> str | None:
    """When the process started, as `ps` tells it; None if it cannot say."""
    try:
        result = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def status(url: str | None = None, state_dir: Path | None = None) -> BrokerInfo:
    """Whether a broker answers at the URL, its version, and whether ``ensure`` started it."""
    url = amqp_url(url)
    record = _recorded_node(state_dir or default_state_dir())
    started_by_us = record is not None and record["port"] == url_port(url)
    return BrokerInfo(url, probe(url), started_by_us)


def _find_server() -> str | None:
    for directory in _SCRIPT_DIRS:
        candidate = Path(directory) / "rabbitmq-server"
        if candidate.exists():
            return str(candidate)
    return shutil.which("rabbitmq-server")


def _install_with_apt() -> None:
    print("rabbitmq-server is not installed; installing it with apt-get (a minute or two)",
          flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "rabbitmq-server"])
    for command in steps:
        print(f"  $ {' '.join(command)}", flush=True)
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if result.returncode != 0:
            raise BrokerError(
                f"`{' '.join(command)}` failed:\n{result.stderr.decode(errors='replace')[-2000:]}"
            )


def _can_apt_install() -> bool:
    return (
        sys.platform.startswith("linux")
        and Path("/etc/debian_version").exists()
        and shutil.which("apt-get") is not None
        and os.geteuid() == 0
    )


def server_version(server: str | None) -> tuple[int, int] | None:
    """The (major, minor) version of the RabbitMQ whose ``rabbitmq-server`` script this is,
    read from the folder it lives in (Debian: ``lib/rabbitmq_server-4.3.6/sbin``, Homebrew:
    ``Cellar/rabbitmq/4.3.0/sbin``); None when the path does not say.

    Needed before the node starts: a configuration key that a version does not know stops
    that node from starting, so each key is written only for the versions that have it."""
    if server is None:
        return None
    found = re.search(r"rabbitmq(?:_server-|/)(\d+)\.(\d+)\.", str(Path(server).resolve()))
    return (int(found[1]), int(found[2])) if found else None


CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS = 5000
"""How long, on a cluster of RabbitMQ 4.3 or later, a quorum queue waits before it hands the
deliveries held by a consumer on an unreachable node to another consumer. RabbitMQ 4.3's
default (``consumer_disconnected_timeout``) is 60 s, so that a short network partition does
not get messages processed twice; our cluster is one machine whose nodes die only when
killed, and 5 s lets a demo's calls carry on within their deadline. Before 4.3 a queue hands
them on at once."""


def node_config(port: int, version: tuple[int, int] | None, *, clustered: bool = False) -> str:
    """Our node's ``rabbitmq.conf``, with each key written only for the versions that know it
    (an unknown key stops a node from starting).

    From 4.3 on: transient (non-durable) non-exclusive queues denied, as RabbitMQ ships 4.3
    (Debian's package permits them), so tests and notebooks run against the broker a student
    installs from RabbitMQ; and on a cluster's nodes a short
    ``consumer_disconnected_timeout`` (:data:`CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS`)."""
    lines = [f"listeners.tcp.default = {port}", "loopback_users.guest = true",
             "log.console = false"]
    if version is not None and version >= (4, 3):
        lines.append("deprecated_features.permit.transient_nonexcl_queues = false")
        if clustered:
            lines.append(
                f"consumer_disconnected_timeout = {CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS}"
            )
    return "\n".join(lines) + "\n"


def _node_environment(port: int, state_dir: Path, *, clustered: bool = False
                      ) -> dict[str, str]:
    """Environment that makes rabbitmq-server keep everything under state_dir."""
    nodename = f"fibrpc{port}@localhost"
    (state_dir / "home").mkdir(parents=True, exist_ok=True)
    (state_dir / "log").mkdir(exist_ok=True)
    (state_dir / "enabled_plugins").write_text("[].\n")  # no plugins: starts in seconds
    config = node_config(port, server_version(_find_server()), clustered=clustered)
    (state_dir / "rabbitmq.conf").write_text(config)
    return {
        **os.environ,
        "HOME": str(state_dir / "home"),  # the Erlang cookie lives here, not in ~
        "RABBITMQ_NODENAME": nodename,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(port + 20000),
        "RABBITMQ_MNESIA_BASE": str(state_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(state_dir / "log"),
        "RABBITMQ_PID_FILE": str(state_dir / "rabbitmq.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(state_dir / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(state_dir / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(state_dir / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(state_dir / "rabbitmq-env.conf"),
        "RABBITMQ_ALLOW_INPUT": "",
    }


def _spawn_node(server: str, port: int, state_dir: Path, *, clustered: bool = False
                ) -> subprocess.Popen[bytes]:
    """Start rabbitmq-server for the node on ``port`` with its data in ``state_dir``, and
    record it in ``node.json`` (what ``stop`` reads); return at once. The nodes of a cluster
    (cluster.py) start here too."""
    env = _node_environment(port, state_dir, clustered=clustered)
    log_path = state_dir / "log" / "server-output.log"
    with open(log_path, "ab") as output:
        process = subprocess.Popen(
            [server],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the shell that ran `make`
        )
    (state_dir / "node.json").write_text(
        json.dumps({
            "pid": process.pid,
            "nodename": env["RABBITMQ_NODENAME"],
            "port": port,
            "started": _process_start_time(process.pid),
        })
    )
    return process


def _start_node(server: str, url: str, state_dir: Path) -> None:
    port = url_port(url)
    log_path = state_dir / "log" / "server-output.log"
    print(f"starting a RabbitMQ node on port {port} (data and logs in {state_dir.name}/) ",
          end="", flush=True)
    process = _spawn_node(server, port, state_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(" failed", flush=True)
            raise BrokerError(
                f"rabbitmq-server exited with code {process.returncode}; see "
                f"{log_path} and {state_dir / 'log'} for why."
            )
        if probe(url, timeout=1.0) is not None:
            print(" ready", flush=True)
            return
        print(".", end="", flush=True)
        time.sleep(1.0)
    print(" timed out", flush=True)
    raise BrokerError(
        f"the RabbitMQ node did not accept AMQP connections within {START_TIMEOUT:g} s; "
        f"see {state_dir / 'log'}."
    )


def ensure(url: str | None = None, state_dir: Path | None = None) -> BrokerInfo:
    """Return once a broker answers at the URL, starting (and installing) one if needed."""
    url = amqp_url(url)
    state_dir = state_dir or default_state_dir()
    if probe(url) is not None:
        return status(url, state_dir)
    if url_host(url) not in ("localhost", "127.0.0.1", "::1"):
        raise BrokerError(
            f"no RabbitMQ broker answers at {mask_url(url)}. It is not on this machine, so "
            "it cannot be started from here: check the host, port and credentials in AMQP_URL."
        )
    if not can_start_nodes():
        raise BrokerError(how_to_get_one(url))
    server = _find_server()
    if server is None and _can_apt_install():
        _install_with_apt()
        if probe(url) is not None:  # the package's own service may have started
            return status(url, state_dir)
        server = _find_server()
    if server is None:
        raise BrokerError(how_to_get_one(url))
    _start_node(server, url, state_dir)
    return status(url, state_dir)



def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (POSIX); reaps it first if this process started it,
    so that a finished child is not mistaken for a live zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


def port_free(port: int) -> bool:
    """Whether a listener could bind the port now (with SO_REUSEADDR, as RabbitMQ and haproxy
    bind: a port whose last connection only waits out TIME_WAIT counts as free)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop(state_dir: Path | None = None) -> str:
    """Stop the node that ``ensure`` started; leave any other broker alone."""
    state_dir = state_dir or default_state_dir()
    if not can_start_nodes():
        return ("this project starts no RabbitMQ node on Windows; nothing stopped (to stop "
                "RabbitMQ itself, stop the RabbitMQ service in the Services panel)")
    record = _recorded_node(state_dir)
    if record is None:
        return "no RabbitMQ node started by this project is running; nothing stopped"
    pid = int(record["pid"])
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while process_alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    (state_dir / "node.json").unlink(missing_ok=True)
    return f"stopped the RabbitMQ node {record['nodename']} (pid {pid}) that this project started"


def describe(info: BrokerInfo) -> str:
    """One line for people: where the broker is, its version, and who started it."""
    where = mask_url(info.url)
    if info.version is None:
        return f"no broker answers at {where}"
    owner = "started by this project (.broker/)" if info.started_by_us else (
        "not started by this project"
    )
    return f"RabbitMQ {info.version} at {where}, {owner}"



def describe_transient_queues(url: str | None = None) -> str:
    """One line for ``broker status``: does this broker take aio-pika's docs' request queue
    (transient, non-exclusive), as RabbitMQ up to 4.2 does, or deny it, as 4.3 ships?"""
    from .request_queue import transient_queues_permitted

    if asyncio.run(transient_queues_permitted(amqp_url(url))):
        return ("transient non-exclusive queues: permitted (aio-pika's own tutorial six can "
                "declare its rpc_queue here)")
    return ("transient non-exclusive queues: denied, as RabbitMQ 4.3 ships (aio-pika's own "
            "tutorial six cannot declare its rpc_queue here)")
