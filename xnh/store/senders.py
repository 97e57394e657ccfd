"""The `senders` table: one row per outbound worker (its id: host:pid:random), holding its heartbeat (the
real time of its last good round), its state (running | retrying | stopped) and its last fault. Written
by the worker (xnh/broadcast/worker.py), read by /healthz and `xnh broadcast status`. Writes run inside the
caller's transaction."""
import time

from . import db as _db

_COLUMNS = ("id", "started_at", "heartbeat", "state", "last_error", "last_error_at", "sent")


def beat(db, sender_id: str, *, state: str, started_at: float, sent: int, error: str | None = None,
         now: float | None = None) -> None:
    """Record a sender's heartbeat (and its fault, when `error`)."""
    now = time.time() if now is None else now
    db.conn.execute(
        "INSERT INTO senders (id, started_at, heartbeat, state, sent, last_error, last_error_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat, "
        "state = excluded.state, sent = excluded.sent, last_error = coalesce(excluded.last_error, last_error), "
        "last_error_at = coalesce(excluded.last_error_at, last_error_at)",
        [sender_id, started_at, now, state, sent, error, now if error else None])


def latest(db) -> dict | None:
    """The sender that beat last (any process), or None when no sender ever ran on this database."""
    found = _db.rows(db, f"SELECT {', '.join(_COLUMNS)} FROM senders ORDER BY heartbeat DESC LIMIT 1")
    return found[0] if found else None


def forget_stopped(db, before: float) -> None:
    """Drop the rows of senders stopped before `before` (real time): the table keeps the recent ones."""
    db.conn.execute("DELETE FROM senders WHERE state = 'stopped' AND heartbeat < ?", [before])
