"""Estimates said in the ways people really write them (issue 10): the same facts composed into many
sentence shapes must give the estimator's own number on those facts, and an unknown hospital must
never give a single-level number.

Facts: an amount (3000, 3,000, 三千, 3千, 一万二, 1.2万, 两万五, with or without 元/块), a level word
(乡卫生院, 县医院, 市医院, 省医院 ...) or a listed hospital / alias of policy_kb/hospitals.toml with words
before it (请问, 俺爹在, 孩子, 我妈去), a group (五保户, 独生子女, 村干部, 二女户) or an age (我爸65岁), a
self-paid part (自费药1000, 其中自费1000). Shapes: words before and after, no punctuation at all
between the parts, full-width punctuation, traditional characters (OpenCC s2t), dialect particles
(俺/咋/嘞/哈/撒), voice-input homophones (住员, 报消).

Everything goes through the real entry point `respond()` (tests/conftest.py's database, policy date
XNH_TODAY = 2026-06-15) from a phone that is no demo household, so no personal data applies; the
expected number is `estimator.inpatient(scheme_for(day, "ncms"), level, total, self_pay, groups, age)`.
"""
import itertools
from decimal import Decimal
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xnh import clock
from xnh.handlers.router import respond
from xnh.message import Message
from xnh.money import to_money, yuan
from xnh.policy_kb import estimator
from xnh.policy_kb.hospitals import hospitals
from xnh.policy_kb.schemes import scheme_for

TABLE_LEVELS = ("township", "county", "city_province", "non_designated")
_senders = itertools.count()
# derandomize: the same examples on every run (a failure here is reproducible, CI never flaky); no example database
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _sender() -> str:
    """A fresh phone for each message (no demo household, no conversation memory carried over)."""
    return f"+86139{next(_senders) % 100000000:08d}"


def ask(db, text):
    sender = _sender()
    return respond(Message(text=text, sender=sender, channel="sms", phone=sender), db)


def expected(level, total, self_pay=0, groups=(), age=None, already=0) -> estimator.Estimate:
    scheme = scheme_for(clock.today(), "ncms")
    return estimator.inpatient(scheme, level, Decimal(total), Decimal(self_pay), list(groups), age, Decimal(already))


@cache
def _converter(config):
    import opencc

    return opencc.OpenCC(config)


def traditional(text: str) -> str:
    """The text in traditional characters, when OpenCC brings it back unchanged (else as it is: a
    character OpenCC cannot round-trip is not the product's to repair)."""
    t = _converter("s2t").convert(text)
    return t if _converter("t2s").convert(t) == text else text


def _d(value) -> Decimal:
    return Decimal(str(value))


# ------------------------------------------------------------------ the parts of a message

AMOUNTS = [  # (value, spellings)
    (3000, ["3000", "3,000", "三千", "3千"]),
    (5000, ["5000", "五千", "5千"]),
    (8000, ["8000", "8,000", "八千"]),
    (12000, ["12000", "12,000", "一万二", "1.2万", "一万两千"]),
    (25000, ["25000", "两万五", "2.5万"]),
    (1500, ["1500", "一千五", "1千5"]),
    (20000, ["20000", "两万", "2万"]),
    (800, ["800", "八百"]),
]
SELF_PAY = [(500, ["500", "五百"]), (1000, ["1000", "一千", "1千"])]  # always below the smallest total it goes with
UNITS = ["", "元", "块", "块钱"]
LEVEL_WORDS = [
    ("乡卫生院", "township"), ("镇卫生院", "township"), ("乡镇卫生院", "township"), ("镇上卫生院", "township"),
    ("县医院", "county"), ("县人民医院", "county"), ("县中医院", "county"), ("县里医院", "county"),
    ("市医院", "city_province"), ("省医院", "city_province"), ("地区医院", "city_province"),
]
HOSPITALS = [(form, h.level) for form, h in hospitals()]  # every listed name and alias
LEADS = ["", "在", "去", "请问", "请问在", "俺爹在", "俺爹", "孩子", "孩子在", "我妈去", "我妈在", "俺在", "俺娘去了"]
NO_PERSON_LEADS = ["", "在", "去", "请问", "请问在"]  # with an age ("我爸65岁"): no second person to confuse whose it is
GROUPS = [("五保户", "五保户"), ("我家是五保户", "五保户"), ("独生子女", "独生子女户"), ("独生子女户", "独生子女户"),
          ("村干部", "村干部"), ("俺是村干部", "村干部"), ("二女户", "二女户"), ("俺家二女户", "二女户")]
AGES = [("我爸65岁", 65), ("俺娘70岁", 70), ("老人68岁", 68), ("我爹72岁了", 72)]
SPENT = ["", "花了", "一共花了", "用了"]
TAILS = ["", "能报多少", "能报多少钱", "可以报多少", "能报销多少啊", "咋报嘞", "能报多少撒", "报好多哈", "俺能报多少",
         "?", "？", "能报多少呢"]
