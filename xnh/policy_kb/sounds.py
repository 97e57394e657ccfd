"""Toneless pinyin of single Han characters, for matching voice-input homophones (住员 → 住院) and
hospital names heard wrong (省人明医院 → 省人民医院).

pypinyin's own package import also loads its phrase dictionary and segmenter (about 0.25 s on the
benchmark machine, see bench/CORE_RESULTS.md), which a single-character lookup never uses. So the
character table `pinyin_dict.json` that pypinyin ships is read directly (about 0.03 s), and
`lazy_pinyin` is the fallback if that file ever moves. A character's first (most common) reading is
used, which is also what `lazy_pinyin` returns for a character on its own.
"""
import importlib.util
import json
import unicodedata
from functools import cache
from pathlib import Path


@cache
def _table() -> dict | None:
    """Code point → readings ('zhù,chù'), or None when pypinyin's table cannot be found."""
    spec = importlib.util.find_spec("pypinyin")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pinyin_dict.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _toneless(reading: str) -> str:
    """'zhù' → 'zhu', 'lǘ' → 'lv' (the way pypinyin's NORMAL style writes ü)."""
    spelled = unicodedata.normalize("NFD", reading).replace("u\u0308", "v")
    return "".join(c for c in spelled if not unicodedata.combining(c))


@cache
def sound(char: str) -> str | None:
    """Toneless pinyin of one Han character; None for anything else."""
    if len(char) != 1 or not "\u4e00" <= char <= "\u9fff":
        return None
    table = _table()
    if table is None:
        from pypinyin import lazy_pinyin

        return lazy_pinyin(char)[0]
    readings = table.get(str(ord(char)))
    if not readings:
        return char
    first = readings.split(",")[0]
    return _toneless(first)


def sounds(text: str) -> str:
    """Toneless pinyin of a run of text, syllables separated by spaces (other characters kept)."""
    return " ".join(sound(c) or c for c in text)
