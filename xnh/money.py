"""Money is Decimal, rounded half-up to 0.01 元. Never floats."""
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def to_money(value) -> Decimal:
    """Round to 0.01 元, half-up. Accepts Decimal, int or str; refuses float."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def yuan(value) -> str:
    """Format for a reply: 2400 → '2400', 1234.5 → '1234.50'."""
    amount = to_money(value)
    return f"{amount:.0f}" if amount == amount.to_integral_value() else f"{amount:.2f}"


def percent(rate: Decimal) -> str:
    """0.7 → '70%', 0.675 → '67.5%'."""
    return f"{(rate * 100).normalize():f}%"
