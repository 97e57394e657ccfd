"""End to end: the real PTB Application (as `xnh serve` runs it, in TelegramRunner's thread) polling a
small fake Bot API that this test serves on 127.0.0.1 (getMe, getUpdates, sendMessage, ...).
Covers /start, a question, the menu, contact binding with the user's own and someone else's contact,
the error handler, and webhook mode behind the Flask app."""
import itertools
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import put
from xnh.app import create_app
from xnh.bot import telegram_bot
from xnh.bot.telegram_bot import TelegramRunner, build_application

TOKEN = "123456:TEST-TOKEN"
USER, OTHER = 4242, 777
BOT = {"id": 1000, "is_bot": True, "first_name": "新农合助手", "username": "xnh_test_bot"}
WAIT = 30  # seconds before a missing reply fails the test (a guard, not a measurement)


class FakeBotAPI:
    """The few Bot API methods PTB calls, recording what the bot sends."""

    def __init__(self):
        self.updates, self.calls = [], []
        self.cond = threading.Condition()
        self.ids = itertools.count(1)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                token, _, method = self.path.strip("/").removeprefix("bot").partition("/")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                if self.headers.get("Content-Type", "").startswith("application/json") and body:
                    params = json.loads(body)
                ok = token == TOKEN
                result = api.call(method, params) if ok else None
                out = json.dumps({"ok": True, "result": result} if ok else
                                 {"ok": False, "error_code": 401, "description": "Unauthorized"}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                try:
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):  # the bot stopped mid long-poll
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bot"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def call(self, method, params):
        with self.cond:
            self.calls.append((method, params))
            self.cond.notify_all()
        if method == "getMe":
            return BOT
        if method == "getUpdates":
            return self._updates(int(params.get("offset") or 0), float(params.get("timeout") or 0))
        if method == "sendMessage":
            return {"message_id": next(self.ids), "date": int(time.time()), "from": BOT, "text": params["text"],
                    "chat": {"id": int(params["chat_id"]), "type": "private"}}
        return True  # deleteWebhook, setWebhook, setMyCommands, answerCallbackQuery

    def _updates(self, offset, timeout):
        with self.cond:
            self.cond.wait_for(lambda: any(u["update_id"] >= offset for u in self.updates), min(timeout, 1.0))
            return [u for u in self.updates if u["update_id"] >= offset]

    def push(self, update: dict):
        with self.cond:
            update["update_id"] = len(self.updates) + 1
            self.updates.append(update)
            self.cond.notify_all()

    def sent(self) -> list[dict]:
        with self.cond:
            return [p for m, p in self.calls if m == "sendMessage"]

    def wait_sent(self, n: int) -> list[dict]:
        """The first n messages the bot sent (waits for them)."""
        with self.cond:
            if not self.cond.wait_for(lambda: sum(m == "sendMessage" for m, _ in self.calls) >= n, WAIT):
                raise AssertionError(f"the bot sent {self.sent()}, expected {n} messages")
        return self.sent()[:n]

    def called(self, method) -> list[dict]:
        with self.cond:
            return [p for m, p in self.calls if m == method]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


_message_ids = itertools.count(1)


def user(uid=USER):
    return {"id": uid, "is_bot": False, "first_name": "杨", "language_code": "zh-hans"}


def message(text=None, uid=USER, **extra):
    msg = {"message_id": next(_message_ids), "date": int(time.time()), "from": user(uid),
           "chat": {"id": uid, "type": "private", "first_name": "杨"}, **extra}
    if text is not None:
        msg["text"] = text
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"message": msg}


def contact(phone, owner):
    return message(contact={"phone_number": phone, "first_name": "杨", "user_id": owner})


def press(data, uid=USER):
    return {"callback_query": {"id": f"cq{next(_message_ids)}", "from": user(uid), "chat_instance": "c1", "data": data,
                               "message": {"message_id": 1, "date": int(time.time()), "from": BOT, "text": "菜单",
                                           "chat": {"id": uid, "type": "private"}}}}


