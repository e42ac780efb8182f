"""RabbitMQ nodes of our own for :mod:`broker` (one) and :mod:`cluster` (three), Linux and macOS
only (:mod:`broker` says why). A node keeps everything, even a crash dump, under its state folder
(``.broker/`` or ``.broker/cluster-PORT/node-N/``), listens for AMQP on its port and for Erlang
nodes (``rabbitmqctl``, its cluster) on that port + 20000, and is named ``fibrpcPORT@localhost``."""

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
from collections.abc import Callable, Mapping
from pathlib import Path

import aiormq

from ..urls import amqp_url, mask_url, url_port

START_TIMEOUT = 120.0  # seconds a node may take from its start to its first AMQP connection
DIST_PORT_OFFSET = 20000  # Erlang distribution port = AMQP port + this, as 5672 -> 25672

# Debian's real scripts first (its /usr/sbin one insists on the `rabbitmq` user), then Homebrew's.
SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/opt/rabbitmq/sbin",
               "/opt/homebrew/opt/rabbitmq/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")

CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS = 5000
"""How long a quorum queue (RabbitMQ 4.3 on; before, no wait) waits to hand the deliveries of a
consumer on an unreachable node to another: not 4.3's 60 s, meant for network partitions, as our
nodes die only when killed and a demo's calls must carry on within their deadline."""


class BrokerError(RuntimeError):
    """No broker could be found or started; the message says what to do."""


async def probe_async(url: str | None = None, timeout: float = 3.0) -> str | None:
    """The broker's version if an AMQP connection to ``url`` succeeds, else None; BrokerError
    when it refuses the credentials. aiormq: a failed attempt leaves no half-made connection."""
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
    """Whether a listener could bind the port now, as RabbitMQ and haproxy do (SO_REUSEADDR)."""
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


def node_name(port: int) -> str:
    return f"fibrpc{port}@localhost"


def check_dist_port(port: int, error: type[BrokerError] = BrokerError) -> None:
    """``error`` when the distribution port of our node on ``port`` is taken: it would crash."""
    dist = port + DIST_PORT_OFFSET
    if not port_free(dist):
        raise error(f"the Erlang distribution port {dist} is taken, probably by a node named "
                    f"{node_name(port)} left from an earlier run that does not answer AMQP; stop "
                    "it (`python -m fibrpc_helpers broker stop`, or kill the beam.smp process) "
                    "and retry")


def find_server() -> str | None:
    """The ``rabbitmq-server`` script to start nodes with; None when it is not installed."""
    path = os.pathsep.join([*SCRIPT_DIRS, os.environ.get("PATH", os.defpath)])
    return shutil.which("rabbitmq-server", path=path)


def can_apt_install() -> bool:
    """Whether apt-get can install a package here: Debian or Ubuntu, as root."""
    return (sys.platform.startswith("linux") and Path("/etc/debian_version").exists()
            and shutil.which("apt-get") is not None and os.geteuid() == 0)


