"""The console dashboard's figures, read from the synced county data (the attached county file):
enrollment and unpaid members by township for a year, claims by status, and the amounts reimbursed
by level and month. Plain SQL, like county.py; amounts summed as Decimal."""
from collections import defaultdict
from decimal import Decimal

from sqlite_utils import Database

from ..policy_kb.claim_status import COUNTED
from . import db as _db


def enrollment_years(db: Database) -> list[int]:
    """The years the enrollment data holds, newest first."""
    return [y for (y,) in db.conn.execute("select distinct year from enrollments order by year desc")]


def enrollment_by_township(db: Database, year: int) -> list[dict]:
    """[{township, enrolled, unpaid}] for `year`'s enrollment rows, most enrolled first."""
    return _db.rows(db, """
        select coalesce(nullif(township, ''), '(未填)') as township,
               sum(status = '已参合') as enrolled, sum(status = '未缴费') as unpaid
        from enrollments where year = ? group by 1 order by enrolled desc, township""", [year])


def claims_by_status(db: Database) -> list[dict]:
    return _db.rows(db, "select status, count(*) as n from claims group by status order by n desc, status")


def reimbursed_by_level_month(db: Database, months: int = 12) -> dict:
    """{"months": [YYYY-MM...], "levels": [level...], "amounts": {level: {month: Decimal}}} for claims
    审核通过 or 已拨付, by month of admission, the last `months` months that have any."""
    rows = db.conn.execute(
        f"select substr(admitted, 1, 7), level, reimbursed from claims where status in ({','.join('?' * len(COUNTED))}) "
        "and admitted != '' and reimbursed != ''", COUNTED)
    amounts: dict = defaultdict(lambda: defaultdict(Decimal))
    for month, level, reimbursed in rows:
        amounts[level][month] += Decimal(reimbursed)
    all_months = sorted({m for per in amounts.values() for m in per})[-months:]
    levels = sorted(amounts, key=lambda lv: -sum(amounts[lv].values()))
    return {"months": all_months, "levels": levels,
            "amounts": {lv: {m: amounts[lv].get(m, Decimal(0)) for m in all_months} for lv in levels}}


def totals(db: Database, year: int) -> dict:
    """Headline numbers: members enrolled and unpaid in `year`, claims, open handoff tickets, last sync."""
    enrolled, unpaid = db.conn.execute(
        "select coalesce(sum(status = '已参合'), 0), coalesce(sum(status = '未缴费'), 0) from enrollments where year = ?",
        [year]).fetchone()
    claims = db.conn.execute("select count(*) from claims").fetchone()[0]
    tickets = db.conn.execute("select count(*) from handoff_tickets where status = 'open'").fetchone()[0]
    last = _db.rows(db, "select kind, finished_at, inserted, updated, unchanged, rejected from sync_runs "
                        "where status = 'ok' order by id desc limit 1")
    return {"enrolled": enrolled, "unpaid": unpaid, "claims": claims, "open_tickets": tickets,
            "last_sync": last[0] if last else None}
