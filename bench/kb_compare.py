"""Side by side (issue 10): how each way of understanding a question ranks and decides, on the real
questions of ../shared/eval/real_dev.json and on a held-out set written the way farmers text.

Methods (each `rank(text) -> [topic id, ...]` best first, and `decide(text) -> (kind, [topic ids])`
with kind "answer" | "choice" | "handoff"):
  matcher@before  the matcher before the issue-10 rewrite (bench/baseline_matcher.py, a snapshot)
  bm25/topic      bm25s over jieba tokens, one document per topic (its question + paraphrases)
  bm25/para       bm25s over jieba tokens, one document per phrasing; a topic scores its best phrasing
  tfidf/char1-2   TF-IDF over character 1-2-grams (scikit-learn, analyzer="char"), cosine, best phrasing
  tfidf/char1-3   the same with 1-3-grams
  final           the product's decision: xnh.policy_kb.understand.decide() when that module exists,
                  else xnh.policy_kb.matcher.match() (today's API)

The plain rankers (bm25, tfidf) share one decision rule: handoff when the best score is below a
threshold, a menu of the topics within CLOSE_REL of the best when more than one is that close, else
the answer. The threshold is set on the knowledge base's own out-of-scope list
(policy_kb/out_of_scope.toml, not on either evaluation set): the OOS_QUANTILE quantile of those
questions' best scores, so that share of them is handed off.

Every text is normalised first with xnh.handlers.normalize.normalize (as respond() does), outside the
timing. µs per question: median of one warm `decide()` per question (rank is timed separately).

Labels: bench/data/real_dev_labels.json (topic ids acceptable for each real question, [] = out of
scope; estimate questions are left out) and bench/data/own_heldout.json. A labelled topic id that the
knowledge base does not have (yet) counts as a miss for every method; the table says how many.

Run:  python bench/kb_compare.py                  print the markdown table
      python bench/kb_compare.py --out bench/KB_COMPARE.md
      python bench/kb_compare.py -v               also every real question's decision per method
Needs bench/requirements.txt (bm25s, jieba, scikit-learn) besides the package.
"""
import argparse
import importlib.util
import json
import logging
import re
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from xnh.handlers.normalize import normalize  # noqa: E402
from xnh.policy_kb.loader import KB_DIR  # noqa: E402
from xnh.policy_kb.qa import topics  # noqa: E402

REAL = ROOT.parent / "shared" / "eval" / "real_dev.json"
REAL_LABELS = BENCH / "data" / "real_dev_labels.json"
OWN = BENCH / "data" / "own_heldout.json"

CLOSE_REL = 0.10  # a second topic within 10 % of the best score: a menu
MENU_MAX = 3
OOS_QUANTILE = 0.90  # the threshold hands off this share of policy_kb/out_of_scope.toml
NOTES = "<!-- notes: kept by --out -->"
SWEEP = (0.25, 0.5, 0.75, 0.9)  # --sweep: other quantiles
_KEEP = re.compile(r"[\u4e00-\u9fff0-9a-z%]+")


def plain(text: str) -> str:
    """Normalised text without punctuation or spaces (the plain rankers' input)."""
    return "".join(_KEEP.findall(text.lower()))


def phrasings(t) -> list[str]:
    return list(dict.fromkeys((t.question, *t.paraphrases)))


def kb_out_of_scope() -> list[str]:
    with open(KB_DIR / "out_of_scope.toml", "rb") as f:
        return [normalize(q) for q in tomllib.load(f)["questions"]]


def _ids(seq) -> list[str]:
    """Topic ids from a list of ids, Topics, or Matches (`.topic.id`)."""
    out = []
    for x in seq or ():
        if isinstance(x, str):
            tid = x
        elif isinstance(x, (tuple, list)):  # (score, id) or (id, score)
            tid = next((y for y in x if isinstance(y, str)), None)
        elif hasattr(x, "topic"):
            tid = x.topic.id
        else:
            tid = getattr(x, "id", None)
        if tid and tid not in out:
            out.append(tid)
    return out


# ---------------------------------------------------------------- methods


class Baseline:
    """The matcher of commit 62e7105, snapshotted in bench/baseline_matcher.py."""

    name = "matcher@before"

    def __init__(self):
        import baseline_matcher

        self.index = baseline_matcher.Index(topics())

    def rank(self, text):
        return [m.topic.id for m in self.index.rank(text, limit=3)]

    def decide(self, text):
        best, close = self.index.match(text)
        if best:
            return "answer", [best.topic.id]
        if close:
            return "choice", [m.topic.id for m in close]
        return "handoff", []


