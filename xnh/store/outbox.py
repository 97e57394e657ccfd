"""One outbox for every message that leaves: broadcasts, payment notices, clerks' answers to tickets.

    from xnh.store import outbox
    outbox.queue_reply(db, channel="sms", recipient="13800009001", text="…", ref="ticket:12")  # → row id
    outbox.derive_payment_notices(db)          # after a sync: the number queued
    outbox.counts(db, campaign_id)             # {"pending": 120, "delivered": 3000, …}
    outbox.failures(db, campaign_id)           # {"bad number": 4, "opted out": 2, …}

The table is the truth (GOV.UK Notify's habit): a worker only claims rows from it, and every outcome is
written back to the row. A row is unique per (campaign, recipient, channel), or per (kind, ref,
recipient, channel) outside campaigns. Its status only moves forward:

    pending ─> claimed (worker, lease_until) ─> submitted (provider_sid) ─> sent ─> delivered | undelivered | failed
       │          └─> retry_wait (next_attempt_at, attempts) ─> claimed …      └─> failed (never submitted)
       └─> skipped (reason: opted out, bad number, old payment, …) | cancelled

A row still `claimed` after its lease was claimed by a worker that died before recording the outcome:
it may or may not have been sent, so it is left for a clerk (campaign status lists it) and never resent.

Priority: 0 a clerk's answer to a person's own question, 1 a payment notice, 2 a broadcast; the worker
takes lower numbers first. Recipients are phones ("13800009001") for SMS and "tg:<chat id>" for Telegram.

Payment notices are derived from claim_history (county file) after the import has committed, up to a mark
kept in `meta.payment_notices_upto` (a crash between the import's commit and this loses none, and the
unique index keeps any twice). A paid claim whose payment date is more than OLD_PAYMENT_DAYS before the
policy date is recorded as `skipped` with reason "old payment": a first import of years of history does not
text every household about money paid long ago. A demo database (meta.demo) never queues any.

The writes here run inside the caller's transaction unless a function says it commits.
"""
import datetime as dt
import json
import logging
import os
import time

from .. import clock
from ..privacy import mask_name
from ..render import env
from .db import begin_write
from .state import stamp

logger = logging.getLogger(__name__)

KIND = "payment"
PAID = "已拨付"
TEMPLATE = "sms/payment_notice.txt"
OLD_PAYMENT_DAYS = 30
PRIORITY = {"reply": 0, "payment": 1, "broadcast": 2}
DEFAULT_QUIET = ("21:00", "08:00")  # no sends from 21:00 until 08:00, China time
STATUSES = ("pending", "claimed", "retry_wait", "submitted", "sent", "delivered", "undelivered", "failed",
            "skipped", "cancelled")
WAITING = ("pending", "retry_wait")
NOT_DELIVERED = ("failed", "undelivered", "skipped")


class OutboxError(ValueError):
    """A message that cannot be queued (unknown channel, empty text, bad recipient)."""


# -- queueing ------------------------------------------------------------------------------------------

def queue_reply(db, *, channel: str, recipient: str, text: str, ref: str) -> int:
    """Queue a clerk's answer (`ref` e.g. "ticket:12") to `recipient` (a phone for "sms", "tg:<chat id>" for
    "telegram"), ahead of every bulk message and at any hour (the person asked). Returns the row id; the
    same ref and recipient again returns the first row's id. Commits."""
    if channel not in ("sms", "telegram"):
        raise OutboxError(f"unknown channel {channel!r}: sms or telegram")
    if channel == "telegram" and not recipient.startswith("tg:"):
        recipient = f"tg:{recipient}"
    if not recipient or not (text or "").strip():
        raise OutboxError("a reply needs a recipient and a text")
    begin_write(db)
    try:
        db.conn.execute(
            "INSERT OR IGNORE INTO outbox (kind, ref, recipient, channel, text, priority, status, "
            "created_at, updated_at) VALUES ('reply', ?, ?, ?, ?, 0, 'pending', ?, ?)",
            [ref, recipient, channel, text, stamp(), stamp()])
        row = db.conn.execute("SELECT id FROM outbox WHERE kind = 'reply' AND ref = ? AND recipient = ? "
                              "AND channel = ? AND campaign_id IS NULL", [ref, recipient, channel]).fetchone()
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
    return row[0]


# -- reading -------------------------------------------------------------------------------------------

