"""Check a county's policy directory before it goes live (`xnh policy check DIR`): one problem a line,
naming the file, the entry and the reason; and the worked examples an office compares with its own
document.

What is checked:
  - every file loads (county.toml, schemes/, levels.toml, hospitals.toml, qa/, claim_steps.toml)
  - schemes of each kind are effective-dated without overlaps or gaps, and a 新农合 scheme is in force
  - every inpatient level of levels.toml has a rate and deductible in every scheme (directly or by its
    fallback); caps, rates, deductibles and group bonuses are within sane bounds
  - every hospital has a known level (loading checks it)
  - every Q&A answer renders against every scheme in force at some date, and the SMS fits
  - every number in an answer comes from the scheme data (or is an example in quotes, or the topic's
    source marks it as a demo rule)
  - no two topics claim the same question: each topic's own question is answered by that topic alone
  - no place left to fill in by `xnh policy new` (【填写…】, 【核对…】)
"""
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .. import clock
from . import loader

MARKER = re.compile(r"【(?:填写|核对)[^】]*】")
BILLS = (Decimal(3000), Decimal(8000), Decimal(80000))
OUTPATIENT_BILL = Decimal(200)
# sane bounds: a number outside is a typo, not a policy (元, or a fraction for rates)
CAP_RANGE = (Decimal(1000), Decimal(10_000_000))
DEDUCTIBLE_MAX = Decimal(100_000)
BONUS_MAX = Decimal("0.5")
_QUOTED = re.compile(r"[\"“「][^\"”」]*[\"”」]|(?<!\d)\d\.(?!\d)")  # examples in quotes; list numbers (1.算报销)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Problem:
    file: str
    entry: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.entry}: {self.reason}"


def check(directory) -> list[Problem]:
    """Every problem of the policy directory, in a stable order. Loads it in this process (and goes
    back to the directory in use before)."""
    directory = Path(directory)
    if not directory.is_dir():
        return [Problem(str(directory), "-", "not a directory")]
    before = loader._chosen
    loader.use_county(directory)
    try:
        return _check(directory)
    finally:
        loader.use_county(before)


def _check(directory: Path) -> list[Problem]:
    problems = _markers(directory)
    for name in ("county.toml", "levels.toml", "hospitals.toml", "claim_steps.toml"):
        if not (directory / name).exists():
            problems.append(Problem(name, "-", "missing"))
    if problems and any(p.reason == "missing" for p in problems):
        return problems
    loaded = _load_all()
    if loaded:
        return problems + loaded
    problems += _schemes()
    problems += _answers()
    problems += _claims()
    return problems


