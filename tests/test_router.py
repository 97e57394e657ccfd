"""Routing by what a message contains: each kind of message reaches its intent, whatever the wording;
negative rows check that look-alikes do not."""
import pytest


@pytest.mark.parametrize("text, intent", [
    # estimates: an amount with a visit, a level, or spending words; a bare amount
    ("住院花了3000能报多少", "estimate"),
    ("花了5000能报多少", "estimate"),
    ("5000", "estimate"),
    ("三千块", "estimate"),
    ("县医院看门诊花了300", "estimate"),
    # claim status, in several wordings
    ("查报销", "claim_status"),
    ("报销到哪一步了", "claim_status"),
    ("钱到账没有", "claim_status"),
    ("报销批下来没", "claim_status"),
    ("审核通过了吗", "claim_status"),
    ("查询报销", "claim_status"),
    ("查一下我家的报销", "claim_status"),
    # enrollment checks
    ("查参合", "enrollment"),
    ("今年参合了吗", "enrollment"),
    ("查询参合", "enrollment"),
    ("查一下合作医疗", "enrollment"),
    ("我家交钱了没有", "enrollment"),
    ("家里给我交了合作医疗没有", "enrollment"),
    # opt-out / opt-in, any case and punctuation
    ("退订", "unsubscribe"), ("TD", "unsubscribe"), ("stop", "unsubscribe"), ("取消订阅。", "unsubscribe"),
    ("订阅", "subscribe"), ("START", "subscribe"),
    # a person
    ("人工", "handoff"), ("转人工", "handoff"), ("我要找工作人员", "handoff"),
    # greetings and thanks are not questions for a clerk
    ("你好", "help"), ("谢谢!", "help"), ("", "help"), ("😀😀", "help"), ("。。。", "help"),
    # negative rows: policy questions about paying are not enrollment checks; no amount is no estimate
    ("参合每年要交多少钱", "policy"),
    ("五保户参合需要交钱不", "policy"),
    ("县医院住院报销比例是多少", "policy"),
    ("我住院三天了", "help"),  # names one thing, asks nothing: "关于住院,您想问什么?"
    ("退订是什么意思", "policy"),
    # how-questions that use status or paying words are policy questions
    ("报销款打到哪", "policy"),
    ("钱打到银行卡吗", "policy"),
    ("报销多少天能下来", "policy"),
    ("审核没通过咋办", "policy"),
    ("报销结果会公示吗?", "policy"),
    ("出院的时候直接就报了吗", "policy"),
    ("要先把钱全交了吗", "policy"),
    ("交费有没有发票", "policy"),
    ("俺爹七十多了住院能多报不", "policy"),
    # while a done-or-not question about the family's own claim or payment is a lookup
    ("我娘的报销报了没", "claim_status"),
    ("钱打到卡上了吗", "claim_status"),
    ("参合费交了吗", "enrollment"),
])
def test_intent(ask, text, intent):
    assert ask(text).intent == intent


def test_quota_for_a_known_member(county, ask):
    reply = ask("今年住院报了多少了", sender="13800009001")
    assert reply.intent == "claim_status"
    assert "35000" in reply.text and "25000" in reply.text and "杨树林" not in reply.text


def test_quota_question_from_a_stranger_is_a_policy_question(county, ask):
    assert ask("还能报多少", sender="13700000099").intent != "claim_status"


def test_opt_out_is_recorded_and_opt_in_restores(db, ask):
    ask("退订", sender="13700000061")
    assert db["subscriptions"].get("13700000061")["subscribed"] == 0
    ask("订阅", sender="13700000061")
    assert db["subscriptions"].get("13700000061")["subscribed"] == 1
    assert [r["action"] for r in db["audit_log"].rows] == ["unsubscribe", "subscribe"]


def test_replies_to_own_questions_still_work_after_opt_out(ask):
    ask("退订", sender="13700000062")
    assert ask("住院花了3000在县医院", sender="13700000062").intent == "estimate"
