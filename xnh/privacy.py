"""Phone normalisation and masking of personal data (SPEC privacy rules)."""
import re

_PHONE_JUNK = re.compile(r"[\s\-()（）.]")


def normalize_phone(raw: str | None) -> str:
    """'+86 138-0000-9001', '8613800009001', '13800009001' → '13800009001'. A number of another country
    keeps its '+' ('+15005550006'): it must never be taken for a Chinese phone bound to a household."""
    digits = _PHONE_JUNK.sub("", raw or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("+"):
        return digits  # another country: keep the +, so it can never equal a Chinese number
    if digits.startswith("0086"):
        digits = digits[4:]
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


def mask_name(name: str | None) -> str:
    """张三 → 张*, 张小三 → 张*三, 欧阳小明 → 欧**明."""
    name = (name or "").strip()
    if len(name) <= 1:
        return name or "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id(number: str | None) -> str:
    """529901195608080011 → 5299**********0011 (first 4, last 4)."""
    number = (number or "").strip()
    if len(number) < 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def mask_phone(phone: str | None) -> str:
    """13812345678 → 138****5678."""
    phone = normalize_phone(phone)
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
