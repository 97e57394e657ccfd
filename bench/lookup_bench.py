"""Status lookup latency at 1,000,000 claims: what 查报销 does for a phone (members_by_phone, then
household_claims for each household), timed per lookup.

    python bench/lookup_bench.py [--db PATH] [--rows 1000000] [--lookups 20000]

Without --db it generates the claims (bench/sync_bench.py's generator) and loads them with `xnh sync`,
plus one member with a phone per household (written directly: the enrollment sync is not what this
measures). Prints p50/p99/max in milliseconds. Figures: bench/SYNC_RESULTS.md.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import sync_bench  # noqa: E402

from xnh.store import county  # noqa: E402
from xnh.store import db as store  # noqa: E402


def build(work: Path, rows: int) -> Path:
    data, db_path = work / "claims.csv", work / "lookup.db"
    sync_bench.generate(data, rows)
    env = dict(os.environ, XNH_DB=str(db_path), XNH_TODAY="2026-12-15",
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-m", "xnh", "sync", "claims", str(data), "--no-progress"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    db = store.open_db(str(db_path))
    households = [r[0] for r in db.execute("select distinct household_id from claims")]
    with db.atomic():
        db.conn.executemany(
            "insert or ignore into members (member_id, household_id, name, phone, relation, category, updated_at) "
            "values (?, ?, '张三', ?, '户主', '普通', '2025-12-30T18:00:00')",
            [(f"{hh}-01", hh, f"139{i:08d}") for i, hh in enumerate(households)])
    db.close()
    return db_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=20_000)
    args = ap.parse_args()
    work = None
    if args.db:
        db_path = Path(args.db)
    else:
        work = Path(tempfile.mkdtemp(prefix="xnh-lookup-"))
        db_path = build(work, args.rows)
    db = store.open_db(str(db_path))
    claims = db.execute("select count(*) from claims").fetchone()[0]
    phones = [r[0] for r in db.execute("select phone from members where phone != '' order by random() limit ?",
                                       [args.lookups])]
    r = random.Random(3)
    times, found = [], 0
    for _ in range(args.lookups):
        phone = r.choice(phones)
        t = time.perf_counter()
        for hh in sorted({m["household_id"] for m in county.members_by_phone(db, phone)}):
            found += len(county.household_claims(db, hh, 2026))
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    print(f"claims: {claims}  lookups: {args.lookups}  claims returned: {found / args.lookups:.1f} per lookup")
    print(f"status lookup ms: p50 {pick(0.5):.3f}  p99 {pick(0.99):.3f}  max {times[-1]:.3f}")
    db.close()
    if work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
