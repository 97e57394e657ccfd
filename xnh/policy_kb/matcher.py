"""Match a farmer's question to a Q&A topic with rapidfuzz.

Pipeline (each step chosen by measurement, see bench/KB_RESULTS.md):
 1. `canon`: the text from handlers/normalize.py (traditional → simplified, NFKC, homophones)
    loses punctuation; dialect and synonyms become one word (咋 → 怎么, 报账 → 报销, 合医 → 新农合),
    and filler words go (俺, 请问, 一下, 的, 了, a trailing 吗/不/没有).
 2. coverage: the IDF-weighted share of the question's character unigrams and bigrams that a topic's
    paraphrases use (an inverted index). A word no topic knows (车险, 猪肉) weighs most and no topic
    covers it, so questions about other things score low and go to a person. The SHORTLIST topics
    of highest coverage go on.
 3. rapidfuzz re-scores the shortlist: scorer `fuzz.ratio` on the canonical characters, and on
    toneless pinyin less PINYIN_PENALTY (homophones the vocabulary repair missed); processor=None,
    because step 1 already prepared the text. A topic scores its best paraphrase.
 4. score = WEIGHT × coverage + (1 − WEIGHT) × fuzzy; below CUTOFF → None (a person answers);
    a second topic within CLOSE → ask which one.
"""
import heapq
import math
import re
from dataclasses import dataclass
from functools import cache

from rapidfuzz import fuzz, process

from .loader import KB_DIR, read_toml
from .qa import Topic, topics

CUTOFF = 60.0  # below: no topic, hand the question to a person
CLOSE = 4.0  # a second topic this close to the best: ask which one
SOFT_CUTOFF = 45.0  # between this and CUTOFF, a question naming a scheme word gets choices, not a clerk
SOFT_CLOSE = 10.0  # ... the topics within this of the best
NOT_ANCHORS = {"身份证", "人工", "退订", "医院"}  # vocabulary words too common outside the scheme
PINYIN_PENALTY = 4.0  # the sound channel agrees with more unrelated text than the character one
SCORER = fuzz.ratio
WEIGHT = 0.5  # share of the coverage measure in the score
SURE = 10.0  # a best score this far above CUTOFF, with no close second, skips the pinyin channel
SHORTLIST = 12  # topics of highest coverage that rapidfuzz re-scores