SEPS = ["", "，", ",", " ", "。", "、"]


@st.composite
def amount(draw, choices=AMOUNTS):
    value, spellings = draw(st.sampled_from(choices))
    return value, draw(st.sampled_from(spellings)) + draw(st.sampled_from(UNITS))


@st.composite
def self_pay_part(draw, total, always=False):
    if total < 2000 or not (always or draw(st.booleans())):
        return 0, ""
    value, spelled = draw(amount(SELF_PAY))
    form = draw(st.sampled_from(["自费药{}", "其中自费{}", "自费的{}", "自费{}"]))
    return value, form.format(spelled)


@st.composite
def who(draw):
    """A group, an age, or nobody: (words, groups, age)."""
    kind = draw(st.sampled_from(["none", "group", "age"]))
    if kind == "group":
        words, group = draw(st.sampled_from(GROUPS))
        return words, [group], None
    if kind == "age":
        words, age = draw(st.sampled_from(AGES))
        return words, [], age
    return "", [], None


@st.composite
def surface(draw, text):
    """The same message in another surface form: homophones, traditional characters."""
    if draw(st.booleans()):
        text = text.replace("住院", "住员", 1)
    if draw(st.booleans()):
        text = text.replace("能报", "能报消", 1).replace("可以报", "可以报消", 1)
    if draw(st.booleans()):
        text = traditional(text)
    return text


@st.composite
def estimate_message(draw, places, self_pay=False):
    """(text, level, total, self_pay, groups, age) with the place from `places` [(words, level)];
    self_pay: always a self-paid part (else none)."""
    place, level = draw(st.sampled_from(places))
    who_words, groups, age = draw(who())
    lead = draw(st.sampled_from(NO_PERSON_LEADS if age else LEADS))
    total, spelled = draw(amount([a for a in AMOUNTS if a[0] >= 2000] if self_pay else AMOUNTS))
    sp, sp_words = draw(self_pay_part(total, always=True)) if self_pay else (0, "")
    sep = lambda: draw(st.sampled_from(SEPS))  # noqa: E731
    spent = draw(st.sampled_from(SPENT))
    tail = draw(st.sampled_from(TAILS))
    if draw(st.booleans()):  # place first: "俺爹在县医院住院花了3000自费药1000能报多少"
        parts = [who_words, lead + place + "住院" + spent + spelled, sp_words, tail]
    else:  # amount first: "五保户住院花了3000在县医院能报多少"
        parts = [who_words, "住院" + spent + spelled, sp_words, (lead if lead.endswith("在") else "在") + place, tail]
    text = ""
    for part in parts:
        if part:
            text += (sep() if text else "") + part
    return draw(surface(text)), level, total, sp, groups, age


def _single(reply):
    assert reply.intent == "estimate", f"intent {reply.intent} ({reply.template}): {reply.text}"
    return reply.data["estimate"]


def check_single(reply, level, total, sp, groups, age):
    e = expected(level, total, sp, groups, age)
    got = _single(reply)
    assert (got.get("level"), got.get("reimbursed")) == (e.level, str(e.reimbursed)), (
        f"want {e.level} {e.reimbursed}, got {got.get('level')} {got.get('reimbursed')}"
        f" (per_level {bool(got.get('per_level'))})")


# ------------------------------------------------------------------ properties


@settings(max_examples=120, **SETTINGS)
@given(estimate_message(LEVEL_WORDS))
def test_level_word_in_any_shape_gives_the_estimators_number(db, case):
    text, level, total, sp, groups, age = case
    check_single(ask(db, text), level, total, sp, groups, age)


@settings(max_examples=120, **SETTINGS)
@given(estimate_message(HOSPITALS))
def test_listed_hospital_with_words_around_it_gives_its_levels_number(db, case):
    text, level, total, sp, groups, age = case
    check_single(ask(db, text), level, total, sp, groups, age)


@settings(max_examples=100, **SETTINGS)
@given(estimate_message(LEVEL_WORDS + HOSPITALS, self_pay=True))
def test_self_paid_part_in_any_shape_is_taken_off(db, case):
    text, level, total, sp, groups, age = case
    check_single(ask(db, text), level, total, sp, groups, age)


NEUTRAL = "康复安和平华济德博协慈光阳福寿春泰友谊佳美贝嘉禾瑞祥同善恒益惠利民生"
LISTED_WORDS = {w for form, _ in hospitals() for w in (form[:2], form[-4:-2])}