def counts(db, campaign_id: int | None = None) -> dict[str, int]:
    """Rows by status (every status present, zeros included), of one campaign or of the whole outbox."""
    where, params = ("WHERE campaign_id = ?", [campaign_id]) if campaign_id is not None else ("", [])
    found = dict(db.conn.execute(f"SELECT status, count(*) FROM outbox {where} GROUP BY status", params).fetchall())
    return {status: found.get(status, 0) for status in STATUSES} | found


def failures(db, campaign_id: int | None) -> dict[str, int]:
    """Rows that will not be delivered (failed, undelivered, skipped), by reason, most frequent first."""
    where = "campaign_id = ?" if campaign_id is not None else "campaign_id IS NULL"
    params = [campaign_id] if campaign_id is not None else []
    rows = db.conn.execute(
        f"SELECT coalesce(reason, status), count(*) AS n FROM outbox WHERE {where} AND status IN "
        f"({','.join('?' * len(NOT_DELIVERED))}) GROUP BY 1 ORDER BY n DESC, 1", params + list(NOT_DELIVERED))
    return dict(rows.fetchall())


def stale_claims(db, campaign_id: int | None = None, now: float | None = None) -> list[dict]:
    """Rows still `claimed` after their lease: the worker that held them died between claiming and
    recording what Twilio said, so each may or may not have been sent. Never resent automatically."""
    where, params = ("AND campaign_id = ?", [campaign_id]) if campaign_id is not None else ("", [])
    cursor = db.conn.execute(f"SELECT id, recipient, channel, worker, lease_until FROM outbox WHERE status = "
                             f"'claimed' AND lease_until < ? {where} ORDER BY id", [now or time.time(), *params])
    return [dict(zip(("id", "recipient", "channel", "worker", "lease_until"), r)) for r in cursor]


# -- payment notices -----------------------------------------------------------------------------------

# the member's own phone, else a phone of the household (the householder's first)
_CLAIMS_TO_NOTIFY = """
SELECT * FROM (
SELECT c.claim_id, c.name, c.hospital, c.visit_type, c.admitted, c.reimbursed, c.paid_date, c.paid_channel,
       COALESCE(NULLIF(m.phone, ''),
                (SELECT h.phone FROM members AS h WHERE h.household_id = c.household_id AND h.phone != ''
                 ORDER BY h.relation != '户主', h.member_id LIMIT 1)) AS phone
FROM {source} AS p
JOIN claims AS c ON c.claim_id = p.claim_id
LEFT JOIN members AS m ON m.member_id = c.member_id
WHERE c.status = '已拨付'
  AND NOT EXISTS (SELECT 1 FROM outbox AS n WHERE n.kind = 'payment' AND n.ref = c.claim_id)
) WHERE phone IS NOT NULL AND phone != ''
"""
_INSERT = ("INSERT OR IGNORE INTO outbox (recipient, kind, ref, text, status, reason, channel, priority, "
           "quiet_start, quiet_end, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'sms', 1, ?, ?, ?, ?)")


def payment_text(claim: dict) -> str:
    """The SMS for a paid claim, one run of text (the template is written over several lines)."""
    admitted = claim.get("admitted") or ""
    text = env().get_template(TEMPLATE).render(
        name=mask_name(claim.get("name")), month=int(admitted[5:7]) if len(admitted) >= 7 else None,
        hospital=claim.get("hospital") or "", visit=claim.get("visit_type") or "",
        amount=claim.get("reimbursed") or "", paid_date=claim.get("paid_date") or "",
        channel=claim.get("paid_channel") or "")
    return "".join(line.strip() for line in text.splitlines())


def old_payment_cutoff() -> str:
    """Payments dated before this ISO date are not announced (OLD_PAYMENT_DAYS before the policy date)."""
    return (clock.today() - dt.timedelta(days=OLD_PAYMENT_DAYS)).isoformat()


def queue_payments_from(db, source: str) -> int:
    """Queue a payment notice for each paid claim whose id is in table `source` (a trusted name or
    subquery) and that has none yet. Claims with no known phone are skipped.
    Returns the number of rows written (old payments included, as skipped). Runs inside the caller's transaction."""
    values = _notices(db, source)
    return db.conn.executemany(_INSERT, values).rowcount if values else 0


