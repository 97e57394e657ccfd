"""Stopping a worker loses nothing (issue 18): a campaign of N recipients is sent to the local fake Twilio
by `xnh worker` processes interrupted at random points — SIGTERM (graceful), kill -9, or both in turn —
then `xnh worker --until-idle` finishes; the fake's own log says how often each recipient got the message.
A trial with `--list-fails` makes Twilio's message list answer 500, so a killed worker's rows cannot be
looked up and must end `unknown` (listed) rather than resent.

    python bench/crash_bench.py [--recipients 300] [--rate 100] [--trials 3]

Prints a Markdown table: per trial the signals, messages sent before the last interruption, recipients
reached exactly once, twice or more, never, and rows left `unknown`.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def trial(signals, recipients: int, rate: int, seed: int, list_fails: bool = False) -> dict:
    from fake_twilio import FakeTwilio
    from test_broadcast import make_county, new_campaign
    from xnh.broadcast import campaigns
    from xnh.store import outbox
    from xnh.store.db import open_db

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder, FakeTwilio() as fake:
        path = str(Path(folder) / "c.db")
        db = open_db(path)
        make_county(db, recipients)
        cid = new_campaign(db)
        campaigns.send(db, cid, actor="bench")
        db.close()
        fake.list_fails = list_fails
        env = {**os.environ, "XNH_DB": path, "XNH_SMS_PER_SECOND": str(rate), "PYTHONPATH": str(ROOT),
               "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006",
               "TWILIO_API_BASE": fake.base}
        for sig in signals:
            before = len(fake.requests)
            process = subprocess.Popen([sys.executable, "-m", "xnh", "worker"], env=env, cwd=folder,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target, deadline = before + rng.randint(5, recipients // (len(signals) + 1)), time.time() + 60
            while len(fake.requests) < target and time.time() < deadline:
                time.sleep(0.002)
            time.sleep(rng.random() / rate)
            process.send_signal(sig)
            process.wait()
        interrupted = len(fake.requests)
        subprocess.run([sys.executable, "-m", "xnh", "worker", "--until-idle"], env=env, cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        db = open_db(path)
        phones = [r[0] for r in db.execute("SELECT recipient FROM outbox WHERE campaign_id = ?", [cid])]
        unknown = {r["recipient"] for r in outbox.unknown_rows(db, cid, limit=10_000)}
        db.close()
        got = {p: len(fake.to("+86" + p)) for p in phones}
    return {"signals": "+".join("kill -9" if s == signal.SIGKILL else "SIGTERM" for s in signals),
            "before": interrupted, "once": sum(n == 1 for n in got.values()),
            "twice": sum(n > 1 for n in got.values()), "never": sum(n == 0 for p, n in got.items() if p not in unknown),
            "unknown": len(unknown), "unknown_got": sum(got[p] for p in unknown)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=300)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("XNH_TODAY", "2026-06-15T10:00:00+08:00")
    kinds = [([signal.SIGTERM] * 3, False), ([signal.SIGKILL] * 3, False),
             ([signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM], False), ([signal.SIGKILL] * 2, True)]
    print(f"{args.recipients} recipients at {args.rate}/s, {args.trials} trials of each\n")
    print("| interruptions | list works | sent before the last | exactly once | twice or more | never (not listed) | unknown, listed (of which reached) |")
    print("|---|---|---|---|---|---|---|")
    seed = 0
    for signals, fails in kinds:
        for _ in range(args.trials):
            seed += 1
            r = trial(signals, args.recipients, args.rate, seed, fails)
            print(f"| {r['signals']} | {'no' if fails else 'yes'} | {r['before']} | {r['once']} | {r['twice']} | "
                  f"{r['never']} | {r['unknown']} ({r['unknown_got']}) |", flush=True)


if __name__ == "__main__":
    main()
