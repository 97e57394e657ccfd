"""Console users and their logins: `xnh user add` and the console's user pages write here.

    from xnh.store import users
    users.add(db, "wang", "a long password", role="clerk", actor="cli")
    user = users.check_password(db, "wang", "a long password")   # the row, or None

Passwords are hashed with argon2id (argon2-cffi's defaults); the hash is re-made with newer
parameters when they change (`check_password` rehashes). A password must be at least MIN_PASSWORD
characters, not contain the user's name, and be one zxcvbn (Dropbox's estimator, with its lists of common
passwords, names and keyboard patterns) scores at least MIN_SCORE of 4: 12345678, password, abcdefghij
and rootpass1 are refused. A user is disabled, never deleted, so the audit log keeps naming who did what.
Failed logins are limited three ways in FAILURE_WINDOW (`too_many_failures`): a name from one address
(MAX_FAILURES), one address over every name (MAX_PER_ADDRESS: spraying one password over many names),
and one name from every address (MAX_PER_NAME: a slow attack from many addresses; higher, so that one
stranger cannot lock a clerk out). The address is the connection's own unless XNH_PROXY_HOPS trusts a
proxy's X-Forwarded-For. Writes commit nothing: the caller's transaction does (a console request, the CLI).
"""
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlite_utils import Database

from . import db as _db
from .state import audit, stamp

ROLES = ("clerk", "admin")
MIN_PASSWORD = 10
MIN_SCORE = 3  # zxcvbn's 0-4: 3 is "safely unguessable: moderate protection from offline slow-hash attacks"
MAX_FAILURES = 5  # a name from one address
MAX_PER_ADDRESS = 20  # one address, whatever the names
MAX_PER_NAME = 20  # one name, whatever the addresses
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
    problem = password_problem(password, name)
    if problem:
        raise UserError(problem)
    if get_by_name(db, name):
        raise UserError(f"用户名已存在 / user {name!r} already exists")
    cursor = db.conn.execute(
        "insert into users (name, password_hash, role, active, created_at, created_by) values (?, ?, ?, 1, ?, ?)",
        [name, _hasher.hash(password), role, stamp(), actor])
    audit(db, actor, "user_add", {"name": name, "role": role})
    return cursor.lastrowid


def password_problem(password: str | None, name: str = "") -> str | None:
    """Why `password` may not be used (too short, contains the name, common or easy to guess), or None."""
    from zxcvbn import zxcvbn

    password = password or ""
    if len(password) < MIN_PASSWORD:
        return f"密码至少{MIN_PASSWORD}个字符 / the password needs at least {MIN_PASSWORD} characters"
    if name and name.lower() in password.lower():
        return "密码不能包含用户名 / the password must not contain the user name"
    if zxcvbn(password[:100], user_inputs=[name, "xnh", "新农合", "合管办"])["score"] < MIN_SCORE:
        return ("密码太常见或太容易猜(如 12345678、password、姓名加数字),请用几个不相关的词加数字或符号 / "
                "the password is common or easy to guess: use a few unrelated words with digits or symbols")
    return None


def set_password(db: Database, user_id: int, password: str, actor: str, must_change: bool = False) -> None:
    """A new password for the user (checked by the policy); `must_change`: an admin set it, the user must
    change it at the next login. Ending the user's sessions is the caller's (store/sessions.py)."""
    user = get(db, user_id)
    if user is None:
        raise UserError("没有这个用户 / no such user")
    problem = password_problem(password, user["name"])
    if problem:
        raise UserError(problem)
    db.conn.execute("update users set password_hash = ?, must_change = ?, password_changed_at = ? where id = ?",
                    [_hasher.hash(password), int(must_change), stamp(), user_id])
    audit(db, actor, "password_reset" if must_change else "password_change", {"name": user["name"]})


def check_current(db: Database, user_id: int, password: str) -> bool:
    """True when `password` is the user's own now (a password change asks for it first)."""
    user = get(db, user_id)
    try:
        return bool(user) and _hasher.verify(user["password_hash"], password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def get(db: Database, user_id) -> dict | None:
    found = _db.rows(db, "select * from users where id = ?", [user_id])
    return found[0] if found else None


def get_by_name(db: Database, name: str) -> dict | None:
    found = _db.rows(db, "select * from users where name = ?", [name])
    return found[0] if found else None


def all_users(db: Database) -> list[dict]:
    return _db.rows(db, "select id, name, role, active, created_at, created_by, must_change from users order by name")


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


def too_many_failures(db: Database, name: str, ip: str) -> str | None:
    """Why a login of `name` from `ip` is refused now without checking the password ("name_ip",
    "address", "name": see the module docstring), or None."""
    since = time.time() - FAILURE_WINDOW
    for why, where, params, most in (("name_ip", "name = ? and ip = ?", [name, ip], MAX_FAILURES),
                                     ("address", "ip = ?", [ip], MAX_PER_ADDRESS),
                                     ("name", "name = ?", [name], MAX_PER_NAME)):
        failed = db.conn.execute(f"select count(*) from login_attempts where {where} and at > ? and ok = 0",
                                 [*params, since]).fetchone()[0]
        if failed >= most:
            return why
    return None


_DUMMY = _hasher.hash("not a password of anyone")
