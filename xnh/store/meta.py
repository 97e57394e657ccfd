"""`meta`: named values of the service file (the demo mark, how far payment notices were derived).

    meta.get(db, "demo")               # "1", or None
    meta.put(db, "payment_notices_upto", "5000")   # inside the caller's transaction
"""


def get(db, name: str) -> str | None:
    row = db.conn.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def put(db, name: str, value: str) -> None:
    """Set `name` (runs inside the caller's transaction)."""
    db.conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    [name, value])


def is_demo(db) -> bool:
    """The demo database: its households have real-format phones, so nothing is ever sent from it."""
    return get(db, "demo") == "1"
