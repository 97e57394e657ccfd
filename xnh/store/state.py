"""The small reads and writes of per-sender state: conversation memory, identity attempts, verified
sessions, bindings, subscriptions, handoff tickets and the audit log. The SMS webhook keeps its
processed MessageSids itself (bot/sms.py); county data reads live in `county.py`, connections in `db.py`.

The writes here do not commit: they run inside the caller's transaction, so everything one message
changes is committed once, by the channel adapter that handled it (`store.db.message_db` for SMS, the web
simulator and Telegram; the CLI commits itself), or not at all.
"""
import json
import time
from dataclasses import asdict, dataclass, field, fields

from sqlite_utils import Database

from .. import clock
from . import db as _db


STATE_TTL = 30 * 60  # conversation memory expires after 30 minutes of silence (real clock)
VERIFIED_TTL = 30 * 60


def stamp() -> str:
    """The policy clock as an ISO string, for rows people read."""
    return clock.now().isoformat(timespec="seconds")


# -- plain SQL on the message path ----------------------------------------------------------------

# Writes run while a message is answered: plain SQL, because sqlite-utils' insert/upsert inspect the
# table's schema on every call (and commit).

def _upsert(db: Database, table: str, key: str, row: dict) -> None:
    """Insert `row` into `table` (a name from schema.py), or update its other columns when `key` exists."""
    columns = list(row)
    db.conn.execute(f"insert into {table} ({', '.join(columns)}) values ({', '.join('?' * len(columns))}) "
                    f"on conflict ({key}) do update set "
                    + ", ".join(f"{c} = excluded.{c}" for c in columns if c != key), list(row.values()))


# -- processed Twilio MessageSids (a retry gets the first delivery's reply) --------------------------

def processed_reply(db: Database, sid: str) -> str | None:
    """The reply already given to MessageSid `sid`, or None."""
    row = db.conn.execute("select reply from processed_messages where message_sid = ?", [sid]).fetchone()
    return row[0] if row else None


def remember_reply(db: Database, sid: str, sender: str, text: str) -> None:
    _upsert(db, "processed_messages", "message_sid",
            {"message_sid": sid, "sender": sender, "reply": text, "at": time.time()})


# -- conversation memory ---------------------------------------------------------------------------

@dataclass
class Conversation:
    """What the bot remembers of a sender between two messages (for STATE_TTL): what a short next
    message ("2", "县医院", an ID number) answers. Empty when nothing is pending."""

    pending: str | None = None  # "choice" (numbered topics) | "level" (an estimate without a level) | "verify"
    topics: list = field(default_factory=list)  # choice: the topic ids, numbered from 1
    area: str | None = None  # choice: another place the question was about (the answer says so)
    care_area: str | None = None  # choice: another place where the care was
    want: str | None = None  # verify: what to show once the sender is verified (claim_status | enrollment)
    # level: the estimate's facts, kept until the hospital is named
    total: str | None = None  # Decimal as text
    self_pay: str = "0"
    approximate: bool = False
    visit: str | None = None
    groups: list = field(default_factory=list)
    age: int | None = None
    urban: bool = False
    third_party: bool = False
    injury: bool = False
    already: str | None = None  # inpatient already reimbursed this year, as the message said it
    you_pay: bool = False  # the question asked what the patient pays (自己要掏多少)
    levels: list = field(default_factory=list)  # level: the rows of the numbered level table

    @classmethod
    def from_json(cls, text: str) -> "Conversation":
        """A stored conversation; fields it doesn't know (an older release's) are dropped."""
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def load_state(db: Database, sender: str) -> Conversation:
    row = db.conn.execute("select state, updated_at from conversations where sender = ?", [sender]).fetchone()
    if row is None or time.time() - row[1] > STATE_TTL:
        return Conversation()
    return Conversation.from_json(row[0])


def save_state(db: Database, sender: str, state: Conversation) -> None:
    if state == Conversation():
        db.conn.execute("delete from conversations where sender = ?", [sender])
        return
    _upsert(db, "conversations", "sender",
            {"sender": sender, "state": json.dumps(asdict(state), ensure_ascii=False), "updated_at": time.time()})


# -- identity ---------------------------------------------------------------------------------------

def failed_attempts_today(db: Database, sender: str) -> int:
    since = time.time() - 24 * 3600
    return db.conn.execute("select count(*) from identity_attempts where sender = ? and at > ? and ok = 0",
                      [sender, since]).fetchone()[0]


def record_attempt(db: Database, sender: str, ok: bool) -> None:
    db.conn.execute("insert into identity_attempts (sender, at, ok) values (?, ?, ?)",
                    [sender, time.time(), int(ok)])


def verify_sender(db: Database, sender: str, household_id: str) -> None:
    _upsert(db, "verified", "sender",
            {"sender": sender, "household_id": household_id, "until": time.time() + VERIFIED_TTL})


def verified_household(db: Database, sender: str) -> str | None:
    row = db.conn.execute("select household_id, until from verified where sender = ?", [sender]).fetchone()
    return row[0] if row and row[1] > time.time() else None


# -- bindings (a Telegram user's shared phone, a WeChat follower's proven one) -------------------

def bind(db: Database, sender: str, phone: str, channel: str) -> None:
    _upsert(db, "bindings", "sender", {"sender": sender, "phone": phone, "channel": channel, "bound_at": stamp()})
    audit(db, sender, "bind_phone", {"phone": phone, "channel": channel})


def bound_phone(db: Database, sender: str) -> str | None:
    row = db.conn.execute("select phone from bindings where sender = ?", [sender]).fetchone()
    return row[0] if row else None


def unbind(db: Database, sender: str) -> None:
    """Forget `sender`'s binding (a WeChat follower who unfollowed proves identity again on return)."""
    if db.conn.execute("delete from bindings where sender = ?", [sender]).rowcount:
        audit(db, sender, "unbind", {})


# -- subscriptions ----------------------------------------------------------------------------------

def set_subscribed(db: Database, phone: str, subscribed: bool, via: str) -> None:
    _upsert(db, "subscriptions", "phone",
            {"phone": phone, "subscribed": int(subscribed), "changed_at": stamp(), "via": via})
    audit(db, phone, "subscribe" if subscribed else "unsubscribe", {"via": via})


# -- handoff tickets: written by tickets.py (the inbox's module); the message path's functions, here too --

from .tickets import add_to_ticket, answer_ticket, open_ticket, open_tickets, ticket, tickets  # noqa: E402,F401


# -- audit -------------------------------------------------------------------------------------------

def audit(db: Database, actor: str, action: str, detail: dict | None = None) -> None:
    db.conn.execute("insert into audit_log (at, actor, action, detail) values (?, ?, ?, ?)",
                    [stamp(), actor, action, json.dumps(detail or {}, ensure_ascii=False)])


def audit_page(db: Database, actor: str | None, page: int, size: int) -> tuple[list[dict], int]:
    """One page (from 1) of the audit log, newest first, of one actor or all; and the number of entries."""
    where, params = ("where actor = ?", [actor]) if actor else ("", [])
    total = db.conn.execute(f"select count(*) from audit_log {where}", params).fetchone()[0]
    rows = _db.rows(db, f"select id, at, actor, action, detail from audit_log {where} order by id desc "
                        "limit ? offset ?", [*params, size, (page - 1) * size])
    return rows, total
