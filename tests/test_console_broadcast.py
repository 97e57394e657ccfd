"""The console's campaigns and ticket inbox through Flask's test client: a live preview (count,
exclusions, samples, cost, time, blockers), create, send and cancel with the clerk's name in the audit
log; a ticket's answer queued in the outbox on the channel the question came from, once."""
import re

import pytest

from tests.conftest import shared_file
from tests.test_console import CLERK, audit_actions, db_of, login, make_app, token
from xnh import sync
from xnh.store import db as store_db
from xnh.store import state

TEXT = "{{ name }}您好,请于{{ deadline }}前缴纳{{ year }}年度新农合。"


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "t.db")
    db = store_db.open_db(app.config["DB_PATH"])
    sync.run(db, "enrollment", str(shared_file("data/enrollment.csv")))
    db.close()
    return app


@pytest.fixture
def client(app):
    client = app.test_client()
    login(client, CLERK)
    return client


def campaign_form(client, **fields):
    return {"name": "缴费提醒", "audience": "unpaid=2026", "text": TEXT, "channels": "sms",
            "window_start": "21:00", "window_end": "08:00",
            "csrf_token": token(client, "/console/campaigns/new"), **fields}


def test_the_live_preview_shows_count_samples_cost_and_time(client):
    page = client.post("/console/campaigns/preview", data=campaign_form(client)).get_data(as_text=True)
    assert re.search(r'id="pv-count">7<', page) and 'id="pv-cost">0.35<' in page
    assert page.count('class="sample"') == 3 and "年度新农合" in page and "{{" not in page
    assert 'id="pv-segments">1<' in page and "秒" in page and "blockers" not in page


@pytest.mark.parametrize("fields, says", [
    ({"audience": "unpaid=2026 colour=red"}, "colour"),
    ({"audience": "township=没有这个镇"}, "收件人为空"),
    ({"text": "{{ name }" + "很长" * 400}, ""),
])
def test_the_preview_shows_what_blocks_a_campaign(client, fields, says):
    page = client.post("/console/campaigns/preview", data=campaign_form(client, **fields)).get_data(as_text=True)
    assert 'class="blockers"' in page and says in page
    created = client.post("/console/campaigns/new", data=campaign_form(client, action="create", **fields))
    assert created.status_code == 400  # nothing blocked is created


def test_create_send_cancel_from_the_console(client, app):
    got = client.post("/console/campaigns/new", data=campaign_form(client, action="create"))
    assert got.status_code == 302
    location = got.headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert 'data-status="draft"' in page and 'id="pv-count">7<' in page and 'id="send"' in page
    assert "缴费提醒" in client.get("/console/campaigns").get_data(as_text=True)
    assert client.post(location + "/send", data={"csrf_token": token(client, location)}).status_code == 302
    page = client.get(location).get_data(as_text=True)
    assert 'data-status="sending"' in page and 'data-status="pending"' in page and "data-poll=" in page
    assert "发送前预览" not in page  # the preview (a read of the whole audience) only before sending
    assert 'id="send"' not in page  # sent once
    assert client.post(location + "/cancel", data={"csrf_token": token(client, location)}).status_code == 302
    page = client.get(location).get_data(as_text=True)
    assert 'data-status="cancelled"' in page and "data-poll=" not in page
    db = db_of(app)
    assert db.execute("select status, count(*) from outbox group by status").fetchall() == [("cancelled", 7)]
    db.close()
    actions = [a for a in audit_actions(app) if a[1].startswith("campaign_")]
    assert actions == [("wang", "campaign_create"), ("wang", "campaign_send"), ("wang", "campaign_cancel")]


def test_a_campaign_that_does_not_exist_is_404(client):
    assert client.get("/console/campaigns/999").status_code == 404
    assert client.post("/console/campaigns/999/send", data={"csrf_token": token(client, "/console/")}).status_code == 404


@pytest.mark.parametrize("sender, channel, recipient", [
    ("13800000001", "sms", "13800000001"),
    ("tg:555", "telegram", "tg:555"),
])
def test_a_ticket_is_answered_on_its_own_channel_once(client, app, sender, channel, recipient):
    db = db_of(app)
    ticket = state.open_ticket(db, sender, channel, "新农合卡的密码忘了怎么办")
    db.conn.commit()
    db.close()
    inbox = client.get("/console/tickets").get_data(as_text=True)
    assert "新农合卡的密码忘了怎么办" in inbox
    location = f"/console/tickets/{ticket}"
    answer = {"answer": "请带身份证到乡镇合管办重置密码。", "csrf_token": token(client, location)}
    assert client.post(location + "/answer", data=answer).status_code == 302
    again = {"answer": "第二次回复", "csrf_token": token(client, location), "seen_answers": "0"}
    refused = client.post(location + "/answer", data=again)
    assert refused.status_code == 409 and "wang 已经回复了这个工单" in refused.get_data(as_text=True)
    db = db_of(app)
    rows = db.execute("select kind, ref, recipient, channel, text, status from outbox").fetchall()
    assert rows == [("reply", f"ticket:{ticket}", recipient, channel, "请带身份证到乡镇合管办重置密码。", "pending")]
    assert db.execute("select status, answer, answered_by from handoff_tickets").fetchone() == (
        "answered", "请带身份证到乡镇合管办重置密码。", "wang")
    db.close()
    assert "请带身份证到乡镇合管办重置密码" in client.get(location).get_data(as_text=True)
    assert "新农合卡的密码" not in client.get("/console/tickets").get_data(as_text=True)  # open ones only
    assert [a for a in audit_actions(app) if a[1] == "ticket_answer"] == [("wang", "ticket_answer")]
    assert ("wang", "ticket_answer_refused") in audit_actions(app)


