"""Payment-notice derivation against the size of the outbox (issue 18): 2,000 claims newly 已拨付 are
derived into notices with an outbox of 0 rows, then of 1,000,000 rows (a county-wide campaign's and a
year's notices), on the same county file. Goal: the second takes at most 1.5× the first (before the fix
the look-up scanned the whole outbox once per claim: 22.6 s instead of 2.6 s).

    python bench/notice_bench.py [--outbox 1000000] [--claims 2000] [--rounds 3]

Prints the median of each and the ratio. Run it alone on the machine (not during the test suite).
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_county(db, claims: int) -> None:
    """`claims` households of one member with a phone, each with one claim paid today (history rows too)."""
    db.conn.executemany(
        "INSERT INTO members (member_id, household_id, name, relation, phone, township, village, category) "
        "VALUES (?, ?, ?, '户主', ?, '东山镇', '村一', '普通')",
        ((f"M{i:07d}", f"H{i:07d}", f"王小{i % 10}", f"139{i:08d}") for i in range(claims)))
    db.conn.executemany(
        "INSERT INTO claims (claim_id, member_id, household_id, name, visit_type, hospital, level, admitted, "
        "reimbursed, status, paid_date, paid_channel, updated_at) VALUES (?, ?, ?, ?, '住院', '县医院', 'county', "
        "'2026-06-01', '1234.50', '已拨付', '2026-06-14', '一卡通', '2026-06-14T10:00:00')",
        ((f"BC{i:08d}", f"M{i:07d}", f"H{i:07d}", f"王小{i % 10}") for i in range(claims)))
    db.conn.executemany("INSERT INTO claim_history (claim_id, old_status, status, changed_at, sync_run_id) "
                        "VALUES (?, '审核通过', '已拨付', '2026-06-14T10:00:00', 1)",
                        ((f"BC{i:08d}",) for i in range(claims)))
    db.conn.commit()


def fill_outbox(db, rows: int) -> None:
    """`rows` outbox rows: half a campaign's, half older payment notices of other claims."""
    db.conn.execute("INSERT INTO campaigns (id, name, audience, text, channels, status, paused, created_by, "
                    "created_at) VALUES (1, 'bench', 'unpaid=2027', 'x', '[\"sms\"]', 'sending', 0, 'b', '2026-06-01')")
    half = rows // 2
    db.conn.executemany(
        "INSERT INTO outbox (kind, ref, campaign_id, recipient, channel, status, priority, created_at, updated_at) "
        "VALUES ('broadcast', 'campaign:1', 1, ?, 'sms', 'delivered', 2, '2026-06-01', '2026-06-01')",
        ((f"137{i:08d}",) for i in range(half)))
    db.conn.executemany(
        "INSERT INTO outbox (kind, ref, recipient, channel, status, priority, text, created_at, updated_at) "
        "VALUES ('payment', ?, ?, 'sms', 'delivered', 1, '您的补偿款已拨付', '2026-05-01', '2026-05-01')",
        ((f"OLD{i:08d}", f"136{i:08d}") for i in range(rows - half)))
    db.conn.commit()


def derive_once(db) -> tuple[float, int]:
    from xnh.store import meta, outbox
    from xnh.store.db import writing

    with writing(db):
        db.conn.execute("DELETE FROM outbox WHERE kind = 'payment' AND ref LIKE 'BC%'")
        meta.put(db, "payment_notices_upto", "0")
    started = time.perf_counter()
    queued = outbox.derive_payment_notices(db)
    return time.perf_counter() - started, queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outbox", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import os

    os.environ.setdefault("XNH_TODAY", "2026-06-15")
    from xnh.store.db import open_db

    with tempfile.TemporaryDirectory() as folder:
        db = open_db(str(Path(folder) / "n.db"))
        make_county(db, args.claims)
        times = {}
        for size in (0, args.outbox):
            if size:
                started = time.perf_counter()
                fill_outbox(db, size)
                print(f"outbox filled with {size:,} rows in {time.perf_counter() - started:.1f} s")
            runs = [derive_once(db) for _ in range(args.rounds)]
            assert all(q == args.claims for _, q in runs), runs
            times[size] = statistics.median(t for t, _ in runs)
            print(f"outbox {size:>9,} rows: {args.claims:,} notices derived in {times[size]:.3f} s "
                  f"(median of {args.rounds}: {', '.join(f'{t:.3f}' for t, _ in runs)})")
        ratio = times[args.outbox] / times[0]
        print(f"ratio {ratio:.2f} (goal ≤ 1.5)")
        db.close()


if __name__ == "__main__":
    main()
