"""How alike two questions are, for questions the knowledge base knows nothing of: the question radar
groups such tickets by it (xnh/radar.py), and the bot answers a new such question with a local answer
saved for one alike (handlers/policy.py). One measure for both, so what the radar puts together is what
the bot later answers together.

    likeness("新农合卡密码忘了怎么办", "合作医疗卡的密码忘记了咋办")   # → 0-100
    ALIKE                                                              # the threshold: alike at or above it

A question becomes two sets: the concepts it names (policy_kb.concepts.find: `attr:password`,
`action:online` …; the scheme left out, nearly every question names it), split into distinctive ones and
GENERIC ones (how, card, apply, check, claim … which many unrelated questions share), and the character
pairs of its normalised text (handlers.normalize: simplified, half-width, homophones repaired) without the
words that only ask (怎么办, 请问, 吗 …). Likeness is a Dice overlap (2·|A∩B| / (|A|+|B|)):
    both name distinctive concepts   ½ · Dice(distinctive) + ½ · Dice(pairs ∪ generic concepts)
    only one does                    0.6 · Dice(pairs ∪ generic concepts)   (one names what the other lacks)
    neither does                     Dice(pairs ∪ concepts)
A question with fewer than MIN_TOKENS tokens is alike nothing.

Why not RapidFuzz's token_set_ratio (the first thing tried): over the same tokens it scored a question
and its rewording 71-89 and unrelated questions up to 70 (新农合卡密码忘了怎么办 vs 医保卡丢了怎么补办: 71),
since it counts a subset as a match and compares the joined token strings character by character. The
overlap above put the same pairs at 51-89 against at most 20 for the unrelated ones.

The threshold ALIKE = 50 was set on the tickets the 385 real questions of bench/real/ and
../shared/eval/real_dev*.json produce and on rewordings of them (`python bench/radar_eval.py` prints
the pairs): at 50 the questions that fall together ask the same thing (卡密码忘了 / 密码记不住了 …; the
highest pair of different questions among the real tickets is 54: 国家医保目录几年修改一次 and
医保a类药b类药c类药报销比例, both about the drug list); rewordings that share few characters and no
distinctive concept (在三水买了房子可以办本地医保吗 / 在外地买房能办当地医保吗: 18) stay apart, and a
clerk joins them by answering both.
"""
import re
from functools import lru_cache

from ..policy_kb import concepts
from .normalize import normalize

ALIKE = 50.0
MIN_TOKENS = 2
GENERIC = frozenset({"attr:how", "attr:card", "attr:amount", "attr:rate", "attr:what", "action:apply",
                     "action:check", "action:claim", "action:pay", "place:local", "care:inpatient",
                     "care:outpatient"})
# words that only ask, greet or fill: they say nothing of what is asked about
_ASKING = re.compile(r"请问|你好|您好|谢谢|麻烦|咨询|一下|怎么办|咋办|怎么样|怎么|咋|如何|什么|啥|哪些|哪里|"
                     r"能不能|可不可以|可以|是不是|有没有|吗|呢|吧|啊|呀|么|嘛|的|了|我|你|他|她|俺|们|请|问")
_NOT_WORD = re.compile(r"[^\u4e00-\u9fffA-Za-z0-9]+")


@lru_cache(maxsize=4096)
def tokens(text: str) -> tuple[frozenset, frozenset, frozenset]:
    """(distinctive concepts, generic concepts, character pairs) of a question (see the module docstring)."""
    plain = normalize(text or "")
    found = {k for k in concepts.find(plain).concepts if not k.startswith("scheme:")}
    bare = _NOT_WORD.sub(" ", _ASKING.sub(" ", plain))
    pairs = {run[i:i + 2] for run in bare.split() for i in range(max(len(run) - 1, 1))}
    return frozenset(found - GENERIC), frozenset(found & GENERIC), frozenset(pairs)


def _dice(a: frozenset, b: frozenset) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def likeness(a: str, b: str) -> float:
    """0-100: how alike questions `a` and `b` are (see the module docstring)."""
    return likeness_of(tokens(a), tokens(b))


def likeness_of(ta: tuple, tb: tuple) -> float:
    """`likeness` of two questions' `tokens`."""
    (da, ga, pa), (db, gb, pb) = ta, tb
    if len(da | ga | pa) < MIN_TOKENS or len(db | gb | pb) < MIN_TOKENS:
        return 0.0
    if da and db:
        score = 0.5 * _dice(da, db) + 0.5 * _dice(pa | ga, pb | gb)
    elif da or db:
        score = 0.6 * _dice(pa | ga, pb | gb)
    else:
        score = _dice(pa | ga, pb | gb)
    return round(100 * score, 1)


def best(text: str, candidates: dict, cutoff: float = ALIKE):
    """(key, score) of the candidate (key → list of phrasings) with the phrasing most alike `text`, when it
    is at least `cutoff`; else None."""
    mine = tokens(text)
    found = None
    for key, phrasings in candidates.items():
        for phrasing in phrasings:
            score = likeness_of(mine, tokens(phrasing))
            if score >= cutoff and (found is None or score > found[1]):
                found = (key, score)
    return found
