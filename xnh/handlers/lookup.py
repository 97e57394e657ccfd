"""查参合 / 查报销: personal data from the synced county export, only for a household bound to the
sender's phone or proven with `查询 身份证号 姓名`. Names and numbers are masked in every reply."""
import re
from decimal import Decimal

from .. import idnumber
from ..store import county
from ..store import state as store
from ..store.state import Conversation
from ..message import Reply
from ..policy_kb.loader import county_cached, county_dir, read_toml
from ..policy_kb.schemes import scheme_for
from ..privacy import mask_name
from .context import Context

MAX_FAILED = 5  # failed identity attempts per sender per day
_ID_LIKE = re.compile(r"(?<![\dXx])\d{14,17}[\dXx](?![\dXx])")
# words around an ID and a name that are not the name: "我的身份证号是…,名字叫…,查一下报销"
_NOT_NAME = re.compile(
    r"身份证号码|身份证号|身份证|证件号|号码|名字|姓名|叫做|我叫|叫|查询|查一下|查查|查看|查|一下|帮我|帮忙|麻烦|请|"
    r"报销|参合|合作医疗|新农合|情况|进度|结果|谢谢|你好|您好|我的|我是|我们|我|是|的|和|还有")


@county_cached
def _steps() -> dict:
    return read_toml(county_dir() / "claim_steps.toml")


def parse_identity(text: str) -> tuple[str, str | None] | None:
    """(ID number, name) from a message carrying an ID number: '查询 52990119560808001X 杨树林',
    '杨树林 52990119560808001X', '我的身份证是…,名字杨树林,查一下报销'. The name is None when the
    message has no single 2–4 character name besides the usual words. None without an ID number."""
    m = _ID_LIKE.search(text)
    if not m:
        return None
    rest = _NOT_NAME.sub(" ", text[:m.start()] + " " + text[m.end():])
    names = re.findall(r"[\u4e00-\u9fff·]{2,4}", rest)
    return m.group().upper(), names[0] if len(names) == 1 else None


def verify(ctx: Context, number: str, name: str | None) -> Reply:
    """Prove identity with ID number + name. Never says whether the ID exists."""
    sender = ctx.message.sender
    want = _wanted(ctx.text) or ctx.state.want or "claim_status"
    if name is None:  # not a failed try: the message only lacks a readable name
        ctx.state = Conversation(pending="verify", want=want)
        return Reply(want, "ask_identity", {"need_name": True})
    if store.failed_attempts_today(ctx.db, sender) >= MAX_FAILED:
        return Reply(want, "verify_locked", {})
    if not idnumber.is_valid(number):
        store.record_attempt(ctx.db, sender, False)
        return Reply(want, "verify_bad_number", {})
    member = county.member_by_id_number(ctx.db, number)
    if member is None or member["name"] != name:
        store.record_attempt(ctx.db, sender, False)
        left = MAX_FAILED - store.failed_attempts_today(ctx.db, sender)
        return Reply(want, "verify_failed", {"left": max(0, left)})
    store.record_attempt(ctx.db, sender, True)
    store.verify_sender(ctx.db, sender, member["household_id"])
    ctx.__dict__.pop("households", None)
    ctx.state = Conversation()
    return enrollment(ctx) if want == "enrollment" else claim_status(ctx)


def _wanted(text: str) -> str | None:
    """What a message that carries an ID number asks for, when it says: 参合 words or 报销 words."""
    if re.search(r"参合|合作医疗|新农合|交钱|缴费|交费|交了", text):
        return "enrollment"
    if re.search(r"报销|报账|补偿|到账|拨付|审核", text):
        return "claim_status"
    return None


def _ask_identity(ctx: Context, want: str) -> Reply:
    ctx.state = Conversation(pending="verify", want=want)
    return Reply(want, "ask_identity", {})


