"""WeChat official account, as an outbound provider: customer-service text messages (a clerk's answer to a
follower's question) and template messages / 订阅通知 (payment notices, payment-period notices), through
wechatpy's WeChatClient. WECHAT_APP_ID and WECHAT_APP_SECRET enable it; WECHAT_API_BASE moves every call,
the token fetch included, to a local fake in tests. (The inbound side is xnh/bot/wechat.py.)

    sender = WeChatSender(settings, ledger=store.wechat.Ledger(path))
    sender.send({"id": 7, "recipient": "wx:oABC", "text": "…", "fields": None})          # customer service
    sender.send({"id": 8, "recipient": "wx:oABC", "text": "…",
                 "fields": '{"template": "payment_notice", "data": {...}}'})              # a template notice
    create_menu(settings, ledger)                                                         # `xnh wechat menu`

- The access token lives in the service database (`wechat_tokens`, through the ledger), one for every
  process: read there, fetched with the stable-token call (POST /cgi-bin/stable_token, force_refresh
  false: every process that asks while a token is valid gets the same one, and the plain /cgi-bin/token of
  another program does not invalidate it) when missing or within REFRESH_BEFORE of expiring, and dropped
  and fetched once more when WeChat says it is invalid (40001, 40014, 42001).
- Customer-service messages only go inside WeChat's window (store/wechat.py: 5 within 48 hours of the
  follower's last message, 3 within a minute of a menu click or a follow); outside it the row fails with the
  reason instead of spending a call WeChat would refuse (45015, 45047 mean the same when it happens anyway).
- A template message is `submitted` with provider_sid wxtpl:<msgid>; WeChat's TEMPLATESENDJOBFINISH event
  (POST /wechat) moves it to delivered or failed.

| answer | what happens |
|---|---|
| 45009, 45011, -1, 5xx, timeout | retry with back-off (rate limits, WeChat busy) |
| 43004, 43101, 45015, 45047, 48001 | the follower cannot receive it now (unfollowed, refused, out of the window): failed, never retried |
| 40001, 40014, 42001 | token invalid: fetched again and sent once more in the same attempt |
| anything else | failed, with the code as the reason |
"""
import json
import time
from functools import cache
from pathlib import Path

from ..policy_kb.loader import county
from ..render import env
from .base import Action, Result, classify_http

PER_SECOND = 20.0  # messages a second to WeChat's API (its per-account limits are far higher)
REFRESH_BEFORE = 300.0  # seconds before expiry a token is fetched again
TOKEN_ERRORS = (40001, 40014, 42001)
MAX_TEXT_BYTES = 2048  # a customer-service text message
TEMPLATES = Path(__file__).with_name("wechat_templates.toml")
SHORT_KEYS = ("thing", "name", "phrase")  # subscription-message field kinds of at most 20 characters
SHORT, LONG = 20, 200
TEMPLATE_STATUS = {"success": "delivered", "failed:user block": "undelivered", "failed: system failed": "failed",
                   "failed:system failed": "failed"}

CODES: dict[int, Action] = {
    45009: Action("retry", "WeChat API daily quota reached"),
    45011: Action("retry", "WeChat API rate limit"),
    -1: Action("retry", "WeChat busy (-1)"),
    43004: Action("fail", "not following the official account (43004)"),
    43101: Action("fail", "the follower refused notices (43101)"),
    45015: Action("fail", "outside WeChat's 48-hour window (45015)"),
    45047: Action("fail", "customer-service quota used (45047)"),
    48001: Action("fail", "the account lacks this API (48001)"),
}

MENU = {"button": [
    {"type": "click", "name": "报销估算", "key": "estimate"},
    {"type": "click", "name": "政策问答", "key": "policy"},
    {"name": "查询服务", "sub_button": [
        {"type": "click", "name": "查参合", "key": "enrollment"},
        {"type": "click", "name": "查报销", "key": "claims"},
        {"type": "click", "name": "人工服务", "key": "human"},
    ]},
]}


class NoticeProblem(ValueError):
    """A notice that cannot be worded within WeChat's limits (unknown template, a value too long)."""


def template_sid(msg_id) -> str:
    """The provider_sid a template message is recorded with (its MsgID)."""
    return f"wxtpl:{msg_id}"


@cache
def templates() -> dict:
    import tomllib

    return tomllib.loads(TEMPLATES.read_text(encoding="utf-8"))


def notice_data(name: str, data: dict) -> dict:
    """The template message's data ({"first": {"value": …}, …}) for notice `name` over `data`, each value
    checked against WeChat's length limits (NoticeProblem otherwise)."""
    spec = templates().get(name)
    if spec is None:
        raise NoticeProblem(f"no WeChat template for {name!r}")
    out = {}
    for key, expression in spec["data"].items():
        value = "".join(line.strip() for line in env().from_string(expression).render(**{"county": county(), **data})
                        .splitlines())
        limit = SHORT if key.startswith(SHORT_KEYS) else LONG
        if not value or len(value) > limit:
            raise NoticeProblem(f"{name}.{key} is {len(value)} characters (1–{limit}): {value!r}")
        out[key] = {"value": value}
    return out


