"""SMS inside China: the approved templates obey the providers' rules; every Reply the product can produce
(every reply template, over the real questions, the dev cases and worst cases) fits one within its
variables' limits; an inbound SMS through the provider's callback (secret path, address allowlist) is
acknowledged, answered through the outbox, sent by the worker to the local fake of Aliyun or Tencent with
its template code, variables and the outbox id, and its receipt moves the row; retried callbacks change
nothing; the per-number daily limit holds."""
import json
from pathlib import Path

import pytest

from tests.conftest import shared_file
from tests.fake_cnsms import (ALIYUN_KEY, ALIYUN_SECRET, TENCENT_APP, TENCENT_ID, TENCENT_KEY, FakeAliyun,
                              FakeTencent)
from xnh.app import create_app
from xnh.bot import cnsms as callbacks
from xnh.broadcast import worker
from xnh.handlers.router import respond
from xnh.message import Message
from xnh.providers import cnsms
from xnh.providers.base import Result
from xnh.settings import Settings
from xnh.store import outbox, state

ROOT = Path(__file__).resolve().parents[1]
SECRET = "cb-secret-123"
REPLY_TEMPLATES = sorted(p.stem for p in (ROOT / "xnh" / "templates" / "sms").glob("*.txt"))


def cn_settings(path, provider="aliyun", fake=None, **kw):
    keys = {"aliyun": {"aliyun_access_key_id": ALIYUN_KEY, "aliyun_access_key_secret": ALIYUN_SECRET,
                       "aliyun_sms_api_base": fake.base if fake else "http://127.0.0.1:9"},
            "tencent": {"tencent_secret_id": TENCENT_ID, "tencent_secret_key": TENCENT_KEY,
                        "tencent_sms_app_id": TENCENT_APP,
                        "tencent_sms_api_base": fake.base if fake else "http://127.0.0.1:9"}}[provider]
    return Settings(db_path=path, cnsms_provider=provider, cnsms_sign_name="示范县合管办",
                    cnsms_callback_secret=SECRET, cnsms_callback_allow="127.0.0.0/8, ::1/128", **keys, **kw)


def client_for(tmp_path, settings):
    return create_app({"DB_PATH": str(tmp_path / "test.db"), "TESTING": True}, settings=settings).test_client()


def aliyun_up(client, content, phone="13800009001", seq=1, secret=SECRET):
    item = {"phone_number": phone, "send_time": "2026-06-15 10:00:00", "content": content, "sign_name": "示范县合管办",
            "dest_code": "1234", "sequence_id": seq}
    return client.post(f"/cnsms/{secret}/aliyun/up", json=[item])


# -- the templates ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(cnsms.table()))
def test_every_template_obeys_the_providers_rules(key):
    assert cnsms.template_problems(key) == []


def test_about_fifteen_templates_and_every_reply_template_is_covered():
    assert 10 <= len(cnsms.table()) <= 18
    assert set(REPLY_TEMPLATES) <= cnsms.replies_covered()


@pytest.mark.parametrize("text, problem", [
    ("【示范县】您好${name}", "【】"), ("${a}${b}", "only variables"), ("您好${a}${b}。", "side by side"),
    ("请点击http://x.cn/${a}查看", "link"), ("您已欠费,请缴纳${a}元", "reject"), ("[通知]${a}元", "[ ]"),
])
def test_the_template_check_sees_what_providers_reject(monkeypatch, text, problem):
    names = cnsms._VAR.findall(text)
    spec = {"text": text, "aliyun": "A", "tencent": "1", "replies": [], "vars": {n: {"kind": "text"} for n in names}}
    monkeypatch.setitem(cnsms.table(), "bad", spec)
    assert any(problem in p for p in cnsms.template_problems("bad"))


@pytest.mark.parametrize("kind, value, ok", [
    ("text", "杨*林", True), ("text", "长" * 35, True), ("text", "长" * 36, False), ("text", "", False),
    ("text", "见【示范县】", False), ("text", "www.x.cn", False), ("money", "35000", True), ("money", "35000.5", True),
    ("money", "三万", False), ("number", "12", True), ("number", "1.5", False), ("time", "2026年3月1日", True),
    ("text", "请尽快缴纳欠费", False),
])
def test_values_are_checked_against_their_kind(kind, value, ok):
    assert (cnsms.value_problem(kind, value) is None) is ok


