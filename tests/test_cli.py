"""The `xnh` command: help for every command, `ask --json`'s contract (SPEC.md), and a few dev
estimate cases through the installed `xnh ask` in a subprocess."""
import json
import os
import socket
import sqlite3
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


# -- faults end with one line and a non-zero status, never a traceback -----------------------------------

def _one_line_error(result) -> str:
    """The message of a command that failed as it should: exit 1, a single line, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("(")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _read_only(monkeypatch):
    """Open every database read-only, as SQLite does for a file the user cannot write (tests run as root,
    for whom chmod alone changes nothing)."""
    from xnh.store import db as store_db

    real_connect = sqlite3.connect

    def connect(path, *args, **kwargs):
        if isinstance(path, str) and path not in (":memory:", "") and not path.startswith("file:"):
            return real_connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)
        return real_connect(path, *args, **kwargs)

    monkeypatch.setattr(store_db.sqlite3, "connect", connect)


def _full_disk(monkeypatch):
    """SQLite's own 'database or disk is full' (SQLITE_FULL): every file may hold one page more."""
    from xnh.store import db as store_db

    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        pages = conn.execute("pragma page_count").fetchone()[0]
        conn.execute(f"pragma max_page_count = {pages + 1}")
        return conn

    monkeypatch.setattr(store_db.sqlite3, "connect", connect)


@pytest.fixture
def real_db(tmp_path, monkeypatch):
    """XNH_DB with real county data in it (so `ask` answers from it, not from the demo database)."""
    from xnh import sync
    from xnh.store import db as store_db

    path = tmp_path / "real.db"
    monkeypatch.setenv("XNH_DB", str(path))
    conn = store_db.open_db(str(path))
    sync.run(conn, "enrollment", shared_file("data/enrollment.csv"))
    conn.close()
    return path


@pytest.mark.parametrize("command", [["ask", "查参合"], ["sync", "enrollment", "ENROLLMENT"]])
def test_a_locked_database_is_one_line(real_db, command):
    lock = sqlite3.connect(real_db if command[0] == "ask" else str(real_db).replace(".db", ".county.db"),
                           isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        args = [str(shared_file("data/enrollment.csv")) if a == "ENROLLMENT" else a for a in command]
        line = _one_line_error(CliRunner().invoke(cli, args))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert "locked" in line and str(real_db.parent) in line


@pytest.mark.parametrize("fault, command, words", [
    (_read_only, ["ask", "查参合"], "read-only"),
    (_read_only, ["sync", "enrollment", "ENROLLMENT"], "read-only"),
    (_read_only, ["serve", "--port", "0"], "read-only"),
    (_full_disk, ["sync", "claims", "CLAIMS"], "disk full"),
])
def test_read_only_or_full_is_one_line(real_db, monkeypatch, fault, command, words):
    fault(monkeypatch)
    files = {"ENROLLMENT": "data/enrollment.csv", "CLAIMS": "data/claims.csv"}
    args = [str(shared_file(files[a])) if a in files else a for a in command]
    line = _one_line_error(CliRunner().invoke(cli, args))
    assert words in line


def test_a_database_folder_that_does_not_exist_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "nosuch" / "xnh.db"))
    for args in (["ask", "查参合"], ["sync", "enrollment", str(shared_file("data/enrollment.csv"))]):
        line = _one_line_error(CliRunner().invoke(cli, args))
        assert "does not exist" in line and str(tmp_path / "nosuch") in line


def test_serve_on_a_port_in_use_or_a_bad_host_is_one_line(runner):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_error(runner.invoke(cli, ["serve", "--port", str(port)]))
        assert str(port) in line and "in use" in line
    line = _one_line_error(runner.invoke(cli, ["serve", "--host", "no such host.invalid", "--port", "0"]))
    assert "no such host.invalid" in line


def test_a_failed_sync_creates_no_database(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "xnh.db"))
    result = CliRunner().invoke(cli, ["sync", "claims", str(tmp_path / "nosuch.csv")])
    assert result.exit_code == 2 and "file not found" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_xnh_says_which_database_it_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", "rel.db")
    monkeypatch.chdir(tmp_path)
    asked = CliRunner().invoke(cli, ["ask", "查参合"])
    assert asked.exit_code == 0 and str(tmp_path / "rel.demo.db") in asked.stderr  # no county data: the demo's
    synced = CliRunner().invoke(cli, ["sync", "enrollment", str(shared_file("data/enrollment.csv"))])
    assert synced.exit_code == 0 and str(tmp_path / "rel.db") in synced.stdout
    asked = CliRunner().invoke(cli, ["ask", "查参合"])
    assert asked.exit_code == 0 and f"(database: {tmp_path / 'rel.db'})" in asked.stderr
