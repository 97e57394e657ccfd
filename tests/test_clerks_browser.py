"""Issue 18's clerk work in headless Debian Chromium (Playwright driving /usr/bin/chromium) against the app on
waitress in a thread: the inbox paged and searched, 我来处理, the radar's grouping and one answer reaching
every asker through the outbox and the fake Twilio, an admin saving a local entry and the bot answering
the next such question itself, an import interrupted by a restart started again, and a password change
ending the clerk's session in another browser."""
import socket
import threading

import pytest

from tests.conftest import shared_file
from tests.fake_twilio import FakeTwilio
from tests.test_console import ADMIN, CLERK, make_app
from tests.test_console_browser import WAIT, browser, log_in  # noqa: F401  (the browser fixture)
from xnh.handlers.router import respond
from xnh.message import Message
from xnh.server import ServerThread
from xnh.store import db as store_db
from xnh.store import tickets
from xnh.store import uploads as store_uploads

CHRONIC = ["慢性病门诊申请下来要多久", "慢病申请要等多长时间才批", "慢性病申请多少天能下来"]


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_TODAY", "2026-06-15T10:00:00+08:00")
    return make_app(tmp_path / "t.db", CONSOLE_COOKIE_SECURE=True)


def ask(app, text, phone):
    db = store_db.open_db(app.config["DB_PATH"])
    try:
        with store_db.writing(db):
            return respond(Message(text=text, sender=phone, channel="sms", phone=phone), db)
    finally:
        db.close()


def test_the_inbox_paged_searched_and_taken(app, browser, monkeypatch):
    db = store_db.open_db(app.config["DB_PATH"])
    for i in range(60):
        monkeypatch.setenv("XNH_TODAY", f"2026-06-15T08:{i:02d}:00+08:00")
        with store_db.writing(db):
            tickets.open_ticket(db, f"1380000{i:04d}", "sms", f"问题{i}:卡的密码忘了" if i != 42 else "问题42:转院要什么手续")
    monkeypatch.setenv("XNH_TODAY", "2026-06-15T10:00:00+08:00")
    db.close()
    with ServerThread(app) as url:
        page = log_in(browser, url, CLERK)
        page.click("header nav >> text=工单")
        assert page.inner_text("#total").startswith("共 60 个")
        assert page.locator("#tickets tbody tr").count() == 50
        assert page.get_attribute("#tickets tbody tr >> nth=0", "data-id") == "1"  # the longest waiting first
        page.click("#pager a[rel=next]")
        assert page.locator("#tickets tbody tr").count() == 10
        page.fill("#q", "转院")
        page.click("#search button")
        assert page.locator("#tickets tbody tr").count() == 1 and "138****0042" in page.inner_text("#tickets")
        page.fill("#q", "１３８０００００００７")  # full-width, as a Chinese input method types it
        page.click("#search button")
        assert page.get_attribute("#tickets tbody tr >> nth=0", "data-id") == "8"
        page.click("#tickets tbody tr >> nth=0 >> a >> nth=0")
        page.click("#assign button")
        assert page.inner_text("#assigned") == "wang"
        other = log_in(browser, url, ADMIN)
        other.goto(page.url)
        other.click("#assign button")  # 转给我处理: the admin takes it over, and it says so
        assert other.inner_text("#assigned") == "root"


def test_the_radar_groups_one_answer_reaches_everyone_and_a_saved_answer_answers_the_next(app, browser, monkeypatch):
    for i, text in enumerate(CHRONIC):
        assert "工作人员" in ask(app, text, f"1390000000{i + 1}").text
    ask(app, "先天性房间隔缺损能不能报医保？", "13900000009")
    with FakeTwilio() as fake, ServerThread(app) as url:
        for name, value in {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token",
                            "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE": fake.base}.items():
            monkeypatch.setenv(name, value)
        page = log_in(browser, url, ADMIN)
        page.click("header nav >> text=问题雷达")
        first = page.locator("#groups tbody tr >> nth=0")
        assert first.get_attribute("data-size") == "3" and "时间" in first.inner_text()
        first.locator("a").click()
        assert page.locator("#members tbody tr").count() == 3
        page.fill("#answer", "慢性病申请材料齐全的,一般15个工作日内审批。")
        page.check("#save")
        page.fill("#local-question", "慢性病申请要多久批下来")
        page.click("#group-answer button[type=submit]")
        assert "已回复 3 个工单" in page.inner_text("#answered-count") and page.locator("#saved").count() == 1
        from xnh.broadcast import worker
        from xnh.settings import Settings

        worker.run(Settings.from_env(), app.config["DB_PATH"], until_idle=True)
        assert sorted(r[1] for r in fake.requests) == [f"+861390000000{i}" for i in (1, 2, 3)]
        assert all(r[2] == "慢性病申请材料齐全的,一般15个工作日内审批。" for r in fake.requests)
        page.click("header nav >> text=本地答复")
        assert "慢性病申请要多久批下来" in page.inner_text("#entries")
    reply = ask(app, "我的慢性病申请多长时间能批", "13900000077")  # the next such question: the bot answers it
    assert reply.text == "慢性病申请材料齐全的,一般15个工作日内审批。(合管办答复 2026-06-15)"


def test_an_import_interrupted_by_a_restart_is_started_again(app, browser, tmp_path):
    source = shared_file("data/enrollment.csv")
    with ServerThread(app) as url:
        page = log_in(browser, url, CLERK)
        page.click("text=导入数据")
        page.select_option("#kind", "enrollment")
        page.set_input_files("#file", str(source))
        page.click("#upload button")
        upload_url = page.url
    upload_id = upload_url.rsplit("/", 1)[1]
    db = store_db.open_db(app.config["DB_PATH"])
    with store_db.writing(db):  # the service stopped mid-import: running, in a process that is gone
        store_uploads.claim_start(db, upload_id, f"{socket.gethostname()}:999999")
        store_uploads.progress(db, upload_id, 70, 260)
    db.close()
    restarted = make_app(tmp_path / "t.db", CONSOLE_COOKIE_SECURE=True)
    with ServerThread(restarted) as url:
        page = log_in(browser, url, CLERK)
        page.goto(upload_url.replace(upload_url.split("/console")[0], url))
        assert page.get_attribute("#status", "data-status") == "failed" and "重启" in page.inner_text("#failed")
        page.click("#again button")
        page.wait_for_selector("#status[data-status=done]")  # the page follows the import by itself
        assert int(page.inner_text("#summary b >> nth=0")) > 0


def test_a_password_change_ends_the_session_in_another_browser(app, browser):
    with ServerThread(app) as url:
        office = log_in(browser, url, CLERK)
        home = log_in(browser, url, CLERK)  # another browser context: another session
        home.click("#change-password")
        home.fill("#current", CLERK[1])
        home.fill("#new", "Qing-tian-2027!")
        home.fill("#again", "Qing-tian-2027!")
        home.click("#password-form button")
        assert "1 个登录已退出" in home.inner_text("#changed")
        office.goto(url + "/console/tickets")
        assert "/console/login" in office.url  # the other session is over
        home.goto(url + "/console/tickets")
        assert "/console/tickets" in home.url  # this one goes on
