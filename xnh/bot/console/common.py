"""What every console view shares: the blueprint, Flask-Login's manager and user, the one permission
decorator (`role_required`), `act` (an action into the audit log with the clerk's name), the error
pages and the menu. `xnh/bot/console/__init__.py` wires them into the app."""
import functools
import logging

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_wtf.csrf import CSRFError, CSRFProtect

from ...store import sessions, state
from ...store import users as store_users
from .. import request_db

logger = logging.getLogger(__name__)
bp = Blueprint("console", __name__, url_prefix="/console", static_folder="static",
               static_url_path="/static")
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "console.login"
login_manager.login_message = "请先登录。"


class ConsoleUser(UserMixin):
    """A row of `users` as Flask-Login wants it."""

    def __init__(self, row: dict):
        self.id, self.name, self.role = row["id"], row["name"], row["role"]
        self.must_change = bool(row.get("must_change"))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@login_manager.user_loader
def _load_user(user_id: str):
    """The user of this request's session: active, and the session not ended on the server (a logout, a
    password change or reset, a deactivation end it, whatever copy of the cookie comes back)."""
    db = request_db.get_db()
    row = store_users.get(db, user_id)
    if not row or not row["active"] or not sessions.valid(db, session.get("sid"), user_id):
        return None
    return ConsoleUser(row)


def role_required(role: str):
    """The one permission decorator: logged in, and `role` (403 otherwise)."""
    def wrap(view):
        @functools.wraps(view)
        @login_required
        def inner(*args, **kwargs):
            if current_user.role != role:
                act("forbidden", {"path": request.path})
                abort(403)
            return view(*args, **kwargs)
        return inner
    return wrap


def act(action: str, detail: dict | None = None) -> None:
    """Write a console action to the audit log with the logged-in clerk's name."""
    actor = current_user.name if current_user and current_user.is_authenticated else "anonymous"
    state.audit(request_db.get_db(), actor, action, {"via": "console", **(detail or {})})


@bp.errorhandler(CSRFError)
def _csrf_error(e):
    return render_template("console/error.html", title="表单已失效",
                           message="表单缺少或带了过期的安全令牌(CSRF),请返回、刷新页面后再提交。"), 400


@bp.errorhandler(403)
def _forbidden(e):
    return render_template("console/error.html", title="没有权限", message="只有管理员可以这样做(管理用户、保存和修改本地答复)。"), 403


@bp.errorhandler(413)
def _too_large(e):
    limit = current_app.config["CONSOLE_UPLOAD_LIMIT"] >> 20
    return render_template("console/error.html", title="文件太大",
                           message=f"上传的文件超过 {limit} MB 的上限。"), 413


@bp.app_template_global()
def console_nav():
    items = [("console.dashboard", "概览"), ("console.upload", "导入数据"), ("console.campaigns", "群发"),
             ("console.tickets", "工单"), ("console.radar", "问题雷达"), ("console.answers", "本地答复"),
             ("console.audit", "操作日志")]
    if current_user.is_authenticated and current_user.is_admin:
        items.append(("console.users", "用户"))
    return items


@bp.before_request
def _must_change_password():
    """After an admin's reset, the user sets a new password before anything else."""
    if (current_user.is_authenticated and current_user.must_change
            and request.endpoint not in ("console.password", "console.logout", "console.static")):
        return redirect(url_for("console.password"))
    return None


CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def security_headers(response):
    """Every response: no framing, no content-type sniffing, referrers kept on this site; the console's
    pages a strict Content-Security-Policy (its one script and style sheet come from itself; the web
    simulator keeps its inline script and gets frame-ancestors only)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CSP if request.blueprint == bp.name
                                else "frame-ancestors 'none'")
    return response


def csv_cell(value) -> str:
    """A cell for a CSV download that a spreadsheet never runs as a formula: text beginning with = + - @
    or a tab / carriage return gets a leading apostrophe (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
