"""A local fake of the WeChat official-account API for tests (127.0.0.1 only): WECHAT_API_BASE = fake.base.

    with FakeWeChat() as fake:
        fake.script["oUSER"] = [45015]     # per openid, in order: an errcode, 500, or "ok"; then "ok"
        fake.expire_tokens()               # every token handed out so far becomes invalid (40001)
        fake.calls                         # [(path, json body), ...] in arrival order
        fake.sent("message/template/send") # the bodies of one API's calls

Answers: POST /cgi-bin/stable_token (a token valid until expire_tokens; the same one while it is valid, as
the stable-token call does with force_refresh false), /cgi-bin/message/custom/send,
/cgi-bin/message/template/send (a msgid), /cgi-bin/message/subscribe/bizsend, /cgi-bin/menu/create. Every
call but the token's must carry a valid access_token (40001 otherwise)."""
import itertools
import json
import threading
from urllib.parse import parse_qs, urlsplit

from fake_http import JsonHandler, LocalServer

APP_ID, SECRET = "wx0123456789abcdef", "test-app-secret"


class FakeWeChat(LocalServer):
    def __init__(self, app_id: str = APP_ID, secret: str = SECRET):
        self.app_id, self.secret = app_id, secret
        self.script: dict[str, list] = {}
        self.calls: list[tuple[str, dict]] = []
        self.token_calls = 0
        self.valid: set[str] = set()
        self.current: str | None = None
        self.ids = itertools.count(1000)
        self.lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_POST(self):
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    data = {}
                status, answer = fake.answer(url.path.removeprefix("/cgi-bin/"), parse_qs(url.query), data)
                self.send_json(status, answer)

        self.serve(Handler)

    def answer(self, api: str, query: dict, data: dict) -> tuple[int, dict]:
        with self.lock:
            self.calls.append((api, data))
            if api == "stable_token":
                self.token_calls += 1
                if data.get("appid") != self.app_id or data.get("secret") != self.secret:
                    return 200, {"errcode": 40125, "errmsg": "invalid appsecret"}
                if self.current not in self.valid or data.get("force_refresh"):
                    self.current = f"TOKEN-{next(self.ids)}"
                    self.valid.add(self.current)
                return 200, {"access_token": self.current, "expires_in": 7200}
            if (query.get("access_token") or [""])[0] not in self.valid:
                return 200, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
            steps = self.script.get(data.get("touser", ""))
            step = steps.pop(0) if steps else "ok"
        if step == 500:
            return 500, {"errcode": -1, "errmsg": "system error"}
        if step != "ok":
            return 200, {"errcode": int(step), "errmsg": f"fake error {step}"}
        if api == "message/template/send":
            return 200, {"errcode": 0, "errmsg": "ok", "msgid": next(self.ids)}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def expire_tokens(self) -> None:
        with self.lock:
            self.valid.clear()

    def sent(self, api: str) -> list[dict]:
        with self.lock:
            return [data for path, data in self.calls if path == api]
