"""Make a message comparable: traditional → simplified (OpenCC), full-width → half-width (NFKC),
control characters out, and voice-input homophones of domain words repaired through pinyin."""
import re
import unicodedata

from ..policy_kb.loader import KB_DIR, county_cached, read_toml
from ..policy_kb.sounds import sound as _sound

MAX_LEN = 500  # longer messages are cut: no real question needs more, and work stays bounded
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202f\ufeff]")
_SPACES = re.compile(r"[ \t\r\n\u3000]+")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万亿几]")
# The commonest characters of all: a run that differs from a domain word only in these is the
# ordinary words it reads as (户口不在 is not 户口簿在, 发的票 is not 发票)
_FUNCTION = frozenset("不的了是在有和也就都还没吗呢吧啊")


@county_cached
def _opencc():
    import opencc

    return opencc.OpenCC("t2s")


@county_cached
def _homophones() -> dict:
    """Toneless pinyin tuple → domain word, for each word of policy_kb/vocabulary.toml."""
    words = read_toml(KB_DIR / "vocabulary.toml")["words"]
    return {tuple(_sound(c) for c in w): w for w in sorted(words, key=len)}


@county_cached
def _shape() -> tuple[tuple[int, ...], frozenset]:
    """The word lengths, longest first, and the sounds a word can start with."""
    table = _homophones()
    return tuple(sorted({len(k) for k in table}, reverse=True)), frozenset(k[0] for k in table)


def _repair_homophones(text: str) -> str:
    """Replace runs whose pinyin equals a domain word's (住员 → 住院). Longest words first."""
    table = _homophones()
    if not _HAN.search(text):
        return text
    lengths, starts = _shape()
    chars = list(text)
    sounds = [_sound(c) for c in chars]
    i = 0
    while i < len(chars):
        if sounds[i] not in starts:  # no word begins with this sound
            i += 1
            continue
        for n in lengths:
            key = tuple(sounds[i:i + n])
            word = table.get(key) if len(key) == n and None not in key else None
            if word and _NUMERAL.search("".join(chars[i:i + n])) and not _NUMERAL.search(word):
                word = None  # 一元/一院 are money or a name (市一院), not 医院
            if word and all(c in _FUNCTION for c, w in zip(chars[i:i + n], word) if c != w):
                word = None
            if word:
                chars[i:i + n] = list(word)
                i += n
                break
        else:
            i += 1
    return "".join(chars)


def normalize(text: str) -> str:
    """The form every handler reads. Idempotent."""
    text = unicodedata.normalize("NFKC", text or "")[:MAX_LEN]
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    if _HAN.search(text):
        text = _opencc().convert(text)
        text = _repair_homophones(text)
    return text
