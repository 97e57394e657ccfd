"""The WeChat official account: /wechat through Flask's test client, signed as WeChat signs (sha1 of the
sorted token, timestamp, nonce), plain and safe mode (AES, msg_signature); retries by MsgId; `]]>` in a
reply; voice, images, events, the menu's clicks; binding by 查询 身份证号 姓名. Outbound through the outbox
against the local fake API (tests/fake_wechat.py): customer-service messages and their window, a payment
notice as a template message and its delivery event, the token shared through the database and fetched
again when WeChat refuses it, the menu creation call."""
import time
import xml.etree.ElementTree as ET

import pytest
from wechatpy.crypto import WeChatCrypto

from tests.conftest import put
from tests.fake_wechat import APP_ID, SECRET, FakeWeChat
from xnh.app import create_app
from xnh.bot import wechat
from xnh.broadcast import worker
from xnh.providers import wechat as provider
from xnh.settings import Settings
from xnh.store import outbox, state
from xnh.store import wechat as store

TOKEN = "wechat-test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat gives it
OPENID, ACCOUNT = "oUSER-123_abc", "gh_0123456789ab"
msg_ids = iter(range(10**15, 10**16))


@pytest.fixture
def app(db, tmp_path):
    return create_app({"DB_PATH": str(tmp_path / "test.db"), "WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APP_ID,
                       "WECHAT_AES_KEY": AES_KEY, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def signed(token=TOKEN, timestamp=None, nonce="n0nce"):
    timestamp = timestamp or str(int(time.time()))
    return {"signature": wechat.sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


def text_xml(content, msg_id=None, openid=OPENID):
    msg_id = next(msg_ids) if msg_id is None else msg_id
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def other_xml(kind, extra="", openid=OPENID, create=None, msg_id=True):
    create = create or int(time.time())
    mid = f"<MsgId>{next(msg_ids)}</MsgId>" if msg_id else ""
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>{extra}{mid}</xml>")


def event_xml(event, key="", openid=OPENID, create=None, extra=""):
    return other_xml("event", f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey>{extra}",
                     openid=openid, create=create, msg_id=False)


def post(client, xml, params=None):
    return client.post("/wechat", query_string=signed() if params is None else params, data=xml.encode(), content_type="text/xml")


def reply_of(response) -> dict:
    assert response.status_code == 200, response.data
    root = ET.fromstring(response.data)
    return {child.tag: child.text for child in root}


def say(client, text, openid=OPENID) -> str:
    return reply_of(post(client, text_xml(text, openid=openid)))["Content"]


# -- the server check and the signature ---------------------------------------------------------------------

def test_the_server_check_echoes_echostr_only_with_the_right_signature(client):
    ok = client.get("/wechat", query_string={**signed(), "echostr": "4213398671"})
    assert ok.status_code == 200 and ok.data == b"4213398671"
    params = signed()
    for bad in ({**params, "signature": "0" * 40}, {**signed(token="another-token")},
                {k: v for k, v in params.items() if k != "signature"}, {**params, "nonce": "other"}):
        assert client.get("/wechat", query_string={**bad, "echostr": "4213398671"}).status_code == 403


def test_the_signature_is_sha1_of_the_sorted_token_timestamp_and_nonce():
    import hashlib

    assert wechat.sign(TOKEN, "1700000000", "abc") == hashlib.sha1(
        "".join(sorted([TOKEN, "1700000000", "abc"])).encode()).hexdigest()


def test_without_a_token_wechat_is_off(tmp_path, db):
    off = create_app({"DB_PATH": str(tmp_path / "test.db"), "WECHAT_TOKEN": None, "TESTING": True}).test_client()
    assert off.get("/wechat", query_string={**signed(), "echostr": "1"}).status_code == 404
    assert post(off, text_xml("你好")).status_code == 404


def test_a_text_message_gets_a_passive_reply_to_its_sender(client):
    reply = reply_of(post(client, text_xml("住院花了3000能报多少")))
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT and reply["MsgType"] == "text"
    assert "估算" in reply["Content"] and "3000" in reply["Content"]


@pytest.mark.parametrize("params", [
    {"signature": "f" * 40, "timestamp": "1700000000", "nonce": "x"},  # forged
    {},  # unsigned
])
def test_a_forged_or_missing_signature_is_403_and_nothing_runs(client, app, params):
    assert post(client, text_xml("查报销", msg_id=1), params).status_code == 403
    with app.app_context():
        from xnh.bot import request_db
        assert store.reply_for(request_db.get_db(), "1") is None


def test_not_xml_is_400(client):
    assert client.post("/wechat", query_string=signed(), data=b"hello", content_type="text/xml").status_code == 400


# -- retries ------------------------------------------------------------------------------------------------

def test_a_retry_of_the_same_msgid_gets_the_same_reply_without_answering_again(client, monkeypatch):
    calls = []
    real = wechat.respond

    def counting(message, db):
        calls.append(message.text)
        return real(message, db)

    monkeypatch.setattr(wechat, "respond", counting)
    xml = text_xml("门诊一年最多报多少", msg_id=424242)
    first, second, third = (post(client, xml).data for _ in range(3))
    assert first == second == third and len(calls) == 1
    assert post(client, text_xml("门诊一年最多报多少", msg_id=424243)).status_code == 200 and len(calls) == 2


def test_an_event_retry_is_recognised_by_sender_and_create_time(client):
    xml = event_xml("subscribe", create=1700000123)
    assert post(client, xml).data == post(client, xml).data


# -- safe mode ----------------------------------------------------------------------------------------------

def test_safe_mode_decrypts_the_message_and_encrypts_the_reply(client):
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    timestamp, nonce = str(int(time.time())), "safe-nonce"
    envelope = crypto.encrypt_message(text_xml("门诊一年最多报多少"), nonce, timestamp)
    encrypted = ET.fromstring(envelope)
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted.find('Encrypt').text}]]></Encrypt></xml>")
    params = {**signed(timestamp=timestamp, nonce=nonce), "encrypt_type": "aes",
              "msg_signature": encrypted.find("MsgSignature").text}
    answer = post(client, body, params)
    assert answer.status_code == 200
    outer = ET.fromstring(answer.data)
    inner = crypto.decrypt_message(answer.data, outer.find("MsgSignature").text, outer.find("TimeStamp").text,
                                   outer.find("Nonce").text)
    reply = {child.tag: child.text for child in ET.fromstring(inner)}
    assert reply["ToUserName"] == OPENID and reply["MsgType"] == "text" and "门诊" in reply["Content"]
    # a wrong msg_signature (the body tampered with, or not WeChat's) is refused
    assert post(client, body, {**params, "msg_signature": "0" * 40}).status_code == 403


