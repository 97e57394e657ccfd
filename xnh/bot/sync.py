"""`xnh sync enrollment FILE` / `xnh sync claims FILE`: import a county export (SPEC "County export
formats") into the store.

    from xnh.bot import store, sync
    result = sync.run(store.open_db(), "claims", "claims.csv")
    print("\\n".join(result.summary_lines()))

- Reads CSV in UTF-8 (with or without BOM) or GBK/GB18030 (detected), or .xlsx (openpyxl), as a
  stream: the file is never held in memory.
- Checks every row (ID number check digit and birth date, level/status/type/category words, amounts
  as Decimal, dates); a bad row is rejected with its line number, column and reason, kept in
  `rejected_rows` and written to FILE.rejected.csv, and the rest is imported.
- Upserts by key; a row whose 更新时间 is not newer than the stored one changes nothing, so
  re-importing a file reports 0 changes. Every claim status change goes to `claim_history`; a claim
  that becomes 已拨付 queues a payment notification (`notify.py`).
- The whole import, its `sync_runs` row included, is one transaction: a crash (kill -9) leaves the
  database as it was, and running again finishes the job.

Speed: rows go to SQLite with `executemany` in one transaction (sqlite-utils' insert_all commits per
batch and caps batch size; STYLE.md measured 2.3x). When the file is large next to the table (the
first import of a county), the secondary indexes are dropped and rebuilt inside the same transaction,
which is several times faster than updating them row by row. Claims into an empty table go in "bulk
mode" (_Writer): plain INSERTs, history and paid set by one INSERT … SELECT each afterwards, until a
结算单号 comes twice. Files ≥ 4 MB are read and checked in a forked process; a row made of cells
already checked in earlier rows takes a fast path (_Checker._claim_known). bench/sync_bench.py
measures it; bench/SYNC_RESULTS.md has the figures and what was tried.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import io
import logging
import multiprocessing
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from operator import mul
from pathlib import Path

from sqlite_utils import Database

from .. import idnumber
from ..money import to_money
from ..policy_kb.loader import levels
from ..privacy import normalize_phone
from . import notify
from .store import stamp

logger = logging.getLogger(__name__)

BATCH = 5000
PARALLEL_MIN_BYTES = 4 << 20  # files this large are read and checked in a second process
CACHE_KIB = 100_000  # SQLite page cache during a sync (the default 2 MB thrashes on a million rows)

ENROLLMENT_COLUMNS = ("年度", "参合证号", "户号", "姓名", "性别", "身份证号", "与户主关系", "联系电话", "乡镇", "村",
                      "人员类别", "缴费金额", "缴费日期", "参合状态", "更新时间")
CLAIM_COLUMNS = ("结算单号", "参合证号", "姓名", "身份证号", "就诊类型", "医疗机构", "机构级别", "入院日期", "出院日期",
                 "总费用", "可报费用", "补偿金额", "状态", "拒付原因", "拨付日期", "拨付方式", "更新时间")
COLUMNS = {"enrollment": ENROLLMENT_COLUMNS, "claims": CLAIM_COLUMNS}
KIND_WORD = {"enrollment": "参合人员", "claims": "补偿记录"}

CATEGORIES = frozenset(("普通", "五保户", "低保户", "独生子女户", "二女户", "村干部", "城镇居民"))
ENROLLMENT_STATUSES = frozenset(("已参合", "未缴费", "已退出"))
CLAIM_STATUSES = frozenset(("已受理", "审核中", "审核通过", "已拨付", "未通过"))
VISIT_TYPES = frozenset(("住院", "门诊", "住院分娩", "慢性病门诊"))
SEXES = frozenset(("男", "女", ""))
PAID = "已拨付"


class SyncError(Exception):
    """The file cannot be read at all (missing, not a table, wrong columns, mixed encodings)."""


class _Bad(Exception):
    """One row is rejected: (column, reason)."""


@dataclass
class Result:
    """What one sync did; `summary_lines()` is what `xnh sync` prints."""

    kind: str
    file: str
    encoding: str = ""
    run_id: int | None = None
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    notifications: int = 0
    report: str = ""
    report_note: str = ""
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)
    first_rejected: list = field(default_factory=list)  # [(line, column, reason)], the first few

    def summary_lines(self) -> list[str]:
        lines = [f"{KIND_WORD[self.kind]} {self.file} ({self.encoding}): "
                 f"{self.inserted + self.updated + self.unchanged + self.rejected} rows in {self.seconds:.1f}s"]
        if self.rejected > len(self.first_rejected):  # many: how many of each reason, then the first few
            for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:10]:
                lines.append(f"  rejected {n}: {reason}")
        for line, column, reason in self.first_rejected:
            lines.append(f"  line {line}, {column}: {reason}")
        if self.rejected > len(self.first_rejected):
            lines.append(f"  … and {self.rejected - len(self.first_rejected)} more in the report")
        if self.notifications:
            lines.append(f"payment notifications queued: {self.notifications}")
        if self.report_note:
            lines.append(self.report_note)
        lines.append(f"rejected rows written to {self.report}" if self.rejected
                     else "rejected rows: none (no report written)")
        lines.append(f"inserted={self.inserted} updated={self.updated} unchanged={self.unchanged} "
                     f"rejected={self.rejected}")
        return lines


# -- reading the file ------------------------------------------------------------------------------

def _detect_encoding(path: Path) -> str:
    """utf-8-sig for a BOM, utf-8 when the file decodes strictly as UTF-8, else gb18030 (GBK's superset)."""
    with open(path, "rb") as f:
        head = f.read(8192)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if b"\x00" in head or head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
            raise SyncError(f"不是CSV表格文件 / not a CSV table: {path}")
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            pass
    decoder = codecs.getincrementaldecoder("gb18030")("strict")
    with open(path, "rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise SyncError(f"无法识别文件编码(不是UTF-8也不是GBK) / unknown text encoding: {path}") from e
    return "gb18030"


def _csv_rows(path: Path, encoding: str):
    """(line number as an editor shows it, cells) for each CSV record after the header; header first."""
    f = open(path, encoding=encoding, newline="")
    try:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise SyncError(f"文件是空的 / empty file: {path}") from None
        except csv.Error as e:
            raise SyncError(f"不是CSV表格文件 / not a CSV table: {path}: {e}") from None
        yield 1, header
        last = reader.line_num
        try:
            for cells in reader:
                yield last + 1, cells
                last = reader.line_num
        except csv.Error as e:
            raise SyncError(f"CSV格式错误,第{last + 1}行 / malformed CSV at line {last + 1}: {e}") from None
    finally:
        f.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def _xlsx_rows(path: Path):
    """Rows of the first worksheet (row number = the spreadsheet's row number)."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a file that is not a workbook
        raise SyncError(f"无法打开Excel文件 / cannot open workbook: {path}: {e.__class__.__name__}") from None
    try:
        ws = wb.worksheets[0]
        for number, values in enumerate(ws.iter_rows(values_only=True), 1):
            yield number, [_cell_text(v) for v in values]
    finally:
        wb.close()


def _open_table(path: Path, kind: str):
    """(encoding, column positions, rows iterator of (line, cells), estimated rows) or SyncError."""
    if not path.exists():
        raise SyncError(f"找不到文件 / file not found: {path}")
    if not path.is_file():
        raise SyncError(f"不是文件 / not a file: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.suffix.lower() in (".xlsx", ".xlsm") or magic.startswith(b"PK\x03\x04"):
        encoding, rows = "xlsx", _xlsx_rows(path)
    elif path.suffix.lower() == ".xls" or magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise SyncError(f"不支持旧版.xls,请在Excel里另存为.xlsx或CSV / old .xls not supported, save as .xlsx or CSV: {path}")
    else:
        encoding = _detect_encoding(path)
        rows = _csv_rows(path, encoding)
    header_line, header = _header(rows, path)
    positions = _positions(header, kind, path)
    return encoding, positions, header_line, rows


def _header(rows, path):
    """The header row: the first of the first few non-blank rows that names most export columns (clerks'
    sheets often carry a title row above it), else the first non-blank row."""
    known = set(ENROLLMENT_COLUMNS) | set(CLAIM_COLUMNS)
    first = None
    for _ in range(10):
        for line, cells in rows:
            if any(c.strip() for c in cells):
                break
        else:
            break
        first = first or (line, cells)
        if sum(c.strip().lstrip("\ufeff") in known for c in cells) >= 5:
            return line, cells
    if first is None:
        raise SyncError(f"文件没有表头 / no header row: {path}")
    return first


def _positions(header: list[str], kind: str, path: Path) -> list[int]:
    names = [h.strip().lstrip("\ufeff") for h in header]
    want = COLUMNS[kind]
    missing = [c for c in want if c not in names]
    if missing:
        other = "claims" if kind == "enrollment" else "enrollment"
        if all(c in names for c in COLUMNS[other]):
            raise SyncError(f"这是{KIND_WORD[other]}文件,请用 xnh sync {other} / "
                            f"this is a {other} file, use `xnh sync {other}`: {path}")
        raise SyncError(f"缺少列 {','.join(missing)} / missing columns: {path}")
    return [names.index(c) for c in want]


def _estimate_rows(path: Path, encoding: str) -> int:
    """Data rows, counted from newlines (CSV) or the sheet's dimension (xlsx); for the progress bar."""
    if encoding == "xlsx":
        try:
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            n = wb.worksheets[0].max_row or 0
            wb.close()
            return max(0, n - 1)
        except Exception:
            return 0
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += chunk.count(b"\n")
    return max(0, n - 1)


# -- checking one row ------------------------------------------------------------------------------

_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{4})(\d{2})(\d{2})")
_DATETIME = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?")
_ID = re.compile(r"\d{17}[\dX]")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643; the sum runs over ASCII codes,
_CHECK = "10X98765432"  # so 48 × sum(weights) = 4800 is taken off
_ID_BORN_MIN = "18900101"
_AMOUNT = re.compile(r"\d{1,9}(?:\.\d{1,2})?")


def _money_greater(a: str, b: str) -> bool:
    """a > b for two amounts as _Checker.amount writes them (digits, a point, two decimals, no leading zero
    but in 0.xx): of two such strings the longer is the larger, and of equal length the later in order."""
    return (len(a), a) > (len(b), b)


class _Checker:
    """Field checks with small caches (exports repeat the same dates, amounts and ID numbers)."""

    def __init__(self):
        self.level_keys = {entry["name"]: key for key, entry in levels().items()}
        self._dates: dict = {}
        self._times: dict = {}
        self._amounts: dict = {}
        self._ids: set = set()
        self._births: dict = {}
        self._today = dt.date.today().strftime("%Y%m%d")

    @staticmethod
    def _cache_full(cache) -> None:
        """Keep the caches bounded on files with millions of distinct values."""
        if len(cache) > 200_000:
            cache.clear()

    def date(self, raw: str, column: str, required: bool = False) -> str:
        value = self._dates.get(raw)
        if value is not None:
            return value
        text = raw.strip()
        if not text:
            if required:
                raise _Bad(column, f"缺少{column}")
            return ""
        m = _DATE.fullmatch(text)
        if not m:
            raise _Bad(column, f"{column}不是日期: {text}")
        y, mo, d = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        try:
            value = dt.date(int(y), int(mo), int(d))
        except ValueError:
            raise _Bad(column, f"{column}不是有效日期: {text}") from None
        if not 1900 <= value.year <= 2100:
            raise _Bad(column, f"{column}年份不对: {text}")
        self._cache_full(self._dates)
        self._dates[raw] = value = value.isoformat()
        return value

    def updated_at(self, raw: str, column: str = "更新时间") -> str:
        value = self._times.get(raw)
        if value is not None:
            return value
        text = raw.strip()
        if not text:
            raise _Bad(column, f"缺少{column}")
        m = _DATETIME.fullmatch(text)
        if not m:
            raise _Bad(column, f"{column}不是日期时间: {text}")
        y, mo, d, hh, mi, ss, zone = m.groups()
        try:
            value = dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
        except ValueError:
            raise _Bad(column, f"{column}不是有效日期时间: {text}") from None
        if zone:  # stored as China time without a zone, so that strings compare in time order
            offset = dt.datetime.fromisoformat("2000-01-01T00:00:00" + ("+00:00" if zone == "Z" else zone)).utcoffset()
            value = value - offset + dt.timedelta(hours=8)
        self._cache_full(self._times)
        self._times[raw] = value = value.isoformat(timespec="seconds")
        return value

    def amount(self, raw: str, column: str, required: bool = False) -> str:
        value = self._amounts.get(raw)
        if value is not None:
            return value
        text = raw.strip().replace(",", "")
        if not text:
            if required:
                raise _Bad(column, f"缺少{column}")
            return ""
        if not _AMOUNT.fullmatch(text):
            raise _Bad(column, f"{column}不是金额: {raw.strip()}")
        try:
            value = str(to_money(Decimal(text)))
        except InvalidOperation:
            raise _Bad(column, f"{column}不是金额: {raw.strip()}") from None
        self._cache_full(self._amounts)
        self._amounts[raw] = value
        return value

    def id_number(self, raw: str, column: str = "身份证号") -> str:
        """Upper-case X; empty allowed (a child enrolled before birth has none yet). The check digit and
        birth date as xnh.idnumber checks them, with a fast path (idnumber.birth_date costs ~15 µs)."""
        number = raw.strip().upper()
        if not number or number in self._ids:
            return number
        if not (_ID.fullmatch(number) and _CHECK[(sum(map(mul, number[:17].encode(), _WEIGHTS)) - 4800) % 11]
                == number[17] and _ID_BORN_MIN <= number[6:14] <= self._today and self._born(number[6:14])):
            try:
                idnumber.birth_date(number)
            except idnumber.BadID as e:
                raise _Bad(column, str(e)) from None
        self._cache_full(self._ids)
        self._ids.add(number)
        return number

    def _born(self, yyyymmdd: str) -> bool:
        ok = self._births.get(yyyymmdd)
        if ok is None:
            try:
                dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
                ok = True
            except ValueError:
                ok = False
            self._births[yyyymmdd] = ok
        return ok

    @staticmethod
    def required(raw: str, column: str) -> str:
        text = raw.strip()
        if not text:
            raise _Bad(column, f"缺少{column}")
        if len(text) > 64:
            raise _Bad(column, f"{column}太长")
        return text

    @staticmethod
    def word(raw: str, column: str, allowed: frozenset) -> str:
        text = raw.strip()
        if text not in allowed:
            raise _Bad(column, f"未知{column}: {text}" if text else f"缺少{column}")
        return text

    def claim(self, c: list[str]) -> tuple:
        """A claims row → the values for _CLAIM_UPSERT (claim_id ... updated_at, fallback household).
        Most rows of an export are made of cells already checked in earlier rows: _claim_known takes those
        from the caches; any other row gets the full checks, which give the same values or the reason."""
        return self._claim_known(c) or self._claim_checked(c)

    def _claim_known(self, c: list[str]) -> tuple | None:
        """The row's values when every cell is known good as written, else None. Known good: a 结算单号 and
        参合证号 of 1–64 characters with no spaces around them, then the ID number as the full checks take
        it (their next step: a bad one raises the same _Bad they would), a date, time or amount found in the
        caches (they hold only values that passed), an empty optional cell, a level, type or status word
        exactly as listed; and the row's own rules hold (discharged ≥ admitted, 补偿金额 ≤ 总费用)."""
        claim_id, member_id = c[0], c[1]
        if not (0 < len(claim_id) <= 64 and claim_id == claim_id.strip()
                and 0 < len(member_id) <= 64 and member_id == member_id.strip()):
            return None
        id_number = self.id_number(c[3])  # the next check of the full path: the same value, or the same _Bad
        dates, amounts = self._dates, self._amounts
        admitted, updated_at, total = dates.get(c[7]), self._times.get(c[16]), amounts.get(c[9])
        discharged = dates.get(c[8]) if c[8] else ""
        paid_date = dates.get(c[14]) if c[14] else ""
        eligible = amounts.get(c[10]) if c[10] else ""
        reimbursed = amounts.get(c[11]) if c[11] else ""
        level = self.level_keys.get(c[6])
        if (None in (admitted, discharged, paid_date, updated_at, total, eligible, reimbursed, level)
                or c[4] not in VISIT_TYPES or c[12] not in CLAIM_STATUSES
                or (discharged and discharged < admitted)
                or (reimbursed and _money_greater(reimbursed, total))):
            return None
        return (claim_id, member_id, member_id.split("-")[0], c[2].strip(), id_number, c[4], c[5].strip(), level,
                admitted, discharged, total, eligible, reimbursed, c[12], c[13].strip(), paid_date,
                c[15].strip(), updated_at)

    def _claim_checked(self, c: list[str]) -> tuple:
        """claim() for any row: every cell checked; raises _Bad with the first problem."""
        claim_id = self.required(c[0], "结算单号")
        member_id = self.required(c[1], "参合证号")
        name = c[2].strip()
        id_number = self.id_number(c[3])
        visit = self.word(c[4], "就诊类型", VISIT_TYPES)
        hospital = c[5].strip()
        level_word = c[6].strip()
        level = self.level_keys.get(level_word)
        if level is None:
            raise _Bad("机构级别", f"未知机构级别: {level_word}" if level_word else "缺少机构级别")
        admitted = self.date(c[7], "入院日期", required=True)
        discharged = self.date(c[8], "出院日期")
        if discharged and discharged < admitted:
            raise _Bad("出院日期", f"出院日期早于入院日期: {discharged}")
        total = self.amount(c[9], "总费用", required=True)
        eligible = self.amount(c[10], "可报费用")
        reimbursed = self.amount(c[11], "补偿金额")
        if reimbursed and _money_greater(reimbursed, total):
            raise _Bad("补偿金额", f"补偿金额{reimbursed}大于总费用{total}")
        status = self.word(c[12], "状态", CLAIM_STATUSES)
        paid_date = self.date(c[14], "拨付日期")
        updated_at = self.updated_at(c[16])
        return (claim_id, member_id, member_id.split("-")[0], name, id_number, visit, hospital, level, admitted,
                discharged, total, eligible, reimbursed, status, c[13].strip(), paid_date, c[15].strip(), updated_at)

    def enrollment(self, c: list[str]) -> tuple:
        """An enrollment row → the values for _ENROLLMENT_UPSERT."""
        year_text = c[0].strip()
        if not re.fullmatch(r"\d{4}", year_text) or not 1990 <= int(year_text) <= 2100:
            raise _Bad("年度", f"年度不对: {year_text}" if year_text else "缺少年度")
        member_id = self.required(c[1], "参合证号")
        household_id = self.required(c[2], "户号")
        name = c[3].strip()
        sex = self.word(c[4], "性别", SEXES)
        id_number = self.id_number(c[5])
        phone = normalize_phone(c[7])
        digits = phone.removeprefix("+")  # a number abroad keeps its + (xnh.privacy.normalize_phone)
        if phone and not (digits.isdigit() and 7 <= len(digits) <= 15):
            raise _Bad("联系电话", f"联系电话不对: {c[7].strip()}")
        category = self.word(c[10], "人员类别", CATEGORIES)
        paid_amount = self.amount(c[11], "缴费金额")
        paid_date = self.date(c[12], "缴费日期")
        status = self.word(c[13], "参合状态", ENROLLMENT_STATUSES)
        updated_at = self.updated_at(c[14])
        return (int(year_text), member_id, household_id, name, sex, id_number, c[6].strip(), phone, c[8].strip(),
                c[9].strip(), category, paid_amount, paid_date, status, updated_at)


# -- writing -----------------------------------------------------------------------------------------

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

# the first import into an empty claims table ("bulk" mode, see _Writer): a plain INSERT, no trigger
_CLAIM_INSERT = f"INSERT INTO claims ({', '.join(_CLAIM_COLS)}) VALUES ({_CLAIM_VALUES})"
_BULK_HISTORY = ("INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id) "
                 "SELECT claim_id, NULL, status, updated_at, ? FROM claims ORDER BY rowid")

_TABLES = {"claims": ("claims", "claim_history"), "enrollment": ("enrollments", "members")}
_PAID_TABLE = "_xnh_sync_paid"
_COUNTER = "_xnh_sync_updates"
_TRIGGERS = ("_xnh_sync_claim_ins", "_xnh_sync_claim_upd", "_xnh_sync_claim_member", "_xnh_sync_count")


def _install_triggers(db: Database, kind: str, run_id: int) -> None:
    """Per-connection (TEMP) triggers: the count of updated rows, claim history of updates, the claims that
    became 已拨付 in this run, and the refusal of a 结算单号 that would move to another member. The trigger
    for inserted claims comes separately (_install_insert_trigger): bulk mode does without it."""
    _drop_triggers(db)
    table = _TABLES[kind][0]
    db.execute(f"CREATE TEMP TABLE {_COUNTER} (n INTEGER)")
    db.execute(f"INSERT INTO temp.{_COUNTER} VALUES (0)")
    db.execute(f"CREATE TEMP TRIGGER _xnh_sync_count AFTER UPDATE ON main.{table} BEGIN "
               f"UPDATE {_COUNTER} SET n = n + 1; END")
    if kind != "claims":
        return
    db.execute(f"CREATE TEMP TABLE {_PAID_TABLE} (claim_id TEXT PRIMARY KEY)")
    db.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_member BEFORE UPDATE OF member_id ON main.claims
        WHEN old.member_id IS NOT new.member_id BEGIN SELECT RAISE(ABORT, '{_CONFLICT}'); END""")
    db.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_upd AFTER UPDATE OF status ON main.claims
        WHEN old.status IS NOT new.status BEGIN
        INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id)
            VALUES (new.claim_id, old.status, new.status, new.updated_at, {int(run_id)});
        INSERT OR IGNORE INTO {_PAID_TABLE} (claim_id) SELECT new.claim_id WHERE new.status = '{PAID}';
    END""")