def _turns():
    found = []
    for name in ("corpus_dev.json", "corpus2_dev.json", "corpus_holdout.json", "corpus2_holdout.json"):
        found += [t for c in json.loads((ROOT / "bench" / "real" / name).read_text(encoding="utf-8")) for t in c["turns"]]
    found += [t for c in json.loads(shared_file("eval/dev_cases.json").read_text(encoding="utf-8")) for t in c["turns"]]
    return found


CRAFTED = [  # (sender, text): every reply template, and the longest values each can carry
    ("13800009001", "查报销"), ("13800009001", "查参合"), ("13800009001", "今年报了多少"), ("13800009001", "还能报多少"),
    ("13800009002", "查报销"), ("13800009003", "查报销"), ("13800009003", "查参合"), ("13700000009", "查报销"),
    ("13700000009", "查询 52990119560808001X 杨树林"), ("13700000008", "查询 52990119560808001X"),
    ("13700000007", "查询 529901195608080011 杨树林"), ("13700000006", "查询 529901195608080013 张三"),
    ("13700000005", "住院花了99999999"), ("13700000005", "2"), ("13700000004", "省人民医院住院花了123456789.99"),
    ("13700000004", "门诊花了99999"), ("13700000004", "村卫生室住院花了3000"), ("13700000003", "人工"),
    ("13700000003", "退订"), ("13700000003", "订阅"), ("13700000003", "你好"), ("13700000003", "谢谢"),
    ("13700000003", "养老保险怎么交"), ("13700000003", "广州的医保报销比例是多少"), ("13700000003", "1"),
    ("13700000003", "报销"), ("13700000003", "???"), ("13700000003", "狗咬了打疫苗能报吗"),
]


def test_every_reply_the_product_can_produce_fits_an_approved_template(county, db):
    for phone in ("13700000006", "13700000002"):  # five failures lock a sender for the day
        for _ in range(6):
            respond(Message(text="查询 529901195608080013 张三", sender=phone, channel="cnsms", phone=phone), db)
    seen, made = set(), 0
    messages = [("13700000001", t) for t in _turns()] + CRAFTED + [("13700000002", "查询 52990119560808001X 杨树林")]
    for sender, text in messages:
        reply = respond(Message(text=text, sender=sender, channel="cnsms", phone=sender), db)
        templated = cnsms.for_reply(reply)  # raises TemplateProblem for a value out of its limits
        assert "【" not in templated.text and len(templated.text) <= cnsms.MAX_TEMPLATE
        seen.add(reply.template)
        made += 1
    assert made > 300
    # payment notices come from the outbox, menus need three close topics, a local answer needs a clerk's saved
    # answer (tests/test_radar.py): the template table covers them (the test above)
    assert set(REPLY_TEMPLATES) - {"payment_notice", "policy_choice", "policy_local"} <= seen, set(REPLY_TEMPLATES) - seen


def test_every_knowledge_base_topic_fits_as_an_answer_and_as_a_choice():
    """A policy answer's SMS names its topic: every topic's question fits (policy_choice, which the real
    questions above rarely produce, names the first choice)."""
    from xnh.message import Reply
    from xnh.policy_kb import qa

    questions = [t.question for t in qa.topics()]
    for topic in qa.topics():
        for template in ("policy", "policy_both", "policy_partial"):
            assert cnsms.for_reply(Reply("policy", template, {"topic": topic.id, "answer": "…"})).key == "policy"
    for i in range(len(questions)):
        made = cnsms.for_reply(Reply("policy", "policy_choice", {"choices": questions[i:i + 3]}))
        assert made.key == "policy" and len(made.vars["topic"]) <= 35


