"""Reading amounts, levels, groups and ages out of free Chinese text (xnh.handlers.extract),
after normalisation (traditional characters, full-width digits, voice-input homophones)."""
from decimal import Decimal

import pytest

from xnh.handlers.extract import amounts, facts
from xnh.handlers.normalize import normalize


def _facts(text):
    return facts(normalize(text))


@pytest.mark.parametrize("text, value", [
    ("住院花了3000", "3000"),
    ("住院花了3,000", "3000"),
    ("县医院住院花了壹万", "10000"),  # 大写数字, as on receipts
    ("住院花了叁仟伍佰元", "3500"),
    ("住院花了３０００", "3000"),
    ("住院花了3000元", "3000"),
    ("住院花了3000块", "3000"),
    ("住院花了3000块钱", "3000"),
    ("住院花了三千", "3000"),
    ("住院花了3千", "3000"),
    ("住院花了3千2", "3200"),
    ("住院花了一万二", "12000"),
    ("住院花了1.2万", "12000"),
    ("住院花了1万5", "15000"),
    ("住院花了两万五", "25000"),
    ("住院花了十万", "100000"),
    ("住院花了8k", "8000"),
    ("住院花了3k5", "3500"),
    ("住院花了2w", "20000"),
    ("住院花了一千八百块", "1800"),
    ("住院花了3000.50元", "3000.50"),
    ("住院花了3 000", "3000"),
    ("住院花了¥3000", "3000"),
    ("乡里卫生院住院花了一千八百块", "1800"),
    ("在縣中醫院住院花了一萬", "10000"),
    ("住了3天花了3000块", "3000"),
    ("2026年3月5日住院花了2000", "2000"),
    ("138-1234-5678住院花了3000", "3000"),
    ("住院花了3000。我电话13812345678", "3000"),
    ("住了两次院一共花了5000", "5000"),
    ("第二次住院花了3000", "3000"),
])
def test_total_in_every_form(text, value):
    assert _facts(text).total == Decimal(value)


@pytest.mark.parametrize("text", [
    "花了几十万还能补吗",  # vague: no number to estimate on
    "俺爹七十多了住院能多报不",  # an age without 岁
    "我的电话13812345678",
    "电话138-1234-5678",
    "座机0851-12345678",
    "身份证522401199001011234",
    "身份证52240119900101123X",
    "2026-03-05住院",
    "2026.3.5住院",
    "3月5日住院",
    "3/5住院的",
    "2026年住院",
    "住了3天",
    "住了三天",
    "我爸80岁",
    "报70%吗",
    "报百分之七十吗",
    "第一次住院",
    "市第一人民医院",
    "看一下",
    "一个人",
    "住了半个月",
    "两个孩子",
    "下午3点到的",
    "10:30住的院",
    "五保户能报吗",
    "二女户怎么报",
    "三甲医院报多少",
    "花了十亿",  # not a plausible bill
    "",
])
def test_not_an_amount(text):
    assert _facts(text).total is None


@pytest.mark.parametrize("text, value, approximate", [
    ("住院花了两千多", "2000", True),
    ("住院花了2000多", "2000", True),
    ("住院花了1万多", "10000", True),
    ("住院花了2万元左右", "20000", True),
    ("住院大概花了5000", "5000", True),
    ("住院花了两三千", "2000", True),
    ("住院花了十几万", "100000", True),
    ("住院花了三四百块", "300", True),
    ("住院花了3000", "3000", False),
    ("花了3000多少钱能报", "3000", False),  # 多少 asks, it does not round
])
def test_approximate_amounts_use_the_lower_bound(text, value, approximate):
    f = _facts(text)
    assert (f.total, f.approximate) == (Decimal(value), approximate)


@pytest.mark.parametrize("text, total, self_pay", [
    ("县医院住院7000,自费药1000", "7000", "1000"),
    ("住院花了5000其中自费600", "5000", "600"),
    ("医药费12000，其中自费2000", "12000", "2000"),
    ("自费了1000总共8000", "8000", "1000"),
    ("8000元其中自费药1000元", "8000", "1000"),
    ("住院花了3000", "3000", "0"),
    ("住院花了500,自费药1000", "500", "500"),  # never more than the total
])
def test_self_pay_part(text, total, self_pay):
    f = _facts(text)
    assert (f.total, f.self_pay) == (Decimal(total), Decimal(self_pay))


def test_amounts_are_in_order_with_their_flags():
    got = amounts(normalize("花了8000元,其中自费1000,大概"))
    assert [(a.value, a.self_pay) for a in got] == [(Decimal(8000), False), (Decimal(1000), True)]


