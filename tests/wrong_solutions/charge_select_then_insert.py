# the workers-fail notebook: the key looked up, then the charge inserted, in two statements.
# Right one at a time; wrong when a retry runs while the first try is between the two.
import sqlite3


def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
    with database:
        stored = database.execute("SELECT reply FROM charges WHERE key = ?", (key,)).fetchone()
        if stored is not None:
            return stored[0]
        added = database.execute("INSERT INTO charges (key, cents) VALUES (?, ?)", (key, cents))
        (total,) = database.execute("SELECT SUM(cents) FROM charges").fetchone()
        database.execute("UPDATE charges SET reply = ? WHERE rowid = ?", (total, added.lastrowid))
        return total
