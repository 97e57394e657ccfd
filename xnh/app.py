"""The Flask application: builds the app and registers the channel blueprints (Twilio SMS /sms and
/sms/status, the web simulator /, the optional Telegram webhook) and GET /healthz. `xnh serve`
runs it on waitress (xnh/server.py); the repository root's app.py exposes it to WSGI tools; tests use
`create_app({"DB_PATH": ...}).test_client()`. Only those entry points import this module.

Configuration comes from the environment (../shared/SPEC.md) unless `test_config` overrides it:
DB_PATH (XNH_DB), TWILIO_AUTH_TOKEN, PUBLIC_URL (XNH_PUBLIC_URL), SECRET_KEY (XNH_SECRET_KEY),
SIMULATOR (XNH_SIMULATOR: "auto" (default) shows the simulator only until county data is synced
into DB_PATH, "on"/"off" force it), TELEGRAM_WEBHOOK_SECRET; DEMO (default False; `xnh serve` and the
root app.py set it): answer messages from the demo county's own database until county data is synced
into DB_PATH. The clerks' console (/console) reads CONSOLE_COOKIE_SECURE (XNH_COOKIE_SECURE),
CONSOLE_SESSION_MINUTES (XNH_SESSION_MINUTES), CONSOLE_UPLOAD_LIMIT and UPLOAD_FOLDER (xnh/bot/console).

Connections and the unit of work a message is answered in live in xnh/store/db.py.
"""
import logging
import os
import secrets
import shutil
import sqlite3
from pathlib import Path

from flask import Flask, current_app, jsonify

from .bot import console, request_db, sms, telegram_bot, web
from .store import db as store_db

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
HEALTH_WAIT_MS = 1000  # a message holds the write lock for milliseconds; longer than this is a fault
MIN_FREE_BYTES = 1 << 20  # less room than this on the database's disk: writes are about to fail


def create_app(test_config: dict | None = None) -> Flask:
    """The application, configured from the environment, then from `test_config`."""
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.from_mapping(
        DB_PATH=store_db.db_path(),
        TWILIO_AUTH_TOKEN=os.environ.get("TWILIO_AUTH_TOKEN") or None,
        PUBLIC_URL=os.environ.get("XNH_PUBLIC_URL") or None,
        SECRET_KEY=os.environ.get("XNH_SECRET_KEY") or secrets.token_hex(32),
        SIMULATOR=_simulator_mode(os.environ.get("XNH_SIMULATOR", "auto")),
        TELEGRAM_WEBHOOK_SECRET=os.environ.get("TELEGRAM_WEBHOOK_SECRET") or None,
        TELEGRAM_RUNNER=None,  # set by server.serve in webhook mode
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
    app.add_url_rule("/healthz", "healthz", healthz)
    app.teardown_request(request_db.finish_request)
    console.init_app(app)  # /console; last: it exempts the blueprints above (webhooks) from its CSRFProtect
    if not app.config["TWILIO_AUTH_TOKEN"]:
        logger.warning("TWILIO_AUTH_TOKEN is not set: POST /sms and /sms/status refuse every request (403)")
    return app


def _simulator_mode(raw: str) -> bool | str:
    """True (on), False (off) or "auto": on while the database holds only the demo county."""
    raw = raw.strip().lower()
    if raw in ("off", "0", "false", "no"):
        return False
    if raw in ("on", "1", "true", "yes"):
        return True
    return "auto"


def healthz():
    """200 only when the database can be written now (its write lock taken in a transaction and rolled
    back, and room on its disk), with the schema version and the last sync; else 503 with the reason."""
    path = current_app.config["DB_PATH"]
    try:
        db = request_db.get_db()
        db.execute(f"PRAGMA busy_timeout = {HEALTH_WAIT_MS}")
        try:
            store_db.check_writable(db)
        finally:
            db.execute("PRAGMA busy_timeout = 5000")
        if shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < MIN_FREE_BYTES:
            raise OSError(28, "No space left on device")
        info = store_db.health_info(db)
    except (sqlite3.Error, OSError) as e:
        reason = store_db.explain(e, path)
        logger.warning("healthz: %s", reason)
        return jsonify(status="error", reason=reason), 503
    return jsonify(status="ok", **info)
