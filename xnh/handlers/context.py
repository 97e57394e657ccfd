"""What a handler gets besides the message: the database, the normalised text, the sender's
conversation memory, the policy date, and who the sender is in the county data."""
import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

from sqlite_utils import Database

from ..store import county
from ..store import state as store
from ..store.state import Conversation
from ..message import Message
from ..privacy import normalize_phone


@dataclass
class Context:
    message: Message
    db: Database
    text: str  # normalised
    today: dt.date
    state: Conversation = field(default_factory=Conversation)  # conversation memory; handlers replace it

    @cached_property
    def phone(self) -> str | None:
        """The sender's phone: the message's own, or the one a Telegram user shared."""
        if self.message.phone:
            return normalize_phone(self.message.phone)
        if self.message.sender.startswith("tg:"):
            bound = store.bound_phone(self.db, self.message.sender)
            return normalize_phone(bound) if bound else None
        return normalize_phone(self.message.sender)

    @cached_property
    def _own_members(self) -> list[dict]:
        """The members whose own 联系电话 is the sender's phone."""
        return county.members_by_phone(self.db, self.phone) if self.phone else []

    @cached_property
    def households(self) -> list[str]:
        """Households the sender may see: bound to the phone, or verified by ID number + name."""
        found = sorted({m["household_id"] for m in self._own_members})
        verified = store.verified_household(self.db, self.message.sender)
        if verified and verified not in found:
            found.append(verified)
        return found

    @cached_property
    def me(self) -> dict | None:
        """The one member whose own phone this is (for personal estimates), else None."""
        rows = self._own_members
        return rows[0] if len(rows) == 1 else None
