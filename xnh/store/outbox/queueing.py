"""Putting rows into the outbox: a clerk's answer, a campaign's recipients, a campaign's cancellation.
Payment notices are queued by payments.py. Every function runs inside the caller's transaction unless it
says it commits."""
import json

from ..db import writing
from ..state import stamp
from .statuses import CHANNELS, OutboxError, WAITING


def queue_reply(db, *, channel: str, recipient: str, text: str, ref: str) -> int:
    """Queue a clerk's answer (`ref` e.g. "ticket:12") to `recipient` (a phone for "sms" and "cnsms",
    "tg:<chat id>" for "telegram", "wx:<openid>" for "wechat"), ahead of every bulk message and at any hour (the person asked). Returns the row id; the
    same ref and recipient again returns the first row's id. Commits."""
    with writing(db):
        return queue_reply_row(db, channel=channel, recipient=recipient, text=text, ref=ref)


def queue_reply_row(db, *, channel: str, recipient: str, text: str, ref: str) -> int:
    """`queue_reply` inside the caller's transaction (an answer recorded with its ticket, a group answer to
    everyone in it, all or nothing)."""
    if channel not in CHANNELS:
        raise OutboxError(f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
    if channel == "telegram" and not recipient.startswith("tg:"):
        recipient = f"tg:{recipient}"
    if not recipient or not (text or "").strip():
        raise OutboxError("a reply needs a recipient and a text")
    fields = None
    if channel == "cnsms":  # China SMS carry approved templates only: the answer is a variable of one
        fields = json.dumps({"template": "ticket_answer", "data": {"ticket": ref.partition(":")[2] or ref,
                                                                   "answer": text}}, ensure_ascii=False)
    db.conn.execute(
        "INSERT OR IGNORE INTO outbox (kind, ref, recipient, channel, text, fields, priority, status, "
        "created_at, updated_at) VALUES ('reply', ?, ?, ?, ?, ?, 0, 'pending', ?, ?)",
        [ref, recipient, channel, text, fields, stamp(), stamp()])
    row = db.conn.execute("SELECT id FROM outbox WHERE kind = 'reply' AND ref = ? AND recipient = ? "
                          "AND channel = ? AND campaign_id IS NULL", [ref, recipient, channel]).fetchone()
    return row[0]


def queue_campaign(db, campaign: dict, recipients_sql: str, not_before: float | None) -> int:
    """Queue one row per recipient of `recipients_sql` (SELECT recipient, channel, fields, reason: a
    reason makes the row `skipped`) for `campaign` (its id, quiet hours), in one INSERT … SELECT; the unique
    index on (campaign, recipient, channel) queues nobody twice. Returns the rows written."""
    return db.conn.execute(
        "INSERT OR IGNORE INTO outbox (kind, ref, campaign_id, recipient, channel, fields, priority, status, "
        "reason, not_before, quiet_start, quiet_end, created_at, updated_at) "
        "SELECT 'broadcast', ?, ?, r.recipient, r.channel, r.fields, 2, "
        "CASE WHEN r.reason IS NULL THEN 'pending' ELSE 'skipped' END, r.reason, ?, ?, ?, ?, ? "
        f"FROM ({recipients_sql}) AS r",
        [f"campaign:{campaign['id']}", campaign["id"], not_before, campaign["quiet_start"], campaign["quiet_end"],
         stamp(), stamp()]).rowcount


def cancel_waiting(db, campaign_id: int) -> int:
    """Cancel a campaign's rows still waiting (pending, retry_wait); rows a worker claimed finish."""
    return db.conn.execute(
        f"UPDATE outbox SET status = 'cancelled', reason = 'campaign cancelled', updated_at = ? "
        f"WHERE campaign_id = ? AND status IN {WAITING!r}", [stamp(), campaign_id]).rowcount
