"""What to do with each answer from Twilio: one table (RapidPro keeps its Twilio codes in one place too).

    action = classify(http_status=400, code=21610)   # Action(kind="opt_out", reason=…, counts=…)

Kinds:
    retry_free   wait and try again without counting an attempt (HTTP 429: too many requests)
    retry        exponential backoff with jitter, at most MAX_ATTEMPTS attempts (5xx, timeouts, connection
                 errors); `maybe_sent` says a 5xx may have sent the message all the same
    retry_once   try once more, later (30003: the handset is unreachable, maybe switched off)
    opt_out      the number opted out with Twilio: recorded in subscriptions, skipped
    bad_number   the number cannot receive (invalid, a landline, unknown or carrier-rejected): remembered
                 in bad_numbers, never retried
    burst        blocked or filtered by the carrier (30004, 30007): this row fails; a burst of them in
                 one campaign pauses it (BURST of the last BURST_WINDOW)
    fail         anything else: failed, with the code as the reason
"""
from dataclasses import dataclass

MAX_ATTEMPTS = 3
BACKOFF = 2.0  # seconds before the second attempt; doubled each time, plus up to 50 % jitter
RETRY_ONCE_DELAY = 600.0  # 30003: ten minutes later
RATE_LIMITED_DELAY = 1.0  # 429 without Retry-After
BURST, BURST_WINDOW = 5, 20


@dataclass(frozen=True)
class Action:
    kind: str
    reason: str
    maybe_sent: bool = False


CODES: dict[int, Action] = {
    21610: Action("opt_out", "opted out"),
    21211: Action("bad_number", "bad number"),  # invalid 'To' number
    21614: Action("bad_number", "bad number"),  # not a mobile number
    30005: Action("bad_number", "bad number"),  # unknown destination handset
    30006: Action("bad_number", "bad number"),  # landline or unreachable carrier
    30003: Action("retry_once", "unreachable handset"),
    30004: Action("burst", "blocked by the carrier"),
    30007: Action("burst", "filtered by the carrier"),
}


def classify(http_status: int | None = None, code: int | str | None = None, timeout: bool = False) -> Action:
    """The action for one failed attempt: an HTTP status from the API call, Twilio's error code (from the
    API error or a delivery callback), or a timeout / connection error (`timeout`)."""
    if timeout:
        return Action("retry", "timeout (may have been sent)", maybe_sent=True)
    if code not in (None, ""):
        try:
            known = CODES.get(int(code))
        except ValueError:
            known = None
        if known:
            return known
    if http_status == 429 or str(code) == "20429":
        return Action("retry_free", "rate limited (429)")
    if http_status is not None and http_status >= 500:
        return Action("retry", f"server error {http_status} (may have been sent)", maybe_sent=True)
    return Action("fail", f"error {code}" if code not in (None, "") else f"HTTP {http_status}")


def backoff(attempt: int, rand: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2…): BACKOFF·2^(attempt−1), plus up to
    50 % jitter (`rand` in [0, 1))."""
    base = BACKOFF * 2 ** (attempt - 1)
    return base * (1 + rand / 2)


def is_burst(codes: list) -> bool:
    """True when at least BURST of the last BURST_WINDOW answers of a campaign were 30004/30007."""
    return sum(1 for c in codes[:BURST_WINDOW] if str(c) in ("30004", "30007")) >= BURST
