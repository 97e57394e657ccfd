"""Checking one row of a county export: ID number check digit and birth date (xnh.idnumber), level,
status, type and category words, amounts as Decimal strings, dates; a bad row raises Bad(column,
reason). `batches()` reads and checks the rows into batches for the writer."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal, InvalidOperation

from .. import idnumber
from ..money import to_money
from ..policy_kb.loader import levels
from ..privacy import normalize_phone
from .read import COLUMNS

BATCH = 5000
CATEGORIES = frozenset(("普通", "五保户", "低保户", "独生子女户", "二女户", "村干部", "城镇居民"))
ENROLLMENT_STATUSES = frozenset(("已参合", "未缴费", "已退出"))
CLAIM_STATUSES = frozenset(("已受理", "审核中", "审核通过", "已拨付", "未通过"))
VISIT_TYPES = frozenset(("住院", "门诊", "住院分娩", "慢性病门诊"))
SEXES = frozenset(("男", "女", ""))


class Bad(Exception):
    """One row is rejected: (column, reason)."""



_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{4})(\d{2})(\d{2})")
_DATETIME = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?")
_ID_BORN_MIN = "18900101"
_AMOUNT = re.compile(r"\d{1,9}(?:\.\d{1,2})?")


def money_greater(a: str, b: str) -> bool:
    """a > b for two amounts as Checker.amount writes them (digits, a point, two decimals, no leading zero
    but in 0.xx): of two such strings the longer is the larger, and of equal length the later in order."""
    return (len(a), a) > (len(b), b)


class Checker:
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
        self._cache_full(self._dates)
        self._dates[raw] = value = value.isoformat()
        return value

    def updated_at(self, raw: str, column: str = "更新时间") -> str:
        value = self._times.get(raw)
        if value is not None:
            return value
        text = raw.strip()
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
                raise Bad(column, f"缺少{column}")
            return ""
        if not _AMOUNT.fullmatch(text):
            raise Bad(column, f"{column}不是金额: {raw.strip()}")
        try:
            value = str(to_money(Decimal(text)))
        except InvalidOperation:
            raise Bad(column, f"{column}不是金额: {raw.strip()}") from None
        self._cache_full(self._amounts)
        self._amounts[raw] = value
        return value

    def id_number(self, raw: str, column: str = "身份证号") -> str:
        """Upper-case X; empty allowed (a child enrolled before birth has none yet). The check digit and
        birth date as xnh.idnumber checks them, with a fast path (idnumber.birth_date costs ~15 µs)."""
        number = raw.strip().upper()
        if not number or number in self._ids:
            return number
        if not (idnumber.check_digit_ok(number) and _ID_BORN_MIN <= number[6:14] <= self._today
                and self._born(number[6:14])):
            try:
                idnumber.birth_date(number)
            except idnumber.BadID as e:
                raise Bad(column, str(e)) from None
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
            raise Bad(column, f"缺少{column}")
        if len(text) > 64:
            raise Bad(column, f"{column}太长")
        return text

    @staticmethod
    def word(raw: str, column: str, allowed: frozenset) -> str:
        text = raw.strip()
        if text not in allowed:
            raise Bad(column, f"未知{column}: {text}" if text else f"缺少{column}")
        return text

    def claim(self, c: list[str]) -> tuple:
        """A claims row → the values for _CLAIM_UPSERT (claim_id ... updated_at, fallback household).
        Most rows of an export are made of cells already checked in earlier rows: _claim_known takes those
        from the caches; any other row gets the full checks, which give the same values or the reason."""
        return self._claim_known(c) or self._claim_checked(c)

    def _claim_known(self, c: list[str]) -> tuple | None:
        """The row's values when every cell is known good as written, else None. Known good: a 结算单号 and
        参合证号 of 1–64 characters with no spaces around them, then the ID number as the full checks take
        it (their next step: a bad one raises the same Bad they would), a date, time or amount found in the
        caches (they hold only values that passed), an empty optional cell, a level, type or status word
        exactly as listed; and the row's own rules hold (discharged ≥ admitted, 补偿金额 ≤ 总费用)."""
        claim_id, member_id = c[0], c[1]
        if not (0 < len(claim_id) <= 64 and claim_id == claim_id.strip()
                and 0 < len(member_id) <= 64 and member_id == member_id.strip()):
            return None
        id_number = self.id_number(c[3])  # the next check of the full path: the same value, or the same Bad
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
                or (reimbursed and money_greater(reimbursed, total))):
            return None
        return (claim_id, member_id, member_id.split("-")[0], c[2].strip(), id_number, c[4], c[5].strip(), level,
                admitted, discharged, total, eligible, reimbursed, c[12], c[13].strip(), paid_date,
                c[15].strip(), updated_at)

    def _claim_checked(self, c: list[str]) -> tuple:
        """claim() for any row: every cell checked; raises Bad with the first problem."""
        claim_id = self.required(c[0], "结算单号")
        member_id = self.required(c[1], "参合证号")
        name = c[2].strip()
        id_number = self.id_number(c[3])
        visit = self.word(c[4], "就诊类型", VISIT_TYPES)
        hospital = c[5].strip()
        level_word = c[6].strip()
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
        paid_date = self.date(c[14], "拨付日期")
        updated_at = self.updated_at(c[16])
        return (claim_id, member_id, member_id.split("-")[0], name, id_number, visit, hospital, level, admitted,
                discharged, total, eligible, reimbursed, status, c[13].strip(), paid_date, c[15].strip(), updated_at)

    def enrollment(self, c: list[str]) -> tuple:
        """An enrollment row → the values for _ENROLLMENT_UPSERT."""
        year_text = c[0].strip()
        if not re.fullmatch(r"\d{4}", year_text) or not 1990 <= int(year_text) <= 2100:
            raise Bad("年度", f"年度不对: {year_text}" if year_text else "缺少年度")
        member_id = self.required(c[1], "参合证号")
        household_id = self.required(c[2], "户号")
        name = c[3].strip()
        sex = self.word(c[4], "性别", SEXES)
        id_number = self.id_number(c[5])
        phone = normalize_phone(c[7])
        digits = phone.removeprefix("+")  # a number abroad keeps its + (xnh.privacy.normalize_phone)
        if phone and not (digits.isdigit() and 7 <= len(digits) <= 15):
            raise Bad("联系电话", f"联系电话不对: {c[7].strip()}")
        category = self.word(c[10], "人员类别", CATEGORIES)
        paid_amount = self.amount(c[11], "缴费金额")
        paid_date = self.date(c[12], "缴费日期")
        status = self.word(c[13], "参合状态", ENROLLMENT_STATUSES)
        updated_at = self.updated_at(c[14])
        return (int(year_text), member_id, household_id, name, sex, id_number, c[6].strip(), phone, c[8].strip(),
                c[9].strip(), category, paid_amount, paid_date, status, updated_at)



def raw_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()



def batches(rows, kind: str, positions: list[int]):
    """Read and check the rows: yields (valid [(line, values)], rejected [(line, column, reason, raw)])."""
    check = Checker()
    validate = check.claim if kind == "claims" else check.enrollment
    width = max(positions) + 1
    valid, rejected = [], []
    for line, cells in rows:
        if (not cells or not cells[0].strip()) and not any(c.strip() for c in cells):
            continue  # a blank line / an empty spreadsheet row
        if len(cells) < width:
            rejected.append((line, "", f"列数不对: {len(cells)}列,应为{len(COLUMNS[kind])}列", raw_line(cells)))
        else:
            try:
                valid.append((line, validate([cells[i] for i in positions])))
            except Bad as bad:
                rejected.append((line, bad.args[0], bad.args[1], raw_line(cells)))
        if len(valid) >= BATCH or len(rejected) >= BATCH:
            yield valid, rejected
            valid, rejected = [], []
    yield valid, rejected

