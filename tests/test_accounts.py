"""Accounts like a bank's back office (issue 18): sessions kept on the server (a logout, a password change,
an admin's reset and a deactivation end them, a copied cookie included), login limits per name and
address, per address and per name, with the proxy's address trusted only when configured, a password
policy refusing short and common passwords, security headers, bounded previews, CSV cells that are
never formulas."""
import time

import pytest

from tests.test_console import ADMIN, CLERK, login, make_app, token
from xnh.bot.console.common import csv_cell
from xnh.broadcast import campaign_text
from xnh.store import users


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "t.db")


def logged_in(app, who=CLERK, ip="10.0.0.1"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    assert login(client, who).status_code == 302
    return client


def on_console(client) -> bool:
    return client.get("/console/").status_code == 200


def test_a_cookie_copied_before_logout_no_longer_works(app):
    one = logged_in(app)
    copy = app.test_client()
    cookie = one.get_cookie("session")
    copy.set_cookie("session", cookie.value)
    assert on_console(copy)
    one.post("/console/logout", data={"csrf_token": token(one, "/console/")})
    assert not on_console(one) and not on_console(copy)


def test_a_password_change_ends_the_other_sessions_only(app):
    here, elsewhere = logged_in(app), logged_in(app, ip="10.0.0.2")
    form = {"csrf_token": token(here, "/console/password"), "current": CLERK[1], "new": "Qing-tian-2027!",
            "again": "Qing-tian-2027!"}
    done = here.post("/console/password", data=form)
    assert done.status_code == 200 and "1 个登录已退出" in done.get_data(as_text=True)
    assert on_console(here) and not on_console(elsewhere)
    assert login(app.test_client(), ("wang", "Qing-tian-2027!")).status_code == 302


@pytest.mark.parametrize("new, says", [("12345678", "至少10个字符"), ("password12", "太常见"), ("1234567890", "太常见"),
                                       ("wang-Dong-2026", "用户名"), ("Qing-tian-2027!", None)])
def test_the_password_policy(app, new, says):
    client = logged_in(app)
    got = client.post("/console/password", data={"csrf_token": token(client, "/console/password"),
                                                 "current": CLERK[1], "new": new, "again": new})
    assert (says in got.get_data(as_text=True) and got.status_code == 400) if says else got.status_code == 200


def test_the_wrong_current_password_changes_nothing(app):
    client = logged_in(app)
    got = client.post("/console/password", data={"csrf_token": token(client, "/console/password"),
                                                 "current": "guess-guess-1", "new": "Qing-tian-2027!",
                                                 "again": "Qing-tian-2027!"})
    assert got.status_code == 400 and "当前密码不对" in got.get_data(as_text=True)


def test_an_admin_reset_ends_the_sessions_and_forces_a_change(app):
    wang = logged_in(app)
    admin = logged_in(app, ADMIN)
    db_id = _user_id(app, "wang")
    got = admin.post(f"/console/users/{db_id}/reset", data={"csrf_token": token(admin, "/console/users"),
                                                           "password": "Lin-shi-mi-ma-8"})
    assert got.status_code == 302 and not on_console(wang)
    fresh = app.test_client()
    assert login(fresh, ("wang", "Lin-shi-mi-ma-8")).headers["Location"].endswith("/console/password")
    assert fresh.get("/console/tickets").headers["Location"].endswith("/console/password")  # nothing else first
    fresh.post("/console/password", data={"csrf_token": token(fresh, "/console/password"), "current": "Lin-shi-mi-ma-8",
                                          "new": "Qing-tian-2027!", "again": "Qing-tian-2027!"})
    assert fresh.get("/console/tickets").status_code == 200


def test_deactivation_ends_the_sessions(app):
    wang = logged_in(app)
    admin = logged_in(app, ADMIN)
    admin.post(f"/console/users/{_user_id(app, 'wang')}/active", data={"csrf_token": token(admin, "/console/users"),
                                                                      "active": "0"})
    admin.post(f"/console/users/{_user_id(app, 'wang')}/active", data={"csrf_token": token(admin, "/console/users"),
                                                                      "active": "1"})
    assert not on_console(wang)  # enabled again, the old session stays ended


def _user_id(app, name):
    from xnh.store import db as store_db

    db = store_db.open_db(app.config["DB_PATH"])
    try:
        return users.get_by_name(db, name)["id"]
    finally:
        db.close()


def _fail(client, name):
    return client.post("/console/login", data={"name": name, "password": "wrong-wrong-1", "csrf_token": token(client)})


def test_spraying_one_address_over_many_names_is_limited(app):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    for i in range(users.MAX_PER_ADDRESS):
        assert _fail(client, f"user{i}").status_code == 401
    assert login(client, CLERK).status_code == 429  # even the right password, from that address
    assert logged_in(app, CLERK, ip="10.9.9.10")  # another address is not held up


def test_one_name_from_many_addresses_is_limited_and_one_address_cannot_lock_it(app):
    for i in range(users.MAX_FAILURES):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = "10.1.1.1"
        _fail(client, "wang")
    assert logged_in(app, CLERK, ip="10.1.1.2")  # five from one address do not lock the clerk out elsewhere
    for i in range(users.MAX_PER_NAME):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.2.0.{i}"
        _fail(client, "wang")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.3.3.3"
    blocked = login(client, CLERK)
    assert blocked.status_code == 429 and "暂时锁定" in blocked.get_data(as_text=True)


@pytest.mark.parametrize("hops, limited", [(0, True), (1, False)])
def test_the_proxys_address_is_trusted_only_when_configured(tmp_path, hops, limited):
    app = make_app(tmp_path / "t.db", PROXY_HOPS=hops) if not hops else _with_proxy(tmp_path, hops)
    for i in range(users.MAX_FAILURES):  # five failures "from 1.1.1.1", all through the proxy at 127.0.0.1
        client = app.test_client()
        client.environ_base["HTTP_X_FORWARDED_FOR"] = "1.1.1.1"
        _fail(client, "wang")
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "2.2.2.2"  # the clerk herself, from her own address
    assert (login(client, CLERK).status_code == 429) is limited


def _with_proxy(tmp_path, hops):
    from xnh.app import create_app
    from xnh.settings import Settings

    make_app(tmp_path / "t.db").config  # users made
    return create_app({"DB_PATH": str(tmp_path / "t.db"), "TESTING": True, "CONSOLE_COOKIE_SECURE": False},
                      settings=Settings(db_path=str(tmp_path / "t.db"), proxy_hops=hops))


def test_security_headers(app):
    client = logged_in(app)
    page = client.get("/console/")
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"] and \
        "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    health = client.get("/healthz")
    assert health.headers["X-Frame-Options"] == "DENY" and health.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("text", [
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{{ '好' * 1000000000 }}", "{{ 9 ** 9 ** 9 }}", "好" * 3000, "{{ name.__class__ }}",
])
def test_a_template_cannot_hold_a_preview(app, text):
    client = logged_in(app)
    started = time.monotonic()
    got = client.post("/console/campaigns/preview", data={"csrf_token": token(client, "/console/campaigns/new"),
                                                          "name": "x", "audience": "unpaid=2026", "text": text,
                                                          "channels": "sms"})
    assert time.monotonic() - started < 2 and 'class="blockers"' in got.get_data(as_text=True)


def test_campaign_texts_keep_fields_filters_and_conditions():
    assert campaign_text.render("{% if amount %}{{ name }}:{{ amount|yuan }}元{% else %}无{% endif %}",
                                {"name": "王*", "amount": "30"}) == "王*:30元"


@pytest.mark.parametrize("cell, safe", [("=cmd|'/c calc'!A1", "'=cmd|'/c calc'!A1"), ("+1", "'+1"), ("-2", "'-2"),
                                        ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("身份证号校验位不对", "身份证号校验位不对"),
                                        (12, "12"), (None, "")])
def test_csv_cells_are_never_formulas(cell, safe):
    assert csv_cell(cell) == safe


def test_the_rejected_rows_download_neutralises_formulas(app, tmp_path):
    from tests.test_console import upload, wait_done

    client = logged_in(app)
    bad = tmp_path / "bad.csv"
    from tests.conftest import shared_file

    lines = shared_file("data/claims.csv").read_text(encoding="utf-8").splitlines()
    cells = lines[1].split(",")
    cells[0], cells[3] = "=1+2", "12345"  # a row beginning with a formula, rejected (its ID number is bad)
    bad.write_text("\n".join(lines[:2] + [",".join(cells)]) + "\n", encoding="utf-8")
    location = upload(client, bad).headers["Location"]
    client.post(location + "/start", data={"csrf_token": token(client, location)})
    assert wait_done(client, location)["status"] == "done"
    download = client.get(location + "/rejected.csv").get_data(as_text=True)
    rows = list(__import__("csv").reader(download.lstrip("\ufeff").splitlines()))
    assert len(rows) == 2 and rows[1][3].startswith("'=1+2,") and not any(c.startswith("=") for c in rows[1])
