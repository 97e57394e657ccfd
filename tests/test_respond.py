"""Estimates through the one entry point respond(): the dev cases, the follow-up that names the
hospital, conversation memory and its expiry, the SMS length budget, and bad input."""
import json
import logging
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xnh import idnumber
from xnh.store import state
from xnh.message import Reply
from xnh.policy_kb.schemes import all_schemes, scheme_for
from xnh.render import render
from tests.conftest import put, shared_file

SMS_LIMIT = 134  # two concatenated UCS-2 SMS parts of 67 characters
SINGLE = {"estimate", "estimate_outpatient", "estimate_not_covered"}
CASES = json.loads(shared_file("eval/dev_cases.json").read_text(encoding="utf-8"))
ESTIMATE_CASES = [c for c in CASES if c["expect"].get("cat") in ("estimate", "estimate_table", "followup")]


def _numbers(text):
    import re

    return {Decimal(x) for x in re.findall(r"\d+(?:\.\d+)?", text.replace(",", ""))}


@pytest.mark.parametrize("case", ESTIMATE_CASES, ids=lambda c: c["id"])
def test_dev_estimate_cases(ask, case):
    for turn in case["turns"]:
        reply = ask(turn, sender=case["from"])
    assert reply.intent == "estimate"
    assert reply.template.startswith(case["expect"]["cat"].replace("followup", "estimate"))
    assert {Decimal(n) for n in case["expect"]["nums"]} <= _numbers(reply.text)
    assert "估算" in reply.text and "合管办" in reply.text and "自费" in reply.text
    if reply.template in SINGLE:
        assert len(reply.text) <= SMS_LIMIT


@pytest.mark.parametrize("text, level, reimbursed, rate, deductible, scheme", [
    ("在县医院住院花了6000能报多少", "county", "4200.00", "0.70", "0.00", "ncms_2010"),
    ("在省人民医院住了半个月花了三万", "city_province", "17880.00", "0.60", "200.00", "ncms_2010"),
    ("我65岁在县医院住院3000", "county", "2400.00", "0.80", "0.00", "ncms_2010"),
    ("我爸75岁在县医院住院花了20000", "county", "16000.00", "0.80", "0.00", "ncms_2010"),
    ("省医院住院花了15万", "city_province", "60000.00", "0.60", "200.00", "ncms_2010"),
    ("城镇居民在县医院住院5000", "county", "2640.00", "0.55", "200.00", "urban_2009"),
    ("广州市白云区人民医院住院花了3000", "non_designated", "1620.00", "0.60", "300.00", "ncms_2010"),
    ("广东省人民医院住院花了3000", "non_designated", "1620.00", "0.60", "300.00", "ncms_2010"),
    ("示范县仁艾医院住院花了3000", "county", "2100.00", "0.70", "0.00", "ncms_2010"),
    ("住院花了3000能報多少,在縣醫院", "county", "2100.00", "0.70", "0.00", "ncms_2010"),
    ("住员花了3000能报消多少,在县医院", "county", "2100.00", "0.70", "0.00", "ncms_2010"),
])
def test_single_level_estimate_json(ask, text, level, reimbursed, rate, deductible, scheme):
    facts = ask(text).facts()
    e = facts["estimate"]
    assert facts["intent"] == "estimate"
    assert (e["level"], e["reimbursed"], e["rate"], e["deductible"], e["scheme"]) == (
        level, reimbursed, rate, deductible, scheme)


def test_outpatient_with_a_level_is_outpatient(ask):
    reply = ask("在乡卫生院看门诊花了200")
    assert reply.template == "estimate_outpatient"
    assert reply.data["estimate"]["reimbursed"] == "100.00"
    assert "乡镇卫生院" in reply.text and "150" in reply.text


def test_a_60_plus_reply_says_why_the_rate_is_higher(ask):
    text = ask("我爸75岁在县医院住院花了20000").text
    assert "80%" in text and "60岁以上" in text and "16000" in text