def _markers(directory: Path) -> list[Problem]:
    out = []
    for path in sorted(directory.rglob("*.toml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in MARKER.finditer(line):
                out.append(Problem(str(path.relative_to(directory)), f"line {number}", f"still to fill in: {m.group()}"))
    return out


def _load_all() -> list[Problem]:
    """Each file through its own loader: a broken one is a KBError naming the file and the key."""
    from . import hospitals, qa, schemes

    out = []
    for what, load in (("county.toml", loader.county), ("levels.toml", loader.levels),
                       ("hospitals.toml", hospitals.hospitals), ("schemes/", schemes.all_schemes), ("qa/", qa.all_topics)):
        try:
            load()
        except (loader.KBError, OSError, KeyError, ValueError) as e:
            file, _, reason = str(e).partition(": ")
            out.append(Problem(file if file.endswith((".toml", "/")) else what, "-", reason or str(e)))
    return out


def _schemes() -> list[Problem]:
    from .schemes import KINDS, all_schemes

    out = []
    levels = loader.levels()
    inpatient_levels = [k for k, v in levels.items() if v.get("inpatient", True)]
    by_kind = {kind: [s for s in all_schemes() if s.kind == kind] for kind in KINDS}
    if not by_kind["ncms"]:
        out.append(Problem("schemes/", "-", "no 新农合 (kind = \"ncms\") scheme"))
    for kind, items in by_kind.items():
        for a, b in zip(items, items[1:]):
            if a.start == b.start:
                out.append(Problem(f"schemes/{b.id}.toml", "start", f"overlaps {a.id}: both start {a.start}"))
            elif a.end is not None and a.end >= b.start:
                out.append(Problem(f"schemes/{a.id}.toml", "end", f"overlaps {b.id}, which starts {b.start}"))
            elif a.end is not None and a.end + dt.timedelta(days=1) < b.start:
                out.append(Problem(f"schemes/{a.id}.toml", "end",
                                   f"gap: ends {a.end}, {b.id} starts {b.start}: no {kind} scheme in between"))
    for s in all_schemes():
        file = f"schemes/{s.id}.toml"
        if s.kind == "ncms":
            for level in inpatient_levels:
                if s.rule(level) is None:
                    out.append(Problem(file, f"levels.{level}", "no rate and deductible (nor a fallback level that has them)"))
        if not CAP_RANGE[0] <= s.inpatient_cap <= CAP_RANGE[1]:
            out.append(Problem(file, "inpatient_cap", f"{s.inpatient_cap} is outside {CAP_RANGE[0]}..{CAP_RANGE[1]}"))
        if s.group_bonus > BONUS_MAX:
            out.append(Problem(file, "group_bonus", f"{s.group_bonus} is over {BONUS_MAX}"))
        if s.group_bonus and not (s.bonus_groups or s.bonus_age):
            out.append(Problem(file, "group_bonus", "a bonus with no bonus_groups and no bonus_age"))
        for key, rule in s.rules.items():
            if rule.deductible > DEDUCTIBLE_MAX:
                out.append(Problem(file, f"levels.{key}", f"deductible {rule.deductible} is over {DEDUCTIBLE_MAX}"))
            if rule.rate <= 0:
                out.append(Problem(file, f"levels.{key}", "rate is 0"))
        if s.outpatient_rate is not None and not s.outpatient_cap:
            out.append(Problem(file, "outpatient", "a rate with no yearly_cap"))
    return out


def _answer_days() -> list[dt.date]:
    """Today and each later day a scheme starts: answers are given with the schemes in force when asked
    (the earlier schemes stay for estimates of past admissions)."""
    from .schemes import all_schemes

    today = clock.today()
    return [today] + sorted({s.start for s in all_schemes() if s.start > today})


def _answers() -> list[Problem]:
    from . import qa
    from .schemes import all_schemes

    out = []
    for topic in qa.all_topics():
        for field in ("sms", "telegram"):
            failed = []
            for day in _answer_days():
                try:
                    text = qa.render_answer(getattr(topic, field), day)
                except Exception as e:  # a template error of any kind is the office's to fix
                    failed.append((day, e))
                    continue
                if field == "sms" and len(text) > qa.SMS_LIMIT:
                    out.append(Problem(f"qa/{topic.file}", topic.id, f"sms answer is {len(text)} characters on {day}, over {qa.SMS_LIMIT}"))
            if failed:
                days = ", ".join(str(d) for d, _ in failed)
                out.append(Problem(f"qa/{topic.file}", topic.id, f"{field} answer does not render with the schemes of {days}: {failed[0][1]}"))
    allowed = _scheme_numbers(all_schemes())
    today = _answer_days()[0]
    for topic in qa.all_topics():
        try:
            text = qa.render_answer(topic.sms, today)
        except Exception:  # already reported above
            continue
        if re.search(r"ncms\.bonus", topic.sms + topic.telegram) and qa.kb_vars(today)["ncms"]["bonus"] in ("0%", "0.0%"):
            out.append(Problem(f"qa/{topic.file}", topic.id, "states a group bonus; this county's scheme has none"))
        if "None" in text:
            out.append(Problem(f"qa/{topic.file}", topic.id, "shows None: a value the answer uses is not in this county's schemes"))
        unknown = sorted(n for n in set(_HOSPITAL.findall(text)) - _known_places() if not _KINDS.match(n))
        if unknown:
            out.append(Problem(f"qa/{topic.file}", topic.id, f"names hospitals that are not on hospitals.toml: {', '.join(unknown)}"))
        if "demo rule" in topic.source:
            continue
        stray = sorted({n for n in _NUMBER.findall(_QUOTED.sub("", text)) if _norm(n) not in allowed}, key=float)
        if stray:
            out.append(Problem(f"qa/{topic.file}", topic.id,
                               f"numbers not in the scheme data: {', '.join(stray)} (take them from a scheme, "
                               "or mark the source as a demo rule)"))
    if not out:  # deciding between topics needs every answer to render
        out += _claimed_twice()
    return out


# A hospital's own name in an answer (县人民医院, 市第一人民医院, 东山镇卫生院): it must be on the county's list
# or be a level word. Kinds of hospital (乡镇卫生院, 县级医院, 定点医院) are not names.
_NAME_CHAR = r"[^\W\d的在到去和或按由是时看了各级及与出入住院报费用目录内单清开票的外省地指定大上本县乡镇村]"
_HOSPITAL = re.compile(rf"(?:{_NAME_CHAR}{{1,4}}(?:市|县|镇|乡|区))?{_NAME_CHAR}{{0,3}}"
                       r"(?:第[一二三四五六七八九十]人民医院|人民医院|中医院|妇幼保健院|中心卫生院|(?<=[镇乡])卫生院)")
_KINDS = re.compile(r"^(?:县|市|省|乡|镇)?(?:人民医院|中医院|妇幼保健院|中心卫生院|卫生院)$")


def _known_places() -> set:
    """Every name a reply may give a hospital: the listed names and aliases, and the level words."""
    from . import hospitals

    known = {form for form, _ in hospitals.hospitals()}
    for level in loader.levels().values():
        known.update(level["words"] + [level["label"], level["name"]])
    return known


def _norm(number: str) -> str:
    return format(Decimal(number).normalize(), "f")


def _scheme_numbers(schemes) -> set[str]:
    """Every number a reply may show from the scheme data: amounts, rates as percents, bonus, ages, the
    collection dates, the schemes' years, and a cap in 万."""
    out = set()
    for s in schemes:
        values = [s.inpatient_cap, s.inpatient_cap / 10000, s.bonus_age or 0, s.start.year]
        values += [r.deductible for r in s.rules.values()]
        values += [r.rate * 100 for r in s.rules.values()] + [min(r.rate + s.group_bonus, 1) * 100 for r in s.rules.values()]
        values += [s.group_bonus * 100]
        if s.outpatient_rate is not None:
            values += [s.outpatient_rate * 100, s.outpatient_cap]
        for key, value in s.contribution.items():
            values += [Decimal(x) for x in value.split("-")] if key.startswith("collect_") else [value]
        out.update(_norm(str(v)) for v in values)
    return out


def _claimed_twice() -> list[Problem]:
    """A topic whose own question another topic answers as well (or instead). The questions are
    written in the form handlers/normalize.py gives (simplified characters), so they are decided as
    they stand."""
    from . import qa, understand

    out = []
    for topic in qa.all_topics():
        decision = understand.decide(topic.question)
        if decision.kind in ("answer", "partial") and decision.topics[:1] == [topic.id]:
            continue
        others = [t for t in decision.topics if t != topic.id] or [t for _, t in decision.scores[:1] if t != topic.id]
        reason = (f"its own question is claimed equally by {', '.join(others)}" if topic.id in decision.topics
                  else f"its own question goes to {', '.join(others) or 'no topic'} ({decision.kind})")
        out.append(Problem(f"qa/{topic.file}", topic.id, reason))
    return out


def _claims() -> list[Problem]:
    raw = loader.read_toml(loader.county_dir() / "claim_steps.toml")
    statuses = raw.get("status", {})
    if not statuses:
        return [Problem("claim_steps.toml", "status", "no claim statuses")]
    if sum(1 for v in statuses.values() if v.get("paid")) != 1:
        return [Problem("claim_steps.toml", "status", "exactly one status must be marked paid")]
    return []


def worked_examples(directory) -> list[dict]:
    """The estimator on a few standard bills per level, with the 新农合 scheme in force today: the table an
    office compares with its own document."""
    from . import estimator
    from .schemes import all_schemes

    before = loader._chosen
    loader.use_county(Path(directory))
    try:
        rows = []
        ncms = [s for s in all_schemes() if s.kind == "ncms"]
        if not ncms:
            return rows
        scheme = ncms[-1]
        for key, level in loader.levels().items():
            found = scheme.rule(key)
            if not level.get("inpatient", True) or found is None or found[0] != key:
                continue  # no inpatient benefit, or priced as the level it refines (its own row says it)
            for bill in BILLS:
                e = estimator.inpatient(scheme, key, bill)
                rows.append({"scheme": scheme.id, "level": level["label"], "visit": "住院", "bill": bill,
                             "deductible": e.deductible, "rate": e.rate, "reimbursed": e.reimbursed})
        if scheme.outpatient_rate is not None:
            e = estimator.outpatient(scheme, OUTPATIENT_BILL)
            rows.append({"scheme": scheme.id, "level": "门诊", "visit": "门诊", "bill": OUTPATIENT_BILL,
                         "deductible": Decimal(0), "rate": e.rate, "reimbursed": e.reimbursed})
        return rows
    finally:
        loader.use_county(before)


def new_county(directory) -> Path:
    """Start a county's directory from the demo's: everything copied, and the places an office must fill
    in marked 【填写…】 or 【核对…】, which `check` reports until they are gone."""
    import shutil

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} exists and is not empty")
    shutil.copytree(loader.DEMO_DIR, directory, dirs_exist_ok=True)
    (directory / "county.toml").write_text(_NEW_COUNTY, encoding="utf-8")
    (directory / "hospitals.toml").write_text(_NEW_HOSPITALS, encoding="utf-8")
    for path in sorted((directory / "schemes").glob("*.toml")):
        path.write_text("# 【核对:每个数字都对照本县补偿方案,写明出处(trace),再删去这一行】\n"
                        + path.read_text(encoding="utf-8"), encoding="utf-8")
    for path in sorted((directory / "qa").glob("*.toml")):
        path.write_text("# 【核对:每条答复对照本县政策,改成本县的说法,再删去这一行】\n"
                        + path.read_text(encoding="utf-8"), encoding="utf-8")
    return directory


_NEW_COUNTY = '''# The county this directory describes: every word a farmer reads about the county itself comes from here.
name = "【填写:县名,如 某某县】"
short = "【填写:简称】"
aliases = []                # other names people use for it
county_office = "县合管办"   # the county's office for the scheme, as replies name it
township_office = "乡镇合管办"
province = ""
source = "【填写:本县新农合实施方案/补偿方案的名称、文号和日期】"
'''

_NEW_HOSPITALS = '''# The county's designated hospitals: `level` is a key of levels.toml; `aliases` are other ways people
# write the name. A hospital outside the county that is not listed is non_designated.

[[hospitals]]
name = "【填写:定点医院全称】"
level = "county"
aliases = []
'''