def test_safe_mode_without_the_key_is_refused(tmp_path, db):
    bare = create_app({"DB_PATH": str(tmp_path / "test.db"), "WECHAT_TOKEN": TOKEN, "WECHAT_AES_KEY": None,
                       "TESTING": True}).test_client()
    assert post(bare, "<xml><Encrypt>x</Encrypt></xml>", {**signed(), "encrypt_type": "aes",
                                                           "msg_signature": "x"}).status_code == 403


# -- what the reply says --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["答案里有]]>这个", "]]>", "a]]>b]]>c", "<xml>&amp;</xml>", "换行\r\n和\x07控制符"])
def test_cdata_end_and_xml_characters_in_a_reply_are_made_safe(client, monkeypatch, text):
    from xnh.message import Reply

    def fixed(message, db):
        return Reply("help", "help", {}, text=text)

    monkeypatch.setattr(wechat, "respond", fixed)
    got = reply_of(post(client, text_xml("随便")))["Content"]
    assert got == text.replace("\r\n", "\n").replace("\x07", "")


def test_a_long_reply_is_cut_to_wechats_2048_bytes():
    cut = provider.fit("报" * 1000, 2048)
    assert len(cut.encode("utf-8")) <= 2048 and cut.endswith("…")
    assert provider.fit("短", 2048) == "短"


