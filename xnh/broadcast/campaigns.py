"""Campaigns: create, preview, send (materialise every recipient into the outbox), cancel, status.

    cid = create(db, name="缴费提醒", audience="unpaid=2027", text="{{ name }}您好…", actor="clerk1")
    p = preview(db, cid)            # count, exclusions, 3 samples, segments, cost, time, blockers, same-day
    send(db, cid, actor="clerk1")   # → rows queued; the worker sends them
    cancel(db, cid, actor="clerk1") # waiting rows → cancelled at once
    status(db, cid)                 # counts by status, failures by reason, rows claimed when a worker died

One message per phone per campaign: each phone of a matching household once (the unique index on
(campaign, recipient, channel) holds it even if `send` ran twice). With channels sms and telegram, a
phone bound to a Telegram user gets the Telegram message instead of an SMS; with telegram alone, only
bound phones are reached. Opted-out and known-bad numbers are written as `skipped` with their reason,
so the counts say who was left out and why.

Recipients are written in one INSERT … SELECT from the county data (no Python loop per row): the row
holds the recipient's fields as JSON and the worker renders the text when it claims the row.
Every create, send and cancel is written to the audit log with its actor.
"""
import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

from .. import clock, quiet_hours
from ..policy_kb.schemes import scheme_for
from ..privacy import mask_name
from ..providers import telegram, twilio
from ..settings import Settings
from ..store import campaigns as store
from ..store import meta, outbox
from ..store.db import writing
from ..store.state import audit
from . import audience as aud
from . import campaign_text

CHANNELS = ("sms", "telegram")  # a clerk's free text: WeChat notices and China SMS go by approved templates only
DEFAULT_WINDOW = quiet_hours.DEFAULT
EXACT_UP_TO = 20000  # a preview renders every recipient up to this many, else an even sample of them
DEFAULTS = Settings()  # rate and price when the caller passes no settings
_HM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class CampaignError(ValueError):
    """A campaign that cannot be created, sent or cancelled as asked (the message says why)."""


@dataclass
class Preview:
    count: int  # messages that will be sent (exclusions not counted)
    excluded: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    segments_per_message: int = 0  # the most any one message costs
    total_segments: int = 0  # SMS parts in all (Telegram messages cost none)
    cost: Decimal = Decimal("0")
    seconds: float = 0.0
    blockers: list[str] = field(default_factory=list)
    same_day: int = 0  # phones already in another campaign today
    channels: dict[str, int] = field(default_factory=dict)  # messages by channel


# -- create ---------------------------------------------------------------------------------------------

def create(db, *, name: str, audience: str, text: str, channels=("sms",), schedule=None,
           window=DEFAULT_WINDOW, actor: str) -> int:
    """Save a campaign (not sent yet) and return its id. Raises CampaignError (AudienceError and
    TemplateProblem are CampaignErrors' siblings: ValueError) for what cannot work at all."""
    name, text = (name or "").strip(), text or ""
    if not name:
        raise CampaignError("活动名称为空 / a campaign needs a name")
    aud.parse(audience)
    campaign_text.compile_text(text)
    chans = _channels(channels)
    quiet = _window(window)
    when = _schedule(schedule)
    with writing(db):
        cid = store.insert(db, name=name, audience=audience.strip(), text=text, channels=chans,
                           schedule=when.isoformat() if when else None, quiet=quiet, actor=actor)
        audit(db, actor, "campaign_create", {"campaign": cid, "name": name, "audience": audience.strip()})
    return cid


def _channels(channels) -> list[str]:
    chans = [c for c in CHANNELS if c in set(channels or ())]
    unknown = set(channels or ()) - set(CHANNELS)
    if unknown or not chans:
        raise CampaignError(f"渠道不对 / channels must be sms and/or telegram, not {sorted(unknown) or 'none'}")
    return chans