@pytest.mark.parametrize("name, data", [
    ("payment_notice", {"name": "欧阳*明", "month": 12, "hospital": "宁波市北仑区人民医院附属第一分院门诊部住院部",
                        "visit": "住院", "amount": "123456789.99", "paid_date": "2026-12-31", "channel": "一卡通"}),
    ("payment_notice", {"name": "张*", "month": None, "hospital": "", "visit": "门诊", "amount": "0.5",
                        "paid_date": "", "channel": ""}),
    ("payment_period", {"year": 2027, "from": "11月1日", "until": "12月30日"}),
    ("ticket_answer", {"ticket": 12, "answer": "带发票和一卡通到乡镇合管办办理"}),
    ("ticket_answer", {"ticket": 123456, "answer": "很长的答复" * 40}),
    ("daily_limit", {}),
])
def test_notices_fit_at_their_worst(name, data):
    made = cnsms.make(name, data)
    assert made.text and all(cnsms.value_problem(cnsms.table()[made.key]["vars"][k]["kind"], v) is None
                             for k, v in made.vars.items())


def test_a_long_clerks_answer_takes_the_template_that_points_to_the_office():
    assert cnsms.make("ticket_answer", {"ticket": 3, "answer": "短答复"}).key == "ticket_answer"
    assert cnsms.make("ticket_answer", {"ticket": 3, "answer": "长" * 36}).key == "ticket_answer_long"


def test_reminders_are_notices_of_the_payment_period():
    text = cnsms.table()["payment_period"]["text"]
    assert "缴费期" in text and not any(w in text for w in ("欠", "催", "逾期", "必须", "尽快"))


# -- the callbacks ------------------------------------------------------------------------------------------

def test_the_callback_needs_the_secret_path_and_an_allowed_address(tmp_path, db):
    settings = cn_settings(str(tmp_path / "test.db"))
    client = client_for(tmp_path, settings)
    assert aliyun_up(client, "查报销", secret="wrong").status_code == 404
    assert client.post(f"/cnsms/{SECRET}/other/up", json=[]).status_code == 404
    assert client_for(tmp_path, settings.replace(cnsms_callback_secret=None)).post(
        f"/cnsms/{SECRET}/aliyun/up", json=[]).status_code == 404
    refused = client_for(tmp_path, settings.replace(cnsms_callback_allow="10.0.0.0/8"))
    assert aliyun_up(refused, "查报销").status_code == 403
    assert client.post(f"/cnsms/{SECRET}/aliyun/up", data=b"not json").status_code == 400


@pytest.mark.parametrize("address, allow, ok", [
    ("127.0.0.1", "127.0.0.0/8", True), ("10.1.2.3", "127.0.0.0/8, 10.0.0.0/8", True), ("8.8.8.8", "10.0.0.0/8", False),
    ("8.8.8.8", None, True), ("::1", "::1/128", True), ("bogus", "10.0.0.0/8", False), ("10.0.0.1", "nonsense", False),
])
def test_address_allowlist(address, allow, ok):
    assert callbacks.allowed(address, allow) is ok


def test_aliyun_round_trip(tmp_path, db):
    path = str(tmp_path / "test.db")
    with FakeAliyun() as fake:
        settings = cn_settings(path, "aliyun", fake)
        client = client_for(tmp_path, settings)
        ack = aliyun_up(client, "住院花了3000能报多少", seq=77)
        assert ack.status_code == 200 and ack.get_json() == {"code": 0, "msg": "成功"}
        assert aliyun_up(client, "住院花了3000能报多少", seq=77).status_code == 200  # a retried callback
        rows = db.execute("SELECT id, channel, fields, text FROM outbox").fetchall()
        assert len(rows) == 1 and rows[0][1] == "cnsms" and "可报" in rows[0][3]
        assert worker.run(settings, path, until_idle=True) == 1
        sent = fake.requests[0]
        assert sent["TemplateCode"] == cnsms.table()["estimate_table"]["aliyun"] and sent["OutId"] == str(rows[0][0])
        assert sent["SignName"] == "示范县合管办" and sent["PhoneNumbers"] == "13800009001"
        assert json.loads(sent["TemplateParam"]) == json.loads(rows[0][2])["vars"]
        biz = db.execute("SELECT provider_sid, status FROM outbox").fetchone()
        assert biz[1] == "submitted" and biz[0].startswith("aliyun:")
        receipt = [{"phone_number": "13800009001", "send_time": "2026-06-15 10:00:01", "report_time": "2026-06-15 10:00:05",
                    "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1",
                    "biz_id": biz[0].removeprefix("aliyun:"), "out_id": str(rows[0][0])}]
        assert client.post(f"/cnsms/{SECRET}/aliyun/report", json=receipt).get_json() == {"code": 0, "msg": "成功"}
        assert db.execute("SELECT status FROM outbox").fetchone()[0] == "delivered"