@pytest.fixture
def county(db):
    """One household with a registered phone, enrolled this year, with a paid claim."""
    put(db, "members", [
        {"member_id": "HH1-01", "household_id": "HH1", "name": "杨树林", "sex": "男", "id_number": "529901195608080011",
         "relation": "户主", "phone": "13800009001", "township": "西河乡", "village": "西河村", "category": "普通"},
        {"member_id": "HH1-02", "household_id": "HH1", "name": "李秀英", "sex": "女", "id_number": "529901195802020028",
         "relation": "配偶", "phone": "", "township": "西河乡", "village": "西河村", "category": "普通"}])
    put(db, "enrollments", [
        {"year": 2026, "member_id": m, "household_id": "HH1", "name": n, "phone": "13800009001", "category": "普通",
         "paid_amount": "30.00", "paid_date": "2025-11-03", "status": "已参合"}
        for m, n in (("HH1-01", "杨树林"), ("HH1-02", "李秀英"))])
    put(db, "claims", {"claim_id": "B1", "member_id": "HH1-02", "household_id": "HH1", "name": "李秀英",
                         "visit_type": "住院", "hospital": "县人民医院", "level": "县级", "admitted": "2026-03-02",
                         "discharged": "2026-03-09", "total": "6000.00", "eligible": "6000.00",
                         "reimbursed": "4200.00", "status": "已拨付", "paid_date": "2026-04-10",
                         "paid_channel": "一卡通"})
    return db


@pytest.fixture
def api():
    fake = FakeBotAPI()
    yield fake
    fake.close()


@pytest.fixture
def bot(api, county, tmp_path):
    runner = TelegramRunner(build_application(TOKEN, api.url, str(tmp_path / "test.db")))
    runner.start()
    yield runner
    runner.stop()


def test_start_sends_menu_and_share_phone_button(api, bot):
    api.push(message("/start"))
    greeting, share = api.wait_sent(2)
    menu = json.loads(greeting["reply_markup"])["inline_keyboard"]
    assert [row[0]["text"] for row in menu] == ["报销估算", "政策问答", "查参合", "查报销", "人工服务"]
    assert greeting["parse_mode"] == "HTML" and "新农合助手" in greeting["text"]
    button = json.loads(share["reply_markup"])["keyboard"][0][0]
    assert button == {"text": "分享手机号", "request_contact": True}
    assert api.called("setMyCommands")


def test_question_is_answered_through_respond_in_html(api, bot):
    api.push(message("住院花了3000能报多少"))
    (answer,) = api.wait_sent(1)
    assert answer["parse_mode"] == "HTML"
    assert "2400" in answer["text"] and "<b>" in answer["text"]  # the Telegram template
    assert int(answer["chat_id"]) == USER


def test_plain_wording_is_escaped_for_html(api, bot, monkeypatch):
    from xnh.message import Reply

    monkeypatch.setattr(telegram_bot, "respond",
                        lambda message, db: Reply("help", "help", {}, text="a<b & c>d"))
    api.push(message("随便问"))
    (answer,) = api.wait_sent(1)
    assert answer["text"] == "a&lt;b &amp; c&gt;d"


def test_policy_answers_keep_their_telegram_markup(api, bot):
    api.push(message("门诊一年最多能报多少钱"))
    (answer,) = api.wait_sent(1)
    assert "<b>" in answer["text"] and "&lt;b&gt;" not in answer["text"] and "150" in answer["text"]


def test_own_contact_binds_phone_then_lookups_work(api, bot, county):
    api.push(message("查参合"))
    (before,) = api.wait_sent(1)
    assert "分享手机号" in before["text"] and "已参合" not in before["text"]
    api.push(contact("+86 138 0000 9001", owner=USER))
    bound = api.wait_sent(2)[1]
    assert "138****9001" in bound["text"]
    assert county["bindings"].get(f"tg:{USER}")["phone"] == "13800009001"
    api.push(message("查参合"))
    enrolled = api.wait_sent(3)[2]["text"]
    assert "已参合" in enrolled and "杨*林" in enrolled and "杨树林" not in enrolled
    api.push(press("claims"))
    claims = api.wait_sent(4)[3]["text"]
    assert "4200" in claims and "已拨付" in claims
    assert api.called("answerCallbackQuery")


