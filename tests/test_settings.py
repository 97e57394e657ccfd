"""xnh/settings.py: one settings object, read from the environment once; the README's configuration table
lists the same variables with the same defaults."""
import re
from decimal import Decimal
from pathlib import Path

import pytest

from xnh import clock
from xnh.settings import Settings, SettingsError, display, flag, variables

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_variables() -> dict[str, str]:
    """Variable → default, from the rows of README's "Configuration" table (`| `NAME`, `NAME` | default | …`)."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Configuration"):text.index("## Architecture")]
    found = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([A-Z_]+)`", cells[0]):
                found[name] = cells[1]
    return found


def test_the_readme_table_and_the_settings_list_the_same_variables_and_defaults():
    assert readme_variables() == variables()


def test_the_readme_parser_sees_a_difference():
    # negative row: a variable the settings object lacks, or another default, would be seen
    assert readme_variables() != {**variables(), "XNH_NOT_A_SETTING": "—"}
    assert readme_variables() != {**variables(), "XNH_SMS_PER_SECOND": "11"}


def test_from_env_reads_types_and_defaults():
    s = Settings.from_env({"XNH_DB": "/srv/x.db", "XNH_SMS_PER_SECOND": "50", "XNH_SMS_PRICE": "0.10",
                           "XNH_COOKIE_SECURE": "off", "XNH_SESSION_MINUTES": "5", "TWILIO_AUTH_TOKEN": " "})
    assert (s.db_path, s.sms_per_second, s.sms_price, s.cookie_secure, s.session_minutes) == \
        ("/srv/x.db", 50.0, Decimal("0.10"), False, 5)
    assert s.twilio_auth_token is None and s.telegram_api_url == "https://api.telegram.org/bot"
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("name, value", [
    ("XNH_SMS_PER_SECOND", "fast"), ("XNH_SMS_PER_SECOND", "0"), ("XNH_SMS_PER_SECOND", "-3"),
    ("XNH_SMS_PRICE", "五分"), ("XNH_SESSION_MINUTES", "half an hour"), ("XNH_BACKLOG_LIMIT", "x"),
])
def test_a_value_that_cannot_be_used_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("raw, default, on", [
    ("off", True, False), ("0", True, False), ("No", True, False), ("FALSE", True, False),
    ("on", False, True), ("1", False, True), ("yes", False, True), ("", True, True), ("", False, False),
])
def test_one_parser_for_on_and_off(raw, default, on):
    assert flag(raw, default) is on


@pytest.mark.parametrize("raw, mode", [("auto", "auto"), ("", "auto"), ("ON", True), ("off", False), ("0", False)])
def test_simulator_mode(raw, mode):
    assert Settings(simulator=raw).simulator_mode == mode


def test_the_settings_object_is_frozen_and_copied_with_changes():
    s = Settings()
    with pytest.raises(Exception):
        s.db_path = "other.db"
    assert s.replace(db_path="other.db").db_path == "other.db" and s.db_path == "xnh.db"


def test_defaults_are_written_as_the_readme_writes_them():
    assert [display(v) for v in (None, True, False, 10.0, 0.5, Decimal("0.05"), "auto")] == \
        ["—", "on", "off", "10", "0.5", "0.05", "auto"]


def test_the_policy_clock_follows_the_environment_of_the_moment(monkeypatch):
    monkeypatch.setenv("XNH_TODAY", "2027-01-02")
    assert clock.today().isoformat() == "2027-01-02"
    monkeypatch.setenv("XNH_TODAY", "2026-11-15T22:30:00+08:00")
    assert clock.now().strftime("%H:%M") == "22:30"
    monkeypatch.delenv("XNH_TODAY")
    assert clock.now().year >= 2026
    with pytest.raises(clock.BadToday):
        clock.check("15/06/2026")


def test_the_cli_refuses_a_bad_setting_in_one_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from xnh.cli import cli

    monkeypatch.setenv("XNH_DB", str(tmp_path / "x.db"))
    monkeypatch.setenv("XNH_SMS_PER_SECOND", "fast")
    result = CliRunner().invoke(cli, ["broadcast", "status", "1"])
    assert result.exit_code == 2 and "XNH_SMS_PER_SECOND='fast'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.db").exists()
