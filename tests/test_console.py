"""The clerks' console through Flask's test client: logging in and out, CSRF refusals, roles (a clerk
gets 403 on user management), the session cookie's flags and idle lifetime, failed logins limited,
`xnh user add` reading its password from standard input (and asking twice on a pseudo-terminal), the
upload limit of the upload address alone, an export imported through the same sync code as `xnh sync`
(GBK, rejected rows shown and downloadable), the dashboard's SVG charts and the audit log."""
import csv
import io
import re
import time

import pytest
from click.testing import CliRunner

from tests.conftest import shared_file
from xnh import sync
from xnh.app import create_app
from xnh.cli import cli
from xnh.store import db as store_db
from xnh.store import state, users

ADMIN, CLERK = ("root", "Shu-guang-2026!"), ("wang", "Dong-shan-2026!")


def make_app(path, **config):
    db = store_db.open_db(str(path))
    if not users.get_by_name(db, ADMIN[0]):
        users.add(db, *ADMIN, role="admin", actor="test")
        users.add(db, *CLERK, role="clerk", actor="test")
        db.conn.commit()
    db.close()
    return create_app({"DB_PATH": str(path), "TESTING": True, "CONSOLE_COOKIE_SECURE": False, **config})


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "t.db")


@pytest.fixture
def client(app):
    return app.test_client()


def token(client, path="/console/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(client, who=ADMIN, **kwargs):
    return client.post("/console/login", data={"name": who[0], "password": who[1], "csrf_token": token(client)},
                       **kwargs)


def db_of(app):
    """The app's database, opened anew (the caller closes it)."""
    return store_db.open_db(app.config["DB_PATH"])


def audit_actions(app) -> list[tuple]:
    db = store_db.open_db(app.config["DB_PATH"])
    try:
        return db.execute("select actor, action from audit_log order by id").fetchall()
    finally:
        db.close()


def test_login_page_has_the_csrf_field_and_pages_need_a_login(client):
    page = client.get("/console/login").get_data(as_text=True)
    assert 'name="csrf_token"' in page and 'name="password"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    for path in ("/console/", "/console/users", "/console/uploads", "/console/tickets", "/console/audit",
                 "/console/campaigns"):
        got = client.get(path)
        assert got.status_code == 302 and "/console/login" in got.headers["Location"], path


def test_login_then_logout(client, app):
    got = login(client)
    assert got.status_code == 302 and got.headers["Location"] == "/console/"
    page = client.get("/console/").get_data(as_text=True)
    assert "root" in page and "概览" in page
    assert client.post("/console/logout", data={"csrf_token": token(client, "/console/")}).status_code == 302
    assert client.get("/console/").status_code == 302
    assert audit_actions(app)[-2:] == [("root", "login"), ("root", "logout")]


@pytest.mark.parametrize("name, password", [("root", "wrong-pass"), ("nobody", "Shu-guang-2026!"), ("root", "")])
def test_a_wrong_login_is_refused_and_audited(client, app, name, password):
    got = client.post("/console/login", data={"name": name, "password": password, "csrf_token": token(client)})
    assert got.status_code == 401 and "用户名或密码不对" in got.get_data(as_text=True)
    assert client.get("/console/").status_code == 302
    assert audit_actions(app)[-1] == (name, "login_failed")


def test_a_next_address_elsewhere_is_ignored(client):
    data = {"name": ADMIN[0], "password": ADMIN[1], "next": "https://evil.example/", "csrf_token": token(client)}
    assert client.post("/console/login", data=data).headers["Location"] == "/console/"
    client.post("/console/logout", data={"csrf_token": token(client, "/console/")})
    data.update(next="/console/audit", csrf_token=token(client))
    assert client.post("/console/login", data=data).headers["Location"] == "/console/audit"


@pytest.mark.parametrize("csrf", [None, "not-a-token"])
def test_a_form_without_its_csrf_token_is_refused(client, app, csrf):
    data = {"name": ADMIN[0], "password": ADMIN[1], **({"csrf_token": csrf} if csrf else {})}
    got = client.post("/console/login", data=data)
    assert got.status_code == 400 and "CSRF" in got.get_data(as_text=True)
    assert client.get("/console/").status_code == 302  # not logged in
    login(client)
    got = client.post("/console/users", data={"name": "mallory", "password": "Long-enough-99!", "role": "admin"})
    assert got.status_code == 400
    db = store_db.open_db(app.config["DB_PATH"])
    assert users.get_by_name(db, "mallory") is None
    db.close()


def test_webhooks_are_not_behind_the_console_csrf(client):
    # the simulator's JSON API and the Twilio webhook authenticate otherwise: CSRFProtect exempts them
    assert client.post("/api/simulate", json={"phone": "13800000001", "text": "查参合"}).status_code == 200
    assert client.post("/sms", data={"Body": "x"}).status_code == 403  # signature, not CSRF


