"""The clerks' console, a Flask blueprint under /console: it translates HTTP into calls of the store,
the sync and the broadcasts, like the channel adapters beside it, and renders
xnh/templates/console/*.html.

    /console/login, /console/logout        Flask-Login; argon2 hashes (xnh/store/users.py)
    /console/                              the dashboard: server-rendered SVG charts (charts.py)
    /console/uploads                       upload → check → start an export's import (uploads.py)
    /console/campaigns                     broadcasts: live preview, send, cancel, progress (campaigns.py)
    /console/tickets                       the inbox: paging, search, 我来处理, answers and their delivery (tickets.py)
    /console/radar, /console/answers       the question radar and the office's own answers (radar.py)
    /console/audit                         the audit log, paginated
    /console/users                         admins only (403 for a clerk): list, add, disable

`init_app(app)` wires it: Flask-Login, Flask-WTF's CSRFProtect over the whole app (the webhooks, which
authenticate by signature or accept JSON only, are exempted by blueprint), session cookies Secure
(CONSOLE_COOKIE_SECURE, from the settings' XNH_COOKIE_SECURE; off only for plain-http tests), HttpOnly,
SameSite=Lax, an idle lifetime of CONSOLE_SESSION_MINUTES (XNH_SESSION_MINUTES, default 30), and an upload limit
(CONSOLE_UPLOAD_LIMIT, XNH_UPLOAD_MB: 500 MB) for the upload address alone: every other request keeps the
app's 1 MB.
Every action a clerk takes is written to the audit log with the clerk's name (`act`).
"""
from datetime import timedelta
from pathlib import Path

from flask import current_app, request

from . import auth, campaigns, pages, radar, tickets, uploads, words  # noqa: F401  (their routes and filters join bp)
from .common import bp, csrf, login_manager, security_headers

__all__ = ["init_app", "bp"]
UPLOAD_ENDPOINTS = {"console.upload"}


def init_app(app) -> None:
    """Register the console on `app` (after the other blueprints: they are exempted from CSRF here)."""
    cfg = app.config
    cfg.setdefault("CONSOLE_COOKIE_SECURE", True)
    cfg.setdefault("CONSOLE_SESSION_MINUTES", 30)
    cfg.setdefault("CONSOLE_UPLOAD_LIMIT", 500 << 20)
    db_path = cfg["DB_PATH"]
    cfg.setdefault("UPLOAD_FOLDER", str(Path(db_path if db_path != ":memory:" else "xnh.db").resolve().parent
                                        / "uploads"))
    cfg.update(
        SESSION_COOKIE_SECURE=cfg["CONSOLE_COOKIE_SECURE"], SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax", REMEMBER_COOKIE_SECURE=cfg["CONSOLE_COOKIE_SECURE"],
        REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=cfg["CONSOLE_SESSION_MINUTES"]),
        SESSION_REFRESH_EACH_REQUEST=True,  # the lifetime runs from the last request: an idle timeout
    )
    app.before_request(_upload_limit)  # before CSRFProtect's hook, which reads the form
    app.register_blueprint(bp)
    csrf.init_app(app)
    for name, other in app.blueprints.items():
        if name != bp.name:
            csrf.exempt(other)  # webhooks: Twilio signatures, Telegram's secret header, JSON-only simulator
    login_manager.init_app(app)
    app.request_class = uploads.UploadRequest  # uploaded files streamed straight to disk
    app.after_request(security_headers)
    uploads.fail_interrupted(db_path)  # imports a restart interrupted: failed, with the reason


def _upload_limit() -> None:
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = current_app.config["CONSOLE_UPLOAD_LIMIT"]

