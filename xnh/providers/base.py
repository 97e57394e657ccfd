"""What every provider module shares: one attempt's Result, the Action it means, what any HTTP answer
means, and the back-off between attempts (see the package docstring for the kinds)."""
from dataclasses import dataclass

MAX_ATTEMPTS = 3
BACKOFF = 2.0  # seconds before the second attempt; doubled each time, plus up to 50 % jitter
RATE_LIMITED_DELAY = 1.0  # 429 without Retry-After


class NotKnown(Exception):
    """The provider cannot say whether it has a message (no such look-up, or the look-up failed)."""


@dataclass
class Result:
    """One attempt's outcome: accepted (sid) or refused (HTTP status, error code, or a timeout)."""

    sid: str | None = None
    http_status: int | None = None
    code: str | None = None
    timeout: bool = False
    final: str = "submitted"  # the row's status when accepted (Telegram has no delivery callbacks: sent)

    @property
    def ok(self) -> bool:
        return self.sid is not None


@dataclass(frozen=True)
class Action:
    """What one failed attempt means (see the kinds above)."""

    kind: str
    reason: str
    maybe_sent: bool = False


def classify_http(http_status: int | None = None, code=None, timeout: bool = False) -> Action:
    """The action any provider's HTTP answer means when its own codes say nothing more."""
    if timeout:
        return Action("retry", "timeout (may have been sent)", maybe_sent=True)
    if http_status == 429 or str(code) == "20429":
        return Action("retry_free", "rate limited (429)")
    if http_status is not None and http_status >= 500:
        return Action("retry", f"server error {http_status} (may have been sent)", maybe_sent=True)
    return Action("fail", f"error {code}" if code not in (None, "") else f"HTTP {http_status}")


def backoff(attempt: int, rand: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2…): BACKOFF·2^(attempt−1), plus up to
    50 % jitter (`rand` in [0, 1))."""
    return BACKOFF * 2 ** (attempt - 1) * (1 + rand / 2)
