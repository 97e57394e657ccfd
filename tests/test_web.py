"""The web simulator: its JSON API through Flask's test client, and the page in headless Chromium
(Debian's /usr/bin/chromium driven by Playwright) against the app on waitress in a thread."""
import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import put
from xnh.app import create_app
from xnh.server import ServerThread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def app(db, tmp_path):
    put(db, "members", [
        {"member_id": "HH1-01", "household_id": "HH1", "name": "杨树林", "relation": "户主", "phone": "13800009001"},
        {"member_id": "HH1-02", "household_id": "HH1", "name": "李秀英", "relation": "配偶", "phone": "13800009001"},
        {"member_id": "HH2-01", "household_id": "HH2", "name": "郭德", "relation": "户主", "phone": "13800000001"},
        {"member_id": "HH2-02", "household_id": "HH2", "name": "郭涵", "relation": "女", "phone": ""},
    ])
    return create_app({"DB_PATH": str(tmp_path / "test.db"), "TWILIO_AUTH_TOKEN": None, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def test_page_lists_demo_phones_with_masked_names(client):
    page = client.get("/").get_data(as_text=True)
    assert "13800009001 户主 杨*林" in page and "13800000001 户主 郭*" in page
    assert "杨树林" not in page and "李秀英" not in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_simulate_answers_like_sms(client):
    got = client.post("/api/simulate", json={"phone": "+86 138 0000 9001", "text": "住院花了3000能报多少"}).get_json()
    assert got["intent"] == "estimate" and "2400" in got["reply"]
    assert got["encoding"] == "UCS-2" and got["chars"] == len(got["reply"])
    assert got["segments"] == (1 if got["chars"] <= 70 else -(-got["chars"] // 67))


@pytest.mark.parametrize("payload,status", [
    ({"phone": "13800009001"}, 400),
    ({"phone": "abc", "text": "查参合"}, 400),
    ({"phone": "", "text": "查参合"}, 400),
    ({"phone": "13800009001", "text": "报" * 1601}, 400),
    ({"phone": "13800009001", "text": 5}, 400),
    ([1, 2], 400),
])
def test_simulate_rejects_bad_input(client, payload, status):
    assert client.post("/api/simulate", json=payload).status_code == status


def test_simulate_wants_json_not_a_form(client):
    # a cross-site <form> cannot send application/json, so it cannot drive the simulator
    assert client.post("/api/simulate", data={"phone": "13800009001", "text": "退订"}).status_code == 415


def test_simulator_can_be_switched_off(tmp_path):
    app = create_app({"DB_PATH": str(tmp_path / "t.db"), "SIMULATOR": False})
    assert app.test_client().get("/").status_code == 404
    assert app.test_client().post("/api/simulate", json={"phone": "1380000", "text": "x"}).status_code == 404


def test_simulator_in_headless_chromium(app):
    with ServerThread(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            assert page.title() == "新农合助手 · 短信模拟"
            assert page.input_value("#phone") == "13800009001"
            page.fill("#text", "住院花了3000能报多少")
            page.click("#go")
            answer = page.locator(".msg.bot").first
            answer.wait_for()
            assert "2400" in answer.inner_text()
            assert "条短信" in answer.locator(".meta").inner_text()
            page.select_option("#pick", "13800000001")
            assert page.input_value("#phone") == "13800000001"
            page.fill("#text", "<img src=x onerror=alert(1)>")
            page.click("#go")
            page.locator(".msg.bot").nth(1).wait_for()
            assert page.locator(".msg.me img").count() == 0  # shown as text, never as markup
        finally:
            browser.close()


def test_simulator_turns_itself_off_once_real_data_is_synced(tmp_path):
    """Auto mode: on for the demo county, 404 after a real export is imported (it answers as any phone)."""
    from xnh import demo, sync
    from xnh.store import db as store

    path = str(tmp_path / "t.db")
    app = create_app({"DB_PATH": path})
    db = store.open_db(path)
    demo.load(db)
    assert app.test_client().get("/").status_code == 200
    real = tmp_path / "county_export.csv"
    real.write_text("年度,参合证号,户号,姓名,性别,身份证号,与户主关系,联系电话,乡镇,村,人员类别,缴费金额,缴费日期,参合状态,更新时间\n"
                    "2026,HHX-01,HHX,张三,男,52990119560808001X,户主,13900000001,西河乡,西河村,普通,30.00,2025-11-12,已参合,"
                    "2025-12-30T18:00:00\n", encoding="utf-8")
    sync.run(db, "enrollment", str(real), progress=False)
    assert app.test_client().get("/").status_code == 404
    assert app.test_client().post("/api/simulate", json={"phone": "13900000001", "text": "查参合"}).status_code == 404
