"""Writing checked rows in the import's one transaction: the upsert SQL (a newer 更新时间 wins), the
per-connection triggers (claim history, the count of updates, a 结算单号 that would move to another
member), secondary indexes dropped and rebuilt around a large load, and the bulk writer."""
from __future__ import annotations

import logging
import sqlite3
import time

from sqlite_utils import Database

from ..store.state import stamp
from .check import raw_line
from .read import estimate_rows

logger = logging.getLogger(__name__)

CACHE_KIB = 100_000  # SQLite page cache during a sync (the default 2 MB thrashes on a million rows)

def _upsert_sql(table: str, columns: list[str], key: tuple[str, ...], values: str, newer: str) -> str:
    """INSERT, or UPDATE when the row's 更新时间 is newer (`newer` is '>' or '>=') and something differs."""
    rest = [c for c in columns if c not in key]
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
            f"ON CONFLICT({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in rest)
            + f" WHERE excluded.updated_at {newer} {table}.updated_at AND ("
            + " OR ".join(f"{table}.{c} IS NOT excluded.{c}" for c in rest if c != "updated_at" or newer == ">=") + ")")


_CLAIM_COLS = ["claim_id", "member_id", "household_id", "name", "id_number", "visit_type", "hospital", "level",
               "admitted", "discharged", "total", "eligible", "reimbursed", "status", "reject_reason", "paid_date",
               "paid_channel", "updated_at"]
# household_id: the member's household when the member is known, else 参合证号 before the '-'
_CLAIM_VALUES = ("?1, ?2, COALESCE((SELECT household_id FROM members WHERE member_id = ?2), ?3), "
                 + ", ".join(f"?{i}" for i in range(4, 19)))
_CLAIM_UPSERT = _upsert_sql("claims", _CLAIM_COLS, ("claim_id",), _CLAIM_VALUES, ">")
_ENROLLMENT_COLS = ["year", "member_id", "household_id", "name", "sex", "id_number", "relation", "phone",
                    "township", "village", "category", "paid_amount", "paid_date", "status", "updated_at"]
_ENROLLMENT_UPSERT = _upsert_sql("enrollments", _ENROLLMENT_COLS, ("year", "member_id"),
                                 ", ".join(f"?{i}" for i in range(1, 16)), ">")
_MEMBER_COLS = ["member_id", "household_id", "name", "sex", "id_number", "relation", "phone", "township",
                "village", "category", "updated_at"]
# members keeps the latest data per 参合证号: the same or a newer 更新时间 (a later year's row) wins
_MEMBER_UPSERT = _upsert_sql("members", _MEMBER_COLS, ("member_id",),
                             ", ".join(f"?{i}" for i in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15)), ">=")

# a 结算单号 never moves to another person: such a row is rejected, whatever its 更新时间
_CLAIM_UPSERT = _CLAIM_UPSERT.replace(" WHERE excluded.updated_at", " WHERE claims.member_id IS NOT excluded.member_id OR "
                                      "excluded.updated_at", 1)
_CONFLICT = "xnh_sync_claim_member_conflict"

# the first import into an empty claims table ("bulk" mode, see Writer): a plain INSERT, no trigger
_CLAIM_INSERT = f"INSERT INTO claims ({', '.join(_CLAIM_COLS)}) VALUES ({_CLAIM_VALUES})"
_BULK_HISTORY = ("INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id) "
                 "SELECT claim_id, NULL, status, updated_at, ? FROM claims ORDER BY rowid")

_TABLES = {"claims": ("claims", "claim_history"), "enrollment": ("enrollments", "members")}
_COUNTER = "_xnh_sync_updates"
_TRIGGERS = ("_xnh_sync_claim_ins", "_xnh_sync_claim_upd", "_xnh_sync_claim_member", "_xnh_sync_count")