def test_tencent_round_trip(tmp_path, db):
    path = str(tmp_path / "test.db")
    with FakeTencent() as fake:
        settings = cn_settings(path, "tencent", fake)
        client = client_for(tmp_path, settings)
        up = {"extend": "", "mobile": "13800009002", "nationcode": "86", "sign": "示范县合管办", "text": "人工",
              "time": 1781500000}
        assert client.post(f"/cnsms/{SECRET}/tencent/up", json=up).get_json() == {"result": 0, "errmsg": "OK"}
        assert worker.run(settings, path, until_idle=True) == 1
        sent = fake.requests[0]
        row_id, sid = db.execute("SELECT id, provider_sid FROM outbox").fetchone()
        assert sent["TemplateId"] == cnsms.table()["handoff"]["tencent"] and sent["SessionContext"] == str(row_id)
        assert sent["PhoneNumberSet"] == ["+8613800009002"] and sent["SmsSdkAppId"] == TENCENT_APP
        assert sent["TemplateParamSet"][0].isdigit()  # the ticket number
        receipt = [{"user_receive_time": "2026-06-15 10:00:05", "nationcode": "86", "mobile": "13800009002",
                    "report_status": "FAIL", "errmsg": "MK:0001", "description": "用户关机", "sid": sid.removeprefix("tencent:")}]
        assert client.post(f"/cnsms/{SECRET}/tencent/report", json=receipt).get_json()["result"] == 0
        assert db.execute("SELECT status, error_code FROM outbox").fetchone() == ("undelivered", "MK:0001")


def test_the_daily_limit_per_number(tmp_path, db):
    client = client_for(tmp_path, cn_settings(str(tmp_path / "test.db"), cnsms_daily_limit=3))
    for seq, text in enumerate(["你好", "查报销", "门诊一年最多报多少", "住院花了3000"], start=1):
        aliyun_up(client, text, seq=seq)
    aliyun_up(client, "你好", phone="13800009002", seq=99)
    rows = db.execute("SELECT recipient, fields FROM outbox ORDER BY id").fetchall()
    keys = [(r, json.loads(f)["template"]) for r, f in rows]
    assert keys == [("13800009001", "help"), ("13800009001", "identity"), ("13800009001", "daily_limit"),
                    ("13800009002", "help")]


def test_opting_out_by_sms_is_confirmed_and_recorded(tmp_path, db):
    client = client_for(tmp_path, cn_settings(str(tmp_path / "test.db")))
    aliyun_up(client, "退订")
    assert db.execute("SELECT subscribed, via FROM subscriptions WHERE phone = '13800009001'").fetchone() == (0, "cnsms")
    made = cnsms.for_fields(json.loads(db.execute("SELECT fields FROM outbox").fetchone()[0]))
    assert made.key == "subscription" and "关闭" in made.text


def test_a_payment_notice_goes_as_a_templated_china_sms(county, db, tmp_path):
    path = str(tmp_path / "test.db")
    db.execute("UPDATE claims SET paid_date = '2026-06-10' WHERE claim_id = 'BCD1'")
    db.conn.commit()
    assert outbox.queue_payment(db, "BCD1")
    with FakeAliyun() as fake:
        worker.run(cn_settings(path, "aliyun", fake), path, until_idle=True)
        params = json.loads(fake.requests[0]["TemplateParam"])
        assert fake.requests[0]["TemplateCode"] == cnsms.table()["payment_notice"]["aliyun"]
    assert params == {"name": "杨*林", "month": "1", "place": "省人民医院住院", "amount": "35000",
                      "date": "2026年6月10日", "channel": "一卡通"}
    assert dict(db.execute("SELECT channel, status FROM outbox").fetchall()) == {"sms": "skipped", "cnsms": "submitted"}


