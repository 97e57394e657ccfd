"""Writing checked rows in the import's one transaction.

- Rows are written ROWS_PER_STATEMENT (128) to a statement, binding a slice of the block's flat list of
  values; a statement that fails on one row is written again row by row to find it. A block whose every
  cell its checks left as written comes as its lines ("text" events, pipe.py): the slices are the
  export's cells in its own order, and the statement computes what the checker would have derived (a
  claim's household from 参合证号, the level's key from its word). tests/test_sync_as_read.py checks that
  both ways give the same tables.
- Bulk mode, when the table is empty (a county's first import): plain INSERTs; a key given twice in the
  file shows as the primary key's conflict. Claim history comes from one INSERT … SELECT a block, after
  its rows (while the reader checks the next block).
- Upsert mode otherwise: an INSERT … ON CONFLICT DO UPDATE where the row's 更新时间 is newer and something
  differs; per-connection (TEMP) triggers write the claim history, count updates, refuse a 结算单号 that
  would move to another member, and note the members an enrollment row touched. Keys given twice are
  found by the reader, which hashes every key of the file (pipe.events); when two hashes are equal the
  pass is done again with every key noted in a TEMP table (exact), which finds the keys given twice.
- A key given twice (either way) undoes the pass (ROLLBACK TO its savepoint) and runs it again with those
  keys rejected, every row of them with all their line numbers: never half-applied.
- Blocks (read.Block) whose digest an earlier sync recorded (every row of them imported, none rejected)
  are not checked or written again: their rows count as unchanged. Re-importing them could change
  nothing: a stored row only ever moves to a newer 更新时间, and a clean block stays clean as today moves
  on. Only their keys are hashed (a key in a skipped block may come again elsewhere in the file, or in
  another skipped block: the same part twice, or parts of two earlier imports).
- members are derived from enrollments after the rows are in: each member's row of the newest 更新时间
  (the later 年度 on a tie), whatever the order of the file.
- Secondary indexes are dropped and rebuilt around a load large next to its table; ANALYZE (sampled)
  after, so that the planner picks the household indexes on the message path.
"""
from __future__ import annotations

import csv
import gc
import logging
import sqlite3
import time

from sqlite_utils import Database

from ..store.state import stamp
from ..policy_kb.loader import levels
from .check import AS_WRITTEN, KEYS, raw_line, value_keys
from .pipe import events, events_from
from .read import CLAIM_COLUMNS, estimate_rows

logger = logging.getLogger(__name__)

CACHE_KIB = 80_000  # SQLite page cache while rows are written (the default 2 MB thrashes on a million rows)
# while sorting (CREATE INDEX, members from enrollments): SQLite's sorter buffers up to the page cache's size
# in each of its threads, so the cache is made smaller first (memory stays bounded at any file size)
SORT_CACHE_KIB = 32_000
SORT_THREADS = 2  # each sorter task buffers up to SORT_CACHE_KIB: 4 threads took a 10M-member enrollment to 306 MB
TEMP_CACHE_KIB = 20_000  # the TEMP tables' page cache (keys seen, members touched)
ANALYSIS_LIMIT = 1000  # rows ANALYZE samples per index (PRAGMA analysis_limit)
KEEP_RUNS = 3  # block digests of the last imports of a kind that are kept (older ones: the file moved on)

_TABLES = {"claims": ("claims", "claim_history"), "enrollment": ("enrollments", "members")}
KEY_WORDS = {"claims": "结算单号", "enrollment": "参合证号"}

_CLAIM_COLS = ["claim_id", "member_id", "household_id", "name", "id_number", "visit_type", "hospital", "level",
               "admitted", "discharged", "total", "eligible", "reimbursed", "status", "reject_reason", "paid_date",
               "paid_channel", "updated_at"]
_ENROLLMENT_COLS = ["year", "member_id", "household_id", "name", "sex", "id_number", "relation", "phone",
                    "township", "village", "category", "paid_amount", "paid_date", "status", "updated_at"]
_MEMBER_COLS = ["member_id", "household_id", "name", "sex", "id_number", "relation", "phone", "township",
                "village", "category", "updated_at"]