def test_voice_with_recognition_is_answered_like_the_same_text(client):
    typed = say(client, "住院花了三千能报多少", openid="oVOICE1")
    spoken = reply_of(post(client, other_xml("voice", "<MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]>"
                                                      "</Format><Recognition><![CDATA[住院花了三千能报多少]]></Recognition>",
                                             openid="oVOICE2")))["Content"]
    assert typed == spoken and "3000" in spoken


def test_voice_without_recognition_asks_to_type_or_call(client):
    got = reply_of(post(client, other_xml("voice", "<MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]>"
                                                   "</Format><Recognition><![CDATA[]]></Recognition>")))["Content"]
    assert "打字" in got and "合管办" in got


@pytest.mark.parametrize("kind, extra", [
    ("image", "<PicUrl><![CDATA[http://x/y.jpg]]></PicUrl><MediaId><![CDATA[m]]></MediaId>"),
    ("location", "<Location_X>23.1</Location_X><Location_Y>113.3</Location_Y><Scale>20</Scale>"
                 "<Label><![CDATA[x]]></Label>"),
    ("video", "<MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId>"),
    ("emotion", ""),  # a kind wechatpy does not know (a sticker)
])
def test_images_stickers_and_other_media_get_a_short_help(client, kind, extra):
    got = reply_of(post(client, other_xml(kind, extra)))["Content"]
    assert "文字和语音" in got and len(got) < 120


def test_follow_welcomes_and_unfollow_forgets_the_binding(client, app):
    assert "欢迎关注" in reply_of(post(client, event_xml("subscribe")))["Content"]
    with app.app_context():
        from xnh.bot import request_db
        db = request_db.get_db()
        state.bind(db, f"wx:{OPENID}", "13800009001", "wechat")
        db.conn.commit()
    gone = post(client, event_xml("unsubscribe"))
    assert gone.status_code == 200 and gone.data == b"success"
    with app.app_context():
        from xnh.bot import request_db
        db = request_db.get_db()
        assert state.bound_phone(db, f"wx:{OPENID}") is None and not store.is_following(db, OPENID)


@pytest.mark.parametrize("key, expect", [
    ("estimate", "花了多少钱"), ("policy", "门诊一年最多报多少"), ("claims", "身份证号"), ("enrollment", "身份证号"),
    ("human", "单号"), ("retired-key", "新农合助手"),
])
def test_menu_clicks(client, key, expect):
    assert expect in reply_of(post(client, event_xml("CLICK", key)))["Content"]


# -- binding ------------------------------------------------------------------------------------------------

def test_binding_by_the_identity_check(client, county):
    first = say(client, "查报销")
    assert "查询 身份证号 姓名" in first and "杨" not in first
    proved = say(client, "查询 52990119560808001X 杨树林")
    assert "杨*林" in proved and "已核对身份并绑定到138****9001" in proved
    later = say(client, "查参合")  # no new proof: the binding answers as from the member's phone
    assert "杨*林" in later and "身份证号" not in later
    assert "杨*林" not in say(client, "查参合", openid="oSOMEONE-ELSE")


@pytest.mark.parametrize("text", ["查询 52990119560808001X 张三", "查询 529901195608080011 杨树林"])
def test_a_failed_identity_check_binds_nothing(client, county, app, text):
    got = say(client, text)
    assert "绑定" not in got and "杨*林" not in got
    with app.app_context():
        from xnh.bot import request_db
        assert state.bound_phone(request_db.get_db(), f"wx:{OPENID}") is None


# -- outbound: the fake API ----------------------------------------------------------------------------------

@pytest.fixture
def fake():
    with FakeWeChat() as f:
        yield f


def wx_settings(path, fake):
    return Settings(db_path=path, wechat_app_id=APP_ID, wechat_app_secret=SECRET, wechat_api_base=fake.base)


def run_worker(path, fake):
    return worker.run(wx_settings(path, fake), path, until_idle=True)


