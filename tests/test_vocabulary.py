"""One vocabulary, in data: claim statuses from policy_kb/claim_steps.toml, quiet hours from xnh/quiet_hours.py
(the Python test and the SQL one agree), level names from levels.toml, the contribution deadline from the
scheme file."""
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xnh import quiet_hours, sync
from xnh.bot.console.pages import level_names
from xnh.broadcast import audience, campaigns
from xnh.policy_kb import claim_status
from xnh.policy_kb.loader import levels


def test_claim_statuses_are_spelled_once():
    assert claim_status.STATUSES == ("已受理", "审核中", "审核通过", "已拨付", "未通过")
    assert set(sync.CLAIM_STATUSES) == set(claim_status.STATUSES)  # the sync's own list (another branch) agrees
    assert audience.CLAIM_STATUSES == claim_status.STATUSES
    assert claim_status.COUNTED == ("审核通过", "已拨付") and claim_status.PAID == "已拨付"
    assert claim_status.CLOSED == ("已拨付", "未通过")


_HM = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=300, deadline=None)
@given(_HM, _HM, _HM)
def test_quiet_hours_in_python_and_in_sql_agree(hm, start, end):
    conn = sqlite3.connect(":memory:")
    sql = "SELECT " + quiet_hours.SQL.format(start=":start", end=":end", hm=":hm")
    in_sql = bool(conn.execute(sql, {"start": start, "end": end, "hm": hm}).fetchone()[0])
    assert in_sql is quiet_hours.is_quiet(hm, start, end)


@pytest.mark.parametrize("hm, quiet", [("20:59", False), ("21:00", True), ("03:00", True), ("07:59", True),
                                       ("08:00", False), ("12:00", False)])
def test_the_default_quiet_hours(hm, quiet):
    assert quiet_hours.is_quiet(hm, *quiet_hours.DEFAULT) is quiet
    assert quiet_hours.is_quiet(hm, None, None) is False  # negative row: no quiet hours


def test_the_dashboard_names_levels_as_levels_toml_does():
    assert level_names() == {key: entry["name"] for key, entry in levels().items()}
    assert level_names()["county"] == "县级医院"


def test_the_deadline_comes_from_the_scheme_file():
    assert campaigns.contribution_deadline(2026) == "2026年12月30日"
    assert campaigns.campaign_fields({"audience": "unpaid=2027"}) == {"year": 2027, "deadline": "2026年12月30日"}
