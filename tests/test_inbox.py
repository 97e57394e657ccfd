"""The clerks' inbox (store/tickets.py, bot/console/tickets.py): oldest waiting first, paging, search by
phone, ticket number and words (full-width too), 我来处理, each answer's delivery state and why, a farmer's
reply within a day of an answer joining that ticket, and two clerks answering one ticket at once: one
answer recorded and sent, the other told."""
import threading

import pytest

from tests.test_console import ADMIN, CLERK, audit_actions, db_of, login, make_app, token
from xnh.store import db as store_db
from xnh.store import outbox, tickets


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "t.db")


@pytest.fixture
def client(app):
    client = app.test_client()
    login(client, CLERK)
    return client


def make_tickets(app, n: int, monkeypatch) -> list[int]:
    """n tickets from phones 1380000NNNN, one a minute from 08:00 (ticket i waits longest for i = 0)."""
    db = db_of(app)
    ids = []
    for i in range(n):
        monkeypatch.setenv("XNH_TODAY", f"2026-06-15T{8 + i // 60:02d}:{i % 60:02d}:00+08:00")
        with store_db.writing(db):
            ids.append(tickets.open_ticket(db, f"1380000{i:04d}", "sms", f"问题{i}:新农合卡的密码忘了怎么办"))
    monkeypatch.setenv("XNH_TODAY", "2026-06-15T12:00:00+08:00")
    db.close()
    return ids


def shown(page: str) -> list[int]:
    import re

    return [int(i) for i in re.findall(r'<tr data-id="(\d+)">', page)]


def test_oldest_first_in_pages_of_fifty(client, app, monkeypatch):
    ids = make_tickets(app, 120, monkeypatch)
    first = client.get("/console/tickets").get_data(as_text=True)
    assert shown(first) == ids[:50] and "共 120 个" in first and "第 1/3 页" in first
    assert "13800000000" not in first and "138****0000" in first  # phones masked
    third = client.get("/console/tickets?page=3").get_data(as_text=True)
    assert shown(third) == ids[100:]
    assert shown(client.get("/console/tickets?order=newest").get_data(as_text=True))[:2] == [ids[119], ids[118]]


@pytest.mark.parametrize("q, expect", [
    ("13800000007", [7]), ("0007", [7]), ("１３８０００００００７", [7]),  # full-width digits from a Chinese input method
    ("#8", [7]), ("问题9:", [9]), ("问题1 密码", [1] + list(range(10, 20))), ("没有这个词", []),
])
def test_search_by_phone_number_or_words(client, app, monkeypatch, q, expect):
    ids = make_tickets(app, 20, monkeypatch)
    got = shown(client.get("/console/tickets", query_string={"q": q, "status": "all"}).get_data(as_text=True))
    assert got == [ids[i] for i in expect]


def test_i_take_it_and_another_clerk_is_told(app, monkeypatch):
    (ticket,) = make_tickets(app, 1, monkeypatch)
    wang, li = app.test_client(), app.test_client()
    login(wang, CLERK)
    login(li, ADMIN)
    location = f"/console/tickets/{ticket}"
    assert wang.post(location + "/assign", data={"csrf_token": token(wang, location), "action": "take"}).status_code == 302
    assert 'id="assigned">wang<' in wang.get(location).get_data(as_text=True)
    told = li.post(location + "/assign", data={"csrf_token": token(li, location), "action": "take"})
    assert told.status_code == 409 and "已由 wang 处理" in told.get_data(as_text=True)
    taken = li.post(location + "/assign", data={"csrf_token": token(li, location), "action": "take_over"})
    assert taken.status_code == 302 and 'id="assigned">root<' in li.get(location).get_data(as_text=True)
    mine = wang.get("/console/tickets?status=mine").get_data(as_text=True)
    assert shown(mine) == []
    assert [a for a in audit_actions(app) if a[1] == "ticket_assign"] == [("wang", "ticket_assign"), ("root", "ticket_assign")]


def test_two_clerks_answering_at_once_one_answer_is_sent_the_other_told(app, monkeypatch):
    (ticket,) = make_tickets(app, 1, monkeypatch)
    wang, li = app.test_client(), app.test_client()
    login(wang, CLERK)
    login(li, ADMIN)
    location = f"/console/tickets/{ticket}"
    forms = {c: {"csrf_token": token(c, location), "seen_answers": "0", "answer": f"{name}的答复"}
             for c, name in ((wang, "王"), (li, "李"))}
    assert wang.post(location + "/answer", data=forms[wang]).status_code == 302
    second = li.post(location + "/answer", data=forms[li])
    assert second.status_code == 409 and "wang 已经回复了这个工单" in second.get_data(as_text=True)
    db = db_of(app)
    assert db.execute("SELECT text FROM outbox").fetchall() == [("王的答复",)]
    db.close()


