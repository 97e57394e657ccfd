"""Match a hospital named in a message against policy_kb/hospitals.toml, tolerating typos and
voice-input homophones (rapidfuzz on characters, and on toneless pinyin).

A listed name counts wherever it stands in the sentence (请问南坪乡卫生院, 孩子市康宁医院), unless another
place stands right before it (广东省人民医院 is not 省人民医院). A named hospital that matches nothing
counts as outside the county only when it carries the name of another real place (广州市白云区人民医院,
曹县人民医院: `non_designated`); an unknown "…医院" alone (康复医院, 俺爹县医院) is no evidence of a level.
"""
import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from . import concepts
from .loader import KBError, county, county_cached, county_dir, levels, read_toml, require
from .sounds import sounds

SUFFIX = re.compile(r"(?:医院|卫生院|保健院|卫生室|卫生所|医学院附院)")
CUTOFF = 86  # measured on the tests' typo rows: 仁艾医院, 示范县人明医院 pass; 广州市人民医院 does not
# Characters that may stand right before a hospital name without being part of it.
_BEFORE = set("在去到了的住是个家我你他她妈爸娘儿女说看从那这上咱俺们就还又也刚才都和跟带送给往进")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
MAX_NAME = 16  # characters looked at before 医院: longer runs are sentences, not names


@dataclass(frozen=True)
class Hospital:
    name: str
    level: str


@county_cached
def hospitals() -> tuple[tuple[str, Hospital], ...]:
    """(written form, hospital) for every name and alias, longest first."""
    path = county_dir() / "hospitals.toml"
    rows = require(read_toml(path), "hospitals", path.name, list)
    known = levels()
    out = []
    for i, row in enumerate(rows):
        where = f"{path.name} hospitals[{i}]"
        h = Hospital(require(row, "name", where, str), require(row, "level", where, str))
        if h.level not in known:
            raise KBError(f"{where}: unknown level {h.level!r}")
        for form in [h.name, *row.get("aliases", [])]:
            out.append((form, h))
    return tuple(sorted(out, key=lambda p: -len(p[0])))


@county_cached
def _generic_words() -> frozenset:
    return frozenset(w for entry in levels().values() for w in entry["words"])


@county_cached
def _forms() -> frozenset:
    return frozenset(form for form, _ in hospitals())


@county_cached
def _bare_aliases() -> tuple[tuple[str, Hospital], ...]:
    """Aliases that do not end like a hospital (县人医, 市一院): matched exactly, not fuzzily."""
    return tuple((form, h) for form, h in hospitals() if not _ends_like_hospital(form))


def _ends_like_hospital(form: str) -> bool:
    m = None
    for m in SUFFIX.finditer(form):
        pass
    return m is not None and m.end() == len(form)


@county_cached
def _own_county() -> tuple[str, ...]:
    """Words that may stand before a listed name and still mean this county (县仁爱医院, the county's names)."""
    names = {m.group() for form, _ in hospitals() if (m := re.match(r"[\u4e00-\u9fff]{1,4}县", form))}
    names |= {county()["name"], county()["short"], *county()["aliases"]}
    return tuple(sorted(names | {"本县", "县里", "县上", "县城", "县"}, key=len, reverse=True))


def _is_own_county(prefix: str) -> bool:
    while prefix:
        word = next((w for w in _own_county() if prefix.endswith(w)), None)
        if word is None:
            return False
        prefix = prefix[:-len(word)]
    return True


# Sounds that many speakers (and so voice input) do not tell apart: 民/明 (in/ing), 生/森 (sh/s).
_MERGED = [(re.compile(r"\b(z|c|s)h"), r"\1"), (re.compile(r"(i|e|a)ng\b"), r"\1n"), (re.compile(r"\bl(?=[aeiou])"), "n")]


@county_cached(maxsize=4096)
def _sounds(text: str) -> str:
    """Toneless pinyin with the usual regional mergers folded (zh/z, ch/c, sh/s, -ng/-n, l/n)."""
    out = sounds(text)
    for pattern, repl in _MERGED:
        out = pattern.sub(repl, out)
    return out