def _notices(db, source: str) -> list[tuple]:
    """The outbox rows for the paid claims in `source`, texts rendered."""
    cursor = db.conn.execute(_CLAIMS_TO_NOTIFY.format(source=source))
    columns = [d[0] for d in cursor.description]
    now, cutoff = stamp(), old_payment_cutoff()
    values = []
    for row in cursor.fetchall():
        claim = dict(zip(columns, row))
        if claim["phone"]:
            old = bool(claim["paid_date"]) and claim["paid_date"] < cutoff
            text = payment_text(claim)
            values.append((claim["phone"], KIND, claim["claim_id"], text,
                           "skipped" if old else "pending", "old payment" if old else None,
                           *DEFAULT_QUIET, now, now))
    return values


DERIVE_CHUNK = 5000  # claim_history ids per transaction: the service's write lock is held for milliseconds


def derive_payment_notices(db) -> int:
    """Queue the payment notices of the claim history written since the last derivation (see above);
    commits. Returns the number of outbox rows written (old payments, recorded as skipped, included).

    In chunks of history ids: each chunk's notices are read and rendered first, outside any write
    transaction, then inserted and the mark moved in one short transaction, so that messages (which
    need the service file's write lock) never wait behind a million-row import's notices."""
    if _meta(db, "demo"):
        return 0
    upto = int(_meta(db, "payment_notices_upto") or 0)
    top = db.execute("SELECT coalesce(max(id), 0) FROM claim_history").fetchone()[0]
    queued = 0
    while upto < top:
        end = min(top, upto + DERIVE_CHUNK)
        values = _notices(db, f"(SELECT DISTINCT claim_id FROM claim_history WHERE id > {int(upto)} "
                              f"AND id <= {int(end)} AND status = '{PAID}')")
        begin_write(db)  # the write lock before any read in the transaction (see store.db.begin_write)
        try:
            if values:  # INSERT OR IGNORE on the unique index: a notice queued since the read is not doubled
                queued += db.conn.executemany(_INSERT, values).rowcount
            db.conn.execute("INSERT INTO meta (name, value) VALUES ('payment_notices_upto', ?) "
                            "ON CONFLICT (name) DO UPDATE SET value = excluded.value", [str(end)])
        except BaseException:
            db.conn.rollback()
            raise
        db.conn.commit()
        upto = end
    return queued


def queue_payment(db, claim_id: str) -> bool:
    """Queue the payment notice for one claim (if it is 已拨付, has a phone and has none yet)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS _xnh_notify_one (claim_id TEXT PRIMARY KEY)")
    with db.atomic():
        db.execute("DELETE FROM temp._xnh_notify_one")
        db.execute("INSERT INTO temp._xnh_notify_one VALUES (?)", [claim_id])
        queued = queue_payments_from(db, "temp._xnh_notify_one")
        db.execute("DELETE FROM temp._xnh_notify_one")
    return queued > 0


def _meta(db, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def is_demo(db) -> bool:
    """The demo database: its households have real-format phones, so nothing is ever sent from it."""
    return bool(_meta(db, "demo"))


# -- delivery callbacks --------------------------------------------------------------------------------

def record_delivery(db, provider_sid: str, status: str, error_code: str | None, moves_on,
                    outbox_id: int | None = None, reason: str | None = None, apply: str | None = "") -> dict | None:
    """Keep a delivery callback in delivery_events and apply it to the outbox row (`outbox_id` from the
    StatusCallback URL, else the row sent as `provider_sid`) when `moves_on(its current status)` says so:
    the row takes status `apply` (default `status`; None records the event only). Returns the row (id, campaign_id, recipient, channel), or None
    when no row matches. Runs inside the caller's transaction."""
    row = None
    if outbox_id is not None:
        row = db.conn.execute("SELECT id, status, campaign_id, recipient, channel FROM outbox WHERE id = ?",
                              [outbox_id]).fetchone()
    if row is None and provider_sid:
        row = db.conn.execute("SELECT id, status, campaign_id, recipient, channel FROM outbox "
                              "WHERE provider_sid = ?", [provider_sid]).fetchone()
    db.conn.execute("INSERT INTO delivery_events (provider_sid, status, error_code, at, outbox_id) "
                    "VALUES (?, ?, ?, ?, ?)", [provider_sid, status, error_code, time.time(), row[0] if row else None])
    if row is None:
        return None
    apply = status if apply == "" else apply
    if apply and moves_on((row[1] or "").lower()):
        db.conn.execute("UPDATE outbox SET status = ?, error_code = ?, reason = coalesce(?, reason), "
                        "provider_sid = coalesce(provider_sid, ?), lease_until = NULL, updated_at = ? WHERE id = ?",
                        [apply, error_code or None, reason, provider_sid or None, stamp(), row[0]])
    return dict(zip(("id", "status", "campaign_id", "recipient", "channel"), row))


