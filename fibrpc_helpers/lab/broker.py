"""Make sure a RabbitMQ broker answers at ``AMQP_URL``: find one, or start our own node
(:mod:`nodes`) on the URL's port, its state in ``.broker/`` (README: The broker). Starting and
stopping it needs POSIX process groups and signals: on Windows RabbitMQ runs as a service, so
``ensure`` there only checks that a broker answers, or says how to get one."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiormq.exceptions

from ..urls import PROJECT_DIR, amqp_url, mask_url, url_host, url_port
from . import nodes

# what callers of the single node use, kept in nodes for the cluster too
from .nodes import (  # noqa: F401
    CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS,
    BrokerError,
    node_config,
    port_free,
    probe,
    probe_async,
    server_version,
)

log = logging.getLogger(__name__)


def default_state_dir() -> Path:
    """Where our node keeps its data: ``$FIBRPC_BROKER_DIR``, else ``.broker/``."""
    return Path(os.environ.get("FIBRPC_BROKER_DIR") or PROJECT_DIR / ".broker")


# How to install RabbitMQ, per platform: one entry per way.
_INSTALL = {
    "linux": ["Debian/Ubuntu:  sudo apt-get install rabbitmq-server\n"
              "(as root, `broker ensure` runs apt-get itself)",
              "other Linux:    your distribution's rabbitmq-server package"],
    "darwin": ["macOS:          brew install rabbitmq   (Homebrew; `broker ensure` then starts a\n"
               "node of its own from it, with its data in .broker/)"],
    "win32": [
        "Windows:        RabbitMQ's installer (https://www.rabbitmq.com/docs/install-windows;\n"
        "it needs Erlang first) or `choco install rabbitmq`. Both run RabbitMQ as a\n"
        "Windows service that starts by itself; if it is installed but stopped, start\n"
        "the RabbitMQ service in the Services panel.",
    ],
}


def how_to_get_one(url: str, platform: str | None = None) -> str:
    """What to do when nothing answers at the local ``url`` and no node can start here."""
    platform = platform or sys.platform
    key = "win32" if platform.startswith("win") else "darwin" if platform == "darwin" else "linux"
    why = ("this project starts no node of its own on Windows" if key == "win32"
           else "rabbitmq-server is not installed")
    ways = [*_INSTALL[key], "Docker:         docker run -d --name rabbitmq -p 5672:5672 rabbitmq:4"]
    return "\n".join([
        f"No RabbitMQ broker answers at {mask_url(url)}, and {why}.",
        "Get one, then run `python -m fibrpc_helpers broker ensure` again:",
        *("  * " + way.replace("\n", "\n                    ") for way in ways),
        "Or use a broker you already have (the class broker): put its URL in a file named .env",
        "at the project root, one line:",
        "  AMQP_URL=amqp://user:password@broker.example.org:5672/vhost",
        "or set the AMQP_URL environment variable (README: Teaching with this series).",
    ])


def can_start_nodes() -> bool:
    """Whether we can start and stop a node of our own here (POSIX: see the module docstring)."""
    return os.name == "posix"


@dataclass
class BrokerInfo:
    url: str
    version: str | None  # None when nothing answers
    started_by_us: bool


def status(url: str | None = None, state_dir: Path | None = None) -> BrokerInfo:
    """Whether a broker answers at the URL, its version, and whether ``ensure`` started it."""
    url = amqp_url(url)
    record = nodes.recorded_node(state_dir or default_state_dir()) if can_start_nodes() else None
    started_by_us = record is not None and record["port"] == url_port(url)
    return BrokerInfo(url, probe(url), started_by_us)


def ensure(url: str | None = None, state_dir: Path | None = None) -> BrokerInfo:
    """Return once a broker answers at the URL, starting (and installing) one if needed."""
    url = amqp_url(url)
    state_dir = state_dir or default_state_dir()
    if probe(url) is not None:
        return status(url, state_dir)
    if url_host(url) not in ("localhost", "127.0.0.1", "::1"):
        raise BrokerError(f"no RabbitMQ broker answers at {mask_url(url)}. It is not on this "
                          "machine, so it cannot be started from here: check the host, port and "
                          "credentials in AMQP_URL.")
    if not can_start_nodes():
        raise BrokerError(how_to_get_one(url))
    server = nodes.found_or_installed(nodes.find_server, "rabbitmq-server")
    if server is None:
        raise BrokerError(how_to_get_one(url))
    if probe(url) is not None:  # a package just installed may start a broker of its own
        return status(url, state_dir)
    port = url_port(url)
    nodes.check_dist_port(port)
    state_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting a RabbitMQ node on port {port} (data and logs in {state_dir.name}/) ",
          end="", flush=True)
    nodes.start_nodes(server, {url: state_dir})
    return status(url, state_dir)


def stop(state_dir: Path | None = None) -> str:
    """Stop the node that ``ensure`` started; leave any other broker alone."""
    state_dir = state_dir or default_state_dir()
    if not can_start_nodes():
        return ("this project starts no RabbitMQ node on Windows; nothing stopped (to stop "
                "RabbitMQ itself, stop the RabbitMQ service in the Services panel)")
    stopped = nodes.stop_node(state_dir)
    if stopped is None:
        return "no RabbitMQ node started by this project is running; nothing stopped"
    return f"stopped the RabbitMQ node {stopped} that this project started"


def describe(info: BrokerInfo) -> str:
    """One line for people: where the broker is, its version, and who started it."""
    where = mask_url(info.url)
    if info.version is None:
        return f"no broker answers at {where}"
    if info.started_by_us:
        return f"RabbitMQ {info.version} at {where}, started by this project (.broker/)"
    return f"RabbitMQ {info.version} at {where}, not started by this project"


def describe_transient_queues(url: str | None = None) -> str:
    """One line for ``broker status``: does this broker take aio-pika's docs' request queue?"""
    from ..request_queue import transient_queues_permitted

    if asyncio.run(transient_queues_permitted(amqp_url(url))):
        return ("transient non-exclusive queues: permitted (aio-pika's own tutorial six can "
                "declare its rpc_queue here)")
    return ("transient non-exclusive queues: denied, as RabbitMQ 4.3 ships (aio-pika's own "
            "tutorial six cannot declare its rpc_queue here)")


async def delete_queues(url: str, names: Sequence[str], seconds: float = 10.0) -> None:
    """Delete the named queues, each on a channel of its own (a refused delete closes it), each
    step within ``seconds``; a queue gone or exclusive elsewhere is passed over, others logged."""
    if not names:
        return
    async with asyncio.timeout(seconds):
        connection = await aio_pika.connect(url)
    async with connection:
        for name in names:
            async with asyncio.timeout(seconds):
                channel = await connection.channel()
            try:
                async with asyncio.timeout(seconds):
                    await channel.queue_delete(name)
            except (aiormq.exceptions.ChannelNotFoundEntity,
                    aiormq.exceptions.ChannelLockedResource):
                pass
            except (aio_pika.exceptions.AMQPError, TimeoutError) as error:
                log.warning("queue %r was left on the broker at %s: %r", name, mask_url(url), error)
            finally:
                if not channel.is_closed:
                    await channel.close()
