"""The teacher's solution cells, exactly as the notebooks hold them (nbgrader's markers
included), so that the tests run the very text a student edition is made from.

``CELLS[exercise]`` is a cell's source; ``run_cell(source)`` executes it in a namespace
holding what the notebook's first cell imported, as a kernel would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika

from fibrpc_helpers import fib

CALLBACK_QUEUE = '''\
class OneQueueClient:
    """A client of notebook 02: one callback queue for all its calls."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, request_queue_name: str) -> None:
        self.channel, self.request_queue_name = channel, request_queue_name
        self.replies: asyncio.Queue = asyncio.Queue()

    async def start(self) -> None:
        """Declare the callback queue (self.callback_queue) and consume it into self.replies."""
        ### BEGIN SOLUTION
        self.callback_queue = await self.channel.declare_queue(exclusive=True)
        await self.callback_queue.consume(self.replies.put, no_ack=True)
        ### END SOLUTION

    async def call(self, n: int) -> int:
        """Send fib(n) with a return address and wait (5 s at most) for the reply."""
        ### BEGIN SOLUTION
        request = aio_pika.Message(str(n).encode(), reply_to=self.callback_queue.name)
        await self.channel.default_exchange.publish(request, routing_key=self.request_queue_name)
        reply = await asyncio.wait_for(self.replies.get(), timeout=5)
        return int(reply.body)
        ### END SOLUTION
'''

CORRELATION_MAP = '''\
class MatchingClient:
    """A client of notebook 03: a future per correlation id; strays discarded and counted."""

    def __init__(self, channel, callback_queue, request_queue_name: str) -> None:
        self.channel, self.callback_queue = channel, callback_queue
        self.request_queue_name = request_queue_name
        self.pending: dict[str, asyncio.Future] = {}  # correlation id -> the future of its call
        self.discarded = 0  # replies that matched no waiting call

    async def on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        """Give a reply to the call waiting for it; count any other reply in discarded."""
        ### BEGIN SOLUTION
        future = self.pending.pop(message.correlation_id, None)
        if future is None or future.done():
            self.discarded += 1
            return
        future.set_result(message)
        ### END SOLUTION

    async def call(self, n: int, timeout: float = 5.0) -> int:
        """fib(n), computed by a worker; TimeoutError if no reply comes within timeout."""
        ### BEGIN SOLUTION
        correlation_id = uuid4().hex
        future = self.pending[correlation_id] = asyncio.get_running_loop().create_future()
        request = aio_pika.Message(
            str(n).encode(), correlation_id=correlation_id, reply_to=self.callback_queue.name
        )
        try:
            await self.channel.default_exchange.publish(
                request, routing_key=self.request_queue_name
            )
            return int((await asyncio.wait_for(future, timeout)).body)
        finally:
            self.pending.pop(correlation_id, None)
        ### END SOLUTION
'''

WORKER = '''\
async def serve_requests(channel: aio_pika.abc.AbstractChannel, request_queue_name: str) -> None:
    """Serve fib(n) on the request queue: reply, then ack; one request at a time; an error
    reply (type "error") for a body that is not a valid n. Returns once consuming."""
    ### BEGIN SOLUTION
    await channel.set_qos(prefetch_count=1)  # fair dispatch
    queue = await channel.declare_queue(request_queue_name, durable=True, arguments=quorum)

    async def on_request(request: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            reply = aio_pika.Message(
                str(fib(int(request.body))).encode(), correlation_id=request.correlation_id
            )
        except ValueError as error:  # not a number, or a negative one
            reply = aio_pika.Message(
                str(error).encode(), correlation_id=request.correlation_id, type="error"
            )
        await channel.default_exchange.publish(reply, routing_key=request.reply_to)
        await request.ack()  # only now: the reply is with the broker

    await queue.consume(on_request)
    ### END SOLUTION
'''

CHARGE = '''\
%%writefile {charge_file}
import sqlite3


def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
    """Charge cents once per key; return the reply stored with that key's first charge.

    The table is charges (key TEXT, cents INTEGER, reply INTEGER): no UNIQUE constraint
    does it for you.
    """
    ### BEGIN SOLUTION
    with database:  # one transaction: the check, the charge and its reply together
        added = database.execute(
            "INSERT INTO charges (key, cents) SELECT ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM charges WHERE key = ?)",
            (key, cents, key),
        )
        if not added.rowcount:  # charged before under this key: the reply it got then
            query = "SELECT reply FROM charges WHERE key = ?"
            return database.execute(query, (key,)).fetchone()[0]
        (total,) = database.execute("SELECT SUM(cents) FROM charges").fetchone()
        database.execute("UPDATE charges SET reply = ? WHERE rowid = ?",
                         (total, added.lastrowid))
        return total
    ### END SOLUTION
'''

CELLS = {
    "callback_queue": CALLBACK_QUEUE,
    "correlation_map": CORRELATION_MAP,
    "worker": WORKER,
    "charge": CHARGE,
}


def notebook_globals() -> dict[str, Any]:
    """What the notebooks' first cells import, for a cell run outside a kernel."""
    from uuid import uuid4

    return {"asyncio": asyncio, "aio_pika": aio_pika, "fib": fib, "uuid4": uuid4,
            "quorum": {"x-queue-type": "quorum"}, "charge_file": "charge_once.py"}


def run_cell(source: str, into: dict[str, Any] | None = None, folder: Any = None) -> dict:
    """Execute a cell's source as a kernel would: ``%%writefile NAME`` writes the rest to
    ``folder / NAME``; anything else runs in a namespace of the notebooks' imports."""
    namespace = notebook_globals() if into is None else into
    first, _, rest = source.partition("\n")
    if first.startswith("%%writefile "):  # IPython expands {name} from the namespace too
        (folder / first.split()[1].format(**namespace)).write_text(rest)
        return namespace
    exec(compile(source, "<cell>", "exec"), namespace)
    return namespace