def test_a_clerks_answer_by_china_sms(db, tmp_path):
    path = str(tmp_path / "test.db")
    short = outbox.queue_reply(db, channel="cnsms", recipient="13800009001", text="带发票到乡镇合管办", ref="ticket:5")
    long = outbox.queue_reply(db, channel="cnsms", recipient="13800009002", text="长" * 100, ref="ticket:6")
    with FakeAliyun() as fake:
        worker.run(cn_settings(path, "aliyun", fake), path, until_idle=True)
        by_phone = {r["PhoneNumbers"]: r for r in fake.requests}
    assert json.loads(by_phone["13800009001"]["TemplateParam"]) == {"ticket": "5", "answer": "带发票到乡镇合管办"}
    assert by_phone["13800009002"]["TemplateCode"] == cnsms.table()["ticket_answer_long"]["aliyun"]
    assert {short, long} == {r[0] for r in db.execute("SELECT id FROM outbox WHERE status = 'submitted'")}


@pytest.mark.parametrize("code, kind", [
    ("isv.MOBILE_NUMBER_ILLEGAL", "bad_number"), ("InvalidParameterValue.IncorrectPhoneNumber", "bad_number"),
    ("isv.BLACK_KEY_CONTROL_LIMIT", "opt_out"), ("FailedOperation.PhoneNumberInBlacklist", "opt_out"),
    ("isv.BUSINESS_LIMIT_CONTROL", "fail"), ("LimitExceeded.PhoneNumberDailyLimit", "fail"),
    ("Throttling.User", "retry_free"), ("InternalError.Timeout", "retry"), ("isp.SYSTEM_ERROR", "retry"),
    ("isv.SMS_TEMPLATE_ILLEGAL", "fail"),
])
def test_provider_codes_are_classified(code, kind):
    assert cnsms.classify(Result(code=code)).kind == kind


def test_a_refused_number_is_remembered(tmp_path, db):
    path = str(tmp_path / "test.db")
    with FakeAliyun() as fake:
        fake.script["13800009009"] = ["isv.MOBILE_NUMBER_ILLEGAL"]
        outbox.queue_reply(db, channel="cnsms", recipient="13800009009", text="答复", ref="ticket:9")
        worker.run(cn_settings(path, "aliyun", fake), path, until_idle=True)
    assert db.execute("SELECT phone FROM bad_numbers").fetchall() == [("13800009009",)]
    assert state.bound_phone(db, "13800009009") is None


def test_payment_period_notices_by_wechat_and_china_sms(county, db, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from xnh.broadcast import period
    from xnh.cli import cli

    state.bind(db, "wx:oFOLLOWER", "13800009001", "wechat")
    state.set_subscribed(db, "13800009002", False, "sms")
    db.conn.commit()
    counts = period.queue_period_notices(db, audience="enrolled=2026", actor="clerk1")
    assert counts == {"wechat": 1, "cnsms": 1, "skipped": 1}  # HHD003 has not joined in 2026
    rows = {r[0]: (r[1], r[2], json.loads(r[3])) for r in db.execute(
        "SELECT recipient, channel, status, fields FROM outbox WHERE kind = 'period'")}
    assert rows["wx:oFOLLOWER"][:2] == ("wechat", "pending") and rows["13800009002"][1] == "skipped"
    assert rows["13800009011"][2]["vars"] == {"year": "2027", "start": "11月1日", "end": "12月30日"}
    assert "缴费期" in db.execute("SELECT text FROM outbox WHERE recipient = '13800009011'").fetchone()[0]
    again = period.queue_period_notices(db, audience="enrolled=2026", actor="clerk1")
    assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'period'").fetchone()[0] == 3 and again["cnsms"] == 1
    with pytest.raises(period.PeriodError):
        period.queue_period_notices(db, audience="enrolled=2026", channels=("sms",), actor="clerk1")
    monkeypatch.setenv("XNH_DB", str(tmp_path / "test.db"))
    result = CliRunner().invoke(cli, ["broadcast", "period", "--audience", "enrolled=2026", "--channel", "cnsms"])
    assert result.exit_code == 0 and "cnsms=" in result.output
