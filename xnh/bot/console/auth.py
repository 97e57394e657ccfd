"""Logging in and out, and the admins' user management (/console/users)."""
from urllib.parse import urlsplit

from flask import redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ...store import state
from ...store import users as store_users
from .. import request_db
from .common import ConsoleUser, act, bp, role_required


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; 5 failures in 15 minutes for a name from an address refuse further tries."""
    if request.method == "GET":
        return render_template("console/login.html", next=request.args.get("next", ""))
    db = request_db.get_db()
    name = request.form.get("name", "").strip()[:64]
    ip = request.remote_addr or "?"
    if store_users.too_many_failures(db, name, ip):
        store_users.record_login(db, name, ip, False)
        state.audit(db, name or "?", "login_blocked", {"via": "console", "ip": ip})
        return render_template("console/login.html", error="登录失败次数过多,请15分钟后再试。", name=name), 429
    user = store_users.check_password(db, name, request.form.get("password", ""))
    store_users.record_login(db, name, ip, user is not None)
    if user is None:
        state.audit(db, name or "?", "login_failed", {"via": "console", "ip": ip})
        return render_template("console/login.html", error="用户名或密码不对。", name=name), 401
    session.clear()
    login_user(ConsoleUser(user))
    session.permanent = True  # PERMANENT_SESSION_LIFETIME, renewed by each request: an idle timeout
    act("login", {"ip": ip})
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """POST (with its CSRF token) logs out; GET asks first, so a link on another site can't log a clerk out."""
    if request.method == "GET" and current_user.is_authenticated:
        return render_template("console/logout.html")
    if current_user.is_authenticated:
        act("logout")
    logout_user()
    session.clear()
    return redirect(url_for("console.login"))


def _safe_next(target: str | None) -> str:
    """Only an address of the console itself (no other host, no scheme)."""
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and parts.path.startswith("/console/"):
        return target
    return url_for("console.dashboard")


@bp.get("/users")
@role_required("admin")
def users():
    return render_template("console/users.html", users=store_users.all_users(request_db.get_db()),
                           roles=store_users.ROLES)


@bp.post("/users")
@role_required("admin")
def user_add():
    db = request_db.get_db()
    form = request.form
    try:
        store_users.add(db, form.get("name", ""), form.get("password", ""), form.get("role", ""), current_user.name)
    except store_users.UserError as e:
        return render_template("console/users.html", users=store_users.all_users(db), roles=store_users.ROLES,
                               error=str(e), form=form), 400
    return redirect(url_for("console.users"))


@bp.post("/users/<int:user_id>/active")
@role_required("admin")
def user_active(user_id: int):
    db = request_db.get_db()
    active = request.form.get("active") == "1"
    if user_id == current_user.id and not active:
        return render_template("console/users.html", users=store_users.all_users(db), roles=store_users.ROLES,
                               error="不能停用自己的账号。"), 400
    try:
        store_users.set_active(db, user_id, active, current_user.name)
    except store_users.UserError as e:
        return render_template("console/users.html", users=store_users.all_users(db), roles=store_users.ROLES,
                               error=str(e)), 404
    return redirect(url_for("console.users"))
