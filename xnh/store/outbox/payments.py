"""Payment notices: a masked SMS for each claim that became 已拨付, derived from claim_history (county file)
after the import has committed, up to a mark kept in `meta.payment_notices_upto` (a crash between the
import's commit and this loses none, and the unique index keeps any twice). A paid claim whose payment
date is more than OLD_PAYMENT_DAYS before the policy date is recorded as `skipped` with reason "old
payment": a first import of years of history does not text every household about money paid long ago.
A demo database (meta.demo) never queues any."""
import datetime as dt

from ... import clock, quiet_hours
from ...policy_kb.claim_status import PAID
from ...privacy import mask_name
from ...render import env
from .. import meta
from ..db import writing
from ..state import stamp

KIND = "payment"
TEMPLATE = "sms/payment_notice.txt"
OLD_PAYMENT_DAYS = 30
DERIVE_CHUNK = 5000  # claim_history ids per transaction: the service's write lock is held for milliseconds

# the member's own phone, else a phone of the household (the householder's first)
# `n.campaign_id IS NULL` repeats the WHERE of the partial unique index outbox_kind_ref_recipient, so the
# look-up is a search of that index (without it SQLite scans the whole outbox once per paid claim:
# tests/test_store.py checks the plan, bench/notice_bench.py the time). A claim with no phone is left out
# by the outer query: `LIMIT -1` keeps SQLite from flattening the inner one into it, which would run the
# household look-up once more for the filter (measured at 1M claims, 330k paid, no phone known: 0.98 s with
# every row fetched and left out in Python, 0.53 s so).
_CLAIMS_TO_NOTIFY = """
SELECT * FROM (
SELECT c.claim_id, c.name, c.hospital, c.visit_type, c.admitted, c.reimbursed, c.paid_date, c.paid_channel,
       COALESCE(NULLIF(m.phone, ''),
                (SELECT h.phone FROM members AS h WHERE h.household_id = c.household_id AND h.phone != ''
                 ORDER BY h.relation != '户主', h.member_id LIMIT 1)) AS phone
FROM {source} AS p
JOIN claims AS c ON c.claim_id = p.claim_id
LEFT JOIN members AS m ON m.member_id = c.member_id
WHERE c.status = :paid
  AND NOT EXISTS (SELECT 1 FROM outbox AS n WHERE n.kind = 'payment' AND n.ref = c.claim_id
                  AND n.campaign_id IS NULL)
LIMIT -1) WHERE phone IS NOT NULL
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
    cursor = db.conn.execute(_CLAIMS_TO_NOTIFY.format(source=source), {"paid": PAID})
    columns = [d[0] for d in cursor.description]
    now, cutoff = stamp(), old_payment_cutoff()
    values = []
    for row in cursor.fetchall():
        claim = dict(zip(columns, row))
        old = bool(claim["paid_date"]) and claim["paid_date"] < cutoff
        values.append((claim["phone"], KIND, claim["claim_id"], payment_text(claim),
                       "skipped" if old else "pending", "old payment" if old else None,
                       *quiet_hours.DEFAULT, now, now))
    return values


def derive_payment_notices(db) -> int:
    """Queue the payment notices of the claim history written since the last derivation (see above);
    commits. Returns the number of outbox rows written (old payments, recorded as skipped, included).

    In chunks of history ids: each chunk's notices are read and rendered first, outside any write
    transaction, then inserted and the mark moved in one short transaction, so that messages (which
    need the service file's write lock) never wait behind a million-row import's notices."""
    if meta.get(db, "demo"):
        return 0
    upto = int(meta.get(db, "payment_notices_upto") or 0)
    top = db.execute("SELECT coalesce(max(id), 0) FROM claim_history").fetchone()[0]
    queued = 0
    while upto < top:
        end = min(top, upto + DERIVE_CHUNK)
        values = _notices(db, f"(SELECT DISTINCT claim_id FROM claim_history WHERE id > {int(upto)} "
                              f"AND id <= {int(end)} AND status = :paid)")
        with writing(db):  # INSERT OR IGNORE on the unique index: a notice queued since the read is not doubled
            if values:
                queued += db.conn.executemany(_INSERT, values).rowcount
            meta.put(db, "payment_notices_upto", str(end))
        upto = end
    return queued


def queue_payment(db, claim_id: str) -> bool:
    """Queue the payment notice for one claim (if it is 已拨付, has a phone and has none yet). Commits."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS _xnh_notify_one (claim_id TEXT PRIMARY KEY)")
    with writing(db):
        db.conn.execute("DELETE FROM temp._xnh_notify_one")
        db.conn.execute("INSERT INTO temp._xnh_notify_one VALUES (?)", [claim_id])
        queued = queue_payments_from(db, "temp._xnh_notify_one")
        db.conn.execute("DELETE FROM temp._xnh_notify_one")
    return queued > 0