@pytest.mark.parametrize("text, visit, level", [
    ("在乡卫生院住院花了3000", "inpatient", "township"),
    ("镇卫生院住院3000", "inpatient", "township"),
    ("乡里住院花了1000", "inpatient", "township"),
    ("镇上住院花了1000", "inpatient", "township"),
    ("我爸在县城医院住院花了3万", "inpatient", "county"),
    ("在县医院住院花了6000", "inpatient", "county"),
    ("去省城住院3000", "inpatient", "province"),
    ("在市医院住院3000", "inpatient", "city_province"),
    ("在浙江打工住院花了4千", "inpatient", "non_designated"),
    ("在外省住院3000", "inpatient", "non_designated"),
    ("县外的民营定点医院住院3000", "inpatient", "outside_private"),
    ("在乡卫生院看门诊花了200", "outpatient", "township"),
    ("门诊花了60块", "outpatient", None),
    ("看病拿药花了80", "outpatient", None),
    ("村卫生室花了50", "outpatient", "village"),
    ("住院花了3000", "inpatient", None),
    ("花了3000", None, None),
    # a stay denied or not needed is no stay
    ("医生说不用住院,门诊拿药花了300", "outpatient", None),
    ("住不上院,在门诊打针花了500", "outpatient", None),
    ("没住院,就花了200", None, None),
    ("住了院又没能住院治疗的不算", "inpatient", None),  # negative row: a stay said besides the denied one
])
def test_visit_and_level(text, visit, level):
    f = _facts(text)
    assert (f.visit, f.level) == (visit, level)


@pytest.mark.parametrize("text, groups, age, third_party", [
    ("我65岁在县医院住院3000", [], 65, False),
    ("我爸75岁在县医院住院3000", [], 75, True),
    ("我爸七十多岁住院3000", [], 70, True),
    ("俺爹七十多了住院花了3000", [], 70, True),
    ("他都八十了在县医院住院花了一万", [], 80, True),
    ("我今年75了住院3000", [], 75, False),
    ("我爷爷80岁了,在乡镇卫生院住院花了3000", [], 80, True),
    ("五保户住院3000", ["五保户"], None, False),
    ("我家是独生子女户,住院3000", ["独生子女户"], None, False),
    ("二女户在县中医院住院花了5000", ["二女户"], None, False),
    ("我是村干部住院3000", ["村干部"], None, False),
    ("住院3000", [], None, False),
])
def test_groups_age_and_whom(text, groups, age, third_party):
    f = _facts(text)
    assert (f.groups, f.age, f.third_party) == (groups, age, third_party)


@pytest.mark.parametrize("text, urban", [
    ("城镇居民医保在乡镇卫生院住院花了2000", True),
    ("居民医保住院3000", True),
    ("住院3000", False),
])
def test_urban_scheme_words(text, urban):
    assert _facts(text).urban is urban


@pytest.mark.parametrize("raw, normal", [
    ("住院花了3000能報多少", "住院花了3000能报多少"),
    ("住员花了3000能报消多少", "住院花了3000能报销多少"),
    ("在縣中醫院住院花了一萬", "在县中医院住院花了一万"),
    ("住院花了３０００元", "住院花了3000元"),
    ("住院\x00花了\x1f3000", "住院 花了 3000"),
    ("花了三千零一元", "花了三千零一元"),  # 一元 sounds like 医院: numerals are never "repaired"
    ("市一院", "市一院"),
    ("我没有农村合作医辽", "我没有农村合作医疗"),  # voice input and typos of domain words
    ("不在护口所在地参保", "不在户口所在地参保"),
    ("", ""),
])
def test_normalize(raw, normal):
    assert normalize(raw) == normal
    assert normalize(normal) == normal  # idempotent


def test_traditional_and_homophone_messages_read_like_the_originals():
    plain = _facts(normalize("住院花了3000能报销多少"))
    for variant in ("住院花了3000能報銷多少", "住员花了3000能报消多少"):
        assert _facts(variant) == plain


# -- money only where money is meant (issue 15) -------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DIGITS = st.integers(min_value=1, max_value=99999).map(str)
# A number that names a place, a ward, a group, a building, a visit or a product: never a bill.
NOT_MONEY = [
    st.builds(lambda letter, n, place: f"{letter}{n}{place}", st.sampled_from("ABCDKXY"), _DIGITS,
              st.sampled_from(["县", "市", "乡", "镇", "村", ""])),  # B3县, A12市: codes for places
    st.builds(lambda n, noun: f"{n}{noun}", _DIGITS,
              st.sampled_from(["病区", "组", "号楼", "单元", "床", "栋", "队", "号", "楼", "病房", "科", "村", "年级", "次"])),
    st.builds(lambda n: f"第{n}次", _DIGITS),  # ordinals
    st.builds(lambda m, d: f"{m}月{d}日", st.integers(1, 12), st.integers(1, 28)),  # dates
    st.builds(lambda y, m: f"{y}年{m}月", st.integers(2005, 2030), st.integers(1, 12)),
    st.builds(lambda name, n: f"{name}{n}", st.sampled_from(["一起慧", "长青树", "乐享"]), _DIGITS),  # a product's name
]
CARRIERS = ["我在{}住院能报吗", "{}的病人住院了怎么报", "我是{}的,住院报销在哪办", "{}住院报销要带什么", "请问{}住院了能报销吗"]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.one_of(*NOT_MONEY), st.sampled_from(CARRIERS))
def test_a_number_in_a_name_code_address_ordinal_or_date_is_never_a_bill(part, carrier):
    assert _facts(carrier.format(part)).total is None, carrier.format(part)


MONEY = ["住院花了{}", "住院{}能报多少", "医药费{}", "一共花了{}", "花了{}元", "住院{}块", "县医院住院花了{}", "门诊{}元",
         "看病用了{}", "总共{}块钱", "住院费用{}"]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=10, max_value=999999), st.sampled_from(MONEY))
def test_a_number_beside_a_money_or_care_word_is_always_the_bill(value, shape):
    assert _facts(shape.format(value)).total == Decimal(value), shape.format(value)
