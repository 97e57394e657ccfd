"""The Flask application: Twilio SMS webhook (/sms, /sms/status), the web simulator (/), the
optional Telegram webhook and GET /healthz. `xnh serve` runs it on waitress; tests use
`create_app({"DB_PATH": ...}).test_client()`.

Configuration comes from the environment (../shared/SPEC.md) unless `test_config` overrides it:
DB_PATH (XNH_DB), TWILIO_AUTH_TOKEN, PUBLIC_URL (XNH_PUBLIC_URL), SECRET_KEY (XNH_SECRET_KEY),
SIMULATOR (XNH_SIMULATOR: "auto" (default) shows the simulator only while the database holds
nothing but the demo county, "on"/"off" force it), TELEGRAM_WEBHOOK_SECRET.

Messages are answered one at a time per process, each as one unit of work on one shared connection
(`message_db`). Everything else (health checks, delivery callbacks, the simulator page) reads and
writes on the worker thread's own connection (`thread_db`). Connections are opened without re-running
the migrations, which `create_app` applies once.
"""
import contextlib
import logging
import os
import secrets
import sqlite3
import threading
from pathlib import Path

from flask import Flask, current_app, g, jsonify
from sqlite_utils import Database

from .bot import store

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
_local = threading.local()
# Held while a message is answered (it reads and writes SQLite several times): one writer at a time in
# this process, so threads queue on a Python lock instead of sleeping in SQLite's busy handler.
WRITES = threading.RLock()
_message_dbs: dict[str, Database] = {}
MMAP_BYTES = 256 << 20


def create_app(test_config: dict | None = None) -> Flask:
    """The application, configured from the environment, then from `test_config`."""
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.from_mapping(
        DB_PATH=store.db_path(),
        TWILIO_AUTH_TOKEN=os.environ.get("TWILIO_AUTH_TOKEN") or None,
        PUBLIC_URL=os.environ.get("XNH_PUBLIC_URL") or None,
        SECRET_KEY=os.environ.get("XNH_SECRET_KEY") or secrets.token_hex(32),
        SIMULATOR=_simulator_mode(os.environ.get("XNH_SIMULATOR", "auto")),
        TELEGRAM_WEBHOOK_SECRET=os.environ.get("TELEGRAM_WEBHOOK_SECRET") or None,
        TELEGRAM_RUNNER=None,  # set by server.serve in webhook mode
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=1 << 20,  # Twilio forms, Telegram updates and simulator messages are a few KB
    )
    if test_config:
        app.config.update(test_config)
    store.open_db(app.config["DB_PATH"]).close()  # migrations, once, before any worker thread

    from .bot import sms, telegram_bot, web

    app.register_blueprint(sms.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(telegram_bot.webhook_bp)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.teardown_request(_finish_transaction)
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
    """Liveness and database check for load balancers and monitors."""
    get_db().execute("select 1").fetchone()
    return jsonify(status="ok")


def get_db() -> Database:
    """This request's database: the worker thread's own connection."""
    if "xnh_db" not in g:
        g.xnh_db = thread_db(current_app.config["DB_PATH"])
    return g.xnh_db


def thread_db(path: str) -> Database:
    """A connection to `path` owned by the calling thread, opened once per thread and kept.
    The migrations must already have been applied (`store.open_db`)."""
    cache = _local.__dict__.setdefault("dbs", {})
    db = cache.get(path)
    if db is None:
        db = cache[path] = _connect(path)
    return db


def _connect(path: str, check_same_thread: bool = True) -> Database:
    db = Database(sqlite3.connect(path, check_same_thread=check_same_thread))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")  # reads map the file instead of copying pages in (~5 % per message)
    return db


@contextlib.contextmanager
def message_db(path: str):
    """`with message_db(path) as db:` answer one message: holds WRITES, yields the process's message
    connection, commits when the block ends (rolls back when it raises).

    Every channel answers through it, so "one message at a time, all of it or nothing" is defined here
    once. One connection for all messages rather than one per worker thread keeps its page cache warm:
    in WAL mode a commit on one connection empties the page cache of every other connection to the
    file (on this machine the gain was within the noise of bench/load.py)."""
    with WRITES:
        db = _message_dbs.get(path)
        if db is None:
            db = _message_dbs[path] = _connect(path, check_same_thread=False)  # used under WRITES only
        try:
            yield db
        except BaseException:
            finish(db, failed=True)
            raise
        finish(db)


def finish(db: Database, failed: bool = False) -> None:
    """Commit (or roll back) whatever a unit of work left open, so no thread keeps the write lock."""
    if db.conn.in_transaction:
        (db.conn.rollback if failed else db.conn.commit)()


def _finish_transaction(exc):
    db = g.pop("xnh_db", None)
    if db is not None:
        finish(db, failed=exc is not None)
