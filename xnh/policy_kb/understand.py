"""Decide what a policy question asks: the knowledge-base topic that answers it, or why none should.

 1. `concepts.find`: scheme, place, care, group, action and attribute words, and places that are
    not this county (policy_kb/concepts.toml, China's administrative names).
 2. Scheme: 新农合 unless the message names another. A question only about 城镇职工医保, 养老保险 or
    商业保险 is declined by name (`other_scheme`): no ticket, a clerk could not answer it either.
 3. Other places: a hospital or stay in a named other place is outside the county and not
    designated (concepts place:outside + place:non_designated are added); a question about another
    place's own scheme is answered with 示范县's rule, labelled as 示范县's (`area`).
 4. Topics are ranked by how their `concepts` fit the question's (`fit`), plus a small lexical share:
    the IDF-weighted coverage of the question's characters by the topic's paraphrases (matcher.Index).
 5. Answer when the best fits clearly; a menu of two or three when they fit about equally; a person
    when the question names the scheme's concepts but no topic fits; help when it names nothing of
    the scheme; "what about it?" when it names one thing and asks nothing (我住院三天了).
The numbers below were set on real questions (bench/kb_compare.py, bench/KB_COMPARE.md).
"""
import heapq
import re
from dataclasses import dataclass, field

from . import concepts, points
from .concepts import Found
from .matcher import canon, index
from .loader import county_cached
from .qa import Topic, topics

# weight of a concept matched, by dimension; single concepts may weigh less (WEAK)
WEIGHT = {"scheme": 3.0, "place": 3.0, "care": 3.0, "group": 3.0, "action": 2.0, "attr": 2.0}
# concepts that decide whether anything is paid at all: an injury is investigated first, and one that
# someone else must pay for is not covered, wherever the stay was (摔伤 in 外省: the injury rule first)
DECISIVE = {"care:injury": 4.0, "care:third_party": 4.0, "care:work_injury": 4.0,
            "care:chronic": 4.0,  # a chronic or special disease has its own application and review
            "action:death": 4.0,  # a member who died: what is left to claim or to stop is about that
            "action:report": 3.0}  # a complaint (乱收费, 不给收据) needs the complaint path, whatever else it names
# another scheme named beside 新农合 (商业保险, 职工医保 …): a topic that does not speak of it answers only
# part of the question, and says so (a partial answer, _unanswered)
OTHER_SCHEMES = {"scheme:commercial", "scheme:employee", "scheme:pension", "scheme:urban"}
WEAK = {"action:claim": 0.5, "action:check": 0.75, "attr:amount": 1.0, "attr:what": 1.0, "scheme:ncms": 0.5,
        "scheme:generic": 0.5, "action:enroll": 1.0, "attr:how": 0.5, "action:pay": 1.5,
        "attr:card": 0.5}  # 医保卡, 社保卡 often stand for the insurance itself (有社保卡怎么报销)
STRONG = ("scheme", "place", "care", "group")
CONFLICT = 1.0  # a topic about another value of a dimension the question names: × the weight
MISS = 1.0  # a topic concept the question does not name (and that is no default): × the weight
EXTRA = 0.35  # a question concept the topic does not speak of: × the weight
SOFT = 0.5  # for action and attribute, conflicts and misses count this share only
DEFAULT_SHARE = 0.5  # a default slot the question fills: the topic fits it, but is not about it
LEXICAL = 2.0  # the lexical coverage (0-1) × this
ANSWER_MIN = 1.5  # below: no topic fits
CLEAR_FIT = 3.0  # a message naming one thing only (刚出生, 五保户) is answered when a topic fits it this well
MARGIN = 0.5  # a second topic within this of the best: ask which one
CHOICES = 3
POINT = 1.0  # a topic stating an asked point (besides whether) gains this; one stating none of them loses it
FOCUS = 1.0  # a topic about the question's focus (its last telling concept: 低保…报销上限 asks the cap) gains this
POINT_SWITCH = 2.0  # a topic stating the point asked is preferred to a better-fitting one that doesn't, within this
LEXICAL_SHORTLIST = 8  # topics of highest lexical coverage ranked even without a shared concept
DECLINED = ("employee", "pension", "commercial")
# the place named is where the care happens (在长沙住院, 曹县人民医院), not whose scheme is asked about
_CARE_AT = re.compile(r"(?:在|去|到|从|来|跑)$")
_SCHEME_AFTER = re.compile(r"^(?:的|市|县|省|地区|当地|那边|这边)?(?:城乡|农村|新农合|合作医疗|医保|医疗保险|居民医保|农合|合疗)")
_CARE_AFTER = re.compile(r"^[\u4e00-\u9fff]{0,6}?(?:医院|住院|看病|就医|就诊|打工|务工|上学|生孩子|分娩|看门诊|门诊|卫生院|诊所)")


