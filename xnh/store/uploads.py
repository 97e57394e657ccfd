"""Exports uploaded through the console: one row per upload, its id also the import's job id
("upload → check → start": starting twice starts once). The import itself is xnh/sync's `run()`, the
same code as `xnh sync`, run by the console in a background thread; its progress is written here and
the console's page reads it.

Status: checked (file read, header right) → running → done | failed. An import is one transaction on the
county file, so one interrupted by a restart (its process gone) wrote nothing: at the next start it is
marked failed with that reason (`fail_interrupted`) and may be started again (`claim_start(again=True)`).
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


def claim_start(db: Database, upload_id: str, runner: str | None = None, again: bool = False) -> bool:
    """Move a checked upload (`again`: or a failed one) to running in process `runner` (host:pid); False
    when it was already started (a double submit)."""
    allowed = "('checked', 'failed')" if again else "('checked')"
    cursor = db.conn.execute(f"update uploads set status = 'running', runner = ?, started_at = ?, error = null, "
                             f"rows_done = 0 where id = ? and status in {allowed}", [runner, stamp(), upload_id])
    return cursor.rowcount == 1


INTERRUPTED = "导入因服务重启而中断,没有写入任何数据(导入是一个整体事务),可以重新开始。"


def fail_interrupted(db: Database, alive) -> list[dict]:
    """Mark failed, with INTERRUPTED as the reason, every running upload whose runner is not `alive(row)`
    (its process ended: a restart, a crash); returns them."""
    found = [r for r in _db.rows(db, "select * from uploads where status = 'running'") if not alive(r)]
    for row in found:
        db.conn.execute("update uploads set status = 'failed', error = ?, finished_at = ? where id = ? "
                        "and status = 'running'", [INTERRUPTED, stamp(), row["id"]])
    return found


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
