"""Moving a payment notice to the channel its household reads: payments.py queues every notice as an SMS
to the claim's phone; a phone bound to a WeChat follower (`bindings`, channel "wechat") gets it as a WeChat
template message instead, and, where SMS go through a China provider's approved templates, the others as a
templated China SMS (channel "cnsms"). The SMS row is then `skipped` with the reason, so every notice is
counted once per channel it went to. Each new row holds the notice's fields (`{"template":
"payment_notice", "data": {…}}`: the masked name, month, hospital, visit, amount, payment date and way) for
the provider to word within its own limits when it sends.

    route_payments(db, wechat=True, cnsms=False)   # → rows moved; commits

The worker runs it before each claim: the look uses the outbox's (status, priority) index (payment
notices are priority 1), so 200,000 bulk rows waiting for the morning cost it nothing. Rows already claimed
or sent are never moved; the unique index on (kind, ref, recipient, channel) keeps a
notice from being queued twice on one channel."""
from ...privacy import mask_name
from ..db import writing
from ..state import stamp

_FIELDS = """json_object('template', 'payment_notice', 'data', json_object(
    'name', xnh_mask_name(c.name),
    'month', CASE WHEN length(c.admitted) >= 7 THEN CAST(substr(c.admitted, 6, 2) AS INTEGER) END,
    'hospital', coalesce(c.hospital, ''), 'visit', coalesce(c.visit_type, ''),
    'amount', coalesce(c.reimbursed, ''), 'paid_date', coalesce(c.paid_date, ''),
    'channel', coalesce(c.paid_channel, '')))"""
_PENDING = ("FROM outbox AS o JOIN claims AS c ON c.claim_id = o.ref "
            "WHERE o.status = 'pending' AND o.priority = 1 AND o.kind = 'payment' AND o.channel = 'sms' {extra}")
_WECHAT = "AND EXISTS (SELECT 1 FROM bindings AS b WHERE b.phone = o.recipient AND b.channel = 'wechat')"
_INSERT = """
INSERT OR IGNORE INTO outbox (kind, ref, recipient, channel, text, fields, priority, status, quiet_start,
                              quiet_end, created_at, updated_at)
SELECT o.kind, o.ref, {recipient}, '{channel}', o.text, {fields}, o.priority, 'pending', o.quiet_start,
       o.quiet_end, :now, :now
"""
_RECIPIENT = {"wechat": "(SELECT min(b.sender) FROM bindings AS b WHERE b.phone = o.recipient AND b.channel = 'wechat')",
              "cnsms": "o.recipient"}
_REASON = {"wechat": "sent on WeChat", "cnsms": "sent as China SMS"}


def route_payments(db, *, wechat: bool, cnsms: bool) -> int:
    """Move pending payment-notice SMS to WeChat (a bound phone, when `wechat`) and then, when `cnsms`,
    the rest to China SMS. Returns the rows moved. Commits (nothing is written when nothing waits)."""
    channels = [c for c, on in (("wechat", wechat), ("cnsms", cnsms)) if on]
    if not channels or not db.conn.execute(f"SELECT 1 {_PENDING.format(extra='')} LIMIT 1").fetchone():
        return 0
    db.conn.create_function("xnh_mask_name", 1, mask_name, deterministic=True)
    moved = 0
    with writing(db):
        for channel in channels:
            where = _PENDING.format(extra=_WECHAT if channel == "wechat" else "")
            params = {"now": stamp()}
            db.conn.execute(_INSERT.format(recipient=_RECIPIENT[channel], channel=channel, fields=_FIELDS) + where,
                            params)
            moved += db.conn.execute(
                f"UPDATE outbox SET status = 'skipped', reason = :reason, updated_at = :now WHERE id IN "
                f"(SELECT o.id {where})", {**params, "reason": _REASON[channel]}).rowcount
    return moved
