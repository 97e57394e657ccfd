"""Rows that carry an approved template instead of free text (China SMS, channel "cnsms"; WeChat notices): a
reply to an inbound SMS, queued in the inbound message's own transaction, bulk notices (the payment
period), and the count of one number's rows in the
provider's day (China time), for its per-number daily limit. Runs inside the caller's transaction."""
import json

from ... import clock, quiet_hours
from ..state import stamp

COUNTED = ("pending", "claimed", "retry_wait", "submitted", "sent", "delivered", "undelivered")


def queue_templated(db, *, kind: str, ref: str, recipient: str, channel: str, text: str, fields: str,
                    priority: int = 0) -> int | None:
    """Queue one templated message (`fields`: the template and its variables, as JSON; `text`: the same words
    for the record). A reply (priority 0) has no quiet hours: the person just wrote. Returns the row id, or
    None when (kind, ref, recipient, channel) was queued already."""
    cursor = db.conn.execute(
        "INSERT OR IGNORE INTO outbox (kind, ref, recipient, channel, text, fields, priority, status, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        [kind, ref, recipient, channel, text, fields, priority, stamp(), stamp()])
    return cursor.lastrowid if cursor.rowcount else None


def queued_today(db, recipient: str, channel: str) -> int:
    """Rows to `recipient` on `channel` queued today (China date of the policy clock), skipped and cancelled
    ones not counted: what the provider's per-number daily limit counts."""
    day = clock.now().astimezone(clock.CHINA).date().isoformat()
    return db.conn.execute(
        f"SELECT count(*) FROM outbox WHERE recipient = ? AND channel = ? AND created_at >= ? "
        f"AND status IN {COUNTED!r}", [recipient, channel, day]).fetchone()[0]


def queue_notices(db, *, kind: str, ref: str, rows: list[tuple]) -> int:
    """Queue bulk notices carrying a template: `rows` of (recipient, channel, text, fields dict, reason or
    None: a reason writes the row skipped). Bulk priority and the default quiet hours; the unique index on
    (kind, ref, recipient, channel) queues nobody twice. Returns the rows written."""
    now = stamp()
    values = [(kind, ref, recipient, channel, text, json.dumps(fields, ensure_ascii=False),
               "skipped" if reason else "pending", reason, *quiet_hours.DEFAULT, now, now)
              for recipient, channel, text, fields, reason in rows]
    if not values:
        return 0
    return db.conn.executemany(
        "INSERT OR IGNORE INTO outbox (kind, ref, recipient, channel, text, fields, priority, status, reason, "
        "quiet_start, quiet_end, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 2, ?, ?, ?, ?, ?, ?)",
        values).rowcount
