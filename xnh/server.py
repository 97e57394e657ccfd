"""`xnh serve`: the Flask app on waitress (a production WSGI server), the outbound worker
(xnh/broadcast/worker.py) supervised in a background thread (a fault is logged, backed off and retried;
/healthz reports its heartbeat), plus the Telegram bot in a background thread when
TELEGRAM_BOT_TOKEN is set (polling; webhook mode when TELEGRAM_WEBHOOK_URL
and TELEGRAM_WEBHOOK_SECRET are set). Ctrl-C or SIGTERM stops both cleanly.

    XNH_DB=xnh.db TWILIO_AUTH_TOKEN=... xnh serve --port 5000
"""
import errno
import logging
import os
import signal
import socket
import threading

from waitress.server import create_server

from . import demo
from .app import create_app
from .settings import Settings
from .store import db as store_db
from .store import outbox

logger = logging.getLogger(__name__)


class ServeError(Exception):
    """The service cannot start (port in use, bad host, a database it cannot write): one line says why."""


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 5000, threads: int = 8) -> None:
    """Serve until interrupted. Messages are answered from XNH_DB once county data has been synced into
    it, until then from the demo county's own database; the log names the files with absolute paths."""
    _logging()
    app = create_app({"DEMO": True}, settings=settings)
    real = app.config["DB_PATH"]
    _check_writable(real)
    serving = demo.serving_path(real)
    _warm_up(app, serving)
    try:
        server = make_server(app, host, port, threads)
    except (OSError, ValueError) as e:  # waitress: ValueError for a host it cannot resolve
        raise ServeError(_listen_reason(e, host, port)) from None
    runner = _telegram(app, settings)
    sending = start_sender(app, settings)
    derive_in_background(real)  # listening already (the socket is bound): messages are answered meanwhile
    signal.signal(signal.SIGTERM, _interrupt)
    logger.info("xnh serving on http://%s:%s (%d threads), database %s%s", host, server.effective_port, threads,
                os.path.abspath(real), "" if serving == real else
                f" (no county data synced yet: answering from the demo county, {os.path.abspath(serving)})")
    try:
        server.run()  # returns on Ctrl-C / SIGTERM (waitress catches the KeyboardInterrupt)
    finally:
        logger.info("stopping")
        if runner:
            runner.stop()
        sending[0].set()
        sending[1].join(15)
        server.close()


def start_sender(app, settings: Settings, **kw) -> tuple[threading.Event, threading.Thread]:
    """The outbound worker, supervised (xnh.broadcast.worker.supervise), in a background thread on the real
    database (never the demo's); its Health goes to app.config["SENDER"] for /healthz. Stopped by setting
    the event. It sends no SMS while no Twilio credentials are set."""
    from .broadcast import worker

    stop, health = threading.Event(), worker.Health()
    thread = threading.Thread(target=worker.supervise, args=(settings, app.config["DB_PATH"], stop, health),
                              kwargs=kw, name="xnh-worker", daemon=True)
    health.thread = thread
    app.config["SENDER"] = health
    thread.start()
    return stop, thread


def _check_writable(path: str) -> None:
    """Refuse to start on a database that cannot be written (every message writes)."""
    db = store_db.open_db(path)
    try:
        store_db.check_writable(db)
    finally:
        db.close()


def _listen_reason(error: Exception, host: str, port: int) -> str:
    if getattr(error, "errno", None) == errno.EADDRINUSE:
        return f"端口已被占用 / port {port} is in use on {host}: stop the other server or choose --port"
    why = getattr(error, "strerror", None) or error
    if isinstance(error, (socket.gaierror, ValueError)) or getattr(error, "errno", None) == errno.EADDRNOTAVAIL:
        return f"无法监听该地址 / cannot listen on --host {host}: {why}"
    return f"无法监听 / cannot listen on {host}:{port}: {why}"


def make_server(app, host: str = "127.0.0.1", port: int = 0, threads: int = 8):
    """A waitress server for `app` (port 0 picks a free port: see `.effective_port`); call `.run()`."""
    return create_server(app, host=host, port=port, threads=threads, ident="xnh",
                         connection_limit=200, channel_timeout=60)


def _telegram(app, settings: Settings):
    token = settings.telegram_bot_token
    if not token:
        logger.info("TELEGRAM_BOT_TOKEN not set: Telegram bot off")
        return None
    from .bot.telegram_bot import TelegramRunner, build_application

    url, secret = settings.telegram_webhook_url, settings.telegram_webhook_secret
    if url and not secret:
        logger.error("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET; falling back to polling")
        url = None
    runner = TelegramRunner(build_application(token, settings.telegram_api_url, db_path=app.config["DB_PATH"],
                                              webhook=bool(url), demo_until_synced=True),
                            webhook_url=url, secret=secret)
    try:
        runner.start()
    except Exception:  # the SMS service still runs; the log says why the bot does not
        logger.exception("the Telegram bot could not start")
        runner.stop()
        return None
    if url:
        app.config["TELEGRAM_RUNNER"] = runner
    return runner


def _warm_up(app, path: str) -> None:
    from .handlers.router import warm_up

    db = store_db.open_db(path)
    try:
        warm_up(db)
    finally:
        db.close()


def derive_in_background(path: str) -> threading.Thread:
    """Derive the payment notices a sync left underived (it crashed after its commit, or another process
    synced) in a background thread, once the server listens: after a million-row import this is seconds
    of work, and the webhooks must answer meanwhile (each chunk holds the write lock for milliseconds)."""
    def derive():
        db = store_db.open_db(path)
        try:
            queued = outbox.derive_payment_notices(db)
            if queued:
                logger.info("payment notices derived from the claim history: %d", queued)
        except Exception:  # logged; the next sync or start derives them (the mark only moves on success)
            logger.exception("deriving payment notices failed")
        finally:
            db.close()

    thread = threading.Thread(target=derive, name="xnh-notices", daemon=True)
    thread.start()
    return thread


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _logging() -> None:
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("httpx", "telegram", "apscheduler", "twilio"):  # twilio logs every request at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("xnh").setLevel(logging.INFO)
    logging.getLogger("waitress").setLevel(logging.INFO)


class ServerThread:
    """`app` on waitress in a background thread, for tests and benchmarks (the constructor starts
    nothing; entering binds the port and serves):

        with ServerThread(create_app(...)) as url: ...
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
        self.app, self.host, self.port, self.threads = app, host, port, threads
        self.server = self.url = self._thread = None

    def __enter__(self) -> str:
        self.server = make_server(self.app, self.host, self.port, self.threads)
        self.url = f"http://{self.host}:{self.server.effective_port}"
        self._thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)
        self._thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.asyncore.close_all(self.server._map)  # every socket, so the loop ends
        self.server.task_dispatcher.shutdown()
        self._thread.join(10)
