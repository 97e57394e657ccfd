"""Local fakes of Aliyun's and Tencent Cloud's SendSms (127.0.0.1 only) for tests.

    with FakeAliyun() as fake:          # ALIYUN_SMS_API_BASE = fake.base; checks the RPC signature
        fake.script["13800009001"] = ["isv.BUSINESS_LIMIT_CONTROL"]   # per phone, in order; then OK
        fake.requests                   # the parameters of each SendSms, in arrival order
    with FakeTencent() as fake:         # TENCENT_SMS_API_BASE = fake.base; the SDK's TC3 call
        fake.requests                   # the JSON bodies of each SendSms

Aliyun answers {"Code": "OK", "BizId": …} (or the scripted Code, HTTP 400 for a refused signature); Tencent
answers {"Response": {"SendStatusSet": [{"SerialNo": …, "SessionContext": …, "Code": "Ok"}]}} (or the scripted
Code in the status set)."""
import itertools
import json
import threading
from urllib.parse import parse_qs

from fake_http import JsonHandler, LocalServer

from xnh.providers.cnsms import aliyun_signature

ALIYUN_KEY, ALIYUN_SECRET = "LTAI-test-key", "aliyun-test-secret"
TENCENT_ID, TENCENT_KEY, TENCENT_APP = "AKID-test", "tencent-test-key", "1400000001"


class _Fake(LocalServer):
    def __init__(self):
        self.script: dict[str, list] = {}
        self.requests: list[dict] = []
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = fake.answer(self.headers, body)
                self.send_json(status, answer)

        self.serve(Handler)

    def step(self, phone: str):
        with self.lock:
            steps = self.script.get(phone)
            return steps.pop(0) if steps else "ok"


class FakeAliyun(_Fake):
    def answer(self, headers, body: bytes) -> tuple[int, dict]:
        params = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        with self.lock:
            self.requests.append(params)
        if params.get("AccessKeyId") != ALIYUN_KEY or params.get("Signature") != aliyun_signature(params, ALIYUN_SECRET):
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "signature"}
        step = self.step(params.get("PhoneNumbers", ""))
        if step == 500:
            return 500, {"Code": "isp.SYSTEM_ERROR"}
        if step != "ok":
            return 200, {"Code": step, "Message": "fake"}
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"{next(self.ids)}^0", "RequestId": "fake"}


class FakeTencent(_Fake):
    def answer(self, headers, body: bytes) -> tuple[int, dict]:
        data = json.loads(body or b"{}")
        with self.lock:
            self.requests.append(data)
        auth = headers.get("Authorization", "")
        if headers.get("X-TC-Action") != "SendSms" or not auth.startswith(f"TC3-HMAC-SHA256 Credential={TENCENT_ID}/"):
            return 200, {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "x"},
                                      "RequestId": "fake"}}
        phone = (data.get("PhoneNumberSet") or [""])[0]
        step = self.step(phone.removeprefix("+86"))
        code = "Ok" if step == "ok" else step
        return 200, {"Response": {"SendStatusSet": [{
            "SerialNo": f"2028:{next(self.ids)}", "PhoneNumber": phone, "Fee": 1,
            "SessionContext": data.get("SessionContext", ""), "Code": code, "Message": "fake", "IsoCode": "CN"}],
            "RequestId": "fake"}}
