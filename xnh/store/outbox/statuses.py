"""The outbox's own words: row statuses, kinds and their priority (see the package docstring)."""
STATUSES = ("pending", "claimed", "retry_wait", "submitted", "sent", "delivered", "undelivered", "failed",
            "skipped", "cancelled", "unknown")
WAITING = ("pending", "retry_wait")
NOT_DELIVERED = ("failed", "undelivered", "skipped")
ANSWERED = ("submitted", "sent", "delivered", "undelivered", "failed")  # the provider said something
PRIORITY = {"reply": 0, "payment": 1, "broadcast": 2}  # lower first: a clerk's answer before bulk
CHANNELS = ("sms", "telegram", "wechat", "cnsms")


class OutboxError(ValueError):
    """A message that cannot be queued (unknown channel, empty text, bad recipient)."""


def channel_list(channels) -> str:
    """The known channels among `channels` as an SQL list ('sms','telegram'), or '' when none."""
    return ",".join(f"'{c}'" for c in channels if c in CHANNELS)
