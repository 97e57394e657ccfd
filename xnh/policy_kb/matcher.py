"""The lexical share of question matching (policy_kb/understand.py decides on concepts first):
how much of a question's wording the knowledge base's phrasings of each topic use.

 1. `canon`: the text from handlers/normalize.py (traditional → simplified, NFKC, homophones)
    loses punctuation; dialect and synonyms become one word (咋 → 怎么, 报账 → 报销, 合医 → 新农合),
    and filler words go (俺, 请问, 一下, 的, 了, a trailing 吗/不/没有).
 2. `Index.coverage`: the IDF-weighted share of the question's character unigrams and bigrams that a
    topic's paraphrases use (an inverted index). A word no topic knows (车险, 猪肉) weighs most and no
    topic covers it.
The rapidfuzz re-scoring this module did before concepts (top-1 on real questions 69 %, see
bench/KB_COMPARE.md) is kept, for the side-by-side only, in bench/baseline_matcher.py.
"""
import math
import re
from .loader import county_cached

from .qa import topics

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


def grams(plain: str) -> str:
    """Character unigrams and bigrams, space-separated."""
    return " ".join([*plain, *(plain[i:i + 2] for i in range(len(plain) - 1))])


class Index:
    """The topics' paraphrases as an inverted index of character grams, for `coverage`."""

    def __init__(self, items):
        postings: dict[str, list] = {}
        for t in items:
            plains = [canon(p) for p in dict.fromkeys((t.question, *t.paraphrases))]
            for g in {g for p in plains for g in grams(p).split()}:
                postings.setdefault(g, []).append(t.id)
        n = len({t.id for t in items})
        self.postings = {g: tuple(ids) for g, ids in postings.items()}
        self.idf = {g: math.log((n + 1) / (len(ids) + 1)) + 1 for g, ids in postings.items()}
        self.unknown_idf = math.log(n + 1) + 1

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


@county_cached
def index() -> Index:
    return Index(topics())
