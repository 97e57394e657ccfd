"""The county import: `xnh sync enrollment FILE` / `xnh sync claims FILE` import a county export
(SPEC "County export formats") into the county data's own file (xnh/store/db.py: XNH_DB's .county twin).

    from xnh import sync
    from xnh.store import db
    result = sync.run(db.open_db(), "claims", "claims.csv")
    print("\\n".join(result.summary_lines()))

- Reads CSV in UTF-8 (with or without BOM) or GBK/GB18030 (detected), or .xlsx (openpyxl), as a
  stream of blocks, strictly: one record a line (an unbalanced quote is an error of its line), lines
  and cells of bounded length (a longer line is rejected as it streams past, never held in memory).
- Checks every row (ID number check digit and birth date, level/status/type/category words, amounts
  as Decimal, dates, none after tomorrow; full-width digits read as ASCII), column by column; a bad
  row is rejected with its line number, column and reason, kept in `rejected_rows` and written to
  FILE.rejected.csv (owner-only, formulas neutralised, the export's own columns), and the rest is
  imported. A key given twice in the file rejects every row of it, with all their line numbers.
- Upserts by key; a row whose 更新时间 is not newer than the stored one changes nothing, so
  re-importing a file reports 0 changes, and blocks of lines an earlier import took in whole are not
  checked again. Every claim status change goes to `claim_history`; a claim that becomes 已拨付 gets a
  payment notice, derived from that history into the service's database once the import has committed
  (`xnh/store/outbox.py`).
- The whole import, its `sync_runs` row included, is one transaction on a connection to the county file
  alone (messages keep being answered: they write the service file): a crash (kill -9) leaves the
  database as it was, and running again finishes the job.

Speed: see write.py (bulk mode, indexes rebuilt after a large load) and check.py (column checks);
bench/sync_bench.py measures it against the sqlite3 CLI's `.import`.

One module per step: `read.py` (the file, its encoding and header), `check.py` (each row),
`write.py` (SQL, triggers, the bulk writer), `report.py` (the rejected-row report and the summary) and `importer.py`, which runs them in order.
"""
from .check import CLAIM_STATUSES, VISIT_TYPES
from .importer import check_readable, run
from .read import CLAIM_COLUMNS, COLUMNS, ENROLLMENT_COLUMNS, SyncError
from .report import Result

__all__ = ["run", "check_readable", "SyncError", "Result", "COLUMNS", "CLAIM_COLUMNS", "ENROLLMENT_COLUMNS",
           "CLAIM_STATUSES", "VISIT_TYPES"]
