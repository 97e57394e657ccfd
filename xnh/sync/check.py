"""Checking the rows of a county export: ID number check digit and birth date (xnh.idnumber), level,
status, type and category words, amounts as Decimal strings, dates (none after tomorrow), lengths.

Two paths that give the same result (tests/test_sync_check.py checks it with hypothesis):
- `Checker.claim(cells)` / `Checker.enrollment(cells)`: one row, every cell checked; a bad row raises
  Bad(column, reason) with its first problem;
- `check_block(checker, kind, block, positions)`: a block of rows checked column by column (set
  membership, one regular expression over a whole column, a cache of distinct dates and ID numbers), so
  that a well-formed export costs a few Python operations per row; any row a column check cannot vouch
  for goes through the one-row checks, which decide and give the reason.

Full-width digits, signs and spaces (０-９, ＋, －, ．, ，, the ideographic space) are read as their ASCII
forms in phones, ID numbers, amounts and dates; cells are stripped of read.STRIP.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import chain, compress, repeat
from operator import gt, itemgetter, lt, methodcaller, not_

from .. import clock, idnumber
from ..money import to_money
from ..policy_kb.loader import levels
from ..privacy import normalize_phone
from .read import COLUMNS, STRIP

CATEGORIES = frozenset(("普通", "五保户", "低保户", "独生子女户", "二女户", "村干部", "城镇居民"))
ENROLLMENT_STATUSES = frozenset(("已参合", "未缴费", "已退出"))
CLAIM_STATUSES = frozenset(("已受理", "审核中", "审核通过", "已拨付", "未通过"))
VISIT_TYPES = frozenset(("住院", "门诊", "住院分娩", "慢性病门诊"))
SEXES = frozenset(("男", "女", ""))
MAX_KEY_CHARS = 64  # 结算单号, 参合证号, 户号
MAX_CELL_CHARS = 500  # any other cell
ID_CACHE = 50_000  # ID numbers known good, kept between blocks (numpy checks new ones fast: memory matters more)
GRACE_DAYS = 1  # a date up to this many days after today is accepted (clocks and time zones differ)
KEYS = {"claims": ("结算单号",), "enrollment": ("年度", "参合证号")}
# for each value written (write.py's columns), the export column (COLUMNS order) it is as written when its
# check changed nothing; None: derived (a claim's household from its 参合证号, the level's key from its word)
AS_WRITTEN = {"claims": (0, 1, None, 2, 3, 4, 5, None, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
              "enrollment": tuple(range(15))}

FULL_WIDTH = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "\u3000": " ", "＋": "+", "－": "-",
                            "．": ".", "，": ",", "／": "/", "：": ":", "Ｘ": "X", "ｘ": "x"})


class Bad(Exception):
    """One row is rejected: (column, reason)."""


_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{4})(\d{2})(\d{2})")
_DATETIME = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?")
_ID_BORN_MIN = "18900101"
_AMOUNT = re.compile(r"\d{1,9}(?:\.\d{1,2})?")
_CANONICAL = r"(?:0|[1-9][0-9]{0,8})\.[0-9]{2}"  # what Checker.amount writes
_AMOUNTS = re.compile(rf"(?:{_CANONICAL})?(?:\n(?:{_CANONICAL})?)*")
_REQUIRED_AMOUNTS = re.compile(rf"{_CANONICAL}(?:\n{_CANONICAL})*")
_PHONES = re.compile(r"(?:1[0-9]{10})?(?:\n(?:1[0-9]{10})?)*")
_strip = methodcaller("strip", STRIP)


def valid_ids(numbers: list[str], today: str) -> list[bool]:
    """For 18-character ASCII ID numbers: True where xnh.idnumber would accept the number with a birth
    date no later than `today` (YYYYMMDD): check digit, birth date, born after 1890. Vectorised with numpy
    (a pure-Python check digit costs about a microsecond, and an export holds millions)."""
    import numpy as np  # here, not at the top: the writing process never loads it (its memory is counted)

    a = np.frombuffer("".join(numbers).encode("ascii"), dtype=np.uint8).reshape(-1, 18)
    digits = a[:, :17].astype(np.int64) - 48
    ok = ((digits >= 0) & (digits <= 9)).all(axis=1)
    weights, codes, scale, month_days_of = _id_tables()
    ok &= codes[(digits @ weights) % 11] == a[:, 17]
    born = digits[:, 6:14] @ scale
    year, month, day = born // 10000, born // 100 % 100, born % 100
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = month_days_of[np.clip(month, 0, 12)] + ((month == 2) & leap)
    ok &= (born >= int(_ID_BORN_MIN)) & (born <= int(today)) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= day <= month_days
    return ok.tolist()


@functools.cache
def _id_tables():
    import numpy as np

    return (np.array((7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), dtype=np.int64),
            np.frombuffer(b"10X98765432", dtype=np.uint8), np.array([10 ** i for i in range(7, -1, -1)], dtype=np.int64),
            np.array((0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), dtype=np.int64))


def money_greater(a: str, b: str) -> bool:
    """a > b for two amounts as Checker.amount writes them (digits, a point, two decimals, no leading zero
    but in 0.xx): of two such strings the longer is the larger, and of equal length the later in order."""
    return (len(a), a) > (len(b), b)


def household_of(member_id: str) -> str:
    """The household a 参合证号 names (before its '-'), until the member's enrollment says otherwise."""
    return member_id.partition("-")[0]