def enrollment(ctx: Context) -> Reply:
    """This year's enrollment of the sender's household(s): who, paid how much, when; or how to pay."""
    if not ctx.households:
        return _ask_identity(ctx, "enrollment")
    year = ctx.today.year
    scheme = scheme_for(ctx.today, "ncms")
    households = []
    for hh in ctx.households:
        rows = county.household_enrollment(ctx.db, hh, year)
        nxt = county.household_enrollment(ctx.db, hh, year + 1)
        households.append({
            "members": [_enrolled(r) for r in rows],
            "next_members": [_enrolled(r) for r in nxt],
            "unpaid": [r for r in rows if r["status"] == "未缴费"],
            "due": sum(_due(r, scheme) for r in rows if r["status"] == "未缴费"),
        })
    contribution = scheme.contribution
    window = _collection_window(ctx, contribution)
    return Reply("enrollment", "enrollment", {"year": year, "households": households, "window": window,
                                              "per_person": contribution.get("per_person")})


def _enrolled(r: dict) -> dict:
    return {"name": mask_name(r["name"]), "relation": r["relation"] or "", "status": r["status"],
            "paid": r["paid_amount"] or "",
            "paid_date": r["paid_date"] or "", "category": r["category"]}


def _due(row: dict, scheme) -> Decimal:
    if row["category"] in ("五保户", "低保户"):
        return Decimal(0)
    return scheme.contribution.get("per_person", Decimal(0))


def _collection_window(ctx: Context, contribution: dict) -> dict:
    """The next (or current) collection window: for year Y it runs in the autumn of Y−1."""
    start, end = contribution.get("collect_from", "11-01"), contribution.get("collect_until", "12-30")
    y = ctx.today.year
    today = ctx.today.strftime("%m-%d")
    return {"for_year": y + 1, "from": _md(start), "until": _md(end), "open": start <= today <= end,
            "calendar_year": y}


def _md(mmdd: str) -> str:
    m, d = mmdd.split("-")
    return f"{int(m)}月{int(d)}日"


def claim_status(ctx: Context) -> Reply:
    """The household's claims this year: status in plain words, amount, payment, next step."""
    if not ctx.households:
        return _ask_identity(ctx, "claim_status")
    year = ctx.today.year
    claims = []
    for hh in ctx.households:
        claims += [_claim_view(c) for c in county.household_claims(ctx.db, hh, year)]
    return Reply("claim_status", "claim_status", {"year": year, "claims": claims})


def _claim_view(c: dict) -> dict:
    steps = _steps()
    view = {
        "name": mask_name(c["name"]), "visit": c["visit_type"], "hospital": c["hospital"],
        "month": int(c["admitted"][5:7]) if c["admitted"] else None, "status": c["status"],
        "year": int(c["admitted"][:4]) if c["admitted"] else None,
        "meaning": steps["status"].get(c["status"], {}).get("meaning", ""),
        "amount": c["reimbursed"] or "", "total": c["total"] or "", "paid_date": c["paid_date"] or "",
        "channel": c["paid_channel"] or "", "reason": c["reject_reason"] or "", "next": "",
    }
    if c["status"] == "未通过":
        reason = c["reject_reason"] or ""
        for rule in steps["reasons"]:
            if not rule["match"] or any(w in reason for w in rule["match"]):
                view["next"] = rule["next"]
                break
    return view


def quota(ctx: Context) -> Reply:
    """What the sender has had reimbursed this year and what is left of the inpatient and outpatient caps."""
    me = ctx.me
    scheme = scheme_for(ctx.today, "urban" if me["category"] == "城镇居民" else "ncms")
    done = county.reimbursed_this_year(ctx.db, me["member_id"], ctx.today.year)
    op_cap = scheme.outpatient_cap
    return Reply("claim_status", "quota", {
        "name": mask_name(me["name"]), "year": ctx.today.year, "scheme": scheme,
        "inpatient": done["inpatient"], "inpatient_left": max(Decimal(0), scheme.inpatient_cap - done["inpatient"]),
        "outpatient": done["outpatient"],
        "outpatient_left": max(Decimal(0), op_cap - done["outpatient"]) if op_cap is not None else None,
    })
