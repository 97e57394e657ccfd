"""One outbox for every message that leaves: broadcasts, payment notices, clerks' answers to tickets.
Every write to the `outbox` table (and to `delivery_events`, `bad_numbers`, `rate_buckets`) lives in
this package, one module a concern:

    queueing.py   a clerk's answer (commits), a campaign's recipients, a campaign's cancellation
    claims.py     what the worker writes: claiming a due row just before its send, with its send slot; each
                  attempt's outcome; settling the rows of a worker that died (release, unknown, resend)
    delivery.py   delivery callbacks (delivery_events), bad numbers, skipping an opted-out number's rows
    payments.py   payment notices derived from the claim history after a sync
    templated.py  rows carrying an approved template (China SMS replies, payment-period notices), a number's rows today
    routing.py    a payment notice moved to WeChat (a bound phone) or to China SMS (approved templates)
    reads.py      counts, failures, stale claims, the backlog's age
    statuses.py   the row statuses, kinds and priorities

    from xnh.store import outbox
    outbox.queue_reply(db, channel="sms", recipient="13800009001", text="…", ref="ticket:12")  # → row id
    outbox.derive_payment_notices(db)          # after a sync: the number queued
    outbox.counts(db, campaign_id)             # {"pending": 120, "delivered": 3000, …}
    outbox.failures(db, campaign_id)           # {"bad number": 4, "opted out": 2, …}

The table is the truth (GOV.UK Notify's habit): a worker only claims rows from it, and every outcome is
written back to the row. A row is unique per (campaign, recipient, channel), or per (kind, ref,
recipient, channel) outside campaigns. Its status only moves forward:

    pending ─> claimed (worker, claimed_at, lease_until) ─> submitted (provider_sid) ─> sent ─> delivered | undelivered | failed
       │  ^       ├─> retry_wait (next_attempt_at, attempts) ─> claimed …      └─> failed (never submitted)
       │  └───────┤  release: the provider never had it (a stopped worker's unsent row, or none in the provider's list)
       │          └─> unknown: a dead worker's row the provider could not be asked about ─> (a clerk resends) pending
       └─> skipped (reason: opted out, bad number, old payment, …) | cancelled

A row is claimed just before its own send (never in batches held across sends). A row still `claimed`
after its worker died (xnh/broadcast/worker.py `reconcile`) is looked up in the provider's own list of
messages since its claim: found, it is recorded as submitted; absent, it is released and sent again; when
the provider cannot say (no list, an error), it becomes `unknown` and waits for a clerk.

Priority: 0 a clerk's answer to a person's own question, 1 a payment notice, 2 a broadcast; the worker
takes lower numbers first. Recipients are phones ("13800009001") for SMS (Twilio's "sms", a China provider's
"cnsms"), "tg:<chat id>" for Telegram and "wx:<openid>" for WeChat. A "cnsms" or WeChat-notice row carries its
template and fields (JSON) in `fields`, `text` being the same words for the record.
The writes run inside the caller's transaction (`store.db.writing`) unless a function says it commits.
"""
from .claims import (CLAIMED, GONE, LATER, LEASE, SAFETY, Unsendable, claim_row, claimed_rows, due, due_soon,
                     mark_failed, mark_retry, mark_submitted, mark_unknown, release, resend_unknown, reserve, settle)
from .delivery import mark_bad_number, recent_error_codes, record_delivery, skip_opted_out
from .payments import derive_payment_notices, payment_text, queue_payment, queue_payments_from
from .queueing import cancel_waiting, queue_campaign, queue_reply, queue_reply_row
from .routing import route_payments
from .templated import queue_notices, queue_templated, queued_today
from .reads import (counts, failures, json_fields, last_id, oldest_due_age, payment_notices_since, stale_claims,
                    unknown_rows)
from .statuses import NOT_DELIVERED, PRIORITY, STATUSES, WAITING, OutboxError

__all__ = ["CLAIMED", "GONE", "LATER", "LEASE", "SAFETY", "Unsendable", "claim_row", "claimed_rows", "due",
           "due_soon", "mark_failed", "mark_retry", "mark_submitted", "mark_unknown", "release", "resend_unknown",
           "reserve", "settle", "unknown_rows", "mark_bad_number", "recent_error_codes", "record_delivery", "skip_opted_out",
           "derive_payment_notices", "payment_text", "queue_payment", "queue_payments_from", "cancel_waiting",
           "queue_campaign", "queue_reply", "queue_reply_row", "route_payments", "queue_notices", "queue_templated", "queued_today", "counts", "failures", "json_fields", "last_id", "oldest_due_age", "payment_notices_since", "stale_claims",
           "NOT_DELIVERED", "PRIORITY", "STATUSES", "WAITING", "OutboxError"]
