"""The policy clock: XNH_TODAY replaces the calendar date and time of day (tests, demos).

Rate limits and timers use the real clock (`time.time()`); only policy years, deadlines and quiet
hours read `now()`. XNH_TODAY is read through xnh/settings.py (`live_today`: on each call, so a test or a
demo can move it; parsed once per value).
"""
import datetime as dt
from functools import lru_cache

from .settings import live_today

CHINA = dt.timezone(dt.timedelta(hours=8))


class BadToday(ValueError):
    """XNH_TODAY is not an ISO date or date-time."""


def now() -> dt.datetime:
    """The policy date-time, timezone-aware (China time when XNH_TODAY gives no zone)."""
    raw = live_today()
    if not raw:
        return dt.datetime.now(CHINA)
    return _fixed(raw)


@lru_cache(maxsize=8)
def _fixed(raw: str) -> dt.datetime:
    """XNH_TODAY parsed (read on every call, so tests can change it; parsed once per value)."""
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError as e:
        raise BadToday(f"XNH_TODAY={raw!r} is not an ISO date or date-time") from e
    if len(raw) <= 10:  # a bare date: the middle of that day
        value = value.replace(hour=12)
    return value if value.tzinfo else value.replace(tzinfo=CHINA)


def today() -> dt.date:
    return now().date()


def check(raw: str | None) -> None:
    """Raise BadToday unless `raw` (a Settings.today) is empty or an ISO date or date-time."""
    if raw and raw.strip():
        _fixed(raw.strip())
