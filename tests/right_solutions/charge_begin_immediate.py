# the workers-fail notebook: a right charge other than the teacher's: the write lock taken first
import sqlite3


def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
    database.isolation_level = None  # we say when a transaction begins
    database.execute("BEGIN IMMEDIATE")  # the write lock first: nobody looks up meanwhile
    try:
        stored = database.execute("SELECT reply FROM charges WHERE key = ?", (key,)).fetchone()
        if stored is not None:
            database.execute("COMMIT")
            return stored[0]
        added = database.execute("INSERT INTO charges (key, cents) VALUES (?, ?)", (key, cents))
        (total,) = database.execute("SELECT SUM(cents) FROM charges").fetchone()
        database.execute("UPDATE charges SET reply = ? WHERE rowid = ?", (total, added.lastrowid))
        database.execute("COMMIT")
        return total
    except BaseException:
        database.execute("ROLLBACK")
        raise
