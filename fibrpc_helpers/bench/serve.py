"""The benchmark's other fib workers (the reference is ``python -m fibrpc_helpers worker``).

``python -m fibrpc_helpers.bench.serve patterns|raw-aiormq --queue Q`` starts, says it serves
and stops as the reference does."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

import aiormq
from aio_pika.patterns import JsonRPC
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from ..client import connect_robust
from ..fib import fib
from ..lab.processes import READY, worker_command
from ..lab.runtime import LOOPS, parent_gone, run
from ..request_queue import transient_queues_permitted
from ..urls import amqp_url
from ..wire import decode_request, encode_result

__all__ = ["READY", "command", "main"]


def command(server: str, *, queue: str, loop: str = "asyncio", prefetch: int | None = None,
            work: str = "fast", sleep_ms: float = 0.0, queue_type: str | None = None) -> list[str]:
    """One worker process's command line; like ``worker_command``'s it names no broker."""
    if server == "reference":
        return worker_command(queue=queue, prefetch=prefetch or 1, work=work,
                              sleep_ms=sleep_ms, queue_type=queue_type, loop=loop)
    line = [sys.executable, "-m", "fibrpc_helpers.bench.serve", server, "--queue", queue,
            "--loop", loop, "--sleep-ms", f"{sleep_ms:g}"]
    if prefetch is not None:
        line += ["--prefetch", str(prefetch)]
    if queue_type is not None:
        line += ["--queue-type", queue_type]
    return line


async def _queue_options(options: argparse.Namespace) -> dict[str, Any]:
    """How to declare the request queue, as the reference worker does (``request_queue``)."""
    if options.queue_type == "quorum":
        return {"durable": True, "arguments": {"x-queue-type": "quorum"}}
    return {"durable": not await transient_queues_permitted(amqp_url(options.url))}


async def _serve_until_stopped(name: str, options: argparse.Namespace) -> None:
    """Say it serves, then return on SIGTERM or SIGINT, or when the parent process is gone."""
    print(f"worker {name}:{os.getpid()} is serving queue {options.queue!r} on {options.loop}",
          flush=True)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    orphaned = asyncio.ensure_future(parent_gone())
    orphaned.add_done_callback(lambda _: stopping.set())
    try:
        await stopping.wait()
    finally:
        orphaned.cancel()
        await asyncio.wait((orphaned,))


async def _patterns(options: argparse.Namespace) -> None:
    """Registers ``fib`` under the queue's name with ``JsonRPC`` and serves it."""
    connection = await connect_robust(options.url)
    try:
        channel = await connection.channel()
        if options.prefetch:
            await channel.set_qos(prefetch_count=options.prefetch)
        # Its result queue exclusive, as the client's (``designs.PatternsClient`` says why).
        rpc = await JsonRPC.create(channel, exclusive=True)

        async def fib_call(*, n: int) -> int:
            if options.sleep_ms:
                await asyncio.sleep(options.sleep_ms / 1000)
            return fib(n)

        declare = await _queue_options(options)
        # As aio-pika declares it (auto-deleted), but a quorum queue never is.
        await rpc.register(options.queue, fib_call,
                           auto_delete=options.queue_type != "quorum", **declare)
        await _serve_until_stopped("patterns", options)
        await rpc.close()
    finally:
        await connection.close()


async def _raw_aiormq(options: argparse.Namespace) -> None:
    """aiormq alone: no confirms, one ack per request, a request it cannot read dropped."""
    connection = await aiormq.connect(amqp_url(options.url))
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.basic_qos(prefetch_count=options.prefetch or 1)
        await channel.queue_declare(options.queue, **await _queue_options(options))

        async def on_request(message: DeliveredMessage) -> None:
            asked = message.header.properties
            try:
                result = encode_result(fib(decode_request(message.body)))
            except ValueError:
                result = b""
            if result and asked.reply_to:
                await channel.basic_publish(
                    result, routing_key=asked.reply_to,
                    properties=Basic.Properties(correlation_id=asked.correlation_id))
            await channel.basic_ack(message.delivery.delivery_tag)

        await channel.basic_consume(options.queue, on_request)
        await _serve_until_stopped("raw-aiormq", options)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> None:
    arguments = argparse.ArgumentParser(description="the benchmark's other fib workers")
    arguments.add_argument("server", choices=("patterns", "raw-aiormq"))
    arguments.add_argument("--queue", required=True)
    arguments.add_argument("--url")
    arguments.add_argument("--loop", choices=LOOPS, default="asyncio")
    arguments.add_argument("--prefetch", type=int)
    arguments.add_argument("--sleep-ms", type=float, default=0.0)
    arguments.add_argument("--queue-type", choices=("quorum", "classic"))
    options = arguments.parse_args(argv)
    run((_patterns if options.server == "patterns" else _raw_aiormq)(options), options.loop)


if __name__ == "__main__":
    main()
