"""Time the product's question decision (policy_kb/understand.py: concepts, ranking, decision) per
question at 300 topics (the goal is ≤ 1 ms), and the lexical index it uses (matcher.Index).

The shipped topics are padded to 300 in memory: each copy gets a new id and paraphrases with a
few characters changed, so the index holds ~4× as many distinct strings as today's KB. The
questions are the held-out and out-of-scope questions, already normalised (normalize.py is
timed separately: it runs for every message whatever its intent).

Run: python bench/kb_speed.py [--topics 300] [--rounds 5]
"""
import argparse
import dataclasses
import statistics
import time

from xnh.handlers.normalize import normalize
from xnh.policy_kb import matcher, understand
from xnh.policy_kb.loader import KB_DIR
from xnh.policy_kb.qa import topics
from machine import describe

FILLER = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥"


def padded(n: int):
    """The real topics plus synthetic copies, n in all."""
    real = list(topics())
    out = list(real)
    k = 0
    while len(out) < n:
        t = real[k % len(real)]
        tag = FILLER[k % len(FILLER)] + FILLER[(k // len(FILLER)) % len(FILLER)]
        out.append(dataclasses.replace(t, id=f"{t.id}_syn{k}", question=tag + t.question,
                                       paraphrases=tuple(tag + p[1:] for p in t.paraphrases)))
        k += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topics", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    import tomllib

    with open(KB_DIR / "out_of_scope.toml", "rb") as f:
        oos = tomllib.load(f)["questions"]
    questions = [normalize(q) for t in topics() for q in t.heldout] + [normalize(q) for q in oos]
    items = padded(a.topics)
    t = time.perf_counter()
    index = matcher.Index(items)
    build = time.perf_counter() - t
    strings = sum(1 + len(t.paraphrases) for t in items)
    plains = [matcher.canon(q) for q in questions]
    per_q = []
    for _ in range(a.rounds):
        t = time.perf_counter()
        for q in plains:
            index.coverage(q)
        per_q.append((time.perf_counter() - t) / len(questions) * 1000)
    understand.topics, understand.index = (lambda: tuple(items)), (lambda: index)  # decide() over the padded KB
    understand._by_id.cache_clear(), understand._by_concept.cache_clear()
    understand.decide(questions[0])
    per_decide = []
    for _ in range(a.rounds):
        t = time.perf_counter()
        for q in questions:
            understand.decide(q)
        per_decide.append((time.perf_counter() - t) / len(questions) * 1000)
    t = time.perf_counter()
    for q in questions:
        normalize(q)
    norm = (time.perf_counter() - t) / len(questions) * 1000
    print(f"machine: {describe()}")
    print(f"{len(items)} topics, {strings} paraphrases indexed (built in {build:.2f} s), {len(questions)} questions")
    print(f"normalize: {norm:.3f} ms per question")
    print(f"lexical coverage at {len(items)} topics: {statistics.median(per_q):.3f} ms per question "
          f"(median of {a.rounds} rounds; min {min(per_q):.3f}, max {max(per_q):.3f})")
    print(f"understand.decide at {len(items)} topics: {statistics.median(per_decide):.3f} ms per question "
          f"(median of {a.rounds} rounds; min {min(per_decide):.3f}, max {max(per_decide):.3f})")


if __name__ == "__main__":
    main()