def _upsert_sql(table: str, columns: list[str], key: tuple[str, ...], values: str) -> str:
    """INSERT, or UPDATE when the row's 更新时间 is newer and something differs."""
    rest = [c for c in columns if c not in key]
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "
            f"ON CONFLICT({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in rest)
            + f" WHERE excluded.updated_at > {table}.updated_at AND ("
            + " OR ".join(f"{table}.{c} IS NOT excluded.{c}" for c in rest if c != "updated_at") + ")")


# Rows are written ROWS_PER_STATEMENT at a time: one statement binds a slice of the block's flat list of
# values (the pipe's one split, no tuple per row), so a statement's per-row cost (reset, step, Python's
# loop) is paid once per ROWS_PER_STATEMENT rows. (Measured: INSERT … SELECT value->>0, … FROM json_each(?)
# of a block's JSON costs 4× an executemany: every value is parsed again from its row's JSON.)
ROWS_PER_STATEMENT = 128


def _row_values(n: int, at: int, members: bool) -> str:
    """One row's VALUES of n columns, its parameters numbered from at + 1; a claim's household (the third
    value) is the member's household when the member is known, else 参合证号 before the '-'."""
    marks = [f"?{at + i}" for i in range(1, n + 1)]
    if members:
        marks[2] = f"COALESCE((SELECT household_id FROM members WHERE member_id = ?{at + 2}), ?{at + 3})"
    return "(" + ", ".join(marks) + ")"


def _text_values(kind: str, at: int, members: bool, positions: list[int], levels: dict) -> str:
    """One row's VALUES from the export's cells as read (parameters numbered from at + 1 in the export's
    order, `positions` placing its columns): the values check.AS_WRITTEN takes as written, and the derived
    ones computed here as the checker computes them (household: 参合证号 before its first '-', looked up
    among the members when `members`; level: the key of its word, `levels` {word: key})."""
    marks = []
    for written in AS_WRITTEN[kind]:
        if written is not None:
            marks.append(f"?{at + positions[written] + 1}")
            continue
        if _CLAIM_COLS[len(marks)] == "household_id":
            member = f"?{at + positions[CLAIM_COLUMNS.index('参合证号')] + 1}"
            mark = f"substr({member}, 1, instr({member} || '-', '-') - 1)"
            marks.append(f"COALESCE((SELECT household_id FROM members WHERE member_id = {member}), {mark})"
                         if members else mark)
        else:  # the level
            cases = " ".join(f"WHEN {_quote(word)} THEN {_quote(key)}" for word, key in levels.items())
            marks.append(f"CASE ?{at + positions[CLAIM_COLUMNS.index('机构级别')] + 1} {cases} END")
    return "(" + ", ".join(marks) + ")"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _statement(kind: str, bulk: bool, members: bool, rows: int, text: tuple | None = None) -> str:
    """The INSERT (bulk) or upsert of `rows` rows of `kind`; `members`: look each claim's household up
    (no look-up while no member is known). `text`: (positions, width, levels) for rows of the export's
    cells as read (_text_values), else rows of checked values."""
    cols = _CLAIM_COLS if kind == "claims" else _ENROLLMENT_COLS
    n = len(cols)
    if text is not None:
        positions, width, words = text
        values = ", ".join(_text_values(kind, j * width, members, positions, words) for j in range(rows))
    else:
        values = ", ".join(_row_values(n, j * n, members and kind == "claims") for j in range(rows))
    if kind == "claims":
        if bulk:
            return f"INSERT INTO claims ({', '.join(cols)}) VALUES {values}"
        # a 结算单号 never moves to another person: such a row is rejected (trigger), whatever its 更新时间
        return _upsert_sql("claims", cols, ("claim_id",), values).replace(
            " WHERE excluded.updated_at", " WHERE claims.member_id IS NOT excluded.member_id OR excluded.updated_at", 1)
    if bulk:
        return f"INSERT INTO enrollments ({', '.join(cols)}) VALUES {values}"
    return _upsert_sql("enrollments", cols, ("year", "member_id"), values)


# bulk mode: each block's claims into the history as soon as they are in (the writer waits for the reader
# anyway), in the order they were inserted
_BULK_HISTORY = ("INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id) "
                 "SELECT claim_id, NULL, status, updated_at, ? FROM claims WHERE rowid > ? ORDER BY rowid")