def _plain(raw: str) -> str:
    """A cell stripped, full-width forms read as ASCII."""
    return (raw if raw.isascii() else raw.translate(FULL_WIDTH)).strip(STRIP)


class Checker:
    """Field checks with small caches (exports repeat the same dates, amounts and ID numbers)."""

    def __init__(self, today: dt.date | None = None):
        self.level_keys = {entry["name"]: key for key, entry in levels().items()}
        today = today or clock.today()
        self._today = today.strftime("%Y%m%d")
        self.horizon = (today + dt.timedelta(days=GRACE_DAYS)).isoformat()  # the last date accepted
        self._dates: dict = {}
        self._times: dict = {}
        self._amounts: dict = {}
        self._ids: set = set()
        self._births: dict = {}
        # raw → canonical value, or None when only the one-row check can tell (no "" in the required ones)
        self._fast_dates: dict = {"": ""}
        self._fast_required_dates: dict = {}
        self._fast_times: dict = {}
        self._years: dict = {}
        self.short_lines = False  # set per block by check_block

    @staticmethod
    def _cache_full(cache) -> None:
        """Keep the caches bounded on files with millions of distinct values."""
        if len(cache) > 200_000:
            cache.clear()

    # -- one cell ------------------------------------------------------------------------------------

    def date(self, raw: str, column: str, required: bool = False) -> str:
        value = self._dates.get(raw)
        if value is not None:
            return value
        text = _plain(raw)
        if not text:
            if required:
                raise Bad(column, f"缺少{column}")
            return ""
        m = _DATE.fullmatch(text)
        if not m:
            raise Bad(column, f"{column}不是日期: {text}")
        y, mo, d = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        try:
            value = dt.date(int(y), int(mo), int(d))
        except ValueError:
            raise Bad(column, f"{column}不是有效日期: {text}") from None
        if not 1900 <= value.year <= 2100:
            raise Bad(column, f"{column}年份不对: {text}")
        value = value.isoformat()
        if value > self.horizon:
            raise Bad(column, f"{column}晚于今天: {text}")
        self._cache_full(self._dates)
        self._dates[raw] = value
        return value

    def updated_at(self, raw: str, column: str = "更新时间") -> str:
        value = self._times.get(raw)
        if value is not None:
            return value
        text = _plain(raw)
        if not text:
            raise Bad(column, f"缺少{column}")
        m = _DATETIME.fullmatch(text)
        if not m:
            raise Bad(column, f"{column}不是日期时间: {text}")
        y, mo, d, hh, mi, ss, zone = m.groups()
        try:
            value = dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
        except ValueError:
            raise Bad(column, f"{column}不是有效日期时间: {text}") from None
        if zone:  # stored as China time without a zone, so that strings compare in time order
            offset = dt.datetime.fromisoformat("2000-01-01T00:00:00" + ("+00:00" if zone == "Z" else zone)).utcoffset()
            value = value - offset + dt.timedelta(hours=8)
        value = value.isoformat(timespec="seconds")
        if value[:10] > self.horizon:
            raise Bad(column, f"{column}晚于今天: {text}")
        self._cache_full(self._times)
        self._times[raw] = value
        return value

    def amount(self, raw: str, column: str, required: bool = False) -> str:
        value = self._amounts.get(raw)
        if value is not None:
            return value
        text = _plain(raw).replace(",", "")
        if not text:
            if required:
                raise Bad(column, f"缺少{column}")
            return ""
        if not _AMOUNT.fullmatch(text):
            raise Bad(column, f"{column}不是金额: {raw.strip(STRIP)}")
        try:
            value = str(to_money(Decimal(text)))
        except InvalidOperation:
            raise Bad(column, f"{column}不是金额: {raw.strip(STRIP)}") from None
        self._cache_full(self._amounts)
        self._amounts[raw] = value
        return value

    def id_number(self, raw: str, column: str = "身份证号") -> str:
        """Upper-case X; empty allowed (a child enrolled before birth has none yet). The check digit and
        birth date as xnh.idnumber checks them, with a fast path (idnumber.birth_date costs ~15 µs)."""
        number = _plain(raw).upper()
        if not number or number in self._ids:
            return number
        if not self._id_ok(number):
            try:
                idnumber.birth_date(number)
                raise Bad(column, "身份证号中的出生日期不对")  # born after today (the policy date)
            except idnumber.BadID as e:
                raise Bad(column, str(e)) from None
        self._cache_full(self._ids)
        self._ids.add(number)
        return number

    def _id_ok(self, number: str) -> bool:
        return (idnumber.check_digit_ok(number) and _ID_BORN_MIN <= number[6:14] <= self._today
                and self._born(number[6:14]))

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
        text = raw.strip(STRIP)
        if not text:
            raise Bad(column, f"缺少{column}")
        if len(text) > MAX_KEY_CHARS:
            raise Bad(column, f"{column}太长(超过{MAX_KEY_CHARS}字)")
        return text

    @staticmethod
    def text(raw: str, column: str) -> str:
        text = raw.strip(STRIP)
        if len(text) > MAX_CELL_CHARS:
            raise Bad(column, f"{column}太长(超过{MAX_CELL_CHARS}字)")
        return text

    @staticmethod
    def word(raw: str, column: str, allowed: frozenset) -> str:
        text = raw.strip(STRIP)
        if text not in allowed:
            raise Bad(column, f"未知{column}: {text}" if text else f"缺少{column}")
        return text

    @staticmethod
    def phone(raw: str, column: str = "联系电话") -> str:
        phone = normalize_phone(_plain(raw))
        digits = phone.removeprefix("+")  # a number abroad keeps its + (xnh.privacy.normalize_phone)
        if phone and not (digits.isdigit() and digits.isascii() and 7 <= len(digits) <= 15):
            raise Bad(column, f"联系电话不对: {raw.strip(STRIP)}")
        return phone

    @staticmethod
    def year(raw: str, column: str = "年度") -> int:
        text = _plain(raw)
        if not (len(text) == 4 and text.isdigit() and text.isascii()) or not 1990 <= int(text) <= 2100:
            raise Bad(column, f"年度不对: {text}" if text else f"缺少{column}")
        return int(text)

    # -- one row -------------------------------------------------------------------------------------

    def claim(self, c: list[str]) -> tuple:
        """A claims row (cells in CLAIM_COLUMNS order) → the values written (claim_id … updated_at, the level
        as its key), or Bad with the first problem."""
        claim_id = self.required(c[0], "结算单号")
        member_id = self.required(c[1], "参合证号")
        name = self.text(c[2], "姓名")
        id_number = self.id_number(c[3])
        visit = self.word(c[4], "就诊类型", VISIT_TYPES)
        hospital = self.text(c[5], "医疗机构")
        level_word = c[6].strip(STRIP)
        level = self.level_keys.get(level_word)
        if level is None:
            raise Bad("机构级别", f"未知机构级别: {level_word}" if level_word else "缺少机构级别")
        admitted = self.date(c[7], "入院日期", required=True)
        discharged = self.date(c[8], "出院日期")
        if discharged and discharged < admitted:
            raise Bad("出院日期", f"出院日期早于入院日期: {discharged}")
        total = self.amount(c[9], "总费用", required=True)
        eligible = self.amount(c[10], "可报费用")
        reimbursed = self.amount(c[11], "补偿金额")
        if reimbursed and money_greater(reimbursed, total):
            raise Bad("补偿金额", f"补偿金额{reimbursed}大于总费用{total}")
        status = self.word(c[12], "状态", CLAIM_STATUSES)
        reason = self.text(c[13], "拒付原因")
        paid_date = self.date(c[14], "拨付日期")
        channel = self.text(c[15], "拨付方式")
        updated_at = self.updated_at(c[16])
        return (claim_id, member_id, household_of(member_id), name, id_number, visit, hospital, level, admitted,
                discharged, total, eligible, reimbursed, status, reason, paid_date, channel, updated_at)

    def enrollment(self, c: list[str]) -> tuple:
        """An enrollment row (cells in ENROLLMENT_COLUMNS order) → the values written, or Bad."""
        year = self.year(c[0])
        member_id = self.required(c[1], "参合证号")
        household_id = self.required(c[2], "户号")
        name = self.text(c[3], "姓名")
        sex = self.word(c[4], "性别", SEXES)
        id_number = self.id_number(c[5])
        relation = self.text(c[6], "与户主关系")
        phone = self.phone(c[7])
        township = self.text(c[8], "乡镇")
        village = self.text(c[9], "村")
        category = self.word(c[10], "人员类别", CATEGORIES)
        paid_amount = self.amount(c[11], "缴费金额")
        paid_date = self.date(c[12], "缴费日期")
        status = self.word(c[13], "参合状态", ENROLLMENT_STATUSES)
        updated_at = self.updated_at(c[14])
        return (year, member_id, household_id, name, sex, id_number, relation, phone, township, village, category,
                paid_amount, paid_date, status, updated_at)

    # -- a whole column: the values, and the rows only the one-row checks can decide -------------------

    def _col_key(self, col, suspects: set) -> list:
        if "" in col or max(map(len, col)) > MAX_KEY_CHARS:
            suspects.update(i for i, x in enumerate(col) if not x or len(x) > MAX_KEY_CHARS)
        return col

    def _col_text(self, col, suspects: set) -> list:
        if self.short_lines:  # no line of the block is as long as a cell may be
            return col
        if max(map(len, col)) > MAX_CELL_CHARS:
            suspects.update(i for i, x in enumerate(col) if len(x) > MAX_CELL_CHARS)
        return col

    @staticmethod
    def _col_word(col, allowed, suspects: set, mapping: dict | None = None) -> list:
        bad = set(col).difference(allowed)
        if bad:
            suspects.update(i for i, x in enumerate(col) if x in bad)
        if mapping is None:
            return col
        return [mapping.get(x) for x in col] if bad else list(map(mapping.__getitem__, col))

    def _col_id(self, col, suspects: set) -> list:
        if set(map(len, col)) == {18} and "".join(col).isascii():  # no cell empty: all checked at once (numpy),
            ok = valid_ids(col, self._today)  # faster than sorting the new ones from those seen before
            if not all(ok):
                suspects.update(compress(range(len(col)), map(not_, ok)))
            return col
        known = self._ids
        new = set(col).difference(known)
        new.discard("")
        if not new:
            return col
        if len(known) + len(new) > ID_CACHE:
            known.clear()
        plain = [n for n in new if len(n) == 18 and n.isascii()]
        good = set(compress(plain, valid_ids(plain, self._today))) if plain else set()
        known.update(good)
        bad = new - good
        if bad:
            suspects.update(i for i, x in enumerate(col) if x in bad)
        return col

    def _col_date(self, col, suspects: set, cache: dict, parse) -> list:
        distinct = set(col)
        new = distinct.difference(cache)
        new.discard("")
        if len(cache) + len(new) > 200_000:
            cache.clear()
            cache.update({"": ""} if cache is self._fast_dates else {})
        for raw in new:
            try:
                cache[raw] = parse(raw, "")
            except Bad:
                cache[raw] = None
        if all(cache.get(x) == x for x in distinct):
            return col  # every value as written, and good
        values = list(map(cache.get, col))
        if None in values:
            suspects.update(i for i, v in enumerate(values) if v is None)
        return values

    def _col_amount(self, col, suspects: set, required: bool) -> list:
        joined = "\n".join(col)
        if joined.isascii() and (_REQUIRED_AMOUNTS if required else _AMOUNTS).fullmatch(joined):
            return col
        values = []
        for i, raw in enumerate(col):
            value = self._amounts.get(raw)
            if value is None:
                try:
                    value = self.amount(raw, "", required)
                except Bad:
                    suspects.add(i)
            values.append(value)
        return values

    def _col_phone(self, col, suspects: set) -> list:
        joined = "\n".join(col)
        if joined.isascii() and _PHONES.fullmatch(joined):
            return col
        values = []
        for i, raw in enumerate(col):
            try:
                values.append(self.phone(raw))
            except Bad:
                values.append(None)
                suspects.add(i)
        return values

    def _col_year(self, col, suspects: set) -> list:
        cache = self._years
        for raw in set(col).difference(cache):
            try:
                cache[raw] = self.year(raw)
            except Bad:
                cache[raw] = None
        values = [cache[x] for x in col]
        if None in values:
            suspects.update(i for i, v in enumerate(values) if v is None)
        elif all(str(cache[x]) == x for x in set(col)):
            return col  # every year as written (the column's INTEGER affinity stores it as a number)
        return values

    def claims_columns(self, c: list, suspects: set) -> list:
        """The columns of a block of claims (CLAIM_COLUMNS order) → the value columns (the household from
        参合证号 after it); rows the columns cannot vouch for are added to `suspects` (their values here
        are meaningless)."""
        dates = self._fast_dates
        admitted = self._col_date(c[7], suspects, self._fast_required_dates, self.date)
        discharged = self._col_date(c[8], suspects, dates, self.date)
        total = self._col_amount(c[9], suspects, True)
        reimbursed = self._col_amount(c[11], suspects, False)
        _row_rules(admitted, discharged, total, reimbursed, suspects)
        members = self._col_key(c[1], suspects)
        households = list(map(itemgetter(0), map(methodcaller("partition", "-"), members)))
        return [self._col_key(c[0], suspects), members, households, self._col_text(c[2], suspects),
                self._col_id(c[3], suspects), self._col_word(c[4], VISIT_TYPES, suspects),
                self._col_text(c[5], suspects), self._col_word(c[6], self.level_keys, suspects, self.level_keys),
                admitted, discharged, total, self._col_amount(c[10], suspects, False), reimbursed,
                self._col_word(c[12], CLAIM_STATUSES, suspects), self._col_text(c[13], suspects),
                self._col_date(c[14], suspects, dates, self.date), self._col_text(c[15], suspects),
                self._col_date(c[16], suspects, self._fast_times, self.updated_at)]

    def enrollment_columns(self, c: list, suspects: set) -> list:
        """As claims_columns, for enrollment (ENROLLMENT_COLUMNS order)."""
        return [self._col_year(c[0], suspects), self._col_key(c[1], suspects), self._col_key(c[2], suspects),
                self._col_text(c[3], suspects), self._col_word(c[4], SEXES, suspects), self._col_id(c[5], suspects),
                self._col_text(c[6], suspects), self._col_phone(c[7], suspects), self._col_text(c[8], suspects),
                self._col_text(c[9], suspects), self._col_word(c[10], CATEGORIES, suspects),
                self._col_amount(c[11], suspects, False),
                self._col_date(c[12], suspects, self._fast_dates, self.date),
                self._col_word(c[13], ENROLLMENT_STATUSES, suspects),
                self._col_date(c[14], suspects, self._fast_times, self.updated_at)]