def test_a_clerks_answer_goes_as_a_customer_service_message_inside_the_window(client, db, fake, tmp_path):
    path = str(tmp_path / "test.db")
    say(client, "人工")  # the follower writes: a window opens
    row = outbox.queue_reply(db, channel="wechat", recipient=f"wx:{OPENID}", text="您好,门诊报销带发票和一卡通。",
                             ref="ticket:1")
    assert run_worker(path, fake) == 1
    assert fake.sent("message/custom/send") == [
        {"touser": OPENID, "msgtype": "text", "text": {"content": "您好,门诊报销带发票和一卡通。"}}]
    assert db.execute("SELECT status FROM outbox WHERE id = ?", [row]).fetchone()[0] == "sent"


def test_outside_the_window_no_call_is_made_and_the_row_says_why(db, fake, tmp_path):
    path = str(tmp_path / "test.db")
    with db.conn:
        store.note_interaction(db, "oOLD", "message", now=time.time() - 49 * 3600)
    never = outbox.queue_reply(db, channel="wechat", recipient="wx:oNEVER", text="答复", ref="ticket:2")
    old = outbox.queue_reply(db, channel="wechat", recipient="wx:oOLD", text="答复", ref="ticket:3")
    run_worker(path, fake)
    assert fake.sent("message/custom/send") == []
    reasons = dict(db.execute("SELECT id, reason FROM outbox WHERE id IN (?, ?)", [never, old]).fetchall())
    assert reasons == {never: "not following the official account",
                       old: "outside WeChat's 48-hour customer-service window"}


def test_the_window_counts_five_messages_after_a_message_and_three_after_a_click(db):
    with db.conn:
        store.note_interaction(db, "oA", "message")
        for _ in range(5):
            assert store.cs_allowance(db, "oA") is None
            store.note_cs_sent(db, "oA")
        assert "quota" in store.cs_allowance(db, "oA")
        store.note_interaction(db, "oB", "event")
        for _ in range(3):
            assert store.cs_allowance(db, "oB") is None
            store.note_cs_sent(db, "oB")
        assert store.cs_allowance(db, "oB") is not None
        assert store.cs_allowance(db, "oB", now=time.time() + 61) is not None


def test_wechat_refusals_are_classified(db, fake, tmp_path, client):
    path = str(tmp_path / "test.db")
    say(client, "人工")
    fake.script[OPENID] = [45015]
    row = outbox.queue_reply(db, channel="wechat", recipient=f"wx:{OPENID}", text="答复", ref="ticket:4")
    run_worker(path, fake)
    assert db.execute("SELECT status, reason FROM outbox WHERE id = ?", [row]).fetchone() == \
        ("failed", "outside WeChat's 48-hour window (45015)")


def paid_recently(db):
    db.execute("UPDATE claims SET paid_date = '2026-06-10' WHERE claim_id = 'BCD1'")  # an older payment is skipped
    db.conn.commit()


def test_a_payment_notice_goes_as_a_template_message_through_the_outbox(county, db, fake, tmp_path, client):
    path = str(tmp_path / "test.db")
    paid_recently(db)
    say(client, "查询 52990119560808001X 杨树林")  # binds the follower to 13800009001
    assert outbox.queue_payment(db, "BCD1")
    run_worker(path, fake)
    sent = fake.sent("message/template/send")
    assert len(sent) == 1 and sent[0]["touser"] == OPENID
    assert sent[0]["template_id"] == provider.templates()["payment_notice"]["template_id"]
    data = sent[0]["data"]
    assert data["keyword1"]["value"] == "35000元" and "杨*林" in data["first"]["value"]
    assert data["keyword2"]["value"] == "2026年6月10日"
    rows = dict(db.execute("SELECT channel, status FROM outbox WHERE kind = 'payment' AND ref = 'BCD1'").fetchall())
    assert rows == {"sms": "skipped", "wechat": "submitted"}
    sid = db.execute("SELECT provider_sid FROM outbox WHERE channel = 'wechat'").fetchone()[0]
    # WeChat reports the delivery with an event on /wechat
    finished = event_xml("TEMPLATESENDJOBFINISH", extra=f"<MsgID>{sid.removeprefix('wxtpl:')}</MsgID>"
                                                          "<Status><![CDATA[success]]></Status>")
    assert post(client, finished).data == b"success"
    assert db.execute("SELECT status FROM outbox WHERE channel = 'wechat'").fetchone()[0] == "delivered"


