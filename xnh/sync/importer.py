"""Running one import: open the file, read and check it (in a second process when large), write it in
one transaction, put the report in place. `xnh sync` and the demo loader call `run()`."""
from __future__ import annotations

import time
from pathlib import Path

from sqlite_utils import Database

from ..store import db as store_db
from ..store import outbox
from .fork import batch_source
from .read import COLUMNS, SyncError, open_table
from .report import Report, Result
from .write import import_rows

def check_readable(kind: str, path: Path) -> None:
    """Raise SyncError when `path` cannot be imported as `kind` (missing, not a table, wrong columns),
    reading no more than its header: `xnh sync` checks this before it creates any database."""
    if kind not in COLUMNS:
        raise SyncError(f"unknown kind {kind!r}: use enrollment or claims")
    _, _, _, rows = open_table(path, kind)
    rows.close()


def run(db: Database, kind: str, file, progress=False) -> Result:
    """Import `file` (a county export of `kind` 'enrollment' or 'claims') in one transaction. `progress`:
    True for a bar on stderr (tqdm), or a callable(rows_done, rows_estimated) called after each batch
    (the console's progress bar)."""
    if kind not in COLUMNS:
        raise SyncError(f"unknown kind {kind!r}: use enrollment or claims")
    path = Path(file)
    started = time.monotonic()
    encoding, positions, _, rows = open_table(path, kind)
    result = Result(kind=kind, file=str(path), encoding=encoding)
    report = Report(path)
    county = store_db.county_of(db)  # the import writes the county file alone, on its own connection
    try:
        with batch_source(rows, kind, positions, path) as batches:
            import_rows(county, kind, path, batches, result, report, progress)
    except BaseException:
        report.abandon()
        raise
    finally:
        if county is not db:
            county.close()
    report.finish()
    result.report, result.report_note, result.first_rejected = str(report.path), report.note, report.first
    result.notifications = outbox.derive_payment_notices(db)  # after the commit: a crash before it loses none
    result.seconds = time.monotonic() - started
    return result

