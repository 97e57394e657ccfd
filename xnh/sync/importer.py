"""Running one import: open the file, read, check and write it in one transaction, put the report in
place, derive the payment notices. `xnh sync`, the console and the demo loader call `run()`."""
from __future__ import annotations

import time
from pathlib import Path

from sqlite_utils import Database

from ..store import db as store_db
from ..store import outbox
from .read import COLUMNS, SyncError, open_table
from .report import Report, Result
from .write import import_rows


def check_readable(kind: str, path: Path) -> None:
    """Raise SyncError when `path` cannot be imported as `kind` (missing, not a table, wrong columns),
    reading no more than its header: `xnh sync` checks this before it creates any database."""
    if kind not in COLUMNS:
        raise SyncError(f"unknown kind {kind!r}: use enrollment or claims")
    open_table(path, kind).close()


def run(db: Database, kind: str, file, progress=False) -> Result:
    """Import `file` (a county export of `kind` 'enrollment' or 'claims') in one transaction. `progress`:
    True for a bar on stderr (tqdm), or a callable(rows_done, rows_estimated) called after each block
    (the console's progress bar)."""
    if kind not in COLUMNS:
        raise SyncError(f"unknown kind {kind!r}: use enrollment or claims")
    path = Path(file)
    started = time.monotonic()
    table = open_table(path, kind)
    result = Result(kind=kind, file=str(path.resolve()), encoding=table.encoding)
    try:
        report = Report(path, table.header)
    except BaseException:
        table.close()
        raise
    county = store_db.county_of(db)  # the import writes the county file alone, on its own connection
    try:
        import_rows(county, kind, path, table, result, report, progress)
    except BaseException:
        report.abandon()
        raise
    finally:
        table.close()
        if county is not db:
            county.close()
    report.finish()
    result.report, result.report_note, result.first_rejected = str(report.path), report.note, report.first
    _derive_notices(db, result)  # after the commit: a crash before it loses none
    result.seconds = time.monotonic() - started
    return result


def _derive_notices(db: Database, result: Result) -> None:
    """Queue the payment notices of this import's claim history and count them honestly: queued to be
    sent, or recorded as skipped (paid more than outbox.OLD_PAYMENT_DAYS ago)."""
    before = outbox.last_id(db)
    result.notifications = outbox.derive_payment_notices(db)
    if result.notifications:
        counts = outbox.payment_notices_since(db, before)
        result.notices_skipped, result.notices_queued = counts["skipped"], counts["queued"]
