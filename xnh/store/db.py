"""Connections and the unit of work.

    from xnh.store import db
    conn = db.open_db(settings.db_path)      # WAL on, every migration applied
    with db.message_db(path) as conn: ...    # answer one message: one transaction, one at a time
    with db.writing(conn): ...               # any other write: one transaction, rolled back on any exception

Two SQLite files: XNH_DB (default xnh.db) holds the service's own state, and beside it
`county_path(XNH_DB)` (xnh.db → xnh.county.db) holds the synced county data. Every connection opens
the service file and ATTACHes the county file as `county`; table names are unique across the two, so
queries name tables without a schema. `xnh sync` writes the county file on its own connection
(`open_county`), so its long transaction locks only that file; in WAL mode a message reads the county
data as it was before the import until the import commits, and writes only the service file.
A message's transaction must therefore not start with BEGIN IMMEDIATE (that takes the write lock of
every attached file): `begin_write` takes the service file's alone.

Messages are answered one at a time per process, each as one unit of work on one shared connection
(`message_db`), which waits at most MESSAGE_WAIT seconds in all (for the process's message lock, then for
SQLite's write lock) before it gives up with `Busy`, and at once when the message ahead of it has held
the message lock STUCK seconds (it is waiting for a lock another process holds): the SMS webhook then
answers 503 with Retry-After well inside Twilio's 15 s, and the WSGI threads are free for the next ones. The outbound worker never takes the message lock. Everything else (health checks, delivery callbacks, the simulator page) reads and
writes on the calling thread's own connection (`thread_db`). Those are opened without re-running
the migrations, which `open_db` applies (the app factory calls it once).
"""
import contextlib
import errno
import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .schema import county_migrations, migrations

_local = threading.local()
# Held while a message is answered (it reads and writes SQLite several times): one writer at a time in
# this process, so threads queue on a Python lock instead of sleeping in SQLite's busy handler.
WRITES = threading.RLock()
_message_dbs: dict[str, Database] = {}
MMAP_BYTES = 256 << 20
BUSY_MS = 5000  # every connection waits this long for SQLite's write lock ...
MESSAGE_WAIT = 4.0  # ... but a message at most this long in all, for the message lock and SQLite's
STUCK = 1.0  # a message holding the message lock this long is waiting for SQLite's: the file is locked
_LOOK = 0.25  # how often a message waiting for the message lock looks whether its holder is stuck
_held_since = [0.0]  # when the message lock was taken (0: free)
COUNTY_PAGE_BYTES = 16384  # the county file: bulk loads of millions of rows (fewer, larger pages: about 1.5 s less at 1M claims)


class Busy(sqlite3.OperationalError):
    """A message could not have the database within MESSAGE_WAIT seconds (it is locked)."""


def county_path(path: str) -> str:
    """The county data's file beside the service's: xnh.db → xnh.county.db (":memory:" keeps one database)."""
    if path == ":memory:":
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.county{p.suffix}"))


def demo_path(path: str) -> str:
    """The demo county's own database beside the real one: xnh.db → xnh.demo.db (and xnh.demo.county.db)."""
    p = Path(path if path != ":memory:" else "xnh.db")
    return str(p.with_name(f"{p.stem}.demo{p.suffix}"))


_HAS_DATA: set[str] = set()


def has_county_data(path: str) -> bool:
    """True once the county file of `path` holds members or claims (checked read-only: nothing is
    created). Cached once true: county data is never removed."""
    if path in _HAS_DATA:
        return True
    county = county_path(path)
    if path == ":memory:" or not os.path.exists(county):
        return False
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(county))}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT EXISTS (SELECT 1 FROM members) OR EXISTS (SELECT 1 FROM claims)").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # no tables yet, or unreadable: no county data to answer from
        return False
    if found:
        _HAS_DATA.add(path)
    return bool(found)


def check_writable(db: Database) -> None:
    """Raise sqlite3.Error unless the service file can be written now: takes its write lock in a
    transaction and rolls back (read-only file, locked database, missing folder)."""
    begin_write(db)
    db.conn.rollback()