# each touched member's newest enrollment row (SQLite: the bare columns come from the row holding the max)
_MEMBERS_FROM = """
INSERT INTO members ({cols})
SELECT {cols} FROM (SELECT {e_cols}, max(e.updated_at || ' ' || e.year) FROM {source} GROUP BY e.member_id)
WHERE true
ON CONFLICT(member_id) DO UPDATE SET {sets}
WHERE excluded.updated_at >= members.updated_at AND ({differs})
""".format(cols=", ".join(_MEMBER_COLS), e_cols=", ".join(f"e.{c}" for c in _MEMBER_COLS), source="{source}",
           sets=", ".join(f"{c} = excluded.{c}" for c in _MEMBER_COLS[1:]),
           differs=" OR ".join(f"members.{c} IS NOT excluded.{c}" for c in _MEMBER_COLS[1:]))
_YEARS = ("WITH RECURSIVE y(v) AS (SELECT min(year) FROM enrollments UNION ALL "
          "SELECT (SELECT min(year) FROM enrollments WHERE year > v) FROM y WHERE v IS NOT NULL) "
          "SELECT v FROM y WHERE v IS NOT NULL")

_CONFLICT = "xnh_sync_claim_member_conflict"
_COUNTER = "_xnh_sync_updates"
_SEEN = "_xnh_sync_seen"
_TOUCHED = "_xnh_sync_touched"
_TWICE = "_xnh_sync_twice"
_TRIGGERS = ("_xnh_sync_claim_ins", "_xnh_sync_claim_upd", "_xnh_sync_claim_member", "_xnh_sync_count",
             "_xnh_sync_touch_ins", "_xnh_sync_touch_upd")


def _keys(kind: str, flat: list, width: int, at: tuple = (0, 1)) -> list:
    """The keys of rows given as one flat list of values (as value_keys gives them); `at`: where the key's
    cells are in a row (the export's positions, for cells as read)."""
    if kind == "claims":
        return flat[at[0]::width]
    return list(zip(map(int, flat[at[0]::width]), flat[at[1]::width]))


class Twice(Exception):
    """Keys given more than once in the file: the pass is undone and run again without them."""


def _drop_temp(conn) -> None:
    for name in _TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS temp.{name}")
    for name in (_COUNTER, _SEEN, _TOUCHED, _TWICE):
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")


