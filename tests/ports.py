"""Ports for the servers that tests start of their own: RabbitMQ nodes, haproxy, JupyterLab.

Why not a port the kernel hands out (bind to 0), or any port that is free right now? A node
takes tens of seconds to start, and meanwhile every outgoing connection on the machine (the
nodes' own Erlang distribution links among them) takes a local port from the kernel's
ephemeral range. A port chosen inside that range can be free when checked and taken when the
node or haproxy binds it ("Address already in use"). So tests choose their ports below the
ephemeral range, where the kernel never hands one out, together with the Erlang distribution
port RabbitMQ derives from each (AMQP port + 20000), which must be below it too.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fibrpc_helpers.lab.broker import port_free

DIST_OFFSET = 20000  # RabbitMQ's distribution port is the AMQP port + 20000
LOWEST = 10000  # below this are ports that well-known services use


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux: 32768 unless configured)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_block(size: int) -> int:
    """A base port P with P .. P+size-1 free, and P+20000 .. P+size-1+20000 free, all below
    the ephemeral range. The start is random so that test runs side by side rarely collide."""
    highest = ephemeral_low() - DIST_OFFSET - size
    if highest <= LOWEST:
        pytest.skip(f"not run: the ephemeral port range starts at {ephemeral_low()}, too low "
                    "to give a RabbitMQ node and its distribution port (+20000) fixed ports")
    bases = list(range(LOWEST, highest, size + 1))
    random.shuffle(bases)
    for base in bases:
        ports = [base + i for i in range(size)]
        if all(port_free(port) and port_free(port + DIST_OFFSET) for port in ports):
            return base
    pytest.fail(f"no {size} free ports with free distribution ports between {LOWEST} and "
                f"{highest}; stop the RabbitMQ nodes left over by earlier runs")
