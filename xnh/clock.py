"""The policy clock: XNH_TODAY replaces the calendar date and time of day (tests, demos).

Rate limits and timers use the real clock (`time.time()`); only policy years, deadlines and quiet
hours read `now()`.
"""
import datetime as dt
import os
from functools import lru_cache

CHINA = dt.timezone(dt.timedelta(hours=8))


class BadToday(ValueError):
    """XNH_TODAY is not an ISO date or date-time."""


def now() -> dt.datetime:
    """The policy date-time, timezone-aware (China time when XNH_TODAY gives no zone)."""
    raw = os.environ.get("XNH_TODAY", "").strip()
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
