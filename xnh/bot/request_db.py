"""The database connection of one Flask request (health checks, delivery callbacks, the simulator
page): the worker thread's own connection, committed or rolled back when the request ends."""
from flask import current_app, g
from sqlite_utils import Database

from ..store import db as store_db


def get_db() -> Database:
    """This request's database: the worker thread's own connection."""
    if "xnh_db" not in g:
        g.xnh_db = store_db.thread_db(current_app.config["DB_PATH"])
    return g.xnh_db


def finish_request(exc) -> None:
    """Teardown: commit what the request wrote, or roll it back when it failed."""
    db = g.pop("xnh_db", None)
    if db is not None:
        store_db.finish(db, failed=exc is not None)
