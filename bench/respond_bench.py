"""Messages per second through respond() over the dev cases' turns, warm, on one core.

Run: python bench/respond_bench.py [--rounds 30] [--profile]
Uses a temporary SQLite file (WAL, as in production), XNH_TODAY=2026-06-15, and pins the process to
one CPU when the OS allows. Reports all turns and the estimate turns separately; --profile prints
the top functions by own time (cProfile) for each set.
"""
import argparse
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev_cases.json"
ESTIMATE_CATS = ("estimate", "estimate_table", "followup")


def _turns(cases, cats=None):
    return [(c["from"], t) for c in cases if cats is None or c["expect"].get("cat") in cats for t in c["turns"]]


def _run(respond, Message, db, turns, rounds):
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for sender, text in turns:
            respond(Message(text=text, sender=sender, channel="sms", phone=sender), db)
            db.conn.commit()  # as every channel does once per message (respond() leaves it to them)
        per_round.append(len(turns) / (time.perf_counter() - start))
    return statistics.median(per_round)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--cases", default=str(DEV))
    a = ap.parse_args()
    os.environ.setdefault("XNH_TODAY", "2026-06-15")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from xnh.store.db import open_db
    from xnh.handlers.router import respond
    from xnh.message import Message

    cases = json.loads(Path(a.cases).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(os.path.join(tmp, "bench.db"))
        for name, turns in (("all dev turns", _turns(cases)), ("estimate turns", _turns(cases, ESTIMATE_CATS))):
            _run(respond, Message, db, turns, 2)  # warm: caches, templates, imports
            rate = _run(respond, Message, db, turns, a.rounds)
            print(f"{name:15s} {len(turns):3d} turns x {a.rounds} rounds: median {rate:,.0f} msgs/s")
            if a.profile:
                prof = cProfile.Profile()
                prof.enable()
                _run(respond, Message, db, turns, 5)
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        db.close()


if __name__ == "__main__":
    main()
