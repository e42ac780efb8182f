"""Exercise of the workers-fail notebook: charge once per key, across worker processes.

The student completes ``charge`` in a file their cell writes (``%%writefile {charge_file}``),
as notebook 06 writes its charging worker::

    def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
        '''Charge cents once per key; the reply stored with that key's first charge.'''

The table is ``charges (key TEXT, cents INTEGER NOT NULL, reply INTEGER)``, with no UNIQUE
constraint (06's own table has one): keeping one charge per key is the student's code's job.
The check runs it in two worker processes (:mod:`.charging_worker`) sharing one database
file. Worker A charges order-1, replies and dies before its ack; worker B gets the
redelivered request; then a client sends order-1 again (a retry: a new correlation id, the
same key), order-2, and order-1 once more. The database must hold one charge per key, a
new key's reply is the total charged, and a repeated key gets its first reply back.

Last, a retry that arrives while the first try is still running: worker C takes order-3 and
stops just before it inserts; worker D, on the same database, gets order-3's retry meanwhile.
A charge that looks the key up, then inserts (two statements, no write lock between them)
charges it twice; one statement, or ``BEGIN IMMEDIATE``, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import tempfile
from pathlib import Path

from ..lab.runtime import Child, ChildError, ProcessGroup
from ..wire import ERROR_TYPE
from .awkward import RawClient
from .live import Playground
from .verdict import ExerciseFailed, failure, passed

NOTEBOOK = "06_when_workers_fail"
SECONDS = 10.0
START_SECONDS = 30.0
RETRY_SECONDS = 3.0  # how long worker D's charge may take while worker C holds its insert
SCHEMA = "CREATE TABLE charges (key TEXT, cents INTEGER NOT NULL, reply INTEGER)"
ONE_WRITE = ("look up and insert in one statement (INSERT ... SELECT ... WHERE NOT EXISTS), "
             "or in a transaction begun with BEGIN IMMEDIATE: `with database:` begins its "
             "transaction only at the first write, after the SELECT")
STUB = ("in the database every worker shares, insert the charge only when no charge with this "
        "key is there (" + ONE_WRITE + "); store SUM(cents) as its reply, and return the "
        "stored reply when the key was charged before")
DICT = ("the key was remembered in worker A's memory only (a dict or a set?), and worker B "
        "has its own: look the key up in the database every worker shares, in the same "
        "statement as the charge or a BEGIN IMMEDIATE transaction")
LOCKED = ("worker C's charge of order-3 failed with 'database is locked': its transaction "
          "read the key first, then tried to write while worker D was writing, and SQLite "
          "refuses to turn a reader into a writer rather than deadlock")


class _Run:
    """The two worker processes, the database and the client of one check."""

    def __init__(self, module: Path, folder: Path, client: RawClient) -> None:
        self.module, self.client = module, client
        self.database = folder / "charges.db"
        self.log = open(folder / "workers.log", "a+")  # noqa: SIM115 (closed by close())
        self.group = ProcessGroup(stderr=self.log)
        with contextlib.closing(sqlite3.connect(self.database)) as bank, bank:
            bank.execute(SCHEMA)

    async def worker(self, name: str, *options: str) -> Child:
        command = [sys.executable, "-m", "fibrpc_helpers.exercises.charging_worker",
                   self.client.request_queue, str(self.database), name, str(self.module),
                   *options]
        child = self.group.spawn(command, name=name, env={"AMQP_URL": self.client_url})
        try:
            await asyncio.to_thread(self.group.wait_ready, [child], "ready", START_SECONDS)
        except ChildError:
            raise failure(f"{name} could not start with {self.module.name}: "
                          f"{self.last_log_line()}", "run the %%writefile cell again, and "
                          "check that the file imports", NOTEBOOK) from None
        return child

    client_url = ""

    def rows(self, key: str | None) -> list[int]:
        with contextlib.closing(sqlite3.connect(self.database)) as bank:
            if key is None:
                query = bank.execute("SELECT cents FROM charges WHERE key IS NULL")
            else:
                query = bank.execute("SELECT cents FROM charges WHERE key = ?", (key,))
            return [cents for (cents,) in query]

    def last_log_line(self) -> str:
        self.log.flush()
        self.log.seek(0)
        lines = [line for line in self.log.read().splitlines() if line.strip()]
        return lines[-1] if lines else "it exited without a word"

    async def close(self) -> None:
        await asyncio.to_thread(self.group.stop, 5.0)
        self.log.close()


async def check_idempotency(module: str | Path, url: str | None = None) -> str:
    """Check ``charge(database, cents, key)`` in the file ``module`` (the %%writefile cell's).
    Prints and returns the line of success; raises ExerciseFailed naming the mistake."""
    path = Path(module).resolve()
    if not path.is_file():
        raise failure(f"there is no file {module}", "run the %%writefile cell above first",
                      NOTEBOOK)
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as error:
        raise failure(f"{path.name} does not compile: {error.msg} (line {error.lineno})",
                      "fix it and run its cell again", NOTEBOOK) from None
    with tempfile.TemporaryDirectory(prefix="fibrpc-charge-") as folder:
        async with Playground("charge", url) as lab:
            client = await RawClient(await lab.channel(), "").start()
            client.request_queue = await lab.declare_request_queue(client.channel)
            run = _Run(path, Path(folder), client)
            run.client_url = lab.url
            try:
                await _race(run)
                client.request_queue = await lab.declare_request_queue(client.channel,
                                                                       "rpc-concurrent")
                await _concurrent_retry(run)
            finally:
                await run.close()
    return passed("order-1 charged once although worker A died before its ack and worker B "
                  "ran it again, and once more on a retry; order-2 charged once; a repeated "
                  "key got its first reply back; order-3 charged once although its retry "
                  "reached worker D while worker C was charging it")


async def _reply(run: _Run, correlation_id: str, what: str, count: int = 1) -> int:
    replies = await run.client.replies_to(correlation_id, count, SECONDS)
    if replies is None:
        raise failure(f"no reply to {what} within {SECONDS:g} s ({run.last_log_line()})",
                      "charge must return the total quickly and never wait", NOTEBOOK)
    reply = replies[-1]
    text = reply.body.decode(errors="replace")
    if reply.type == ERROR_TYPE:
        if text.startswith("NotImplementedError"):
            raise failure("charge is not written yet (it raises NotImplementedError)", STUB,
                          NOTEBOOK)
        raise failure(f"charge raised {text} on {what}", STUB, NOTEBOOK)
    try:
        return int(text)
    except ValueError:
        raise failure(f"charge returned {text!r} on {what}, not a number of cents",
                      "return SUM(cents) of the table", NOTEBOOK) from None


async def _race(run: _Run) -> None:
    client = run.client
    worker_a = await run.worker("worker A", "--dies-after-reply")
    first = await client.send(b"500", key="order-1")
    await _reply(run, first, "order-1 (500 cents)")
    try:
        await asyncio.wait_for(asyncio.to_thread(worker_a.process.wait), SECONDS)
    except TimeoutError:
        raise ExerciseFailed("worker A did not die after its reply; the check is broken, "
                             "not your code") from None
    await run.worker("worker B")
    await _reply(run, first, "order-1 again, redelivered to worker B after A died", count=2)
    if run.rows(None):
        raise failure("charges were stored without their key (key is NULL)",
                      "insert the key given to charge with the cents", NOTEBOOK)
    if len(run.rows("order-1")) > 1:
        raise failure("order-1 was charged twice: by worker A, then by worker B, which got "
                      "the request again when A died before its ack", DICT, NOTEBOOK)
    if not run.rows("order-1"):
        raise failure("order-1 was never charged", "insert the charge when its key is new, "
                      "and commit it (use `with database:`)", NOTEBOOK)
    retry = await client.send(b"500", key="order-1")
    await _reply(run, retry, "a retry of order-1 (a new correlation id, the same key)")
    if len(run.rows("order-1")) > 1:
        raise failure("a retry of order-1 (a new correlation id, the same key) charged it "
                      "again", "decide by the key, never by the correlation id, and look it "
                      "up in the database", NOTEBOOK)
    second = await client.send(b"700", key="order-2")
    total = await _reply(run, second, "order-2 (700 cents)")
    if run.rows("order-2") != [700] or run.rows("order-1") != [500]:
        raise failure(f"the table holds order-1: {run.rows('order-1')}, order-2: "
                      f"{run.rows('order-2')} (cents), not one charge each",
                      "insert each new key's charge once, with its cents", NOTEBOOK)
    if total != 1200:
        raise failure(f"charge returned {total} after order-2, though 1200 cents were charged "
                      "in all", "a new key's reply is SELECT SUM(cents) FROM charges", NOTEBOOK)
    again = await client.send(b"500", key="order-1")
    repeated = await _reply(run, again, "order-1 once more, after order-2")
    if repeated != 500:
        raise failure(f"order-1 asked again after order-2 got {repeated}, not its first reply "
                      "500: a repeated key must get the reply it got the first time, whenever "
                      "it comes", "store the reply with the key, and return it for a repeated "
                      "key", NOTEBOOK)


async def _concurrent_retry(run: _Run) -> None:
    client = run.client
    worker_c = await run.worker("worker C", "--holds-first-insert")
    first = await client.send(b"300", key="order-3")
    try:
        try:
            await asyncio.to_thread(run.group.wait_ready, [worker_c], "holding", SECONDS)
        except ChildError:
            raise failure(f"worker C never inserted a charge for the new key order-3 "
                          f"({run.last_log_line()})", STUB, NOTEBOOK) from None
        # C holds order-3 unacked (prefetch 1), so its retry goes to worker D.
        worker_d = await run.worker("worker D")
        retry = await client.send(b"300", key="order-3")
        try:
            await asyncio.to_thread(run.group.wait_ready, [worker_d], "charging", SECONDS)
        except ChildError:
            raise failure(f"worker D never started on order-3's retry ({run.last_log_line()})",
                          STUB, NOTEBOOK) from None
        # D's charge ends at once, unless C's write lock holds it (BEGIN IMMEDIATE): then C
        # must go on first, and D after it.
        await client.replies_to(retry, 1, RETRY_SECONDS)
    finally:
        _release(worker_c)
    try:
        late = await _reply(run, first, "order-3, by worker C, while its retry ran")
    except ExerciseFailed as failed:
        if "database is locked" in str(failed):
            raise failure(LOCKED, "begin the transaction with BEGIN IMMEDIATE (the write lock "
                          "first), or look up and insert in one statement", NOTEBOOK) from None
        raise
    answer = await _reply(run, retry, "order-3's retry, by worker D meanwhile")
    if len(run.rows("order-3")) > 1:
        raise failure("order-3 was charged twice: its retry reached worker D while worker C, "
                      "between looking the key up and inserting, had found it new, and both "
                      "inserted", ONE_WRITE, NOTEBOOK)
    if late != answer:
        raise failure(f"order-3's two tries got different replies ({late} and {answer})",
                      "a repeated key gets the reply stored with its first charge", NOTEBOOK)


def _release(child: Child) -> None:
    """Let a holding worker go on (a line on its stdin), if it still runs."""
    if child.running:
        try:
            child.write("go")
        except (OSError, ValueError):  # its stdin closed meanwhile: it is ending anyway
            pass
