"""Console users and their logins: `xnh user add` and the console's user pages write here.

    from xnh.store import users
    users.add(db, "wang", "a long password", role="clerk", actor="cli")
    user = users.check_password(db, "wang", "a long password")   # the row, or None

Passwords are hashed with argon2id (argon2-cffi's defaults); the hash is re-made with newer
parameters when they change (`check_password` rehashes). A user is disabled, never deleted, so the
audit log keeps naming who did what. Failed logins are counted per name and address
(`too_many_failures`): 5 in 15 minutes and the next attempts are refused without checking the
password. Writes commit nothing: the caller's transaction does (a console request, or the CLI).
"""
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlite_utils import Database

from . import db as _db
from .state import audit, stamp

ROLES = ("clerk", "admin")
MIN_PASSWORD = 8
MAX_FAILURES = 5
FAILURE_WINDOW = 15 * 60  # seconds, real clock
_hasher = PasswordHasher()


class UserError(ValueError):
    """A user cannot be added or changed (bad name, role or password, a name already taken)."""


def add(db: Database, name: str, password: str, role: str, actor: str) -> int:
    """Add an active user; returns its id. Raises UserError with a one-line reason."""
    name = (name or "").strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise UserError("用户名不能为空、不能含空格、最多64个字符 / the name must be 1-64 characters without spaces")
    if role not in ROLES:
        raise UserError(f"角色只能是 clerk 或 admin / role must be clerk or admin, not {role!r}")
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"密码至少{MIN_PASSWORD}个字符 / the password needs at least {MIN_PASSWORD} characters")
    if get_by_name(db, name):
        raise UserError(f"用户名已存在 / user {name!r} already exists")
    cursor = db.conn.execute(
        "insert into users (name, password_hash, role, active, created_at, created_by) values (?, ?, ?, 1, ?, ?)",
        [name, _hasher.hash(password), role, stamp(), actor])
    audit(db, actor, "user_add", {"name": name, "role": role})
    return cursor.lastrowid


def get(db: Database, user_id) -> dict | None:
    found = _db.rows(db, "select * from users where id = ?", [user_id])
    return found[0] if found else None


def get_by_name(db: Database, name: str) -> dict | None:
    found = _db.rows(db, "select * from users where name = ?", [name])
    return found[0] if found else None


def all_users(db: Database) -> list[dict]:
    return _db.rows(db, "select id, name, role, active, created_at, created_by from users order by name")


def set_active(db: Database, user_id: int, active: bool, actor: str) -> dict:
    """Disable (or enable again) a user; a disabled user's session ends at its next request."""
    user = get(db, user_id)
    if user is None:
        raise UserError("没有这个用户 / no such user")
    db.conn.execute("update users set active = ? where id = ?", [int(active), user_id])
    audit(db, actor, "user_enable" if active else "user_disable", {"name": user["name"]})
    return user


def check_password(db: Database, name: str, password: str) -> dict | None:
    """The active user `name` when `password` is theirs, else None (an unknown name costs a hash too)."""
    user = get_by_name(db, name)
    try:
        if user is None:
            _hasher.verify(_DUMMY, password or "")
            return None
        _hasher.verify(user["password_hash"], password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not user["active"]:
        return None
    if _hasher.check_needs_rehash(user["password_hash"]):
        db.conn.execute("update users set password_hash = ? where id = ?", [_hasher.hash(password), user["id"]])
    return user


def record_login(db: Database, name: str, ip: str, ok: bool) -> None:
    db.conn.execute("insert into login_attempts (name, ip, at, ok) values (?, ?, ?, ?)",
                    [name, ip, time.time(), int(ok)])


def too_many_failures(db: Database, name: str, ip: str) -> bool:
    """True when `name` from `ip` failed MAX_FAILURES times in the last FAILURE_WINDOW seconds."""
    since = time.time() - FAILURE_WINDOW
    failed = db.conn.execute("select count(*) from login_attempts where name = ? and ip = ? and at > ? and ok = 0",
                             [name, ip, since]).fetchone()[0]
    return failed >= MAX_FAILURES


_DUMMY = _hasher.hash("not a password of anyone")
