"""Match a question to a Q&A topic with rapidfuzz.

Normalised text (handlers/normalize.py) loses filler words, then becomes character bigrams;
`token_set_ratio` compares bigram sets (unspaced Chinese is one token to WRatio, which ties
everything). A second channel compares toneless pinyin syllables, for homophones the vocabulary
repair did not catch. The best paraphrase per topic scores the topic.
"""
import re
from dataclasses import dataclass
from functools import cache

from rapidfuzz import fuzz, process

from .qa import Topic, topics

CUTOFF = 60.0  # below: no topic, hand the question to a person
CLOSE = 4.0  # a second topic this close to the best: ask which one
FILLERS = re.compile(
    r"(?:请问一下|请问|你好|您好|麻烦问下|麻烦|问一下|问下|我想问|想问一下|想问|想知道|打听一下|"
    r"那个|这个|就是|俺们|俺|咱们|咱|我们|我|你们|你|吧|呀|啊|呢|哦|嘛|哈|啦|的|了|吗|么)"
)
_KEEP = re.compile(r"[\u4e00-\u9fff0-9a-zA-Z%]+")


def _plain(text: str) -> str:
    return "".join(_KEEP.findall(FILLERS.sub("", text)))


def bigrams(text: str) -> str:
    plain = _plain(text)
    if len(plain) < 2:
        return plain
    return " ".join(plain[i:i + 2] for i in range(len(plain) - 1))


def sounds(text: str) -> str:
    from pypinyin import lazy_pinyin

    return " ".join(lazy_pinyin(_plain(text)))


@dataclass(frozen=True)
class Match:
    topic: Topic
    score: float


@cache
def _index():
    keys, by_char, by_sound = [], [], []
    for t in topics():
        for p in (t.question, *t.paraphrases):
            keys.append(t)
            by_char.append(bigrams(p))
            by_sound.append(sounds(p))
    return keys, by_char, by_sound


def rank(question: str, limit: int = 3) -> list[Match]:
    """The best topics for `question`, best first, one entry per topic."""
    keys, by_char, by_sound = _index()
    q_char, q_sound = bigrams(question), sounds(question)
    best: dict[str, Match] = {}
    for choices, query in ((by_char, q_char), (by_sound, q_sound)):
        if not query:
            continue
        for _, score, i in process.extract(query, choices, scorer=fuzz.token_set_ratio,
                                           processor=None, limit=30):
            t = keys[i]
            if t.id not in best or score > best[t.id].score:
                best[t.id] = Match(t, score)
    return sorted(best.values(), key=lambda m: -m.score)[:limit]


def match(question: str) -> tuple[Match | None, list[Match]]:
    """(the topic, []) when clear; (None, close candidates) when two or more are close;
    (None, []) when nothing passes the cutoff."""
    ranked = [m for m in rank(question) if m.score >= CUTOFF]
    if not ranked:
        return None, []
    close = [m for m in ranked if ranked[0].score - m.score <= CLOSE]
    if len(close) > 1:
        return None, close
    return ranked[0], []