def test_a_clerk_cannot_manage_users(client, app):
    login(client, CLERK)
    assert client.get("/console/").status_code == 200
    assert client.get("/console/users").status_code == 403
    got = client.post("/console/users", data={"name": "x1", "password": "Long-enough-99!", "role": "admin",
                                              "csrf_token": token(client, "/console/")})
    assert got.status_code == 403
    assert "/console/users" not in client.get("/console/").get_data(as_text=True)  # not in the menu either
    assert ("wang", "forbidden") in audit_actions(app)


def test_an_admin_adds_and_disables_a_user(client, app):
    login(client)
    assert "wang" in client.get("/console/users").get_data(as_text=True)
    got = client.post("/console/users", data={"name": "li", "password": "Xi-he-cun-2026!", "role": "clerk",
                                              "csrf_token": token(client, "/console/users")})
    assert got.status_code == 302
    short = client.post("/console/users", data={"name": "zhao", "password": "short", "role": "clerk",
                                                "csrf_token": token(client, "/console/users")})
    assert short.status_code == 400 and "至少10个字符" in short.get_data(as_text=True)
    other = make_app(app.config["DB_PATH"]).test_client()
    assert login(other, ("li", "Xi-he-cun-2026!")).status_code == 302
    assert other.get("/console/").status_code == 200
    db = store_db.open_db(app.config["DB_PATH"])
    li = users.get_by_name(db, "li")
    db.close()
    got = client.post(f"/console/users/{li['id']}/active", data={"active": "0",
                                                                 "csrf_token": token(client, "/console/users")})
    assert got.status_code == 302
    assert other.get("/console/").status_code == 302  # a disabled user's session ends at once
    assert login(other, ("li", "Xi-he-cun-2026!")).status_code == 401
    me = users.get_by_name(store_db.open_db(app.config["DB_PATH"]), "root")
    itself = client.post(f"/console/users/{me['id']}/active", data={"active": "0",
                                                                    "csrf_token": token(client, "/console/users")})
    assert itself.status_code == 400  # an admin cannot lock themself out
    assert [a for a in audit_actions(app) if a[1].startswith("user_")][-2:] == [("root", "user_add"),
                                                                                 ("root", "user_disable")]


def test_session_cookie_flags_and_idle_lifetime(tmp_path, monkeypatch):
    monkeypatch.delenv("XNH_COOKIE_SECURE", raising=False)
    app = make_app(tmp_path / "t.db", CONSOLE_COOKIE_SECURE=True)
    client = app.test_client()
    cookie = login(client).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert app.permanent_session_lifetime.total_seconds() == 30 * 60
    assert "Expires=" in cookie  # a permanent session: the lifetime applies


def test_an_idle_session_expires(client, monkeypatch):
    import itsdangerous.timed

    login(client)
    assert client.get("/console/").status_code == 200
    later = int(time.time()) + 31 * 60
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later)
    assert client.get("/console/").status_code == 302


def test_failed_logins_are_limited_per_name_and_address(client, app):
    for _ in range(users.MAX_FAILURES):
        assert client.post("/console/login", data={"name": "root", "password": "guess-guess",
                                                   "csrf_token": token(client)}).status_code == 401
    blocked = login(client)  # the right password, too late
    assert blocked.status_code == 429 and "15分钟" in blocked.get_data(as_text=True)
    other = app.test_client()
    assert login(other, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 302  # another address
    assert login(app.test_client(), CLERK).status_code == 302  # another name
    assert ("root", "login_blocked") in audit_actions(app)


def test_xnh_user_add_reads_the_password_from_stdin(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "cli.db"))
    runner = CliRunner()
    got = runner.invoke(cli, ["user", "add", "zhang", "--role", "admin"], input="Qing-shui-2026!\n")
    assert got.exit_code == 0 and "zhang" in got.output
    db = store_db.open_db(str(tmp_path / "cli.db"))
    row = users.get_by_name(db, "zhang")
    assert row["role"] == "admin" and row["password_hash"].startswith("$argon2id$")
    assert "Qing-shui-2026!" not in row["password_hash"]
    assert users.check_password(db, "zhang", "Qing-shui-2026!") and not users.check_password(db, "zhang", "other")
    assert db.execute("select action from audit_log").fetchall()[-1] == ("user_add",)
    db.close()