@dataclass
class Decision:
    kind: str  # answer | partial | choice | clarify | handoff | other_scheme | help
    topics: list = field(default_factory=list)  # topic ids: the answer, or the choices
    found: Found | None = None
    area: str | None = None  # another place the question is about (answered with 示范县's rule)
    care_area: str | None = None  # another place where the care happened (a hospital there is 县外非定点)
    scheme: str | None = None  # the declined scheme's label
    about: str | None = None  # clarify: the one thing the message names (住院)
    asked: frozenset = frozenset()  # the points asked (points.toml)
    missing: frozenset = frozenset()  # partial: what was asked that the rules don't say (points, 城镇居民医保): a ticket
    elsewhere: tuple = ()  # partial: schemes named beside 新农合 that others handle (商业保险): where to ask
    scores: list = field(default_factory=list)  # (score, topic id), best first


@dataclass(frozen=True)
class _Slot:
    dimension: str
    values: frozenset  # any of these fills the slot
    default: bool  # the topic also fits a question silent in this dimension
    strict: bool = False  # a default that still conflicts with another value named (新农合 vs 城镇居民)


@county_cached
def _slots(topic: Topic) -> tuple[_Slot, ...]:
    """A topic's concepts as slots: "place:outside" and "place:private" are two slots (both are what
    the topic is about); "group:wubao|cadre" is one slot filled by either; "care:inpatient?" is a
    default. A topic naming no scheme is about 新农合."""
    slots = []
    for concept in topic.concepts:
        dimension, values = concept.rstrip("?").split(":", 1)
        slots.append(_Slot(dimension, frozenset(values.split("|")), concept.endswith("?")))
    if not any(slot.dimension == "scheme" for slot in slots):
        slots.append(_Slot("scheme", frozenset({"ncms", "generic"}), True, strict=True))
    return tuple(slots)


@county_cached
def _slot_weight(slot: _Slot) -> float:
    """What a slot is worth: its strongest value (a missing 报销 costs less than a missing 起付线); a
    missed or conflicting slot costs at least 1."""
    return max(1.0, *(_weight(f"{slot.dimension}:{v}") for v in slot.values))


@county_cached
def _weight(concept: str) -> float:
    return DECISIVE.get(concept) or WEAK.get(concept, WEIGHT[concept.split(":", 1)[0]])


@dataclass(frozen=True)
class _Asked:
    """A question's concepts, prepared once for ranking every topic."""

    by_dimension: dict  # dimension → frozenset of values
    explicit: tuple  # (dimension, value, penalty when no slot covers it), implied concepts left out


def _asked(found: Found) -> _Asked:
    by_dimension: dict[str, set] = {}
    for concept in found.concepts:
        dimension, value = concept.split(":", 1)
        by_dimension.setdefault(dimension, set()).add(value)
    explicit = tuple((c.split(":", 1)[0], c.split(":", 1)[1],
                      EXTRA * _weight(c) * (1.0 if c.split(":", 1)[0] in STRONG else SOFT))
                     for c in found.concepts - found.implied)
    return _Asked({d: frozenset(v) for d, v in by_dimension.items()}, explicit)