def _row_rules(admitted, discharged, total, reimbursed, suspects: set) -> None:
    """Rows breaking a claim's own rules (discharged before admitted, 补偿金额 over 总费用) are suspects."""
    if None in admitted or None in discharged or None in total or None in reimbursed:
        for i, (a, d, t, r) in enumerate(zip(admitted, discharged, total, reimbursed)):
            if None in (a, d, t, r) or (d and d < a) or (r and money_greater(r, t)):
                suspects.add(i)
        return
    for i in compress(range(len(admitted)), map(lt, discharged, admitted)):
        if discharged[i]:
            suspects.add(i)
    suspects.update(compress(range(len(total)), map(gt, map(len, reimbursed), map(len, total))))
    for i in compress(range(len(total)), map(gt, reimbursed, total)):
        if len(reimbursed[i]) == len(total[i]):
            suspects.add(i)


@dataclass
class Checked:
    """A block checked: the values of its good rows with their line numbers and keys, and its rejected
    rows [(line, column, reason, cells)]; `others`: [(key, line)] of rejected rows that have a key (a
    key given twice in a file rejects all its rows, good or not). When every row is good the values are
    kept by column (`columns`), and made rows only when asked (`values`): the pipe joins them from the
    columns (a tuple a row costs 0.4 µs)."""

    rows: list | None = None
    lines: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    others: list = field(default_factory=list)
    columns: list | None = None
    # every row good and every value as written: the block's lines as read (cells joined by "," and
    # "\n", `width` cells a line, in the export's order), which the writer binds with the derived values
    # computed in SQL (write.py's text statement): no value is joined or copied for the pipe
    text: str | None = None
    width: int = 0

    @property
    def values(self) -> list:
        """The good rows' values, a tuple a row."""
        if self.rows is None:
            self.rows = list(zip(*self.columns)) if self.columns else []
            self.columns = None
        return self.rows

    @values.setter
    def values(self, rows: list) -> None:
        self.rows, self.columns, self.text = rows, None, None

    def flat(self):
        """(an iterator of every value, row after row; the values a row)."""
        if self.columns is not None:
            return chain.from_iterable(zip(*self.columns)), len(self.columns) if self.columns[0] else 0
        rows = self.values
        return chain.from_iterable(rows), len(rows[0]) if rows else 0

    def keys(self, kind: str) -> list:
        """The good rows' keys (as value_keys gives them)."""
        if self.columns is not None:
            if kind == "claims":
                return self.columns[0]
            return list(zip(map(int, self.columns[0]), self.columns[1]))
        return value_keys(kind, self.values)


