"""The Flask application: builds the app and registers the channel blueprints (Twilio SMS /sms and
/sms/status, the web simulator /, the optional Telegram webhook, the WeChat official account /wechat, the China SMS
callbacks /cnsms/…) and GET /healthz. `xnh serve`
runs it on waitress (xnh/server.py); the repository root's app.py exposes it to WSGI tools; tests use
`create_app({"DB_PATH": ...}).test_client()`. Only those entry points import this module.

Configuration comes from one settings object (`xnh.settings.Settings`, built from the environment once
when none is given; kept as SETTINGS), then `test_config` overrides what it set: DB_PATH (XNH_DB),
TWILIO_AUTH_TOKEN, PUBLIC_URL (XNH_PUBLIC_URL), SECRET_KEY (XNH_SECRET_KEY), SIMULATOR (XNH_SIMULATOR:
"auto" (default) shows the simulator only until county data is synced into DB_PATH, "on"/"off" force
it), TELEGRAM_WEBHOOK_SECRET, CONSOLE_COOKIE_SECURE (XNH_COOKIE_SECURE), CONSOLE_SESSION_MINUTES
(XNH_SESSION_MINUTES), WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_AES_KEY; DEMO (default False; `xnh serve` and the root app.py set it): answer messages
from the demo county's own database until county data is synced into DB_PATH; SENDER: the health of the
outbound sender `xnh serve` runs (xnh/broadcast/worker.py), which /healthz reports.

Connections and the unit of work a message is answered in live in xnh/store/db.py.
"""
import logging
import os
import secrets
import shutil
import sqlite3
from pathlib import Path

from flask import Flask, current_app, jsonify

from .bot import cnsms, console, request_db, sms, telegram_bot, web, wechat
from .broadcast import health
from .settings import Settings
from .store import db as store_db

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
HEALTH_WAIT_MS = 1000  # a message holds the write lock for milliseconds; longer than this is a fault
MIN_FREE_BYTES = 1 << 20  # less room than this on the database's disk: writes are about to fail


def create_app(test_config: dict | None = None, *, settings: Settings | None = None) -> Flask:
    """The application, configured from `settings` (default: the environment's), then from `test_config`."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.from_mapping(
        SETTINGS=settings,
        DB_PATH=settings.db_path,
        TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
        PUBLIC_URL=settings.public_url,
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        SIMULATOR=settings.simulator_mode,
        TELEGRAM_WEBHOOK_SECRET=settings.telegram_webhook_secret,
        CONSOLE_COOKIE_SECURE=settings.cookie_secure,
        CONSOLE_SESSION_MINUTES=settings.session_minutes,
        WECHAT_TOKEN=settings.wechat_token,
        WECHAT_APP_ID=settings.wechat_app_id,
        WECHAT_AES_KEY=settings.wechat_aes_key,
        CONSOLE_UPLOAD_LIMIT=settings.upload_mb << 20,
        PROXY_HOPS=settings.proxy_hops,
        TELEGRAM_RUNNER=None,  # set by server.serve in webhook mode
        SENDER=None,  # set by server.serve: the outbound sender's Health
        DEMO=False,
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=1 << 20,  # Twilio forms, Telegram updates and simulator messages are a few KB
    )
    if test_config:
        app.config.update(test_config)
    store_db.open_db(app.config["DB_PATH"]).close()  # migrations, once, before any worker thread

    app.register_blueprint(sms.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(telegram_bot.webhook_bp)
    app.register_blueprint(wechat.bp)
    app.register_blueprint(cnsms.bp)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.teardown_request(request_db.finish_request)
    console.init_app(app)  # /console; last: it exempts the blueprints above (webhooks) from its CSRFProtect
    if app.config["PROXY_HOPS"]:  # the proxy's X-Forwarded-For is trusted only when configured (XNH_PROXY_HOPS)
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_prefix=0)
    if not app.config["TWILIO_AUTH_TOKEN"]:
        logger.warning("TWILIO_AUTH_TOKEN is not set: POST /sms and /sms/status refuse every request (403)")
    return app


def healthz():
    """200 only when the database that answers messages (the demo's while no county data is synced) can
    be written now (its write lock taken in a transaction and rolled back, and room on its disk) and the
    outbound sender is alive with no overdue backlog; with the schema version, the last sync, the sender's
    heartbeat and the oldest due message's age. Else 503 with the reason."""
    path = sms.serving_path()
    settings = current_app.config["SETTINGS"]
    try:
        db = request_db.get_db() if path == current_app.config["DB_PATH"] else store_db.thread_db(path)
        db.execute(f"PRAGMA busy_timeout = {HEALTH_WAIT_MS}")
        try:
            store_db.check_writable(db)
        finally:
            db.execute(f"PRAGMA busy_timeout = {store_db.BUSY_MS}")
        if shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < MIN_FREE_BYTES:
            raise OSError(28, "No space left on device")
        info = store_db.health_info(db)
        real = request_db.get_db()  # the sender works on the real database, never the demo's
        outbound = health.outbound(real, settings, current_app.config["SENDER"])
    except (sqlite3.Error, OSError) as e:
        reason = store_db.explain(e, path)
        logger.warning("healthz: %s", reason)
        return jsonify(status="error", reason=reason), 503
    if outbound["problems"]:
        reason = "; ".join(outbound["problems"])
        logger.warning("healthz: %s", reason)
        return jsonify(status="error", reason=reason, **info, outbound=outbound), 503
    return jsonify(status="ok", **info, outbound=outbound)
