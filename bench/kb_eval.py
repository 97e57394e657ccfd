"""Held-out evaluation of the knowledge-base matcher.

Each topic's `heldout` paraphrases are never used for matching; this script asks every one of them
and reports top-1 accuracy, and asks every question of policy_kb/out_of_scope.toml and reports the
share handed to a person (no topic above the cutoff) instead of a wrong answer.

Every variant of --compare shares steps 1-2 of matcher.py (canonical text, IDF coverage shortlist)
and differs in the rapidfuzz scorer and tokens of step 3; --no-coverage scores with rapidfuzz alone.

Run:  python bench/kb_eval.py            the matcher as shipped (two headline lines at the end)
      python bench/kb_eval.py --compare  also the scorers/analyzers tried, with a cutoff sweep
      python bench/kb_eval.py --compare --no-coverage   the same with rapidfuzz alone (weight 0)
      python bench/kb_eval.py -v         list the misses
"""
import argparse
import sys
import time
import tomllib

from rapidfuzz import fuzz

from xnh.handlers.normalize import normalize
from xnh.policy_kb import matcher
from xnh.policy_kb.loader import KB_DIR
from xnh.policy_kb.qa import topics


def out_of_scope() -> list[str]:
    with open(KB_DIR / "out_of_scope.toml", "rb") as f:
        return tomllib.load(f)["questions"]


def heldout() -> list[tuple[str, str]]:
    return [(q, t.id) for t in topics() for q in t.heldout]


def evaluate(index: matcher.Index, cutoff=matcher.CUTOFF, close=matcher.CLOSE, verbose=False) -> dict:
    """top1: best-ranked topic is right; direct: answered at once and right; choice_ok: right topic among
    the offered choices; wrong: answered at once with a wrong topic; oos_handoff: out-of-scope handed off."""
    n = top1 = direct = choice_ok = wrong = 0
    for q, want in heldout():
        text = normalize(q)
        ranked = index.rank(text)
        best, near = index.match(text, cutoff, close)
        n += 1
        top1 += bool(ranked) and ranked[0].topic.id == want
        direct += bool(best) and best.topic.id == want
        wrong += bool(best) and best.topic.id != want
        choice_ok += any(m.topic.id == want for m in near)
        if verbose and not (best and best.topic.id == want):
            got = best.topic.id if best else ("choice " + "/".join(m.topic.id for m in near) if near else "handoff")
            top = f"{ranked[0].topic.id} {ranked[0].score:.0f}" if ranked else "-"
            print(f"  miss {q!r}: want {want}, got {got} (top {top})")
    oos = out_of_scope()
    handed = 0
    for q in oos:
        best, near = index.match(normalize(q), cutoff, close)
        handed += not best and not near
        if verbose and (best or near):
            got = best.topic.id if best else "choice " + "/".join(m.topic.id for m in near)
            print(f"  out-of-scope {q!r} → {got} ({(best or near[0]).score:.0f})")
    return {"n": n, "top1": top1 / n, "direct": direct / n, "choice_ok": choice_ok / n, "wrong": wrong / n,
            "n_oos": len(oos), "oos_handoff": handed / len(oos)}


def _chars(plain):
    return plain


def _bigrams(plain):
    return " ".join(plain[i:i + 2] for i in range(len(plain) - 1)) or plain


def _jieba(plain):
    import jieba

    return " ".join(jieba.lcut(plain))


VARIANTS = [  # (name, scorer, analyzer, pinyin)
    ("WRatio, unspaced characters", fuzz.WRatio, _chars, False),
    ("ratio, unspaced characters", fuzz.ratio, _chars, False),
    ("token_set_ratio, bigrams", fuzz.token_set_ratio, _bigrams, False),
    ("token_sort_ratio, bigrams", fuzz.token_sort_ratio, _bigrams, False),
    ("token_set_ratio, jieba words", fuzz.token_set_ratio, _jieba, False),
    ("token_sort_ratio, jieba words", fuzz.token_sort_ratio, _jieba, False),
    ("token_set_ratio, unigrams+bigrams", fuzz.token_set_ratio, matcher.grams, False),
    ("token_sort_ratio, unigrams+bigrams", fuzz.token_sort_ratio, matcher.grams, False),
    ("token_sort_ratio, unigrams+bigrams + pinyin", fuzz.token_sort_ratio, matcher.grams, True),
    ("token_sort_ratio, jieba words + pinyin", fuzz.token_sort_ratio, _jieba, True),
    ("ratio, unspaced characters + pinyin (shipped)", fuzz.ratio, _chars, True),
]


def sweep(index) -> str:
    """The cutoff that keeps most held-out answers right while handing off out-of-scope questions."""
    rows = []
    for cutoff in range(40, 86, 5):
        r = evaluate(index, cutoff)
        rows.append((min(r["direct"] + r["choice_ok"], r["oos_handoff"]), cutoff, r))
    _, cutoff, r = max(rows, key=lambda x: (x[0], -x[1]))
    return (f"best cutoff {cutoff}: answered right {r['direct']:.1%} (+{r['choice_ok']:.1%} via choice), "
            f"out-of-scope handed off {r['oos_handoff']:.1%}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--no-coverage", action="store_true")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    if a.compare:
        print(f"{len(topics())} topics, {len(heldout())} held-out questions, {len(out_of_scope())} out-of-scope\n")
        for name, scorer, analyzer, pinyin in VARIANTS:
            t = time.perf_counter()
            index = matcher.Index(topics(), scorer=scorer, analyzer=analyzer, pinyin=pinyin,
                                  weight=0.0 if a.no_coverage else matcher.WEIGHT,
                                  shortlist=10**6 if a.no_coverage else matcher.SHORTLIST)
            r = evaluate(index)
            print(f"{name:48s} top-1 {r['top1']:.1%}  at cutoff {matcher.CUTOFF:.0f}: out-of-scope handed off "
                  f"{r['oos_handoff']:.1%}  ({time.perf_counter() - t:.1f} s)")
            print(f"{'':48s} {sweep(index)}")
        print()
    r = evaluate(matcher.index(), verbose=a.v)
    print(f"topics {len(topics())}, held-out questions {r['n']}, out-of-scope questions {r['n_oos']}")
    print(f"answered at once and right {r['direct']:.1%}; right topic among choices {r['choice_ok']:.1%}; "
          f"answered wrongly {r['wrong']:.1%}")
    print(f"held-out top-1 accuracy: {r['top1']:.1%}")
    print(f"out-of-scope handed to a person: {r['oos_handoff']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
