"""Quiet hours: the hours of the day (China time, the policy clock) in which bulk messages are not sent.

    DEFAULT                        # ("21:00", "08:00"): no sends from 21:00 until 08:00
    is_quiet("22:30", *DEFAULT)    # True
    SQL.format(start=..., end=..., hm=...)   # the same test in SQL, for the outbox's claim query

A window whose start is after its end runs over midnight. (None, None) means no quiet hours.
Every place that decides "may this go now" uses this module: the worker's claim query, the campaign
preview's blocker, the console's and the CLI's defaults.
"""
DEFAULT = ("21:00", "08:00")
DEFAULT_TEXT = "-".join(DEFAULT)

SQL = ("CASE WHEN {start} > {end} THEN {hm} >= {start} OR {hm} < {end} "
       "ELSE {hm} >= {start} AND {hm} < {end} END")


def is_quiet(hm: str, start: str | None, end: str | None) -> bool:
    """True when `hm` ("HH:MM") falls in the quiet hours from `start` until `end`."""
    if not start:
        return False
    return (hm >= start or hm < end) if start > end else (start <= hm < end)
