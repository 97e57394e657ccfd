"""The county import: `xnh sync enrollment FILE` / `xnh sync claims FILE` import a county export
(SPEC "County export formats") into the county data's own file (xnh/store/db.py: XNH_DB's .county twin).

    from xnh import sync
    from xnh.store import db
    result = sync.run(db.open_db(), "claims", "claims.csv")
    print("\\n".join(result.summary_lines()))

- Reads CSV in UTF-8 (with or without BOM) or GBK/GB18030 (detected), or .xlsx (openpyxl), as a
  stream: the file is never held in memory.
- Checks every row (ID number check digit and birth date, level/status/type/category words, amounts
  as Decimal, dates); a bad row is rejected with its line number, column and reason, kept in
  `rejected_rows` and written to FILE.rejected.csv, and the rest is imported.
- Upserts by key; a row whose 更新时间 is not newer than the stored one changes nothing, so
  re-importing a file reports 0 changes. Every claim status change goes to `claim_history`; a claim
  that becomes 已拨付 gets a payment notice, derived from that history into the service's database
  once the import has committed (`xnh/store/outbox.py`).
- The whole import, its `sync_runs` row included, is one transaction on a connection to the county file
  alone (messages keep being answered: they write the service file): a crash (kill -9) leaves the
  database as it was, and running again finishes the job.

Speed: rows go to SQLite with `executemany` in one transaction (sqlite-utils' insert_all commits per
batch and caps batch size; STYLE.md measured 2.3x). When the file is large next to the table (the
first import of a county), the secondary indexes are dropped and rebuilt inside the same transaction,
which is several times faster than updating them row by row. Claims into an empty table go in "bulk
mode" (write.Writer): plain INSERTs, history by one INSERT … SELECT afterwards, until a
结算单号 comes twice. Files ≥ 4 MB are read and checked in a forked process; a row made of cells
already checked in earlier rows takes a fast path (check.Checker._claim_known). bench/sync_bench.py
measures it; bench/SYNC_RESULTS.md has the figures and what was tried.

One module per step: `read.py` (the file, its encoding and header), `check.py` (each row),
`write.py` (SQL, triggers, the bulk writer), `report.py` (the rejected-row report and the summary),
`fork.py` (reading and checking in a second process) and `importer.py`, which runs them in order.
"""
from .check import CLAIM_STATUSES, VISIT_TYPES
from .importer import check_readable, run
from .read import CLAIM_COLUMNS, COLUMNS, ENROLLMENT_COLUMNS, SyncError
from .report import Result

__all__ = ["run", "check_readable", "SyncError", "Result", "COLUMNS", "CLAIM_COLUMNS", "ENROLLMENT_COLUMNS",
           "CLAIM_STATUSES", "VISIT_TYPES"]
