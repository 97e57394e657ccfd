"""The asked point is part of the match (issue 15): what a question asks about its subject (whether, how
much, when, where, what documents, how, what happens, who, what it is, why, which) is read
(policy_kb/points.py); a topic whose answer does not state it is never given as the answer, only as a
partial one with a ticket; words that change the scheme, words no topic answers, and words that
decide nothing alone are read in context.

The questions here are written for these tests in farmers' ways of asking; none is taken from the
real-question sets (../shared/eval/, bench/real/), which measure the product and must stay unseen."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xnh.handlers.normalize import normalize
from xnh.policy_kb import concepts, points, qa, understand


def _decide(text):
    return understand.decide(normalize(text))


# -- reading the point -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, asked", [
    ("报销的钱几天能到", {"time"}),
    ("报销要多少天", {"time"}),  # 多少天 is a time, not an amount
    ("住院一年最多报多少钱", {"amount"}),
    ("参合费交到哪儿", {"where"}),
    ("报销要带什么东西", {"documents"}),
    ("外地住院回来怎么报", {"how"}),
    ("不交合作医疗会怎样", {"consequence"}),
    ("啥人能入新农合", {"who"}),  # dialect spelling of 什么人
    ("费用清单是什么东西", {"what"}),
    ("报销怎么这么少", {"why"}),  # 怎么这么 asks why, not how
    ("县里哪家医院报得多", {"which"}),
    ("住院能报吗", {"whether"}),
    ("能报么", {"whether"}),
    ("住院要住够三天才报销吗医保", {"whether"}),  # 吗 in the middle still asks yes or no
    ("合作医疗的钱怎么又涨了", {"why"}),  # 怎么又 complains: why
    # negative rows: a statement asks nothing; 什么 and 怎么 end in 么 without asking yes or no
    ("我住院三天了", set()),
    ("在外面打了二十几年工", set()),  # 几 after a numeral is a rough number, not a question
    ("病了好几个月", set()),
    ("之前一直没有办过合作医疗", set()),  # never done is no delay
    ("报销的钱到现在还没到", {"delay"}),
    ("报销要带什么", {"documents"}),
    ("", set()),
])
def test_the_point_asked_is_read(text, asked):
    assert points.find(normalize(text)) == asked


def test_every_topic_states_known_points():
    for topic in qa.topics():
        assert topic.points and topic.points <= points.names(), topic.id


# -- a topic that does not state the point is never the answer ----------------------------------------

@pytest.mark.parametrize("text, topic_id", [
    ("报销款一般多少天能到账", "claim_time"),
    ("参合的钱该交到哪里", "where_to_pay"),
    ("去合管办报销要准备哪些材料", "claim_documents"),
    ("在外省住院了回来怎么报", "out_of_county"),
    ("今年不交合作医疗会有什么后果", "lapse"),
    ("报销时要的费用明细是什么东西", "itemized_bill"),
    ("报销比例为什么比以前少了", "why_less"),
    ("为什么门诊一年只能报150", "outpatient_cap"),  # why a rule is so: the rule itself answers (by_the_rule)
    ("住院报销上限是多少钱", "inpatient_cap"),
    ("县里哪些医院是定点的", "designated_hospitals"),
])
def test_a_topic_stating_the_point_is_the_answer(text, topic_id):
    decision = _decide(text)
    assert decision.kind == "answer" and decision.topics == [topic_id]
    wanted = points.substantive(decision.asked)
    assert not wanted or wanted & qa.by_id(topic_id).points


@pytest.mark.parametrize("text, topic_id, missing", [
    ("慢性病门诊申请下来要多久", "chronic_disease", {"time"}),  # the subject is known, how long is not
    ("大病二次补偿要多久才能批下来", "serious_illness", {"time"}),
    ("受了意外伤害能报多少钱", "accident", {"amount"}),
    ("新农合证丢了补办要多少钱", "lost_card", {"amount"}),
    ("不想参加新农合了,退出要办什么手续", "refund", {"how"}),  # the documents topic says nothing of leaving
    ("家里老人过世了,城镇居民医保交的钱能退不", "member_died", {"scheme:urban"}),  # the death decides, not the 老人's rate
])
def test_a_point_the_rules_do_not_state_gets_a_partial_answer(text, topic_id, missing):
    decision = _decide(text)
    assert decision.kind == "partial" and decision.topics == [topic_id] and decision.missing == missing
    assert not missing & qa.by_id(topic_id).points


@pytest.mark.parametrize("text", [
    "报销的钱几天能到", "慢性病门诊申请下来要多久", "受了意外伤害能报多少钱", "交了钱以后多久能用", "外地住院怎么报",
    "住院发票要保留多久", "参合去哪交", "生孩子住院要带什么", "为什么报的比说的少", "低保户住院要带哪些证件",
])
def test_an_answer_always_states_an_asked_point(text):
    """Whatever the question, an answer (not a partial one) states at least one point asked."""
    decision = _decide(text)
    wanted = points.substantive(decision.asked)
    if decision.kind == "answer" and wanted:
        assert qa.by_id(decision.topics[0]).points & wanted, (text, decision.topics)


def test_a_partial_answer_names_what_is_missing_and_opens_one_ticket(ask, db):
    reply = ask("慢性病门诊申请下来要多久")
    assert reply.template == "policy_partial" and "慢性病" in reply.text
    assert "时间,资料里没有写" in reply.text and f"单号{reply.data['ticket']}" in reply.text
    row = db["handoff_tickets"].get(reply.data["ticket"])
    assert (row["topic"], row["points"], row["status"]) == ("chronic_disease", "time", "open")
    again = ask("慢性病门诊申请下来要多久")
    assert again.data["ticket"] == reply.data["ticket"] and db["handoff_tickets"].count == 1


def test_another_scheme_beside_the_subject_says_where_to_ask_without_a_ticket(ask, db):
    """车祸 decides (someone else pays); the 商业保险 named beside it is the insurer's business."""
    reply = ask("出车祸住院了,车险和新农合能一起报销吗")
    assert reply.template == "policy_partial" and "商业保险的事请问" in reply.text
    assert reply.data["ticket"] is None and db["handoff_tickets"].count == 0


