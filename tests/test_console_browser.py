"""The clerks' console in headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against
the app on waitress in a thread, with the session cookie Secure as in production (Chromium keeps
Secure cookies of http://127.0.0.1): log in, upload a GBK export with bad rows and see them, create a
campaign from its live preview, send it and watch it finish against the local fake Twilio, answer a
ticket; a form posted without its CSRF token is refused; a clerk can't reach user management."""
import threading

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import shared_file
from tests.fake_twilio import FakeTwilio
from tests.test_console import ADMIN, CLERK, gbk_with_bad_rows, make_app
from tests.test_web import CHROMIUM, CHROMIUM_ARGS
from xnh import sync
from xnh.server import ServerThread
from xnh.store import db as store_db
from xnh.store import state

WAIT = 15_000  # ms


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_TODAY", "2026-06-15T10:00:00+08:00")  # inside the send window
    app = make_app(tmp_path / "t.db", CONSOLE_COOKIE_SECURE=True)
    db = store_db.open_db(app.config["DB_PATH"])
    sync.run(db, "enrollment", str(shared_file("data/enrollment.csv")))
    db.close()
    return app


@pytest.fixture
def browser():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(browser, url, who):
    page = browser.new_page()
    page.set_default_timeout(WAIT)
    page.goto(url + "/console/")
    assert "/console/login" in page.url  # sent to log in first
    page.fill("#name", who[0])
    page.fill("#password", who[1])
    page.click("#login button")
    page.wait_for_selector("#me")
    return page


def test_upload_a_gbk_export_and_see_its_rejected_rows(app, browser, tmp_path):
    source = gbk_with_bad_rows(tmp_path)
    with ServerThread(app) as url:
        page = log_in(browser, url, CLERK)
        cookie = next(c for c in page.context.cookies() if c["name"] == "session")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        page.click("text=导入数据")
        page.select_option("#kind", "claims")
        page.set_input_files("#file", str(source))
        page.click("#upload button")
        assert "GBK" in page.inner_text("#encoding")
        page.click("#start button")
        page.wait_for_selector("#status[data-status=done]")
        rejected = int(page.inner_text("#rejected-count"))
        assert rejected > 0 and page.locator("#rejected tbody tr").count() == rejected
        assert "身份证" in page.inner_text("#rejected")
        download = page.context.request.get(url + page.get_attribute("#download-rejected", "href"))
        assert download.ok and len(download.text().strip().splitlines()) == rejected + 1
        # a clerk can't reach user management: not in the menu, 403 at its address
        assert page.locator("header nav >> text=用户").count() == 0
        assert page.goto(url + "/console/users").status == 403 and "没有权限" in page.content()


def test_a_campaign_from_live_preview_to_sent_and_a_ticket_answered(app, browser, monkeypatch):
    db = store_db.open_db(app.config["DB_PATH"])
    ticket = state.open_ticket(db, "13800000001", "sms", "新农合卡的密码忘了怎么办")
    db.conn.commit()
    db.close()
    with FakeTwilio() as fake, ServerThread(app) as url:
        for name, value in {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token",
                            "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE": fake.base,
                            "XNH_SMS_PER_SECOND": "50"}.items():
            monkeypatch.setenv(name, value)
        page = log_in(browser, url, CLERK)
        page.click("text=群发")
        page.click("#new-campaign")
        page.fill("#c-name", "2026缴费提醒")
        page.fill("#c-text", "{{ name }}您好,请于{{ deadline }}前缴纳{{ year }}年度新农合。")
        page.fill("#c-audience", "unpaid=2026")  # the live preview follows the typing
        page.wait_for_selector("#pv-count:text-is('7')")
        assert page.locator(".sample").count() == 3 and "年度新农合" in page.inner_text(".sample >> nth=0")
        assert page.inner_text("#pv-cost") == "0.35" and "秒" in page.inner_text("#pv-time")
        page.click("#do-create")
        page.wait_for_selector("#c-status[data-status=draft]")
        page.click("#send button")
        page.wait_for_selector("#c-status[data-status=sending]")
        from xnh.broadcast import worker
        from xnh.settings import Settings

        sender = threading.Thread(target=worker.run, args=(Settings.from_env(), app.config["DB_PATH"]),
                                  kwargs={"until_idle": True})
        sender.start()
        page.wait_for_selector("#c-status[data-finished='1']", timeout=WAIT)  # the page refreshes itself
        sender.join(WAIT / 1000)
        assert page.get_attribute("#c-progress", "value") == page.get_attribute("#c-progress", "max") == "7"
        assert len(fake.requests) == 7

        page.click("header nav >> text=工单")
        page.click(f"a[href='/console/tickets/{ticket}'] >> nth=0")
        page.fill("#answer", "请带身份证到乡镇合管办重置密码。")
        page.click("#answer-form button")
        assert page.inner_text("#answered") == "请带身份证到乡镇合管办重置密码。"
        assert page.inner_text("#ticket-status") == "已回复"


def test_a_form_without_its_csrf_token_is_refused_in_the_browser(app, browser):
    with ServerThread(app) as url:
        page = browser.new_page()
        page.set_default_timeout(WAIT)
        page.goto(url + "/console/login")
        page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
        page.fill("#name", ADMIN[0])
        page.fill("#password", ADMIN[1])
        page.click("#login button")
        assert "表单已失效" in page.content()
        assert page.goto(url + "/console/").url.endswith("/console/login?next=%2Fconsole%2F")  # not logged in
