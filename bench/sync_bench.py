"""Sync speed and memory at 1,000,000 claims, against the sqlite3 command-line `.import` of the same file
into the same keyed and indexed schema.

    python bench/sync_bench.py [--rows 1000000] [--rounds 2] [--keep DIR]

Generates a claims CSV with realistic variety (unique 结算单号, amounts in yuan and fen that rarely repeat,
dates over the year, names and ID numbers of rows/4 members), then, alternating, in the same run:
- the sqlite3 CLI's fastest way to the same table (twice: default 4 KiB pages, and 16 KiB pages as
  xnh creates its county file): `CREATE TABLE claims (...17 columns..., PRIMARY KEY
  (结算单号))`, `.import --csv --skip 1 FILE claims`, then the secondary indexes built after the load
  (参合证号; 参合证号 + 入院日期, as `xnh sync` has member_id and household_id + admitted), in one
  sqlite3 process on a fresh WAL database: no checks, no history, no conversion;
- `python -m xnh sync claims FILE --no-progress` into a fresh database (XNH_DB), as a subprocess, while
  a sampler adds up the resident memory of the process and its children (the reader process) every 20 ms;
- `xnh sync claims FILE` again into the loaded database (every row unchanged);
- `xnh sync claims CHANGED` into it, CHANGED being FILE with --changed rows (1,000) changed at random
  places (a newer 更新时间 and another 姓名), as a county's next export would be.
Prints the best time of each over the rounds, the ratio, and the peak memory. Needs the sqlite3 CLI:
`apt-get install -y sqlite3` (installed here when missing). Figures: bench/SYNC_RESULTS.md.
"""
import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import describe

HEADER = ("结算单号,参合证号,姓名,身份证号,就诊类型,医疗机构,机构级别,入院日期,出院日期,总费用,可报费用,补偿金额,"
          "状态,拒付原因,拨付日期,拨付方式,更新时间").split(",")
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
LEVELS = [("示范县人民医院", "县级医院"), ("东山镇卫生院", "乡镇卫生院"), ("市第一人民医院", "省地级指定"),
          ("市康宁医院", "县外民营定点"), ("东莞市长安医院", "县外非定点"), ("西河村卫生室", "村卫生室")]
