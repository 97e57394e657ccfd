"""Cold start of `xnh ask "住院花了3000能报多少"`: wall time of the whole subprocess, median of N runs.

Run: python bench/cold_start.py [-n 11] [--importtime]
Runs the installed console script (as a user would) and, for comparison, `python -c` with the CLI
object (no pyenv/venv shim in between). --importtime prints the top imports by cumulative time
from `python -X importtime`.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TEXT = "住院花了3000能报多少"
CODE = f"from xnh.cli import cli; cli(['ask', {TEXT!r}])"


def _time(cmd, env, n):
    subprocess.run(cmd, env=env, capture_output=True, check=True)  # creates the db, warms the OS cache
    runs = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), min(runs), max(runs)


def _importtime(env, top):
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", CODE], env=env, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)) // 2, m.group(4)))
    print(f"top {top} imports by cumulative time (ms), depth ≤ 2:")
    for cum, own, depth, name in sorted((r for r in rows if r[2] <= 2), reverse=True)[:top]:
        print(f"  {cum / 1000:7.1f} {own / 1000:7.1f} {'  ' * depth}{name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=11)
    ap.add_argument("--importtime", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XNH_DB": os.path.join(tmp, "cold.db"), "XNH_TODAY": "2026-06-15"}
        script = shutil.which("xnh")
        if script:
            med, lo, hi = _time([script, "ask", TEXT], env, a.n)
            print(f"xnh ask (console script {script}): median {med:.3f} s (min {lo:.3f}, max {hi:.3f}, n={a.n})")
        med, lo, hi = _time([sys.executable, "-c", CODE], env, a.n)
        print(f"python -c cli(['ask', ...]):        median {med:.3f} s (min {lo:.3f}, max {hi:.3f}, n={a.n})")
        med, lo, hi = _time([sys.executable, "-c", "pass"], env, a.n)
        print(f"python -c pass (interpreter alone): median {med:.3f} s")
        if a.importtime:
            _importtime(env, 20)


if __name__ == "__main__":
    main()