def test_someone_elses_contact_is_refused(api, bot, county):
    api.push(contact("+8613800009001", owner=OTHER))
    (refusal,) = api.wait_sent(1)
    assert "自己的手机号" in refusal["text"]
    assert county["bindings"].count == 0
    api.push(message("查报销"))
    assert "4200" not in api.wait_sent(2)[1]["text"]


def test_forwarded_contact_without_user_id_is_refused(api, bot, county):
    api.push(contact("+8613800009001", owner=None))
    assert "自己的手机号" in api.wait_sent(1)[0]["text"]
    assert county["bindings"].count == 0


def test_menu_prompts(api, bot):
    api.push(press("estimate"))
    assert "县医院住院花了6000" in api.wait_sent(1)[0]["text"]
    api.push(press("human"))
    assert "人工" in api.wait_sent(2)[1]["text"]


def test_error_handler_apologises(api, bot, monkeypatch):
    def broken(message, db):
        raise RuntimeError("boom")

    monkeypatch.setattr(telegram_bot, "respond", broken)
    api.push(message("住院花了3000能报多少"))
    assert "抱歉" in api.wait_sent(1)[0]["text"]
    api.push(message("再问一次"))
    assert "抱歉" in api.wait_sent(2)[1]["text"]  # the bot keeps running


def test_group_chats_get_no_personal_answers(api, bot):
    update = message("查参合")
    update["message"]["chat"] = {"id": -100, "type": "group", "title": "村里群"}
    api.push(update)
    api.push(message("/start"))  # a private message after it: only that one is answered
    sent = api.wait_sent(2)
    assert all(int(m["chat_id"]) == USER for m in sent)


def test_webhook_mode_behind_flask(api, county, tmp_path):
    path = str(tmp_path / "test.db")
    runner = TelegramRunner(build_application(TOKEN, api.url, path, webhook=True),
                            webhook_url="https://xnh.example.cn/telegram/webhook", secret="s3cret")
    runner.start()
    try:
        app = create_app({"DB_PATH": path, "TELEGRAM_RUNNER": runner, "TELEGRAM_WEBHOOK_SECRET": "s3cret"})
        client = app.test_client()
        update = {"update_id": 1, **message("住院花了3000能报多少")}
        assert client.post("/telegram/webhook", json=update).status_code == 403
        assert client.post("/telegram/webhook", json=update,
                           headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}).status_code == 403
        assert client.post("/telegram/webhook", json=update,
                           headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}).status_code == 200
        assert "2400" in api.wait_sent(1)[0]["text"]
        assert api.called("setWebhook")[0]["secret_token"] == "s3cret"
        assert not api.called("getUpdates")
    finally:
        runner.stop()


@pytest.mark.parametrize("body", [
    b"[1, 2]",                                            # not an object
    b'"text"',
    b"{not json",
    b'{"update_id": "x", "message": 5}',                  # fields of the wrong type
    b'{"update_id": 2, "message": {"text": "hi"}}',       # a message without chat, date, sender
])
def test_a_malformed_update_with_the_right_secret_is_logged_and_answered_200(api, county, tmp_path, body, caplog):
    path = str(tmp_path / "test.db")
    runner = TelegramRunner(build_application(TOKEN, api.url, path, webhook=True),
                            webhook_url="https://xnh.example.cn/telegram/webhook", secret="s3cret")
    runner.start()
    try:
        app = create_app({"DB_PATH": path, "TELEGRAM_RUNNER": runner, "TELEGRAM_WEBHOOK_SECRET": "s3cret"})
        client = app.test_client()
        headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret", "Content-Type": "application/json"}
        resp = client.post("/telegram/webhook", data=body, headers=headers)
        assert resp.status_code == 200
        assert "malformed Telegram update" in caplog.text or not api.called("sendMessage")
        # negative row: a good update after it is still processed
        good = {"update_id": 3, **message("住院花了3000能报多少")}
        assert client.post("/telegram/webhook", json=good, headers=headers).status_code == 200
        sent = api.wait_sent(1)
        assert len(sent) == 1 and "2400" in sent[0]["text"]
    finally:
        runner.stop()