def _install_temp(conn, kind: str, run_id: int, bulk: bool) -> None:
    """Per-connection tables and triggers of this pass (see the module's docstring)."""
    _drop_temp(conn)
    table = _TABLES[kind][0]
    conn.execute(f"CREATE TEMP TABLE {_COUNTER} (n INTEGER)")
    conn.execute(f"INSERT INTO temp.{_COUNTER} VALUES (0)")
    conn.execute(f"CREATE TEMP TABLE {_SEEN} (k1, k2, n INTEGER, PRIMARY KEY (k1, k2)) WITHOUT ROWID")
    conn.execute(f"CREATE TEMP TABLE {_TOUCHED} (member_id TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute(f"CREATE TEMP TABLE {_TWICE} (line INTEGER, k1, k2, raw TEXT)")
    conn.execute(f"CREATE TEMP TRIGGER _xnh_sync_count AFTER UPDATE ON main.{table} BEGIN "
                 f"UPDATE {_COUNTER} SET n = n + 1; END")
    if kind == "enrollment" and not bulk:
        for name, event in (("_xnh_sync_touch_ins", "INSERT"), ("_xnh_sync_touch_upd", "UPDATE")):
            conn.execute(f"CREATE TEMP TRIGGER {name} AFTER {event} ON main.enrollments BEGIN "
                         f"INSERT OR IGNORE INTO {_TOUCHED} VALUES (new.member_id); END")
    if kind != "claims" or bulk:
        return
    conn.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_member BEFORE UPDATE OF member_id ON main.claims
        WHEN old.member_id IS NOT new.member_id BEGIN SELECT RAISE(ABORT, '{_CONFLICT}'); END""")
    conn.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_upd AFTER UPDATE OF status ON main.claims
        WHEN old.status IS NOT new.status BEGIN
        INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id)
            VALUES (new.claim_id, old.status, new.status, new.updated_at, {int(run_id)});
    END""")
    conn.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_ins AFTER INSERT ON main.claims BEGIN
        INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id)
            VALUES (new.claim_id, NULL, new.status, new.updated_at, {int(run_id)});
    END""")


def _drop_indexes(conn, tables) -> list[str]:
    """Drop the secondary indexes of `tables` (inside the transaction); returns their CREATE statements."""
    marks = ",".join("?" * len(tables))
    rows = conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                        f"AND tbl_name IN ({marks})", list(tables)).fetchall()
    for name, _ in rows:
        conn.execute(f"DROP INDEX [{name}]")
    return [sql for _, sql in rows]


def _top(conn, table: str) -> int:
    return conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0]


def import_rows(db: Database, kind: str, path, table, result, report, progress) -> None:
    """Read, check and write every block of `table` (read.Table) in one transaction on `db` (the county
    file's own connection); fills `result`, writes rejected rows to `report`."""
    conn = db.conn
    estimate = estimate_rows(path, result.encoding)
    bar = None
    report_progress = progress if callable(progress) else None  # the console's callback(done, estimate)
    if progress and report_progress is None:
        from tqdm import tqdm

        bar = tqdm(total=estimate or None, unit="rows", unit_scale=True, desc=f"sync {kind}", leave=False)
    t0 = time.monotonic()
    saved = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "temp.cache_size")}
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute(f"PRAGMA temp.cache_size = -{TEMP_CACHE_KIB}")
    gc_was = gc.isenabled()
    gc.disable()  # millions of short-lived lists and tuples, no cycles: the collector only slows it down
    try:
        with db.atomic():
            cur = conn.execute(
                "INSERT INTO sync_runs (kind, file, encoding, started_at, status, inserted, updated, unchanged, "
                "rejected) VALUES (?, ?, ?, ?, 'running', 0, 0, 0, 0)",
                [kind, str(path.resolve()), result.encoding, stamp()])
            run_id = result.run_id = cur.lastrowid
            main, other = _TABLES[kind]
            top = _top(conn, main)
            bulk = top == 0
            known = set() if bulk else {d for (d,) in conn.execute(
                "SELECT digest FROM sync_blocks WHERE kind = ?", [kind])}
            saved_indexes = _drop_indexes(conn, (main, other)) if estimate > 2 * top else []
            conn.execute("SAVEPOINT xnh_sync_rows")
            twice: set = set()
            exact = bulk  # an upsert pass first finds keys given twice by their hashes (pipe.events)
            while True:
                writer = Writer(conn, kind, run_id, bulk, known, twice, result, report, table.positions,
                                exact or bool(twice))
                try:
                    if twice:  # a third pass (rare): in this process, holding the rows of those keys
                        writer.run(events(table, kind, known, hold=writer), bar, report_progress, estimate)
                    else:
                        with events_from(table, kind, known, exact) as found:
                            writer.run(found, bar, report_progress, estimate)
                    break
                except Twice as e:
                    if e.args[0] is None:  # two keys of one hash: which keys, and whether they are equal
                        exact = True
                        logger.info("sync %s: keys of one hash, the pass again noting every key", kind)
                    else:
                        twice = e.args[0]
                        logger.info("sync %s: %d keys given twice, the pass again without them", kind, len(twice))
                    conn.execute("ROLLBACK TO xnh_sync_rows")
                    result.rejected, result.reasons = 0, {}
                    report.restart()
                    if bar is not None:
                        bar.reset()
                    table.reopen()
            conn.execute("RELEASE xnh_sync_rows")
            logger.debug("sync %s: rows written after %.1fs", kind, time.monotonic() - t0)
            writer.finish(saved_indexes)
            logger.debug("sync %s: indexes and members after %.1fs", kind, time.monotonic() - t0)
            result.inserted = _top(conn, main) - top
            result.updated = conn.execute(f"SELECT n FROM temp.{_COUNTER}").fetchone()[0]
            result.unchanged = writer.valid - result.inserted - result.updated
            result.skipped_blocks = writer.skipped_blocks
            _drop_temp(conn)
            _analyze(conn, kind, result)
            conn.execute("UPDATE sync_runs SET finished_at = ?, inserted = ?, updated = ?, unchanged = ?, "
                         "rejected = ?, status = 'ok' WHERE id = ?",
                         [stamp(), result.inserted, result.updated, result.unchanged, result.rejected, run_id])
    finally:
        if gc_was:
            gc.enable()
        if bar is not None:
            bar.close()
        for name, value in saved.items():
            conn.execute(f"PRAGMA {name} = {value}")
    logger.debug("sync %s: committed after %.1fs", kind, time.monotonic() - t0)


