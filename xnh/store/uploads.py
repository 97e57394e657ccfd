"""Exports uploaded through the console: one row per upload, its id also the import's job id
("upload → check → start": starting twice starts once). The import itself is xnh/sync's `run()`, the
same code as `xnh sync`, run by the console in a background thread; its progress is written here and
the console's page reads it.

Status: checked (file read, header right) → running → done | failed.
"""
from sqlite_utils import Database

from . import db as _db
from .state import stamp


def create(db: Database, upload_id: str, *, kind: str, filename: str, path: str, encoding: str, size: int,
           rows_total: int, actor: str) -> None:
    db.conn.execute(
        "insert into uploads (id, kind, filename, path, encoding, size, status, rows_done, rows_total, "
        "uploaded_by, created_at) values (?, ?, ?, ?, ?, ?, 'checked', 0, ?, ?, ?)",
        [upload_id, kind, filename, path, encoding, size, rows_total, actor, stamp()])


def get(db: Database, upload_id: str) -> dict | None:
    found = _db.rows(db, "select * from uploads where id = ?", [upload_id])
    return found[0] if found else None


def recent(db: Database, limit: int = 20) -> list[dict]:
    return _db.rows(db, "select * from uploads order by created_at desc, rowid desc limit ?", [limit])


def claim_start(db: Database, upload_id: str) -> bool:
    """Move a checked upload to running; False when it was already started (a double submit)."""
    cursor = db.conn.execute("update uploads set status = 'running' where id = ? and status = 'checked'", [upload_id])
    return cursor.rowcount == 1


def progress(db: Database, upload_id: str, done: int, total: int) -> None:
    db.conn.execute("update uploads set rows_done = ?, rows_total = max(coalesce(rows_total, 0), ?) where id = ?",
                    [done, total, upload_id])


def finish(db: Database, upload_id: str, result=None, error: str | None = None) -> None:
    """Record the import's result (xnh.sync.Result) or its one-line error."""
    if error is not None:
        db.conn.execute("update uploads set status = 'failed', error = ?, finished_at = ? where id = ?",
                        [error, stamp(), upload_id])
        return
    db.conn.execute(
        "update uploads set status = 'done', sync_run_id = ?, inserted = ?, updated = ?, unchanged = ?, "
        "rejected = ?, rows_done = ?, rows_total = ?, finished_at = ? where id = ?",
        [result.run_id, result.inserted, result.updated, result.unchanged, result.rejected,
         result.inserted + result.updated + result.unchanged + result.rejected,
         result.inserted + result.updated + result.unchanged + result.rejected, stamp(), upload_id])


def rejected_rows(db: Database, sync_run_id: int, limit: int | None = None) -> list[dict]:
    """The rows an import rejected, by line (county file's rejected_rows)."""
    sql = "select line, \"column\", reason, raw from rejected_rows where sync_run_id = ? order by line, id"
    return _db.rows(db, sql + (" limit ?" if limit else ""), [sync_run_id, limit] if limit else [sync_run_id])