def _score(candidate: str, form: str) -> float:
    """Character similarity; or 100 when the names sound the same to a voice-input user (仁艾医院 →
    仁爱医院, 省人明医院 → 省人民医院). Sounds are compared exactly after folding the usual mergers, not
    fuzzily: 城医院 (cen) is not 省医院 (sen)."""
    by_char = fuzz.ratio(candidate, form)
    if by_char >= 60 and len(candidate) == len(form) and _sounds(candidate) == _sounds(form):
        return 100.0
    return by_char


@dataclass(frozen=True)
class Mention:
    hospital: Hospital | None  # None: a named hospital outside the list
    start: int
    end: int
    text: str


def _word_start(text: str, start: int, limit: int = MAX_NAME) -> int:
    """Where the name ending at `start` begins: back over Han characters, up to a connecting word."""
    while start > 0 and limit > 0 and _HAN.match(text[start - 1]) and text[start - 1] not in _BEFORE:
        start -= 1
        limit -= 1
    return start


def _listed(text: str, start: int, end: int, h: Hospital, exact: bool = True) -> Mention | None:
    """A listed hospital found at text[start:end], unless a place that is not this county comes
    right before it (广东省人民医院 is not 省人民医院). Other words before an exact name don't matter
    (请问南坪乡卫生院); a name matched only by likeness or sound must stand alone (佳生医院 is not 省医院)."""
    begin = _word_start(text, start)
    if begin < start and not exact and not _is_own_county(text[begin:start]):
        return None
    if begin < start and not _is_own_county(text[begin:start]):
        found = concepts.find(text[begin:end])  # 曹县人民医院: the place 曹县 overlaps the alias 县人民医院
        elsewhere = (concepts.AREA + ":", "place:outside", "place:out_province")  # 外省医院 is not 省医院
        joined = concepts.find(text[begin:start + 2]).spans  # 外省 of 外省医院, hidden by the longer 省医院
        if any(s.start < start - begin for s in (*found.spans, *joined) if s.concepts[0].startswith(elsewhere)):
            return None
    return Mention(h, start, end, text[start:end])


def find(text: str) -> Mention | None:
    """The first hospital named in `text`: a listed one, or an unlisted one with a place name."""
    for m in SUFFIX.finditer(text):
        end = m.end()
        best = (0.0, 0, None, False)
        for k in range(len(m.group()), min(end, MAX_NAME) + 1):
            candidate = text[end - k:end]
            if not _HAN_RUN.fullmatch(candidate) or candidate[0] in _BEFORE:
                break
            if candidate in _generic_words() and candidate not in _forms():
                continue  # 乡镇卫生院, 县医院: a level word, not a hospital's name
            for form, h in hospitals():
                if abs(len(form) - k) > 2:
                    continue
                score = _score(candidate, form)
                if score > best[0] or (score == best[0] and k > best[1]):
                    best = (score, k, h, candidate == form)
        score, k, h, exact = best
        if h is not None and score >= CUTOFF:
            found = _listed(text, end - k, end, h, exact)
            if found:
                return found
        named = _unlisted_name(text, end)
        if named:
            return named
    return _bare_alias(text)


def _bare_alias(text: str) -> Mention | None:
    """An alias written without 医院 (县人医, 市一院), exactly."""
    for form, h in _bare_aliases():
        start = text.find(form)
        if start >= 0:
            found = _listed(text, start, start + len(form), h)
            if found:
                return found
    return None


def _unlisted_name(text: str, end: int) -> Mention | None:
    """A hospital name with another real place in it (广州市白云区人民医院, 曹县人民医院): outside the
    county, not designated. Words before the place are not part of the name (请问广州市…)."""
    start = _word_start(text, end)
    name = text[start:end]
    places = [s for s in concepts.find(name).spans if any(k.startswith(concepts.AREA + ":") for k in s.concepts)]
    if places:
        return Mention(None, start + places[0].start, end, name[places[0].start:])
    return None
