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
def app(tmp_path):
    """A service whose real database holds no county data yet: the simulator is on, on the demo's database."""
    return create_app({"DB_PATH": str(tmp_path / "test.db"), "TWILIO_AUTH_TOKEN": None, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def test_page_lists_demo_phones_with_masked_names(client):
    page = client.get("/").get_data(as_text=True)
    assert "13800000001 户主 郭*" in page and "13800000003 户主 方*芳" in page
    assert "郭德" not in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_simulate_answers_like_sms(client):
    got = client.post("/api/simulate", json={"phone": "+86 138 0000 0001", "text": "住院花了3000能报多少"}).get_json()
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
    page = app.test_client().get("/")
    assert page.status_code == 404 and "XNH_SIMULATOR=off" in page.get_data(as_text=True)
    assert "real county data" not in page.get_data(as_text=True)  # negative: not the reason here
    assert app.test_client().post("/api/simulate", json={"phone": "1380000", "text": "x"}).status_code == 404


def test_simulator_in_headless_chromium(app):
    with ServerThread(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            assert page.title() == "新农合助手 · 短信模拟"
            assert page.input_value("#phone") == "13800000001"
            page.fill("#text", "住院花了3000能报多少")
            page.click("#go")
            answer = page.locator(".msg.bot").first
            answer.wait_for()
            assert "2400" in answer.inner_text()
            assert "条短信" in answer.locator(".meta").inner_text()
            page.select_option("#pick", "13800000002")
            assert page.input_value("#phone") == "13800000002"
            page.fill("#text", "<img src=x onerror=alert(1)>")
            page.click("#go")
            page.locator(".msg.bot").nth(1).wait_for()
            assert page.locator(".msg.me img").count() == 0  # shown as text, never as markup
        finally:
            browser.close()


REAL_EXPORT = ("年度,参合证号,户号,姓名,性别,身份证号,与户主关系,联系电话,乡镇,村,人员类别,缴费金额,缴费日期,参合状态,更新时间\n"
               "2026,HHX-01,HHX,张三,男,52990119560808001X,户主,13900000001,西河乡,西河村,普通,30.00,2025-11-12,已参合,"
               "2025-12-30T18:00:00\n")


@pytest.fixture
def synced(tmp_path):
    """A real database with one real household synced into it (and the demo's database beside it)."""
    from xnh import sync
    from xnh.store import db as store

    path = str(tmp_path / "t.db")
    real = tmp_path / "county_export.csv"
    real.write_text(REAL_EXPORT, encoding="utf-8")
    db = store.open_db(path)
    sync.run(db, "enrollment", str(real), progress=False)
    yield path, db
    db.close()


def test_after_a_real_sync_the_simulator_address_says_why_it_is_off(synced):
    path, db = synced
    client = create_app({"DB_PATH": path}).test_client()
    page = client.get("/")
    assert page.status_code == 404 and "模拟器已关闭" in page.get_data(as_text=True)
    assert "real county data has been synced" in page.get_data(as_text=True)
    api = client.post("/api/simulate", json={"phone": "13900000001", "text": "查参合"})
    assert api.status_code == 404 and "模拟器已关闭" in api.get_json()["error"]


@pytest.mark.parametrize("phone, present, absent", [
    ("13800000001", "郭*", "张*"),    # a demo household: its data, from the demo database
    ("13900000001", None, "张*"),     # negative: a real household is unknown to the simulator
])
def test_the_simulator_answers_only_from_the_demo_database(synced, phone, present, absent):
    path, db = synced
    client = create_app({"DB_PATH": path, "SIMULATOR": True}).test_client()
    reply = client.post("/api/simulate", json={"phone": phone, "text": "查参合"}).get_json()["reply"]
    assert (present is None or present in reply) and absent not in reply
    # the real database never holds a demo row
    assert db.execute("select count(*) from members").fetchone()[0] == 1
    assert db.execute("select count(*) from sync_runs").fetchone()[0] == 1
