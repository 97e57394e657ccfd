"""The question radar (xnh/radar.py) and the office's own answers (store/local_answers.py): tickets grouped
by what they ask (a partial answer's topic and points, else likeness), biggest and oldest first with their
villages; one answer reaching everyone in a group through the outbox; an admin saving it as a local entry
and the bot answering the next such question itself with its source; entries listed, edited, retired,
audited and exported as the knowledge base's TOML."""
import tomllib

import pytest

from tests.conftest import put
from tests.test_console import ADMIN, CLERK, audit_actions, login, make_app, token
from xnh import radar
from xnh.handlers import likeness
from xnh.handlers.router import respond
from xnh.message import Message
from xnh.store import db as store_db
from xnh.store import local_answers

CHRONIC = ["慢性病门诊申请下来要多久", "慢病申请要等多长时间才批", "慢性病申请多少天能下来"]  # chronic_disease + time
DRUNK = ["饮酒过量造成的酒精中毒保险报销吗", "喝酒喝多了酒精中毒住院能报吗"]  # nothing known: alike
OTHER = ["先天性房间隔缺损能不能报医保？"]


def ask(db, text, phone):
    with store_db.writing(db):
        return respond(Message(text=text, sender=phone, channel="sms", phone=phone), db)


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "t.db")


@pytest.fixture
def asked(app):
    """Seven farmers asked: three the chronic-disease time, two about drunkenness, one something else; the
    phones of the first two are in the county data (东山镇 村一, 西河乡 西河村)."""
    db = store_db.open_db(app.config["DB_PATH"])
    for phone, town, village in (("13900000001", "东山镇", "村一"), ("13900000002", "西河乡", "西河村")):
        put(db, "members", {"member_id": phone, "household_id": phone, "name": "王五", "phone": phone,
                            "township": town, "village": village, "relation": "户主"})
    texts = CHRONIC + DRUNK + OTHER
    replies = [ask(db, text, f"139000000{i + 1:02d}") for i, text in enumerate(texts)]
    db.close()
    return replies


def test_likeness_puts_rewordings_together_and_other_questions_apart():
    assert likeness.likeness(*DRUNK) >= likeness.ALIKE
    assert likeness.likeness("新农合卡密码忘了怎么办", "合作医疗卡的密码忘记了咋办") >= likeness.ALIKE
    for a, b in [("新农合卡密码忘了怎么办", "医保卡丢了怎么补办"), (DRUNK[0], OTHER[0]),
                 ("农村能买些什么保险？", "1个人是否可以享受职工保险和农保"), ("怎么办", "咋办")]:
        assert likeness.likeness(a, b) < likeness.ALIKE, (a, b)


def test_the_radar_groups_by_what_is_asked_biggest_first_with_villages(app, asked):
    assert [r.intent for r in asked] == ["policy"] * 3 + ["handoff"] * 3
    db = store_db.open_db(app.config["DB_PATH"])
    groups = radar.groups(db)
    db.close()
    assert [(g.size, g.topic, g.points) for g in groups] == [(3, "chronic_disease", "time"), (2, None, None),
                                                            (1, None, None)]
    assert groups[0].villages == [("东山镇 村一", 1), ("西河乡 西河村", 1), ("未知", 1)]
    assert [t["question"] for t in groups[1].tickets] == DRUNK


def test_the_radar_page_and_a_group_answer_reach_every_asker(app, asked):
    client = app.test_client()
    login(client, CLERK)
    page = client.get("/console/radar").get_data(as_text=True)
    assert 'data-size="3"' in page and "东山镇 村一" in page and "没答上:时间" in page
    key = "t:chronic_disease:time"
    group_page = client.get("/console/radar/group", query_string={"key": key}).get_data(as_text=True)
    assert 'id="save-local"' not in group_page  # a clerk answers; only an admin saves
    form = {"csrf_token": token(client, "/console/radar"), "key": key, "answer": "慢性病申请材料齐全的,一般15个工作日内审批。",
            "ticket": [f"{i}:0" for i in (1, 2, 3)]}
    done = client.post("/console/radar/group", data=form).get_data(as_text=True)
    assert "已回复 3 个工单" in done
    db = store_db.open_db(app.config["DB_PATH"])
    sent = db.execute("SELECT recipient, text, kind FROM outbox ORDER BY recipient").fetchall()
    assert sent == [(f"1390000000{i}", "慢性病申请材料齐全的,一般15个工作日内审批。", "reply") for i in (1, 2, 3)]
    assert db.execute("SELECT count(*) FROM handoff_tickets WHERE status = 'answered'").fetchone()[0] == 3
    db.close()
    assert ("wang", "group_answer") in audit_actions(app)
    again = client.post("/console/radar/group", data=form).get_data(as_text=True)  # answered meanwhile: left out
    assert "已回复 0 个工单" in again


