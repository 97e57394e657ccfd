"""Campaigns in bounded memory (issue 18): preview and send of a campaign to 2,500,000 recipients, each in
its own process, measuring its peak resident memory (ru_maxrss) and time. Goal ≤ 300 MB each. Before:
1.2 GB and 36 s / 41 s (the preview held every recipient as a Python list).

    python bench/campaign_memory.py [--recipients 2500000] [--keep DIR]

The county (one member with a phone per household, enrolled last year and unpaid this year) is generated
once into DIR (a temporary folder unless --keep names one, reused when present).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broadcast_bench import make_county  # noqa: E402  (bench/ is the script's own folder)


def make(path: str, n: int) -> None:
    from xnh.store.db import open_county, open_db

    open_db(path).close()
    db = open_county(path)
    db.execute("PRAGMA synchronous=OFF")
    make_county(db, n, townships=20, villages=400)
    db.close()


STEP = """
import json, resource, sys, time
from xnh.broadcast import campaigns
from xnh.store.db import open_db
db = open_db(sys.argv[1])
step, cid = sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
if step == "preview":
    p = campaigns.preview(db, cid)
    out = {"count": p.count, "segments": p.total_segments}
else:
    out = {"queued": campaigns.send(db, cid, actor="bench")}
out.update(seconds=round(time.perf_counter() - started, 1), peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=2_500_000)
    parser.add_argument("--keep")
    args = parser.parse_args()
    env = {**os.environ, "XNH_TODAY": "2026-06-15T10:00:00+08:00", "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "m.db")
    if not Path(path).exists():
        started = time.perf_counter()
        make(path, args.recipients)
        print(f"county of {args.recipients:,} households generated in {time.perf_counter() - started:.0f} s")
    from xnh.broadcast import campaigns
    from xnh.store.db import open_db

    db = open_db(path)
    cid = campaigns.create(db, name="bench", audience="unpaid=2027", actor="bench",
                           text="{{ name }}您好,{{ year }}年度新农合参合费请于{{ deadline }}前缴纳。")
    db.close()
    baseline = subprocess.run([sys.executable, "-c", "import resource, xnh.broadcast.campaigns, xnh.store.db;"
                               "print(round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))"],
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
    print(f"a process that only imports the package: {baseline} MB")
    for step in ("preview", "send"):
        got = subprocess.run([sys.executable, "-c", STEP, path, step, str(cid)], env=env, capture_output=True,
                             text=True)
        print(f"{step}: {got.stdout.strip() or got.stderr[-2000:]}")


if __name__ == "__main__":
    main()
