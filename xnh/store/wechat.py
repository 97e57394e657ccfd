"""The WeChat official account's own tables (every write to them is here):

    wechat_replies   the reply given to each inbound message, by MsgId (or "<openid>:<CreateTime>" for an
                     event, as WeChat's documentation says to deduplicate them): its three retries get it again
    wechat_users     each follower: following or not, when they last wrote or clicked, and how many
                     customer-service messages went since (WeChat's 48-hour window and its count limits)
    wechat_tokens    the access token of each AppID, shared by every process (the stable-token call fills it)

    reply_for(db, key) / remember_reply(db, key, sender, text)       inside the message's transaction
    note_interaction(db, openid, "message" | "event")                 a message or a menu click opens a window
    cs_allowance(db, openid) → None | reason                          may a customer-service message go now?
    Ledger(path)                                                       the same for the worker's threads (commits)

The writes run inside the caller's transaction unless the function (or the Ledger) says it commits.
"""
import time

from . import db as _db

MESSAGE_WINDOW, MESSAGE_QUOTA = 48 * 3600.0, 5  # after a user's message: 5 messages within 48 hours
EVENT_WINDOW, EVENT_QUOTA = 60.0, 3  # after a menu click or a follow: 3 messages within a minute
KEEP_REPLIES = 24 * 3600.0  # WeChat retries within seconds; a day of replies is plenty


# -- replies by MsgId ------------------------------------------------------------------------------------

def reply_for(db, key: str) -> str | None:
    """The reply already given to message `key`, or None."""
    row = db.conn.execute("SELECT reply FROM wechat_replies WHERE msg_key = ?", [key]).fetchone()
    return row[0] if row else None


def remember_reply(db, key: str, sender: str, text: str, now: float | None = None) -> None:
    """Keep the reply to message `key` (and forget replies older than KEEP_REPLIES, a few at a time)."""
    now = time.time() if now is None else now
    db.conn.execute("INSERT INTO wechat_replies (msg_key, sender, reply, at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (msg_key) DO UPDATE SET reply = excluded.reply, at = excluded.at",
                    [key, sender, text, now])
    db.conn.execute("DELETE FROM wechat_replies WHERE rowid IN (SELECT rowid FROM wechat_replies WHERE at < ? "
                    "LIMIT 20)", [now - KEEP_REPLIES])


# -- followers and the customer-service window -------------------------------------------------------------

def note_interaction(db, openid: str, kind: str, now: float | None = None) -> None:
    """A follower wrote ("message": a voice message too) or clicked the menu / followed ("event"): it opens
    WeChat's window for customer-service messages and resets its count."""
    now = time.time() if now is None else now
    column = "last_message_at" if kind == "message" else "last_event_at"
    count = "cs_since_message" if kind == "message" else "cs_since_event"
    db.conn.execute(f"INSERT INTO wechat_users (openid, following, {column}, {count}, updated_at) "
                    f"VALUES (?, 1, ?, 0, ?) ON CONFLICT (openid) DO UPDATE SET following = 1, "
                    f"{column} = excluded.{column}, {count} = 0, updated_at = excluded.updated_at",
                    [openid, now, now])


def set_following(db, openid: str, following: bool, now: float | None = None) -> None:
    """A follow (subscribe) or unfollow (unsubscribe) event."""
    now = time.time() if now is None else now
    db.conn.execute("INSERT INTO wechat_users (openid, following, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (openid) DO UPDATE SET following = excluded.following, "
                    "updated_at = excluded.updated_at", [openid, int(following), now])


def cs_allowance(db, openid: str, now: float | None = None) -> str | None:
    """None when a customer-service message may go to `openid` now, else why not (WeChat would refuse it
    with 45015 or 45047): not following, no interaction within the window, or the window's quota used."""
    now = time.time() if now is None else now
    row = db.conn.execute("SELECT following, last_message_at, last_event_at, cs_since_message, cs_since_event "
                          "FROM wechat_users WHERE openid = ?", [openid]).fetchone()
    if row is None or not row[0]:
        return "not following the official account"
    following, message_at, event_at, since_message, since_event = row
    if message_at and now - message_at < MESSAGE_WINDOW and since_message < MESSAGE_QUOTA:
        return None
    if event_at and now - event_at < EVENT_WINDOW and since_event < EVENT_QUOTA:
        return None
    if message_at and now - message_at < MESSAGE_WINDOW:
        return f"customer-service quota used ({MESSAGE_QUOTA} since the last message)"
    return "outside WeChat's 48-hour customer-service window"


def note_cs_sent(db, openid: str) -> None:
    """One customer-service message went: it counts against the open windows."""
    db.conn.execute("UPDATE wechat_users SET cs_since_message = cs_since_message + 1, "
                    "cs_since_event = cs_since_event + 1 WHERE openid = ?", [openid])


def is_following(db, openid: str) -> bool:
    row = db.conn.execute("SELECT following FROM wechat_users WHERE openid = ?", [openid]).fetchone()
    return bool(row and row[0])


# -- the access token ---------------------------------------------------------------------------------------

def token(db, app_id: str) -> tuple[str, float] | None:
    """(access token, expires_at) of `app_id`, or None."""
    row = db.conn.execute("SELECT token, expires_at FROM wechat_tokens WHERE app_id = ?", [app_id]).fetchone()
    return (row[0], row[1]) if row else None


def put_token(db, app_id: str, token_: str, expires_at: float) -> None:
    """Keep a token fetched now; a token that expires later (another process's fetch) is kept instead."""
    db.conn.execute("INSERT INTO wechat_tokens (app_id, token, expires_at, fetched_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (app_id) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at, "
                    "fetched_at = excluded.fetched_at WHERE excluded.expires_at >= wechat_tokens.expires_at "
                    "OR excluded.token = wechat_tokens.token",
                    [app_id, token_, expires_at, time.time()])


def forget_token(db, app_id: str, token_: str) -> None:
    """WeChat said `token_` is no longer valid: drop it (unless another process already replaced it)."""
    db.conn.execute("DELETE FROM wechat_tokens WHERE app_id = ? AND token = ?", [app_id, token_])


class Ledger:
    """What the WeChat provider (xnh/providers/wechat.py) keeps in the service file, from the worker's
    sending threads: each call is its own short transaction on the thread's connection (commits)."""

    def __init__(self, path: str):
        self.path = path

    def _db(self):
        return _db.thread_db(self.path)

    def token(self, app_id: str) -> tuple[str, float] | None:
        db = self._db()
        found = token(db, app_id)
        _db.finish(db)
        return found

    def put_token(self, app_id: str, token_: str, expires_at: float) -> None:
        db = self._db()
        with _db.writing(db):
            put_token(db, app_id, token_, expires_at)

    def forget_token(self, app_id: str, token_: str) -> None:
        db = self._db()
        with _db.writing(db):
            forget_token(db, app_id, token_)

    def cs_allowance(self, openid: str) -> str | None:
        db = self._db()
        why = cs_allowance(db, openid)
        _db.finish(db)
        return why

    def note_cs_sent(self, openid: str) -> None:
        db = self._db()
        with _db.writing(db):
            note_cs_sent(db, openid)
