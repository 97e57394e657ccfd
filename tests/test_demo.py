"""The demo county: loaded into an empty database by `xnh chat` / `xnh serve`, never twice."""
from click.testing import CliRunner

from tests.conftest import put
from xnh import demo
from xnh.cli import cli
from xnh.store import county


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
