"""The reimbursement estimate, exactly as POLICY.md §3 writes it. Decimal throughout.

    eligible   = total − self_pay
    base       = max(0, eligible − deductible)
    rate       = level rate + group bonus (≤ 100%)
    raw        = base × rate
    remaining  = max(0, cap − already reimbursed this calendar year)
    reimbursed = min(raw, remaining), rounded half-up to 0.01
Outpatient: reimbursed = min(total × outpatient rate, yearly cap − outpatient already reimbursed).
"""
from dataclasses import dataclass
from decimal import Decimal

from ..money import to_money
from .schemes import Scheme

ZERO = Decimal(0)
ONE = Decimal(1)


class NotCovered(ValueError):
    """The scheme has no benefit for this kind of visit at this level."""


@dataclass(frozen=True)
class Estimate:
    scheme: Scheme
    visit: str  # inpatient | outpatient
    level: str | None  # the scheme level used (None for outpatient)
    total: Decimal
    self_pay: Decimal
    eligible: Decimal
    deductible: Decimal
    rate: Decimal
    bonus: Decimal
    raw: Decimal
    cap: Decimal
    already: Decimal
    remaining: Decimal
    reimbursed: Decimal

    @property
    def you_pay(self) -> Decimal:
        return to_money(self.total - self.reimbursed)

    @property
    def capped(self) -> bool:
        return self.reimbursed < to_money(self.raw)

    def as_json(self) -> dict:
        return {
            "reimbursed": str(self.reimbursed),
            "you_pay": str(self.you_pay),
            "level": self.level,
            "visit": self.visit,
            "scheme": self.scheme.id,
            "total": str(to_money(self.total)),
            "self_pay": str(to_money(self.self_pay)),
            "deductible": str(to_money(self.deductible)),
            "rate": str(self.rate),
            "bonus": str(self.bonus),
            "cap": str(to_money(self.cap)),
            "already_reimbursed": str(to_money(self.already)),
            "remaining_cap": str(to_money(self.remaining)),
            "capped": self.capped,
        }


def group_bonus(scheme: Scheme, groups=(), age: int | None = None) -> Decimal:
    """The scheme's bonus when any named group applies, or the age reaches the scheme's bonus age."""
    if scheme.group_bonus == ZERO:
        return ZERO
    if any(g in scheme.bonus_groups for g in groups):
        return scheme.group_bonus
    if age is not None and scheme.bonus_age is not None and age >= scheme.bonus_age:
        return scheme.group_bonus
    return ZERO


def inpatient(scheme: Scheme, level: str, total, self_pay=ZERO, groups=(), age=None, already=ZERO) -> Estimate:
    """Inpatient estimate at `level`. Raises NotCovered when the scheme has no rule for it."""
    total, self_pay, already = Decimal(total), Decimal(self_pay), Decimal(already)
    found = scheme.rule(level)
    if found is None:
        raise NotCovered(level)
    used, rule = found
    eligible = max(ZERO, total - self_pay)
    base = max(ZERO, eligible - rule.deductible)
    bonus = group_bonus(scheme, groups, age)
    rate = min(ONE, rule.rate + bonus)
    raw = base * rate
    remaining = max(ZERO, scheme.inpatient_cap - already)
    reimbursed = to_money(min(raw, remaining))
    return Estimate(scheme, "inpatient", used, total, self_pay, eligible, rule.deductible, rate, bonus,
                    raw, scheme.inpatient_cap, already, remaining, reimbursed)


def outpatient(scheme: Scheme, total, self_pay=ZERO, already=ZERO) -> Estimate:
    """Outpatient (门诊统筹) estimate. Raises NotCovered when the scheme has no outpatient rule."""
    if scheme.outpatient_rate is None:
        raise NotCovered("outpatient")
    total, self_pay, already = Decimal(total), Decimal(self_pay), Decimal(already)
    eligible = max(ZERO, total - self_pay)
    raw = eligible * scheme.outpatient_rate
    remaining = max(ZERO, scheme.outpatient_cap - already)
    reimbursed = to_money(min(raw, remaining))
    return Estimate(scheme, "outpatient", None, total, self_pay, eligible, ZERO, scheme.outpatient_rate, ZERO,
                    raw, scheme.outpatient_cap, already, remaining, reimbursed)