def test_approximate_amount_is_said_to_be_approximate(ask):
    reply = ask("住院花了两千多")
    assert reply.template == "estimate_table"
    assert "约2000" in reply.text and "按2000元" in reply.text
    assert reply.data["estimate"]["per_level"]["county"]["reimbursed"] == "1400.00"


def test_no_level_lists_every_level_and_remembers_the_amount(ask, db):
    first = ask("住院花了一万", sender="13700000031")
    per_level = first.facts()["estimate"]["per_level"]
    assert {k: v["reimbursed"] for k, v in per_level.items()} == {
        "township": "8000.00", "county": "7000.00", "city_province": "5880.00", "non_designated": "5820.00"}
    assert first.facts()["estimate"]["reimbursed"] is None
    assert "哪家医院" in first.text and "序号" in first.text
    other = ask("乡镇卫生院", sender="13700000032")  # another sender has no remembered amount
    assert "estimate" not in other.data
    second = ask("在县医院", sender="13700000031")
    assert second.data["estimate"]["reimbursed"] == "7000.00"
    assert second.data["estimate"]["total"] == "10000.00"
    kept = state.load_state(db, "13700000031")  # answered; the amount stays for "那省医院呢"
    assert kept.total == "10000" and kept.levels == []  # but a bare "2" no longer picks a row


@pytest.mark.parametrize("followup, level, reimbursed", [
    ("乡镇卫生院", "township", "2400.00"),
    ("省人民医院", "city_province", "1680.00"),
    ("在示范县仁爱医院住的", "county", "2100.00"),
    ("广州打工的时候住的", "non_designated", "1620.00"),
])
def test_followup_naming_the_hospital(ask, followup, level, reimbursed):
    ask("住院花了3000能报多少")
    e = ask(followup).data["estimate"]
    assert (e["level"], e["reimbursed"]) == (level, reimbursed)


def test_followup_keeps_self_pay_groups_and_approximation(ask):
    ask("五保户住院花了8千多,其中自费1000")
    reply = ask("县医院")
    assert reply.data["estimate"]["reimbursed"] == "5600.00"  # (8000 − 1000) × 80%
    assert "约" in reply.text


