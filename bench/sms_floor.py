#!/usr/bin/env python3
"""How much of a signed /sms request is HTTP, form and signature, and how much is answering it.

    python bench/sms_floor.py [--duration 15] [--threads 8]

Serves the real app (waitress, as `xnh serve` does) with one extra route, POST /sms-floor, that does
what /sms does before it answers (parse Twilio's form, check X-Twilio-Signature) and then returns a
fixed TwiML reply without answering. wrk then drives, in one run: GET /healthz, POST /sms-floor and
POST /sms, with the same signed bodies as bench/load.py (own MessageSid each). The gap between
/sms-floor and /sms is the cost of answering (the MessageSid claim, respond(), the commit, TwiML);
bench/load.py's goal (/sms ≥ 50 % of /healthz) is a budget for that gap. Prints a table.
"""
import argparse
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import load  # bench/load.py: bodies, wrk, parsing

FIXED = "住院3000元估算可报:1.乡镇卫生院2400元;2.县级医院2100元;3.市/省级定点医院1680元;4.县外非定点医院1620元。"


def _serve(port: int, threads: int, env: dict) -> None:
    os.environ.update(env)
    logging.getLogger("waitress").setLevel(logging.ERROR)  # no "Task queue depth" lines in the table
    from flask import Response

    from xnh.app import create_app
    from xnh import server
    from xnh.bot import sms

    app = create_app()
    server._warm_up(app)

    def floor():
        sms.signed_form()
        return Response(sms.twiml(FIXED), mimetype="text/xml")

    app.add_url_rule("/sms-floor", "sms_floor", floor, methods=["POST"])
    server.make_server(app, "127.0.0.1", port, threads).run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    wrk = load._wrk()
    work = Path(tempfile.mkdtemp(prefix="xnh-floor-"))
    env = dict(os.environ, XNH_DB=str(work / "bench.db"), TWILIO_AUTH_TOKEN=load.TOKEN, XNH_PUBLIC_URL=load.PUBLIC,
               XNH_TODAY=os.environ.get("XNH_TODAY", "2026-06-15"))
    env.pop("TELEGRAM_BOT_TOKEN", None)
    phones, texts = load._seed(env), load._texts()
    (work / "sms.lua").write_text(load.LUA)
    port = load._free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, a.threads, env), daemon=True)
    proc.start()
    rows = []
    try:
        base = f"http://127.0.0.1:{port}"
        load._wait_healthy(base, proc_like(proc))
        common = [wrk, "-t1", "-c8", "--latency", "--timeout", "5s"]
        load._run(common + ["-d3s", base + "/healthz"])
        rows.append(("GET /healthz", load._parse(load._run(common + [f"-d{a.duration}s", base + "/healthz"]))))
        for route in ("/sms-floor", "/sms"):
            bodies = work / f"bodies{route.replace('/', '_')}.tsv"
            load._write_bodies(bodies, 100_000, phones, "SM" + route[1:].replace("-", ""), texts, route)
            args = ["-s", str(work / "sms.lua"), base + route, "--", str(bodies), "1", route]
            load._run(common + ["-d3s"] + args)
            rows.append((f"POST {route}", load._parse(load._run(common + [f"-d{a.duration}s"] + args))))
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(10)
        shutil.rmtree(work, ignore_errors=True)
    health = rows[0][1]["rps"]
    print("| endpoint | requests/s | share of /healthz | p99 |\n|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['rps']:.0f} | {r['rps'] / health:.0%} | {r['p99_ms']:.1f} ms |")
    print(f"answering costs {1000 / rows[2][1]['rps'] - 1000 / rows[1][1]['rps']:.2f} ms of server time per "
          f"message; 50 % of /healthz leaves {2000 / health - 1000 / rows[1][1]['rps']:.2f} ms for it")


class proc_like:
    """What load._wait_healthy needs of a server process: poll() and returncode."""

    def __init__(self, proc):
        self.proc = proc

    def poll(self):
        return None if self.proc.is_alive() else self.proc.exitcode

    @property
    def returncode(self):
        return self.proc.exitcode


if __name__ == "__main__":
    sys.exit(main())
