"""Payment-period notices (缴费期通知) over the channels that carry only approved templates: a follower bound
to a household's phone gets WeChat's `payment_period` template message, and (with China SMS) every other
phone the `payment_period` SMS template. Providers reject dunning, so the words are a notice of the period
(its dates from the scheme file in force), never a demand; the clerk picks who by the campaigns' audience
terms (audience.py).

    queue_period_notices(db, audience="unpaid=2027", channels=("wechat", "cnsms"), actor="clerk1")
    # → {"wechat": 12, "cnsms": 230, "skipped": 4}

One notice per phone (or follower) per year and channel (ref period:<year>), so running it twice queues
nobody twice; opted-out and known-bad numbers are written as skipped with their reason. Audited.
"""
import datetime as dt

from .. import clock
from ..policy_kb.schemes import scheme_for
from ..providers import cnsms
from ..store import meta, outbox
from ..store.db import writing
from ..store.state import audit
from . import audience as aud
from . import campaigns

CHANNELS = ("wechat", "cnsms")
_TEMP = "temp._xnh_audience"  # campaigns._build_audience fills it: one row per phone of the audience
_RECIPIENTS = f"""
SELECT a.phone, (SELECT min(b.sender) FROM bindings AS b WHERE b.phone = a.phone AND b.channel = 'wechat') AS follower,
       CASE WHEN EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.phone = a.phone AND s.subscribed = 0) THEN 'opted out'
            WHEN EXISTS (SELECT 1 FROM bad_numbers AS x WHERE x.phone = a.phone) THEN 'bad number' END AS reason
FROM {_TEMP} AS a ORDER BY a.phone
"""


class PeriodError(ValueError):
    """A notice that cannot be queued as asked (the message says why)."""


def period_data(year: int) -> dict:
    """The notice's fields for contribution year `year`: collected from `from` to `until` of year − 1."""
    contribution = scheme_for(dt.date(year - 1, 12, 31)).contribution
    start, end = contribution.get("collect_from", "11-01"), contribution["collect_until"]
    return {"year": year, "from": f"{int(start[:2])}月{int(start[3:])}日", "until": f"{int(end[:2])}月{int(end[3:])}日"}


def queue_period_notices(db, *, audience: str, channels=CHANNELS, actor: str) -> dict[str, int]:
    """Queue the payment-period notice for the audience (see the module docstring); counts by channel."""
    chans = [c for c in CHANNELS if c in set(channels or ())]
    if not chans or set(channels) - set(CHANNELS):
        raise PeriodError(f"渠道不对 / channels must be wechat and/or cnsms, not {sorted(set(channels) - set(CHANNELS))}")
    if meta.is_demo(db):
        raise PeriodError("演示数据库不发送 / the demo database never sends")
    terms = aud.parse(audience)
    year = terms.terms.get("unpaid") or clock.today().year + 1  # the year being paid for: unpaid=, else the next
    data = period_data(year)
    sms = cnsms.make("payment_period", data)
    campaigns._build_audience(db, audience)
    rows, counts = [], {c: 0 for c in chans} | {"skipped": 0}
    for phone, follower, reason in db.conn.execute(_RECIPIENTS).fetchall():
        if "wechat" in chans and follower:
            rows.append((follower, "wechat", sms.text, {"template": "payment_period", "data": data}, reason))
        elif "cnsms" in chans:
            rows.append((phone, "cnsms", sms.text, {"template": sms.key, "vars": sms.vars}, reason))
        else:
            continue
        counts["skipped" if reason else rows[-1][1]] += 1
    with writing(db):
        outbox.queue_notices(db, kind="period", ref=f"period:{year}", rows=rows)
        audit(db, actor, "period_notice", {"audience": audience, "year": year, **counts})
    return counts