class ScoredRanker:
    """A ranker with a score per topic, and the shared threshold / closeness decision."""

    name = "?"
    threshold = 0.0

    def scores(self, text) -> dict[str, float]:
        raise NotImplementedError

    def _sorted(self, text):
        s = self.scores(text)
        return sorted(s.items(), key=lambda kv: (-kv[1], kv[0]))

    def rank(self, text):
        return [tid for tid, v in self._sorted(text)[:3] if v > 0]

    def calibrate(self, oos_texts):
        tops = [max(self.scores(t).values(), default=0.0) for t in oos_texts]
        self.threshold = float(np.quantile(tops, OOS_QUANTILE)) if tops else 0.0

    def decide(self, text):
        ranked = self._sorted(text)
        if not ranked or ranked[0][1] <= 0 or ranked[0][1] < self.threshold:
            return "handoff", []
        top = ranked[0][1]
        near = [tid for tid, v in ranked[:MENU_MAX] if v >= top * (1 - CLOSE_REL)]
        if len(near) > 1:
            return "choice", near
        return "answer", [ranked[0][0]]


class BM25(ScoredRanker):
    """bm25s over jieba tokens; per="topic": one document a topic; per="para": one a phrasing (max)."""

    def __init__(self, per: str):
        import bm25s
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        self.jieba = jieba
        self.name = f"bm25/{per}"
        docs, self.owner = [], []
        for t in topics():
            if per == "topic":
                docs.append(self.tokens(" ".join(normalize(p) for p in phrasings(t))))
                self.owner.append(t.id)
            else:
                for p in phrasings(t):
                    docs.append(self.tokens(normalize(p)))
                    self.owner.append(t.id)
        self.ids = list(dict.fromkeys(self.owner))
        self.owner = np.array([self.ids.index(o) for o in self.owner])
        self.bm25 = bm25s.BM25()
        self.bm25.index(docs, show_progress=False)

    def tokens(self, text):
        return [w for w in self.jieba.lcut(plain(text)) if w.strip()]

    def scores(self, text):
        q = self.tokens(text)
        if not q:
            return {}
        raw = self.bm25.get_scores(q)
        best = np.zeros(len(self.ids))
        np.maximum.at(best, self.owner, raw)
        return dict(zip(self.ids, best.tolist()))


class CharTfidf(ScoredRanker):
    """TF-IDF over character n-grams of each phrasing (scikit-learn), cosine; a topic scores its best."""

    def __init__(self, hi: int):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.name = f"tfidf/char1-{hi}"
        texts, owner = [], []
        for t in topics():
            for p in phrasings(t):
                texts.append(plain(normalize(p)))
                owner.append(t.id)
        self.vec = TfidfVectorizer(analyzer="char", ngram_range=(1, hi), sublinear_tf=True)
        self.matrix = self.vec.fit_transform(texts).T.tocsr()  # features × phrasings
        self.ids = list(dict.fromkeys(owner))
        self.owner = np.array([self.ids.index(o) for o in owner])

    def scores(self, text):
        q = self.vec.transform([plain(text)])
        if q.nnz == 0:
            return {}
        sims = (q @ self.matrix).toarray().ravel()  # rows are l2-normalised: the dot product is the cosine
        best = np.zeros(len(self.ids))
        np.maximum.at(best, self.owner, sims)
        return dict(zip(self.ids, best.tolist()))


class Final:
    """The product's own decision: understand.decide() when it exists, else matcher.match()."""

    name = "final"

    def __init__(self, api: str = "auto"):
        self.understand = None
        if api == "understand" or (api == "auto" and importlib.util.find_spec("xnh.policy_kb.understand") is not None):
            from xnh.policy_kb import understand

            self.understand = understand
            self.api = "xnh.policy_kb.understand.decide"
        else:
            from xnh.policy_kb import matcher

            self.matcher = matcher
            self.api = "xnh.policy_kb.matcher.match"

    def decide(self, text):
        if self.understand is None:
            best, close = self.matcher.match(text)
            if best:
                return "answer", [best.topic.id]
            if close:
                return "choice", _ids(close)
            return "handoff", []
        d = self.understand.decide(text)
        kind, ids = d.kind, _ids(getattr(d, "topics", ()))
        if kind in ("other_scheme", "other_place"):
            # a decline with 示范县's rule attached answers with that topic; with none it is a handoff-like decline
            return ("answer", ids[:1]) if ids else ("handoff", [])
        if kind == "help":
            return "handoff", []
        if kind not in ("answer", "choice", "handoff"):
            return "handoff", []
        return kind, ids

    def rank(self, text):
        if self.understand is None:
            return _ids(self.matcher.rank(text))
        ranker = getattr(self.understand, "rank", None)
        if callable(ranker):
            try:
                return _ids(ranker(text))[:3]
            except TypeError:
                pass
        d = self.understand.decide(text)
        scores = getattr(d, "scores", None)  # [(score, topic id), ...] best first, when the Decision has them
        return _ids(scores)[:3] if scores else _ids(getattr(d, "topics", ()))[:3]