def _client_class():
    """wechatpy's WeChatClient at WECHAT_API_BASE, its token kept in the shared ledger (built lazily: the
    worker imports this module whether WeChat is configured or not)."""
    from wechatpy import WeChatClient
    from wechatpy.exceptions import WeChatClientException

    class Client(WeChatClient):
        def __init__(self, app_id, secret, base, ledger, timeout):
            super().__init__(app_id, secret, timeout=timeout, auto_retry=False)
            self.base = base.rstrip("/")
            self.API_BASE_URL = self.base + "/cgi-bin/"
            self.ledger = ledger

        @property
        def access_token(self):
            found = self.ledger.token(self.appid)
            if found and found[1] - time.time() > REFRESH_BEFORE:
                return found[0]
            return self.fetch_access_token()["access_token"]

        def fetch_access_token(self):
            """The stable-token call; the token goes to the shared ledger."""
            res = self._http.post(f"{self.base}/cgi-bin/stable_token", timeout=self.timeout, json={
                "grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                "force_refresh": False})
            res.raise_for_status()
            result = res.json()
            if result.get("errcode"):
                raise WeChatClientException(result["errcode"], result.get("errmsg"), client=self, response=res)
            self.ledger.put_token(self.appid, result["access_token"], time.time() + int(result.get("expires_in", 7200)))
            return result

        def drop_token(self, token):
            self.ledger.forget_token(self.appid, token)

    return Client


class WeChatSender:
    """Sends one WeChat message (recipient "wx:<openid>"): a template notice when the row's fields name one,
    else a customer-service text message inside the follower's window."""

    def __init__(self, settings, ledger=None, timeout: float = 10.0):
        self.app_id, self.secret = settings.wechat_app_id, settings.wechat_app_secret
        self.base, self.ledger, self.timeout = settings.wechat_api_base, ledger, timeout
        self._client = None

    @property
    def configured(self) -> bool:
        return bool(self.app_id and self.secret and self.ledger is not None)

    def client(self):
        if self._client is None:
            self._client = _client_class()(self.app_id, self.secret, self.base, self.ledger, self.timeout)
        return self._client

    def warm(self) -> None:
        self.client()

    def send(self, row: dict) -> Result:
        import requests
        from wechatpy.exceptions import WeChatClientException

        openid = row["recipient"].removeprefix("wx:")
        fields = json.loads(row.get("fields") or "{}")
        if not fields.get("template"):
            why = self.ledger.cs_allowance(openid)
            if why:
                return Result(code=why)
        for attempt in (1, 2):
            client = self.client()
            try:
                token = client.access_token
                if fields.get("template"):
                    return self._template(client, openid, fields)
                client.message.send_text(openid, fit(row["text"]))
                self.ledger.note_cs_sent(openid)
                return Result(sid=f"wxcs:{row['id']}", final="sent")
            except NoticeProblem as e:
                return Result(code=str(e))
            except WeChatClientException as e:
                code = _code(e)
                if code in TOKEN_ERRORS and attempt == 1:
                    client.drop_token(token)
                    continue
                status = getattr(getattr(e, "response", None), "status_code", None)
                return Result(http_status=status if status and status >= 400 else None, code=str(code))
            except (requests.RequestException, TimeoutError, ConnectionError):
                return Result(timeout=True)
        return Result(code="token refused twice")

    def _template(self, client, openid: str, fields: dict) -> Result:
        spec = templates().get(fields["template"]) or {}
        data = notice_data(fields["template"], fields.get("data") or {})
        if spec.get("kind") == "subscribe":
            result = client.message.send_subscribe_message(openid, spec["template_id"], data)
        else:
            result = client.message.send_template(openid, spec["template_id"], data, url=spec.get("url"))
        return Result(sid=template_sid(result.get("msgid")))


def _code(error) -> int | None:
    try:
        return int(error.errcode)
    except (TypeError, ValueError):
        return None


def classify(result: Result) -> Action:
    """What a refused WeChat message means."""
    if result.code is not None and not result.timeout:
        try:
            known = CODES.get(int(result.code))
        except ValueError:  # our own reason (outside the window, a notice too long)
            return Action("fail", result.code)
        if known:
            return known
    return classify_http(result.http_status, result.code, result.timeout)


def parts(text: str) -> int:
    """A WeChat message costs one send, whatever its length."""
    return 1


def fit(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (WeChat's limit for a text message, passive or
    customer-service), with an ellipsis when something was cut."""
    if len(text.encode("utf-8")) <= limit:
        return text
    cut = text.encode("utf-8")[: limit - 3].decode("utf-8", errors="ignore")
    return cut.rstrip() + "…"


def create_menu(settings, ledger) -> dict:
    """Create the official account's menu (MENU) through the API; returns WeChat's answer."""
    sender = WeChatSender(settings, ledger=ledger)
    if not sender.configured:
        raise NoticeProblem("WECHAT_APP_ID and WECHAT_APP_SECRET are needed to create the menu")
    return sender.client().menu.create(MENU)
