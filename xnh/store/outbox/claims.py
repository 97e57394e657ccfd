"""What the worker writes: claiming the rows due now (with their send slots from the rate bucket
`rate_buckets`), and recording each attempt's outcome on its row. Status only moves forward:
pending | retry_wait ─> claimed ─> submitted | sent | retry_wait | failed | skipped."""
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
       o.error_code, o.status,
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
                "attempts", "error_code", "status", "opted_out", "bad")
RETRY_DUE = "AND o.next_attempt_at <= :now"
_BUCKET = ("INSERT INTO rate_buckets (name, tat) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
           "SET tat = excluded.tat")


class Unsendable(Exception):
    """`prepare` refuses a row: it is recorded as failed with this reason (a template error, a text too long)."""


def policy_params(now: float) -> dict:
    """The parameters of DUE_WHERE for the real time `now`: the policy clock's time and its China HH:MM."""
    policy = clock.now().astimezone(clock.CHINA)
    return {"policy": policy.timestamp(), "hm": policy.strftime("%H:%M"), "now": now}


def claim(db, worker: str, *, rates: dict[str, float], prepare, limit: int = 200, horizon: float = 0.5,
          lease: float = LEASE, now: float | None = None) -> list[dict]:
    """Claim the rows due now, in one short transaction, and give each a send slot (`slot`, real clock).

    Due: pending, or retry_wait whose next_attempt_at has come; of a channel in `rates`; scheduled no
    later than the policy clock; outside its quiet hours (China time, clock.now()); of no paused or
    cancelled campaign. Lowest priority number first (a clerk's answer before bulk). A bulk row to a
    number that opted out or is known bad is skipped instead. `prepare(row)` returns (text, segments)
    or raises Unsendable. A claimed row is held `lease` seconds past its slot.

    The rate: one row per channel in rate_buckets holds the time the next segment may go (a token bucket
    holding one segment, GCRA); each claimed row moves it on by its segments ÷ (rate × SAFETY). Every worker
    claims through it, so the rate holds across workers. Rows whose slot would be more than `horizon`
    seconds away stay pending. Commits."""
    now = time.time() if now is None else now
    channels = channel_list(rates)
    if not channels:
        return []
    with writing(db):
        rows = _due(db, channels, {**policy_params(now), "limit": limit})
        return _allocate(db, worker, rows, rates, prepare, now, horizon, lease)


def _due(db, channels: str, params: dict) -> list[dict]:
    found = []
    for status, extra in (("retry_wait", RETRY_DUE), ("pending", "")):
        sql = _DUE.format(extra=extra, channels=channels)
        found += [dict(zip(_DUE_COLUMNS, r)) for r in db.conn.execute(sql, {**params, "status": status})]
    found.sort(key=lambda r: (PRIORITY.get(r["kind"], 2), r["id"]))
    return found[: params["limit"]]


def _allocate(db, worker, rows, rates, prepare, now, horizon, lease) -> list[dict]:
    buckets = {name: max(now, tat) for name, tat in db.conn.execute("SELECT name, tat FROM rate_buckets")}
    full, claimed, at = set(), [], stamp()
    for row in rows:
        channel = row["channel"]
        if row["opted_out"] or row["bad"]:
            _set(db, row, "skipped", reason="opted out" if row["opted_out"] else "bad number")
            continue
        if channel in full:
            continue
        try:
            text, parts = prepare(row)
        except Unsendable as e:
            _set(db, row, "failed", reason=str(e))
            continue
        slot = buckets.get(channel, now)
        if slot > now + horizon:
            full.add(channel)
            continue
        buckets[channel] = slot + parts / (rates[channel] * SAFETY)
        db.conn.execute("UPDATE outbox SET status = 'claimed', worker = ?, lease_until = ?, text = ?, segments = ?, "
                        "updated_at = ? WHERE id = ? AND status = ?",
                        [worker, slot + lease, text, parts, at, row["id"], row["status"]])
        claimed.append({**row, "text": text, "segments": parts, "slot": slot})
    db.conn.executemany(_BUCKET, list(buckets.items()))
    return claimed


def _set(db, row: dict, status: str, reason: str) -> None:
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
    params = {**policy_params(now + within), "limit": 1}  # retries due by now + within; the rest by the clock
    return bool(_due(db, channel_list(channels) or "''", params))


def mark_submitted(db, outbox_id: int, provider_sid: str | None, status: str = "submitted") -> None:
    """The provider accepted the message (Telegram: `status` sent). A callback that came first keeps its later status."""
    db.conn.execute("UPDATE outbox SET status = CASE WHEN status = 'claimed' THEN ? ELSE status END, "
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
