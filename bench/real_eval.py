"""Real questions, scored in-process: every case file in the run_eval.py format (../shared/eval/
real_dev.json, real_dev2.json and the corpus collected from public sources in bench/real/) through
the product's one entry point `respond()`, checked with run_eval.py's own `check()`.

The same replies `run_eval.py --cli` gets (each case from a fresh sender on the demo county's database,
policy date XNH_TODAY=2026-06-15), about 50 times faster: for measuring a change on every set at once.
It also counts what kind of reply each case got: a direct answer, a partial answer with a ticket, a
menu, a handoff, a decline, help.

With --guards it measures the near-miss guard instead (concepts.toml [guards]: words such as 转到, 过期,
外面 that decide nothing without a partner): over every question of the sets, how many decisions the
guard changed, and how often the best topic wins only through a guarded word (taking that word's
concepts away would change the winner).

Run:  XNH_TODAY=2026-06-15 python bench/real_eval.py                 the score of each set
      XNH_TODAY=2026-06-15 python bench/real_eval.py --guards        the guard's measure
      python bench/real_eval.py --dump a.json FILE...                 every reply, to diff two versions of the code
      XNH_TODAY=2026-06-15 python bench/real_eval.py -v FILE         also each failure (never on the held-out set
                                                                      while tuning: it is there to measure)
bench/real/corpus_holdout.json, corpus2_holdout.json and corpus3_holdout.json are the held-out parts of the collected corpus: read
their scores, not their cases.
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "eval"
sys.path.insert(0, str(ROOT))
REAL = ROOT / "bench" / "real"
DEFAULT_SETS = [SHARED / "real_dev.json", SHARED / "real_dev2.json", REAL / "corpus_dev.json", REAL / "corpus2_dev.json",
                REAL / "corpus3_dev.json", REAL / "corpus_holdout.json", REAL / "corpus2_holdout.json", REAL / "corpus3_holdout.json"]


def _run_eval():
    spec = importlib.util.spec_from_file_location("run_eval", SHARED / "run_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kind_of(reply) -> str:
    """What kind of reply it was, from its template (a partial answer with a ticket, or with only where to ask)."""
    if reply.template == "policy_partial":
        return "partial+ticket" if reply.data.get("ticket") else "partial+referral"
    return {"policy": "answer", "policy_choice": "menu", "policy_both": "both", "handoff": "handoff",
            "policy_decline": "decline", "help": "help"}.get(reply.template, reply.intent)


def score(path: Path, db, verbose: bool, dump: dict | None = None) -> tuple[int, int, Counter]:
    from xnh.handlers.router import respond
    from xnh.message import Message

    check = _run_eval().check
    cases = json.loads(path.read_text(encoding="utf-8"))
    passed, kinds = 0, Counter()
    for i, case in enumerate(cases):
        sender = f"+8613{700000000 + i:09d}"  # fresh: no demo household, no memory carried over
        reply = None
        for turn in case["turns"]:
            reply = respond(Message(text=turn, sender=sender, channel="sms", phone=sender), db)
            db.conn.commit()
        why = check(case["expect"], reply.text)
        kinds[kind_of(reply)] += 1
        if dump is not None:
            dump[f"{path.name}:{case['id']}"] = {"ok": not why, "kind": kind_of(reply), "reply": reply.text}
        if not why:
            passed += 1
        elif verbose:
            print(f"FAIL {case['id']} [{kind_of(reply)}] {case['turns'][-1][:60]!r}: {'; '.join(why)[:200]}")
            print(f"     reply: {reply.text}")
    return passed, len(cases), kinds


def _winner(text: str) -> str:
    from xnh.policy_kb import understand

    d = understand.decide(text)
    return f"{d.kind}:{','.join(d.topics[:1])}"


def guards(paths: list, verbose: bool) -> None:
    """Decisions the guard changes, and winners that stand on a guarded word alone."""
    from unittest import mock

    from xnh.handlers.normalize import normalize
    from xnh.policy_kb import concepts

    texts = [normalize(c["turns"][-1]) for p in paths for c in json.loads(p.read_text(encoding="utf-8"))]
    guarded = set(concepts.guards())
    with_guard = {t: _winner(t) for t in texts}
    concepts.find.cache_clear()
    with mock.patch.object(concepts, "_unguarded", lambda span, text: True):
        without = {t: _winner(t) for t in texts}
    concepts.find.cache_clear()
    changed = [t for t in texts if with_guard[t] != without[t]]
    has_guarded = [t for t in texts if any(s.word in guarded for s in concepts.find(t).spans)]
    leaning = []
    for t in has_guarded:  # the winner when every guarded word is read as nothing, partner or not
        with mock.patch.object(concepts, "_unguarded", lambda span, text: span.word not in guarded):
            concepts.find.cache_clear()
            if _winner(t) != with_guard[t]:
                leaning.append(t)
    concepts.find.cache_clear()
    print(f"{len(texts)} questions; {len(has_guarded)} hold a guarded word; the guard changed {len(changed)} decisions; "
          f"{len(leaning)} winners stand on a guarded word (with its partner present)")
    if verbose:  # the questions themselves: not for the held-out set while tuning
        for t in changed:
            print(f"  guard changed: {t[:40]}  {without[t]} -> {with_guard[t]}")
        for t in leaning:
            print(f"  stands on a guarded word: {t[:40]}  {with_guard[t]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("-v", action="store_true", help="print each failure and its reply")
    ap.add_argument("--dump", type=Path, help="write every case's reply to this JSON file (to compare two versions of the code)")
    ap.add_argument("--guards", action="store_true", help="measure the near-miss guard instead of scoring")
    args = ap.parse_args()
    os.environ.setdefault("XNH_TODAY", "2026-06-15")
    if args.guards:
        return guards(args.files or DEFAULT_SETS, args.v)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XNH_DB"] = str(Path(tmp) / "x.db")
        from xnh.cli import _answering_db
        from xnh.settings import Settings

        db = _answering_db(Settings.from_env())
        dump = {} if args.dump else None
        for path in args.files or DEFAULT_SETS:
            passed, total, kinds = score(path, db, args.v, dump)
            shares = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
            print(f"{path.name:22s} {passed:3d}/{total:3d} ({passed / total:.0%})   replies: {shares}")
        if dump is not None:
            args.dump.write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
