"""Open the SQLite database (WAL, migrations applied) and the small reads and writes of per-sender
state: conversation memory, identity attempts, verified sessions, bindings, subscriptions, handoff
tickets and the audit log. The SMS webhook keeps its processed MessageSids itself (bot/sms.py);
county data reads live in `county.py`.
"""
import json
import os
import time

from sqlite_utils import Database

from .. import clock
from .schema import migrations

STATE_TTL = 30 * 60  # conversation memory expires after 30 minutes of silence (real clock)
VERIFIED_TTL = 30 * 60


def db_path() -> str:
    return os.environ.get("XNH_DB", "xnh.db")


def open_db(path: str | None = None) -> Database:
    """The database at `path` (default XNH_DB), with WAL on and every migration applied."""
    path = path or db_path()
    db = Database(memory=True) if path == ":memory:" else Database(path)
    if path != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    migrations.apply(db)
    return db


def stamp() -> str:
    """The policy clock as an ISO string, for rows people read."""
    return clock.now().isoformat(timespec="seconds")


# -- conversation memory ---------------------------------------------------------------------------

def load_state(db: Database, sender: str) -> dict:
    rows = list(db.query("select state, updated_at from conversations where sender = ?", [sender]))
    if not rows or time.time() - rows[0]["updated_at"] > STATE_TTL:
        return {}
    return json.loads(rows[0]["state"])


def save_state(db: Database, sender: str, state: dict) -> None:
    # plain SQL: this runs for most messages, and sqlite-utils' upsert inspects the table each time
    with db.conn:
        if not state:
            db.conn.execute("delete from conversations where sender = ?", [sender])
            return
        db.conn.execute(
            "insert into conversations (sender, state, updated_at) values (?, ?, ?) "
            "on conflict (sender) do update set state = excluded.state, updated_at = excluded.updated_at",
            [sender, json.dumps(state, ensure_ascii=False), time.time()])


# -- identity ---------------------------------------------------------------------------------------

def failed_attempts_today(db: Database, sender: str) -> int:
    since = time.time() - 24 * 3600
    return db.execute("select count(*) from identity_attempts where sender = ? and at > ? and ok = 0",
                      [sender, since]).fetchone()[0]


def record_attempt(db: Database, sender: str, ok: bool) -> None:
    db["identity_attempts"].insert({"sender": sender, "at": time.time(), "ok": int(ok)})


def verify_sender(db: Database, sender: str, household_id: str) -> None:
    db["verified"].upsert({"sender": sender, "household_id": household_id,
                           "until": time.time() + VERIFIED_TTL}, pk="sender")


def verified_household(db: Database, sender: str) -> str | None:
    row = db.execute("select household_id, until from verified where sender = ?", [sender]).fetchone()
    return row[0] if row and row[1] > time.time() else None


# -- bindings (a Telegram user's shared phone) -------------------------------------------------------

def bind(db: Database, sender: str, phone: str, channel: str) -> None:
    db["bindings"].upsert({"sender": sender, "phone": phone, "channel": channel, "bound_at": stamp()},
                          pk="sender")
    audit(db, sender, "bind_phone", {"phone": phone, "channel": channel})


def bound_phone(db: Database, sender: str) -> str | None:
    row = db.execute("select phone from bindings where sender = ?", [sender]).fetchone()
    return row[0] if row else None


# -- subscriptions ----------------------------------------------------------------------------------

def set_subscribed(db: Database, phone: str, subscribed: bool, via: str) -> None:
    db["subscriptions"].upsert({"phone": phone, "subscribed": int(subscribed), "changed_at": stamp(),
                                "via": via}, pk="phone")
    audit(db, phone, "subscribe" if subscribed else "unsubscribe", {"via": via})


# -- handoff tickets ---------------------------------------------------------------------------------

def open_ticket(db: Database, sender: str, channel: str, question: str) -> int:
    table = db["handoff_tickets"]
    table.insert({"sender": sender, "channel": channel, "question": question[:500], "created_at": stamp(),
                  "status": "open"})
    return table.last_pk


# -- audit -------------------------------------------------------------------------------------------

def audit(db: Database, actor: str, action: str, detail: dict | None = None) -> None:
    db["audit_log"].insert({"at": stamp(), "actor": actor, "action": action,
                            "detail": json.dumps(detail or {}, ensure_ascii=False)})
