#!/usr/bin/env python3
"""Load test of `xnh serve` with wrk: GET /healthz, then POST /sms with signed Twilio requests, on the
same server in the same run. Writes the figures to bench/LOAD_RESULTS.md and prints them.

    python bench/load.py [--duration 60] [--connections 16] [--threads 8] [--bodies 200000] [--pin]

What it does:
1. makes a fresh database in a temporary folder (the county sample from ../shared/data when it is
   there, else `xnh serve` loads the demo county into the empty database);
2. starts `xnh serve` with TWILIO_AUTH_TOKEN and XNH_PUBLIC_URL set, so every /sms request is checked
   against a signature over a fixed URL;
3. precomputes signed form bodies (RequestValidator.compute_signature), each with its own
   MessageSid, sender and text (texts: the turns of ../shared/eval/dev_cases.json, else a built-in
   list); a Lua script cycles through them; each wrk thread takes every n-th body, so a body is sent
   twice only when the run outlasts the file (the report says how many were repeats, which the
   server answers from its processed_messages table);
4. wrk /healthz, then wrk /sms, each after a short warm-up; errors = socket errors + non-2xx.
With --pin, the server runs on CPU 0 only and wrk on CPU 1 (an analysis run: it shows what waitress's
thread hand-offs between two cores cost each request; the goal is measured without it).
Requires wrk (apt-get install wrk; installed here when missing and running as root).
"""
import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from twilio.request_validator import RequestValidator
from machine import cpu_model

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
TOKEN = "bench-auth-token"
XNH = [sys.executable, "-m", "xnh"]  # this checkout's xnh (PYTHONPATH set in main)
PUBLIC = "https://xnh.bench.invalid"
TEXTS = ["住院花了3000能报多少", "在县医院住院花了6000能报多少", "乡里卫生院住院花了一千八百块", "查参合", "查报销",
         "门诊一年最多报多少", "在外地住院怎么报销", "什么时候交明年的钱", "转诊要什么手续", "人工", "你好",
         "我爸在省医院住院花了两万五", "TD", "订阅"]

