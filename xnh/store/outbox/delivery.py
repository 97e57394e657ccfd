"""Delivery events and what they do to a number: every provider callback kept in `delivery_events` and
applied to its outbox row (a late callback never moves a row back), numbers known bad (`bad_numbers`),
and the waiting bulk rows of a number that opted out or is bad, skipped. Runs inside the caller's
transaction."""
import time

from ..state import stamp
from .statuses import ANSWERED, WAITING

_ROW = ("id", "status", "campaign_id", "recipient", "channel")


def record_delivery(db, provider_sid: str, status: str, error_code: str | None, moves_on,
                    outbox_id: int | None = None, reason: str | None = None, apply: str | None = "") -> dict | None:
    """Keep a delivery callback in delivery_events and apply it to the outbox row (`outbox_id` from the
    StatusCallback URL, else the row sent as `provider_sid`) when `moves_on(its current status)` says so:
    the row takes status `apply` (default `status`; None records the event only). Returns the row (id,
    campaign_id, recipient, channel), or None when no row matches."""
    row = None
    if outbox_id is not None:
        row = db.conn.execute(f"SELECT {', '.join(_ROW)} FROM outbox WHERE id = ?", [outbox_id]).fetchone()
    if row is None and provider_sid:
        row = db.conn.execute(f"SELECT {', '.join(_ROW)} FROM outbox WHERE provider_sid = ?",
                              [provider_sid]).fetchone()
    db.conn.execute("INSERT INTO delivery_events (provider_sid, status, error_code, at, outbox_id) "
                    "VALUES (?, ?, ?, ?, ?)", [provider_sid, status, error_code, time.time(), row[0] if row else None])
    if row is None:
        return None
    apply = status if apply == "" else apply
    if apply and moves_on((row[1] or "").lower()):
        db.conn.execute("UPDATE outbox SET status = ?, error_code = ?, reason = coalesce(?, reason), "
                        "provider_sid = coalesce(provider_sid, ?), lease_until = NULL, updated_at = ? WHERE id = ?",
                        [apply, error_code or None, reason, provider_sid or None, stamp(), row[0]])
    return dict(zip(_ROW, row))


def mark_bad_number(db, phone: str, code: str, reason: str) -> None:
    """Remember a number the provider says cannot receive (never retried); skip its other waiting rows."""
    db.conn.execute("INSERT INTO bad_numbers (phone, code, reason, at) VALUES (?, ?, ?, ?) ON CONFLICT (phone) "
                    "DO UPDATE SET code = excluded.code, reason = excluded.reason, at = excluded.at",
                    [phone, code, reason, stamp()])
    _skip_waiting(db, phone, "bad number")


def skip_opted_out(db, phone: str) -> None:
    """Skip the waiting bulk rows of a number that opted out (a reply to its own question still goes)."""
    _skip_waiting(db, phone, "opted out")


def _skip_waiting(db, phone: str, reason: str) -> None:
    db.conn.execute(f"UPDATE outbox SET status = 'skipped', reason = ?, updated_at = ? "
                    f"WHERE recipient = ? AND status IN {WAITING!r} AND kind != 'reply'", [reason, stamp(), phone])


def recent_error_codes(db, campaign_id: int, last: int = 20) -> list[str]:
    """The error codes (or None) of the campaign's last `last` rows that got an answer, newest first."""
    return [r[0] for r in db.conn.execute(
        f"SELECT error_code FROM outbox WHERE campaign_id = ? AND status IN {ANSWERED!r} "
        "ORDER BY updated_at DESC, id DESC LIMIT ?", [campaign_id, last])]