@pytest.mark.parametrize("text, orphan", [
    ("新农合卡的密码忘了怎么办", "attr:password"),
    ("出车祸后能用合作医疗做伤残鉴定吗", "attr:assessment"),
    ("喝醉了摔伤住院新农合报不报", "attr:misconduct"),
    ("医生没让出院,我们自己要求出院了,住院费还给报吗", "attr:self_discharge"),
    ("外出打工要开参合证明去哪开", "attr:certificate"),
])
def test_a_word_no_topic_answers_goes_to_a_clerk(text, orphan):
    decision = _decide(text)
    assert orphan in understand.unanswerable(decision.found)
    assert decision.kind in ("partial", "handoff")
    if decision.kind == "partial":
        assert orphan in decision.missing


# -- words that decide nothing alone, and words read in context -------------------------------------------

@pytest.mark.parametrize("text, concept, present", [
    ("要转到市医院去住院", "action:transfer", True),
    ("没用完的钱能转到下一年吗", "action:transfer", False),  # 转到 without a hospital: no referral
    ("发票过期了还能报吗", "attr:deadline", True),
    ("身份证过期了还能报吗", "attr:deadline", False),  # the ID card expired, not the invoice
    ("在外面打工住院了", "place:outside", True),
    ("外面下雨了", "place:outside", False),
    ("单位交了医保家里还用交吗", "attr:double", True),
    ("每年都交医保吗", "attr:double", False),  # 都交 beside no other insurance
])
def test_guarded_words_need_their_partner(text, concept, present):
    assert (concept in concepts.find(normalize(text)).concepts) is present


@pytest.mark.parametrize("text, topic_id", [
    ("新农合的社保卡丢了怎么报销", "lost_card"),  # 社保卡 in a rural question is the member's card
    ("办理特种病要什么手续", "chronic_disease"),  # 特种病 is 特殊病/慢性病
    ("在工地上干活受伤了合作医疗给报吗", "work_injury"),  # someone else (the employer) is liable
    ("外县户口的媳妇能在这里参合吗", "outsider_enroll"),
    ("合作医疗今年没用明年能接着用吗", "balance_reset"),
    ("新农合在外地怎么加入", "how_to_enroll"),  # 加入 is enrolling, not an out-of-county claim
])
def test_scheme_and_look_alike_words_in_context(text, topic_id):
    decision = _decide(text)
    assert decision.kind in ("answer", "partial") and decision.topics[0] == topic_id, decision.scores


@pytest.mark.parametrize("text, group", [
    ("报销能报到百分之七十吗", False),  # 七十 in a rate is no age
    ("我爸七十多了住院能多报吗", True),
])
def test_an_age_is_an_age_only_as_an_age(text, group):
    assert ("group:elderly" in _decide(text).found.concepts) is group


