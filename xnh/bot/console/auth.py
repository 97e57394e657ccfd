"""Logging in and out, changing one's password, and the admins' user management (/console/users).

Sessions live on the server (store/sessions.py): the signed cookie only names one, so a logout, a
password change (the user's other sessions), an admin's reset or a deactivation (all of them) end a
session for good, even for a copy of its cookie. Failed logins are limited per name and address, per
address and per name (store/users.py `too_many_failures`); the address is the connection's, or the
proxy's X-Forwarded-For when XNH_PROXY_HOPS trusts it (app.py applies ProxyFix then)."""
from urllib.parse import urlsplit

from flask import redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ...store import sessions, state
from ...store import users as store_users
from .. import request_db
from .common import ConsoleUser, act, bp, role_required

BLOCKED = {"name_ip": "这个账号从本机登录失败次数过多,请15分钟后再试。",
           "address": "本机登录失败次数过多,请15分钟后再试。",
           "name": "这个账号登录失败次数过多,已暂时锁定15分钟;如不是本人所为,请告诉管理员。"}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; failures are limited (see the module docstring)."""
    if request.method == "GET":
        return render_template("console/login.html", next=request.args.get("next", ""))
    db = request_db.get_db()
    name = request.form.get("name", "").strip()[:64]
    ip = request.remote_addr or "?"
    blocked = store_users.too_many_failures(db, name, ip)
    if blocked:
        store_users.record_login(db, name, ip, False)
        state.audit(db, name or "?", "login_blocked", {"via": "console", "ip": ip, "reason": blocked})
        return render_template("console/login.html", error=BLOCKED[blocked], name=name), 429
    user = store_users.check_password(db, name, request.form.get("password", ""))
    store_users.record_login(db, name, ip, user is not None)
    if user is None:
        state.audit(db, name or "?", "login_failed", {"via": "console", "ip": ip})
        return render_template("console/login.html", error="用户名或密码不对。", name=name), 401
    session.clear()
    session["sid"] = sessions.create(db, user["id"], ip)
    login_user(ConsoleUser(user))
    session.permanent = True  # PERMANENT_SESSION_LIFETIME, renewed by each request: an idle timeout
    act("login", {"ip": ip})
    if user.get("must_change"):
        return redirect(url_for("console.password"))
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """POST (with its CSRF token) logs out; GET asks first, so a link on another site can't log a clerk out."""
    if request.method == "GET" and current_user.is_authenticated:
        return render_template("console/logout.html")
    if current_user.is_authenticated:
        act("logout")
    sessions.end(request_db.get_db(), session.get("sid"), "logout")
    logout_user()
    session.clear()
    return redirect(url_for("console.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    """Change one's own password (the current one first); every other session of the user ends."""
    if request.method == "GET":
        return render_template("console/password.html")
    db = request_db.get_db()
    form = request.form
    if not store_users.check_current(db, current_user.id, form.get("current", "")):
        return render_template("console/password.html", error="当前密码不对。"), 400
    if form.get("new", "") != form.get("again", ""):
        return render_template("console/password.html", error="两次输入的新密码不一样。"), 400
    if form.get("new") == form.get("current"):
        return render_template("console/password.html", error="新密码不能和当前密码相同。"), 400
    try:
        store_users.set_password(db, current_user.id, form.get("new", ""), current_user.name)
    except store_users.UserError as e:
        return render_template("console/password.html", error=str(e)), 400
    ended = sessions.end_all(db, current_user.id, "password changed", keep=session.get("sid"))
    act("sessions_ended", {"user": current_user.name, "sessions": ended, "reason": "password changed"})
    return render_template("console/password.html", done=True, ended=ended)


def _safe_next(target: str | None) -> str:
    """Only an address of the console itself (no other host, no scheme)."""
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and parts.path.startswith("/console/"):
        return target
    return url_for("console.dashboard")


def _users_page(error: str | None = None, status: int = 200, **extra):
    return render_template("console/users.html", users=store_users.all_users(request_db.get_db()),
                           roles=store_users.ROLES, error=error, min_password=store_users.MIN_PASSWORD,
                           **extra), status


@bp.get("/users")
@role_required("admin")
def users():
    return _users_page()


@bp.post("/users")
@role_required("admin")
def user_add():
    db = request_db.get_db()
    form = request.form
    try:
        store_users.add(db, form.get("name", ""), form.get("password", ""), form.get("role", ""), current_user.name)
    except store_users.UserError as e:
        return _users_page(str(e), 400, form=form)
    return redirect(url_for("console.users"))


@bp.post("/users/<int:user_id>/active")
@role_required("admin")
def user_active(user_id: int):
    """Disable (every session of the user ends at once) or enable a user."""
    db = request_db.get_db()
    active = request.form.get("active") == "1"
    if user_id == current_user.id and not active:
        return _users_page("不能停用自己的账号。", 400)
    try:
        store_users.set_active(db, user_id, active, current_user.name)
    except store_users.UserError as e:
        return _users_page(str(e), 404)
    if not active:
        sessions.end_all(db, user_id, "disabled")
    return redirect(url_for("console.users"))


@bp.post("/users/<int:user_id>/reset")
@role_required("admin")
def user_reset(user_id: int):
    """An admin sets a temporary password: every session of the user ends, and the user must choose a
    new password at the next login before anything else."""
    db = request_db.get_db()
    try:
        store_users.set_password(db, user_id, request.form.get("password", ""), current_user.name, must_change=True)
    except store_users.UserError as e:
        return _users_page(str(e), 400)
    sessions.end_all(db, user_id, "password reset by an admin")
    return redirect(url_for("console.users"))
