"""The console dashboard's figures, read from the synced county data (the attached county file): enrollment
and unpaid members by township for a year, claims by status, the amounts reimbursed by level and month,
and the headline totals. Every figure is an SQL aggregate (amounts summed as integer cents in SQLite and
turned into Decimal yuan: exact for amounts of two decimals), and the result is kept in `dashboard_cache`
(this module writes it) until the county data changes: `version` is the last sync run and claim-history
row, so a page costs one small read until the next sync, whose runner calls `refresh` to compute them
once ahead of the first page.

    summary(db, year)     # {"totals": …, "towns": […], "status": […], "money": {…}}: kept, or computed and kept
    refresh(db)           # compute and keep the figures of this year (after a sync)
"""
import json
from decimal import Decimal

from sqlite_utils import Database

from .. import clock
from ..policy_kb.claim_status import COUNTED
from . import db as _db
from .state import stamp

MONTHS = 12


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


def reimbursed_by_level_month(db: Database, months: int = MONTHS) -> dict:
    """{"months": [YYYY-MM...], "levels": [level...], "amounts": {level: {month: Decimal}}} for claims
    审核通过 or 已拨付, by month of admission, the last `months` months that have any; summed in SQL as
    integer cents."""
    rows = db.conn.execute(
        "select substr(admitted, 1, 7) as month, level, sum(cast(round(cast(reimbursed as real) * 100) as integer)) "
        f"from claims where status in ({','.join('?' * len(COUNTED))}) and admitted != '' and reimbursed != '' "
        "group by 1, 2", COUNTED).fetchall()
    all_months = sorted({m for m, _, _ in rows})[-months:]
    amounts: dict = {}
    for month, level, cents in rows:
        if month in all_months:
            amounts.setdefault(level, {})[month] = Decimal(cents or 0) / 100
    levels = sorted(amounts, key=lambda lv: -sum(amounts[lv].values()))
    return {"months": all_months, "levels": levels,
            "amounts": {lv: {m: amounts[lv].get(m, Decimal(0)) for m in all_months} for lv in levels}}


def totals(db: Database, year: int) -> dict:
    """Headline numbers: members enrolled and unpaid in `year`, claims, open handoff tickets, last sync."""
    enrolled, unpaid = db.conn.execute(
        "select coalesce(sum(status = '已参合'), 0), coalesce(sum(status = '未缴费'), 0) from enrollments where year = ?",
        [year]).fetchone()
    claims = db.conn.execute("select count(*) from claims").fetchone()[0]
    last = _db.rows(db, "select kind, finished_at, inserted, updated, unchanged, rejected from sync_runs "
                        "where status = 'ok' order by id desc limit 1")
    return {"enrolled": enrolled, "unpaid": unpaid, "claims": claims, "open_tickets": open_tickets(db),
            "last_sync": last[0] if last else None}


def open_tickets(db: Database) -> int:
    return db.conn.execute("select count(*) from handoff_tickets where status = 'open'").fetchone()[0]


def version(db: Database) -> str:
    """What the county data is now: its last sync run and claim-history row (both only grow)."""
    runs, history = db.conn.execute("select (select coalesce(max(id), 0) from sync_runs), "
                                    "(select coalesce(max(id), 0) from claim_history)").fetchone()
    return f"{runs}:{history}"


def _compute(db: Database, year: int) -> dict:
    money = reimbursed_by_level_month(db)
    money["amounts"] = {lv: {m: str(v) for m, v in per.items()} for lv, per in money["amounts"].items()}
    return {"totals": totals(db, year), "towns": enrollment_by_township(db, year), "status": claims_by_status(db),
            "money": money}


def _kept(db: Database, key: str, compute):
    """`compute()`'s result kept under `key` while the county data's version is the same."""
    now = version(db)
    row = db.conn.execute("select version, data from dashboard_cache where key = ?", [key]).fetchone()
    if row and row[0] == now:
        return json.loads(row[1])
    data = compute()
    _db.keep(db, "insert into dashboard_cache (key, version, data, at) values (?, ?, ?, ?) on conflict (key) "
                 "do update set version = excluded.version, data = excluded.data, at = excluded.at",
             [key, now, json.dumps(data, ensure_ascii=False), stamp()])
    return data


def years(db: Database) -> list[int]:
    """`enrollment_years`, kept."""
    return _kept(db, "years", lambda: enrollment_years(db))


def default_year(db: Database) -> int:
    """This year when the data holds it (or holds no year), else the newest year it holds."""
    held, this = years(db), clock.now().year
    return this if this in held or not held else held[0]


def summary(db: Database, year: int) -> dict:
    """The dashboard's figures for `year`: kept ones while the county data has not changed, else computed
    and kept (`db.keep`). Open tickets are counted live (the service's own data)."""
    data = _kept(db, f"year:{year}", lambda: _compute(db, year))
    data["totals"]["open_tickets"] = open_tickets(db)
    data["money"]["amounts"] = {lv: {m: Decimal(v) for m, v in per.items()}
                                for lv, per in data["money"]["amounts"].items()}
    return data


def refresh(db: Database) -> None:
    """Compute and keep the figures of the year the dashboard opens on (a sync's runner calls it after the
    import, so the first page after a sync is fast too). Commits."""
    _db.finish(db)
    summary(db, default_year(db))


def places(db: Database) -> dict:
    """{"townships": {township: [village…]}, "categories": [...]}: what the county data holds, kept."""
    def compute():
        towns: dict = {}
        for town, village in db.conn.execute("select distinct township, village from members where township != '' "
                                             "order by township, village"):
            towns.setdefault(town, [])
            if village:
                towns[town].append(village)
        categories = [c for (c,) in db.conn.execute("select distinct category from members where category != '' "
                                                    "order by category")]
        return {"townships": towns, "categories": categories}
    return _kept(db, "places", compute)