# Synonyms and dialect → one word, longest first (applied before filler removal).
SYNONYMS = {
    "新农合": "新农合", "城镇合作医疗": "城镇合作医疗",  # already canonical: not 新新农合, 城镇新农合
    "新型农村合作医疗": "新农合", "农村合作医疗": "新农合", "合作医疗": "新农合", "合医": "新农合", "农合": "新农合",
    "新农合证": "医疗证", "新农合本": "医疗证", "医疗本": "医疗证", "本本": "本子",
    "报账": "报销", "报帐": "报销", "给报": "报", "报回来": "报", "能报销": "能报", "报不报": "能报",
    "怎么样": "怎么", "怎样": "怎么", "如何": "怎么", "咋样": "怎么", "咋整": "怎么办", "咋办": "怎么办", "咋弄": "怎么办",
    "咋": "怎么", "啥": "什么", "甚么": "什么", "哪些": "什么", "哪几个": "什么", "为何": "为什么",
    "能不能": "能", "可不可以": "能", "可以": "能", "能否": "能", "行不行": "能", "行吗": "能",
    "多少钱": "多少", "几块钱": "多少", "几成": "多少", "百分之几": "多少", "百分之多少": "多少",
    "住了院": "住院", "住进医院": "住院", "住的院": "住院", "缴费": "交钱", "交费": "交钱", "缴": "交",
    "闺女": "女儿", "娃": "孩子", "小孩": "孩子", "宝宝": "孩子", "婴儿": "孩子",
    "俺爹": "家人", "俺娘": "家人", "俺妈": "家人", "俺爸": "家人", "我爸": "家人", "我妈": "家人", "老人家": "老人",
    "外省": "外地", "外头": "外面", "省城": "省里", "城里": "城镇", "城市户口": "城镇户口", "非农业户口": "城镇户口",
    "念书": "上学", "读书": "上学", "告状": "举报", "反映": "举报",
}
FILLERS = (
    "请问一下", "请问", "你好", "您好", "麻烦问下", "麻烦", "问一下", "问下", "我想问", "想问一下", "想问", "想知道",
    "打听一下", "一下", "那个", "这个", "就是", "到底", "俺们", "俺", "咱们", "咱", "我们", "我家", "我", "你们", "你",
    "吧", "呀", "啊", "呢", "哦", "嘛", "哈", "啦", "的", "了",
)
# Question tails that carry no topic: 吗, 不, 没有 at the end (能报吗, 能报不, 交了没有).
_TAIL = re.compile(r"(?:吗|么|不|没有|没|呢|不行)+$")
_SYN = re.compile("|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)))
_FILL = re.compile("|".join(sorted(map(re.escape, FILLERS), key=len, reverse=True)))
_KEEP = re.compile(r"[\u4e00-\u9fff0-9a-z%]+")


def canon(text: str) -> str:
    """The comparable form: synonyms unified, fillers and punctuation out."""
    text = _SYN.sub(lambda m: SYNONYMS[m.group(0)], text.lower())
    return _TAIL.sub("", "".join(_KEEP.findall(_FILL.sub("", text))))


def chars(plain: str) -> str:
    """The canonical text itself: what `fuzz.ratio` compares (measured best, bench/KB_RESULTS.md)."""
    return plain


def grams(plain: str) -> str:
    """Character unigrams and bigrams, space-separated (rapidfuzz's token scorers split on spaces)."""
    return " ".join([*plain, *(plain[i:i + 2] for i in range(len(plain) - 1))])


@cache
def _syllable(char: str) -> str:
    from pypinyin import lazy_pinyin

    return lazy_pinyin(char)[0]


def sounds(plain: str) -> str:
    """Toneless pinyin syllables and syllable pairs, space-separated."""
    syl = [_syllable(c) for c in plain]
    return " ".join([*syl, *(syl[i] + syl[i + 1] for i in range(len(syl) - 1))])


@dataclass(frozen=True)
class Match:
    topic: Topic
    score: float


class Index:
    """Every matching paraphrase of `items`, prepared once; `rank` scores a question against them.

    A topic's score mixes two measures, both 0-100:
      fuzzy    the rapidfuzz `scorer` of the question against the topic's best paraphrase
               (characters; and toneless pinyin less `penalty`, for homophones)
      coverage the IDF-weighted share of the question's grams found in the topic's paraphrases:
               a word no topic knows (车险, 猪肉) weighs most and is covered by none, so questions
               about other things score low and go to a person
    score = weight × coverage + (1 − weight) × fuzzy.
    """

    def __init__(self, items, scorer=SCORER, analyzer=chars, pinyin=True, penalty=PINYIN_PENALTY, weight=WEIGHT,
                 shortlist=SHORTLIST):
        # token_sort_ratio is ratio() of the sorted tokens: sort the paraphrases' tokens once here and
        # call ratio(), 5× faster than sorting every paraphrase again for every question
        self.presort = scorer is fuzz.token_sort_ratio
        self.scorer = fuzz.ratio if self.presort else scorer
        self.analyzer, self.pinyin, self.penalty, self.weight, self.shortlist = (
            analyzer, pinyin, penalty, weight, shortlist)
        self.topics, self.by_char, self.by_sound, self.plains = {}, {}, {}, {}
        postings: dict[str, list] = {}
        for t in items:
            self.topics[t.id] = t
            plains = [canon(p) for p in dict.fromkeys((t.question, *t.paraphrases))]
            self.by_char[t.id] = [self._prepare(analyzer(p)) for p in plains]
            self.plains[t.id] = plains  # pinyin is computed on first need (_sounds_of): importing
            # pypinyin costs ~0.4 s of `xnh ask`'s cold start, and clear questions never need it
            for g in {g for p in plains for g in grams(p).split()}:
                postings.setdefault(g, []).append(t.id)
        n = len(self.topics)
        self.postings = {g: tuple(ids) for g, ids in postings.items()}
        self.idf = {g: math.log((n + 1) / (len(ids) + 1)) + 1 for g, ids in postings.items()}
        self.unknown_idf = math.log(n + 1) + 1

    def _prepare(self, tokens: str) -> str:
        return " ".join(sorted(tokens.split())) if self.presort else tokens

    def coverage(self, plain: str) -> dict[str, float]:
        """Topic id → IDF-weighted share (0-100) of the question's grams that the topic uses
        (through the inverted index: only topics sharing a gram with the question are touched)."""
        got: dict[str, float] = {}
        total = 0.0
        for g in set(grams(plain).split()):
            w = self.idf.get(g, self.unknown_idf)
            total += w
            for tid in self.postings.get(g, ()):
                got[tid] = got.get(tid, 0.0) + w
        return {tid: 100 * v / total for tid, v in got.items()} if total else {}

    def _sounds_of(self, tid: str) -> list[str]:
        if tid not in self.by_sound:
            self.by_sound[tid] = [self._prepare(sounds(p)) for p in self.plains[tid]]
        return self.by_sound[tid]

    def fuzzy(self, plain: str, ids, by_sound: bool = False) -> dict[str, float]:
        """Topic id → the best rapidfuzz score of any of its paraphrases, for the topics `ids`:
        on characters, or (by_sound) on toneless pinyin less `penalty`."""
        best = dict.fromkeys(ids, 0.0)
        if by_sound:
            table, query, minus = self._sounds_of, self._prepare(sounds(plain)), self.penalty
        else:
            table, query, minus = self.by_char.__getitem__, self._prepare(self.analyzer(plain)), 0.0
        owners, choices = [], []
        for tid in ids:
            rows = table(tid)
            owners += [tid] * len(rows)
            choices += rows
        for _, score, i in process.extract(query, choices, scorer=self.scorer, processor=None, limit=None):
            if score - minus > best[owners[i]]:
                best[owners[i]] = score - minus
        return best

    def rank(self, question: str, limit: int = 3) -> list[Match]:
        """The best topics for `question`, best first, one entry per topic: the `shortlist` topics
        of highest coverage are re-scored with rapidfuzz."""
        plain = canon(question)
        if not plain:
            return []
        cov = self.coverage(plain)
        ids = heapq.nlargest(self.shortlist, cov, key=cov.get)
        w = self.weight
        fz = self.fuzzy(plain, ids)
        scored = sorted(((w * cov[tid] + (1 - w) * fz[tid], tid) for tid in ids), reverse=True)
        clear = scored and scored[0][0] >= CUTOFF + SURE and (len(scored) < 2 or scored[0][0] - scored[1][0] > CLOSE)
        if self.pinyin and not clear:  # unsure: let the sound of the words speak too
            for tid, f in self.fuzzy(plain, ids, by_sound=True).items():
                fz[tid] = max(fz[tid], f)
            scored = sorted(((w * cov[tid] + (1 - w) * fz[tid], tid) for tid in ids), reverse=True)
        return [Match(self.topics[tid], score) for score, tid in
                sorted(scored, key=lambda p: (-p[0], p[1]))[:limit]]

    def match(self, question: str, cutoff: float = CUTOFF, close: float = CLOSE):
        """(the topic, []) when clear; (None, close candidates) when two or three are close;
        (None, []) when nothing passes the cutoff."""
        top = self.rank(question)
        ranked = [m for m in top if m.score >= cutoff]
        if not ranked:
            if top and top[0].score >= SOFT_CUTOFF and _anchored(question):
                return None, [m for m in top if top[0].score - m.score <= SOFT_CLOSE][:3]
            return None, []
        near = [m for m in ranked if ranked[0].score - m.score <= close]
        if len(near) > 1:
            return None, near
        return ranked[0], []


@cache
def _anchors() -> re.Pattern:
    words = read_toml(KB_DIR / "vocabulary.toml")["words"]
    return re.compile("|".join(sorted((re.escape(w) for w in words if w not in NOT_ANCHORS), key=len, reverse=True)))


def _anchored(question: str) -> bool:
    """Does the question name a word of the scheme (住院, 报销, 参合 ...; policy_kb/vocabulary.toml)?"""
    return bool(_anchors().search(question))


@cache
def index() -> Index:
    return Index(topics())


def rank(question: str, limit: int = 3) -> list[Match]:
    return index().rank(question, limit)


def match(question: str) -> tuple[Match | None, list[Match]]:
    return index().match(question)
