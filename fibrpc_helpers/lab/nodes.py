"""RabbitMQ nodes of our own, for :mod:`broker` (one) and :mod:`cluster` (three): install,
start, wait for and stop them. A node of ours keeps everything, even a crash dump, under its
state folder (``.broker/`` or ``.broker/cluster-PORT/node-N/``), listens for AMQP on its port and
for other Erlang nodes (``rabbitmqctl``, its cluster) on that port + 20000, and is named
``fibrpcPORT@localhost``. Linux and macOS only (:mod:`broker` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiormq

from ..urls import amqp_url, mask_url

START_TIMEOUT = 120.0  # seconds a node may take from its start to its first AMQP connection
DIST_PORT_OFFSET = 20000  # Erlang distribution port = AMQP port + this, as 5672 -> 25672

# Debian's real scripts first: its /usr/sbin/rabbitmq-server is a wrapper that insists on
# running as the `rabbitmq` user. Then Homebrew's places (Intel, Apple Silicon).
SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/opt/rabbitmq/sbin",
               "/opt/homebrew/opt/rabbitmq/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")

CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS = 5000
"""How long a quorum queue (RabbitMQ 4.3 on) waits before it hands a consumer's deliveries on an
unreachable node to another consumer. 4.3's 60 s keeps a short network partition from getting
messages processed twice; our nodes die only when killed, and 5 s lets a demo's calls carry on
within their deadline. Before 4.3 a queue hands them on at once."""


class BrokerError(RuntimeError):
    """No broker could be found or started; the message says what to do."""


# --- is one there ----------------------------------------------------------------------------

async def probe_async(url: str | None = None, timeout: float = 3.0) -> str | None:
    """The broker's version if an AMQP connection to ``url`` succeeds, else None; BrokerError
    when it refuses the credentials (another broker would not help). aiormq, not aio-pika: a
    failed attempt leaves no half-made connection to warn about later."""
    url = amqp_url(url)
    logger = logging.getLogger("aiormq")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # a refused connection is an answer here, not an error
    try:
        connection = await asyncio.wait_for(aiormq.connect(url), timeout)
    except aiormq.exceptions.ProbableAuthenticationError:
        raise BrokerError(f"a broker answers at {mask_url(url)} but refused the user name or "
                          "password; check the credentials in AMQP_URL (or in .env)") from None
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


def port_free(port: int) -> bool:
    """Whether a listener could bind the port now, with SO_REUSEADDR as RabbitMQ and haproxy
    bind (a port whose last connection waits out TIME_WAIT is free)."""
    with socket.socket() as attempt:
        attempt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            attempt.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_name(port: int) -> str:
    return f"fibrpc{port}@localhost"


def check_dist_port(port: int, error: type[BrokerError] = BrokerError) -> None:
    """Refuse to start our node on AMQP ``port`` when its distribution port is taken: it
    would only crash on start."""
    dist = port + DIST_PORT_OFFSET
    if not port_free(dist):
        raise error(f"the Erlang distribution port {dist} is taken, probably by a node named "
                    f"{node_name(port)} left from an earlier run that does not answer AMQP; stop "
                    "it (`python -m fibrpc_helpers broker stop`, or kill the beam.smp process) "
                    "and retry")


# --- installing ----------------------------------------------------------------------------

def find_server() -> str | None:
    """The ``rabbitmq-server`` script to start nodes with; None when it is not installed."""
    for directory in SCRIPT_DIRS:
        candidate = Path(directory) / "rabbitmq-server"
        if candidate.exists():
            return str(candidate)
    return shutil.which("rabbitmq-server")


def can_apt_install() -> bool:
    """Whether ``apt_install`` can work here: Debian or Ubuntu, as root."""
    return (sys.platform.startswith("linux") and Path("/etc/debian_version").exists()
            and shutil.which("apt-get") is not None and os.geteuid() == 0)


def found_or_installed(find: Callable[[], str | None], package: str,
                       error: type[BrokerError] = BrokerError) -> str | None:
    """``find()``, after ``apt_install(package)`` if it finds nothing and apt can install.
    None: not installed, and not installable from here."""
    found = find()
    if found is None and can_apt_install():
        apt_install(package, error)
        found = find()
    return found


def apt_install(package: str, error: type[BrokerError] = BrokerError) -> None:
    """``apt-get install PACKAGE`` (rabbitmq-server, haproxy), saying so; ``error`` if it fails."""
    print(f"{package} is not installed; installing it with apt-get (a minute or two)",
          flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        print(f"  $ {' '.join(command)}", flush=True)
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")[-2000:]
            raise error(f"`{' '.join(command)}` failed:\n{stderr}")


# --- configuring ---------------------------------------------------------------------------

def server_version(server: str | None) -> tuple[int, int] | None:
    """(major, minor) of the RabbitMQ whose ``rabbitmq-server`` this is, read from its folder
    (Debian: ``lib/rabbitmq_server-4.3.6/sbin``, Homebrew: ``Cellar/rabbitmq/4.3.0/sbin``), as
    ``node_config`` needs it before the node starts; None when the path does not say."""
    if server is None:
        return None
    found = re.search(r"rabbitmq(?:_server-|/)(\d+)\.(\d+)\.", str(Path(server).resolve()))
    return (int(found[1]), int(found[2])) if found else None


def node_config(port: int, version: tuple[int, int] | None, *, clustered: bool = False) -> str:
    """Our node's ``rabbitmq.conf``, each key only for the versions that know it (an unknown key
    stops a node). From 4.3 on, transient non-exclusive queues are denied as RabbitMQ ships 4.3
    (Debian's package permits them), so tests and notebooks meet the broker a student installs;
    and a cluster gets :data:`CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS`."""
    lines = [f"listeners.tcp.default = {port}", "loopback_users.guest = true",
             "log.console = false"]
    if version is not None and version >= (4, 3):
        lines.append("deprecated_features.permit.transient_nonexcl_queues = false")
        if clustered:
            timeout_ms = CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS
            lines.append(f"consumer_disconnected_timeout = {timeout_ms}")
    return "\n".join(lines) + "\n"


def node_environment(port: int, state_dir: Path, *, clustered: bool = False) -> dict[str, str]:
    """The environment that makes rabbitmq-server and rabbitmqctl keep everything of the node
    under ``state_dir``, even a crash dump (Erlang writes it into the folder it was started
    from otherwise: the user's)."""
    (state_dir / "home").mkdir(parents=True, exist_ok=True)
    (state_dir / "log").mkdir(exist_ok=True)
    (state_dir / "enabled_plugins").write_text("[].\n")  # no plugins: starts in seconds
    config = node_config(port, server_version(find_server()), clustered=clustered)
    (state_dir / "rabbitmq.conf").write_text(config)
    files = {"MNESIA_BASE": "mnesia", "LOG_BASE": "log", "PID_FILE": "rabbitmq.pid",
             "ENABLED_PLUGINS_FILE": "enabled_plugins", "CONFIG_FILE": "rabbitmq",
             "ADVANCED_CONFIG_FILE": "advanced.config", "CONF_ENV_FILE": "rabbitmq-env.conf"}
    return {
        **os.environ,
        **{f"RABBITMQ_{key}": str(state_dir / name) for key, name in files.items()},
        "HOME": str(state_dir / "home"),  # the Erlang cookie lives here, not in ~
        "ERL_CRASH_DUMP": str(state_dir / "log" / "erl_crash.dump"),
        "RABBITMQ_NODENAME": node_name(port),
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(port + DIST_PORT_OFFSET),
        "RABBITMQ_ALLOW_INPUT": "",
    }


# --- starting ------------------------------------------------------------------------------

def spawn_node(server: str, port: int, state_dir: Path, *, clustered: bool = False
               ) -> subprocess.Popen[bytes]:
    """Start rabbitmq-server for the node on ``port``, recorded in ``node.json`` (what
    ``stop_node`` reads); return at once (``wait_up`` waits)."""
    env = node_environment(port, state_dir, clustered=clustered)
    with open(state_dir / "log" / "server-output.log", "ab") as output:
        process = subprocess.Popen(
            [server], env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            cwd=state_dir,  # whatever else it writes where it runs lands here too
            start_new_session=True,  # survives the shell that ran `make`
        )
    record = {"pid": process.pid, "nodename": env["RABBITMQ_NODENAME"], "port": port}
    (state_dir / "node.json").write_text(json.dumps(record))
    return process


@dataclass
class Starting:
    """A node being started; ``process`` is None when another process started it."""

    name: str
    url: str  # reaches this node alone
    state_dir: Path
    process: subprocess.Popen[bytes] | None = None


def wait_up(nodes: Sequence[Starting], timeout: float = START_TIMEOUT, *,
            progress: bool = True, error: type[BrokerError] = BrokerError) -> None:
    """Return once every node accepts AMQP connections; ``error`` when one exits first or
    they are not all up within ``timeout``. ``progress``: a dot a second, then "ready"."""
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            if node.process is not None and node.process.poll() is not None:
                if progress:
                    print(" failed", flush=True)
                log = node.state_dir / "log"
                raise error(f"node {node.name} (rabbitmq-server) exited with code "
                            f"{node.process.returncode}; see {log / 'server-output.log'} and "
                            f"{log} for why")
            if probe(node.url, timeout=2.0) is not None:
                waiting.remove(node)
        if not waiting:
            if progress:
                print(" ready", flush=True)
            return
        if time.monotonic() > deadline:
            if progress:
                print(" timed out", flush=True)
            raise error(f"{', '.join(node.name for node in waiting)} did not accept AMQP "
                        f"connections within {timeout:g} s; see {waiting[0].state_dir / 'log'}")
        if progress:
            print(".", end="", flush=True)
        time.sleep(1.0)


# --- which process is ours, and stopping it ------------------------------------------------

def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs; a finished child not yet reaped (a zombie) does not."""
    import psutil  # here, not at the top: on Linux its import reads /proc, absent elsewhere
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it runs, as another user


def recorded_node(state_dir: Path) -> dict | None:
    """The node ``spawn_node`` recorded in ``state_dir``, if its process still runs and is that
    node (its environment names it), not another process that reuses its pid."""
    import psutil
    try:
        record = json.loads((state_dir / "node.json").read_text())
        environ = psutil.Process(int(record["pid"])).environ()
    except (OSError, ValueError, KeyError, psutil.Error):
        return None
    return record if environ.get("RABBITMQ_NODENAME") == record["nodename"] else None


def stop_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by ``pid`` (a node or the proxy, each in a session of
    its own); SIGKILL it if it still runs ``timeout`` seconds later."""
    import psutil
    try:
        os.killpg(pid, signal.SIGTERM)
        psutil.Process(pid).wait(timeout)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    except psutil.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def stop_node(state_dir: Path) -> str | None:
    """Stop the node recorded in ``state_dir``; its name, or None when none of ours runs."""
    record = recorded_node(state_dir)
    if record is None:
        return None
    stop_group(int(record["pid"]), 30)
    (state_dir / "node.json").unlink(missing_ok=True)
    return f"{record['nodename']} (pid {record['pid']})"
