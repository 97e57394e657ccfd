#!/usr/bin/env python3
"""A city on one machine: 10,000,000 members with phones and 5,000,000 claims, synced with `xnh sync`,
then 查参合 and 查报销 from registered phones through signed /sms of a running `xnh serve`.

    python bench/city_bench.py [--members 10000000] [--claims 5000000] [--seconds 30] [--connections 16]
                               [--work DIR] [--keep] [--out bench/CITY_RESULTS.md]

1. generates the two exports (a generator, nothing stored in the repository): households of three, every
   member with a phone of their own (13000000000 + n), valid ID numbers; claims of random members in 2026;
2. `xnh sync enrollment` then `xnh sync claims` into a fresh database, timed, peak memory of the process
   tree sampled every 20 ms (as bench/sync_bench.py does);
3. the data path alone: `respond()` for 查参合 and 查报销 from 2,000 random registered phones each, one
   commit a message, in this process (what a message costs once it is in: p50/p99);
4. `xnh serve` with TWILIO_AUTH_TOKEN and XNH_PUBLIC_URL (signatures checked), then --connections client
   threads on 127.0.0.1, each with a kept-alive connection, sending 查参合/查报销 from random registered
   phones (a new MessageSid each) as fast as answers come, for --seconds: throughput, p50/p99/max, errors.
The load's clients run on the same machine as the server (2 vCPUs here): they take CPU from it.
Appends its table to --out.
"""
import argparse
import datetime as dt
import http.client
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from machine import describe  # noqa: E402
from mixed_load import PUBLIC, TOKEN, _free_port, _wait_healthy  # noqa: E402
from sync_bench import timed  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

TODAY = "2026-12-31"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华兰"
TOWNS = ["东山镇", "西河乡", "南坪乡", "北岭镇"]
LEVELS = [("示范县人民医院", "县级医院"), ("东山镇卫生院", "乡镇卫生院"), ("市第一人民医院", "省地级指定")]
STATUSES = ["已受理", "审核中", "审核通过", "已拨付", "已拨付", "未通过"]
ENROLLMENT_HEADER = "年度,参合证号,户号,姓名,性别,身份证号,与户主关系,联系电话,乡镇,村,人员类别,缴费金额,缴费日期,参合状态,更新时间"
CLAIM_HEADER = ("结算单号,参合证号,姓名,身份证号,就诊类型,医疗机构,机构级别,入院日期,出院日期,总费用,可报费用,补偿金额,状态,"
                "拒付原因,拨付日期,拨付方式,更新时间")
TEXTS = ("查参合", "查报销")


def member_id(n: int) -> str:
    return f"C{n // 3:08d}-{n % 3 + 1:02d}"


def phone(n: int) -> str:
    return f"13{n:09d}"


