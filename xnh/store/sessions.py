"""Console sessions on the server: every write to `sessions`. The signed session cookie only names a
session (a random id); the user is logged in while that row is not ended. Logout ends it; a password
change ends the user's other sessions; an admin's reset or deactivation ends them all.

    sid = sessions.create(db, user_id, ip)     # at login
    sessions.valid(db, sid, user_id)           # on each request (Flask-Login's user loader)
    sessions.end(db, sid, "logout")
    sessions.end_all(db, user_id, "password changed", keep=sid)   # → how many were ended
Writes run inside the caller's transaction."""
import secrets

from .state import stamp


def create(db, user_id: int, ip: str) -> str:
    sid = secrets.token_urlsafe(32)
    db.conn.execute("INSERT INTO sessions (id, user_id, created_at, ip) VALUES (?, ?, ?, ?)",
                    [sid, user_id, stamp(), ip])
    return sid


def valid(db, sid: str | None, user_id) -> bool:
    if not sid:
        return False
    row = db.conn.execute("SELECT user_id, ended_at FROM sessions WHERE id = ?", [sid]).fetchone()
    return row is not None and row[1] is None and str(row[0]) == str(user_id)


def end(db, sid: str | None, why: str) -> None:
    if sid:
        db.conn.execute("UPDATE sessions SET ended_at = ?, ended_why = ? WHERE id = ? AND ended_at IS NULL",
                        [stamp(), why, sid])


def end_all(db, user_id: int, why: str, keep: str | None = None) -> int:
    """End every open session of `user_id` but `keep`; how many."""
    return db.conn.execute("UPDATE sessions SET ended_at = ?, ended_why = ? WHERE user_id = ? AND ended_at IS NULL "
                           "AND id IS NOT ?", [stamp(), why, user_id, keep]).rowcount
