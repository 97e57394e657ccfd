"""The question radar's figure on real questions (issue 18): how many tickets a saved answer would have
answered. The 385 real questions (bench/real/*.json, ../shared/eval/real_dev*.json), each from its own
phone, are put to the bot in order through respond(); the tickets they leave are grouped as the radar
groups them (xnh/radar.py). Then a replay: the same questions in the same order on a fresh database, where
the first ticket of each group is answered and saved as a local entry at once (as an admin would from
the radar), so each later question is answered by the bot itself or not — through the bot's own look-up.

    python bench/radar_eval.py [--pairs]     # --pairs: every pair of ticket questions with likeness ≥ 40

Prints the tickets, the groups, the groups asked more than once, what the radar predicts a saved answer
would have answered, and what the replay measured.
"""
import argparse
import glob
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def questions() -> list[str]:
    files = sorted(glob.glob(str(ROOT / "bench" / "real" / "*.json")))
    files += [str(ROOT.parent / "shared" / "eval" / f) for f in ("real_dev.json", "real_dev2.json")]
    found = []
    for f in files:
        if os.path.exists(f):
            found += [turn for case in json.load(open(f, encoding="utf-8")) for turn in case["turns"]]
    return found


def ask(db, text: str, phone: str):
    from xnh.handlers.router import respond
    from xnh.message import Message
    from xnh.store.db import writing

    with writing(db):
        return respond(Message(text=text, sender=phone, channel="sms", phone=phone), db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("XNH_TODAY", "2026-06-15")
    from xnh import radar
    from xnh.handlers import likeness
    from xnh.store import local_answers
    from xnh.store.db import open_db, writing

    texts = questions()
    with tempfile.TemporaryDirectory() as folder:
        db = open_db(str(Path(folder) / "a.db"))
        for i, text in enumerate(texts):
            ask(db, text, f"1390{i:07d}")
        fig = radar.figure(db)
        groups = radar.groups(db, None)
        db.close()
        print(f"{len(texts)} real questions → {fig['tickets']} tickets in {fig['groups']} groups, "
              f"{fig['repeated_groups']} asked more than once; the radar's figure: a saved answer would have "
              f"answered {fig['would_answer']} of them")
        for g in groups:
            if g.size > 1:
                print(f"  {g.size} × {g.topic or 'alike'} {g.points or ''}: " + " | ".join(p[:30] for p in g.phrasings))
        if args.pairs:
            qs = [t["question"].split("\n")[0] for g in groups for t in g.tickets]
            pairs = sorted(((likeness.likeness(a, b), a[:30], b[:30]) for i, a in enumerate(qs) for b in qs[i + 1:]),
                           reverse=True)
            for score, a, b in pairs:
                if score >= 40:
                    print(f"  {score:5.1f}  {a} | {b}")
        # the replay: save the first ticket of each group at once; count the later questions the bot answers
        db = open_db(str(Path(folder) / "b.db"))
        saved_keys, answered = set(), 0
        for i, text in enumerate(texts):
            reply = ask(db, text, f"1390{i:07d}")
            if reply.template == "policy_local":
                answered += 1
                continue
            for g in radar.groups(db):
                if g.key not in saved_keys and g.size == 1:
                    saved_keys.add(g.key)
                    with writing(db):
                        local_answers.save(db, question=g.question, phrasings=g.phrasings, answer=f"答复{g.key}",
                                           actor="bench", topic=g.topic, points=g.points)
                    radar.answer_group(db, [(t["id"], t["answers"]) for t in g.tickets], f"答复{g.key}", "bench")
        db.close()
        print(f"replay: with each group's first answer saved at once, the bot answered {answered} later "
              f"questions itself (radar's figure {fig['would_answer']})")


if __name__ == "__main__":
    main()
