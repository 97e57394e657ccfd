"""Every read of the county data on the message path (查参合, 查报销, identity, a personal estimate) uses an
index: the statements respond() runs are caught with the connection's trace callback and each is asked
for its plan (EXPLAIN QUERY PLAN), on an empty database and on one with data and statistics (ANALYZE)."""
import re

import pytest

from xnh import sync
from xnh.store.outbox import payments
from xnh.handlers.router import respond
from xnh.message import Message
from tests.conftest import shared_file

COUNTY_TABLES = ("members", "enrollments", "claims", "claim_history")
MESSAGES = [  # (text, sender's phone): a registered household's phone, then identity by ID number and name
    ("查参合", "13800009001"), ("查报销", "13800009001"), ("住院花了3000能报多少", "13800009001"),
    ("今年还能报多少", "13800009001"), ("查参合", "13700000001"), ("52990119560808001X 杨树林", "13700000001"),
    ("查报销", "13700000001"),
]


def _statements(db, text, phone) -> list[str]:
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        respond(Message(text=text, sender=phone, channel="sms", phone=phone), db)
    finally:
        db.conn.set_trace_callback(None)
        db.conn.commit()
    return [s for s in seen if s.lstrip().lower().startswith(("select", "with"))]


def _plan(db, sql: str) -> list[str]:
    names = re.findall(r":(\w+)", sql)
    params = {n: None for n in names} if names else [None] * len(re.findall(r"\?", sql))
    return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]


def _county_scans(db) -> dict:
    found = {}
    for text, phone in MESSAGES:
        for sql in _statements(db, text, phone):
            if not any(re.search(rf"\b{t}\b", sql) for t in COUNTY_TABLES):
                continue
            plan = _plan(db, sql)
            scans = [step for step in plan if step.startswith("SCAN") and any(t in step for t in COUNTY_TABLES)]
            wrong = [step for step in plan if "sqlite_autoindex_enrollments_1 (year=?)" in step]
            if scans or wrong:
                found[sql] = plan
    return found


def _county_statements(db) -> int:
    return sum(1 for text, phone in MESSAGES for sql in _statements(db, text, phone)
               if any(re.search(rf"\b{t}\b", sql) for t in COUNTY_TABLES))


@pytest.fixture
def synced(db, tmp_path):
    for kind, name in (("enrollment", "enrollment.csv"), ("claims", "claims.csv")):
        path = tmp_path / name
        path.write_bytes(shared_file(f"data/{name}").read_bytes())
        sync.run(db, kind, path)  # ANALYZE at its end
    return db


def test_message_path_uses_indexes_on_an_empty_database(county):
    assert _county_statements(county) >= 7  # the messages really read the county tables
    assert _county_scans(county) == {}


def test_message_path_uses_indexes_after_a_sync_with_statistics(synced):
    assert synced.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl IN ('enrollments', 'claims')").fetchone()[0]
    assert _county_statements(synced) >= 7
    assert _county_scans(synced) == {}


def test_household_enrollment_takes_the_household_index(db):
    plan = _plan(db, "select * from enrollments where household_id = ? and +year = ? order by member_id")
    assert any("idx_enrollments_household_id_year" in step for step in plan), plan


def test_payment_notices_look_the_outbox_up_by_index(db):
    """derive_payment_notices asks, per paid claim, whether a notice exists: by (kind, ref), not a scan of
    the outbox (which made a 500,000-claim sync quadratic)."""
    sql = payments._CLAIMS_TO_NOTIFY.format(source="(SELECT DISTINCT claim_id FROM claim_history WHERE id > 0)")
    plan = _plan(db, sql)
    assert not [step for step in plan if step.startswith("SCAN") and " n" in step + " "], plan
    assert any("outbox_kind_ref_recipient" in step for step in plan), plan
