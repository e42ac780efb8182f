"""``python -m fibrpc_helpers.exercises.charging_worker QUEUE DATABASE NAME MODULE [--dies...]``

The worker of the idempotency exercise: notebook 06's charging worker, with the student's
``charge(database, cents, key)`` loaded from MODULE (the file their ``%%writefile`` cell
wrote). It runs as a process of its own, as a real worker does: whatever the student's
module keeps in memory is this process's alone, which is the point of the exercise.

It finds the broker in ``$AMQP_URL``, holds the lifeline of every child of ours (it ends
with the kernel that started it), prints ``ready`` once consuming, and answers each request
with the total ``charge`` returns, or with an error reply naming the exception ``charge``
raised; it prints ``charging`` as it calls ``charge``. ``--dies-after-reply`` exits right
after its first reply, before the ack, as a crash would. ``--holds-first-insert`` stops
inside the student's ``charge`` when it is about to insert into ``charges`` for the first
time (SQLite's authorizer is asked as each statement is prepared, before it runs), prints
``holding``, and goes on when its parent writes a line on its stdin: the check runs a
second worker meanwhile, which is how a retry that arrives while the first try is still
running meets a lookup and an insert made apart.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sqlite3
import threading
from pathlib import Path
from types import ModuleType

import aio_pika

from ..lab.runtime import hold_lifeline
from ..wire import ERROR_TYPE

HOLD_SECONDS = 120.0  # a worker started by hand, with no parent to release it, goes on then


def load(path: Path) -> ModuleType:
    """The student's module, imported from its file under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"student_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}: is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hold_first_insert(database: sqlite3.Connection, release: threading.Event) -> None:
    """Stop the first statement that inserts into ``charges``, as it is prepared, until
    ``release``. Only that table: a CREATE TABLE IF NOT EXISTS writes to SQLite's own
    ``sqlite_master``, and stopping there would stop before the lookup."""
    held = False

    def authorize(action: int, table: str | None, *_details: object) -> int:
        nonlocal held
        if action == sqlite3.SQLITE_INSERT and table == "charges" and not held:
            held = True
            print("holding", flush=True)
            release.wait(HOLD_SECONDS)
        return sqlite3.SQLITE_OK

    database.set_authorizer(authorize)


async def serve(options: argparse.Namespace, release: threading.Event) -> None:
    student = load(options.module)
    database = sqlite3.connect(options.database, timeout=10)  # this process's own connection
    if options.holds_first_insert:
        hold_first_insert(database, release)
    async with await aio_pika.connect(os.environ["AMQP_URL"]) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)
        queue = await channel.declare_queue(options.queue, passive=True)
        async with queue.iterator() as requests:
            print("ready", flush=True)
            async for request in requests:
                print("charging", flush=True)
                try:
                    total = student.charge(database, int(request.body), request.message_id)
                    reply = aio_pika.Message(str(total).encode(), app_id=options.name,
                                             correlation_id=request.correlation_id)
                except Exception as error:  # the student's charge failed: say how
                    reason = f"{type(error).__name__}: {error}".rstrip(": ")
                    reply = aio_pika.Message(reason.encode(), app_id=options.name, type=ERROR_TYPE,
                                             correlation_id=request.correlation_id)
                await channel.default_exchange.publish(reply, routing_key=request.reply_to or "")
                if options.dies_after_reply:
                    os._exit(1)  # as a crash would: no ack, no goodbye
                await request.ack()


def main() -> None:
    parser = argparse.ArgumentParser(description="The idempotency exercise's charging worker.")
    parser.add_argument("queue")
    parser.add_argument("database")
    parser.add_argument("name")
    parser.add_argument("module", type=Path, help="the file that defines charge()")
    parser.add_argument("--dies-after-reply", action="store_true")
    parser.add_argument("--holds-first-insert", action="store_true")
    options = parser.parse_args()
    release = threading.Event()
    hold_lifeline(on_data=lambda _line: release.set())
    asyncio.run(serve(options, release))


if __name__ == "__main__":
    main()