LUA = r"""
-- cycle through pre-signed /sms bodies: thread k of n takes lines k, k+n, k+2n, ...
local threads, tid = {}, 0
function setup(thread)
  thread:set("id", tid); tid = tid + 1
  table.insert(threads, thread)
end
function init(args)
  local path, n = args[1], tonumber(args[2])
  route = args[3] or "/sms"
  sigs, bodies, sent = {}, {}, 0
  local i = 0
  for line in io.lines(path) do
    if i % n == id then
      local sig, body = line:match("^([^\t]*)\t(.*)$")
      sigs[#sigs + 1] = sig; bodies[#bodies + 1] = body
    end
    i = i + 1
  end
  nbodies = #bodies
end
function request()
  sent = sent + 1
  local k = (sent - 1) % #bodies + 1
  return wrk.format("POST", route, {["Content-Type"] = "application/x-www-form-urlencoded",
                                     ["X-Twilio-Signature"] = sigs[k]}, bodies[k])
end
function done(summary, latency, requests)
  local total, unique = 0, 0
  for _, t in ipairs(threads) do
    local s, b = t:get("sent"), t:get("nbodies")
    total = total + s; unique = unique + math.min(s, b)
  end
  io.write(string.format("BODIES sent=%d unique=%d\n", total, unique))
end
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=60, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    ap.add_argument("--bodies", type=int, default=200_000)
    ap.add_argument("--text", action="append", help="send only these texts (repeatable; default: the eval's turns)")
    ap.add_argument("--pin", action="store_true", help="server on CPU 0, wrk on CPU 1")
    ap.add_argument("--out", default=str(HERE / "LOAD_RESULTS.md"))
    a = ap.parse_args()
    server_cpu, wrk_cpu = ({0}, {1}) if a.pin and os.cpu_count() >= 2 else (None, None)
    wrk = _wrk()
    work = Path(tempfile.mkdtemp(prefix="xnh-bench-"))
    env = dict(os.environ, XNH_DB=str(work / "bench.db"), TWILIO_AUTH_TOKEN=TOKEN, XNH_PUBLIC_URL=PUBLIC,
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
               XNH_TODAY=os.environ.get("XNH_TODAY", "2026-06-15"))
    env.pop("TELEGRAM_BOT_TOKEN", None)
    phones = _seed(env)
    bodies, warm = work / "bodies.tsv", work / "warmup.tsv"
    texts = a.text or _texts()
    _write_bodies(bodies, a.bodies, phones, "SM", texts)
    _write_bodies(warm, 20_000, phones, "SMw", texts)
    (work / "sms.lua").write_text(LUA)
    port = _free_port()
    server = subprocess.Popen(XNH + ["serve", "--port", str(port), "--threads", str(a.threads)], env=env,
                              stdout=open(work / "server.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True, preexec_fn=_pinned(server_cpu))
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, server)
        common = [wrk, f"-t{a.wrk_threads}", f"-c{a.connections}", "--latency", "--timeout", "5s"]
        _run(common + [f"-d{a.warmup}s", base + "/healthz"], wrk_cpu)
        cpu = _cpu_seconds(server.pid)
        health = _parse(_run(common + [f"-d{a.duration}s", base + "/healthz"], wrk_cpu))
        health["cpu_ms"] = (_cpu_seconds(server.pid) - cpu) * 1000 / max(health["requests"], 1)
        sms_args = ["-s", str(work / "sms.lua"), base + "/sms", "--"]
        _run(common + [f"-d{a.warmup}s"] + sms_args + [str(warm), str(a.wrk_threads)], wrk_cpu)
        cpu = _cpu_seconds(server.pid)
        sms = _parse(_run(common + [f"-d{a.duration}s"] + sms_args + [str(bodies), str(a.wrk_threads)], wrk_cpu))
        sms["cpu_ms"] = (_cpu_seconds(server.pid) - cpu) * 1000 / max(sms["requests"], 1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    report = _report(a, health, sms, len(phones), server_cpu is not None)
    print(report)
    Path(a.out).write_text(report, encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    ok = sms["rps"] >= 0.5 * health["rps"] and sms["p99_ms"] <= 100 and sms["errors"] == 0 and health["errors"] == 0
    sys.exit(0 if ok else 1)


def _wrk() -> str:
    found = shutil.which("wrk")
    if not found and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed: apt-get install wrk")
    return found


def _seed(env) -> list[str]:
    """Import the county sample (when present) and return its phones, for senders that are registered."""
    data = SHARED / "data"
    if (data / "enrollment.csv").exists():
        for kind, name in (("enrollment", "enrollment.csv"), ("claims", "claims.csv")):
            subprocess.run(XNH + ["sync", kind, str(data / name)], env=env, check=True, capture_output=True)
    county = Path(env["XNH_DB"]).with_name(Path(env["XNH_DB"]).stem + ".county.db")  # store.db.county_path
    if not county.exists():
        return []
    with sqlite3.connect(county) as db:
        return [r[0] for r in db.execute("select distinct phone from members where phone != ''")]


def _texts() -> list[str]:
    cases = SHARED / "eval" / "dev_cases.json"
    if cases.exists():
        return [t for c in json.loads(cases.read_text(encoding="utf-8")) for t in c["turns"]]
    return TEXTS


def _write_bodies(path: Path, n: int, phones: list[str], prefix: str, texts: list[str], route: str = "/sms") -> None:
    rng, validator = random.Random(prefix), RequestValidator(TOKEN)
    url = PUBLIC + route
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            frm = "+86" + (rng.choice(phones) if phones and rng.random() < 0.3 else f"137{rng.randrange(10**8):08d}")
            sid = f"{prefix}{i:032x}"
            params = {"From": frm, "To": "+15005550006", "Body": rng.choice(texts), "MessageSid": sid,
                      "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "NumMedia": "0", "NumSegments": "1",
                      "SmsStatus": "received", "ApiVersion": "2010-04-01", "FromCountry": "CN", "ToCountry": "US"}
            f.write(validator.compute_signature(url, params) + "\t" + urllib.parse.urlencode(params) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, server) -> None:
    for _ in range(300):
        if server.poll() is not None:
            sys.exit(f"xnh serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("xnh serve did not come up")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the server process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pinned(cpus: set[int] | None):
    """A preexec_fn that keeps the child (and every thread it starts) on `cpus`; None when not pinning."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def _run(cmd, cpus: set[int] | None = None) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, preexec_fn=_pinned(cpus)).stdout


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def _parse(out: str) -> dict:
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)",
                                                     (re.search(r"Socket errors:.*", out) or [""])[0]))
    non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    bodies = re.search(r"BODIES sent=(\d+) unique=(\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": requests,
            "p50_ms": pct["50"], "p90_ms": pct["90"], "p99_ms": pct["99"], "errors": socket_errors + non2xx,
            "sent": int(bodies.group(1)) if bodies else None, "unique": int(bodies.group(2)) if bodies else None,
            "raw": out}