def fit(topic: Topic, found: Found | _Asked) -> float:
    """How well a topic's concepts fit the question's: each slot the question fills adds its weight
    (half for a default slot); a slot of a dimension the question speaks of in other words conflicts;
    a slot the question is silent on (and that is no default) is missed; question concepts no slot
    covers count a little against (the topic is more general than the question)."""
    asked = found if isinstance(found, _Asked) else _asked(found)
    score = 0.0
    covered: dict[str, frozenset] = {}
    for slot in _slots(topic):
        values = asked.by_dimension.get(slot.dimension, frozenset())
        covered[slot.dimension] = covered.get(slot.dimension, frozenset()) | slot.values
        hit = values & slot.values
        if hit:
            share = DEFAULT_SHARE if slot.default else 1.0
            score += share * max(_weight(f"{slot.dimension}:{v}") for v in hit)
        elif slot.default and not (slot.strict and values):
            continue
        elif values:  # the question speaks of this dimension, in other words
            score -= max(CONFLICT * (1.0 if slot.dimension in STRONG else SOFT), MISS) * _slot_weight(slot)
        else:
            score -= MISS * _slot_weight(slot)
    for dimension, value, penalty in asked.explicit:
        if value not in covered.get(dimension, ()):
            score -= penalty
    return score


def _areas(text: str, found: Found) -> tuple[str | None, str | None]:
    """(the other place whose scheme is asked about, the other place where care happened).
    長沙城乡医保, 四川农村医保: that place's scheme. 在长沙住院, 曹县人民医院: care there."""
    area = care_area = None
    for span in found.spans:
        if not any(k.startswith(concepts.AREA + ":") for k in span.concepts):
            continue
        after = text[span.end:]
        own_scheme = _SCHEME_AFTER.match(after)
        if not own_scheme and (_CARE_AT.search(text[:span.start]) or _CARE_AFTER.match(after)):
            care_area = care_area or span.word
        else:
            area = area or span.word
    return area, care_area


def with_care_area(found: Found) -> Found:
    """The concepts of a stay in another place: outside the county, not designated."""
    extra = {"place:outside", "place:non_designated"}
    return Found(found.concepts | extra, found.areas, found.spans, found.implied | extra)


@county_cached
def _by_id() -> dict:
    return {t.id: t for t in topics()}


@county_cached
def _by_concept() -> dict[str, tuple]:
    """'dimension:value' → the topics with a slot for it (an inverted index over the slots)."""
    out: dict[str, list] = {}
    for t in topics():
        for slot in _slots(t):
            for value in slot.values:
                out.setdefault(f"{slot.dimension}:{value}", []).append(t.id)
    return {c: tuple(dict.fromkeys(ids)) for c, ids in out.items()}


def _point_score(topic: Topic, asked: frozenset) -> float:
    """+POINT when the topic's answer states a point asked (besides whether), -POINT when it states
    none of them, 0 for a yes/no question or a statement."""
    if not asked:
        return 0.0
    return POINT if topic.points & asked else -POINT


# concepts too common to be what a question is about (报, 怎么, 新农合): never its focus
_NOT_FOCUS = {"scheme:ncms", "scheme:generic", "action:claim", "attr:how", "attr:what", "attr:amount", "attr:rate",
              "attr:card"}


def _asks(span, asked_at: frozenset) -> bool:
    """The span lies within the words that ask the point (要什么手续: 手续 is what is asked, not what
    about); a longer word holding a point word still says what about (怎么算 is the calculation)."""
    inside = [i in asked_at for i in range(span.start, span.end)]
    # a word of everyday asking that overlaps the words asking (要什么 in 要什么手续) asks too
    return all(inside) or (any(inside) and all(c in EVERYDAY for c in span.concepts))


def focus(found: Found, text: str = "") -> str | None:
    """The question's focus: its last telling concept. Chinese puts what is asked about last, before the
    question word (低保每年报销上限是多少: the cap; 外县的户口能参保吗: enrolling); an injury, a complaint or
    another scheme named anywhere is the focus whatever follows (they decide whether anything is paid).
    Words that ask the point (要什么手续) are not what the question is about."""
    asked_at = frozenset(i for start, end, _ in points.spans(text) for i in range(start, end)) if text else frozenset()
    told = [c for span in found.spans for c in span.concepts[:1]
            if not c.startswith(concepts.AREA + ":") and c not in _NOT_FOCUS and c not in EVERYDAY
            and not _asks(span, asked_at)]
    decisive = [c for c in told if c in DECISIVE]
    return (decisive or told or [None])[-1]


