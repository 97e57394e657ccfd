"""The Twilio adapter through Flask's test client, signed as Twilio signs (RequestValidator.compute_signature):
signatures good, bad, missing, over a tampered body, behind a proxy; retried MessageSids; TwiML escaping;
opt-out/opt-in; delivery callbacks; SMS part counting."""
import sqlite3
import threading
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from xnh.app import create_app
from xnh.bot import sms
from xnh.providers import segments
from xnh.store.db import message_db

TOKEN = "test-auth-token"
URL = "http://localhost/sms"


@pytest.fixture
def app(db, tmp_path):
    return create_app({"DB_PATH": str(tmp_path / "test.db"), "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_URL": None,
                       "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def form(body, sid="SM" + "1" * 32, frm="+8613700000001"):
    return {"From": frm, "To": "+15005550006", "Body": body, "MessageSid": sid, "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32, "NumMedia": "0"}


def sign(params, url=URL, token=TOKEN):
    return RequestValidator(token).compute_signature(url, params)


def post(client, params, signature=..., path="/sms", **kw):
    headers = {} if signature is None else {"X-Twilio-Signature": sign(params, "http://localhost" + path)
                                            if signature is ... else signature}
    return client.post(path, data=params, headers=headers, **kw)


def reply_of(resp) -> str:
    assert resp.status_code == 200, resp.data
    assert resp.mimetype == "text/xml"
    root = ET.fromstring(resp.data)
    assert root.tag == "Response"
    return "".join(root.find("Message").itertext())


def test_signed_request_gets_twiml_answer(client):
    assert "2400" in reply_of(post(client, form("住院花了3000能报多少")))


@pytest.mark.parametrize("signature", [None, "", "bm90LWEtc2lnbmF0dXJl", "ünïcödé", sign(form("x"), token="wrong")])
def test_missing_or_wrong_signature_is_refused(client, db, signature):
    resp = post(client, form("住院花了3000能报多少"), signature=signature)
    assert resp.status_code == 403
    assert db["processed_messages"].count == 0


def test_tampered_body_is_refused(client):
    params = form("查参合")
    signature = sign(params)
    params["Body"] = "退订"
    assert post(client, params, signature=signature).status_code == 403


def test_signature_over_another_url_is_refused(client):
    params = form("查参合")
    assert post(client, params, signature=sign(params, "http://localhost/other")).status_code == 403


def test_no_auth_token_configured_refuses_everything(tmp_path):
    app = create_app({"DB_PATH": str(tmp_path / "t.db"), "TWILIO_AUTH_TOKEN": None})
    params = form("查参合")
    assert post(app.test_client(), params).status_code == 403


def test_public_url_is_what_is_signed(tmp_path):
    app = create_app({"DB_PATH": str(tmp_path / "t.db"), "TWILIO_AUTH_TOKEN": TOKEN,
                      "PUBLIC_URL": "https://xnh.example.cn/"})
    client, params = app.test_client(), form("住院花了3000能报多少")
    public = "https://xnh.example.cn/sms"
    assert post(client, params, signature=sign(params, public)).status_code == 200
    assert post(client, form("查参合", sid="SM2"), signature=sign(form("查参合", sid="SM2"))).status_code == 403


def test_signature_over_the_url_with_its_default_port_is_accepted(tmp_path):
    app = create_app({"DB_PATH": str(tmp_path / "t.db"), "TWILIO_AUTH_TOKEN": TOKEN,
                      "PUBLIC_URL": "https://xnh.example.cn"})
    params = form("住院花了3000能报多少")
    signature = sign(params, "https://xnh.example.cn:443/sms")
    assert post(app.test_client(), params, signature=signature).status_code == 200


def test_query_string_is_part_of_the_signed_url(client):
    params = form("住院花了3000能报多少")
    good = sign(params, "http://localhost/sms?tenant=demo")
    assert client.post("/sms?tenant=demo", data=params, headers={"X-Twilio-Signature": good}).status_code == 200
    bad = sign(params, URL)
    assert client.post("/sms?tenant=demo", data=params, headers={"X-Twilio-Signature": bad}).status_code == 403


def test_retried_message_sid_is_processed_once_with_the_same_reply(client, db):
    params = form("人工", sid="SM" + "7" * 32)
    first, second = reply_of(post(client, params)), reply_of(post(client, params))
    assert first == second
    assert db["handoff_tickets"].count == 1
    assert db["processed_messages"].count == 1


def test_distinct_message_sids_are_each_processed(client, db):
    reply_of(post(client, form("人工", sid="SMa")))
    reply_of(post(client, form("新农合卡的密码忘了怎么办", sid="SMb")))
    assert db["handoff_tickets"].count == 2


def test_concurrent_deliveries_of_one_sid_run_the_handlers_once(app, db):
    params, replies = form("人工", sid="SMconcurrent"), []

    def deliver():
        replies.append(reply_of(post(app.test_client(), params)))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(replies)) == 1 and len(replies) == 4
    assert db["handoff_tickets"].count == 1


def test_a_claim_without_reply_is_answered(client, db):
    """A row without a reply (left by an older version's claim) does not block the message."""
    db["processed_messages"].insert({"message_sid": "SMstale", "sender": "13700000001", "reply": None, "at": 0.0})
    assert "2400" in reply_of(post(client, form("住院花了3000能报多少", sid="SMstale")))
    assert db["processed_messages"].get("SMstale")["reply"]


def test_a_locked_database_gets_503_and_the_retry_is_answered(app, client, db, tmp_path):
    """Another process holding the write lock (a long sync) past busy_timeout: 503 with Retry-After, nothing
    written; Twilio's retry after the lock is gone is answered."""
    other = sqlite3.connect(app.config["DB_PATH"], timeout=0)
    other.execute("BEGIN IMMEDIATE")
    with message_db(app.config["DB_PATH"]) as conn:
        conn.execute("PRAGMA busy_timeout = 50")
    params = form("住院花了3000能报多少", sid="SMlocked")
    resp = post(client, params)
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    other.rollback()
    other.close()
    assert "2400" in reply_of(post(client, params))
    assert db["processed_messages"].count == 1


def test_a_crash_while_answering_leaves_nothing_and_the_retry_answers(app, client, db, monkeypatch):
    """The claim, the conversation memory and the reply are one transaction: a failure half-way leaves no
    trace, and Twilio's retry of the same MessageSid is answered afresh."""
    real = sms.respond

    def half_way(message, conn):
        from xnh.store import state

        state.save_state(conn, message.sender, {"pending": "level", "total": "3000"})
        raise RuntimeError("crash after the first write")

    monkeypatch.setattr(sms, "respond", half_way)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    params = form("住院花了3000能报多少", sid="SMcrash")
    assert post(client, params).status_code == 500
    assert db["processed_messages"].count == 0
    assert db["conversations"].count == 0
    monkeypatch.setattr(sms, "respond", real)
    assert "2400" in reply_of(post(client, params))
    assert db["processed_messages"].count == 1


@pytest.mark.parametrize("raw, expect", [
    ("住院花了3000能报多少", "2400"),                # percent-encoded UTF-8
    ("住院 花了 3000 能报多少", "2400"),             # spaces (Twilio sends them as '+')
    ("住院花了3000能报多少&x=1", "2400"),            # '&' and '=' inside the text are escaped by the sender
])
def test_form_fields_decode_like_twilio_sends_them(client, raw, expect):
    params = form(raw, sid="SM" + str(abs(hash(raw))), frm="+86 137-0000-0001")
    assert expect in reply_of(post(client, params))


def test_oversized_body_is_refused_before_parsing(client):
    params = form("住院" * 600_000, sid="SMbig")
    assert post(client, params).status_code == 413


@pytest.mark.parametrize("body", ["<script>alert(1)</script>", "]]><Message>x</Message>", "a & b < c > d \" '",
                                  "\x00\x07控制字符\x1b", "住院花了3000能报多少<b>"])
def test_hostile_bodies_get_well_formed_twiml(client, body):
    resp = post(client, form(body, sid="SM" + str(abs(hash(body)))))
    text = reply_of(resp)
    assert text
    assert b"<script>" not in resp.data


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_twiml_carries_any_text(text):
    root = ET.fromstring(sms.twiml(text))
    got = "".join(root.find("Message").itertext())
    assert got == sms.xml_safe(text)


@pytest.mark.parametrize("word,intent_text,subscribed", [
    ("TD", "已退订", 0), ("退订", "已退订", 0), ("STOP", "已退订", 0), ("取消订阅", "已退订", 0), ("stop", "已退订", 0),
    ("订阅", "已订阅", 1), ("START", "已订阅", 1),
])
def test_opt_out_and_opt_in_are_confirmed_and_recorded(client, db, word, intent_text, subscribed):
    assert intent_text in reply_of(post(client, form(word, sid="SM-" + word)))
    assert db["subscriptions"].get("13700000001")["subscribed"] == subscribed


def test_opt_out_does_not_stop_answers(client):
    reply_of(post(client, form("TD", sid="SM1")))
    assert "2400" in reply_of(post(client, form("住院花了3000能报多少", sid="SM2")))


def test_reply_never_exceeds_1600_characters(client, monkeypatch):
    from xnh.message import Reply

    def long_reply(message, db):
        return Reply("policy", "policy", {}, text="报" * 5000)

    monkeypatch.setattr(sms, "respond", long_reply)
    assert len(reply_of(post(client, form("随便")))) == 1600


# -- delivery callbacks -------------------------------------------------------------------------------

def status(sid, state, code=None):
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": state, "AccountSid": "AC" + "0" * 32,
              "To": "+8613800000001", "From": "+15005550006"}
    if code:
        params["ErrorCode"] = code
    return params


@pytest.fixture
def sent(db):
    db["outbox"].insert({"recipient": "13800000001", "channel": "sms", "kind": "payment", "ref": "C1", "text": "…",
                         "status": "submitted", "provider_sid": "SMout1"}, pk="id")
    return lambda: db["outbox"].get(1)


@pytest.mark.parametrize("steps,final,code", [
    (["queued", "sent", "delivered"], "delivered", None),
    (["sent", "undelivered"], "undelivered", "30003"),
    (["sent", "undelivered"], "undelivered", "30005"),
    (["failed"], "failed", "30003"),
    (["delivered", "sent"], "delivered", None),  # a late 'sent' does not undo 'delivered'
])
def test_status_callbacks_update_the_message(client, db, sent, steps, final, code):
    for step in steps:
        params = status("SMout1", step, code if step == final else None)
        assert post(client, params, path="/sms/status").status_code == 204
    assert sent()["status"] == final
    assert sent()["error_code"] == code
    assert [e["status"] for e in db["delivery_events"].rows] == steps


def test_status_callback_needs_a_signature(client, sent):
    params = status("SMout1", "delivered")
    assert post(client, params, path="/sms/status", signature=None).status_code == 403
    assert post(client, params, path="/sms/status", signature=sign(params)).status_code == 403  # signed for /sms
    assert sent()["status"] == "submitted"


def test_status_callback_for_unknown_message_is_acknowledged(client, db):
    assert post(client, status("SMnobody", "delivered"), path="/sms/status").status_code == 204
    assert db["delivery_events"].count == 1


def test_status_callback_with_unknown_status_is_rejected(client, sent):
    assert post(client, status("SMout1", "exploded"), path="/sms/status").status_code == 400


# -- parts --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,encoding,parts", [
    ("", "GSM-7", 1),
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1),  # extension characters count two septets
    ("€" * 81, "GSM-7", 2),
    ("报" * 70, "UCS-2", 1),
    ("报" * 71, "UCS-2", 2),
    ("报" * 134, "UCS-2", 2),
    ("报" * 135, "UCS-2", 3),
    ("a" * 69 + "报", "UCS-2", 1),  # one Chinese character makes the whole text UCS-2
    ("a" * 70 + "报", "UCS-2", 2),
    ("😀" * 70, "UCS-2", 1),  # counted in code points
])
def test_segment_count(text, encoding, parts):
    got = segments.count(text)
    assert (got.encoding, got.segments) == (encoding, parts)