def _install_insert_trigger(conn: sqlite3.Connection, run_id: int) -> None:
    """History and the paid set for each claim inserted, as it is inserted."""
    conn.execute(f"""CREATE TEMP TRIGGER _xnh_sync_claim_ins AFTER INSERT ON main.claims BEGIN
        INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id)
            VALUES (new.claim_id, NULL, new.status, new.updated_at, {int(run_id)});
        INSERT OR IGNORE INTO {_PAID_TABLE} (claim_id) SELECT new.claim_id WHERE new.status = '{PAID}';
    END""")


def _drop_triggers(db: Database) -> None:
    for name in _TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS temp.{name}")
    db.execute(f"DROP TABLE IF EXISTS temp.{_PAID_TABLE}")
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


FIRST_SHOWN = 10  # rejected rows listed in the summary itself (all of them are in the report file)


class _Report:
    """FILE.rejected.csv next to the input (or in the working directory when that is not writable)."""

    def __init__(self, source: Path):
        self.note = ""
        target = source.with_name(source.name + ".rejected.csv")
        try:
            self.tmp = target.with_name(target.name + ".tmp")
            self.f = open(self.tmp, "w", encoding="utf-8-sig", newline="")
        except OSError:
            fallback = Path.cwd() / target.name
            self.note = f"note: {source.parent} is not writable, report written to {fallback} instead"
            target, self.tmp = fallback, fallback.with_name(fallback.name + ".tmp")
            self.f = open(self.tmp, "w", encoding="utf-8-sig", newline="")
        self.path = target
        self.rows = 0
        self.first = []
        self.writer = csv.writer(self.f)
        self.writer.writerow(["line", "column", "reason", "raw"])

    def write(self, line: int, column: str, reason: str, raw: str) -> None:
        self.rows += 1
        if len(self.first) < FIRST_SHOWN:
            self.first.append((line, column, reason))
        self.writer.writerow([line, column, reason, raw])

    def finish(self) -> None:
        """Put the report in place; with nothing rejected, leave no file (and no stale one from before)."""
        self.f.close()
        if self.rows:
            os.replace(self.tmp, self.path)
            return
        for path in (self.tmp, self.path):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    def abandon(self) -> None:
        self.f.close()
        try:
            os.remove(self.tmp)
        except OSError:
            pass