@pytest.mark.parametrize("args, password, words", [
    (["zhang", "--role", "admin"], "short\n", "至少10个字符"),
    (["li si", "--role", "clerk"], "Long-enough-99!\n", "空格"),
    (["wu", "--role", "boss"], "Long-enough-99!\n", "boss"),
    (["wu"], "Long-enough-99!\n", "--role"),
])
def test_xnh_user_add_problems_are_one_line(tmp_path, monkeypatch, args, password, words):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "cli.db"))
    got = CliRunner().invoke(cli, ["user", "add", *args], input=password)
    assert got.exit_code != 0 and words in got.output and "Traceback" not in got.output


def test_xnh_user_add_twice_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "cli.db"))
    assert CliRunner().invoke(cli, ["user", "add", "wu", "--role", "clerk"], input="Long-enough-99!\n").exit_code == 0
    got = CliRunner().invoke(cli, ["user", "add", "wu", "--role", "admin"], input="longenough2\n")
    assert got.exit_code == 1 and "already exists" in got.output


# -- uploads ---------------------------------------------------------------------------------------------

def gbk_with_bad_rows(tmp_path):
    """claims_with_bad_rows.csv re-encoded in GBK, as the county system writes it."""
    path = tmp_path / "补偿记录_gbk.csv"
    path.write_bytes(shared_file("data/claims_with_bad_rows.csv").read_text(encoding="utf-8").encode("gbk"))
    return path


def upload(client, path, kind="claims"):
    with open(path, "rb") as f:
        return client.post("/console/uploads", data={"kind": kind, "file": (f, path.name),
                                                     "csrf_token": token(client, "/console/uploads")},
                           content_type="multipart/form-data")


def wait_done(client, location, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state_ = client.get(location + "/progress.json").get_json()
        if state_["status"] in ("done", "failed"):
            return state_
        time.sleep(0.05)
    raise AssertionError("import did not finish")


def test_upload_check_start_shows_and_downloads_the_rejected_rows(client, app, tmp_path):
    login(client, CLERK)
    source = gbk_with_bad_rows(tmp_path)
    got = upload(client, source)
    assert got.status_code == 302
    location = got.headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert "GBK" in page and "开始导入" in page
    start = {"csrf_token": token(client, location)}
    assert client.post(location + "/start", data=start).status_code == 302
    assert client.post(location + "/start", data=start).status_code == 302  # a double submit: one import
    progress = wait_done(client, location)
    # the same code as `xnh sync`: the same counts as the CLI's sync of the same file into another database
    other = store_db.open_db(str(tmp_path / "cli.db"))
    expected = sync.run(other, "claims", str(source))
    other.close()
    assert progress["status"] == "done" and progress["rejected"] == expected.rejected > 0
    assert progress["inserted"] == expected.inserted
    page = client.get(location).get_data(as_text=True)
    assert page.count('<tr><td>') >= expected.rejected and "身份证" in page
    download = client.get(location + "/rejected.csv")
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert download.mimetype == "text/csv" and rows[0] == ["行号", "列", "原因", "原始内容"]
    assert len(rows) - 1 == expected.rejected
    db = store_db.open_db(app.config["DB_PATH"])
    assert db.execute("select count(*) from sync_runs").fetchone()[0] == 1
    db.close()
    actions = [a for a in audit_actions(app) if a[0] == "wang"]
    assert [a[1] for a in actions if a[1] != "login"] == ["upload", "sync_start", "sync_done", "download_rejected"]


@pytest.mark.parametrize("name, content, words", [
    ("x.csv", "a,b\n1,2\n".encode(), "缺少列"),
    ("x.pdf", b"%PDF-1.4", "CSV"),
    ("x.csv", b"", "empty"),
])
def test_a_file_that_cannot_be_imported_is_refused_at_the_check(client, tmp_path, name, content, words):
    login(client, CLERK)
    path = tmp_path / name
    path.write_bytes(content)
    got = upload(client, path)
    assert got.status_code == 400 and words in got.get_data(as_text=True)
    assert str(tmp_path) not in got.get_data(as_text=True)


def test_the_upload_limit_applies_to_the_upload_address_alone(tmp_path):
    app = make_app(tmp_path / "t.db", CONSOLE_UPLOAD_LIMIT=2 << 20)
    client = app.test_client()
    login(client, CLERK)
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (3 << 20))
    got = upload(client, big)
    assert got.status_code == 413 and "文件太大" in got.get_data(as_text=True)
    middling = tmp_path / "middling.csv"  # over the app's 1 MB, under the upload limit: read and checked
    middling.write_bytes(b"a,b\n" + b"1,2\n" * (400_000))
    assert upload(client, middling).status_code == 400
    # every other address keeps the 1 MB limit
    assert client.post("/console/users", data={"x": "y" * (2 << 20)}).status_code == 413


