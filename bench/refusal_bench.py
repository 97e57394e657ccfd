#!/usr/bin/env python3
"""Refusals under a write lock: signed /sms at a fixed rate to a running `xnh serve` whose own sender is
busy sending a campaign to the local fake Twilio (tests/fake_twilio.py), while a second connection holds
`BEGIN EXCLUSIVE` on the service file (any sqlite3 session, a backup tool). Prints a Markdown report.

    python bench/refusal_bench.py [--rate 20] [--lock 8] [--before 5] [--after 5] [--recipients 2000]
                                  [--code DIR]   # DIR: another checkout's root, to measure it the same way

1. a fresh database in a temporary folder with --recipients households (one phone each, unpaid next year);
2. `python -m xnh serve` with TWILIO_AUTH_TOKEN and XNH_PUBLIC_URL set (every request is signature-checked),
   Twilio's API at the fake, XNH_SMS_PER_SECOND=50; `xnh broadcast new` + `send` queue the campaign, so the
   sender is busy for the whole run;
3. the bounded load loop of bench/mixed_load.py (127.0.0.1 only; latency from each request's scheduled time);
   after --before s a second connection takes BEGIN EXCLUSIVE for --lock s; the load goes on --after s more.
Reports, for the requests scheduled while the lock was held and for all: how many got 200, 503 (with
Retry-After) or anything else, and p50/p99/max latency. Goal (issue 17): every refusal within 5 s.
"""
import argparse
import datetime as dt
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import describe
from mixed_load import PUBLIC, TOKEN, Load, _free_port, _pct, _wait_healthy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from fake_twilio import FakeTwilio  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=20.0, help="messages a second")
    ap.add_argument("--lock", type=float, default=8.0, help="seconds the write lock is held")
    ap.add_argument("--before", type=float, default=5.0)
    ap.add_argument("--after", type=float, default=5.0)
    ap.add_argument("--recipients", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=32, help="client threads")
    ap.add_argument("--code", default=str(ROOT), help="the checkout whose xnh runs (default: this one)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xnh-refusal-"))
    path = work / "refusal.db"
    with FakeTwilio() as fake:
        env = dict(os.environ, XNH_DB=str(path), TWILIO_AUTH_TOKEN=TOKEN, XNH_PUBLIC_URL=PUBLIC,
                   TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_FROM_NUMBER="+15005550006", TWILIO_API_BASE=fake.base,
                   XNH_SMS_PER_SECOND="50", XNH_TODAY=os.environ.get("XNH_TODAY", "2026-06-15"),
                   PYTHONPATH=os.pathsep.join(filter(None, [a.code, os.environ.get("PYTHONPATH")])))
        env.pop("TELEGRAM_BOT_TOKEN", None)
        xnh = [sys.executable, "-m", "xnh"]
        subprocess.run(xnh + ["broadcast", "--help"], env=env, cwd=work, check=True, capture_output=True)
        _county(path, a.recipients, xnh, env, work)
        port = _free_port()
        server = subprocess.Popen(xnh + ["serve", "--port", str(port), "--threads", "8"], env=env, cwd=work,
                                  stdout=open(work / "server.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            _wait_healthy(port, server)
            made = subprocess.run(xnh + ["broadcast", "new", "--name", "bench", "--audience", "unpaid=2027",
                                         "--text", "{{ name }}您好,请按时缴费。"], env=env, cwd=work, check=True,
                                  capture_output=True, text=True)
            subprocess.run(xnh + ["broadcast", "send", made.stdout.split()[-1]], env=env, cwd=work, check=True,
                           capture_output=True)
            time.sleep(1.0)
            sent_before = len(fake.requests)
            load = Load(port, a.rate, [], a.workers, limit=int(a.rate * (a.before + a.lock + a.after + 5)))
            load.start()
            time.sleep(a.before)
            lock_start, lock_end = _hold(path, a.lock)
            time.sleep(a.after)
            load.stop()
            sent = len(fake.requests)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    report = _report(a, load.results, lock_start, lock_end, sent_before, sent)
    print(report)
    shutil.rmtree(work, ignore_errors=True)


def _county(path: Path, n: int, xnh: list, env: dict, work: Path) -> None:
    """n households of one member each, enrolled this year and unpaid next year (the campaign's audience)."""
    subprocess.run(xnh + ["broadcast", "status", "0"], env=env, cwd=work, capture_output=True)  # creates the files
    county = sqlite3.connect(str(path.with_name(f"{path.stem}.county{path.suffix}")))
    members = [(f"M{i:06d}", f"H{i:06d}", f"王小{i % 10}", f"52990119900101{i:04d}", "户主", f"1390{i:07d}",
                "东山镇", "村一", "普通") for i in range(n)]
    county.executemany("INSERT INTO members (member_id, household_id, name, id_number, relation, phone, township, "
                       "village, category) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", members)
    county.executemany("INSERT INTO enrollments (year, member_id, household_id, paid_amount, status) VALUES "
                       "(?, ?, ?, ?, ?)", [(y, m[0], m[1], a, s) for m in members
                                            for y, a, s in ((2026, "30.00", "已参合"), (2027, "", "未缴费"))])
    county.commit()
    county.close()


def _hold(path: Path, seconds: float) -> tuple[float, float]:
    """BEGIN EXCLUSIVE on a second connection for `seconds`; (monotonic start, end) of the hold."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    start = time.monotonic()
    print(f"write lock taken for {seconds:g} s", file=sys.stderr)
    time.sleep(seconds)
    conn.execute("ROLLBACK")
    conn.close()
    return start, time.monotonic()


def _row(name: str, results) -> str:
    ok = [r for r in results if r[2] == 200]
    busy = [r for r in results if r[2] == 503]
    other = len(results) - len(ok) - len(busy)
    ms = [r[1] for r in busy]
    return (f"| {name} | {len(results)} | {len(ok)} | {len(busy)} | {other} | {_pct(ms, 50):.0f} | "
            f"{_pct(ms, 99):.0f} | {max(ms, default=0):.0f} | {max((r[1] for r in results), default=0):.0f} |")


def _report(a, results, lock_start, lock_end, sent_before, sent) -> str:
    during = [r for r in results if lock_start <= r[0] < lock_end]
    return "\n".join([
        f"# Refusals under a write lock ({dt.date.today()})",
        "",
        f"`python bench/refusal_bench.py --rate {a.rate:g} --lock {a.lock:g}` (code: `{a.code}`): {describe()}, "
        f"shared with other jobs. Signed /sms at {a.rate:g}/s from {a.workers} client threads on 127.0.0.1 to "
        f"`xnh serve`, whose sender sent {sent - sent_before} SMS to the fake Twilio during the run; a second "
        f"connection held BEGIN EXCLUSIVE on the service file for {lock_end - lock_start:.1f} s.",
        "Latency is from each request's scheduled time to the end of its answer.",
        "",
        "| requests scheduled | n | 200 | 503 | other | 503 p50 ms | 503 p99 ms | 503 max ms | any max ms |",
        "|---|---|---|---|---|---|---|---|---|",
        _row("while the lock was held", during),
        _row("all", results),
        "",
    ])


if __name__ == "__main__":
    main()