@st.composite
def unknown_hospital(draw):
    """2-4 neutral Han characters + 医院: no place, no level word, not a listed name or look-alike."""
    from rapidfuzz import fuzz

    name = draw(st.text(alphabet=NEUTRAL, min_size=2, max_size=4)) + "医院"
    forms = [f for f, _ in hospitals()]
    if any(fuzz.ratio(name, f) >= 70 for f in forms) or any(w in name for w in LISTED_WORDS):
        name = "康复医院"
    return name


@st.composite
def unknown_hospital_message(draw):
    name = draw(unknown_hospital())
    who_words, groups, age = draw(who())
    lead = draw(st.sampled_from(NO_PERSON_LEADS if age else LEADS))
    total, spelled = draw(amount())
    spent = draw(st.sampled_from(SPENT))
    tail = draw(st.sampled_from(TAILS))
    sep = draw(st.sampled_from(SEPS))
    text = sep.join(p for p in [who_words, lead + name + "住院" + spent + spelled, tail] if p)
    return draw(surface(text)), total, groups, age


def check_table(reply, total, sp=0, groups=(), age=None):
    got = _single(reply)
    assert got.get("level") is None and got.get("per_level"), (
        f"a single-level number ({got.get('level')} {got.get('reimbursed')}) where the level is unknown")
    for level in TABLE_LEVELS:
        e = expected(level, total, sp, groups, age)
        assert got["per_level"][level]["reimbursed"] == str(e.reimbursed), (
            f"{level}: want {e.reimbursed}, got {got['per_level'][level]['reimbursed']}")


@settings(max_examples=100, **SETTINGS)
@given(unknown_hospital_message())
def test_unknown_hospital_never_gives_a_single_level_number(db, case):
    text, total, groups, age = case
    check_table(ask(db, text), total, 0, groups, age)


EVIDENCE = ["在外省", "在外省的", "在打工的地方", "在广东", "在浙江宁波", "在外地", "在省外的", "在县外的"]


@settings(max_examples=80, **SETTINGS)
@given(st.sampled_from(EVIDENCE), unknown_hospital(), amount(), who(), st.sampled_from(TAILS), st.sampled_from(SEPS))
def test_unknown_hospital_out_of_the_county_is_non_designated(db, where, name, amt, person, tail, sep):
    total, spelled = amt
    who_words, groups, age = person
    text = sep.join(p for p in [who_words, where + name + "住院花了" + spelled, tail] if p)
    check_single(ask(db, text), "non_designated", total, 0, groups, age)


@settings(max_examples=100, **SETTINGS)
@given(st.data())
def test_no_level_gives_the_estimators_number_for_each_level(db, data):
    total, spelled = data.draw(amount())
    sp, sp_words = data.draw(self_pay_part(total))
    who_words, groups, age = data.draw(who())
    spent = data.draw(st.sampled_from(SPENT))
    tail = data.draw(st.sampled_from(TAILS))
    sep = data.draw(st.sampled_from(SEPS))
    text = sep.join(p for p in [who_words, "住院" + spent + spelled, sp_words, tail] if p)
    check_table(ask(db, data.draw(surface(text))), total, sp, groups, age)


# ------------------------------------------------------------------ explicit rows (issue 10's failure kinds)

ROWS = [
    # words before a hospital's name (issue 10: taken as an unknown hospital → 县外非定点)
    ("请问南坪乡卫生院住院花了3000能报多少", "township", 3000, 0, (), None),
    ("孩子市康宁医院住院3000", "outside_private", 3000, 0, (), None),
    ("俺爹县医院住院3000", "county", 3000, 0, (), None),
    ("我妈去东山镇卫生院住院5000", "township", 5000, 0, (), None),
    ("俺爹在西河乡卫生院住了院花了八千块", "township", 8000, 0, (), None),
    ("孩子市一院住院一万二能报多少", "city_province", 12000, 0, (), None),
    ("请问省人民医院住院两万五能报多少", "city_province", 25000, 0, (), None),
    ("俺娘去仁爱医院住院花了5000", "county", 5000, 0, (), None),
    # two amounts without punctuation
    ("县医院住院8000自费药1000能报多少", "county", 8000, 1000, (), None),
    ("乡卫生院住院5000自费1000", "township", 5000, 1000, (), None),
    ("市医院住院一万二其中自费两千能报多少", "city_province", 12000, 2000, (), None),
    # a group word right before a level word (五保户县医院 is no hospital's name)
    ("五保户县医院住院5000", "county", 5000, 0, ("五保户",), None),
    ("村干部县医院住院3000", "county", 3000, 0, ("村干部",), None),
    ("独生子女乡卫生院住院2000", "township", 2000, 0, ("独生子女户",), None),
    ("二女户市医院住院一万", "city_province", 10000, 0, ("二女户",), None),
    ("我爸65岁县医院住院2万", "county", 20000, 0, (), 65),
    # clear evidence of a hospital outside the county and off the list
    ("在外省医院住院花了3000", "non_designated", 3000, 0, (), None),
    ("在打工的地方住院花了3000能报多少", "non_designated", 3000, 0, (), None),
    ("在广东东莞康华医院住院5000", "non_designated", 5000, 0, (), None),
    # shapes of POLICY.md §3's worked examples
    ("县医院8000，自费药1000，能报多少？", "county", 8000, 1000, (), None),
    ("縣醫院住院八千自費藥一千能報多少", "county", 8000, 1000, (), None),
    ("俺在县医院住员花了三千块咋报消嘞", "county", 3000, 0, (), None),
]