def row_key(kind: str, cells: list[str]):
    """The key of a row as read (cells in COLUMNS order): 结算单号, or (年度, 参合证号); None when missing."""
    if kind == "claims":
        return cells[0].strip(STRIP) or None
    year, member = _plain(cells[0]), cells[1].strip(STRIP)
    return (int(year), member) if year.isdigit() and year.isascii() and member else None


def block_keys(kind: str, block, positions: list[int], ranges=None) -> list:
    """The keys of a block's records (those in `ranges` [(start, end)] only, when given) as row_key gives
    them (those without one left out)."""
    width = max(positions) + 1

    def take(seq):
        return seq if ranges is None else list(chain.from_iterable(seq[a:b] for a, b in ranges))

    if block.split_later():  # not split into columns: the key cells alone, by one regular expression
        if block.width < width:
            return []
        found = _key_cells(block.text if ranges is None else "\n".join(take(block.texts)), kind, positions)
        if kind == "claims":
            keys = list(map(_strip, found)) if block.spaced else found
            return [k for k in keys if k] if "" in keys else keys
        return [k for k in map(row_key, repeat(kind), found) if k is not None]
    if block.columns is not None:
        if block.width < width:
            return []
        first = take(block.columns[positions[0]])
        if kind == "claims":
            keys = list(map(_strip, first)) if block.spaced else first
            return [k for k in keys if k] if "" in keys else list(keys)
        return [k for k in map(row_key, repeat(kind), zip(first, take(block.columns[positions[1]])))
                if k is not None]
    keys = [row_key(kind, [cells[p] for p in positions]) for cells in take(block.rows) if len(cells) >= width]
    return [k for k in keys if k is not None]


