"""WeChat's 5-second budget: the time from a signed POST /wechat reaching the app to its passive reply,
over every turn of the real-question corpora and the dev cases (each a new MsgId, senders bound and not),
through Flask's test client on the demo county (in-process: no network, no waitress). It measures
everything the adapter does: the signature, parse_message, the message's transaction, respond() with
rendering, the reply kept by MsgId, the XML. Also respond()+rendering alone, on the same turns.

Run: python bench/wechat_bench.py [--rounds 3]
Prints p50, p99 and max of both, in milliseconds, and the number of turns.
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = [ROOT / "bench" / "real" / name for name in ("corpus_dev.json", "corpus2_dev.json", "corpus_holdout.json",
                                                     "corpus2_holdout.json")]
DEV = ROOT.parent / "shared" / "eval" / "dev_cases.json"
TOKEN = "bench-token"


def turns() -> list[str]:
    found = []
    for path in [*SETS, DEV if DEV.exists() else ROOT / "tests" / "data" / "dev_cases.json"]:
        found += [t for case in json.loads(path.read_text(encoding="utf-8")) for t in case["turns"]]
    return found


def quantiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * len(ms))) - 1)]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("XNH_TODAY", "2026-06-15")
    from xnh import demo
    from xnh.app import create_app
    from xnh.bot import wechat
    from xnh.handlers.router import respond, warm_up
    from xnh.message import Message
    from xnh.store import db as store_db

    with tempfile.TemporaryDirectory() as folder:
        path = demo.ensure(os.path.join(folder, "bench.db"))
        app = create_app({"DB_PATH": path, "WECHAT_TOKEN": TOKEN, "TESTING": True})
        client = app.test_client()
        conn = store_db.open_db(path)
        warm_up(conn)
        texts = turns()
        posts, answers, msg_id = [], [], 10**15
        for round_ in range(args.rounds):
            for i, text in enumerate(texts):
                msg_id += 1
                openid = f"oBENCH{i % 50}"
                ts, nonce = str(int(time.time())), str(msg_id)
                xml = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
                       f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                       f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>")
                query = {"signature": wechat.sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
                start = time.perf_counter()
                response = client.post("/wechat", query_string=query, data=xml.encode(), content_type="text/xml")
                posts.append(time.perf_counter() - start)
                assert response.status_code == 200, response.status_code
                start = time.perf_counter()
                with store_db.message_db(path) as db:
                    respond(Message(text=text, sender=f"wx:{openid}r", channel="wechat"), db)
                answers.append(time.perf_counter() - start)
        conn.close()
    print(f"turns: {len(texts)} × {args.rounds} rounds")
    print(f"POST /wechat (signature, parse, transaction, respond, reply kept, XML): {quantiles(posts)}")
    print(f"respond() + rendering (its own transaction): {quantiles(answers)}")


if __name__ == "__main__":
    main()