def _raw_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


def run(db: Database, kind: str, file, progress: bool = False) -> Result:
    """Import `file` (a county export of `kind` 'enrollment' or 'claims') in one transaction."""
    if kind not in COLUMNS:
        raise SyncError(f"unknown kind {kind!r}: use enrollment or claims")
    path = Path(file)
    started = time.monotonic()
    encoding, positions, _, rows = _open_table(path, kind)
    result = Result(kind=kind, file=str(path), encoding=encoding)
    report = _Report(path)
    try:
        with _batch_source(rows, kind, positions, path) as batches:
            _import(db, kind, path, batches, result, report, progress)
    except BaseException:
        report.abandon()
        raise
    report.finish()
    result.report, result.report_note, result.first_rejected = str(report.path), report.note, report.first
    result.seconds = time.monotonic() - started
    return result


def _batches(rows, kind: str, positions: list[int]):
    """Read and check the rows: yields (valid [(line, values)], rejected [(line, column, reason, raw)])."""
    check = _Checker()
    validate = check.claim if kind == "claims" else check.enrollment
    width = max(positions) + 1
    valid, rejected = [], []
    for line, cells in rows:
        if (not cells or not cells[0].strip()) and not any(c.strip() for c in cells):
            continue  # a blank line / an empty spreadsheet row
        if len(cells) < width:
            rejected.append((line, "", f"列数不对: {len(cells)}列,应为{len(COLUMNS[kind])}列", _raw_line(cells)))
        else:
            try:
                valid.append((line, validate([cells[i] for i in positions])))
            except _Bad as bad:
                rejected.append((line, bad.args[0], bad.args[1], _raw_line(cells)))
        if len(valid) >= BATCH or len(rejected) >= BATCH:
            yield valid, rejected
            valid, rejected = [], []
    yield valid, rejected


