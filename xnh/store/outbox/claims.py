"""What the worker writes: claiming one row at a time, just before its own send, with its send slot from
the rate bucket `rate_buckets`; recording each attempt's outcome; and after a worker died, settling the
rows it had claimed (`release`, `mark_unknown`, `mark_submitted`). Status moves forward:
pending | retry_wait ─> claimed ─> submitted | sent | retry_wait | failed | skipped | unknown, and back
from claimed to pending only by `release`: the provider never had the row (the worker stopped before
handing it over, or the provider's own list shows it never arrived)."""
import time

from ... import clock, quiet_hours
from ..db import writing
from ..state import stamp
from .statuses import PRIORITY, channel_list

LEASE = 30.0  # seconds a worker holds a claimed row past its send slot (XNH_WORKER_LEASE); > the HTTP timeout
SAFETY = 0.96  # slots are spaced at 96 % of the rate, so network jitter never pushes a second over it

# rows due now: scheduled no later than the policy clock, outside their quiet hours, of no paused or
# cancelled campaign (`status` and `extra` pick pending rows, or retries whose time has come)
DUE_WHERE = f"""
WHERE o.status = :status {{extra}}
  AND o.channel IN ({{channels}})
  AND (o.not_before IS NULL OR o.not_before <= :policy)
  AND (o.quiet_start IS NULL OR NOT {quiet_hours.SQL.format(start="o.quiet_start", end="o.quiet_end", hm=":hm")})
  AND (o.campaign_id IS NULL OR (c.paused = 0 AND c.status = 'sending'))
"""
_DUE = """
SELECT o.id, o.kind, o.ref, o.campaign_id, o.recipient, o.channel, o.text, o.fields, o.segments, o.attempts,
       o.error_code, o.status, o.maybe_sent, o.claimed_at,
       o.kind != 'reply' AND EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.subscribed = 0
                                     AND s.phone = coalesce(b.phone, o.recipient)) AS opted_out,
       o.kind != 'reply' AND EXISTS (SELECT 1 FROM bad_numbers AS x WHERE x.phone = o.recipient) AS bad
FROM outbox AS o
LEFT JOIN campaigns AS c ON c.id = o.campaign_id
LEFT JOIN bindings AS b ON b.sender = o.recipient
""" + DUE_WHERE + """
ORDER BY o.priority, o.id
LIMIT :limit
"""
_DUE_COLUMNS = ("id", "kind", "ref", "campaign_id", "recipient", "channel", "text", "fields", "segments",
                "attempts", "error_code", "status", "maybe_sent", "claimed_at", "opted_out", "bad")
RETRY_DUE = "AND o.next_attempt_at <= :now"
_BUCKET = ("INSERT INTO rate_buckets (name, tat) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
           "SET tat = excluded.tat")
# the claim itself checks again what may have changed since the row was read: its status (another worker,
# a cancel) and its campaign (paused, cancelled)
_CLAIM = ("UPDATE outbox SET status = 'claimed', worker = ?, claimed_at = ?, lease_until = ?, text = ?, "
          "segments = ?, updated_at = ? WHERE id = ? AND status = ? AND (campaign_id IS NULL OR EXISTS "
          "(SELECT 1 FROM campaigns AS c WHERE c.id = outbox.campaign_id AND c.paused = 0 AND c.status = 'sending'))")
CLAIMED, GONE, LATER = "claimed", "gone", "later"


class Unsendable(Exception):
    """`prepare` refuses a row: it is recorded as failed with this reason (a template error, a text too long)."""


def policy_params(now: float) -> dict:
    """The parameters of DUE_WHERE for the real time `now`: the policy clock's time and its China HH:MM."""
    policy = clock.now().astimezone(clock.CHINA)
    return {"policy": policy.timestamp(), "hm": policy.strftime("%H:%M"), "now": now}


