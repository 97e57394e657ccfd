"""`xnh serve`: the Flask app on waitress (a production WSGI server), plus the Telegram bot in a
background thread when TELEGRAM_BOT_TOKEN is set (polling; webhook mode when TELEGRAM_WEBHOOK_URL
and TELEGRAM_WEBHOOK_SECRET are set). Ctrl-C or SIGTERM stops both cleanly.

    XNH_DB=xnh.db TWILIO_AUTH_TOKEN=... xnh serve --port 5000
"""
import logging
import os
import signal
import threading

from waitress.server import create_server

from .app import create_app
from .store import db as store_db
from .store import outbox

logger = logging.getLogger(__name__)


def serve(host: str = "127.0.0.1", port: int = 5000, threads: int = 8) -> None:
    """Serve until interrupted."""
    _logging()
    app = create_app()
    _warm_up(app)
    runner = _telegram(app)
    server = make_server(app, host, port, threads)
    signal.signal(signal.SIGTERM, _interrupt)
    logger.info("xnh serving on http://%s:%s (%d threads, database %s)", host, server.effective_port,
                threads, app.config["DB_PATH"])
    try:
        server.run()  # returns on Ctrl-C / SIGTERM (waitress catches the KeyboardInterrupt)
    finally:
        logger.info("stopping")
        if runner:
            runner.stop()
        server.close()


def make_server(app, host: str = "127.0.0.1", port: int = 0, threads: int = 8):
    """A waitress server for `app` (port 0 picks a free port: see `.effective_port`); call `.run()`."""
    return create_server(app, host=host, port=port, threads=threads, ident="xnh",
                         connection_limit=200, channel_timeout=60)


def _telegram(app):
    token = os.environ.get("TELEGRAM_BOT_TOKEN")
    if not token:
        logger.info("TELEGRAM_BOT_TOKEN not set: Telegram bot off")
        return None
    from .bot.telegram_bot import TelegramRunner, build_application

    url, secret = os.environ.get("TELEGRAM_WEBHOOK_URL"), os.environ.get("TELEGRAM_WEBHOOK_SECRET")
    if url and not secret:
        logger.error("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET; falling back to polling")
        url = None
    runner = TelegramRunner(build_application(token, db_path=app.config["DB_PATH"], webhook=bool(url)),
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


def _warm_up(app) -> None:
    from .handlers.router import warm_up

    db = store_db.open_db(app.config["DB_PATH"])
    try:
        queued = outbox.derive_payment_notices(db)  # a sync that crashed after its commit left these
        if queued:
            logger.info("payment notices derived from the claim history: %d", queued)
        warm_up(db)
    finally:
        db.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _logging() -> None:
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("httpx", "telegram", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("xnh").setLevel(logging.INFO)
    logging.getLogger("waitress").setLevel(logging.INFO)


class ServerThread:
    """`app` on waitress in a background thread, for tests and benchmarks:

        with ServerThread(create_app(...)) as url: ...
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
        self.server = make_server(app, host, port, threads)
        self.url = f"http://{host}:{self.server.effective_port}"
        self._thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.asyncore.close_all(self.server._map)  # every socket, so the loop ends
        self.server.task_dispatcher.shutdown()
        self._thread.join(10)
