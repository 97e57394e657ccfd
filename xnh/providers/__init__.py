"""Outbound providers: one module each, holding everything about that provider in one place (courier's
habit: `handlers/twiml/`), so that the next one (WeChat's customer messages, a China SMS gateway) is a new
module beside these, not edits across the tree.

    twilio.py     SMS: send, its error codes and what each does (to the row, the number, the campaign),
                  the delivery-callback statuses and how they move an outbox row, part counting
    telegram.py   Telegram messages through python-telegram-bot's Bot
    wechat.py     WeChat customer-service messages (in their window) and template notices, through wechatpy;
                  the access token kept in the database for every process (stable-token call)
    cnsms.py      SMS inside China through approved templates (cnsms_templates.toml): Aliyun, Tencent
    segments.py   SMS part counting (GSM-7 / UCS-2), shared by every SMS provider and the SMS adapter

A provider module offers: a sender class built from `xnh.settings.Settings` with `configured` and
`send(row) -> Result`, `classify(result) -> Action` (what one failed attempt means), `parts(text)` (what a
message costs) and, where the provider calls back, the callback statuses. The worker
(xnh/broadcast/worker.py) picks a provider by the row's channel (`for_channel`) and does what the Action
says through xnh/broadcast/outcomes.py; nothing here touches the database.

Shared by every provider (base.py): `Result` (one attempt's outcome), `Action` (what it means),
`classify_http` (what any HTTP answer means), the retry back-off. Action kinds:
    retry_free   wait and try again without counting an attempt (HTTP 429: too many requests)
    retry        exponential backoff with jitter, at most MAX_ATTEMPTS attempts (5xx, timeouts, connection
                 errors); `maybe_sent` says the message may have been sent all the same
    retry_once   try once more, later (the handset is unreachable, maybe switched off)
    opt_out      the number opted out with the provider: recorded in subscriptions, skipped
    bad_number   the number cannot receive: remembered in bad_numbers, never retried
    burst        blocked or filtered by the carrier: this row fails; a burst of them in one campaign pauses it
    fail         anything else: failed, with the code as the reason
"""
from . import cnsms, telegram, twilio, wechat
from .base import Action, Result


def for_channel(channel: str):
    """The provider module that sends `channel`'s rows."""
    return {"sms": twilio, "telegram": telegram, "wechat": wechat, "cnsms": cnsms}[channel]


__all__ = ["Action", "Result", "cnsms", "for_channel", "telegram", "twilio", "wechat"]
