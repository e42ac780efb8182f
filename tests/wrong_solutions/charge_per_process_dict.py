# the workers-fail notebook: idempotency kept in this process's memory
import sqlite3

charged: dict[str, int] = {}  # key -> the total told, in this worker process only


def charge(database: sqlite3.Connection, cents: int, key: str) -> int:
    if key in charged:
        return charged[key]
    with database:
        database.execute("INSERT INTO charges (key, cents) VALUES (?, ?)", (key, cents))
        total = database.execute("SELECT SUM(cents) FROM charges").fetchone()[0]
    charged[key] = total
    return total
