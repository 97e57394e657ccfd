"""The small reads and writes of per-sender state: conversation memory, identity attempts, verified
sessions, bindings, subscriptions, handoff tickets and the audit log. The SMS webhook keeps its
processed MessageSids itself (bot/sms.py); county data reads live in `county.py`, connections in `db.py`.

The writes here do not commit: they run inside the caller's transaction, so everything one message
changes is committed once, by the channel adapter that handled it (`store.db.message_db` for SMS, the web
simulator and Telegram; the CLI commits itself), or not at all.
"""
import json
import time

from sqlite_utils import Database

from .. import clock
from .db import rows  # noqa: F401 - the multi-row reads here (open_tickets, on main) use it


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

def load_state(db: Database, sender: str) -> dict:
    row = db.conn.execute("select state, updated_at from conversations where sender = ?", [sender]).fetchone()
    if row is None or time.time() - row[1] > STATE_TTL:
        return {}
    return json.loads(row[0])


def save_state(db: Database, sender: str, state: dict) -> None:
    if not state:
        db.conn.execute("delete from conversations where sender = ?", [sender])
        return
    _upsert(db, "conversations", "sender",
            {"sender": sender, "state": json.dumps(state, ensure_ascii=False), "updated_at": time.time()})


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


# -- bindings (a Telegram user's shared phone) -------------------------------------------------------

def bind(db: Database, sender: str, phone: str, channel: str) -> None:
    _upsert(db, "bindings", "sender", {"sender": sender, "phone": phone, "channel": channel, "bound_at": stamp()})
    audit(db, sender, "bind_phone", {"phone": phone, "channel": channel})


def bound_phone(db: Database, sender: str) -> str | None:
    row = db.conn.execute("select phone from bindings where sender = ?", [sender]).fetchone()
    return row[0] if row else None


# -- subscriptions ----------------------------------------------------------------------------------

def set_subscribed(db: Database, phone: str, subscribed: bool, via: str) -> None:
    _upsert(db, "subscriptions", "phone",
            {"phone": phone, "subscribed": int(subscribed), "changed_at": stamp(), "via": via})
    audit(db, phone, "subscribe" if subscribed else "unsubscribe", {"via": via})


# -- handoff tickets ---------------------------------------------------------------------------------

def open_ticket(db: Database, sender: str, channel: str, question: str) -> int:
    cursor = db.conn.execute("insert into handoff_tickets (sender, channel, question, created_at, status) "
                             "values (?, ?, ?, ?, 'open')", [sender, channel, question[:500], stamp()])
    return cursor.lastrowid


# -- audit -------------------------------------------------------------------------------------------

def audit(db: Database, actor: str, action: str, detail: dict | None = None) -> None:
    db.conn.execute("insert into audit_log (at, actor, action, detail) values (?, ?, ?, ?)",
                    [stamp(), actor, action, json.dumps(detail or {}, ensure_ascii=False)])