# -- what the worker writes ----------------------------------------------------------------------------

def mark_bad_number(db, phone: str, code: str, reason: str) -> None:
    """Remember a number Twilio says cannot receive (never retried); skip its other waiting rows."""
    db.conn.execute("INSERT INTO bad_numbers (phone, code, reason, at) VALUES (?, ?, ?, ?) ON CONFLICT (phone) "
                    "DO UPDATE SET code = excluded.code, reason = excluded.reason, at = excluded.at",
                    [phone, code, reason, stamp()])
    db.conn.execute("UPDATE outbox SET status = 'skipped', reason = 'bad number', updated_at = ? "
                    "WHERE recipient = ? AND status IN ('pending', 'retry_wait') AND kind != 'reply'", [stamp(), phone])


def skip_opted_out(db, phone: str) -> None:
    """Skip the waiting bulk rows of a number that opted out (a reply to its own question still goes)."""
    db.conn.execute("UPDATE outbox SET status = 'skipped', reason = 'opted out', updated_at = ? "
                    "WHERE recipient = ? AND status IN ('pending', 'retry_wait') AND kind != 'reply'", [stamp(), phone])


def pause_campaign(db, campaign_id: int, why: str) -> bool:
    """Pause a campaign (its rows wait); True when it was not paused already."""
    return db.conn.execute("UPDATE campaigns SET paused = 1, paused_reason = ? WHERE id = ? AND paused = 0",
                           [why, campaign_id]).rowcount > 0


def recent_error_codes(db, campaign_id: int, last: int = 20) -> list[str]:
    """The error codes (or None) of the campaign's last `last` rows that got an answer, newest first."""
    return [r[0] for r in db.conn.execute(
        "SELECT error_code FROM outbox WHERE campaign_id = ? AND status IN ('submitted', 'sent', 'delivered', "
        "'undelivered', 'failed') ORDER BY updated_at DESC, id DESC LIMIT ?", [campaign_id, last])]


def json_fields(text: str | None) -> dict:
    return json.loads(text) if text else {}


# -- claiming (the worker) ------------------------------------------------------------------------------

LEASE = 30.0  # seconds a worker holds a claimed row past its send slot (XNH_WORKER_LEASE); > the HTTP timeout
SAFETY = 0.96  # slots are spaced at 96 % of the rate, so network jitter never pushes a second over it

_DUE = """
SELECT o.id, o.kind, o.ref, o.campaign_id, o.recipient, o.channel, o.text, o.fields, o.segments, o.attempts,
       o.error_code, o.status,
       o.kind != 'reply' AND EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.subscribed = 0
                                     AND s.phone = coalesce(b.phone, o.recipient)) AS opted_out,
       o.kind != 'reply' AND EXISTS (SELECT 1 FROM bad_numbers AS x WHERE x.phone = o.recipient) AS bad
FROM outbox AS o
LEFT JOIN campaigns AS c ON c.id = o.campaign_id
LEFT JOIN bindings AS b ON b.sender = o.recipient
WHERE o.status = :status {extra}
  AND o.channel IN ({channels})
  AND (o.not_before IS NULL OR o.not_before <= :policy)
  AND (o.quiet_start IS NULL OR NOT CASE WHEN o.quiet_start > o.quiet_end
                                         THEN :hm >= o.quiet_start OR :hm < o.quiet_end
                                         ELSE :hm >= o.quiet_start AND :hm < o.quiet_end END)
  AND (o.campaign_id IS NULL OR (c.paused = 0 AND c.status = 'sending'))
ORDER BY o.priority, o.id
LIMIT :limit
"""
_DUE_COLUMNS = ("id", "kind", "ref", "campaign_id", "recipient", "channel", "text", "fields", "segments",
                "attempts", "error_code", "status", "opted_out", "bad")


class Unsendable(Exception):
    """`prepare` refuses a row: it is recorded as failed with this reason (a template error, a text too long)."""


