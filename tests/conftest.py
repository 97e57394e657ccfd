"""Shared fixtures: a fresh database per test, a fixed policy date, and a helper to send a message
through the one entry point `respond()`. Module-specific fixtures live in their own test files."""
from pathlib import Path

import pytest

from xnh.store.db import open_db
from xnh.message import Message

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COPIES = Path(__file__).resolve().parent / "data"


def shared_file(relative: str) -> Path:
    """A file of ../shared/ (e.g. 'eval/dev_cases.json'), or its copy in tests/data/ in a bare clone."""
    path = SHARED / relative
    return path if path.exists() else COPIES / Path(relative).name


@pytest.fixture(autouse=True)
def policy_today(monkeypatch):
    """Every test runs on the evaluation's date unless it sets XNH_TODAY itself."""
    monkeypatch.setenv("XNH_TODAY", "2026-06-15")


@pytest.fixture
def db(tmp_path):
    database = open_db(str(tmp_path / "test.db"))
    yield database
    database.close()


@pytest.fixture
def ask(db):
    """ask(text, sender='13700000001', channel='sms') → Reply, through respond()."""
    from xnh.handlers.router import respond

    def _ask(text, sender="13700000001", channel="sms", phone=None):
        return respond(Message(text=text, sender=sender, channel=channel,
                               phone=phone if phone is not None else (None if channel == "telegram" else sender)), db)

    return _ask


# Rows as `xnh sync` stores them (the sync module has its own tests); three demo households.
MEMBERS = [
    # member_id, household, name, id_number, relation, phone, category
    ("HHD001-01", "HHD001", "杨树林", "52990119560808001X", "户主", "13800009001", "普通"),
    ("HHD001-02", "HHD001", "杨春花", "529901199202140041", "女", "13800009011", "普通"),
    ("HHD002-01", "HHD002", "田玉珍", "529901196811300027", "户主", "13800009002", "五保户"),
    ("HHD003-01", "HHD003", "罗永福", "529901198306060017", "户主", "13800009003", "普通"),
]
ENROLL = {"HHD001-01": ("30.00", "2025-11-12", "已参合"), "HHD001-02": ("30.00", "2025-11-12", "已参合"),
          "HHD002-01": ("0.00", "2025-11-12", "已参合"), "HHD003-01": ("", "", "未缴费")}
CLAIMS = [
    # claim_id, member_id, visit, hospital, level, admitted, total, reimbursed, status, reason, paid_date
    ("BCD1", "HHD001-01", "住院", "省人民医院", "city_province", "2026-01-05", "50200.00", "35000.00", "已拨付", "", "2026-03-01"),
    ("BCD2", "HHD001-02", "住院", "宁波市北仑区人民医院", "non_designated", "2026-04-01", "4300.00", "", "已受理", "", ""),
    ("BCD3", "HHD002-01", "住院", "南坪乡卫生院", "township", "2026-02-02", "2000.00", "1800.00", "审核通过", "", ""),
    ("BCD4", "HHD003-01", "住院", "示范县仁爱医院", "county", "2026-03-27", "26000.00", "", "未通过", "缺少转诊证明", ""),
    ("BCD5", "HHD003-01", "门诊", "东山镇卫生院", "township", "2025-05-01", "100.00", "50.00", "已拨付", "", "2025-06-01"),
]


def put(db, table: str, rows) -> None:
    """Insert a row (dict) or rows into `table` with plain SQL: sqlite-utils' db[table] looks for the table in
    the main file only, and the county tables live in the attached county file."""
    for row in [rows] if isinstance(rows, dict) else rows:
        db.execute(f"insert into {table} ({', '.join(row)}) values ({', '.join('?' * len(row))})", list(row.values()))
    db.conn.commit()


@pytest.fixture
def county(db):
    for mid, hh, name, idn, rel, phone, cat in MEMBERS:
        row = {"member_id": mid, "household_id": hh, "name": name, "sex": "", "id_number": idn, "relation": rel,
               "phone": phone, "township": "西河乡", "village": "西河村", "category": cat, "updated_at": "2025-12-30T18:00:00"}
        put(db, "members", row)
        paid, date, status = ENROLL[mid]
        put(db, "enrollments", {**row, "year": 2026, "paid_amount": paid, "paid_date": date, "status": status})
    for cid, mid, visit, hosp, level, adm, total, reimb, status, reason, paid in CLAIMS:
        m = next(x for x in MEMBERS if x[0] == mid)
        put(db, "claims", {"claim_id": cid, "member_id": mid, "household_id": m[1], "name": m[2], "id_number": m[3],
                             "visit_type": visit, "hospital": hosp, "level": level, "admitted": adm, "discharged": adm,
                             "total": total, "eligible": total, "reimbursed": reimb, "status": status,
                             "reject_reason": reason, "paid_date": paid, "paid_channel": "一卡通" if paid else "",
                             "updated_at": "2026-04-15T10:00:00"})
    return db