def test_an_unbound_phone_keeps_its_sms_notice(county, db, fake, tmp_path):
    paid_recently(db)
    assert outbox.queue_payment(db, "BCD1")
    run_worker(str(tmp_path / "test.db"), fake)
    assert fake.sent("message/template/send") == []
    assert db.execute("SELECT channel, status FROM outbox WHERE kind = 'payment'").fetchall() == [("sms", "pending")]


def test_every_notice_template_fits_wechats_limits():
    data = {"name": "欧阳*明", "month": 12, "hospital": "宁波市北仑区人民医院", "visit": "住院", "amount": "123456.78",
            "paid_date": "2026-12-31", "channel": "一卡通", "year": 2027, "from": "11月1日", "until": "12月30日"}
    for name in provider.templates():
        assert provider.notice_data(name, data)
    with pytest.raises(provider.NoticeProblem):
        provider.notice_data("payment_notice", {**data, "channel": "很长" * 101})


def test_the_token_is_shared_through_the_database_and_fetched_again_when_refused(db, fake, tmp_path):
    path = str(tmp_path / "test.db")
    one = provider.WeChatSender(wx_settings(path, fake), ledger=store.Ledger(path))
    two = provider.WeChatSender(wx_settings(path, fake), ledger=store.Ledger(path))  # another process
    with db.conn:
        store.note_interaction(db, "oT", "message")
    assert one.send({"id": 1, "recipient": "wx:oT", "text": "一", "fields": None}).ok
    assert two.send({"id": 2, "recipient": "wx:oT", "text": "二", "fields": None}).ok
    assert fake.token_calls == 1
    assert store.token(db, APP_ID)[0] == fake.current
    fake.expire_tokens()  # WeChat says 40001: drop it, fetch again, send once more
    assert two.send({"id": 3, "recipient": "wx:oT", "text": "三", "fields": None}).ok
    assert fake.token_calls == 2 and len(fake.sent("message/custom/send")) == 4  # the refused call, then again


def test_the_menu_is_created_through_the_api(db, fake, tmp_path):
    path = str(tmp_path / "test.db")
    assert provider.create_menu(wx_settings(path, fake), store.Ledger(path))["errcode"] == 0
    menu = fake.sent("menu/create")[0]
    names = [b["name"] for b in menu["button"]] + [s["name"] for b in menu["button"] for s in b.get("sub_button", [])]
    assert {"报销估算", "政策问答", "查参合", "查报销", "人工服务"} <= set(names)
    keys = {b.get("key") for b in menu["button"]} | {s["key"] for b in menu["button"] for s in b.get("sub_button", [])}
    assert keys - {None} == set(wechat.MENU_WORDS) | set(wechat.MENU_PROMPTS)


def test_put_token_keeps_the_later_one(db):
    with db.conn:
        store.put_token(db, APP_ID, "A", 2000.0)
        store.put_token(db, APP_ID, "B", 1000.0)  # an older fetch arriving late
    assert store.token(db, APP_ID) == ("A", 2000.0)
    put(db, "meta", {"name": "x", "value": "y"})  # the helper still works alongside


def test_xnh_wechat_menu(tmp_path, fake, monkeypatch):
    from click.testing import CliRunner

    from xnh.cli import cli

    for name, value in {"XNH_DB": str(tmp_path / "m.db"), "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET,
                        "WECHAT_API_BASE": fake.base}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["wechat", "menu"])
    assert result.exit_code == 0 and "menu created" in result.output and len(fake.sent("menu/create")) == 1
    monkeypatch.delenv("WECHAT_APP_SECRET")
    refused = CliRunner().invoke(cli, ["wechat", "menu"])
    assert refused.exit_code == 2 and "WECHAT_APP_SECRET" in refused.output
