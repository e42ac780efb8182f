# the workers-fail notebook: the lookup and the insert in one transaction, but a deferred one
# (plain BEGIN): it takes the write lock only at the INSERT, after the SELECT, so two of them
# at once both read first, and SQLite fails one as it tries to write ("database is locked")
import sqlite3


def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
    database.execute("BEGIN")
    try:
        stored = database.execute("SELECT reply FROM charges WHERE key = ?", (key,)).fetchone()
        if stored is not None:
            database.commit()
            return stored[0]
        added = database.execute("INSERT INTO charges (key, cents) VALUES (?, ?)", (key, cents))
        (total,) = database.execute("SELECT SUM(cents) FROM charges").fetchone()
        database.execute("UPDATE charges SET reply = ? WHERE rowid = ?", (total, added.lastrowid))
        database.commit()
        return total
    except BaseException:
        database.rollback()
        raise
