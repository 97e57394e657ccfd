"""Connections and the unit of work.

    from xnh.store import db
    conn = db.open_db()                      # XNH_DB, WAL on, every migration applied
    with db.message_db(path) as conn: ...    # answer one message: one transaction, one at a time

Messages are answered one at a time per process, each as one unit of work on one shared connection
(`message_db`). Everything else (health checks, delivery callbacks, the simulator page) reads and
writes on the calling thread's own connection (`thread_db`). Those are opened without re-running
the migrations, which `open_db` applies (the app factory calls it once).
"""
import contextlib
import os
import sqlite3
import threading

from sqlite_utils import Database

from .schema import migrations

_local = threading.local()
# Held while a message is answered (it reads and writes SQLite several times): one writer at a time in
# this process, so threads queue on a Python lock instead of sleeping in SQLite's busy handler.
WRITES = threading.RLock()
_message_dbs: dict[str, Database] = {}
MMAP_BYTES = 256 << 20


def db_path() -> str:
    """The database file named by XNH_DB (default xnh.db in the working directory)."""
    return os.environ.get("XNH_DB", "xnh.db")


def open_db(path: str | None = None) -> Database:
    """The database at `path` (default XNH_DB), with WAL on and every migration applied."""
    path = path or db_path()
    db = Database(memory=True) if path == ":memory:" else Database(path)
    if path != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    migrations.apply(db)
    return db


def thread_db(path: str) -> Database:
    """A connection to `path` owned by the calling thread, opened once per thread and kept.
    The migrations must already have been applied (`open_db`)."""
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


def rows(db: Database, sql: str, params=()) -> list[dict]:
    """The rows of a SELECT as dicts. Every message runs several reads: this skips what sqlite-utils 4's
    `query()` adds to each (a SAVEPOINT and RELEASE around it, and its keyword checks)."""
    cursor = db.conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]
