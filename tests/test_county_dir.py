"""A county's policy as a directory it owns (issue 20): XNH_POLICY_DIR, `xnh policy check` and `xnh
policy new`, the second real county (迁安市, xnh/counties/qianan/) answering with its own rules, and the
behaviour that must hold whichever county answers.

The worked examples for 迁安 are computed by hand from its plan (bench/real/../counties notes: the
rates, cap and outpatient rule are the 2012 plan's as reported; four of five deductibles are demo
rules, see README "A county's policy"); they are typed in here, never read from the data files."""
import datetime as dt
import shutil
import subprocess
import sys
from decimal import Decimal

import pytest

from xnh.handlers.router import respond
from xnh.message import Message
from xnh.policy_kb import check, estimator, loader, qa, understand
from xnh.policy_kb.schemes import scheme_for

QIANAN = loader.PACKAGE_COUNTIES / "qianan"
COUNTIES = {"demo": loader.DEMO_DIR, "qianan": QIANAN}


@pytest.fixture
def county(request):
    """Answer from one county's directory for this test (parametrise with indirect=True)."""
    loader.use_county(COUNTIES[request.param])
    yield request.param
    loader.use_county(None)


def _ask(db, text, sender="13700000099"):
    return respond(Message(text=text, sender=sender, channel="sms", phone=sender), db)


# -- the shipped directories pass the check --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(COUNTIES))
def test_shipped_counties_have_no_problem(name):
    assert [str(p) for p in check.check(COUNTIES[name])] == []


def test_the_check_leaves_the_county_in_use_as_it_was():
    before = loader.county()["name"]
    check.check(QIANAN)
    assert loader.county()["name"] == before


# -- a broken directory: one line per problem, naming the file, the entry and the reason -------------------

def _edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BROKEN = [
    # (what is broken, edit(directory), the words of its one line)
    ("a gap between schemes", lambda d: _edit(d / "schemes" / "ncms_2009.toml", 'kind = "ncms"', 'kind = "ncms"\nend = 2009-06-30'),
     ["schemes/ncms_2009.toml", "end", "gap", "ncms_2010"]),
    ("two schemes starting the same day", lambda d: _edit(d / "schemes" / "ncms_2009.toml", "start = 2009-01-01", "start = 2010-01-01"),
     ["schemes/ncms_2010.toml", "start", "overlaps"]),
    ("a level without a rate", lambda d: _edit(d / "schemes" / "ncms_2010.toml", '[levels.county]\ndeductible = "0"\nrate = "0.70"\n', ""),
     ["schemes/ncms_2010.toml", "levels.county", "no rate"]),
    ("a hospital with an unknown level", lambda d: _edit(d / "hospitals.toml", 'level = "township"', 'level = "hamlet"'),
     ["hospitals.toml", "hamlet"]),
    ("a template with an unknown variable", lambda d: _edit(d / "qa" / "benefits.toml", "{{ ncms.cap }}", "{{ ncms.ceiling }}"),
     ["qa/benefits.toml", "does not render", "ceiling"]),
    ("a number no scheme holds", lambda d: _edit(d / "qa" / "benefits.toml", "住院报销每人每年最多{{ ncms.cap }}元", "住院报销每人每年最多45000元"),
     ["qa/benefits.toml", "inpatient_cap", "45000"]),
    ("a cap out of range", lambda d: _edit(d / "schemes" / "ncms_2010.toml", 'inpatient_cap = "60000"', 'inpatient_cap = "600000000"'),
     ["schemes/ncms_2010.toml", "inpatient_cap", "outside"]),
    ("a place left to fill in", lambda d: _edit(d / "county.toml", 'short = "示范"', 'short = "【填写:简称】"'),
     ["county.toml", "line", "【填写:简称】"]),
    ("a file missing", lambda d: (d / "levels.toml").unlink(), ["levels.toml", "missing"]),
]