def test_an_empty_answer_is_refused(client, app):
    db = db_of(app)
    ticket = state.open_ticket(db, "13800000001", "sms", "问题")
    db.conn.commit()
    db.close()
    location = f"/console/tickets/{ticket}"
    got = client.post(location + "/answer", data={"answer": "  ", "csrf_token": token(client, location)})
    assert got.status_code == 400
    db = db_of(app)
    assert db.execute("select count(*) from outbox").fetchone()[0] == 0
    db.close()


def test_a_paused_campaign_is_resumed_from_its_page(client, app):
    location = client.post("/console/campaigns/new", data=campaign_form(client, action="create")).headers["Location"]
    campaign_id = int(location.rsplit("/", 1)[1])
    db = db_of(app)
    from xnh.store import campaigns as store_campaigns

    store_campaigns.pause(db, campaign_id, "30007 ×5")
    db.conn.commit()
    db.close()
    page = client.get(location).get_data(as_text=True)
    assert "30007 ×5" in page and 'id="resume"' in page
    assert client.post(location + "/resume", data={"csrf_token": token(client, location)}).status_code == 302
    assert 'id="resume"' not in client.get(location).get_data(as_text=True)
    assert ("wang", "campaign_resume") in audit_actions(app)


def test_rows_of_unknown_fate_are_listed_in_chinese_and_resent_by_a_clerk(client, app):
    client.post("/console/campaigns/new", data=campaign_form(client, action="create"))
    db = db_of(app)
    from xnh.broadcast import campaigns
    from xnh.store import outbox

    cid = campaigns.list_campaigns(db)[0]["id"]
    campaigns.send(db, cid, actor="t")
    row = outbox.due(db, {"sms": 10})[0]
    outbox.claim_row(db, "gone:1:x", row, text="x", parts=1, rate=10)
    with store_db.writing(db):
        outbox.mark_unknown(db, row["id"], "may have been sent: Twilio's message list could not be read: 500")
    page = client.get(f"/console/campaigns/{cid}").get_data(as_text=True)
    assert "发送结果不明" in page and "无法向平台核对" in page and "may have been sent" not in page
    assert row["recipient"] not in page and row["recipient"][:3] + "****" in page  # the phone masked
    client.post(f"/console/campaigns/{cid}/resend", data={"csrf_token": token(client, f"/console/campaigns/{cid}")})
    assert db.execute("SELECT status FROM outbox WHERE id = ?", [row["id"]]).fetchone()[0] == "pending"
    assert ("wang", "outbox_resend") in audit_actions(app)
    db.close()


def test_a_campaign_page_polls_for_nothing_while_nothing_changes(client, app):
    import re as re_

    location = client.post("/console/campaigns/new", data=campaign_form(client, action="create")).headers["Location"]
    client.post(location + "/send", data={"csrf_token": token(client, location)})
    page = client.get(location).get_data(as_text=True)
    poll, drawn = re_.search(r'data-poll="([^"]+)" data-token="([^"]+)"', page).groups()
    assert client.get(poll, headers={"If-None-Match": f'"{drawn}"'}).status_code == 304
    assert client.get(poll, headers={"If-None-Match": f'"{drawn}"'}).status_code == 304
    db = db_of(app)
    from xnh.store import outbox

    row = outbox.due(db, {"sms": 10})[0]
    outbox.claim_row(db, "w", row, text="x", parts=1, rate=10)  # the worker moves one row on
    db.close()
    changed = client.get(poll, headers={"If-None-Match": f'"{drawn}"'})
    assert changed.status_code == 200 and changed.get_json()["token"] != drawn


def test_the_audience_is_chosen_in_a_chinese_form_full_width_accepted(client):
    page = client.get("/console/campaigns/new").get_data(as_text=True)
    assert 'id="a-township"' in page and "未缴费" in page and "人员类别" in page
    form = campaign_form(client, audience="", year="２０２６", paid="unpaid")
    got = client.post("/console/campaigns/preview", data=form).get_data(as_text=True)
    assert 'id="pv-count">7<' in got
    created = client.post("/console/campaigns/new", data={**form, "action": "create",
                                                           "csrf_token": token(client, "/console/campaigns/new")})
    listed = client.get("/console/campaigns").get_data(as_text=True)
    assert created.status_code == 302 and "2026年未缴费" in listed and "unpaid=" not in listed


def test_notices_and_answers_of_unknown_fate_are_listed_and_resent(client, app):
    db = db_of(app)
    from xnh.store import outbox

    oid = outbox.queue_reply(db, channel="sms", recipient="13800000001", text="您的答复", ref="ticket:1")
    row = outbox.due(db, {"sms": 10})[0]
    outbox.claim_row(db, "gone:1:x", row, text="您的答复", parts=1, rate=10)
    with store_db.writing(db):
        outbox.mark_unknown(db, oid, "no way to ask sms whether it got the message (its worker stopped)")
    db.close()
    page = client.get("/console/campaigns").get_data(as_text=True)
    assert "结果不明的通知和答复" in page and "工单答复" in page and "138****0001" in page
    client.post("/console/outbox/resend", data={"csrf_token": token(client, "/console/campaigns"), "outbox": str(oid)})
    db = db_of(app)
    assert db.execute("SELECT status FROM outbox WHERE id = ?", [oid]).fetchone()[0] == "pending"
    db.close()
