"""The `xnh` command: help for every command, `ask --json`'s contract (SPEC.md), and a few dev
estimate cases through the installed `xnh ask` in a subprocess."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from xnh.cli import cli
from tests.conftest import shared_file


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "cli.db"))
    return CliRunner()


def _walk(group, path=()):
    for name, command in group.commands.items():
        yield path + (name,), command
        if hasattr(command, "commands"):
            yield from _walk(command, path + (name,))


@pytest.mark.parametrize("path, command", list(_walk(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help(runner, path, command):
    assert (command.help or "").strip(), f"xnh {' '.join(path)} has no docstring"
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and command.help.split("\n")[0][:20] in result.output


@pytest.mark.parametrize("text, intents, has_estimate", [
    ("住院花了3000能报多少", ("estimate",), True),
    ("在县医院住院花了6000", ("estimate",), True),
    ("", ("help",), False),
    ("{{7*7}}", ("help", "policy", "handoff"), False),
])
def test_ask_json_keys(runner, text, intents, has_estimate):
    result = runner.invoke(cli, ["ask", text, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["intent"] in intents
    assert out["reply"].strip()
    assert ("estimate" in out) is has_estimate
    if has_estimate:
        assert {"reimbursed", "level", "scheme", "deductible", "rate"} <= set(out["estimate"])


def test_ask_json_table_has_per_level(runner):
    out = json.loads(runner.invoke(cli, ["ask", "住院花了3000能报多少", "--json"]).stdout)
    assert out["estimate"]["per_level"]["county"]["reimbursed"] == "2100.00"


def test_ask_plain_prints_the_reply(runner):
    result = runner.invoke(cli, ["ask", "在县医院住院花了6000"])
    assert result.exit_code == 0 and "4200" in result.output


CASES = {c["id"]: c for c in json.loads(shared_file("eval/dev_cases.json").read_text(encoding="utf-8"))}


@pytest.mark.parametrize("case_id", ["d-e01", "d-e06", "d-e12", "d-e13"])
def test_dev_cases_through_installed_xnh_ask(tmp_path, case_id):
    case = CASES[case_id]
    env = {**os.environ, "XNH_DB": str(tmp_path / "sub.db"), "XNH_TODAY": "2026-06-15"}
    for turn in case["turns"]:
        done = subprocess.run([sys.executable, "-m", "xnh", "ask", turn, "--from", case["from"], "--json"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["intent"] == "estimate"
    for n in case["expect"]["nums"]:
        assert str(n) in out["reply"]


def test_module_runs_without_the_console_script(tmp_path):
    """`python -c` with the CLI object: the same reply as the installed script (no PATH needed)."""
    env = {**os.environ, "XNH_DB": str(tmp_path / "m.db"), "XNH_TODAY": "2026-06-15"}
    code = "from xnh.cli import cli; cli(['ask', '住院花了3000能报多少'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "2400" in done.stdout and "2100" in done.stdout


def test_a_bad_xnh_today_is_refused_up_front(monkeypatch):
    monkeypatch.setenv("XNH_TODAY", "2026-13-01")
    result = CliRunner().invoke(cli, ["ask", "住院花了3000"])
    assert result.exit_code == 2 and "XNH_TODAY" in result.output