# ---------------------------------------------------------------- question sets


def real_set():
    """(id, normalised text, labels, handoff acceptable) for the labelled real questions."""
    cases = {c["id"]: c for c in json.loads(REAL.read_text(encoding="utf-8"))}
    labels = json.loads(REAL_LABELS.read_text(encoding="utf-8"))
    out = []
    for cid, want in labels.items():
        if cid.startswith("_"):
            continue
        case = cases[cid]
        if case["expect"].get("cat") == "estimate":
            continue
        groups = case["expect"].get("any_of") or [[]]
        handoff_ok = not want or "已转" in groups[0]
        out.append((cid, normalize(case["turns"][0]), want, handoff_ok))
    return out


def own_set(hard_only: bool = False):
    """(id, normalised text, labels, handoff acceptable); hard_only: the in-scope questions marked "hard"
    (vocabulary the knowledge base lacks: 医保, 医疗保险, 就医, 跨省, 起点 ...)."""
    rows = json.loads(OWN.read_text(encoding="utf-8"))
    if hard_only:
        rows = [r for r in rows if r.get("hard")]
    return [(r["id"], normalize(r["text"]), r["topics"], r["oos"]) for r in rows]


# ---------------------------------------------------------------- measuring


def measure(method, rows, verbose=False):
    known = {t.id for t in topics()}
    ins = [r for r in rows if r[2]]
    oos = [r for r in rows if not r[2]]
    top1 = top3 = right = menu = menu_right = hand_in = wrong_in = acceptable = 0
    oos_hand = oos_wrong = oos_menu = 0
    rank_us, decide_us = [], []
    lines = []
    for r in rows:  # warm: every text once before timing
        method.rank(r[1])
        method.decide(r[1])
    for cid, text, want, handoff_ok in rows:
        t0 = time.perf_counter()
        ranked = method.rank(text)
        t1 = time.perf_counter()
        kind, ids = method.decide(text)
        t2 = time.perf_counter()
        rank_us.append((t1 - t0) * 1e6)
        decide_us.append((t2 - t1) * 1e6)
        good = set(want)
        if want:
            top1 += bool(ranked) and ranked[0] in good
            top3 += bool(good & set(ranked[:3]))
            if kind == "answer":
                right += ids[0] in good
                wrong_in += ids[0] not in good
            elif kind == "choice":
                menu += 1
                menu_right += bool(good & set(ids))
            else:
                hand_in += 1
            acceptable += (kind == "answer" and ids[0] in good) or (kind == "handoff" and handoff_ok is True)
        else:
            oos_hand += kind == "handoff"
            oos_wrong += kind == "answer"
            oos_menu += kind == "choice"
            acceptable += kind == "handoff"
        if verbose:
            mark = "ok" if (kind == "answer" and ids and ids[0] in good) or (not want and kind == "handoff") else "--"
            lines.append(f"  {mark} {cid} {text} → {kind} {'/'.join(ids)} (want {'/'.join(want) or 'decline'};"
                         f" top {'/'.join(ranked[:3])})")
    n_in, n_oos = len(ins), len(oos)
    pct = lambda a, b: f"{100 * a / b:.0f}%" if b else "–"  # noqa: E731
    return {
        "top-1": pct(top1, n_in), "top-3": pct(top3, n_in), "answered right": pct(right, n_in),
        "answered wrong": pct(wrong_in, n_in),
        "menu": pct(menu, n_in) + (f" ({menu_right}/{menu} hold it)" if menu else ""),
        "handoff (in scope)": pct(hand_in, n_in),
        "out of scope: handoff": pct(oos_hand, n_oos), "out of scope: wrong answer": pct(oos_wrong, n_oos),
        "out of scope: menu": pct(oos_menu, n_oos),
        "acceptable decision": pct(acceptable, len(rows)),
        "µs decide (median)": f"{statistics.median(decide_us):.0f}",
        "µs rank (median)": f"{statistics.median(rank_us):.0f}",
        "_missing": sum(1 for r in ins if not set(r[2]) & known), "_n": (n_in, n_oos), "_lines": lines,
    }


def machine() -> str:
    try:
        from machine import cpu_model
    except ImportError:  # pragma: no cover
        cpu_model = lambda: "unknown CPU"  # noqa: E731
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"nproc {nproc}, {cpu_model()}, Python {sys.version.split()[0]}"