def due(db, channels, *, limit: int = 50, now: float | None = None) -> list[dict]:
    """The rows due now (read only, nothing claimed), lowest priority number first (a clerk's answer before
    bulk): pending, or retry_wait whose next_attempt_at has come; of a channel in `channels`; scheduled no
    later than the policy clock; outside their quiet hours (China time, clock.now()); of no paused or
    cancelled campaign. `opted_out` and `bad` say a bulk row's number must not be sent to."""
    now = time.time() if now is None else now
    names = channel_list(channels) or "''"
    params = {**policy_params(now), "limit": limit}
    found = []
    for status, extra in (("retry_wait", RETRY_DUE), ("pending", "")):
        sql = _DUE.format(extra=extra, channels=names)
        found += [dict(zip(_DUE_COLUMNS, r)) for r in db.conn.execute(sql, {**params, "status": status})]
    found.sort(key=lambda r: (PRIORITY.get(r["kind"], 2), r["id"]))
    return found[:limit]


def claim_row(db, worker: str, row: dict, *, text: str, parts: int, rate: float, horizon: float = 0.5,
              lease: float = LEASE, now: float | None = None) -> tuple[str, float | None]:
    """Claim one row read by `due`, just before its send, and give it a send slot (real clock), in one short
    transaction. Returns (CLAIMED, slot); (GONE, None) when the row changed meanwhile (another worker took
    it, it was cancelled, its campaign paused); (LATER, None) when the channel's next slot is more than
    `horizon` seconds away (other workers are using the rate). Commits.

    The rate: one row per channel in rate_buckets holds the time the next segment may go (a token bucket
    holding one segment, GCRA); each claimed row moves it on by its `parts` ÷ (rate × SAFETY). Every worker
    claims through it, so the rate holds across workers, and a worker's first message goes at once and the
    second one slot later: no burst at start."""
    now = time.time() if now is None else now
    channel = row["channel"]
    with writing(db):
        found = db.conn.execute("SELECT tat FROM rate_buckets WHERE name = ?", [channel]).fetchone()
        slot = max(now, found[0] if found else now)
        if slot > now + horizon:
            return LATER, None
        claimed = db.conn.execute(_CLAIM, [worker, now, slot + lease, text, parts, stamp(), row["id"],
                                           row["status"]]).rowcount
        if not claimed:
            return GONE, None
        db.conn.execute(_BUCKET, [channel, slot + parts / (rate * SAFETY)])
    return CLAIMED, slot


def settle(db, row: dict, status: str, reason: str) -> None:
    """A row read by `due` that is not sent: `skipped` (opted out, bad number) or `failed` (Unsendable).
    Commits."""
    with writing(db):
        db.conn.execute("UPDATE outbox SET status = ?, reason = ?, updated_at = ? WHERE id = ? AND status = ?",
                        [status, reason, stamp(), row["id"], row["status"]])


def reserve(db, channel: str, parts: int, rate: float, now: float | None = None) -> float:
    """A new send slot for a row whose claimed slot passed (its worker ran late): the bucket moves on by
    `parts`. Commits."""
    now = time.time() if now is None else now
    with writing(db):
        row = db.conn.execute("SELECT tat FROM rate_buckets WHERE name = ?", [channel]).fetchone()
        slot = max(now, row[0] if row else now)
        db.conn.execute(_BUCKET, [channel, slot + parts / (rate * SAFETY)])
    return slot


def due_soon(db, channels: list[str], within: float, now: float | None = None) -> bool:
    """True when a row of `channels` is due now, or a retry is due within `within` seconds."""
    now = time.time() if now is None else now
    names = channel_list(channels) or "''"
    params = {**policy_params(now), "limit": 1, "now": now + within}  # retries due by now + within
    return any(db.conn.execute(_DUE.format(extra=extra, channels=names), {**params, "status": status}).fetchone()
               for status, extra in (("retry_wait", RETRY_DUE), ("pending", "")))


def mark_submitted(db, outbox_id: int, provider_sid: str | None, status: str = "submitted") -> None:
    """The provider accepted the message (Telegram: `status` sent). A callback that came first keeps its later status."""
    db.conn.execute("UPDATE outbox SET status = CASE WHEN status IN ('claimed', 'unknown') THEN ? ELSE status END, "
                    "provider_sid = ?, submitted_at = ?, lease_until = NULL, updated_at = ?, "
                    "attempts = attempts + 1 WHERE id = ?", [status, provider_sid, stamp(), stamp(), outbox_id])