def found_or_installed(find: Callable[[], str | None], package: str,
                       error: type[BrokerError] = BrokerError) -> str | None:
    """``find()``, after ``apt-get install PACKAGE`` (saying so; ``error`` if it fails) when it
    finds nothing and apt can install. None: not installed, and not installable from here."""
    found = find()
    if found is not None or not can_apt_install():
        return found
    print(f"{package} is not installed; installing it with apt-get (a minute or two)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        print(f"  $ {' '.join(command)}", flush=True)
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")[-2000:]
            raise error(f"`{' '.join(command)}` failed:\n{stderr}")
    return find()


def server_version(server: str | None) -> tuple[int, int] | None:
    """(major, minor) of this ``rabbitmq-server``, from its folder as ``node_config`` needs it
    before a node starts (``rabbitmq_server-4.3.6/sbin``, ``rabbitmq/4.3.0/sbin``), else None."""
    if server is None:
        return None
    found = re.search(r"rabbitmq(?:_server-|/)(\d+)\.(\d+)\.", str(Path(server).resolve()))
    return (int(found[1]), int(found[2])) if found else None


def node_config(port: int, version: tuple[int, int] | None, *, clustered: bool = False) -> str:
    """Our node's ``rabbitmq.conf``, each key only for the versions that know it (an unknown key
    stops a node): 4.3's denial of transient non-exclusive queues, which Debian's package permits,
    and a cluster's :data:`CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS`."""
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
    under ``state_dir``, even the crash dump Erlang writes where it started otherwise."""
    (state_dir / "home").mkdir(parents=True, exist_ok=True)
    (state_dir / "log").mkdir(exist_ok=True)
    (state_dir / "enabled_plugins").write_text("[].\n")  # no plugins: starts in seconds
    config = node_config(port, server_version(find_server()), clustered=clustered)
    (state_dir / "rabbitmq.conf").write_text(config)
    files = {"MNESIA_BASE": "mnesia", "LOG_BASE": "log", "PID_FILE": "rabbitmq.pid",
             "ENABLED_PLUGINS_FILE": "enabled_plugins", "CONFIG_FILE": "rabbitmq",
             "ADVANCED_CONFIG_FILE": "advanced.config", "CONF_ENV_FILE": "rabbitmq-env.conf"}
    return {
        **os.environ, **{f"RABBITMQ_{key}": str(state_dir / name) for key, name in files.items()},
        "HOME": str(state_dir / "home"),  # the Erlang cookie lives here, not in ~
        "ERL_CRASH_DUMP": str(state_dir / "log" / "erl_crash.dump"),
        "RABBITMQ_NODENAME": node_name(port), "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(port + DIST_PORT_OFFSET),
        "RABBITMQ_ALLOW_INPUT": ""}


def spawn_node(server: str, port: int, state_dir: Path, *, clustered: bool = False
               ) -> subprocess.Popen[bytes]:
    """Start rabbitmq-server for the node on ``port``, recorded in ``node.json``; return at once."""
    env = node_environment(port, state_dir, clustered=clustered)
    with open(state_dir / "log" / "server-output.log", "ab") as output:
        process = subprocess.Popen(
            [server], env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            cwd=state_dir,  # whatever else it writes where it runs lands here too
            start_new_session=True)  # survives the shell that ran `make`
    record = {"pid": process.pid, "nodename": env["RABBITMQ_NODENAME"], "port": port}
    (state_dir / "node.json").write_text(json.dumps(record))
    return process


def start_nodes(server: str, state_dirs: Mapping[str, Path], *, clustered: bool = False,
                progress: bool = True, error: type[BrokerError] = BrokerError
                ) -> list[subprocess.Popen[bytes]]:
    """Start a node for each URL (its port) and folder; return once all accept AMQP connections,
    ``error`` when one exits or :data:`START_TIMEOUT` passes. ``progress``: a dot a second."""
    processes = {url: spawn_node(server, url_port(url), state_dir, clustered=clustered)
                 for url, state_dir in state_dirs.items()}
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(state_dirs)
    while True:
        for url in list(waiting):
            if processes[url].poll() is not None:
                if progress:
                    print(" failed", flush=True)
                log = state_dirs[url] / "log"
                raise error(f"node {node_name(url_port(url))} (rabbitmq-server) exited with code "
                            f"{processes[url].returncode}; see {log / 'server-output.log'} and "
                            f"{log} for why")
            if probe(url, timeout=2.0) is not None:
                waiting.remove(url)
        if not waiting:
            if progress:
                print(" ready", flush=True)
            return list(processes.values())
        if time.monotonic() > deadline:
            if progress:
                print(" timed out", flush=True)
            names = ", ".join(node_name(url_port(url)) for url in waiting)
            raise error(f"{names} did not accept AMQP connections within {START_TIMEOUT:g} s; "
                        f"see {state_dirs[waiting[0]] / 'log'}")
        if progress:
            print(".", end="", flush=True)
        time.sleep(1.0)


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
    """The node ``spawn_node`` recorded in ``state_dir`` if it runs (its environment names it)."""
    import psutil
    try:
        record = json.loads((state_dir / "node.json").read_text())
        environ = psutil.Process(int(record["pid"])).environ()
    except (OSError, ValueError, KeyError, psutil.Error):
        return None
    return record if environ.get("RABBITMQ_NODENAME") == record["nodename"] else None


def stop_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group (session) led by ``pid``; SIGKILL it ``timeout`` s later."""
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
