"""Broadcast benchmarks (issue 12):

1. materialise a 200,000-recipient campaign: a county file of 200,000 households (one phone each) is
   generated, then `campaigns.send` writes every recipient into the outbox (goal ≤ 5 s);
2. send 5,000 messages to the local fake Twilio (tests/fake_twilio.py, in its own process) at
   XNH_SMS_PER_SECOND=200 with one worker (goal ≥ 95 % of that rate, never above it in any second).

    python bench/broadcast_bench.py [--recipients 200000] [--messages 5000] [--rate 200]

Prints one line per measure; run it alone on the machine (not during the test suite).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def make_county(db, n: int, townships: int = 1, villages: int = 50) -> None:
    """n households of one member with a phone, enrolled last year and unpaid this year (2027): 东山镇 alone,
    or `townships` numbered ones."""
    members = ((f"M{i:07d}", f"H{i:07d}", f"王小{i % 10}", "户主", f"139{i:08d}",
                "东山镇" if townships == 1 else f"镇{i % townships}", f"村{i % villages}", "普通") for i in range(n))
    db.conn.executemany("INSERT INTO members (member_id, household_id, name, relation, phone, township, village, "
                        "category) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", members)
    enroll = ((2027 - k, f"M{i:07d}", f"H{i:07d}", "30.00" if k else "", "已参合" if k else "未缴费")
              for i in range(n) for k in (0, 1))
    db.conn.executemany("INSERT INTO enrollments (year, member_id, household_id, paid_amount, status) "
                        "VALUES (?, ?, ?, ?, ?)", enroll)
    db.conn.commit()


def materialise(n: int, folder: Path) -> None:
    from xnh.broadcast import campaigns
    from xnh.store.db import open_db

    db = open_db(str(folder / "m.db"))
    started = time.perf_counter()
    make_county(db, n)
    made = time.perf_counter() - started
    cid = campaigns.create(db, name="bench", audience="unpaid=2027 township=东山镇",
                           text="{{ name }}您好,{{ year }}年度新农合参合费{{ amount|yuan }}元请于{{ deadline }}前缴纳。",
                           actor="bench")
    started = time.perf_counter()
    p = campaigns.preview(db, cid)
    previewed = time.perf_counter() - started
    started = time.perf_counter()
    queued = campaigns.send(db, cid, actor="bench")
    sent = time.perf_counter() - started
    print(f"materialise: {queued} recipients queued in {sent:.2f} s (goal ≤ 5 s); preview {previewed:.2f} s "
          f"(count {p.count}, {p.total_segments} segments, cost {p.cost}); county generated in {made:.1f} s")
    db.close()


def send(messages: int, rate: int, folder: Path) -> None:
    from xnh.broadcast import campaigns, worker
    from xnh.store.db import open_db

    portfile = folder / "fake.url"
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_twilio.py"), str(portfile)])
    try:
        while not portfile.exists() or not portfile.read_text():
            time.sleep(0.05)
        base = portfile.read_text()
        os.environ.update({"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t",
                           "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE": base,
                           "XNH_SMS_PER_SECOND": str(rate)})
        path = str(folder / "s.db")
        db = open_db(path)
        make_county(db, messages)
        cid = campaigns.create(db, name="bench", audience="unpaid=2027", text="{{ name }}您好,请按时缴费。",
                              window=None, actor="b")  # a rate, not quiet hours: the same at any hour of the day
        campaigns.send(db, cid, actor="b")
        db.close()
        started = time.perf_counter()
        from xnh.settings import Settings

        accepted = worker.run(Settings.from_env(), path, until_idle=True, threads=4)
        wall = time.perf_counter() - started
        times = sorted(r[0] for r in json.load(urllib.request.urlopen(base + "/requests")))
    finally:
        fake.terminate()
        fake.wait()
    per_second: dict[int, int] = {}
    for t in times:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    sliding = max(sum(1 for u in times[i:i + rate + 2] if u < t + 1) for i, t in enumerate(times))
    span = times[-1] - times[0]
    achieved = (len(times) - 1) / span if span else 0
    print(f"send: {accepted} accepted, {len(times)} requests in {span:.2f} s = {achieved:.1f}/s at "
          f"XNH_SMS_PER_SECOND={rate} ({achieved / rate:.1%} of the rate, goal ≥ 95 %); most in one whole "
          f"second {max(per_second.values())}, in any sliding second {sliding} (limit {rate}); worker wall {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--only", choices=("materialise", "send"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "send":
            materialise(args.recipients, Path(tmp))
        if args.only != "materialise":
            send(args.messages, args.rate, Path(tmp))


if __name__ == "__main__":
    main()
