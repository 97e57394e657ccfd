"""What a provider's answer does, decided once for the worker and the delivery callbacks alike: the row
(retry, fail, skip) and, through `apply_to_number`, the number and the campaign (an opt-out recorded and
its waiting bulk rows skipped, a bad number remembered, a burst of carrier blocks pausing the campaign).
What each answer *means* is the provider module's (`xnh/providers/`); this module only carries it out,
inside the caller's transaction."""
import logging
import random

from ..providers import base, twilio
from ..store import campaigns as store_campaigns
from ..store import outbox, state

logger = logging.getLogger(__name__)
PHONES = ("sms", "cnsms")  # channels whose recipients are phone numbers


def record_attempt(db, row: dict, action: base.Action, code: str | None) -> None:
    """Record a failed attempt on a claimed row as `action` says, then what it does to the number."""
    rid, attempts = row["id"], (row.get("attempts") or 0) + 1
    if action.kind == "retry_free":
        outbox.mark_retry(db, rid, delay=base.RATE_LIMITED_DELAY, counts=False, reason=action.reason, code=code)
    elif action.kind == "retry" and attempts < base.MAX_ATTEMPTS:
        outbox.mark_retry(db, rid, delay=base.backoff(attempts, random.random()), counts=True,
                          reason=action.reason, code=code, maybe_sent=action.maybe_sent)
    elif action.kind == "retry_once" and row.get("error_code") != str(code):
        outbox.mark_retry(db, rid, delay=twilio.RETRY_ONCE_DELAY, counts=True, reason=action.reason, code=code)
    elif action.kind == "opt_out":
        outbox.mark_failed(db, rid, reason=action.reason, code=code, status="skipped")
    elif action.kind == "bad_number":
        outbox.mark_failed(db, rid, reason=action.reason, code=code)
    else:
        reason = action.reason if action.kind != "retry" else f"{action.reason}, gave up after {attempts} attempts"
        outbox.mark_failed(db, rid, reason=reason, code=code, maybe_sent=action.maybe_sent)
    apply_to_number(db, row, action, code)


def apply_to_number(db, row: dict, action: base.Action, code: str | None) -> None:
    """What an answer means for the row's number (SMS) and its campaign, from a send or a callback."""
    phone = row["recipient"]
    if action.kind == "opt_out" and row["channel"] in PHONES:
        state.set_subscribed(db, phone, False, via=f"{row['channel']} {code}")
        outbox.skip_opted_out(db, phone)
    elif action.kind == "bad_number" and row["channel"] in PHONES:
        outbox.mark_bad_number(db, phone, str(code), action.reason)
    elif action.kind == "burst" and row.get("campaign_id"):
        check_burst(db, row["campaign_id"])


def check_burst(db, campaign_id: int) -> None:
    """Pause the campaign when its recent answers hold a burst of carrier blocks, and say so in the audit log."""
    if twilio.is_burst(outbox.recent_error_codes(db, campaign_id, twilio.BURST_WINDOW)):
        why = (f"运营商拦截过多 / carrier blocked or filtered at least {twilio.BURST} of the last "
               f"{twilio.BURST_WINDOW} messages (30004/30007): check the text with the carrier, then resume")
        if store_campaigns.pause(db, campaign_id, why):
            state.audit(db, "worker", "campaign_pause", {"campaign": campaign_id, "reason": why})
            logger.warning("campaign %s paused: %s", campaign_id, why)
