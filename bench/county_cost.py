"""What one county costs (issue 20): the memory of a loaded policy and the time to load it, per county
directory, each in a fresh process, so that the README can say how many counties one machine holds.

For each directory: a new Python process imports the package, loads the county's whole policy the way
the first message does (schemes, levels, hospitals, Q&A rendered and checked, the concept automaton with
China's place names, the lexical index, the estimator) and answers one policy question and one estimate
through `respond()`. It reports the resident memory before and after the load (VmRSS), the peak (VmHWM),
and the load's wall time. A service instance is one process holding one county's policy (plus its
database connections and, with `xnh serve`, the WSGI threads), so instances a machine holds ≈ free
memory ÷ (the process's RSS + the database page cache it is allowed).

Run:  python bench/county_cost.py [DIR ...]      (default: every directory under xnh/counties/)
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROBE = r"""
import json, os, sys, tempfile, time
def rss(field):
    return int(next(l for l in open('/proc/self/status') if l.startswith(field)).split()[1]) // 1024
os.environ.setdefault("XNH_TODAY", "2026-06-15")
import xnh.handlers.router as router, xnh.message as message
from xnh.store.db import open_db
before, started = rss("VmRSS"), time.perf_counter()
from xnh.policy_kb import loader, qa, concepts, understand, schemes, hospitals
loader.use_county(sys.argv[1])
qa.topics(); schemes.all_schemes(); hospitals.hospitals(); concepts.find("预热四川长沙"); understand.decide("住院报销比例")
db = open_db(os.path.join(tempfile.mkdtemp(), "x.db"))
for text in ("住院花了3000能报多少", "门诊一年最多报多少", "四川农村医保报销比例是多少"):
    router.respond(message.Message(text=text, sender="13700000001", channel="sms", phone="13700000001"), db)
loaded = time.perf_counter() - started
print(json.dumps({"county": loader.county()["name"], "topics": len(qa.topics()), "rss_before_mb": before,
                  "rss_after_mb": rss("VmRSS"), "peak_mb": rss("VmHWM"), "load_s": round(loaded, 2)}))
"""


def measure(directory: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(directory)], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    from xnh.policy_kb.loader import PACKAGE_COUNTIES

    dirs = [Path(a) for a in sys.argv[1:]] or sorted(p for p in PACKAGE_COUNTIES.iterdir() if (p / "county.toml").exists())
    print("| county | topics | RSS before the policy | RSS with it loaded, after 3 answers | peak | load + 3 answers |")
    print("|---|---|---|---|---|---|")
    for d in dirs:
        r = measure(d)
        print(f"| {r['county']} | {r['topics']} | {r['rss_before_mb']} MB | {r['rss_after_mb']} MB | {r['peak_mb']} MB | {r['load_s']} s |")


if __name__ == "__main__":
    main()