def id_number(n: int) -> str:
    body = f"529901{1940 + n % 80}{n % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def name(n: int) -> str:
    return SURNAMES[n % len(SURNAMES)] + GIVEN[n // 20 % len(GIVEN)] + GIVEN[n // 500 % len(GIVEN)]


def generate_enrollment(path: Path, members: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(ENROLLMENT_HEADER + "\n")
        lines = []
        for n in range(members):
            relation = ("户主", "配偶", "子女")[n % 3]
            lines.append(f"2026,{member_id(n)},C{n // 3:08d},{name(n)},{'男' if n % 2 else '女'},{id_number(n)},"
                         f"{relation},{phone(n)},{TOWNS[n // 3 % 4]},第{n // 3000 % 50 + 1}村,普通,380.00,"
                         f"2025-11-{n % 28 + 1:02d},已参合,2025-12-30T18:00:00\n")
            if len(lines) >= 100_000:
                f.writelines(lines)
                lines = []
        f.writelines(lines)


def generate_claims(path: Path, claims: int, members: int, seed: int = 5) -> None:
    r = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write(CLAIM_HEADER + "\n")
        lines = []
        for i in range(claims):
            n = r.randrange(members)
            hospital, level = LEVELS[i % 3]
            status = STATUSES[i % 6]
            month, day = r.randint(1, 11), r.randint(1, 20)
            total = r.randint(6000, 5000000)
            eligible = total - total // 10
            paid = status in ("审核通过", "已拨付")
            lines.append(
                f"CB{i:010d},{member_id(n)},{name(n)},{id_number(n)},{'住院' if i % 2 else '门诊'},{hospital},{level},"
                f"2026-{month:02d}-{day:02d},2026-{month:02d}-{day + 3:02d},{total // 100}.{total % 100:02d},"
                f"{eligible // 100}.{eligible % 100:02d},"
                + (f"{eligible * 6 // 1000}.{eligible * 6 // 10 % 100:02d}" if paid else "")
                + f",{status},{'缺少转诊证明' if status == '未通过' else ''},"
                + (f"2026-{month + 1:02d}-{day:02d},一卡通" if status == "已拨付" else ",")
                + f",2026-{month + 1:02d}-{day:02d}T09:00:00\n")
            if len(lines) >= 100_000:
                f.writelines(lines)
                lines = []
        f.writelines(lines)


def data_path(db_path: Path, members: int, n: int = 2000) -> dict:
    """respond() for 查参合 and 查报销 from random registered phones, in this process: ms per message."""
    os.environ["XNH_DB"], os.environ["XNH_TODAY"] = str(db_path), TODAY
    from xnh.handlers.router import respond
    from xnh.message import Message
    from xnh.store import db as store

    db = store.open_db(str(db_path))
    r = random.Random(9)
    out = {}
    for text in TEXTS:
        times, found = [], 0
        for _ in range(n):
            p = phone(r.randrange(members))
            t = time.perf_counter()
            reply = respond(Message(text=text, sender=p, channel="sms", phone=p), db)
            db.conn.commit()
            times.append((time.perf_counter() - t) * 1000)
            found += "没有" not in reply.text
        out[text] = times
    db.close()
    return out


class Load:
    """`connections` threads, each with its own kept-alive connection, in a closed loop for `seconds`."""

    def __init__(self, port: int, members: int, connections: int, seconds: float):
        self.port, self.members, self.connections, self.seconds = port, members, connections, seconds
        self.results: list[tuple[float, int]] = []
        self.lock = threading.Lock()

    def run(self) -> float:
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(self.connections)]
        start = time.monotonic()
        self.deadline = start + self.seconds
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - start

    def _client(self, k: int) -> None:
        r = random.Random(k)
        validator = RequestValidator(TOKEN)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = 0
        results = []
        while time.monotonic() < self.deadline:
            params = {"From": "+86" + phone(r.randrange(self.members)), "To": "+15005550006",
                      "Body": TEXTS[i % 2], "MessageSid": f"SMcity{k:04d}{i:024x}",
                      "AccountSid": "AC" + "0" * 32, "NumMedia": "0"}
            body = urllib.parse.urlencode(params)
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": validator.compute_signature(PUBLIC + "/sms", params)}
            t = time.perf_counter()
            try:
                conn.request("POST", "/sms", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            results.append(((time.perf_counter() - t) * 1000, status))
            i += 1
        conn.close()
        with self.lock:
            self.results.extend(results)


def pct(values, p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10_000_000)
    ap.add_argument("--claims", type=int, default=5_000_000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--work", help="folder for the exports and the database (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the folder")
    ap.add_argument("--out", default=str(HERE / "CITY_RESULTS.md"))
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="xnh-city-"))
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    print(f"{work}: {free / 1e9:.0f} GB free", file=sys.stderr)
    enrollment, claims = work / f"enrollment_{a.members}.csv", work / f"claims_{a.claims}.csv"
    for path, make in ((enrollment, lambda: generate_enrollment(enrollment, a.members)),
                       (claims, lambda: generate_claims(claims, a.claims, a.members))):
        if not path.exists():
            t = time.perf_counter()
            make()
            print(f"generated {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f}s",
                  file=sys.stderr)
    db_path = work / "city.db"
    for p in work.glob("city*.db*"):
        p.unlink()
    env = dict(os.environ, XNH_DB=str(db_path), XNH_TODAY=TODAY, TWILIO_AUTH_TOKEN=TOKEN, XNH_PUBLIC_URL=PUBLIC,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("TELEGRAM_BOT_TOKEN", None)
    xnh = [sys.executable, "-m", "xnh"]
    syncs = {}
    for kind, path in (("enrollment", enrollment), ("claims", claims)):
        seconds, kib, out = timed(xnh + ["sync", kind, str(path), "--no-progress"], env=env)
        syncs[kind] = (seconds, kib, out.strip().splitlines()[-1])
        print(f"sync {kind}: {seconds:.0f}s, peak {kib / 1024:.0f} MB, {syncs[kind][2]}", file=sys.stderr)
    sizes = sum(p.stat().st_size for p in work.glob("city*.db*"))
    direct = data_path(db_path, a.members)
    port = _free_port()
    server = subprocess.Popen(xnh + ["serve", "--port", str(port), "--threads", "8"], env=env,
                              stdout=open(work / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(port, server)
        load = Load(port, a.members, a.connections, a.seconds)
        elapsed = load.run()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    ms = [m for m, _ in load.results]
    errors = sum(1 for _, s in load.results if s != 200)
    lines = [
        f"## {a.members:,} members, {a.claims:,} claims ({dt.date.today()})",
        "",
        f"`python bench/city_bench.py --members {a.members} --claims {a.claims} --seconds {a.seconds:g} "
        f"--connections {a.connections}`: {describe()}, shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end). Database files after the syncs: {sizes / 1e9:.1f} GB.",
        "",
        "| step | time | peak memory | result |",
        "|---|---|---|---|",
        *(f"| `xnh sync {k}` ({p.stat().st_size / 1e6:,.0f} MB) | {s:.0f} s | {kib / 1024:.0f} MB | `{last}` |"
          for (k, (s, kib, last)), p in zip(syncs.items(), (enrollment, claims))),
        "",
        "| what | n | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        *(f"| respond() {t}, in-process, one commit each | {len(v)} | {statistics.median(v):.2f} | {pct(v, 99):.2f} | "
          f"{max(v):.2f} |" for t, v in direct.items()),
        f"| signed /sms 查参合+查报销, {a.connections} connections, {elapsed:.0f} s: **{len(ms) / elapsed:.0f}/s**, "
        f"{errors} errors | {len(ms)} | {pct(ms, 50):.1f} | {pct(ms, 99):.1f} | {max(ms, default=0):.1f} |",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    with open(a.out, "a", encoding="utf-8") as f:
        f.write(report + "\n")
    if not a.keep and not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
