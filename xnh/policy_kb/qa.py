"""The Q&A topics of policy_kb/qa/*.toml: loaded, validated, and answered with the numbers of the
scheme in force (answers are Jinja2 strings over `kb_vars`, so a new scheme file changes them).

A topic:
    id          unique, snake_case
    question    the canonical question
    concepts    what it answers, as "dimension:value" of concepts.toml; "dimension:value?" also fits a
                question silent in that dimension (policy_kb/understand.py ranks on these)
    points      what its answer states of points.toml (whether, amount, time, where, documents, how …):
                a question asking another point gets this answer only as a partial one
    paraphrases ≥ 6 ways rural users write it (used for matching)
    heldout     more paraphrases, never used for matching: the held-out evaluation (bench/kb_eval.py)
    sms         the short answer (≤ 134 characters once rendered)
    telegram    the fuller answer (HTML allowed: <b>, <i>)
    source      seed file and section, or POLICY.md section
"""
import datetime as dt
from dataclasses import dataclass

from jinja2 import Environment, StrictUndefined, TemplateError

from ..money import percent, yuan
from .loader import KBError, county, county_cached, county_dir, levels, read_toml, require
from .schemes import all_schemes, scheme_for

SMS_LIMIT = 134
MIN_PARAPHRASES = 6


@dataclass(frozen=True)
class Topic:
    id: str
    question: str
    concepts: tuple
    points: frozenset
    paraphrases: tuple
    heldout: tuple
    sms: str
    telegram: str
    source: str
    file: str


def _mmdd(value: str) -> str:
    month, day = value.split("-")
    return f"{int(month)}月{int(day)}日"


def _scheme_vars(s) -> dict:
    out = {
        "name": s.name, "short": s.short, "source": s.source,
        "rate": {k: percent(r.rate) for k, r in s.rules.items()},
        "deductible": {k: yuan(r.deductible) for k, r in s.rules.items()},
        "bonus_rate": {k: percent(min(r.rate + s.group_bonus, 1)) for k, r in s.rules.items()},
        "cap": yuan(s.inpatient_cap),
        "cap_wan": f"{(s.inpatient_cap / 10000).normalize():f}万",
        "bonus": percent(s.group_bonus), "bonus_age": s.bonus_age, "bonus_groups": "、".join(s.bonus_groups),
        "op_rate": percent(s.outpatient_rate) if s.outpatient_rate is not None else None,
        "op_cap": yuan(s.outpatient_cap) if s.outpatient_cap is not None else None,
        "level": {k: v["label"] for k, v in levels().items()},
    }
    for key, value in s.contribution.items():
        out[key] = _mmdd(value) if key.startswith("collect_") else yuan(value)
    return out


def kb_vars(day: dt.date) -> dict:
    """What answers may use: `ncms` and `urban`, the schemes in force on `day` (a county without an
    urban residents' scheme has no `urban`: an answer using it does not render, and the check says so),
    and `county`, the county's own names (county.toml)."""
    out = {"ncms": _scheme_vars(scheme_for(day, "ncms")), "county": county()}
    urban = [s for s in all_schemes() if s.kind == "urban" and s.start <= day and (s.end is None or day <= s.end)]
    if urban:
        out["urban"] = _scheme_vars(urban[-1])
    return out


@county_cached
def _env() -> Environment:
    env = Environment(undefined=StrictUndefined, autoescape=False)
    env.globals.clear()  # answers use only kb_vars(): every render would copy Jinja's default globals
    return env


@county_cached
def _compiled(source: str):
    return _env().from_string(source)


@county_cached
def _vars(day: dt.date) -> dict:
    return kb_vars(day)


def render_answer(source: str, day: dt.date) -> str:
    """An answer with the numbers of the schemes in force on `day` (templates and values cached)."""
    return _compiled(source).render(**_vars(day)).strip()


def _topic(raw: dict, where: str, file: str) -> Topic:
    t = Topic(
        id=require(raw, "id", where, str),
        question=require(raw, "question", where, str),
        concepts=tuple(raw.get("concepts", [])),
        points=frozenset(require(raw, "points", where, list)),
        paraphrases=tuple(require(raw, "paraphrases", where, list)),
        heldout=tuple(raw.get("heldout", [])),
        sms=require(raw, "sms", where, str),
        telegram=require(raw, "telegram", where, str),
        source=require(raw, "source", where, str),
        file=file,
    )
    where = f"{file} [{t.id}]"
    if len(t.paraphrases) < MIN_PARAPHRASES:
        raise KBError(f"{where}: needs at least {MIN_PARAPHRASES} paraphrases, has {len(t.paraphrases)}")
    from .concepts import labels
    from .points import names

    unknown = t.points - names()
    if unknown or not t.points:
        raise KBError(f"{where}: points must name what the answer states, of points.toml; "
                      f"{'unknown: ' + ', '.join(sorted(unknown)) if unknown else 'none given'}")
    for concept in t.concepts:
        dimension, _, values = concept.rstrip("?").partition(":")
        if any(f"{dimension}:{v}" not in labels() for v in values.split("|")):
            raise KBError(f"{where}: unknown concept {concept!r} (see concepts.toml)")
    return t


@county_cached
def all_topics() -> tuple[Topic, ...]:
    """Every topic of the county's qa/*.toml, each checked on its own: unique ids, required fields."""
    out, seen = [], {}
    for path in sorted((county_dir() / "qa").glob("*.toml")):
        rows = require(read_toml(path), "topics", path.name, list)
        for i, raw in enumerate(rows):
            t = _topic(raw, f"{path.name} topics[{i}]", path.name)
            if t.id in seen:
                raise KBError(f"{path.name} [{t.id}]: id already used in {seen[t.id]}")
            seen[t.id] = path.name
            out.append(t)
    return tuple(out)


@county_cached
def topics() -> tuple[Topic, ...]:
    """Every topic, with every answer rendered against today's schemes and the SMS within its limit."""
    out = all_topics()
    validate_answers(out, dt.date.today())
    return out


_SEP = "\n\x1e\n"  # between answers rendered together (a record separator no answer contains)


def validate_answers(items, day: dt.date) -> None:
    """Render every answer with the schemes of `day`; SMS answers must fit SMS_LIMIT.

    All answers are rendered as one template (one Jinja2 compile instead of one per answer: the
    cold start of `xnh ask` is ~0.25 s shorter); when that fails, each is rendered alone to name it."""
    fields = [(t, f) for t in items for f in ("sms", "telegram")]
    try:
        texts = render_answer(_SEP.join(getattr(t, f) for t, f in fields), day).split(_SEP.strip("\n"))
        texts = [x.strip() for x in texts]
    except TemplateError:
        texts = None
    if texts is None or len(texts) != len(fields):
        texts = []
        for t, field in fields:
            try:
                texts.append(render_answer(getattr(t, field), day))
            except TemplateError as e:
                raise KBError(f"{t.file} [{t.id}]: {field} answer does not render: {e}") from e
    for (t, field), text in zip(fields, texts):
        if field == "sms" and len(text) > SMS_LIMIT:
            raise KBError(f"{t.file} [{t.id}]: sms answer is {len(text)} characters, over {SMS_LIMIT}")


def by_id(topic_id: str) -> Topic:
    for t in topics():
        if t.id == topic_id:
            return t
    raise KeyError(topic_id)
