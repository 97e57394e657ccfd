"""How many SMS parts a text costs, and the 1600-character ceiling on one reply.

A text that fits the GSM 03.38 alphabet is sent in 7-bit parts: 160 characters in one SMS, 153 per
part when longer (characters from the extension table, such as € [ ] { }, take two). Anything else,
which is every Chinese reply, is sent as UCS-2: 70 characters in one SMS, 67 per part when longer.
Characters are counted as code points. Twilio refuses a message body over 1600 characters.

    >>> count("住院花了3000能报多少").segments
    1
"""
from dataclasses import dataclass

MAX_CHARS = 1600  # Twilio's limit for one message body
_ELLIPSIS = "…"

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class Segments:
    """The encoding a text needs, its length in that encoding's units, and the parts it costs."""

    encoding: str  # GSM-7 | UCS-2
    chars: int  # code points (GSM-7: septets, an extension character counting two)
    segments: int


def count(text: str) -> Segments:
    """The parts `text` costs as one SMS (an empty text still costs one)."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        encoding, units = "GSM-7", sum(2 if c in _GSM_EXTENDED else 1 for c in text)
    else:
        encoding, units = "UCS-2", len(text)
    single, per_part = _LIMITS[encoding]
    parts = 1 if units <= single else -(-units // per_part)
    return Segments(encoding, units, parts)


def fit(text: str, limit: int = MAX_CHARS) -> str:
    """`text` cut to at most `limit` code points, with an ellipsis when something was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_ELLIPSIS)].rstrip() + _ELLIPSIS
