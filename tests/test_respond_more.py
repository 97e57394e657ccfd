"""Estimate conversations beyond one message: picking a row of the level table by its number, what the
message says was already reimbursed, a self-paid part named after the amount."""
import pytest


def test_a_number_picks_a_row_of_the_table(ask):
    table = ask("住院花了2万", sender="13700000201")
    assert "1.乡镇卫生院16000元" in table.text and "2.县级医院14000元" in table.text
    picked = ask("2", sender="13700000201")
    assert picked.intent == "estimate" and picked.data["estimate"]["level"] == "county"
    assert picked.data["estimate"]["reimbursed"] == "14000.00"


@pytest.mark.parametrize("reply", ["7", "0", "第9个"])
def test_a_number_outside_the_table_is_not_an_amount(ask, reply):
    ask("住院花了2万", sender="13700000202")
    got = ask(reply, sender="13700000202")
    assert not (got.intent == "estimate" and got.data["estimate"].get("total") in ("7.00", "0.00", "9.00"))


@pytest.mark.parametrize("text, reimbursed", [
    ("住院花了80000元在省医院,今年已经报了40000", "20000.00"),  # POLICY.md §3: capped at 60000 − 40000
    ("省医院住院8万,已报了59000", "1000.00"),
    ("县医院住院1万,今年已经报了60000", "0.00"),
])
def test_already_reimbursed_in_the_message_counts_against_the_cap(ask, text, reimbursed):
    assert ask(text).data["estimate"]["reimbursed"] == reimbursed


def test_already_reimbursed_is_remembered_for_the_follow_up(ask):
    ask("住院花了2万,今年已经报了50000", sender="13700000203")
    assert ask("省医院", sender="13700000203").data["estimate"]["reimbursed"] == "10000.00"


@pytest.mark.parametrize("text, reimbursed", [
    ("俺在县医院开刀花了三万五,其中有五千是自费的", "21000.00"),
    ("县医院住院10000,有2000块是自费", "5600.00"),
    ("县医院住院10000,自费2000", "5600.00"),
])
def test_self_pay_before_or_after_its_amount(ask, text, reimbursed):
    assert ask(text).data["estimate"]["reimbursed"] == reimbursed


def test_another_level_after_a_single_estimate_reuses_the_amount(ask):
    first = ask("县医院住院花了5000", sender="13700000204")
    assert first.data["estimate"]["reimbursed"] == "3500.00"
    again = ask("那在省医院呢", sender="13700000204")
    assert again.data["estimate"]["reimbursed"] == "2880.00"  # (5000 − 200) × 60%


@pytest.mark.parametrize("question", ["省医院起付线多少", "县医院住院报销比例是多少", "在市医院住院需要什么手续",
                                      "门诊报销有上限吗", "乡镇卫生院住院报销要带什么"])
def test_a_rules_question_after_an_estimate_goes_to_the_knowledge_base(ask, question):
    ask("住院花了2万", sender="13700000205")
    assert ask(question, sender="13700000205").intent in ("policy", "handoff")


@pytest.mark.parametrize("followup, reimbursed", [
    ("那在省医院呢", "5880.00"), ("县医院能报多少", "7000.00"), ("在广州打工的时候住的", "5820.00"), ("乡里", "8000.00"),
])
def test_place_follow_ups(ask, followup, reimbursed):
    ask("县医院住院花了一万", sender="13700000206")
    assert ask(followup, sender="13700000206").data["estimate"]["reimbursed"] == reimbursed


def test_a_large_outpatient_bill_offers_the_inpatient_reading(ask):
    first = ask("看病花了3000", sender="13700000207")
    assert first.data["estimate"]["visit"] == "outpatient" and "住院" in first.text
    table = ask("是住院", sender="13700000207")
    assert table.data["estimate"]["per_level"]["county"]["reimbursed"] == "2100.00"


@pytest.mark.parametrize("text, injury", [
    ("干活摔伤了在县医院住院花了5000", True), ("出车祸在省医院住院花了2万", True), ("被狗咬了门诊花了300", True),
    ("县医院住院花了5000", False), ("生孩子住院花了4000在乡卫生院", False),
])
def test_an_injury_estimate_says_it_needs_investigation(ask, text, injury):
    reply = ask(text)
    assert reply.intent == "estimate" and "估算" in reply.text
    assert ("意外伤" in reply.text) is injury


@pytest.mark.parametrize("absurd", ["住院花了3000000000000元", "住院花了90000000元", "花了20000000000块"])
def test_an_absurd_amount_after_a_real_one_is_questioned_not_replaced(ask, absurd):
    """Issue 17's small lie: the old amount was reused for an absurd new one."""
    first = ask("住院花了3000能报多少", sender="13700000077")
    assert first.data["estimate"]["total"] == "3000.00"
    second = ask(absurd, sender="13700000077")
    assert second.intent == "help" and "金额看着不对" in second.text and "3000" not in second.text.split("我是")[0]
    third = ask("县医院", sender="13700000077")  # nothing pending: no estimate on the old amount
    assert third.intent != "estimate"


@pytest.mark.parametrize("text", ["住院花了1e20元", "住院花了2E5元"])
def test_scientific_notation_is_no_amount(ask, text):
    assert ask(text, sender="13700000078").intent != "estimate"  # 1e20 was read as 20: no bill is written so