def _focus_score(topic: Topic, concept: str | None) -> float:
    if concept is None:
        return 0.0
    dimension, value = concept.split(":", 1)
    hit = [slot for slot in _slots(topic) if slot.dimension == dimension and value in slot.values]
    if not hit:
        return 0.0
    return FOCUS * (DEFAULT_SHARE if all(slot.default for slot in hit) else 1.0)


def rank(text: str, found: Found | None = None, limit: int = 5) -> list[tuple[float, str]]:
    """(score, topic id) of the best topics for a normalised question, best first."""
    found = found or concepts.find(text)
    wanted = points.substantive(points.find(text))
    main = focus(found, text)
    plain = canon(text)
    cover = index().coverage(plain) if plain else {}
    asked = _asked(found)
    # only topics that share a concept with the question, or some of its words, can reach ANSWER_MIN
    by_id = _by_id()
    candidates = {tid for c in found.concepts for tid in _by_concept().get(c, ())}
    candidates.update(heapq.nlargest(LEXICAL_SHORTLIST, cover, key=cover.get))
    scored = [(fit(by_id[tid], asked) + LEXICAL * cover.get(tid, 0.0) / 100 + _point_score(by_id[tid], wanted)
               + _focus_score(by_id[tid], main), tid) for tid in candidates]
    scored.sort(key=lambda p: (-p[0], p[1]))
    return scored[:limit]


def declined(found: Found) -> str | None:
    """The labels of the schemes this service does not handle when the question is only about them
    (养老保险, 城镇职工医保, 商业保险, joined with 、); None when it names 新农合 or 城镇居民医保 too."""
    schemes = found.values("scheme")
    other = [s for s in DECLINED if s in schemes]
    # having both (单位交了医保,家里还要交吗) is a question about 新农合 too
    if other and not schemes & {"ncms", "urban"} and not found.has("attr:double"):
        return "、".join(concepts.labels()[f"scheme:{s}"] for s in other)
    return None


def decide(text: str) -> Decision:
    """What to do with a normalised policy question."""
    found = concepts.find(text)
    other = declined(found)
    if other:
        return Decision("other_scheme", found=found, scheme=other)
    area, care_area = _areas(text, found)
    about = _about_the_scheme(found)  # a place alone (去广州的火车票) says nothing of the scheme
    if care_area and not (found.dimensions() & {"care", "place"} or found.has("action:claim")):
        # no care named there: 在山*办医保 asks about that place's scheme; 到北京的车票 about nothing of ours
        area, care_area = (area or care_area) if about else area, None
    if care_area:
        found = with_care_area(found)
    scores = rank(text, found)
    decision = Decision("handoff", found=found, area=area, care_area=care_area, scores=scores,
                        asked=points.find(text))
    best = scores[0][0] if scores else 0.0
    if not about:  # 这几天天气咋样, asdf, 去广州的火车票: help, not a clerk's ticket
        decision.kind = "help" if not area else "handoff"
        return decision
    if _vague(found, decision.asked) and best < CLEAR_FIT:  # "我住院三天了": it names one thing, asks nothing: what about it?
        decision.kind = "clarify"
        decision.about = concepts.labels()[next(iter(_named(found)))]
        return decision
    if best < ANSWER_MIN:
        return decision
    subject = _subject(found, text)
    if subject and not any(_covers(tid, subject) for _, tid in scores):
        return decision  # nothing known is about what was asked (打狂犬疫苗报销比例): a clerk's question
    wanted = points.substantive(decision.asked)
    before = scores[0]
    scores = _filling_first(scores, found, text)
    scores = _about_the_subject_first(scores, _subject(found, text, asked_too=True), POINT_SWITCH)
    decisive = focus(found, text)
    if decisive in DECISIVE:  # 老人去世…能退吗: the death decides, not the 老人's contribution rate
        scores = _about_the_subject_first(scores, frozenset({decisive}), float("inf"))
    if scores and scores[0] == before:  # (a topic chosen for the subject that does not state the point is a partial answer)
        scores = _stating_the_point_first(scores, wanted, subject, found)
    if not scores or scores[0][0] < ANSWER_MIN:  # only neighbours fitted: nothing does
        decision.scores = scores
        return decision
    decision.scores, best = scores, scores[0][0]
    first, moved = scores[0][1], max(scores)[1] != scores[0][1]

    def second_choice(tid: str) -> bool:
        """As eligible as the first: once the best-scoring topic was passed over for the subject or the
        point asked, only topics about the subject and stating the point are a second choice."""
        return not moved or (_covers(tid, subject) and (not wanted or bool(_by_id()[tid].points & wanted)))

    close = ([first] + [tid for score, tid in scores[1:] if abs(best - score) < MARGIN and second_choice(tid)])[:CHOICES]
    if area:  # another place's scheme: 示范县's closest rule, labelled as 示范县's, is the answer
        close = close[:1]
    decision.kind = "answer" if len(close) == 1 or unanswerable(found) else "choice"
    decision.topics = close if decision.kind == "choice" else close[:1]
    if decision.kind == "answer":
        topic = _by_id()[close[0]]
        decision.missing = _unanswered(topic, decision.asked, found) | unanswerable(found)
        decision.elsewhere = _other_schemes(topic, found)
        if decision.missing or decision.elsewhere:
            decision.kind = "partial"  # the subject is clear, but part of what was asked is not in its answer
    return decision


