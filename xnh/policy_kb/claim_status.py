"""The claim statuses, from policy_kb/claim_steps.toml (the one place they are spelled):

    STATUSES   every word an export may write in 状态, in the order a claim moves through them
    COUNTED    approved or paid: the 补偿金额 counts against the year's caps (and the dashboard's money)
    PAID       the one status that means the money went out (a payment notice is queued)
    CLOSED     the claim moves no further (a household's claims list follows the others across New Year)
"""
from .loader import county_dir, read_toml

_STEPS = read_toml(county_dir() / "claim_steps.toml")["status"]  # the export contract: read once, at import

STATUSES: tuple[str, ...] = tuple(_STEPS)
COUNTED: tuple[str, ...] = tuple(s for s, v in _STEPS.items() if v.get("counted"))
PAID: str = next(s for s, v in _STEPS.items() if v.get("paid"))
CLOSED: tuple[str, ...] = tuple(s for s, v in _STEPS.items() if v.get("closed"))