def health_info(db: Database) -> dict:
    """The schema version (last migration of each file) and the last sync, for GET /healthz."""
    applied = {name: last for name, last in db.execute(
        "SELECT migration_set, name FROM _sqlite_migrations AS m WHERE rowid = "
        "(SELECT max(rowid) FROM _sqlite_migrations WHERE migration_set = m.migration_set)")}
    if "county" in {row[1] for row in db.execute("PRAGMA database_list")}:
        applied.update(db.execute(
            "SELECT migration_set, name FROM county._sqlite_migrations ORDER BY rowid DESC LIMIT 1").fetchall())
    last = db.execute("SELECT kind, finished_at, inserted, updated, unchanged, rejected FROM sync_runs "
                      "WHERE status = 'ok' ORDER BY id DESC LIMIT 1").fetchone()
    keys = ("kind", "finished_at", "inserted", "updated", "unchanged", "rejected")
    return {"schema": {"service": applied.get("xnh"), "county": applied.get("xnh-county")},
            "last_sync": dict(zip(keys, last)) if last else None}


def is_unavailable(error: BaseException) -> bool:
    """True for a fault of the moment that a later try may not meet: a locked or busy database, a full
    disk, an I/O error (a message refused for it gets 503 and Retry-After, never 500)."""
    text = str(error)
    return (isinstance(error, sqlite3.OperationalError)
            and any(w in text for w in ("locked", "busy", "disk is full", "disk I/O error"))
            or getattr(error, "errno", None) in (errno.ENOSPC, errno.EIO)
            or getattr(error, "sqlite_errorname", "") in ("SQLITE_FULL", "SQLITE_BUSY", "SQLITE_LOCKED",
                                                         "SQLITE_IOERR"))


def explain(error: BaseException, path: str) -> str:
    """A one-line reason, in Chinese and English, for an operational fault on the database at `path`."""
    where = os.path.abspath(path)
    text = str(error)
    errno_ = getattr(error, "errno", None)
    if "locked" in text or "busy" in text:
        return f"数据库正被另一个进程占用(同步进行中?) / database is locked by another process: {where}"
    if "disk is full" in text or errno_ == 28:
        return f"磁盘已满 / disk full: {where}"
    if "readonly" in text or "read-only" in text or errno_ in (13, 30):
        return f"数据库文件只读 / database is read-only: {where}"
    if "unable to open" in text or errno_ == 2:
        folder = os.path.dirname(where)
        if not os.path.isdir(folder):
            return f"XNH_DB 所在的文件夹不存在 / the folder of XNH_DB does not exist: {folder}"
        return f"无法打开数据库 / cannot open the database: {where}"
    return f"数据库错误 / database error ({error.__class__.__name__}: {text}): {where}"


def open_db(path: str) -> Database:
    """The service database at `path` (Settings.db_path) with the county file attached, WAL on and every
    migration of both applied (an older single-file database has its county tables moved out)."""
    if path == ":memory:":
        db = Database(memory=True)
        _migrate(county_migrations, db)
        _migrate(migrations, db)
        return db
    county = open_county(path)
    county.close()
    db = _connect(path, mmap=False)
    _migrate(migrations, db)
    return db


def open_county(path: str) -> Database:
    """A connection to the county file alone (what `xnh sync` writes), its migrations applied."""
    db = Database(sqlite3.connect(county_path(path)))
    db.execute(f"PRAGMA page_size={COUNTY_PAGE_BYTES}")  # takes effect only on a new, empty file
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    _migrate(county_migrations, db)
    return db


def county_of(db: Database) -> Database:
    """A new connection to the county file attached to `db`, or `db` itself when nothing is attached."""
    for _, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "county" and file:
            return open_county_file(file)
    return db


def open_county_file(file: str) -> Database:
    """A connection to an existing county file (its migrations already applied by `open_db`)."""
    db = Database(sqlite3.connect(file))
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    return db


def _migrate(migration_set: Migrations, db: Database) -> None:
    """Apply what is pending; looking costs only reads, so a locked database is not written to for nothing."""
    if migration_set.pending(db):
        migration_set.apply(db)