def test_the_dashboard_draws_the_county_data_as_svg(client, app, tmp_path):
    db = store_db.open_db(app.config["DB_PATH"])
    sync.run(db, "enrollment", str(shared_file("data/enrollment.csv")))
    sync.run(db, "claims", str(shared_file("data/claims.csv")))
    towns = dict(db.execute("select township, sum(status = '未缴费') from enrollments where year = 2026 "
                            "group by township").fetchall())
    statuses = dict(db.execute("select status, count(*) from claims group by status").fetchall())
    db.close()
    login(client, CLERK)
    page = client.get("/console/").get_data(as_text=True)
    assert page.count("<svg") == 3 and "<script" not in page
    for town, unpaid in towns.items():
        assert f'data-label="{town}" data-series="未缴费" data-value="{unpaid}"' in page
    for status, n in statuses.items():
        assert f'data-label="{status}" data-series="补偿单数" data-value="{n}"' in page
    assert re.search(r'data-label="2026-\d\d" data-series="county" data-value="\d+', page)


def test_the_dashboard_of_an_empty_county_says_so(client):
    login(client, CLERK)
    page = client.get("/console/").get_data(as_text=True)
    assert page.count("暂无数据") == 3 and "还没有导入数据" in page


def test_the_audit_log_is_paginated_and_filtered(client, app):
    db = store_db.open_db(app.config["DB_PATH"])
    for i in range(120):
        state.audit(db, "someone", "test_action", {"n": i})
    db.conn.commit()
    db.close()
    login(client, CLERK)
    first = client.get("/console/audit").get_data(as_text=True)
    assert "n=119" in first and "n=69" not in first and 'rel="next"' in first
    third = client.get("/console/audit?page=3").get_data(as_text=True)
    assert "n=0" in third and 'rel="next"' not in third
    only = client.get("/console/audit?actor=wang").get_data(as_text=True)
    assert "test_action" not in only and "login" in only


def _on_a_terminal(tmp_path, answers: list[str]) -> str:
    """Run `xnh user add tty1 --role clerk` with a pseudo-terminal as its controlling terminal, typing
    `answers` one per prompt; returns what it printed."""
    import os
    import pty
    import select
    import sys

    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        os.environ["XNH_DB"] = str(tmp_path / "tty.db")
        os.execv(sys.executable, [sys.executable, "-m", "xnh", "user", "add", "tty1", "--role", "clerk"])
    out, deadline = b"", time.monotonic() + 30
    pending = list(answers)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if pending and chunk.endswith(b": "):  # a prompt
                os.write(fd, (pending.pop(0) + "\n").encode())
    else:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(fd)
    return out.decode(errors="replace")


def test_xnh_user_add_asks_twice_on_a_terminal(tmp_path):
    printed = _on_a_terminal(tmp_path, ["Tty-pass-2026a", "Tty-pass-2026a"])
    assert "again" in printed and "user tty1 added" in printed and "Tty-pass-2026a" not in printed  # not echoed
    db = store_db.open_db(str(tmp_path / "tty.db"))
    assert users.check_password(db, "tty1", "Tty-pass-2026a")
    db.close()


def test_xnh_user_add_on_a_terminal_asks_again_when_the_two_differ(tmp_path):
    printed = _on_a_terminal(tmp_path, ["Tty-pass-2026a", "Tty-pass-2026b", "Tty-pass-2026c", "Tty-pass-2026c"])
    assert "do not match" in printed and "user tty1 added" in printed
    db = store_db.open_db(str(tmp_path / "tty.db"))
    assert users.check_password(db, "tty1", "Tty-pass-2026c") and not users.check_password(db, "tty1", "Tty-pass-2026a")
    db.close()


def test_the_sync_reports_progress_to_a_callback(tmp_path):
    # what feeds the console's progress bar; `xnh sync` passes True (a tqdm bar) instead
    calls = []
    db = store_db.open_db(str(tmp_path / "p.db"))
    result = sync.run(db, "enrollment", str(shared_file("data/enrollment.csv")), progress=lambda *a: calls.append(a))
    db.close()
    rows = result.inserted + result.updated + result.unchanged + result.rejected
    assert calls and calls[-1] == (rows, rows) and [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_a_get_of_logout_asks_first_and_logs_nobody_out(client, app):
    """A link or image on another site pointing at /console/logout must not end a clerk's session."""
    client.post("/console/login", data={"name": ADMIN[0], "password": ADMIN[1], "csrf_token": token(client)})
    page = client.get("/console/logout")
    assert page.status_code == 200 and 'id="logout"' in page.get_data(as_text=True)
    assert client.get("/console/").status_code == 200  # still logged in
    assert client.post("/console/logout", data={}).status_code == 400  # no token: refused
    assert client.get("/console/").status_code == 200
