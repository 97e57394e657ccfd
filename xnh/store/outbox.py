"""Queue outbound notifications. For now: the payment notice sent when a claim becomes 已拨付.

    from xnh.store import outbox
    outbox.derive_payment_notices(db)          # after a sync: the number queued
    outbox.queue_payment(db, "BC20260000001")   # True when a row was queued

Payment notices are derived from claim_history (county file) into notifications (service file) after
the import has committed, one transaction: every history row with id above the mark kept in
`meta.payment_notices_upto` whose status is 已拨付, for a claim still 已拨付; then the mark moves on.
A crash between the import's commit and this leaves the mark where it was, so the next sync (or
`xnh serve` starting) derives them: none lost; the unique (kind, ref) index and INSERT OR IGNORE
make a second derivation queue none twice. A demo database (meta.demo) never queues any: its
households have real-format phone numbers.

A queued row is `notifications(kind='payment', ref=claim_id, phone, text, status='queued')`; the
unique (kind, ref) index keeps one per claim. The text is rendered here (templates/sms/payment_notice.txt)
with the patient's name masked; sending it is the worker's job (a later issue).
"""
import logging
import time

from ..privacy import mask_name
from ..render import env
from .db import begin_write
from .state import stamp

logger = logging.getLogger(__name__)

KIND = "payment"
PAID = "已拨付"
TEMPLATE = "sms/payment_notice.txt"

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
  AND NOT EXISTS (SELECT 1 FROM notifications AS n WHERE n.kind = 'payment' AND n.ref = c.claim_id)
) WHERE phone IS NOT NULL AND phone != ''
"""
_INSERT = ("INSERT OR IGNORE INTO notifications (phone, kind, ref, text, status, created_at) "
           "VALUES (?, ?, ?, ?, 'queued', ?)")


def payment_text(claim: dict) -> str:
    """The SMS for a paid claim, one run of text (the template is written over several lines)."""
    admitted = claim.get("admitted") or ""
    text = env().get_template(TEMPLATE).render(
        name=mask_name(claim.get("name")), month=int(admitted[5:7]) if len(admitted) >= 7 else None,
        hospital=claim.get("hospital") or "", visit=claim.get("visit_type") or "",
        amount=claim.get("reimbursed") or "", paid_date=claim.get("paid_date") or "",
        channel=claim.get("paid_channel") or "")
    return "".join(line.strip() for line in text.splitlines())


def queue_payments_from(db, source: str) -> int:
    """Queue a payment notice for each paid claim whose id is in table `source` (a trusted name or
    subquery) and that has none yet. Claims with no known phone are skipped.
    Returns the number queued. Runs inside the caller's transaction."""
    values = _notices(db, source)
    return db.conn.executemany(_INSERT, values).rowcount if values else 0


def _notices(db, source: str) -> list[tuple]:
    """The rows to insert into notifications for the paid claims in `source`, texts rendered."""
    cursor = db.conn.execute(_CLAIMS_TO_NOTIFY.format(source=source))
    columns = [d[0] for d in cursor.description]
    now = stamp()
    values = []
    for row in cursor.fetchall():
        claim = dict(zip(columns, row))
        if claim["phone"]:
            values.append((claim["phone"], KIND, claim["claim_id"], payment_text(claim), now))
    return values


DERIVE_CHUNK = 5000  # claim_history ids per transaction: the service's write lock is held for milliseconds


def derive_payment_notices(db) -> int:
    """Queue the payment notices of the claim history written since the last derivation (see above);
    commits. Returns the number queued.

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
            if values:  # INSERT OR IGNORE on (kind, ref): a notice queued since the read is not doubled
                queued += db.conn.executemany(_INSERT, values).rowcount
            db.conn.execute("INSERT INTO meta (name, value) VALUES ('payment_notices_upto', ?) "
                            "ON CONFLICT (name) DO UPDATE SET value = excluded.value", [str(end)])
        except BaseException:
            db.conn.rollback()
            raise
        db.conn.commit()
        upto = end
    return queued


def record_delivery(db, provider_sid: str, status: str, error_code: str | None, moves_on) -> bool:
    """Keep a delivery callback in delivery_events and apply it to the notification sent as
    `provider_sid` when `moves_on(its current status)` says so; False when no such notification.
    Runs inside the caller's transaction."""
    row = db.conn.execute("SELECT id, status FROM notifications WHERE provider_sid = ?", [provider_sid]).fetchone()
    db.conn.execute("INSERT INTO delivery_events (provider_sid, status, error_code, at, notification_id) "
                    "VALUES (?, ?, ?, ?, ?)", [provider_sid, status, error_code, time.time(), row[0] if row else None])
    if row is None:
        return False
    if moves_on((row[1] or "").lower()):
        db.conn.execute("UPDATE notifications SET status = ?, error_code = ? WHERE id = ?",
                        [status, error_code or None, row[0]])
    return True


def _meta(db, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def queue_payment(db, claim_id: str) -> bool:
    """Queue the payment notice for one claim (if it is 已拨付, has a phone and has none yet)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS _xnh_notify_one (claim_id TEXT PRIMARY KEY)")
    with db.atomic():
        db.execute("DELETE FROM temp._xnh_notify_one")
        db.execute("INSERT INTO temp._xnh_notify_one VALUES (?)", [claim_id])
        queued = queue_payments_from(db, "temp._xnh_notify_one")
        db.execute("DELETE FROM temp._xnh_notify_one")
    return queued > 0