def test_the_successor_scheme_named_beside_another_is_ours():
    """城乡居民医保 is 新农合's successor: a question about joining it is not declined for the 社保 beside it."""
    assert understand.declined(_decide("以前单位交过社保,现在回村想交城乡居民医保怎么办").found) is None
    assert understand.declined(_decide("单位交的社保怎么查").found)  # negative row: 社保 alone is declined


@pytest.mark.parametrize("text", ["退休人员住院怎么报", "单位交的医保怎么报销", "养老金一个月领多少"])
def test_other_schemes_alone_are_declined_by_name(text):
    assert _decide(text).kind == "other_scheme"


def test_the_focus_is_the_last_telling_concept():
    found = concepts.find(normalize("低保户每年报销上限是多少"))
    assert understand.focus(found) == "attr:cap"
    found = concepts.find(normalize("在外省骑车摔伤了回来能报吗"))
    assert understand.focus(found) == "care:injury"  # an injury decides, wherever it stands


# -- older checks that regressed (issue 15) ------------------------------------------------------------------

def test_a_place_without_care_says_nothing_of_the_scheme(ask):
    reply = ask("我想买一张去广州的火车票")
    assert reply.intent == "help" and "定点" not in reply.text and "单号" not in reply.text


def test_a_one_fact_question_gets_its_fact(ask):
    reply = ask("乡镇卫生院住院有起付线吗")
    assert reply.intent == "policy" and "乡镇卫生院" in reply.text and "0元" in reply.text
    assert "您是想问" not in reply.text


@pytest.mark.parametrize("text", ["肚子里的孩子能参合吗", "孩子还没生下来能先办合作医疗吗"])
def test_a_child_not_yet_born_gets_the_birth_permit_rule(ask, text):
    reply = ask(text)
    assert reply.intent == "policy" and "准生证" in reply.text and "单号" not in reply.text


# -- a topic about something the question never names is a neighbour's answer ------------------------------

@pytest.mark.parametrize("text, wrong", [
    ("手机上交不了合作医疗,还能怎么交", "check_enrollment_howto"),  # how to check a payment is another question
    ("想退掉农合要带什么证件", "claim_documents"),  # documents, but for leaving, not for claiming
    ("家里人去世了,老人交的居民医保怎么办", "urban_hardship"),
])
def test_a_neighbours_answer_is_not_given(text, wrong):
    decision = _decide(text)
    assert wrong not in decision.topics[:1], (text, decision.kind, decision.topics)


@pytest.mark.parametrize("text, topic_id", [
    # negative rows: where the best topic is about the subject, nothing moves
    ("去合管办报销要准备哪些材料", "claim_documents"),  # the office is where one goes, not the subject
    ("参合的钱交给谁", "where_to_pay"),
    ("新农合住院报销的范围和比例是多少", "inpatient_rates"),  # 比例 is asked and is the subject too
])
def test_a_topic_about_the_subject_keeps_its_place(text, topic_id):
    assert _decide(text).topics[:1] == [topic_id]


@pytest.mark.parametrize("text, estimate", [
    ("我妈有高血压住不了院,只能在门诊拿药,一个月药费八百多,能报吗", False),  # chronic, outpatient: the application
    ("糖尿病住院花了8000,县医院能报多少", True),  # negative row: a stay with a bill is an estimate
])
def test_a_chronic_illness_in_outpatient_care_gets_its_application(ask, text, estimate):
    reply = ask(text)
    assert (reply.intent == "estimate") is estimate, reply.text
    if not estimate:
        assert "慢性病" in reply.text and "申请" in reply.text and "住院" not in reply.text


@pytest.mark.parametrize("text, topic_id", [
    ("住院报销的钱交上去两个月了还没到账", "claim_delay"),  # a payment awaited: what to do, not how long in general
    ("报销款怎么迟迟不打过来", "claim_delay"),
    ("报销款一般几天到账", "claim_time"),  # negative row: asking how long, nothing awaited
])
def test_a_payment_awaited_gets_what_to_do(text, topic_id):
    assert _decide(text).topics[:1] == [topic_id]


_WORDS = sorted(concepts.lexicon())[::7] + ["吗", "怎么", "多少", "要带什么", "什么时候", "为什么", "还没到", "能不能", ","]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=8))
def test_any_mix_of_known_words_gets_a_decision_that_fits(words):
    """Whatever the neighbour rules move, a decision is made, and an answer is a topic that fits at all."""
    decision = _decide("".join(words))
    assert decision.kind in ("answer", "partial", "choice", "clarify", "handoff", "other_scheme", "help")
    if decision.kind in ("answer", "partial"):
        score = dict((t, s) for s, t in decision.scores)[decision.topics[0]]
        assert score >= understand.ANSWER_MIN
