"""Where `xnh sync claims` spends its time: the phases (from the sync's debug log) and a cProfile of one
process.

    python bench/sync_profile.py FILE [--kind claims] [--in-process] [--top 25]

Imports FILE into a fresh database in a temporary folder, twice (a first load, then the same file again).
With --in-process the reading and checking run in this process (pipe.PARALLEL_MIN_BYTES raised), so that
the profile shows them; without it they run in the forked reader and the profile shows the writer, its
waits on the pipe included (posix.read). Generate a file with bench/sync_bench.py --keep DIR.
"""
import argparse
import cProfile
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--kind", default="claims", choices=["claims", "enrollment"])
    ap.add_argument("--in-process", action="store_true", help="read and check in this process")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    os.environ.setdefault("XNH_TODAY", "2026-12-31")
    logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)8.0f ms  %(message)s", stream=sys.stderr)
    from xnh import sync
    from xnh.store import db as store
    from xnh.sync import pipe

    if a.in_process:
        pipe.PARALLEL_MIN_BYTES = 1 << 62
    with tempfile.TemporaryDirectory() as folder:
        db = store.open_db(str(Path(folder) / "profile.db"))
        for label in ("first load", "same file again"):
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            result = sync.run(db, a.kind, a.file)
            profile.disable()
            print(f"\n== {label}: {time.perf_counter() - started:.2f} s  {result.summary_lines()[-1]}  "
                  f"(blocks skipped: {result.skipped_blocks})")
            pstats.Stats(profile).sort_stats("tottime").print_stats(a.top)
        db.close()


if __name__ == "__main__":
    main()