def table(methods, results, rows_order) -> str:
    head = "| measure | " + " | ".join(m.name for m in methods) + " |"
    sep = "|---|" + "---:|" * len(methods)
    body = [f"| {k} | " + " | ".join(results[m.name][k] for m in methods) + " |" for k in rows_order]
    return "\n".join([head, sep, *body])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="also write the report (markdown) to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="every real question's decision per method")
    ap.add_argument("--final", choices=("auto", "understand", "matcher"), default="auto",
                    help="the final column's API: understand.decide when it exists (auto), or force one")
    ap.add_argument("--sweep", action="store_true", help="also the plain rankers at other threshold quantiles")
    args = ap.parse_args()

    t0 = time.perf_counter()
    methods = [Baseline(), BM25("topic"), BM25("para"), CharTfidf(2), CharTfidf(3), Final(args.final)]
    oos_kb = kb_out_of_scope()
    for m in methods:
        if isinstance(m, ScoredRanker):
            m.calibrate(oos_kb)
    sets = {"real questions (real_dev.json)": real_set(), "own held-out (bench/data/own_heldout.json)": own_set(),
            "own held-out, the hard part only (\"hard\": true)": own_set(hard_only=True)}
    order = ["top-1", "top-3", "answered right", "answered wrong", "menu", "handoff (in scope)",
             "out of scope: handoff", "out of scope: wrong answer", "out of scope: menu", "acceptable decision",
             "µs decide (median)", "µs rank (median)"]
    out = ["# Knowledge-base matching, side by side (issue 10)", "",
           f"`python bench/kb_compare.py` on {machine()}; {len(topics())} topics in the knowledge base;"
           f" final = `{methods[-1].api}`.", "",
           "In-scope shares are of the questions that have a right topic; out-of-scope shares of those labelled"
           " `[]`. *answered right*: the decision is an answer with a right topic. *menu*: a numbered choice"
           " (how many of those menus hold a right topic). *acceptable decision*: answered right, or a handoff"
           " where the case accepts one (out of scope, or its first `any_of` group accepts 已转…), over all"
           " questions of the set. Thresholds of the plain rankers (handoff below):"
           + ", ".join(f" {m.name} {m.threshold:.3g}" for m in methods if isinstance(m, ScoredRanker))
           + f" = the {OOS_QUANTILE:.0%} quantile of the best scores of policy_kb/out_of_scope.toml.", ""]
    verbose_lines = []
    for title, rows in sets.items():
        results = {m.name: measure(m, rows, args.verbose) for m in methods}
        any_r = next(iter(results.values()))
        n_in, n_oos = any_r["_n"]
        out += [f"## {title}: {n_in} in scope, {n_oos} out of scope", ""]
        if any_r["_missing"]:
            out += [f"{any_r['_missing']} in-scope question(s) are labelled only with topic ids the knowledge base"
                    " does not have yet: a miss for every method.", ""]
        out += [table(methods, results, order), ""]
        if args.verbose:
            for m in methods:
                verbose_lines += [f"### {title} — {m.name}", *results[m.name]["_lines"]]
    if args.sweep:
        out += ["## plain rankers at other thresholds", "",
                "answered right / out-of-scope handoff / out-of-scope wrong answer, with the threshold at the given"
                " quantile of the best scores of policy_kb/out_of_scope.toml.", "",
                "| method | set | " + " | ".join(f"q{q:.2f}" for q in SWEEP) + " |",
                "|---|---|" + "---:|" * len(SWEEP)]
        for m in methods:
            if not isinstance(m, ScoredRanker):
                continue
            oos_tops = [max(m.scores(t).values(), default=0.0) for t in oos_kb]
            for title, rows in sets.items():
                cells = []
                for q in SWEEP:
                    m.threshold = float(np.quantile(oos_tops, q))
                    r = measure(m, rows)
                    cells.append(f"{r['answered right']} / {r['out of scope: handoff']} / {r['out of scope: wrong answer']}")
                out.append(f"| {m.name} | {title.split(' (')[0]} | " + " | ".join(cells) + " |")
            m.threshold = float(np.quantile(oos_tops, OOS_QUANTILE))
        out.append("")
    out.append(f"(whole run {time.perf_counter() - t0:.1f} s)")
    report = "\n".join(out) + "\n"
    print(report)
    if args.verbose:
        print("\n".join(verbose_lines))
    if args.out:
        path = Path(args.out)
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        notes = old[old.index(NOTES):] if NOTES in old else ""  # hand-written reading, kept across runs
        path.write_text(report + ("\n" + notes if notes else ""), encoding="utf-8")


if __name__ == "__main__":
    main()