@functools.cache
def _cells_re(positions: tuple) -> tuple[re.Pattern, re.Pattern]:
    """Regular expressions whose groups are the cells at `positions` (ascending) of a line of a text with
    no quote and as many cells on every line: of its first line (match), and of each line after a line
    break (findall: searching for the break is the engine's fast literal scan, 3× a pattern anchored by ^)."""
    body, at = "", 0
    for i, p in enumerate(positions):
        body += ("," if i else "") + f"(?:[^,\n]*,){{{p - at}}}([^,\n]*)"
        at = p + 1
    return re.compile(body), re.compile("\n" + body)


def _key_cells(text: str, kind: str, positions: list[int]) -> list:
    """The key cells of every line of `text` (a block's lines not split into columns): 结算单号, or
    (年度, 参合证号)."""
    want = positions[:len(KEYS[kind])]
    first, after = _cells_re(tuple(sorted(want)))
    head = first.match(text)
    found = after.findall(text)
    if head is not None:
        found.insert(0, head.group(1) if len(want) == 1 else head.groups())
    if len(want) == 1 or want == sorted(want):
        return found
    return [(b, a) for a, b in found]


def value_keys(kind: str, values: list[tuple]) -> list:
    """The keys of checked rows, as row_key gives them (the year an int: from the reader process it comes
    as text)."""
    if kind == "claims":
        return [v[0] for v in values]
    return [(int(v[0]), v[1]) for v in values]


