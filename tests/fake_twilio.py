"""A local fake of Twilio's Messages API for tests and benchmarks (127.0.0.1 only).

    with FakeTwilio() as fake:                     # fake.base → TWILIO_API_BASE
        fake.script["+8613800000001"] = [500, "ok"]  # per recipient, in order; then "ok"
        ...
        fake.requests                              # [(time, to, body, status_callback), ...] in arrival order
        fake.messages                              # the messages it accepted: {sid, to, body, at}

Behaviours: "ok" (201 with a new SM sid), 429, 500 (or any 5xx), "timeout" (answers after `delay`
seconds, longer than the client waits), "accepted_timeout" (accepts the message, then answers after
`delay` seconds: the client gives up, Twilio has it), or a Twilio error code (21610, 21211, 21614, 30003,
30004, 30005, 30006, 30007: a 400 with that code). Every request is recorded with its arrival time,
whatever the answer. GET …/Messages.json?To=… lists the accepted messages to a number, newest first, as
Twilio's list does (`list_fails = True`: it answers 500 instead).
"""
import email.utils
import socket
import threading
import time
import uuid
from urllib.parse import parse_qs

from fake_http import JsonHandler, LocalServer


class FakeTwilio(LocalServer):
    def __init__(self, timeout_delay: float = 2.0):
        self.script: dict[str, list] = {}
        self.requests: list[tuple] = []
        self.messages: list[dict] = []
        self.list_fails = False
        self.timeout_delay = timeout_delay
        self.lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def setup(self):
                super().setup()  # headers and body leave in one write, without Nagle's wait for an ACK
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path.startswith("/2010-04-01/Accounts/") and path.endswith("/Messages.json"):
                    return self._list(path, {k: v[0] for k, v in parse_qs(query).items()})
                if path.startswith("/2010-04-01/Accounts/") and path.endswith(".json"):  # the account: a warm-up
                    return self.send_json(200, {"sid": path.rsplit("/", 1)[-1][:-5], "status": "active"})
                if self.path != "/requests":
                    return self.send_json(404, {"status": 404})
                with fake.lock:
                    return self.send_json(200, [list(r) for r in fake.requests])

            def _list(self, path, query):
                if fake.list_fails:
                    return self.send_json(500, {"code": 20500, "message": "fake list outage", "status": 500})
                with fake.lock:
                    found = [m for m in fake.messages if m["to"] == query.get("To", m["to"])]
                found = sorted(found, key=lambda m: -m["at"])[: int(query.get("PageSize", 50))]
                records = [{"sid": m["sid"], "to": m["to"], "body": m["body"], "status": "queued",
                            "date_created": email.utils.formatdate(m["at"], usegmt=True)} for m in found]
                return self.send_json(200, {"messages": records, "next_page_uri": None, "page": 0,
                                          "page_size": len(records), "uri": path, "first_page_uri": path,
                                          "previous_page_uri": None, "start": 0, "end": len(records)})

            def do_POST(self):
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                if not (self.path.startswith("/2010-04-01/Accounts/") and self.path.endswith("/Messages.json")):
                    return self.send_json(404, {"code": 20404, "message": "not found", "status": 404})
                to = form.get("To", "")
                with fake.lock:
                    fake.requests.append((at, to, form.get("Body", ""), form.get("StatusCallback")))
                    steps = fake.script.get(to)
                    step = steps.pop(0) if steps else "ok"
                if step == "timeout":
                    time.sleep(fake.timeout_delay)
                    step = 500
                if step in ("ok", "accepted_timeout"):
                    sid = "SM" + uuid.uuid4().hex
                    with fake.lock:
                        fake.messages.append({"sid": sid, "to": to, "body": form.get("Body", ""), "at": at})
                    if step == "accepted_timeout":
                        time.sleep(fake.timeout_delay)
                    return self.send_json(201, {"sid": sid, "status": "queued", "to": to, "body": form.get("Body")})
                if isinstance(step, int) and step < 600:
                    return self.send_json(step, {"code": 20429 if step == 429 else 20500, "message": "fake",
                                               "status": step})
                return self.send_json(400, {"code": int(step), "message": f"fake error {step}", "status": 400})

        self.serve(Handler)

    def to(self, recipient: str) -> list[tuple]:
        return [r for r in self.requests if r[1] == recipient]

    def per_second(self) -> dict[int, int]:
        """Requests by whole second of arrival."""
        counts: dict[int, int] = {}
        for at, *_ in self.requests:
            counts[int(at)] = counts.get(int(at), 0) + 1
        return counts


def serve_forever_main():  # pragma: no cover - `python tests/fake_twilio.py PORTFILE`: GET /requests lists them
    import sys

    fake = FakeTwilio()
    with fake:
        with open(sys.argv[1], "w") as f:
            f.write(fake.base)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    serve_forever_main()