def _install_triggers(db: Database, kind: str, run_id: int) -> None:
    """Per-connection (TEMP) triggers: the count of updated rows, claim history of updates, and the refusal of a 结算单号 that would move to another member. The trigger
    for inserted claims comes separately (_install_insert_trigger): bulk mode does without it."""
    _drop_triggers(db)
    table = _TABLES[kind][0]
    db.execute(f"CREATE TEMP TABLE {_COUNTER} (n INTEGER)")
    db.execute(f"INSERT INTO temp.{_COUNTER} VALUES (0)")
    db.execute(f"CREATE TEMP TRIGGER _xnh_sync_count AFTER UPDATE ON main.{table} BEGIN "
               f"UPDATE {_COUNTER} SET n = n + 1; END")
    if kind != "claims":
        return
    db.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_member BEFORE UPDATE OF member_id ON main.claims
        WHEN old.member_id IS NOT new.member_id BEGIN SELECT RAISE(ABORT, '{_CONFLICT}'); END""")
    db.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_upd AFTER UPDATE OF status ON main.claims
        WHEN old.status IS NOT new.status BEGIN
        INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id)
            VALUES (new.claim_id, old.status, new.status, new.updated_at, {int(run_id)});
    END""")


def _install_insert_trigger(conn: sqlite3.Connection, run_id: int) -> None:
    """History for each claim inserted, as it is inserted."""
    conn.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_ins AFTER INSERT ON main.claims BEGIN
        INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id)
            VALUES (new.claim_id, NULL, new.status, new.updated_at, {int(run_id)});
    END""")


def _drop_triggers(db: Database) -> None:
    for name in _TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS temp.{name}")
    db.execute(f"DROP TABLE IF EXISTS temp.{_COUNTER}")


def _drop_indexes(db: Database, tables) -> list[str]:
    """Drop the secondary indexes of `tables` (inside the transaction); returns their CREATE statements."""
    marks = ",".join("?" * len(tables))
    rows = db.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                      f"AND tbl_name IN ({marks})", list(tables)).fetchall()
    for name, _ in rows:
        db.execute(f"DROP INDEX [{name}]")
    return [sql for _, sql in rows]


def _count(db: Database, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]



def import_rows(db, kind, path, batches, result, report, progress):
    table, other = _TABLES[kind]
    conn = db.conn
    estimate = estimate_rows(path, result.encoding)
    bar = None
    report_progress = progress if callable(progress) else None  # the console's callback(done, estimate)
    if progress and report_progress is None:
        from tqdm import tqdm

        bar = tqdm(total=estimate or None, unit="rows", unit_scale=True, desc=f"sync {kind}", leave=False)
    t0 = time.monotonic()
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    try:
        with db.atomic():
            cur = conn.execute(
                "INSERT INTO sync_runs (kind, file, encoding, started_at, status, inserted, updated, unchanged, "
                "rejected) VALUES (?, ?, ?, ?, 'running', 0, 0, 0, 0)",
                [kind, str(path.resolve()), result.encoding, stamp()])
            run_id = result.run_id = cur.lastrowid
            before = _count(db, table)
            # a large file next to the table: rebuilding the indexes afterwards beats updating them row by row
            saved_indexes = _drop_indexes(db, (table, other)) if before < estimate else []
            _install_triggers(db, kind, run_id)
            writer = Writer(conn, kind, run_id, result, report, bulk=kind == "claims" and before == 0)
            if not writer.bulk and kind == "claims":
                _install_insert_trigger(conn, run_id)
            try:
                done = 0
                for valid, rejected in batches:
                    writer.write(valid)
                    writer.reject(rejected)
                    done += len(valid) + len(rejected)
                    if bar is not None:
                        bar.update(len(valid) + len(rejected))
                    if report_progress is not None:
                        report_progress(done, estimate)
                writer.end_bulk()
                logger.debug("sync %s: rows written after %.1fs", kind, time.monotonic() - t0)
                if saved_indexes:
                    conn.execute("PRAGMA threads = 4")  # multi-threaded sorter for CREATE INDEX
                    for sql in saved_indexes:
                        conn.execute(sql)
                    logger.debug("sync %s: indexes rebuilt after %.1fs", kind, time.monotonic() - t0)
                result.inserted = _count(db, table) - before
                result.updated = conn.execute(f"SELECT n FROM temp.{_COUNTER}").fetchone()[0]
                result.unchanged = writer.valid - result.inserted - result.updated
                if kind == "enrollment":
                    fix_claim_households(db)
                    logger.debug("sync %s: households after %.1fs", kind, time.monotonic() - t0)
            finally:
                _drop_triggers(db)
                if bar is not None:
                    bar.close()
            conn.execute("UPDATE sync_runs SET finished_at = ?, inserted = ?, updated = ?, unchanged = ?, "
                         "rejected = ?, status = 'ok' WHERE id = ?",
                         [stamp(), result.inserted, result.updated, result.unchanged, result.rejected, run_id])
    finally:
        conn.execute(f"PRAGMA cache_size = {cache_size}")
    logger.debug("sync %s: committed after %.1fs", kind, time.monotonic() - t0)



class Writer:
    """Writes checked batches: executemany per batch; rejected rows to the table and the report.

    Bulk mode, for claims into an empty table (a county's first import): a plain INSERT without the
    per-row history trigger (which costs as much as the insert itself); the history rows
    of all inserted claims are written by end_bulk() with one INSERT … SELECT. The first 结算单号 that
    comes again in the file ends bulk mode there: from that row on the upsert and its triggers apply, so
    the result is the same as without bulk mode."""

    def __init__(self, conn, kind, run_id, result, report, bulk=False):
        self.conn, self.kind, self.run_id, self.result, self.report = conn, kind, run_id, result, report
        self.bulk = bulk
        self.valid = 0

    def write(self, rows) -> None:
        """rows: [(line, values)]. A 结算单号 that belongs to another member aborts its row (trigger):
        that row is rejected and the batch goes on after it."""
        start = self._insert_bulk(rows) if self.bulk else 0
        while start < len(rows):
            at = [start]

            def values(start=start):
                for i in range(start, len(rows)):
                    at[0] = i
                    yield rows[i][1]

            try:
                if self.kind == "claims":
                    self.conn.executemany(_CLAIM_UPSERT, values())
                else:
                    self.conn.executemany(_ENROLLMENT_UPSERT, values())
                    self.conn.executemany(_MEMBER_UPSERT, (r[1] for r in rows[start:]))
                self.valid += len(rows) - start
                return
            except sqlite3.IntegrityError as e:
                if _CONFLICT not in str(e):
                    raise
                line, vals = rows[at[0]]
                self.valid += at[0] - start
                owner = self.conn.execute("SELECT member_id FROM claims WHERE claim_id = ?", [vals[0]]).fetchone()
                raw = raw_line([v for i, v in enumerate(vals) if i != 2])  # as read, less the household
                self.reject([(line, "结算单号", f"结算单号已属于另一参合证号: {owner[0] if owner else '?'}", raw)])
                start = at[0] + 1

    def _insert_bulk(self, rows) -> int:
        """Plain INSERTs; returns len(rows), or the index of a row whose 结算单号 is already in the table
        after ending bulk mode (the caller upserts from there)."""
        at = [0]

        def values():
            for i, (_, vals) in enumerate(rows):
                at[0] = i
                yield vals

        try:
            self.conn.executemany(_CLAIM_INSERT, values())
        except sqlite3.IntegrityError as e:
            if "UNIQUE" not in str(e):
                raise
            self.valid += at[0]
            self.end_bulk()
            return at[0]
        self.valid += len(rows)
        return len(rows)

    def end_bulk(self) -> None:
        """History of the claims inserted in bulk mode (the table held nothing else), then the
        insert trigger for what follows."""
        if not self.bulk:
            return
        self.bulk = False
        self.conn.execute(_BULK_HISTORY, [self.run_id])
        _install_insert_trigger(self.conn, self.run_id)

    def reject(self, rejected) -> None:
        """rejected: [(line, column, reason, raw)]."""
        if not rejected:
            return
        self.conn.executemany('INSERT INTO rejected_rows (sync_run_id, line, "column", reason, raw) '
                              "VALUES (?, ?, ?, ?, ?)", [(self.run_id, *r) for r in rejected])
        reasons = self.result.reasons
        for line, column, reason, raw in rejected:
            self.report.write(line, column, reason, raw)
            key = reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        self.result.rejected += len(rejected)


def fix_claim_households(db: Database) -> None:
    """Claims imported before their member's enrollment guessed the household from 参合证号: correct them."""
    db.execute("UPDATE claims SET household_id = m.household_id FROM members AS m "
               "WHERE m.member_id = claims.member_id AND claims.household_id IS NOT m.household_id")
