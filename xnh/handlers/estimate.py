"""Estimate a reimbursement from what the message says (and, for a known member, from the county
data: category, age from the ID number, what was already reimbursed this year)."""
import re
from decimal import Decimal

from .. import idnumber
from ..store import county
from ..message import Reply
from ..money import to_money
from ..policy_kb import estimator
from ..policy_kb.loader import levels
from ..policy_kb.schemes import scheme_for
from ..privacy import mask_name
from ..store.state import Conversation
from .context import Context
from .extract import Facts

TABLE_LEVELS = ("township", "county", "city_province", "non_designated")


def wants_estimate(f: Facts, text: str) -> bool:
    """An amount together with a visit, a level, or words about reimbursing or spending."""
    if f.total is None:
        return False
    return bool(f.visit or f.level or f.hospital or any(w in text for w in ("报", "花", "费", "用了", "开了", "交了")))


def remember(f: Facts, levels: list | None = None) -> Conversation:
    """What a follow-up naming the hospital needs, kept in the conversation memory."""
    return Conversation(pending="level", total=str(f.total), self_pay=str(f.self_pay), approximate=f.approximate,
                        visit=f.visit, groups=list(f.groups), age=f.age, urban=f.urban, third_party=f.third_party,
                        injury=f.injury, already=None if f.already is None else str(f.already),
                        levels=list(levels or []), you_pay=f.you_pay)


def picked_level(text: str, state: Conversation) -> str | None:
    """The level a reply like "2" picks from the numbered table of the last estimate."""
    m = re.fullmatch(r"\s*(?:第\s*)?([1-9])\s*(?:个|家|种)?\s*[.。]?\s*", text)
    rows = state.levels
    if state.pending != "level" or not m or int(m.group(1)) > len(rows):
        return None
    return rows[int(m.group(1)) - 1]


def recall(state: Conversation, f: Facts) -> Facts:
    """The remembered amount with the level (and anything new) from the follow-up."""
    f.total = Decimal(state.total)
    f.self_pay = Decimal(state.self_pay)
    f.approximate = state.approximate
    f.visit = f.visit or state.visit
    f.groups = sorted(set(f.groups) | set(state.groups))
    f.age = f.age or state.age
    f.urban = f.urban or state.urban
    f.third_party = f.third_party or state.third_party
    f.injury = f.injury or state.injury
    f.you_pay = f.you_pay or state.you_pay
    if f.already is None and state.already is not None:
        f.already = Decimal(state.already)
    return f


def _personal(ctx: Context, f: Facts) -> dict | None:
    """The sender's own member data, unless the message is about someone else."""
    me = ctx.me
    if me is None or f.third_party:
        return None
    year = ctx.today.year
    return {
        "member": me,
        "age": idnumber.age_on(me["id_number"], ctx.today),
        "category": me["category"],
        "already": county.reimbursed_this_year(ctx.db, me["member_id"], year),
        "name": mask_name(me["name"]),
    }


def _place(f: Facts) -> str:
    """Where the visit was, as a reply names it: the listed hospital, else the level's label."""
    if f.hospital and f.listed:
        return f.hospital
    return levels()[f.level]["label"] if f.level else ""


def _view(e: estimator.Estimate) -> dict:
    return {
        "level": e.level,
        "level_label": levels()[e.level]["label"] if e.level else "门诊",
        "total": e.total, "self_pay": e.self_pay, "deductible": e.deductible, "rate": e.rate,
        "bonus": e.bonus, "reimbursed": e.reimbursed, "you_pay": e.you_pay, "capped": e.capped,
        "cap": e.cap, "already": e.already, "remaining": e.remaining,
    }


def handle(ctx: Context, f: Facts) -> Reply:
    """The estimate reply: one level, a table of levels (and remember the amount), or outpatient."""
    personal = _personal(ctx, f)
    urban = f.urban or (personal and personal["category"] == "城镇居民")
    scheme = scheme_for(ctx.today, "urban" if urban else "ncms")
    groups = list(f.groups)
    age = f.age
    already = {"inpatient": Decimal(0), "outpatient": Decimal(0)}
    if personal:
        groups.append(personal["category"])
        age = age or personal["age"]
        already = personal["already"]
    if f.already is not None:  # the message says what was reimbursed already: it may know of a claim not yet synced
        already = {**already, "inpatient": f.already}
    data = {"year": ctx.today.year,  # "2026年已报", never "今年": at a year's edge a reader can't tell which
            "already_note": already["inpatient"] if personal or f.already is not None else None,
            "scheme": scheme, "approximate": f.approximate, "injury": f.injury, "hospital": f.hospital, "listed": f.listed,
            "place": _place(f), "personal": personal, "groups": [g for g in groups if g in scheme.bonus_groups],
            "age": age, "you_pay_asked": f.you_pay}
    visit = f.visit or ("outpatient" if f.level == "village" else "inpatient")
    if visit == "outpatient":
        return _outpatient(ctx, f, scheme, already, data)
    if f.level is None:
        return _table(ctx, f, scheme, groups, age, already, data)
    try:
        e = estimator.inpatient(scheme, f.level, f.total, f.self_pay, groups, age, already["inpatient"])
    except estimator.NotCovered:
        e = None
    # keep the amount: "那在省医院呢" right after compares another level
    ctx.state = remember(f)
    if e is None:
        return Reply("estimate", "estimate_not_covered",
                     {**data, "level_label": levels()[f.level]["label"], "level": f.level, "total": f.total})
    return Reply("estimate", "estimate", {**data, **_view(e), "estimate": e.as_json()})


def _outpatient(ctx, f, scheme, already, data) -> Reply:
    ctx.state = remember(f)  # "是住院" next turns the same amount into the inpatient table
    try:
        e = estimator.outpatient(scheme, f.total, f.self_pay, already["outpatient"])
    except estimator.NotCovered:
        return Reply("estimate", "estimate_not_covered",
                     {**data, "level_label": "门诊", "level": "outpatient", "total": f.total})
    return Reply("estimate", "estimate_outpatient", {**data, **_view(e), "estimate": e.as_json()})


def _table(ctx, f, scheme, groups, age, already, data) -> Reply:
    rows = []
    for level in TABLE_LEVELS:
        try:
            e = estimator.inpatient(scheme, level, f.total, f.self_pay, groups, age, already["inpatient"])
        except estimator.NotCovered:
            continue
        rows.append({"level": level, "label": levels()[level]["label"], "reimbursed": e.reimbursed,
                     "you_pay": e.you_pay, "rate": e.rate, "deductible": e.deductible, "json": e.as_json()})
    ctx.state = remember(f, levels=[r["level"] for r in rows])
    summary = {
        "reimbursed": None, "level": None, "scheme": scheme.id, "total": str(to_money(f.total)),
        "self_pay": str(to_money(f.self_pay)), "deductible": None, "rate": None,
        "per_level": {r["level"]: r["json"] for r in rows},
    }
    bonus = estimator.group_bonus(scheme, groups, age)
    return Reply("estimate", "estimate_table",
                 {**data, "rows": rows, "total": f.total, "self_pay": f.self_pay, "bonus": bonus, "estimate": summary})
