"""The demo county: its own database beside XNH_DB, loaded once from the shipped exports, answering
`xnh ask` / `chat` / `serve` until real county data is synced, never queueing a notice."""
import pytest
from click.testing import CliRunner

from tests.conftest import put, shared_file
from xnh import demo
from xnh.cli import cli
from xnh.store import county
from xnh.store import db as store_db


def test_load_if_empty_loads_once(db):
    text = demo.load_if_empty(db)
    assert text and "households" in text and "87 claims" in text
    assert db.execute("select count(*) from members").fetchone()[0] > 0
    assert demo.load_if_empty(db) is None
    assert db.execute("select count(*) from sync_runs").fetchone()[0] == 2  # enrollment, then claims
    assert db.execute("select sum(rejected) from sync_runs").fetchone()[0] == 0


def test_demo_rows_fit_the_lookups(db):
    demo.load_if_empty(db)
    members = county.members_by_phone(db, "13800000001")
    assert members and members[0]["household_id"] == "HH0100001"
    claims = county.household_claims(db, "HH0100001", 2026)
    assert claims and claims[0]["level"] == "township" and claims[0]["reimbursed"] == "640.00"
    assert county.reimbursed_this_year(db, "HH0100001-02", 2026)["inpatient"] > 0


def test_a_database_with_members_is_left_alone(db, tmp_path):
    put(db, "members", {"member_id": "X-01", "household_id": "X", "name": "测试", "updated_at": ""})
    assert demo.load_if_empty(db) is None
    assert db.execute("select count(*) from claims").fetchone()[0] == 0


def test_chat_on_an_empty_database_says_it_loaded_the_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "chat.db"))
    out = CliRunner().invoke(cli, ["chat"], input="")
    assert out.exit_code == 0, out.output
    assert "示范县" in out.output


def test_the_demo_has_its_own_database_and_never_queues_a_notice(tmp_path):
    real = str(tmp_path / "xnh.db")
    path = demo.ensure(real)
    assert path == str(tmp_path / "xnh.demo.db")
    db = store_db.open_db(path)
    assert demo.is_demo(db)
    assert db.execute("select count(*) from claims where status = '已拨付'").fetchone()[0] > 0
    assert db.execute("select count(*) from outbox").fetchone()[0] == 0  # real-format phones: never
    db.close()
    assert not (tmp_path / "xnh.db").exists() and not store_db.has_county_data(real)
    assert demo.serving_path(real) == path


@pytest.mark.parametrize("first_sync, answers_from", [
    (None, "demo"),
    ("enrollment", "real"),
    ("claims", "real"),  # negative row: claims alone (synced before enrollment) are real data too
])
def test_ask_answers_from_the_demo_until_real_data_is_synced(tmp_path, monkeypatch, first_sync, answers_from):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "xnh.db"))
    if first_sync:
        synced = CliRunner().invoke(cli, ["sync", first_sync, str(shared_file(f"data/{first_sync}.csv"))])
        assert synced.exit_code == 0, synced.output
    asked = CliRunner().invoke(cli, ["ask", "查参合", "--from", "13800000001"])
    assert asked.exit_code == 0
    demo_file = str(tmp_path / "xnh.demo.db")
    assert (demo_file in asked.stderr) is (answers_from == "demo")
    if first_sync:  # the real database never holds a demo row
        db = store_db.open_db(str(tmp_path / "xnh.db"))
        assert db.execute("select count(*) from sync_runs").fetchone()[0] == 1  # the demo's load would add two
        db.close()