def unanswerable(found: Found) -> frozenset:
    """Concepts the question names that no topic answers (密码, 伤残鉴定): known words the rules are
    silent on. Whatever else fits, that part goes to a clerk."""
    return frozenset(c for c in found.concepts - found.implied if not _by_concept().get(c))


def _subject(found: Found, text: str, asked_too: bool = False) -> frozenset:
    """What the question is about: its concepts, less those only implied, the words that ask the point
    (多长时间, 要什么手续) and the scheme's own name (新农合证补办要多长时间: the card and losing it).
    asked_too: a telling concept within the asking words counts too (比例 in 范围和比例是多少)."""
    asked_at = frozenset(i for start, end, _ in points.spans(text) for i in range(start, end))
    said = {c for span in found.spans if not _names_the_scheme(span)
            for c in span.concepts if not c.startswith(concepts.AREA + ":")
            and (not _asks(span, asked_at) or (asked_too and c not in EVERYDAY))}
    return frozenset(said - found.implied - {"action:claim"})  # 报 is in nearly every question: it says what about nothing


def _names_the_scheme(span) -> bool:
    """参合, 新农合, 合作医疗证: a word naming our scheme is no subject of its own, whatever else it sets."""
    return any(c in ("scheme:ncms", "scheme:generic") for c in span.concepts)


def _covers(topic_id: str, subject: frozenset) -> bool:
    return not subject or bool(_covered(_by_id()[topic_id]) & subject)


def _filling_first(scores: list, found: Found, text: str) -> list:
    """A topic about doing something the question never speaks of (怎么查参合 for a question that checks
    nothing) is a neighbour's answer: when the best topic's own action is nowhere in the question, not
    even inside a longer word (交给谁 holds 交), the best topic within POINT_SWITCH whose action is, goes first."""
    by_id = _by_id()
    if not scores or _names_its_action(by_id[scores[0][1]], found, text):
        return scores
    best = scores[0][0]
    filling = next(((s, t) for s, t in scores if s >= max(ANSWER_MIN, best - POINT_SWITCH)
                    and _names_its_action(by_id[t], found, text)), None)
    if filling is None:  # (dropping it then was tried: 城乡医保一年多少 asks the contribution without a verb)
        return scores
    return [filling] + [p for p in scores if p != filling]


def _about_the_subject_first(scores: list, subject: frozenset, reach: float) -> list:
    """A topic about nothing the question is about is a neighbour's answer, however well its other words
    fit: when the best speaks of none of the subject (退农保要什么手续: the claim documents speak of
    documents, not of leaving), the best topic that does, within reach of it, goes first."""
    if not subject or not scores or _covers(scores[0][1], subject):  # (what it names, less everyday words)
        return scores
    best = scores[0][0]
    about = next(((s, t) for s, t in scores if s >= max(ANSWER_MIN, best - reach) and _covers(t, subject)), None)
    if about is None:
        return scores
    return [about] + [p for p in scores if p != about]