def begin_write(db: Database) -> None:
    """Begin a transaction holding the service file's write lock (not the county file's, which a sync
    may hold for a long time: BEGIN IMMEDIATE would wait for it)."""
    db.conn.execute("BEGIN")
    # a write statement on main takes main's write lock, even one that changes no row (checked with a
    # second connection: its BEGIN IMMEDIATE then waits)
    try:
        db.conn.execute("DELETE FROM main.processed_messages WHERE 0")
    except BaseException:  # not taken (locked, full…): no transaction is left open behind the error
        db.conn.rollback()
        raise


@contextlib.contextmanager
def writing(db: Database):
    """`with writing(db):` one write transaction on the service file, the only way anything but a message
    writes: it begins holding the service file's write lock (`begin_write`), commits when the block ends
    and rolls back when it raises, whatever it raised. The connection must have no transaction open."""
    begin_write(db)
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()


def keep(db: Database, sql: str, params=()) -> None:
    """A write of something only kept to save work (a cached figure): inside the caller's transaction when
    one is open (a console request's, committed when it ends), else in one of its own; a locked database
    skips it (it is computed again next time)."""
    try:
        if db.conn.in_transaction:
            db.conn.execute(sql, params)
        else:
            with writing(db):
                db.conn.execute(sql, params)
    except sqlite3.OperationalError:
        pass


def thread_db(path: str) -> Database:
    """A connection to `path` owned by the calling thread, opened once per thread and kept.
    The migrations must already have been applied (`open_db`)."""
    cache = _local.__dict__.setdefault("dbs", {})
    db = cache.get(path)
    if db is None:
        db = cache[path] = _connect(path)
    return db


def _connect(path: str, check_same_thread: bool = True, mmap: bool = True) -> Database:
    """The service file with the county file attached as `county`. `mmap` for the long-lived connections
    that answer messages (not for a command's one connection: a sync's notices would map the county file
    into its resident memory)."""
    db = Database(sqlite3.connect(path, check_same_thread=check_same_thread))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    if path != ":memory:":
        db.conn.execute("ATTACH DATABASE ? AS county", [county_path(path)])
    for schema in ("main", "county") if path != ":memory:" else ("main",):
        db.execute(f"PRAGMA {schema}.synchronous=NORMAL")
        if mmap:  # reads map the file instead of copying pages in (~5 % per message)
            db.execute(f"PRAGMA {schema}.mmap_size={MMAP_BYTES}")
    return db


@contextlib.contextmanager
def message_db(path: str, wait: float = MESSAGE_WAIT):
    """`with message_db(path) as db:` answer one message: holds WRITES, yields the process's message
    connection, commits when the block ends (rolls back when it raises). Waits at most `wait` seconds in
    all for WRITES and then SQLite's write lock; past that raises Busy (or SQLite's "database is locked").

    Every channel answers through it, so "one message at a time, all of it or nothing" is defined here
    once. One connection for all messages rather than one per worker thread keeps its page cache warm:
    in WAL mode a commit on one connection empties the page cache of every other connection to the
    file (on this machine the gain was within the noise of bench/load.py)."""
    started = time.monotonic()
    _take_writes(started, wait)
    _held_since[0] = time.monotonic()
    try:
        db = _message_dbs.get(path)
        if db is None:
            db = _message_dbs[path] = _connect(path, check_same_thread=False)  # used under WRITES only
            db.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        left = wait - (time.monotonic() - started)
        shortened = left < wait - 0.01  # it waited for WRITES: SQLite may have only what is left
        if shortened:
            db.execute(f"PRAGMA busy_timeout = {max(10, int(left * 1000))}")
        try:
            yield db
        except BaseException:
            finish(db, failed=True)
            raise
        finally:
            if shortened:
                db.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        finish(db)
    finally:
        _held_since[0] = 0.0
        WRITES.release()


def _take_writes(started: float, wait: float) -> None:
    """Take WRITES within `wait` seconds of `started`, or raise Busy; raise it at once when the message
    holding WRITES has held it STUCK seconds (it waits for SQLite's lock, which another process holds: the
    messages behind it would only wait their whole time in turn, and WSGI threads with them)."""
    while not WRITES.acquire(timeout=_LOOK):
        now = time.monotonic()
        held = _held_since[0]
        if now - started >= wait or (held and now - held >= STUCK):
            raise Busy(f"database is locked (the message before this one has waited {now - held:.1f} s for it)"
                       if held else f"database is locked (waited {wait:g} s)")


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
