"""Reads of the synced county data: households by phone or ID, a year's enrollment, claims and
the totals already reimbursed. Money comes back as Decimal."""
from decimal import Decimal

from sqlite_utils import Database

from ..policy_kb.claim_status import CLOSED, COUNTED
from . import db as _db

VISIT_KIND = {"住院": "inpatient", "住院分娩": "inpatient", "门诊": "outpatient"}


def members_by_phone(db: Database, phone: str) -> list[dict]:
    """The members (latest data) whose own 联系电话 is `phone`."""
    return _db.rows(db, "select * from members where phone = ? order by member_id", [phone])


def member_by_id_number(db: Database, id_number: str) -> dict | None:
    found = _db.rows(db, "select * from members where id_number = ? limit 1", [id_number.upper()])
    return found[0] if found else None


def household_enrollment(db: Database, household_id: str, year: int) -> list[dict]:
    """The household's enrollment rows of `year`. `+year`: the (year, member_id) key must not be used for
    this (without statistics SQLite takes it to save the sort, and reads every enrollment of the year);
    the household index finds the few rows (tests/test_county_plans.py)."""
    return _db.rows(db, "select * from enrollments where household_id = ? and +year = ? order by member_id",
                      [household_id, year])


def household_claims(db: Database, household_id: str, year: int) -> list[dict]:
    """The household's claims admitted in `year`, and older ones still open (not yet 已拨付 or 未通过),
    so a claim is followed until the money is paid even across New Year. Oldest first."""
    return _db.rows(
        db, "select * from claims where household_id = ? and admitted < ? "
        f"and (admitted >= ? or status not in ({','.join('?' * len(CLOSED))})) order by admitted, claim_id",
        [household_id, f"{year + 1}-01-01", f"{year}-01-01", *CLOSED])


def reimbursed_this_year(db: Database, member_id: str, year: int) -> dict:
    """{'inpatient': Decimal, 'outpatient': Decimal} already reimbursed (审核通过 or 已拨付) in `year`."""
    totals = {"inpatient": Decimal(0), "outpatient": Decimal(0)}
    rows = _db.rows(
        db, "select visit_type, reimbursed from claims where member_id = ? and admitted >= ? and admitted < ? "
        f"and status in ({','.join('?' * len(COUNTED))})",
        [member_id, f"{year}-01-01", f"{year + 1}-01-01", *COUNTED])
    for r in rows:
        kind = VISIT_KIND.get(r["visit_type"])  # 慢性病门诊 has its own rules and counts against neither
        if kind:
            totals[kind] += Decimal(r["reimbursed"] or "0")
    return totals


def phones(db: Database, limit: int) -> list[tuple]:
    """(phone, name, relation) of the first `limit` members with a phone, by household, householder first."""
    return db.execute("select phone, name, relation from members where phone is not null and phone != '' "
                      "order by household_id, relation != '户主', member_id limit ?", [limit]).fetchall()


def places_of_phones(db: Database, phones: list[str]) -> dict[str, tuple[str, str]]:
    """phone → (township, village) of the member whose own 联系电话 it is (the first by member id), for the
    phones the county data knows."""
    found: dict[str, tuple[str, str]] = {}
    phones = sorted({p for p in phones if p})
    for i in range(0, len(phones), 500):
        chunk = phones[i:i + 500]
        for phone, township, village in db.conn.execute(
                f"SELECT phone, township, village FROM members WHERE phone IN ({','.join('?' * len(chunk))}) "
                "ORDER BY member_id", chunk):
            found.setdefault(phone, (township or "", village or ""))
    return found
