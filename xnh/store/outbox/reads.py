"""Reading the outbox: rows by status, failures by reason, rows a dead worker left claimed, and the age of
the oldest row due now (the backlog /healthz and `xnh broadcast status` report)."""
import datetime as dt
import json
import time

from ... import clock
from .claims import DUE_WHERE, RETRY_DUE, policy_params
from .statuses import NOT_DELIVERED, STATUSES, channel_list, CHANNELS


def counts(db, campaign_id: int | None = None) -> dict[str, int]:
    """Rows by status (every status present, zeros included), of one campaign or of the whole outbox."""
    where, params = ("WHERE campaign_id = ?", [campaign_id]) if campaign_id is not None else ("", [])
    found = dict(db.conn.execute(f"SELECT status, count(*) FROM outbox {where} GROUP BY status", params).fetchall())
    return {status: found.get(status, 0) for status in STATUSES} | found


def failures(db, campaign_id: int | None) -> dict[str, int]:
    """Rows that will not be delivered (failed, undelivered, skipped), by reason, most frequent first."""
    where = "campaign_id = ?" if campaign_id is not None else "campaign_id IS NULL"
    params = [campaign_id] if campaign_id is not None else []
    rows = db.conn.execute(
        f"SELECT coalesce(reason, status), count(*) AS n FROM outbox WHERE {where} AND status IN "
        f"{NOT_DELIVERED!r} GROUP BY 1 ORDER BY n DESC, 1", params)
    return dict(rows.fetchall())


def stale_claims(db, campaign_id: int | None = None, now: float | None = None) -> list[dict]:
    """Rows still `claimed` after their lease: the worker that held them died between claiming and
    recording what the provider said. The next worker to start asks the provider about each (sent:
    recorded; never received: sent again; cannot tell: `unknown`); until then they are listed here."""
    where, params = ("AND campaign_id = ?", [campaign_id]) if campaign_id is not None else ("", [])
    cursor = db.conn.execute(f"SELECT id, recipient, channel, worker, lease_until FROM outbox WHERE status = "
                             f"'claimed' AND lease_until < ? {where} ORDER BY id", [now or time.time(), *params])
    return [dict(zip(("id", "recipient", "channel", "worker", "lease_until"), r)) for r in cursor]


_DUE_SINCE = """
SELECT o.quiet_end, min(max(coalesce(unixepoch(o.created_at), 0), coalesce(o.not_before, 0),
                            coalesce(o.next_attempt_at, 0)))
FROM outbox AS o LEFT JOIN campaigns AS c ON c.id = o.campaign_id
""" + DUE_WHERE + "GROUP BY o.quiet_end"


def oldest_due_age(db, channels=CHANNELS, now: float | None = None) -> float | None:
    """Seconds the oldest row due now has been due (since it was queued, scheduled, set to retry or its
    quiet hours ended, whichever came last), or None when nothing is due: a sender that keeps up keeps
    this at seconds. Ages are on the policy clock (XNH_TODAY fixes it)."""
    now = time.time() if now is None else now
    params = policy_params(now)
    names = channel_list(channels) or "''"
    since = []
    for status, extra in (("retry_wait", RETRY_DUE), ("pending", "")):
        for quiet_end, first in db.conn.execute(_DUE_SINCE.format(extra=extra, channels=names),
                                                {**params, "status": status}):
            if first is not None:
                since.append(max(first, _last_end(quiet_end, params["policy"])))
    return max(0.0, params["policy"] - min(since)) if since else None


def _last_end(quiet_end: str | None, policy: float) -> float:
    """When the quiet hours ending at `quiet_end` (HH:MM, China time) last ended, at or before `policy`."""
    if not quiet_end:
        return 0.0
    at = dt.datetime.fromtimestamp(policy, clock.CHINA)
    end = at.replace(hour=int(quiet_end[:2]), minute=int(quiet_end[3:5]), second=0, microsecond=0)
    return (end if end.timestamp() <= policy else end - dt.timedelta(days=1)).timestamp()


def json_fields(text: str | None) -> dict:
    """A row's recipient fields (campaigns: name, township, amount), from their JSON."""
    return json.loads(text) if text else {}


def last_id(db) -> int:
    """The newest outbox row's id (0 when empty): what a later count starts after."""
    return db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]


def payment_notices_since(db, after_id: int) -> dict:
    """The payment notices written after row `after_id`: {"queued": n, "skipped": n} (skipped: paid long ago)."""
    rows = db.execute("SELECT status = 'skipped', count(*) FROM outbox WHERE id > ? AND kind = 'payment' GROUP BY 1",
                      [after_id]).fetchall()
    counts = dict(rows)
    return {"queued": counts.get(0, 0), "skipped": counts.get(1, 0)}


_UNKNOWN = ("id", "kind", "ref", "campaign_id", "recipient", "channel", "text", "reason", "claimed_at", "updated_at")


def unknown_rows(db, campaign_id: int | None = None, limit: int = 200, outside: bool = False) -> list[dict]:
    """Rows whose fate is unknown (the provider may have accepted them without answering, and could not be
    asked), oldest first: a clerk decides whether to resend them. Of one campaign, of none (`outside`:
    payment notices and answers), or all."""
    where, params = ("AND campaign_id = ?", [campaign_id]) if campaign_id is not None else ("", [])
    if outside:
        where, params = "AND campaign_id IS NULL", []
    cursor = db.conn.execute(f"SELECT {', '.join(_UNKNOWN)} FROM outbox WHERE status = 'unknown' {where} "
                             "ORDER BY id LIMIT ?", [*params, limit])
    return [dict(zip(_UNKNOWN, r)) for r in cursor]
