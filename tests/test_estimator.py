"""The estimate of POLICY.md §3 (xnh.policy_kb.estimator): every worked example, properties that
hold for any bill, and the scheme files' validation."""
import datetime as dt
import shutil
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xnh.policy_kb import estimator, hospitals, loader, schemes
from xnh.policy_kb.loader import KBError
from xnh.policy_kb.schemes import scheme_for

TODAY = dt.date(2026, 6, 15)
D = Decimal


@pytest.fixture
def ncms():
    return scheme_for(TODAY, "ncms")


@pytest.mark.parametrize("level, total, self_pay, groups, age, already, reimbursed", [
    # POLICY.md §3 worked examples (scheme 2010, no group)
    ("township", "3000", "0", (), None, "0", "2400"),
    ("county", "3000", "0", (), None, "0", "2100"),
    ("outside_private", "3000", "0", (), None, "0", "1800"),
    ("city_province", "3000", "0", (), None, "0", "1680"),
    ("province", "3000", "0", (), None, "0", "1680"),  # 省医院 uses the city_province rule in 新农合
    ("non_designated", "3000", "0", (), None, "0", "1620"),
    ("county", "8000", "1000", (), None, "0", "4900"),
    ("county", "20000", "0", (), 60, "0", "16000"),
    ("city_province", "80000", "0", (), None, "0", "47880"),
    ("city_province", "80000", "0", (), None, "40000", "20000"),
    # groups, bonus, the edges
    ("county", "20000", "0", (), 59, "0", "14000"),
    ("township", "3000", "0", ("五保户",), None, "0", "2700"),
    ("county", "5000", "0", ("二女户",), None, "0", "4000"),
    ("county", "5000", "0", ("低保户",), None, "0", "3500"),  # 低保户 is no bonus group
    ("non_designated", "300", "0", (), None, "0", "0"),  # at the deductible
    ("non_designated", "250", "0", (), None, "0", "0"),  # below it
    ("city_province", "3000", "0", (), None, "60000", "0"),  # cap used up
    ("city_province", "3000", "0", (), None, "70000", "0"),
    ("county", "3000.05", "0", (), None, "0", "2100.04"),  # 2100.035 rounds half-up
    ("county", "1000", "2000", (), None, "0", "0"),  # self-pay over the total
])
def test_inpatient_examples(ncms, level, total, self_pay, groups, age, already, reimbursed):
    e = estimator.inpatient(ncms, level, D(total), D(self_pay), groups, age, D(already))
    assert e.reimbursed == D(reimbursed)
    assert e.you_pay == (D(total) - D(reimbursed)).quantize(D("0.01"))


def test_the_rule_is_reported(ncms):
    e = estimator.inpatient(ncms, "city_province", D(80000), already=D(40000))
    assert (e.level, e.deductible, e.rate, e.cap, e.remaining, e.capped) == (
        "city_province", D(200), D("0.60"), D(60000), D(20000), True)
    assert e.as_json()["reimbursed"] == "20000.00"


def test_village_has_no_inpatient_benefit(ncms):
    with pytest.raises(estimator.NotCovered):
        estimator.inpatient(ncms, "village", D(500))


@pytest.mark.parametrize("total, already, reimbursed", [
    ("200", "0", "100"),
    ("400", "0", "150"),  # yearly cap
    ("60", "0", "30"),
    ("200", "100", "50"),
    ("200", "150", "0"),
])
def test_outpatient_examples(ncms, total, already, reimbursed):
    assert estimator.outpatient(ncms, D(total), already=D(already)).reimbursed == D(reimbursed)


@pytest.mark.parametrize("day, kind, level, total, reimbursed", [
    (TODAY, "urban", "county", "5000", "2640"),  # POLICY.md §3: 城镇居民, 县医院
    (TODAY, "urban", "township", "2000", "1140"),
    (TODAY, "urban", "province", "3000", "1125"),
    (dt.date(2006, 6, 1), "ncms", "township", "3000", "1770"),  # 2006a: 50 / 60%
    (dt.date(2007, 6, 1), "ncms", "county", "3000", "1650"),  # 2006b: 0 / 55%
    (dt.date(2008, 6, 1), "ncms", "city_province", "3000", "1400"),  # 2008: 200 / 50%
    (dt.date(2009, 6, 1), "ncms", "non_designated", "3000", "1080"),  # 2009: 300 / 40%
    (dt.date(2006, 6, 1), "ncms", "county", "100000", "6000"),  # 2006a cap
])
def test_other_schemes(day, kind, level, total, reimbursed):
    assert estimator.inpatient(scheme_for(day, kind), level, D(total)).reimbursed == D(reimbursed)


def test_scheme_dates():
    assert scheme_for(dt.date(2010, 1, 1)).id == "ncms_2010"
    assert scheme_for(dt.date(2009, 12, 31)).id == "ncms_2009"
    assert scheme_for(dt.date(2006, 11, 7)).id == "ncms_2006b"
    with pytest.raises(KBError):
        scheme_for(dt.date(2005, 12, 31))


def test_bonus_never_goes_over_100_percent(ncms, monkeypatch):
    generous = schemes.Scheme(**{**ncms.__dict__, "group_bonus": D("0.30")})
    assert estimator.inpatient(generous, "township", D(1000), groups=("五保户",)).rate == D(1)


# -- properties that hold for every bill ------------------------------------------------------------