@pytest.mark.parametrize("n,expect", [(1600, 1600), (1601, 1600), (10, 10)])
def test_fit_caps_length(n, expect):
    out = segments.fit("报" * n)
    assert len(out) == expect
    assert out.endswith("…") == (n > 1600)


def test_healthz(client):
    resp = client.get("/healthz")
    got = resp.get_json()
    assert resp.status_code == 200 and got["status"] == "ok"
    assert got["schema"]["service"].startswith("m0") and got["schema"]["county"].startswith("m0")
    assert got["last_sync"] is None


def test_with_demo_on_messages_use_the_demo_database_until_real_data_is_synced(tmp_path):
    """As `xnh serve` runs it: the demo county answers until an export is synced into XNH_DB, then the real
    data does, from the next message on, without a restart; each database keeps its own MessageSids."""
    from xnh import sync
    from xnh.store import db as store_db

    path = str(tmp_path / "real.db")
    client = create_app({"DB_PATH": path, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_URL": None, "DEMO": True}).test_client()
    assert "郭*" in reply_of(post(client, form("查参合", sid="SMdemo", frm="+8613800000001")))  # a demo household
    export = tmp_path / "enrollment.csv"
    export.write_text("年度,参合证号,户号,姓名,性别,身份证号,与户主关系,联系电话,乡镇,村,人员类别,缴费金额,缴费日期,参合状态,更新时间\n"
                      "2026,HHX-01,HHX,张三,男,52990119560808001X,户主,13800000001,西河乡,西河村,普通,30.00,2025-11-12,"
                      "已参合,2025-12-30T18:00:00\n", encoding="utf-8")
    real = store_db.open_db(path)
    sync.run(real, "enrollment", export)
    second = reply_of(post(client, form("查参合", sid="SMreal", frm="+8613800000001")))
    assert "张*" in second and "郭*" not in second
    assert [r[0] for r in real.execute("select message_sid from processed_messages")] == ["SMreal"]
    demo_db = store_db.open_db(store_db.demo_path(path))
    assert [r[0] for r in demo_db.execute("select message_sid from processed_messages")] == ["SMdemo"]
    real.close()
    demo_db.close()
