"""Who a campaign reaches: space-separated terms that must all hold, parsed into SQL over the county data.

    parse("unpaid=2027 township=东山镇")   # → Audience(terms={"unpaid": 2027, "township": "东山镇"})

Terms (each at most once):
    enrolled=YEAR        the household has a member 已参合 in YEAR
    unpaid=YEAR          the household has a member 未缴费 in YEAR, or a member 已参合 in YEAR−1 with no row for
                         YEAR yet (the reminder before next year's deadline)
    township=NAME, village=NAME, category=NAME (人员类别, e.g. 五保户)   a member of the household has it
    claim_status=STATUS  a claim of the household has this status (已受理 审核中 审核通过 已拨付 未通过)
    claim_days=N         a claim of the household moved in the last N days of the policy date (its payment
                         date, else discharge, else admission); with claim_status, the same claim
A message goes to every registered phone (联系电话) of a matching household, once per phone.

Written as a Chinese input method writes it, too: full-width ＝, digits and spaces are read as their
ASCII forms (NFKC), and each term may be named in Chinese (乡镇=东山镇 未缴费=2027, ALIASES). The console
builds the terms from a Chinese form (`compose`) and shows an audience in Chinese (`describe`).
"""
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

from ..policy_kb import claim_status

CLAIM_STATUSES = claim_status.STATUSES
_YEAR = re.compile(r"(19|20)\d\d")
_NAME = re.compile(r"[^\s=]{1,40}")
NAMES = ("enrolled", "unpaid", "township", "village", "category", "claim_status", "claim_days")
ALIASES = {"已参合": "enrolled", "参合": "enrolled", "未缴费": "unpaid", "乡镇": "township", "镇": "township",
           "乡": "township", "村": "village", "类别": "category", "人员类别": "category", "报销状态": "claim_status",
           "报销天数": "claim_days", "天数": "claim_days"}
WORDS = {"township": "乡镇", "village": "村", "category": "人员类别", "claim_status": "报销状态"}


class AudienceError(ValueError):
    """An audience that cannot be read (unknown term, malformed value, a term twice, nothing at all)."""


@dataclass(frozen=True)
class Audience:
    terms: dict = field(default_factory=dict)

    @property
    def year(self) -> int | None:
        """The year the audience names (unpaid= or enrolled=), for the `year` and `deadline` fields."""
        return self.terms.get("unpaid") or self.terms.get("enrolled")


def parse(text: str) -> Audience:
    """The terms of `text`, checked; AudienceError says which term is wrong and why."""
    terms: dict = {}
    words = unicodedata.normalize("NFKC", text or "").split()
    if not words:
        raise AudienceError("受众为空 / the audience names no term (e.g. unpaid=2027 township=东山镇)")
    for word in words:
        name, eq, value = word.partition("=")
        name = ALIASES.get(name, name)
        if name not in NAMES:
            raise AudienceError(f"未知条件「{word}」(可用:乡镇= 村= 人员类别= 未缴费= 已参合= 报销状态= 报销天数=) / unknown term {word!r}: use {', '.join(n + '=' for n in NAMES)}")
        if not eq or not value:
            raise AudienceError(f"条件「{word}」缺少值 / term {word!r} has no value ({name}=…)")
        if name in terms:
            raise AudienceError(f"条件「{name}」重复 / term {name}= given twice")
        terms[name] = _value(name, value, word)
    return Audience(terms)


def _value(name: str, value: str, word: str):
    if name in ("enrolled", "unpaid"):
        if not _YEAR.fullmatch(value):
            raise AudienceError(f"年份不对「{word}」,应是如 2027 的年份 / {word!r}: {name}= takes a year such as 2027")
        return int(value)
    if name == "claim_days":
        if not value.isascii() or not value.isdigit() or not 0 < int(value) <= 3660:
            raise AudienceError(f"天数不对「{word}」,应是 1 到 3660 / {word!r}: claim_days= takes a number of days from 1 to 3660")
        return int(value)
    if name == "claim_status":
        if value not in CLAIM_STATUSES:
            raise AudienceError(f"报销状态不对「{word}」,应是 {'、'.join(CLAIM_STATUSES)} 之一 / {word!r}: claim_status= is one of {' '.join(CLAIM_STATUSES)}")
        return value
    if not _NAME.fullmatch(value):
        raise AudienceError(f"名称不对「{word}」,最多40个字 / {word!r}: {name}= takes a name of at most 40 characters")
    return value


def households_sql(audience: Audience, today: dt.date) -> tuple[str, list]:
    """SELECT household_id of every matching household (distinct), and its parameters."""
    t, where, params = audience.terms, [], []
    for column in ("township", "village", "category"):
        if column in t:
            where.append(f"m.{column} = ?")
            params.append(t[column])
    if "enrolled" in t:
        where.append("EXISTS (SELECT 1 FROM enrollments AS e WHERE e.household_id = m.household_id "
                     "AND e.year = ? AND e.status = '已参合')")
        params.append(t["enrolled"])
    if "unpaid" in t:
        where.append("(EXISTS (SELECT 1 FROM enrollments AS e WHERE e.household_id = m.household_id AND e.year = ? "
                     "AND e.status = '未缴费') OR EXISTS (SELECT 1 FROM enrollments AS p WHERE p.household_id = "
                     "m.household_id AND p.year = ? AND p.status = '已参合' AND NOT EXISTS (SELECT 1 FROM enrollments "
                     "AS n WHERE n.member_id = p.member_id AND n.year = ?)))")
        params += [t["unpaid"], t["unpaid"] - 1, t["unpaid"]]
    if "claim_status" in t or "claim_days" in t:
        claim = ["c.household_id = m.household_id"]
        if "claim_status" in t:
            claim.append("c.status = ?")
            params.append(t["claim_status"])
        if "claim_days" in t:
            claim.append("coalesce(nullif(c.paid_date, ''), nullif(c.discharged, ''), c.admitted) >= ?")
            params.append((today - dt.timedelta(days=t["claim_days"])).isoformat())
        where.append(f"EXISTS (SELECT 1 FROM claims AS c WHERE {' AND '.join(claim)})")
    return ("SELECT DISTINCT m.household_id FROM members AS m"
            + (" WHERE " + " AND ".join(where) if where else "")), params


def compose(fields: dict) -> str:
    """Terms from the console's Chinese form: year, paid (未缴费 "unpaid" | 已参合 "enrolled" | ""), township,
    village, category, claim_status, claim_days; empty fields are left out."""
    terms = []
    year = unicodedata.normalize("NFKC", str(fields.get("year") or "")).strip()
    if fields.get("paid") in ("unpaid", "enrolled") and year:
        terms.append(f"{fields['paid']}={year}")
    for name in ("township", "village", "category", "claim_status", "claim_days"):
        value = unicodedata.normalize("NFKC", str(fields.get(name) or "")).strip()
        if value:
            terms.append(f"{name}={value.replace(' ', '')}")
    return " ".join(terms)


def describe(text: str) -> str:
    """An audience in Chinese, for the console: "2027年未缴费 · 乡镇:东山镇"; the text itself when unreadable."""
    try:
        t = parse(text).terms
    except AudienceError:
        return text
    out = []
    if "unpaid" in t:
        out.append(f"{t['unpaid']}年未缴费")
    if "enrolled" in t:
        out.append(f"{t['enrolled']}年已参合")
    for name in ("township", "village", "category", "claim_status"):
        if name in t:
            out.append(f"{WORDS[name]}:{t[name]}")
    if "claim_days" in t:
        out.append(f"{t['claim_days']}天内报销有变动")
    return " · ".join(out)