money = st.decimals(min_value=0, max_value=2_000_000, places=2, allow_nan=False, allow_infinity=False)
LEVELS = ("township", "county", "outside_private", "city_province", "province", "non_designated")
groups = st.lists(st.sampled_from(["五保户", "独生子女户", "二女户", "村干部", "低保户", "普通"]), max_size=2)
ages = st.none() | st.integers(min_value=0, max_value=110)
kinds = st.sampled_from([(TODAY, "ncms"), (TODAY, "urban"), (dt.date(2006, 6, 1), "ncms"),
                         (dt.date(2008, 6, 1), "ncms")])


@settings(max_examples=300, deadline=None)
@given(kinds, st.sampled_from(LEVELS), money, money, money, groups, ages, money)
def test_inpatient_properties(kind, level, total, more, self_pay, gs, age, already):
    scheme = scheme_for(*kind)
    if scheme.rule(level) is None:  # urban residents' scheme has no 县外非定点 rule
        with pytest.raises(estimator.NotCovered):
            estimator.inpatient(scheme, level, total, self_pay, gs, age, already)
        return
    e = estimator.inpatient(scheme, level, total, self_pay, gs, age, already)
    eligible = max(D(0), total - self_pay)
    assert D(0) <= e.reimbursed <= eligible.quantize(D("0.01"))
    assert e.reimbursed <= max(D(0), scheme.inpatient_cap - already)
    assert e.rate <= D(1)
    if eligible <= e.deductible:
        assert e.reimbursed == 0
    bigger = estimator.inpatient(scheme, level, total + more, self_pay, gs, age, already)
    assert bigger.reimbursed >= e.reimbursed  # never decreases when the total grows
    assert e.reimbursed == e.reimbursed.quantize(D("0.01"))


@settings(max_examples=200, deadline=None)
@given(money, money, money)
def test_outpatient_properties(total, more, already):
    scheme = scheme_for(TODAY)
    e = estimator.outpatient(scheme, total, already=already)
    assert D(0) <= e.reimbursed <= total
    assert e.reimbursed <= max(D(0), scheme.outpatient_cap - already)
    assert estimator.outpatient(scheme, total + more, already=already).reimbursed >= e.reimbursed


# -- the data files: a broken file is an error naming the file and the key ---------------------------

def _broken(tmp_path, text_from, text_to):
    src = loader.DEMO_DIR / "schemes" / "ncms_2010.toml"
    path = tmp_path / "ncms_2010.toml"
    text = src.read_text(encoding="utf-8")
    assert text_from in text
    path.write_text(text.replace(text_from, text_to, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize("text_from, text_to, words", [
    ('inpatient_cap = "60000"', "", ["ncms_2010.toml", "inpatient_cap", "missing"]),
    ('inpatient_cap = "60000"', 'inpatient_cap = "lots"', ["ncms_2010.toml", "inpatient_cap"]),
    ('inpatient_cap = "60000"', "inpatient_cap = 60000.0", ["ncms_2010.toml", "inpatient_cap", "float"]),
    ('rate = "0.80"', 'rate = "1.8"', ["ncms_2010.toml", "levels.township", "rate"]),
    ('deductible = "0"', 'deductible = "-5"', ["ncms_2010.toml", "levels.township", "deductible"]),
    ("[levels.township]", "[levels.towship]", ["ncms_2010.toml", "towship"]),
    ('kind = "ncms"', 'kind = "rural"', ["ncms_2010.toml", "kind"]),
    ("start = 2010-01-01", 'start = "2010"', ["ncms_2010.toml", "start"]),
    ('collect_from = "11-01"', 'collect_from = "Nov 1"', ["ncms_2010.toml", "collect_from"]),
    ('id = "ncms_2010"', 'id = "ncms_2010', ["ncms_2010.toml", "TOML"]),
])
def test_broken_scheme_file_names_file_and_key(tmp_path, text_from, text_to, words):
    with pytest.raises(KBError) as e:
        schemes._load(_broken(tmp_path, text_from, text_to))
    for word in words:
        assert word in str(e.value)


def test_shipped_scheme_files_load():
    ids = {s.id for s in schemes.all_schemes()}
    assert {"ncms_2006a", "ncms_2006b", "ncms_2008", "ncms_2009", "ncms_2010", "urban_2009"} <= ids


@pytest.fixture
def tmp_kb(tmp_path):
    """A copy of the demo county's policy directory in tmp_path, read instead of the shipped one."""
    kb = tmp_path / "kb"
    shutil.copytree(loader.DEMO_DIR, kb)
    loader.use_county(kb)
    yield kb
    loader.use_county(None)


@pytest.mark.parametrize("file, text_from, text_to, words", [
    ("hospitals.toml", 'level = "township"', 'level = "hamlet"', ["hospitals.toml", "hospitals[", "hamlet"]),
    ("hospitals.toml", 'name = "市中医院"\n', "", ["hospitals.toml", "name", "missing"]),
    ("levels.toml", 'label = "乡镇卫生院"', "", ["levels.toml", "levels.township", "label"]),
    ("levels.toml", 'fallback = "city_province"', 'fallback = "capital"', ["levels.toml", "fallback"]),
])
def test_broken_kb_file_names_file_and_key(tmp_kb, file, text_from, text_to, words):
    path = tmp_kb / file
    text = path.read_text(encoding="utf-8")
    assert text_from in text
    path.write_text(text.replace(text_from, text_to, 1), encoding="utf-8")
    with pytest.raises(KBError) as e:
        hospitals.hospitals()
    for word in words:
        assert word in str(e.value)