@contextlib.contextmanager
def _batch_source(rows, kind, positions, path):
    """The checked batches; for a large file, read and checked in a forked process while this one writes
    to SQLite (the two halves take about as long, and the GIL would serialise threads)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size < PARALLEL_MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
        yield _batches(rows, kind, positions)
        return
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_reader_process, args=(rows, kind, positions, send), daemon=True)
    proc.start()
    send.close()
    rows.close()  # the child goes on with its own copy of the open file
    try:
        yield _from_reader(receive)
    finally:
        receive.close()
        if proc.is_alive():
            proc.kill()
        proc.join()


def _reader_process(rows, kind, positions, send) -> None:
    try:
        for batch in _batches(rows, kind, positions):
            send.send(("batch", batch))
        send.send(("done", None))
    except BrokenPipeError:
        pass  # the writer is gone (killed, or stopped on an error)
    except SyncError as e:
        send.send(("error", str(e)))
    except Exception as e:  # anything else: report it in one line, the writer rolls back
        send.send(("error", f"{e.__class__.__name__}: {e}"))


def _from_reader(receive):
    while True:
        try:
            tag, item = receive.recv()
        except EOFError:
            raise SyncError("读取进程意外退出 / the reader process died") from None
        if tag == "done":
            return
        if tag == "error":
            raise SyncError(item)
        yield item


def _import(db, kind, path, batches, result, report, progress):
    table, other = _TABLES[kind]
    conn = db.conn
    estimate = _estimate_rows(path, result.encoding)
    bar = None
    if progress:
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
            writer = _Writer(conn, kind, run_id, result, report, bulk=kind == "claims" and before == 0)
            if not writer.bulk and kind == "claims":
                _install_insert_trigger(conn, run_id)
            try:
                for valid, rejected in batches:
                    writer.write(valid)
                    writer.reject(rejected)
                    if bar is not None:
                        bar.update(len(valid) + len(rejected))
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
                if kind == "claims":
                    result.notifications = notify.queue_payments_from(db, f"temp.{_PAID_TABLE}")
                else:
                    _fix_claim_households(db)
                logger.debug("sync %s: notifications/households after %.1fs", kind, time.monotonic() - t0)
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


class _Writer:
    """Writes checked batches: executemany per batch; rejected rows to the table and the report.

    Bulk mode, for claims into an empty table (a county's first import): a plain INSERT without the
    per-row history trigger (which costs as much as the insert itself); the history rows and the paid set
    of all inserted claims are written by end_bulk() with one INSERT … SELECT each. The first 结算单号 that
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
                raw = _raw_line([v for i, v in enumerate(vals) if i != 2])  # as read, less the household
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
        """History and paid set of the claims inserted in bulk mode (the table held nothing else), then the
        insert trigger for what follows."""
        if not self.bulk:
            return
        self.bulk = False
        self.conn.execute(_BULK_HISTORY, [self.run_id])
        self.conn.execute(f"INSERT INTO temp.{_PAID_TABLE} (claim_id) SELECT claim_id FROM claims WHERE status = ?",
                          [PAID])
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


def _fix_claim_households(db: Database) -> None:
    """Claims imported before their member's enrollment guessed the household from 参合证号: correct them."""
    db.execute("UPDATE claims SET household_id = m.household_id FROM members AS m "
               "WHERE m.member_id = claims.member_id AND claims.household_id IS NOT m.household_id")
