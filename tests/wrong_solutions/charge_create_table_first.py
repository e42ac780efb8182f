# the workers-fail notebook: SELECT, then INSERT, after making sure the table exists (a
# write to SQLite's own sqlite_master, even when the table is there: nothing is charged yet)
import sqlite3


def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
    database.execute("CREATE TABLE IF NOT EXISTS charges (key TEXT, cents INTEGER NOT NULL, "
                     "reply INTEGER)")
    with database:
        stored = database.execute("SELECT reply FROM charges WHERE key = ?", (key,)).fetchone()
        if stored is not None:
            return stored[0]
        added = database.execute("INSERT INTO charges (key, cents) VALUES (?, ?)", (key, cents))
        (total,) = database.execute("SELECT SUM(cents) FROM charges").fetchone()
        database.execute("UPDATE charges SET reply = ? WHERE rowid = ?", (total, added.lastrowid))
        return total