def test_two_answers_racing_in_threads_never_both_go(app, monkeypatch):
    """The race itself, through the store in two threads on their own connections, twenty times."""
    ids = make_tickets(app, 20, monkeypatch)
    path = app.config["DB_PATH"]

    def answer(ticket, who, results):
        db = store_db.open_db(path)
        try:
            with store_db.writing(db):
                if tickets.mark_answered(db, ticket, f"{who}答", who, 0):
                    oid = outbox.queue_reply_row(db, channel="sms", recipient="13800000001", text=f"{who}答",
                                                 ref=tickets.answer_ref(ticket, 0))
                    tickets.add_answer(db, ticket, f"{who}答", who, oid)
                    results.append(who)
        finally:
            db.close()

    for ticket in ids:
        results: list = []
        threads = [threading.Thread(target=answer, args=(ticket, w, results)) for w in ("王", "李")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        db = db_of(app)
        sent = db.execute("SELECT text FROM outbox WHERE ref = ?", [f"ticket:{ticket}"]).fetchall()
        recorded = db.execute("SELECT answer, answers FROM handoff_tickets WHERE id = ?", [ticket]).fetchone()
        db.close()
        assert len(results) == 1 and sent == [(f"{results[0]}答",)] and recorded == (f"{results[0]}答", 1)


@pytest.mark.parametrize("status, reason, says", [
    ("pending", None, "待发送"), ("delivered", None, "已送达"),
    ("skipped", "bad number", "未发送:号码无效"), ("failed", "error 30008", "失败:平台错误码 30008"),
    ("unknown", "may have been sent: Twilio's message list could not be read", "结果不明"),
])
def test_each_answer_shows_its_delivery_state_and_why(client, app, monkeypatch, status, reason, says):
    (ticket,) = make_tickets(app, 1, monkeypatch)
    location = f"/console/tickets/{ticket}"
    client.post(location + "/answer", data={"csrf_token": token(client, location), "answer": "请到乡镇合管办办理。"})
    db = db_of(app)
    with store_db.writing(db):
        db.conn.execute("UPDATE outbox SET status = ?, reason = ?", [status, reason])
    db.close()
    page = client.get(location).get_data(as_text=True)
    assert says in page
    listed = client.get("/console/tickets?status=answered").get_data(as_text=True)
    assert "已回复 · " + says.split(":")[0] in listed
    if status == "unknown":
        oid = page.split('name="outbox" value="')[1].split('"')[0]
        client.post(location + "/resend", data={"csrf_token": token(client, location), "outbox": oid})
        db = db_of(app)
        assert db.execute("SELECT status FROM outbox").fetchone()[0] == "pending"
        db.close()


def test_a_reply_within_a_day_of_an_answer_joins_that_ticket(client, app, monkeypatch):
    from xnh.handlers.router import respond
    from xnh.message import Message

    (ticket,) = make_tickets(app, 1, monkeypatch)
    location = f"/console/tickets/{ticket}"
    client.post(location + "/answer", data={"csrf_token": token(client, location), "answer": "请带身份证到乡镇合管办。"})
    db = db_of(app)
    monkeypatch.setenv("XNH_TODAY", "2026-06-16T09:00:00+08:00")  # the next morning
    with store_db.writing(db):
        reply = respond(Message(text="没看懂,哪个合管办", sender="13800000000", channel="sms", phone="13800000000"), db)
    assert reply.intent == "handoff" and f"单号{ticket}" in reply.text and "答复您的工作人员" in reply.text
    t = tickets.ticket(db, ticket)
    assert t["status"] == "open" and t["waiting_since"].startswith("2026-06-16T09:00")
    assert [m["direction"] for m in tickets.thread(db, ticket)] == ["in", "out", "in"]
    # the next morning too, a question the bot can answer itself is answered at once (an estimate, a rate)
    with store_db.writing(db):
        own = respond(Message(text="住院花了3000能报多少", sender="13800000000", channel="sms", phone="13800000000"), db)
    assert own.intent == "estimate"
    # two days after the answer a message is the bot's again
    with store_db.writing(db):
        tickets.mark_answered(db, ticket, "在东山镇合管办。", "wang", 1)
    monkeypatch.setenv("XNH_TODAY", "2026-06-18T09:00:00+08:00")
    with store_db.writing(db):
        later = respond(Message(text="门诊报销比例是多少", sender="13800000000", channel="sms", phone="13800000000"), db)
    assert later.intent == "policy"
    db.close()
    page = client.get(location).get_data(as_text=True)
    assert "没看懂,哪个合管办" in page
    # the second answer goes out as its own outbox row
    db = db_of(app)
    assert db.execute("SELECT count(*) FROM ticket_messages WHERE ticket_id = ?", [ticket]).fetchone()[0] == 3
    db.close()
