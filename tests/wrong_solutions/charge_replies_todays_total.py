# the workers-fail notebook: charged once per key, but a repeated key is told today's total
import sqlite3


def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
    with database:
        database.execute(
            "INSERT INTO charges (key, cents) SELECT ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM charges WHERE key = ?)",
            (key, cents, key),
        )
        return database.execute("SELECT SUM(cents) FROM charges").fetchone()[0]
