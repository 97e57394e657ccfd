"""The asked point of a question (policy_kb/points.toml): what it asks about its subject: whether,
how much, when, where, what documents, how, what happens if, who may, what it is, why, which.

`find(text)` reads them out of a normalised message in one longest-match pass, so that 多少天 is a
time and not an amount, and 怎么这么少 asks why rather than how. A yes/no ending (能报吗, 能报不)
asks `whether`. Q&A topics list the points their answers state (qa.Topic.points);
policy_kb/understand.py holds the two together.
"""
import re

from .concepts import spellings
from .loader import KB_DIR, KBError, county_cached, read_toml, require

WHETHER = "whether"


@county_cached
def _table() -> dict:
    path = KB_DIR / "points.toml"
    raw = read_toml(path)
    for point, entry in raw.items():
        require(entry, "label", f"{path.name} [{point}]", str)
        require(entry, "words", f"{path.name} [{point}]", list)
    return raw


@county_cached
def names() -> frozenset:
    """Every point a topic may state."""
    return frozenset(_table())


@county_cached
def labels() -> dict[str, str]:
    """Point → how a reply names it ("时间", "要什么材料")."""
    return {point: entry["label"] for point, entry in _table().items()}


@county_cached
def _words() -> dict[str, str]:
    """Word (and its dialect spellings) → the point it asks."""
    out: dict[str, str] = {}
    for point, entry in _table().items():
        for written in entry["words"]:
            for word in spellings(written):
                if out.get(word, point) != point:
                    raise KBError(f"points.toml: {word!r} is listed under both {out[word]!r} and {point!r}")
                out[word] = point
    return out


@county_cached
def _automaton():
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for word, point in _words().items():
        automaton.add_word(word, (len(word), point))
    automaton.make_automaton()
    return automaton


# 什么, 怎么, 这么 … end in 么 without asking yes or no
_NOT_A_TAIL = "(?<!什)(?<!怎)(?<!这)(?<!那)(?<!多)(?<!要)"


@county_cached
def _tail() -> re.Pattern:
    """吗 anywhere (住院要住够三天才报销吗医保), the other yes/no endings only at the end."""
    tails = sorted(_table()[WHETHER].get("tails", []), key=len, reverse=True)
    ends = "|".join(map(re.escape, (t for t in tails if t != "吗")))
    return re.compile(f"吗|{_NOT_A_TAIL}(?:{ends})[啊呀呢吧哦啦]*[\\s\\W]*$")


def spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, point) of every point word, longest first where two overlap, in text order."""
    hits = sorted(((end - n + 1, end + 1, point) for end, (n, point) in _automaton().iter(text)),
                  key=lambda h: (h[0] - h[1], h[0]))
    taken = [False] * len(text)
    out = []
    for start, end, point in hits:
        if any(taken[start:end]) or _approximate(text, start):
            continue
        taken[start:end] = [True] * (end - start)
        out.append((start, end, point))
    return sorted(out)


def _approximate(text: str, start: int) -> bool:
    """几 after a numeral or 好 is a rough number, not a question: 工作十几年了, 花了好几千, 二十几天."""
    return text.startswith("几", start) and start > 0 and text[start - 1] in "十百千万好"


def find(text: str) -> frozenset:
    """The points a normalised question asks (empty for a statement: 我住院三天了)."""
    if not text:
        return frozenset()
    found = {point for _, _, point in spans(text)}
    if _tail().search(text):
        found.add(WHETHER)
    return frozenset(found)


@county_cached
def _by_the_rule() -> frozenset:
    """Points any topic about the subject answers by stating its rule (points.toml `by_the_rule`)."""
    return frozenset(p for p, entry in _table().items() if entry.get("by_the_rule"))


def substantive(asked: frozenset) -> frozenset:
    """The points a topic must state to be the answer: "how much" only by one that states an amount.
    A yes/no question (whether) and why a rule is so (why) are answered by any topic about the subject
    stating its rule: the sources give rules, seldom their reasons."""
    return asked - _by_the_rule()