def _analyze(conn, kind: str, result) -> None:
    """Refresh the planner's statistics (sampled: milliseconds at ten million rows) when rows came in."""
    if result.inserted or result.updated:
        conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
        for table in _TABLES[kind]:
            conn.execute(f"ANALYZE {table}")


class Writer:
    """One pass over the file's blocks: check, write, note keys, reject (see the module's docstring)."""

    def __init__(self, conn, kind, run_id, bulk, known, twice, result, report, positions, exact=True):
        self.conn, self.kind, self.run_id, self.bulk, self.known = conn, kind, run_id, bulk, known
        self.exact = exact  # every key noted in a TEMP table (else the reader compares hashes of them)
        self.twice = twice  # keys given twice, found by an earlier pass: their rows are rejected
        self.result, self.report, self.positions = result, report, positions
        self.valid = 0
        self.history_top = _top(conn, "claims") if bulk and kind == "claims" else 0  # claims in the history
        self.skipped_blocks = 0
        self.clean: list = []  # digests of blocks imported without a rejection
        self.conflicts: set = set()  # keys found twice by the primary key (bulk mode)
        self._levels = {key: entry["name"] for key, entry in levels().items()}
        _install_temp(conn, kind, run_id, bulk)
        members = not (bulk and kind == "claims") or conn.execute(
            "SELECT EXISTS (SELECT 1 FROM members)").fetchone()[0]
        self.insert = _statement(kind, bulk, members, ROWS_PER_STATEMENT)
        self.insert_one = _statement(kind, bulk, members, 1)
        # rows of the export's cells as read (pipe "text" events: every column placed, none after the last)
        text = (positions, max(positions) + 1, {word: key for key, word in self._levels.items()})
        self.insert_text = _statement(kind, bulk, members, ROWS_PER_STATEMENT, text)
        self.insert_text_one = _statement(kind, bulk, members, 1, text)
        self.key_at = tuple(positions[:len(KEYS[kind])])

    def run(self, found, bar=None, report_progress=None, estimate=0) -> None:
        """Write the events of pipe.events(): blocks checked, or skipped."""
        done = 0
        for event in found:
            if event[0] == "skip":
                _, keys, valid, n, digests = event
                if not self.bulk and keys is not None:
                    self._note_keys(keys)
                self.valid += valid
                self.skipped_blocks += len(digests)
                self.clean.extend(digests)
            elif event[0] == "keys":  # the reader's hashes of every key: two are equal
                if event[1] and not self.exact:
                    raise Twice(None)
                continue
            else:  # "rows" (checked values), or "text" (the block's lines as read)
                _, flat, width, lines, rejected, others, clean, n = event
                as_read = event[0] == "text"
                if as_read:
                    flat = flat.replace("\n", ",").split(",") if lines else []
                self._write(flat, width, lines, rejected, others, as_read)
                self.clean.extend(clean)
            done += n
            if bar is not None:
                bar.update(n)
            if report_progress is not None:
                report_progress(done, estimate)
        self._find_twice()
        self._reject_twice()

    # -- keys given twice --------------------------------------------------------------------------------

    def _note_keys(self, keys, n: int = 1) -> None:
        if not keys:
            return
        rows = [(k, "", n) for k in keys] if self.kind == "claims" else [(*k, n) for k in keys]
        self.conn.executemany(f"INSERT INTO temp.{_SEEN} (k1, k2, n) VALUES (?, ?, ?) "
                              f"ON CONFLICT (k1, k2) DO UPDATE SET n = n + excluded.n", rows)

    def _find_twice(self) -> None:
        """Raise Twice with the keys given more than once (unless this pass already left them out)."""
        if self.twice:
            return
        found = set(self.conflicts)
        if self.bulk:  # seen holds the keys of rejected rows only: the table has the others
            join = ("claims AS t ON t.claim_id = s.k1" if self.kind == "claims"
                    else "enrollments AS t ON t.year = s.k1 AND t.member_id = s.k2")
            query = (f"SELECT k1, k2 FROM temp.{_SEEN} AS s WHERE n > 1 UNION "
                     f"SELECT k1, k2 FROM temp.{_SEEN} AS s JOIN {join}")
        else:
            query = f"SELECT k1, k2 FROM temp.{_SEEN} WHERE n > 1"
        for k1, k2 in self.conn.execute(query):
            found.add(k1 if self.kind == "claims" else (k1, k2))
        if found:
            raise Twice(found)

    def hold(self, checked, block) -> bool:
        """Rows of keys given twice: out of the writing, into a TEMP table until all their lines are known."""
        twice = self.twice
        keys = value_keys(self.kind, checked.values)
        hit = [i for i, k in enumerate(keys) if k in twice]
        others = {line for k, line in checked.others if k in twice}
        if not hit and not others:
            return False
        cells_of = {line: block.cells(i) for i, line in enumerate(block.lines)}
        held = [(checked.lines[i], keys[i], cells_of[checked.lines[i]]) for i in hit]
        held += [(r[0], next(k for k, line in checked.others if line == r[0]), r[3])
                 for r in checked.rejected if r[0] in others]
        rows = [(line, *((k, "") if self.kind == "claims" else k), raw_line(cells)) for line, k, cells in held]
        self.conn.executemany(f"INSERT INTO temp.{_TWICE} (line, k1, k2, raw) VALUES (?, ?, ?, ?)", rows)
        if hit:
            drop = set(hit)
            checked.values = [v for i, v in enumerate(checked.values) if i not in drop]
            checked.lines = [v for i, v in enumerate(checked.lines) if i not in drop]
        checked.rejected = [r for r in checked.rejected if r[0] not in others]
        return True

    def twice_in(self, keys) -> bool:
        return not self.twice.isdisjoint(keys)

    def _reject_twice(self) -> None:
        """Every row of a key given twice, with all the lines of that key."""
        if not self.twice:
            return
        what = "结算单号" if self.kind == "claims" else "年度和参合证号"
        rows = self.conn.execute(
            f"SELECT t.line, t.raw, g.lines, g.n FROM temp.{_TWICE} AS t JOIN (SELECT k1, k2, count(*) AS n, "
            f"group_concat(line, '、') AS lines FROM (SELECT * FROM temp.{_TWICE} ORDER BY line) GROUP BY k1, k2) AS g "
            f"USING (k1, k2) ORDER BY t.line").fetchall()
        for line, raw, lines, n in rows:
            cells = next(csv.reader([raw])) if raw else []
            self._reject(line, KEY_WORDS[self.kind], f"{what}在文件中出现{n}次: 第{lines}行", cells)

    # -- writing -----------------------------------------------------------------------------------------

    def _reject(self, line, column, reason, cells) -> None:
        self.conn.execute('INSERT INTO rejected_rows (sync_run_id, line, "column", reason, raw) '
                          "VALUES (?, ?, ?, ?, ?)", [self.run_id, line, column, reason, raw_line(cells)])
        self.report.write(line, column, reason, cells)
        reasons = self.result.reasons
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
        self.result.rejected += 1

    def _write(self, flat, width, lines, rejected, others, as_read=False) -> None:
        """Reject the block's bad rows, write its good ones (`flat`: their values row after row, `width` a
        row; `as_read`: the export's cells as read instead of checked values), ROWS_PER_STATEMENT a
        statement; a statement that fails on a row (a key twice in bulk mode, a 结算单号 of another person)
        is written again row by row to find it."""
        for line, column, reason, cells in rejected:
            self._reject(line, column, reason, cells)
        key_at = self.key_at if as_read else (0, 1)
        if self.exact:  # (bulk mode: the primary key finds good rows' keys given twice)
            other_keys = [k for k, _ in others]
            self._note_keys(other_keys if self.bulk or not width
                            else _keys(self.kind, flat, width, key_at) + other_keys)
        if not width:
            return
        insert, insert_one = (self.insert_text, self.insert_text_one) if as_read else (self.insert, self.insert_one)
        rows = len(flat) // width
        step = ROWS_PER_STATEMENT * width
        whole = rows - rows % ROWS_PER_STATEMENT
        execute = self.conn.execute
        for start in range(0, whole * width, step):
            try:
                execute(insert, flat[start:start + step])
            except sqlite3.IntegrityError:  # the statement is undone: its rows one by one
                self._one_by_one(flat, width, lines, start // width, start // width + ROWS_PER_STATEMENT,
                                 insert_one, as_read)
                continue
            self.valid += ROWS_PER_STATEMENT
        if whole < rows:
            self._one_by_one(flat, width, lines, whole, rows, insert_one, as_read)
        if self.bulk and self.kind == "claims":
            self.conn.execute(_BULK_HISTORY, [self.run_id, self.history_top])
            self.history_top = _top(self.conn, "claims")

    def _one_by_one(self, flat, width, lines, first: int, end: int, insert_one: str, as_read: bool) -> None:
        """Rows first..end-1 of `flat`, a statement each (executemany), rejecting a row that fails."""
        start = first
        while start < end:
            at = [start]

            def rows(start=start):
                for i in range(start, end):
                    at[0] = i
                    yield flat[i * width:(i + 1) * width]

            try:
                self.conn.executemany(insert_one, rows())
                self.valid += end - start
                return
            except sqlite3.IntegrityError as e:
                i = at[0]
                self.valid += i - start
                values = flat[i * width:(i + 1) * width]
                key = _keys(self.kind, values, width, self.key_at if as_read else (0, 1))[0]
                if _CONFLICT in str(e):
                    owner = self.conn.execute("SELECT member_id FROM claims WHERE claim_id = ?", [key]).fetchone()
                    self._reject(lines[i], "结算单号", f"结算单号已属于另一参合证号: {owner[0] if owner else '?'}",
                                 list(values) if as_read else self._cells(values))
                elif self.bulk and "UNIQUE" in str(e):
                    self.conflicts.add(key)
                else:
                    raise
                start = i + 1

    def _cells(self, values) -> list[str]:
        """A checked row's cells for the report, placed as the export's header has them (the level as its
        word; a column the checks do not read is left empty)."""
        cells = [str(v) for v in values]
        if self.kind == "claims":
            del cells[2]  # the household, which the export does not have
            cells[6] = self._levels.get(cells[6], cells[6])
        placed = [""] * (max(self.positions) + 1)
        for at, cell in zip(self.positions, cells):
            placed[at] = cell
        return placed

    # -- after the rows ------------------------------------------------------------------------------------

    def finish(self, saved_indexes) -> None:
        conn = self.conn
        conn.execute(f"PRAGMA cache_size = -{SORT_CACHE_KIB}")
        conn.execute("PRAGMA shrink_memory")
        if self.kind == "enrollment":
            self._members()  # before the indexes of members are built again (not updated row by row)
        if saved_indexes:
            conn.execute(f"PRAGMA threads = {SORT_THREADS}")  # a multi-threaded sorter for CREATE INDEX
            for sql in saved_indexes:
                conn.execute(sql)
        conn.executemany("INSERT INTO sync_blocks (kind, digest, sync_run_id) VALUES (?, ?, ?) ON CONFLICT "
                         "(kind, digest) DO UPDATE SET sync_run_id = excluded.sync_run_id",
                         [(self.kind, d, self.run_id) for d in self.clean])
        oldest = conn.execute("SELECT id FROM sync_runs WHERE kind = ? AND (status = 'ok' OR id = ?) "
                              "ORDER BY id DESC LIMIT 1 OFFSET ?", [self.kind, self.run_id, KEEP_RUNS - 1]).fetchone()
        if oldest:  # the digests no import of the last KEEP_RUNS had: memory stays bounded over the years
            conn.execute("DELETE FROM sync_blocks WHERE kind = ? AND (sync_run_id IS NULL OR sync_run_id < ?)",
                         [self.kind, oldest[0]])

    def _members(self) -> None:
        """members from enrollments for the members this sync touched (all of them after a bulk load), and
        the household of their claims."""
        conn = self.conn
        if self.bulk:
            conn.execute(_MEMBERS_FROM.format(source="enrollments AS e"))
            conn.execute("UPDATE claims SET household_id = m.household_id FROM members AS m "
                         "WHERE m.member_id = claims.member_id AND claims.household_id IS NOT m.household_id")
            return
        years = [y for (y,) in conn.execute(_YEARS)]
        if not years:
            return
        marks = ", ".join("?" * len(years))
        conn.execute(_MEMBERS_FROM.format(
            source=f"temp.{_TOUCHED} AS t JOIN enrollments AS e ON e.year IN ({marks}) AND e.member_id = t.member_id"),
            years)
        conn.execute(f"UPDATE claims SET household_id = m.household_id FROM members AS m "
                     f"WHERE claims.member_id IN (SELECT member_id FROM temp.{_TOUCHED}) "
                     f"AND m.member_id = claims.member_id AND claims.household_id IS NOT m.household_id")