def _stating_the_point_first(scores: list, wanted: frozenset, subject: frozenset, found: Found) -> list:
    """A topic that does not state the point asked is not the answer to it, however well the rest fits:
    when the best does not, a topic within POINT_SWITCH of it that does, is about the subject too and
    is about nothing the question is silent on, goes first (低保户…要带哪些证件: the documents, not the
    低保户 rates; 网上交不了怎么交 is no question of how to check a payment, though that topic says how)."""
    by_id = _by_id()
    if not wanted or not scores or by_id[scores[0][1]].points & wanted:
        return scores
    best = scores[0][0]
    stating = [(s, t) for s, t in scores if by_id[t].points & wanted and s >= max(ANSWER_MIN, best - POINT_SWITCH)
               and _covers(t, subject) and _fills(by_id[t], found)]
    if not stating:
        return scores
    return [stating[0]] + [p for p in scores if p != stating[0]]


def _fills(topic: Topic, found: Found) -> bool:
    """Does the question name something for every slot of the topic that is no default?"""
    named = {tuple(c.split(":", 1)) for c in found.concepts}
    return all(any((slot.dimension, v) in named for v in slot.values) for slot in _slots(topic) if not slot.default)


def _names_its_action(topic: Topic, found: Found, text: str) -> bool:
    """Does the question speak of each action the topic is about (no default slot), as a concept or as
    one of its words inside another word?"""
    words = _action_words()
    return all(any(found.has(f"action:{v}") or any(w in text for w in words.get(f"action:{v}", ())) for v in slot.values)
               for slot in _slots(topic) if slot.dimension == "action" and not slot.default)


@county_cached
def _action_words() -> dict[str, tuple[str, ...]]:
    """action concept → its words."""
    words: dict[str, list[str]] = {}
    for word, named in concepts.lexicon().items():
        for c in named:  # 参合 names the scheme and enrolling
            if c.startswith("action:"):
                words.setdefault(c, []).append(word)
    return {c: tuple(w) for c, w in words.items()}


def _unanswered(topic: Topic, asked: frozenset, found: Found) -> frozenset:
    """The points asked that the topic's answer does not state (when it states none of them), and
    城镇居民医保 when the question names it and the topic speaks of 新农合 only: a clerk's to answer."""
    wanted = points.substantive(asked)
    missing = set() if topic.points & wanted else set(wanted)
    if "scheme:urban" in found.concepts - found.implied and "scheme:urban" not in _covered(topic):
        missing.add("scheme:urban")
    return frozenset(missing)


def _other_schemes(topic: Topic, found: Found) -> tuple:
    """Schemes this service does not handle that the question names beside 新农合 (商业保险, 职工医保,
    养老保险) and the topic does not speak of: the reply says where to ask about them."""
    covered = _covered(topic)
    return tuple(concepts.labels()[f"scheme:{s}"] for s in DECLINED
                 if f"scheme:{s}" in found.concepts - found.implied and f"scheme:{s}" not in covered)


@county_cached
def _covered(topic: Topic) -> frozenset:
    return frozenset(f"{slot.dimension}:{v}" for slot in _slots(topic) for v in slot.values)


# Words of every walk of life (查, 多少钱, 几天, 在哪, 怎么): alone they don't make a question about the scheme.
EVERYDAY = {"action:check", "action:lose", "action:online", "action:apply", "attr:time", "attr:where",
            "attr:amount", "attr:what", "attr:who", "attr:how", "attr:compare", "attr:calc", "attr:documents",
            "attr:subsidy"}


def _named(found: Found) -> frozenset:
    return found.concepts - found.implied - EVERYDAY - {"scheme:ncms", "scheme:generic", "action:claim"}


def _vague(found: Found, asked: frozenset) -> bool:
    """A message naming one place, kind of care or group and asking nothing about it (我住院三天了);
    县里面的医院可以报销吗 asks whether, 咨询…定点医院报销的问题 asks about claiming there."""
    named = _named(found)
    return len(named) == 1 and next(iter(named)).split(":")[0] in STRONG and not asked \
        and not any(c.startswith("attr:") for c in found.concepts) and not found.has("action:claim")


def _about_the_scheme(found: Found) -> bool:
    """Does the question speak of the scheme at all (a scheme word, a place or kind of care, a group,
    报销, 起付线, 合管办 …)? Everyday words alone (多少钱, 几天, 咋交) don't."""
    return any(c not in EVERYDAY for c in found.concepts)