def _window(window) -> tuple[str | None, str | None]:
    """(quiet_start, quiet_end): no sends from start until end (China time); (None, None) sends at any hour."""
    if window is None:
        return None, None
    if isinstance(window, str):
        window = tuple(window.split("-"))
    if len(window) != 2 or not all(isinstance(w, str) and _HM.fullmatch(w) for w in window):
        raise CampaignError(f"发送时段不对 / window {window!r}: write it as 21:00-08:00 (the hours with no sends)")
    return (None, None) if window[0] == window[1] else (window[0], window[1])


def _schedule(schedule) -> dt.datetime | None:
    if schedule in (None, "", "now"):
        return None
    if isinstance(schedule, dt.datetime):
        value = schedule
    else:
        try:
            value = dt.datetime.fromisoformat(str(schedule))
        except ValueError:
            raise CampaignError(f"时间不对 / --at {schedule!r} is not an ISO date-time (2026-12-01T09:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=clock.CHINA)


# -- reading a campaign -----------------------------------------------------------------------------------

def get(db, campaign_id: int) -> dict:
    found = store.get(db, campaign_id)
    if found is None:
        raise CampaignError(f"没有这个活动 / no campaign {campaign_id}")
    return found


def list_campaigns(db) -> list[dict]:
    """Every campaign, newest first, with its counts by status (kept until its rows change) and whether it
    has finished (nothing waiting or being sent)."""
    found = []
    for cid in store.ids(db):
        counts = counts_of(db, cid)
        found.append({**get(db, cid), "counts": counts, "finished": _finished(counts)})
    return found


def counts_of(db, campaign_id: int) -> dict:
    """The campaign's rows by status, kept until one of them changes (store.kept_counts)."""
    return store.kept_counts(db, campaign_id, lambda: outbox.counts(db, campaign_id))


def _finished(counts: dict) -> bool:
    return sum(counts.get(s, 0) for s in ("pending", "claimed", "retry_wait")) == 0 and sum(counts.values()) > 0


def campaign_fields(campaign: dict) -> dict:
    """The fields every recipient of `campaign` shares: year and deadline (the last day of the contribution
    collection, from the scheme file in force on it: `[contribution] collect_until`)."""
    audience = aud.parse(campaign["audience"])
    today = clock.today()
    year = audience.year or today.year
    deadline_year = year - 1 if "unpaid" in audience.terms else today.year
    return {"year": year, "deadline": contribution_deadline(deadline_year)}


def contribution_deadline(year: int) -> str:
    """"2026年12月30日": the day the contribution collected in `year` closes, from the scheme file."""
    until = scheme_for(dt.date(year, 12, 31)).contribution["collect_until"]  # "MM-DD", checked by the loader
    return f"{year}年{int(until[:2])}月{int(until[3:])}日"


# -- the audience as rows ----------------------------------------------------------------------------------

_TEMP = "temp._xnh_audience"


def _build_audience(db, audience_text: str) -> None:
    """Fill temp._xnh_audience(phone, household_id, name, township, amount) with one row per phone of every
    matching household (the phone's own member: the householder first). Names are masked here."""
    audience = aud.parse(audience_text)
    households, params = aud.households_sql(audience, clock.today())
    claims = "claim_status" in audience.terms or "claim_days" in audience.terms
    if claims:
        cond, cparams = ["c.household_id = p.household_id"], []
        if "claim_status" in audience.terms:
            cond.append("c.status = ?")
            cparams.append(audience.terms["claim_status"])
        amount = (f"(SELECT c.reimbursed FROM claims AS c WHERE {' AND '.join(cond)} "
                  "ORDER BY coalesce(nullif(c.paid_date, ''), c.admitted) DESC LIMIT 1)")
    else:
        year = (audience.terms["unpaid"] - 1) if "unpaid" in audience.terms else (audience.year or clock.today().year)
        amount = ("(SELECT printf('%d.%02d', s / 100, s % 100) FROM (SELECT sum(CAST(round(CAST(e.paid_amount AS REAL)"
                  " * 100) AS INTEGER)) AS s FROM enrollments AS e WHERE e.household_id = p.household_id "
                  "AND e.year = ? AND e.paid_amount != ''))")
        cparams = [year]
    db.conn.create_function("xnh_mask_name", 1, mask_name, deterministic=True)
    db.conn.execute(f"DROP TABLE IF EXISTS {_TEMP}")
    db.conn.execute(f"""
        CREATE TABLE {_TEMP} AS
        WITH hh AS ({households}),
        ph AS (SELECT m.phone, m.household_id, m.name, m.township,
                      row_number() OVER (PARTITION BY m.phone ORDER BY m.relation != '户主', m.member_id) AS rn
               FROM members AS m JOIN hh ON hh.household_id = m.household_id
               WHERE m.phone IS NOT NULL AND m.phone != '')
        SELECT p.phone, p.household_id, xnh_mask_name(p.name) AS name, p.township, {amount} AS amount
        FROM ph AS p WHERE p.rn = 1""", params + cparams)


_TG = "(SELECT phone, min(sender) AS sender FROM bindings WHERE channel = 'telegram' GROUP BY phone)"


def _recipients_sql(channels: list[str]) -> str:
    """SELECT recipient, channel, phone, fields (JSON), exclusion reason (or NULL) from the temp audience."""
    fields = "json_object('name', a.name, 'township', a.township, 'amount', a.amount)"
    reason = ("CASE WHEN EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.phone = a.phone AND s.subscribed = 0) "
              "THEN 'opted out' WHEN EXISTS (SELECT 1 FROM bad_numbers AS x WHERE x.phone = a.phone) "
              "THEN 'bad number' END")
    parts = []
    if "telegram" in channels:
        parts.append(f"SELECT t.sender AS recipient, 'telegram' AS channel, a.phone, {fields} AS fields, "
                     f"{reason} AS reason FROM {_TEMP} AS a JOIN {_TG} AS t ON t.phone = a.phone")
    if "sms" in channels:
        skip_bound = (f" WHERE NOT EXISTS (SELECT 1 FROM bindings AS b WHERE b.phone = a.phone "
                      f"AND b.channel = 'telegram')") if "telegram" in channels else ""
        parts.append(f"SELECT a.phone AS recipient, 'sms' AS channel, a.phone, {fields} AS fields, "
                     f"{reason} AS reason FROM {_TEMP} AS a{skip_bound}")
    return " UNION ALL ".join(parts)


# -- preview ----------------------------------------------------------------------------------------------

def preview(db, campaign_id: int, settings: Settings = DEFAULTS) -> Preview:
    """What sending campaign `campaign_id` would do (nothing is written but a temp table), at the rate
    and price of `settings`."""
    c = get(db, campaign_id)
    return _preview(db, c, settings, exclude_campaign=campaign_id)


def draft_preview(db, *, audience: str, text: str, channels=("sms",), window=DEFAULT_WINDOW,
                  schedule=None, settings: Settings = DEFAULTS) -> Preview:
    """The preview of a campaign not saved yet (the console's live preview). An unreadable audience or
    template is a blocker here, not an exception."""
    try:
        chans, quiet = _channels(channels), _window(window)
        when = _schedule(schedule)
        aud.parse(audience)
    except ValueError as e:
        return Preview(count=0, blockers=[str(e)])
    c = {"id": None, "audience": audience, "text": text, "channels": chans, "quiet_start": quiet[0],
         "quiet_end": quiet[1], "schedule": when.isoformat() if when else None}
    return _preview(db, c, settings, exclude_campaign=None)


def _preview(db, c: dict, settings: Settings, exclude_campaign, exact_up_to: int = EXACT_UP_TO) -> Preview:
    """The preview, streaming the audience (a cursor, never a list of every recipient: bounded memory at
    millions) and rendering at most `exact_up_to` of its SMS, evenly spread, within PREVIEW_SECONDS."""
    _build_audience(db, c["audience"])
    recipients = _recipients_sql(c["channels"])
    sms_count = db.conn.execute(f"SELECT count(*) FROM ({recipients}) WHERE channel = 'sms' AND reason IS NULL"
                                ).fetchone()[0]
    step = max(1, -(-sms_count // exact_up_to))
    p, sms_seen, measured = Preview(count=0), 0, []
    for recipient, channel, _, fields, reason in db.conn.execute(
            f"SELECT recipient, channel, phone, fields, reason FROM ({recipients}) ORDER BY recipient"):
        if reason:
            p.excluded[reason] = p.excluded.get(reason, 0) + 1
            continue
        p.count += 1
        p.channels[channel] = p.channels.get(channel, 0) + 1
        if len(p.samples) < 3:
            p.samples.append(fields)
        if channel == "sms":
            if sms_seen % step == 0:
                measured.append(fields)
            sms_seen += 1
    shared = campaign_fields(c)
    _measure(p, c["text"], measured, sms_count, shared, settings)
    p.same_day = _same_day(db, exclude_campaign)
    p.blockers += _window_blockers(c)
    if not p.count and not any("模板" in b for b in p.blockers):
        p.blockers.insert(0, "收件人为空 / the audience is empty: nobody would get this message")
    return p


PREVIEW_SECONDS = 2.0  # rendering for a preview stops measuring after this long (the rest is estimated)


def _measure(p: Preview, text: str, measured: list, sms_count: int, shared: dict, settings: Settings) -> None:
    """Samples, segments, cost and time from the rendered `measured` SMS fields (an even sample of the
    `sms_count` SMS); a template error or a text over the limit becomes a blocker."""
    deadline = time.monotonic() + PREVIEW_SECONDS
    try:
        campaign_text.compile_text(text)
        samples = p.samples or [json.dumps({"name": "张*三", "township": "", "amount": ""})]
        p.samples = [campaign_text.render(text, {**json.loads(f), **shared}) for f in samples]
        lengths = []
        for fields in measured:
            lengths.append(campaign_text.render(text, {**json.loads(fields), **shared}))
            if time.monotonic() > deadline:
                break
    except campaign_text.TemplateProblem as e:
        p.blockers.append(str(e))
        p.samples = []
        return
    longest = max((len(t) for t in lengths + p.samples), default=0)
    if longest > twilio.MAX_CHARS:
        p.blockers.append(f"短信过长 / the text is {longest} characters, over the limit of {twilio.MAX_CHARS}")
    per = [twilio.parts(t) for t in lengths]
    p.segments_per_message = max(per + [twilio.parts(t) for t in p.samples], default=0)
    p.total_segments = round(sum(per) * sms_count / len(per)) if per else 0
    p.cost = (settings.sms_price * p.total_segments).quantize(Decimal("0.01"))
    tg = p.channels.get("telegram", 0)
    pace = outbox.SAFETY  # the worker spaces sends at this share of the rate
    p.seconds = round(max(p.total_segments / (settings.sms_per_second * pace), tg / (telegram.PER_SECOND * pace)), 1)


def _same_day(db, exclude_campaign) -> int:
    """Phones of the audience already sent to (or queued) by another campaign today (policy date)."""
    today = clock.today().isoformat()
    return db.conn.execute(
        f"SELECT count(DISTINCT a.phone) FROM {_TEMP} AS a WHERE EXISTS (SELECT 1 FROM outbox AS o "
        "WHERE o.recipient = a.phone AND o.campaign_id IS NOT NULL AND o.campaign_id IS NOT ? "
        "AND substr(o.created_at, 1, 10) = ? AND o.status NOT IN ('skipped', 'cancelled'))",
        [exclude_campaign, today]).fetchone()[0]


def _window_blockers(c: dict) -> list[str]:
    """Sending now (no schedule) while the quiet hours run until tomorrow: say so, so the clerk sets --at."""
    if c.get("schedule") or not c.get("quiet_start"):
        return []
    now = clock.now().astimezone(clock.CHINA)
    hm, start, end = now.strftime("%H:%M"), c["quiet_start"], c["quiet_end"]
    if quiet_hours.is_quiet(hm, start, end) and start > end and hm >= start:
        return [f"发送时段明天{end}才开始 / the send window starts tomorrow at {end} (now {hm}, no sends "
                f"{start}–{end}): schedule it with --at, or send in the morning"]
    return []


# -- send, cancel, status ------------------------------------------------------------------------------------

def send(db, campaign_id: int, actor: str) -> int:
    """Queue every recipient of the campaign in the outbox (one INSERT … SELECT) and mark it sending.
    Returns the rows queued (exclusions included, as skipped). Refuses a demo database, a cancelled
    campaign, and anything a preview lists as a blocker; a second send queues nobody twice."""
    if meta.is_demo(db):
        raise CampaignError("演示数据库不发送 / the demo database never sends (its phones have a real format)")
    c = get(db, campaign_id)
    if c["status"] == "cancelled":
        raise CampaignError(f"活动已取消 / campaign {campaign_id} was cancelled")
    p = _preview(db, c, DEFAULTS, exclude_campaign=campaign_id, exact_up_to=200)  # the checks, on a small sample
    if p.blockers:
        raise CampaignError("; ".join(p.blockers))
    not_before = dt.datetime.fromisoformat(c["schedule"]).timestamp() if c["schedule"] else None
    with writing(db):
        queued = outbox.queue_campaign(db, c, _recipients_sql(c["channels"]), not_before)
        store.mark_sending(db, campaign_id)
        audit(db, actor, "campaign_send", {"campaign": campaign_id, "queued": queued, "excluded": p.excluded})
    return queued


def cancel(db, campaign_id: int, actor: str) -> int:
    """Stop a campaign: every row still waiting (pending, retry_wait) is cancelled at once; rows a worker
    has already claimed finish. Returns the rows cancelled."""
    get(db, campaign_id)
    with writing(db):
        n = outbox.cancel_waiting(db, campaign_id)
        store.mark_cancelled(db, campaign_id)
        audit(db, actor, "campaign_cancel", {"campaign": campaign_id, "cancelled": n})
    return n


def resend_unknown(db, campaign_id: int, actor: str, ids: list[int] | None = None) -> int:
    """A clerk resends the campaign's rows whose fate is unknown (all, or `ids`); audited. Returns how many."""
    get(db, campaign_id)
    with writing(db):
        n = outbox.resend_unknown(db, ids=ids, campaign_id=campaign_id)
        audit(db, actor, "outbox_resend", {"campaign": campaign_id, "rows": n})
    return n


def resume(db, campaign_id: int, actor: str) -> None:
    """Lift a pause (after a burst of carrier blocks): its waiting rows are sent again."""
    get(db, campaign_id)
    with writing(db):
        store.unpause(db, campaign_id)
        audit(db, actor, "campaign_resume", {"campaign": campaign_id})


def status(db, campaign_id: int) -> dict:
    """The campaign, its rows by status, failures by reason, the rows claimed by a worker that died and
    not yet settled with the provider (`stale_claims`), the rows whose fate is unknown (`unknown`: the
    provider may have them and could not be asked; a clerk may resend them), and whether it is paused and why."""
    c = get(db, campaign_id)
    counts = counts_of(db, campaign_id)
    done = sum(counts.get(s, 0) for s in ("pending", "claimed", "retry_wait")) == 0
    return {**c, "counts": counts, "failures": outbox.failures(db, campaign_id),
            "stale_claims": outbox.stale_claims(db, campaign_id), "unknown": outbox.unknown_rows(db, campaign_id),
            "paused": bool(c["paused"]),
            "paused_reason": c["paused_reason"], "finished": done and c["status"] in ("sending", "cancelled"),
            "total": sum(counts.values())}