def claim(db, worker: str, *, rates: dict[str, float], prepare, limit: int = 200, horizon: float = 0.5,
          now: float | None = None) -> list[dict]:
    """Claim the rows due now, in one short transaction, and give each a send slot (`slot`, real clock).

    Due: pending, or retry_wait whose next_attempt_at has come; of a channel in `rates`; scheduled no
    later than the policy clock; outside its quiet hours (China time, clock.now()); of no paused or
    cancelled campaign. Lowest priority number first (a clerk's answer before bulk). A bulk row to a
    number that opted out or is known bad is skipped instead. `prepare(row)` returns (text, segments)
    or raises Unsendable.

    The rate: one row per channel in rate_buckets holds the time the next segment may go (a token bucket
    holding one segment, GCRA); each claimed row moves it on by its segments ÷ (rate × SAFETY). Every worker
    claims through it, so the rate holds across workers. Rows whose slot would be more than `horizon`
    seconds away stay pending. Commits."""
    now = time.time() if now is None else now
    policy = clock.now().astimezone(clock.CHINA)
    params = {"policy": policy.timestamp(), "hm": policy.strftime("%H:%M"), "limit": limit, "now": now}
    channels = ",".join(f"'{c}'" for c in rates if c in ("sms", "telegram"))
    if not channels:
        return []
    begin_write(db)
    try:
        rows = _due(db, channels, params)
        claimed = _allocate(db, worker, rows, rates, prepare, now, horizon)
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
    return claimed


def _due(db, channels: str, params: dict) -> list[dict]:
    found = []
    for status, extra in (("retry_wait", "AND o.next_attempt_at <= :now"), ("pending", "")):
        sql = _DUE.format(extra=extra, channels=channels)
        found += [dict(zip(_DUE_COLUMNS, r)) for r in db.conn.execute(sql, {**params, "status": status})]
    found.sort(key=lambda r: (PRIORITY.get(r["kind"], 2), r["id"]))
    return found[: params["limit"]]


def _allocate(db, worker, rows, rates, prepare, now, horizon) -> list[dict]:
    buckets = {name: max(now, tat) for name, tat in db.conn.execute("SELECT name, tat FROM rate_buckets")}
    lease = float(os.environ.get("XNH_WORKER_LEASE") or LEASE)
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
    db.conn.executemany("INSERT INTO rate_buckets (name, tat) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                        "SET tat = excluded.tat", list(buckets.items()))
    return claimed


def _set(db, row: dict, status: str, reason: str) -> None:
    db.conn.execute("UPDATE outbox SET status = ?, reason = ?, updated_at = ? WHERE id = ? AND status = ?",
                    [status, reason, stamp(), row["id"], row["status"]])


def reserve(db, channel: str, parts: int, rate: float, now: float | None = None) -> float:
    """A new send slot for a row whose claimed slot passed (its worker ran late): the bucket moves on by
    `parts`. Commits."""
    now = time.time() if now is None else now
    begin_write(db)
    try:
        row = db.conn.execute("SELECT tat FROM rate_buckets WHERE name = ?", [channel]).fetchone()
        slot = max(now, row[0] if row else now)
        db.conn.execute("INSERT INTO rate_buckets (name, tat) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                        "SET tat = excluded.tat", [channel, slot + parts / (rate * SAFETY)])
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
    return slot


def mark_submitted(db, outbox_id: int, provider_sid: str | None, status: str = "submitted") -> None:
    """Twilio (or Telegram: `status` sent) accepted the message. A callback that came first keeps its later status."""
    db.conn.execute("UPDATE outbox SET status = CASE WHEN status = 'claimed' THEN ? ELSE status END, "
                    "provider_sid = ?, submitted_at = ?, lease_until = NULL, updated_at = ?, "
                    "attempts = attempts + 1 WHERE id = ?", [status, provider_sid, stamp(), stamp(), outbox_id])


def due_soon(db, channels: list[str], within: float, now: float | None = None) -> bool:
    """True when a row of `channels` is due now, or a retry is due within `within` seconds."""
    now = time.time() if now is None else now
    policy = clock.now().astimezone(clock.CHINA)
    names = ",".join(f"'{c}'" for c in channels if c in ("sms", "telegram")) or "''"
    params = {"policy": policy.timestamp(), "hm": policy.strftime("%H:%M"), "limit": 1, "now": now + within}
    return bool(_due(db, names, params))


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