def test_a_saved_answer_is_given_by_the_bot_from_then_on(app, asked):
    admin = app.test_client()
    login(admin, ADMIN)
    answer = "酒后发生的医疗费用新农合不予报销。"
    form = {"csrf_token": token(admin, "/console/radar"), "key": "q:4", "answer": answer, "save": "1",
            "question": "喝醉酒看病能报销吗", "phrasings": "\n".join(DRUNK), "ticket": ["4:0", "5:0"]}
    done = admin.post("/console/radar/group", data=form).get_data(as_text=True)
    assert "已回复 2 个工单" in done and "已保存为本地答复" in done
    db = store_db.open_db(app.config["DB_PATH"])
    later = ask(db, "酒精中毒住院了,喝酒喝多的能报吗", "13900000099")
    assert later.intent == "policy" and answer in later.text and "合管办答复 2026-06-15" in later.text
    assert db.execute("SELECT count(*) FROM handoff_tickets WHERE sender = '13900000099'").fetchone()[0] == 0
    assert ask(db, OTHER[0], "13900000098").intent == "handoff"  # another question still goes to a clerk
    db.close()
    assert ("root", "local_answer_save") in audit_actions(app)


def test_a_saved_partial_answer_and_retiring_it(app, asked):
    db = store_db.open_db(app.config["DB_PATH"])
    g = next(g for g in radar.groups(db) if g.topic)
    entry = radar.save_local(db, g, question="慢性病申请要多久批下来", phrasings=g.phrasings,
                             answer="一般15个工作日内审批。", actor="root")
    reply = ask(db, "我的慢性病申请多长时间能批", "13900000077")
    assert reply.intent == "policy" and reply.text == "一般15个工作日内审批。(合管办答复 2026-06-15)"
    with store_db.writing(db):
        local_answers.retire(db, entry, "root")
    assert "工作人员" in ask(db, "慢性病申请要多久能批下来", "13900000078").text  # a ticket again
    db.close()


def test_local_entries_listed_edited_retired_and_exported_as_the_kb_toml(app, asked):
    db = store_db.open_db(app.config["DB_PATH"])
    g = next(g for g in radar.groups(db) if g.topic)
    entry = radar.save_local(db, g, question="慢性病申请要多久", phrasings=g.phrasings, answer="一般15个工作日。",
                             actor="root")
    db.close()
    clerk, admin = app.test_client(), app.test_client()
    login(clerk, CLERK)
    login(admin, ADMIN)
    assert "慢性病申请要多久" in clerk.get("/console/answers").get_data(as_text=True)
    location = f"/console/answers/{entry}"
    edit = {"csrf_token": token(clerk, location), "action": "edit", "question": "x", "answer": "y", "phrasings": ""}
    assert clerk.post(location, data=edit).status_code == 403  # clerks read; admins edit
    edit["csrf_token"] = token(admin, location)
    edit.update(question="慢性病申请要多久批", answer="一般15个工作日内审批完。", phrasings="慢病多久批\n慢性病几天下来")
    assert admin.post(location, data=edit).status_code == 302
    exported = admin.get("/console/answers/export.toml").get_data(as_text=True)
    topic = tomllib.loads(exported)["topics"][0]
    assert set(topic) == {"id", "question", "concepts", "points", "paraphrases", "sms", "telegram", "source"}
    assert topic["sms"] == "一般15个工作日内审批完。" and topic["points"] == ["time"] and topic["paraphrases"] == \
        ["慢病多久批", "慢性病几天下来"] and topic["source"] == "合管办答复 2026-06-15" and topic["concepts"]
    admin.post(location, data={"csrf_token": token(admin, location), "action": "retire"})
    assert "已停用" in admin.get(location).get_data(as_text=True)
    assert "[[topics]]" not in admin.get("/console/answers/export.toml").get_data(as_text=True)
    assert {a[1] for a in audit_actions(app) if a[0] == "root"} >= {"local_answer_edit", "local_answer_retire",
                                                                      "local_answer_export"}


def test_the_figure_counts_the_tickets_a_saved_answer_would_have_answered(app, asked):
    db = store_db.open_db(app.config["DB_PATH"])
    assert radar.figure(db) == {"tickets": 6, "groups": 3, "repeated_groups": 2, "would_answer": 3}
    db.close()
