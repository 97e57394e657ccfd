"""The two values every channel exchanges with the core: a Message in, a Reply out."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    """What a channel adapter hands to `respond()`: the text, who sent it, over which channel."""

    text: str
    sender: str  # a normalised phone number (sms/web/cli) or "tg:<user id>"
    channel: str = "sms"  # sms | telegram | web | cli
    phone: str | None = None  # the phone bound to the sender (Telegram users share theirs)


@dataclass
class Reply:
    """What the handlers produce: the intent, the template that words it, and the facts it shows."""

    intent: str  # estimate | policy | claim_status | enrollment | unsubscribe | subscribe | handoff | help
    template: str  # a name under templates/<channel>/, without extension
    data: dict = field(default_factory=dict)
    text: str = ""  # filled in by rendering

    def facts(self) -> dict:
        """The machine-readable part for `xnh ask --json`."""
        out = {"intent": self.intent, "reply": self.text}
        if "estimate" in self.data:
            out["estimate"] = self.data["estimate"]
        return out