def _report(a, health: dict, sms: dict, registered: int, pinned: bool = False) -> str:
    cpu = cpu_model()
    ratio = sms["rps"] / health["rps"]
    repeats = sms["sent"] - sms["unique"] if sms["sent"] is not None else None
    ok = ratio >= 0.5 and sms["p99_ms"] <= 100 and sms["errors"] == 0 and health["errors"] == 0
    pin_note = ("; **pinned** (--pin): server on CPU 0, wrk on CPU 1, an analysis run, not the goal's setup"
                if pinned else "")
    return f"""# Load test results

Written by `python bench/load.py` on {dt.datetime.now().isoformat(timespec='seconds')}.
Machine: {os.cpu_count()} CPUs ({cpu}), {platform.python_implementation()} {platform.python_version()}, wrk and
the server on the same machine. Server: `xnh serve --threads {a.threads}` (waitress, one process){pin_note}.
wrk: {a.wrk_threads} thread(s), {a.connections} connections, {a.duration} s per run after a {a.warmup} s warm-up.

| endpoint | requests/s | p50 | p90 | p99 | requests | errors | server CPU per request |
|---|---:|---:|---:|---:|---:|---:|---:|
| GET /healthz | {health['rps']:.0f} | {health['p50_ms']:.2f} ms | {health['p90_ms']:.2f} ms | {health['p99_ms']:.2f} ms | {health['requests']} | {health['errors']} | {health['cpu_ms']:.2f} ms |
| POST /sms (signed) | {sms['rps']:.0f} | {sms['p50_ms']:.2f} ms | {sms['p90_ms']:.2f} ms | {sms['p99_ms']:.2f} ms | {sms['requests']} | {sms['errors']} | {sms['cpu_ms']:.2f} ms |

- /sms reaches **{ratio:.0%}** of /healthz's requests/s (target ≥ 50%); p99 {sms['p99_ms']:.1f} ms
  (target ≤ 100 ms); errors (socket errors + non-2xx) {sms['errors']} (target 0): **{'PASS' if ok else 'FAIL'}**.
- Every /sms request carries a valid X-Twilio-Signature (checked against XNH_PUBLIC_URL) and its own
  MessageSid; {sms['unique']} distinct bodies were sent, {repeats} repeats ({(repeats or 0) / max(sms['sent'] or 1, 1):.1%} of
  {sms['sent']} requests, answered from processed_messages like a Twilio retry); the warm-up used
  bodies of its own.
- Texts: the turns of ../shared/eval/dev_cases.json (estimates, policy questions, 查参合/查报销, opt-out,
  handoff), picked at random; senders: 30% phones registered in the county sample ({registered} phones), the rest
  unknown numbers. Each request runs the whole path: signature, idempotency claim, respond(), TwiML.
- /healthz takes the service file's write lock in a transaction and rolls it back, reads the schema version and the last sync, and checks the free disk space (since issue 11; before, `select 1`).
- Server CPU per request: user + system time of the `xnh serve` process (/proc) over the run, divided by
  the requests; it does not count wrk, which shares the machine.

<details><summary>wrk output</summary>

```
{health['raw'].strip()}
```

```
{sms['raw'].strip()}
```
</details>
"""


if __name__ == "__main__":
    main()