@pytest.mark.parametrize("text, level, total, sp, groups, age", ROWS, ids=[r[0] for r in ROWS])
def test_single_level_rows(ask, text, level, total, sp, groups, age):
    check_single(ask(text, sender=_sender()), level, total, sp, groups, age)


TABLE_ROWS = [
    # an unknown "…医院" is no evidence of 县外非定点 by itself (negative rows: no single number)
    ("在康复医院住院花了5000", 5000, 0, (), None),
    ("孩子在博爱医院住院3000能报多少", 3000, 0, (), None),
    ("俺在协和医院住院8000", 8000, 0, (), None),
    ("请问华康医院住院一万二能报多少", 12000, 0, (), None),
    ("五保户在慈济医院住院5000", 5000, 0, ("五保户",), None),
    # no level at all
    ("住院花了3000能报多少", 3000, 0, (), None),
    ("住院8000自费药1000能报多少", 8000, 1000, (), None),
    ("五保户住院5000", 5000, 0, ("五保户",), None),
    ("我爸65岁住院花了两万", 20000, 0, (), 65),
]


@pytest.mark.parametrize("text, total, sp, groups, age", TABLE_ROWS, ids=[r[0] for r in TABLE_ROWS])
def test_table_rows(ask, text, total, sp, groups, age):
    check_table(ask(text, sender=_sender()), total, sp, groups, age)


def test_cap_with_what_was_already_reimbursed(ask):
    """POLICY.md §3: 省医院 80000 with 40000 already reimbursed this year → 20000 (the cap)."""
    e = expected("city_province", 80000, already=40000)
    got = _single(ask("省医院住院80000今年已经报了40000", sender=_sender()))
    assert (got["level"], got["reimbursed"]) == ("city_province", str(e.reimbursed)) == ("city_province", "20000.00")


# ------------------------------------------------------------------ what the patient pays (issue 15)

YOU_PAY_TAILS = ["自己要掏多少", "自己要出多少钱", "自己还得付多少", "个人负担多少", "自付多少", "报完了我自己还要拿多少钱",
                 "报完还剩多少要自己出", "俺要自己掏多少", "自己出的是多少"]


@settings(max_examples=120, **SETTINGS)
@given(st.data())
def test_asked_what_they_pay_they_get_total_minus_reimbursed(db, data):
    """For any level, amount, self-paid part and group, a "自己要掏多少" shape gives total − reimbursed
    exactly as the estimator computes it, named as what the patient pays, beside the reimbursement."""
    place, level = data.draw(st.sampled_from(LEVEL_WORDS + HOSPITALS))
    total, spelled = data.draw(amount())
    sp, sp_words = data.draw(self_pay_part(total))
    who_words, groups, age = data.draw(who())
    tail = data.draw(st.sampled_from(YOU_PAY_TAILS))
    sep = data.draw(st.sampled_from(SEPS))
    text = sep.join(p for p in [who_words, "在" + place + "住院花了" + spelled, sp_words, tail] if p)
    reply = ask(db, text)
    e = expected(level, total, sp, groups, age)
    got = _single(reply)
    assert (got["level"], got["reimbursed"], got["you_pay"]) == (e.level, str(e.reimbursed), str(e.you_pay))
    assert e.you_pay == to_money(Decimal(total) - e.reimbursed)
    assert f"自付{yuan(e.you_pay)}元" in reply.text and f"可报{yuan(e.reimbursed)}元" in reply.text


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_asked_what_they_pay_without_a_level_every_row_shows_it(db, data):
    total, spelled = data.draw(amount())
    tail = data.draw(st.sampled_from(YOU_PAY_TAILS))
    reply = ask(db, f"住院花了{spelled}{data.draw(st.sampled_from(SEPS))}{tail}")
    check_table(reply, total)
    for level in TABLE_LEVELS:
        e = expected(level, total)
        assert f"{yuan(e.reimbursed)}/{yuan(e.you_pay)}元" in reply.text


@pytest.mark.parametrize("text", ["住院花了3000能报多少", "县医院住院5000", "住院花了8000个人情况怎么样"])
def test_not_asked_what_they_pay_the_reply_stays_short(ask, text):
    """Negative rows: the you-pay figure is shown when asked, not on every estimate."""
    assert "自付" not in ask(text, sender=_sender()).text