def test_memory_expires_after_30_minutes(ask, monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(state.time, "time", lambda: now[0])
    ask("住院花了3000能报多少")
    now[0] += 29 * 60
    assert ask("县医院").data["estimate"]["reimbursed"] == "2100.00"
    ask("住院花了3000能报多少")
    now[0] += 31 * 60
    assert "estimate" not in ask("县医院").data


# -- the SMS budget: a single-level estimate fits 134 characters ---------------------------------------

places = st.sampled_from(["", "在县医院", "在北岭镇中心卫生院", "在省人民医院", "在广州市白云区第一人民医院",
                          "在乡卫生院看门诊", "在村卫生室", "在浙江打工", "在康宁医院", "在医学院附属医院"])
amounts = st.one_of(st.integers(min_value=1, max_value=9_999_999).map(str),
                    st.decimals(min_value=1, max_value=9_999_999, places=2).map(str),
                    st.sampled_from(["两千多", "十几万", "9999999.99元左右", "一万二", "3千2"]))
extras = st.lists(st.sampled_from(["五保户", "独生子女户", "我爸75岁", "城镇居民", "大概"]), max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(places, amounts, st.one_of(st.none(), st.integers(1, 9_999_999)), extras)
def test_single_level_sms_fits_134(ask, place, amount, self_pay, words):
    text = "".join(words) + place + "住院花了" + amount + (f",其中自费{self_pay}元" if self_pay else "")
    reply = ask(text, sender="13700000077")
    if reply.template in SINGLE:
        assert len(reply.text) <= SMS_LIMIT, reply.text


def _member(db, *, category="独生子女户", name="欧阳小明华", born="19500101", phone="13900000001"):
    first17 = "520101" + born + "001"
    number = first17 + idnumber.check_digit(first17)
    put(db, "members", {"member_id": "M1", "household_id": "H1", "name": name, "sex": "男",
                          "id_number": number, "relation": "户主", "phone": phone, "township": "东山镇",
                          "village": "一村", "category": category, "updated_at": "2026-01-01"})
    put(db, "claims", {"claim_id": "C1", "member_id": "M1", "household_id": "H1", "name": name,
                         "id_number": number, "visit_type": "住院", "hospital": "县医院", "level": "county",
                         "admitted": "2026-02-01", "discharged": "2026-02-10", "total": "60000",
                         "eligible": "60000", "reimbursed": "45678.91", "status": "已拨付",
                         "reject_reason": "", "paid_date": "2026-03-01", "paid_channel": "一卡通",
                         "updated_at": "2026-03-01"})
    return phone


def test_personal_estimate_counts_what_was_reimbursed_this_year(ask, db):
    phone = _member(db)
    reply = ask("在北岭镇中心卫生院住院花了9999999.99元左右,其中自费1234567.89元", sender=phone)
    e = reply.data["estimate"]
    assert (e["already_reimbursed"], e["remaining_cap"], e["reimbursed"], e["bonus"]) == (
        "45678.91", "14321.09", "14321.09", "0.10")
    assert "封顶" in reply.text and "2026年已报45678.91元" in reply.text  # the member's own phone: no name needed
    assert "欧阳小明华" not in reply.text
    assert len(reply.text) <= SMS_LIMIT, reply.text


def test_worst_case_single_level_sms_fits_134():
    """Every optional part at its longest: personal (a 6-character masked name), approximate, self-pay,
    deductible (the largest any scheme file has: 500), an odd rate and bonus, cap, amounts just under
    extract.MAX_AMOUNT."""
    scheme = scheme_for(__import__("datetime").date(2026, 6, 15))
    d = Decimal
    data = {"year": 2026, "scheme": scheme, "approximate": True, "hospital": "北岭镇中心卫生院", "listed": True,
            "place": "北岭镇中心卫生院", "personal": {"name": "阿****曼", "already": {}},
            "groups": ["独生子女户"], "age": 99, "level": "city_province", "level_label": "市/省级定点医院",
            "total": d("9999999.99"), "self_pay": d("9999999.98"), "deductible": max(r.deductible for s in all_schemes() for r in s.rules.values()),
            "rate": d("0.675"), "bonus": d("0.125"), "reimbursed": d("59999.99"), "you_pay": d("9940000.00"),
            "capped": True, "cap": d("60000"), "already": d("59999.99"), "remaining": d("0.01")}
    for template in ("estimate", "estimate_outpatient"):
        for injury in (False, True):
            for you_pay_asked in (False, True):  # 自己要掏多少: the you-pay figure beside the reimbursement
                text = render(Reply("estimate", template, {**data, "injury": injury, "you_pay_asked": you_pay_asked}), "sms")
                assert len(text) <= SMS_LIMIT, text


# -- bad input: always a helpful reply, never an exception --------------------------------------------

BAD = ["", " ", "\x00\x01\x02", "😀😀😀", "🏥💊💉" * 50, "{{7*7}}", "{{ config }}", "{% for x in y %}",
       "'; DROP TABLE members; --", "1' OR '1'='1", "<script>alert(1)</script>", "住院" * 5000,
       "9" * 10000, "住院花了" + "9" * 400, "\u202e\u200b\ufeff", "%s%s%n", "NaN", "inf", "1e309元",
       "住院花了-3000", "住院花了0元", "住院花了0.001元", "住院花了1元,自费2元"]


@pytest.mark.parametrize("text", BAD)
def test_bad_input_gets_a_reply(ask, caplog, text):
    with caplog.at_level(logging.WARNING):
        reply = ask(text)
    assert reply.text.strip()
    assert "49" not in reply.text or "49" in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300) | st.text(alphabet="住院花了报销多少县医院乡卫生院自费两千多万元0123456789,.%岁天",
                                       max_size=60))
def test_fuzz_respond(ask, caplog, text):
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        reply = ask(text, sender="13700000099")
    assert reply.text.strip()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], text