def mark_retry(db, outbox_id: int, *, delay: float, counts: bool, reason: str, code: str | None = None,
               maybe_sent: bool = False, now: float | None = None) -> None:
    """Try again in `delay` seconds; `counts` adds an attempt (a 429 does not)."""
    db.conn.execute("UPDATE outbox SET status = 'retry_wait', next_attempt_at = ?, attempts = attempts + ?, "
                    "reason = ?, error_code = ?, maybe_sent = max(maybe_sent, ?), lease_until = NULL, "
                    "updated_at = ? WHERE id = ? AND status = 'claimed'",
                    [(now or time.time()) + delay, int(counts), reason, code, int(maybe_sent), stamp(), outbox_id])


def mark_failed(db, outbox_id: int, *, reason: str, code: str | None = None, maybe_sent: bool = False,
                status: str = "failed") -> None:
    """Give up on a row (status `failed`, or `skipped` for a number that must not be sent to)."""
    db.conn.execute("UPDATE outbox SET status = ?, reason = ?, error_code = ?, maybe_sent = max(maybe_sent, ?), "
                    "attempts = attempts + ?, lease_until = NULL, updated_at = ? WHERE id = ? AND status = 'claimed'",
                    [status, reason, code, int(maybe_sent), int(status == "failed"), stamp(), outbox_id])


# -- after a worker stopped or died -----------------------------------------------------------------------

_CLAIMED_COLUMNS = ("id", "kind", "campaign_id", "recipient", "channel", "text", "worker", "claimed_at",
                    "lease_until", "attempts")


def claimed_rows(db) -> list[dict]:
    """Every row now `claimed` (by a live worker sending it, or by one that died), oldest claim first."""
    cursor = db.conn.execute(f"SELECT {', '.join(_CLAIMED_COLUMNS)} FROM outbox WHERE status = 'claimed' "
                             "ORDER BY claimed_at, id")
    return [dict(zip(_CLAIMED_COLUMNS, r)) for r in cursor]


def release(db, outbox_id: int, reason: str) -> bool:
    """Put a claimed row back to `pending`: the provider never had it (the worker stopped before handing it
    over, or the provider's list shows no such message). Runs inside the caller's transaction."""
    return db.conn.execute("UPDATE outbox SET status = 'pending', worker = NULL, lease_until = NULL, reason = ?, "
                           "updated_at = ? WHERE id = ? AND status = 'claimed'",
                           [reason, stamp(), outbox_id]).rowcount == 1


def mark_unknown(db, outbox_id: int, reason: str) -> bool:
    """A claimed row of a worker that died, which the provider may have accepted and cannot be asked about:
    `unknown`, listed for a clerk (who may resend it). Runs inside the caller's transaction."""
    return db.conn.execute("UPDATE outbox SET status = 'unknown', lease_until = NULL, maybe_sent = 1, reason = ?, "
                           "updated_at = ? WHERE id = ? AND status = 'claimed'",
                           [reason, stamp(), outbox_id]).rowcount == 1


def resend_unknown(db, ids: list[int] | None = None, campaign_id: int | None = None) -> int:
    """A clerk resends rows whose fate is unknown (`ids`, or every one of `campaign_id`, or every one):
    back to `pending`. Returns how many. Runs inside the caller's transaction."""
    where, params = ["status = 'unknown'"], []
    if ids is not None:
        where.append(f"id IN ({','.join('?' * len(ids))})")
        params += list(ids)
    if campaign_id is not None:
        where.append("campaign_id = ?")
        params.append(campaign_id)
    return db.conn.execute(f"UPDATE outbox SET status = 'pending', reason = 'resent by a clerk', worker = NULL, "
                           f"updated_at = ? WHERE {' AND '.join(where)}", [stamp(), *params]).rowcount