def check_block(checker: Checker, kind: str, block, positions: list[int]) -> Checked:
    """Check the rows of a read.Block (cells in the file's own order; `positions` places the export's
    columns in it)."""
    out = Checked()
    for line, reason, text in block.errors:
        out.rejected.append((line, "", reason, [text] if text else []))
    lines = block.lines
    if block.columns is not None and "" not in (map(_strip, block.columns[0]) if block.spaced else block.columns[0]):
        if not lines:
            return out
        width = max(positions) + 1
        if block.width < width:  # every line is short
            for i, line in enumerate(lines):
                out.rejected.append((line, "", f"列数不对: {block.width}列,应为{len(COLUMNS[kind])}列", block.cells(i)))
            return out
        columns, cells_of, as_read = block.columns, block.cells, block.joined
    else:
        rows = block.rows if block.columns is None else [block.cells(i) for i in range(len(lines))]
        if not rows:
            return out
        width = max(positions) + 1
        n_columns = len(COLUMNS[kind])
        if min(map(len, rows)) < width or "" in map(_strip if block.spaced else str, map(itemgetter(0), rows)):
            keep = []
            for i, cells in enumerate(rows):
                if not any(c.strip(STRIP) for c in cells):
                    continue  # a blank line / an empty spreadsheet row
                if len(cells) < width:
                    out.rejected.append((lines[i], "", f"列数不对: {len(cells)}列,应为{n_columns}列", cells))
                    continue
                keep.append(i)
            if len(keep) < len(rows):
                rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]
                if not rows:
                    return out
        columns, cells_of, as_read = list(zip(*rows)), rows.__getitem__, None  # (blank lines left out)
    cols = [columns[p] for p in positions]
    checker.short_lines = None not in block.texts and max(map(len, block.texts), default=0) <= MAX_CELL_CHARS
    if block.spaced:
        cols = [list(map(_strip, col)) for col in cols]
    suspects: set = set()
    if kind == "claims":
        values = checker.claims_columns(cols, suspects)
        one_row = checker.claim
    else:
        values = checker.enrollment_columns(cols, suspects)
        one_row = checker.enrollment
    if not suspects:
        out.columns, out.lines = values, lines
        if (as_read is not None and not block.spaced and block.width == width and "\x00" not in as_read
                and all(v is cols[c] for v, c in zip(values, AS_WRITTEN[kind]) if c is not None)):
            out.text, out.width = as_read, width
        out.rejected.sort(key=lambda r: r[0])
        return out
    good = list(zip(*values))
    if suspects:
        for i in sorted(suspects):
            cells = cells_of(i)
            try:
                good[i] = one_row([cells[p] for p in positions])
            except Bad as bad:
                good[i] = None
                out.rejected.append((lines[i], bad.args[0], bad.args[1], cells))
                key = row_key(kind, [cells[p] for p in positions])
                if key is not None:
                    out.others.append((key, lines[i]))
        if None in good:
            keep = [i for i, v in enumerate(good) if v is not None]
            good, lines = [good[i] for i in keep], [lines[i] for i in keep]
    out.values, out.lines = good, lines
    out.rejected.sort(key=lambda r: r[0])
    return out


def raw_line(cells: list[str]) -> str:
    """Cells as one CSV line (the rejected row as it was read)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()