@pytest.mark.parametrize("what, breaking, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_directory_gets_its_one_line(tmp_path, what, breaking, words):
    directory = tmp_path / "county"
    shutil.copytree(loader.DEMO_DIR, directory)
    breaking(directory)
    lines = [str(p) for p in check.check(directory)]
    assert any(all(w in line for w in words) for line in lines), lines


def test_xnh_policy_check_prints_lines_and_the_worked_examples(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "xnh", "policy", "check", str(QIANAN)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "省以上(京津)定点医院 住院 | 80000 | 2000 | 55% | 42900.00" in ok.stdout
    broken = tmp_path / "county"
    shutil.copytree(loader.DEMO_DIR, broken)
    (broken / "levels.toml").unlink()
    bad = subprocess.run([sys.executable, "-m", "xnh", "policy", "check", str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout.strip() == "levels.toml: -: missing" and "Traceback" not in bad.stderr


def test_policy_new_marks_the_places_to_fill_in_and_passes_once_filled(tmp_path):
    directory = check.new_county(tmp_path / "mine")
    lines = [str(p) for p in check.check(directory)]
    assert any("county.toml" in line and "【填写" in line for line in lines)
    assert any("hospitals.toml" in line for line in lines) and any("schemes/ncms_2010.toml" in line for line in lines)
    # the office fills in every place
    _edit(directory / "county.toml", "【填写:县名,如 某某县】", "样板县")
    _edit(directory / "county.toml", "【填写:简称】", "样板")
    _edit(directory / "county.toml", "【填写:本县新农合实施方案/补偿方案的名称、文号和日期】", "样板县新农合补偿方案(2010)")
    shutil.copy(loader.DEMO_DIR / "hospitals.toml", directory / "hospitals.toml")  # its list (the Q&A names them)
    for path in [*(directory / "schemes").glob("*.toml"), *(directory / "qa").glob("*.toml")]:
        path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")
    assert [str(p) for p in check.check(directory)] == []
    with pytest.raises(FileExistsError):
        check.new_county(directory)


# -- 迁安: its own rules, its own name, 示范县 is another county -------------------------------------------------

# (level, bill, already this year, admitted) → reimbursed, by hand from the 2012 plan (and 2011 before it)
QIANAN_WORKED = [
    ("township", 3000, 0, "2012-06-15", "2320.00"), ("township", 8000, 0, "2012-06-15", "6320.00"),
    ("township", 80000, 0, "2012-06-15", "63920.00"), ("county", 3000, 0, "2012-06-15", "1960.00"),
    ("county", 80000, 0, "2012-06-15", "55860.00"), ("city_province", 8000, 0, "2012-06-15", "4320.00"),
    ("province", 80000, 0, "2012-06-15", "47520.00"), ("above_province", 3000, 0, "2012-06-15", "550.00"),
    ("above_province", 80000, 0, "2012-06-15", "42900.00"), ("non_designated", 8000, 0, "2012-06-15", "3300.00"),
    ("above_province", 80000, 60000, "2012-06-15", "40000.00"),  # the 100000 cap
    ("township", 200000, 0, "2012-06-15", "100000.00"),
    ("township", 3000, 0, "2011-12-31", "2175.00"),  # the 2011 scheme, the day before
    ("above_province", 3000, 0, "2011-06-15", "0.00"),  # below 2011's 4000 起付点
    ("above_province", 8000, 0, "2011-06-15", "2000.00"),
]


@pytest.mark.parametrize("county", ["qianan"], indirect=True)
@pytest.mark.parametrize("level, bill, already, admitted, expected", QIANAN_WORKED)
def test_qianan_estimates_reproduce_the_worked_examples(county, level, bill, already, admitted, expected):
    scheme = scheme_for(dt.date.fromisoformat(admitted))
    e = estimator.inpatient(scheme, level, Decimal(bill), already=Decimal(already))
    assert str(e.reimbursed) == expected


@pytest.mark.parametrize("county", ["qianan"], indirect=True)
def test_qianan_outpatient(county):
    scheme = scheme_for(dt.date(2012, 6, 15))
    assert str(estimator.outpatient(scheme, Decimal(80)).reimbursed) == "48.00"
    assert str(estimator.outpatient(scheme, Decimal(200)).reimbursed) == "60.00"
    assert str(estimator.outpatient(scheme, Decimal(80), already=Decimal(30)).reimbursed) == "30.00"


@pytest.mark.parametrize("county", ["qianan"], indirect=True)
def test_the_whole_product_answers_with_the_second_countys_rules(county, db):
    assert "迁安市人民医院住院8000元" in _ask(db, "在迁安市人民医院住院花了8000").text
    assert "5460" in _ask(db, "在迁安市人民医院住院花了8000", sender="13700000098").text
    assert "42900" in _ask(db, "在北京住院花了80000能报多少").text
    assert "60元" in _ask(db, "新农合一年交多少钱").text
    other = _ask(db, "示范县的新农合报销比例是多少").text
    assert other.startswith("示范县的规定我这里没有资料") and "迁安市的是" in other


@pytest.mark.parametrize("county", ["demo"], indirect=True)
def test_the_second_county_is_another_place_for_the_demo(county, db):
    reply = _ask(db, "迁安的新农合报销比例是多少")
    assert reply.text.startswith("迁安的规定我这里没有资料") and "示范县的是" in reply.text


# -- behaviour that holds whichever county answers ----------------------------------------------------------------

@pytest.mark.parametrize("county", sorted(COUNTIES), indirect=True)
def test_every_topic_renders_fits_and_answers_its_own_question(county):
    for topic in qa.topics():
        sms = qa.render_answer(topic.sms, dt.date(2026, 6, 15))
        assert 0 < len(sms) <= qa.SMS_LIMIT and "None" not in sms, topic.id
        decision = understand.decide(topic.question)
        assert decision.kind in ("answer", "partial") and decision.topics[0] == topic.id, (topic.id, decision.scores[:2])


@pytest.mark.parametrize("county", sorted(COUNTIES), indirect=True)
@pytest.mark.parametrize("bill", [3000, 8000, 80000])
def test_an_estimate_is_the_estimators_number_for_the_countys_scheme(county, db, bill):
    reply = _ask(db, f"在乡镇卫生院住院花了{bill}能报多少", sender=f"1370000{bill:04d}"[:11])
    scheme = scheme_for(dt.date(2026, 6, 15))
    expected = estimator.inpatient(scheme, "township", Decimal(bill))
    assert reply.data["estimate"]["reimbursed"] == str(expected.reimbursed)


@pytest.mark.parametrize("county", sorted(COUNTIES), indirect=True)
def test_replies_name_the_county_answering_and_no_other(county, db):
    name = loader.county()["name"]
    reply = _ask(db, "四川农村医保报销比例是多少")
    assert f"{name}的是" in reply.text
    others = {loader.read_toml(p / "county.toml")["name"] for p in COUNTIES.values()} - {name}
    assert not any(other in reply.text for other in others)


@pytest.mark.parametrize("county", sorted(COUNTIES), indirect=True)
def test_a_partial_answer_and_a_decline_hold_in_every_county(county, db):
    assert _ask(db, "慢性病门诊申请下来要多久").template == "policy_partial"
    assert _ask(db, "退休人员住院怎么报").template == "policy_decline"


def test_no_county_is_named_in_code_or_templates():
    """Every word a farmer reads about the county comes from its directory: no template and no string
    the code puts in a reply or a message names one (docstrings and comments may)."""
    import ast

    root = loader.KB_DIR.parent
    named = [str(p.relative_to(root)) for p in (root / "templates").rglob("*.*") if "示范县" in p.read_text(encoding="utf-8")]
    for path in root.rglob("*.py"):
        if "demo" in path.relative_to(root).parts:  # the demo county's own loader and exports
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        named += [f"{path.relative_to(root)}:{n.lineno}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and "示范县" in n.value and id(n) not in docstrings]
    assert named == []