STATUSES = ["已受理", "审核中", "审核通过", "已拨付", "已拨付", "未通过"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华兰"


def id_number(r: random.Random) -> str:
    body = f"529901{r.randint(1940, 2020)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}{r.randint(0, 999):03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """`rows` claims of about rows/4 members in rows/10 households."""
    r = random.Random(seed)
    households = max(1, rows // 10)
    members = [(f"HH{r.randrange(households):07d}-{r.randint(1, 5):02d}",
                r.choice(SURNAMES) + "".join(r.choice(GIVEN) for _ in range(r.randint(1, 2))), id_number(r))
               for _ in range(max(1, rows // 4))]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(rows):
            member, name, number = members[r.randrange(len(members))]
            hospital, level = r.choice(LEVELS)
            status = r.choice(STATUSES)
            month, day = r.randint(1, 11), r.randint(1, 20)
            admitted = f"2026-{month:02d}-{day:02d}"
            discharged = f"2026-{month:02d}-{day + r.randint(0, 8):02d}"
            total = r.randint(6000, 5000000)  # fen: amounts rarely repeat
            eligible = total - r.randint(0, total // 10)
            paid = status in ("审核通过", "已拨付")
            w.writerow([f"BC{2026_0000000 + i:013d}", member, name, number, r.choice(["住院", "门诊", "住院分娩"]),
                        hospital, level, admitted, discharged, _yuan(total), _yuan(eligible),
                        _yuan(eligible * 6 // 10) if paid else "", status,
                        "缺少转诊证明" if status == "未通过" else "",
                        f"2026-{month + 1:02d}-{day:02d}" if status == "已拨付" else "",
                        "一卡通" if status == "已拨付" else "", f"2026-{month + 1:02d}-{day:02d}T09:00:00"])


def changed_copy(data: Path, out: Path, n: int, seed: int = 7) -> None:
    """`data` with `n` of its rows changed at random places (a newer 更新时间, another 姓名)."""
    r = random.Random(seed)
    lines = data.read_bytes().split(b"\n")
    for i in r.sample(range(1, len(lines) - 1), n):
        cells = next(csv.reader([lines[i].decode("utf-8")]))
        cells[2] += "某"
        cells[16] = "2026-12-28T10:00:00"
        lines[i] = ",".join(cells).encode("utf-8")
    out.write_bytes(b"\n".join(lines))


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


# the sqlite3 CLI's table: the export's columns, keyed as xnh keys claims; indexes built after the load
CLI_SCHEMA = ("PRAGMA journal_mode=WAL;\nCREATE TABLE claims (" + ", ".join(f'"{c}" TEXT' for c in HEADER)
              + ', PRIMARY KEY ("结算单号"));')
CLI_INDEXES = ('CREATE INDEX claims_member ON claims ("参合证号");\n'
               'CREATE INDEX claims_member_admitted ON claims ("参合证号", "入院日期");')


def rss_tree(pid: int) -> int:
    """Resident KiB of `pid` and its children."""
    total = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def timed(cmd, env=None) -> tuple[float, int, str]:
    """(seconds, peak KiB of the process tree, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], rss_tree(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return seconds, peak[0], out


def fresh(path: Path) -> None:
    for name in (path, path.with_name(f"{path.stem}.county{path.suffix}")):
        for suffix in ("", "-wal", "-shm"):
            Path(str(name) + suffix).unlink(missing_ok=True)


def ensure_sqlite3() -> str:
    exe = shutil.which("sqlite3")
    if not exe:
        subprocess.run(["apt-get", "install", "-y", "sqlite3"], check=True, stdout=subprocess.DEVNULL)
        exe = shutil.which("sqlite3")
    return exe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", help="work in this directory and keep the files")
    ap.add_argument("--changed", type=int, default=1000, help="rows changed for the last re-sync")
    args = ap.parse_args()
    sqlite3_exe = ensure_sqlite3()
    xnh = [sys.executable, "-m", "xnh"]
    work = Path(args.keep or tempfile.mkdtemp(prefix="xnh-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"claims_{args.rows}.csv"
    if not data.exists():
        t = time.perf_counter()
        generate(data, args.rows)
        print(f"generated {data} ({data.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
    changed = work / f"claims_{args.rows}_changed{args.changed}.csv"
    if not changed.exists():
        changed_copy(data, changed, args.changed)
    env = dict(os.environ, XNH_TODAY="2026-12-31",  # the generated dates run to 2026-12-20
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH")])))
    best = {"import": None, "import16": None, "sync": None, "resync": None, "changed": None}
    peaks = {"sync": 0, "resync": 0, "changed": 0}
    lines = {}
    for round_ in range(args.rounds):
        cli_db, xnh_db = work / "cli.db", work / "xnh.db"
        fresh(cli_db)
        script = work / "cli_import.sql"
        script.write_text(f"{CLI_SCHEMA}\n.import --csv --skip 1 {data} claims\n{CLI_INDEXES}\n", encoding="utf-8")
        s, _, _ = timed([sqlite3_exe, str(cli_db), f".read {script}"])
        rows = subprocess.run([sqlite3_exe, str(cli_db), "SELECT count(*) FROM claims"], capture_output=True,
                              text=True, check=True).stdout.strip()
        if int(rows) != args.rows:
            sys.exit(f"sqlite3 .import loaded {rows} rows, not {args.rows}")
        best["import"] = min(s, best["import"] or s)
        fresh(cli_db)  # the same with 16 KiB pages, as xnh creates its county file (store/db.py)
        script.write_text(f"PRAGMA page_size=16384;\n{CLI_SCHEMA}\n.import --csv --skip 1 {data} claims\n{CLI_INDEXES}\n",
                          encoding="utf-8")
        s, _, _ = timed([sqlite3_exe, str(cli_db), f".read {script}"])
        best["import16"] = min(s, best["import16"] or s)
        fresh(xnh_db)
        env["XNH_DB"] = str(xnh_db)
        for key in ("sync", "resync", "changed"):
            s, kib, out = timed(xnh + ["sync", "claims", str(changed if key == "changed" else data), "--no-progress"],
                                env=env)
            best[key] = min(s, best[key] or s)
            peaks[key] = max(peaks[key], kib)
            lines[key] = out.strip().splitlines()[-1]
        print(f"round {round_ + 1}: .import {best['import']:.2f}s  sync {best['sync']:.2f}s  "
              f"re-sync {best['resync']:.2f}s  {args.changed} changed {best['changed']:.2f}s  (best so far)  "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"rows: {args.rows}   machine: {describe()}")
    print(f"sqlite3 .import (keyed table, indexes after): {best['import']:.2f}s   "
          f"(with 16 KiB pages as xnh's county file: {best['import16']:.2f}s)")
    print(f"xnh sync, empty database:     {best['sync']:.2f}s  = {best['sync'] / best['import']:.2f}x .import "
          f"({best['sync'] / best['import16']:.2f}x at 16 KiB)   "
          f"peak {peaks['sync'] / 1024:.0f} MB   [{lines['sync']}]")
    print(f"xnh sync, same file again:    {best['resync']:.2f}s  = {best['resync'] / best['import']:.2f}x .import   "
          f"peak {peaks['resync'] / 1024:.0f} MB   [{lines['resync']}]")
    print(f"xnh sync, {args.changed} rows changed: {best['changed']:.2f}s  = {best['changed'] / best['sync']:.2f} of a first "
          f"load   peak {peaks['changed'] / 1024:.0f} MB   [{lines['changed']}]")
    if not args.keep:
        shutil.rmtree(work)



if __name__ == "__main__":
    main()
