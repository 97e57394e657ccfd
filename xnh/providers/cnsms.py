"""SMS inside China (channel "cnsms"): only approved templates go out, Aliyun SMS first and Tencent Cloud SMS
behind the same interface (XNH_CNSMS_PROVIDER). Everything about it is here: the templates (data:
cnsms_templates.toml), choosing one for a Reply and making its variables, checking both against the
providers' rules, sending (Aliyun: a signed RPC call; Tencent: its SDK), what each answer means, and the
delivery-receipt statuses. (The callbacks are xnh/bot/cnsms.py.)

    made = for_reply(reply)                   # Templated(key="estimate", vars={...}, text="县医院住院费用…")
    made = for_fields({"template": "payment_notice", "data": {...}})   # a notice routed here
    sender = CnSmsSender(settings); sender.send(row)     # row["fields"] holds the template and variables
    classify(result)                          # Action("bad_number", …) for isv.MOBILE_NUMBER_ILLEGAL …

A row's `fields` hold {"template": key, "vars": {...}} (made when the row was queued, where the Reply's data
is at hand) or {"template": key, "data": {...}} (a notice's plain fields, made into variables when sent). The
outbox id goes with each SMS (Aliyun `OutId`, Tencent `SessionContext`) and comes back in the receipt.

| answer (Aliyun / Tencent) | what happens |
|---|---|
| Throttling.* / RequestLimitExceeded, InternalError.*, isp.SYSTEM_ERROR, 5xx, timeout | retry with back-off |
| isv.MOBILE_NUMBER_ILLEGAL / InvalidParameterValue.IncorrectPhoneNumber | bad number: never again |
| isv.BLACK_KEY_CONTROL_LIMIT, FailedOperation.PhoneNumberInBlacklist | the number refuses our SMS: opted out |
| isv.BUSINESS_LIMIT_CONTROL, isv.DAY_LIMIT_CONTROL / LimitExceeded.PhoneNumber* | the provider's per-number limit: failed, "per-number limit" |
| a template or variable refused (isv.SMS_TEMPLATE_ILLEGAL, isv.PARAM_LENGTH_LIMIT …) | failed with the code |
"""
import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, StrictUndefined

from ..money import yuan
from ..policy_kb.loader import county, county_cached
from . import segments
from .base import Action, Result, classify_http

TEMPLATES = Path(__file__).with_name("cnsms_templates.toml")
PER_SECOND = 20.0
SIGNATURE = 8  # characters kept for the provider's signature (a county office's name) when counting parts
MAX_TEMPLATE = 500  # characters of a template with its variables (Aliyun)
LIMITS = {"text": (1, 35), "money": (1, 20), "number": (1, 20), "time": (1, 20), "phone": (5, 15)}
KIND_RE = {"money": re.compile(r"\d+(\.\d+)?"), "number": re.compile(r"\d+"), "phone": re.compile(r"[\d-]+")}
# words providers reject in notices (dunning, collection, marketing) or that no variable may carry
REJECTED_WORDS = ("催款", "催缴", "欠费", "逾期", "追缴", "滞纳", "违约", "起诉", "拒收请回复R", "退订回T", "中奖", "贷款")
_VAR = re.compile(r"\$\{(\w+)\}")
_LINK = re.compile(r"https?://|www\.", re.I)
# a receipt's outcome: delivered or not (a later receipt never moves a delivered row back)
DELIVERED, UNDELIVERED = "delivered", "undelivered"


class TemplateProblem(ValueError):
    """A reply or notice that no approved template can carry within the providers' rules."""


@dataclass(frozen=True)
class Templated:
    key: str  # a table of cnsms_templates.toml
    vars: dict  # variable → value, every one checked
    text: str  # the SMS as the phone shows it (without the signature)

    def fields(self) -> str:
        """What an outbox row keeps (JSON)."""
        return json.dumps({"template": self.key, "vars": self.vars}, ensure_ascii=False)


@county_cached
def table() -> dict:
    """The approved templates, the county's names written in (county.toml: they are submitted that way)."""
    import tomllib

    raw = tomllib.loads(TEMPLATES.read_text(encoding="utf-8"))
    names = {"{county}": county()["name"], "{office}": county()["township_office"]}
    gzh = raw["county"]["gzh"]
    for spec in raw["templates"].values():
        text = spec["text"].replace("{gzh}", gzh)
        for placeholder, name in names.items():
            text = text.replace(placeholder, name)
        spec["text"] = text
        spec.setdefault("vars", {})
    return raw["templates"]


def replies_covered() -> set[str]:
    """Every reply template some approved template words."""
    return {name for spec in table().values() for name in spec["replies"]}


@cache
def _env() -> Environment:
    from ..render import month_day, year_month_day

    env = Environment(undefined=StrictUndefined, autoescape=False)
    env.filters.update(yuan=_yuan, md=month_day, ymd=year_month_day, question=_question, subject=_subject,
                       clip=_clip)
    return env


def _yuan(value) -> str:
    return yuan(value) if value not in (None, "") else ""


def _question(topic_id: str) -> str:
    from ..policy_kb import qa

    return qa.by_id(topic_id).question


def _subject(question: str) -> str:
    """A question as the subject of "关于…的政策": without 请问 and its question mark, at most 30 characters."""
    text = re.sub(r"^(请问|问一下|想问)[,，]?", "", (question or "").strip()).rstrip("?？。!！ ")
    return _clip(text or "新农合报销", 30)


def _clip(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- choosing and making ---------------------------------------------------------------------------------

def for_reply(reply) -> Templated:
    """The approved template and variables that carry `reply` (a Reply of respond()), checked."""
    return make(reply.template, {**reply.data, "template": reply.template})


def for_fields(fields: dict) -> Templated:
    """The template a queued row names: its variables as kept, or made now from its notice's data."""
    key = fields.get("template")
    if key in table() and "vars" in fields:
        return build(key, {k: str(v) for k, v in fields["vars"].items()})
    return make(key, {**(fields.get("data") or {}), "template": key})


def make(name: str, data: dict) -> Templated:
    """The first approved template that words reply/notice `name` and whose `when` holds, over `data`."""
    for key, spec in table().items():
        if name in spec["replies"] and (not spec.get("when") or _env().compile_expression(spec["when"])(**data)):
            try:
                values = {var: _render(v["expr"], data) for var, v in spec["vars"].items()}
            except Exception as e:  # noqa: BLE001 - a field missing from the data: say which template
                raise TemplateProblem(f"{key}: {e.__class__.__name__}: {e}") from None
            return build(key, values)
    raise TemplateProblem(f"no approved template words {name!r}")


def _render(expression: str, data: dict) -> str:
    return "".join(line.strip() for line in _env().from_string(expression).render(**data).splitlines()).strip()


def build(key: str, values: dict) -> Templated:
    """Template `key` with `values`, each checked against its kind's rules; the text as the phone shows it."""
    spec = table()[key]
    if set(values) != set(spec["vars"]):
        raise TemplateProblem(f"{key}: variables {sorted(values)} are not {sorted(spec['vars'])}")
    for var, value in values.items():
        problem = value_problem(spec["vars"][var]["kind"], value)
        if problem:
            raise TemplateProblem(f"{key}.{var} = {value!r}: {problem}")
    text = _VAR.sub(lambda m: values[m.group(1)], spec["text"])
    if len(text) > MAX_TEMPLATE:
        raise TemplateProblem(f"{key}: {len(text)} characters, over {MAX_TEMPLATE}")
    return Templated(key, dict(values), text)


def value_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot fill a variable of `kind`, or None."""
    low, high = LIMITS[kind]
    if not low <= len(value) <= high:
        return f"{len(value)} characters ({low}–{high} for {kind})"
    if kind in KIND_RE and not KIND_RE[kind].fullmatch(value):
        return f"not a {kind}"
    if "【" in value or "】" in value or _LINK.search(value) or "${" in value:
        return "brackets, a link or a placeholder"
    if any(word in value for word in REJECTED_WORDS):
        return "a word providers reject"
    return None


def template_problems(key: str) -> list[str]:
    """What in approved template `key` breaks the providers' template rules (empty: none)."""
    spec, found = table()[key], []
    text = spec["text"]
    names = _VAR.findall(text)
    if "【" in text or "】" in text:
        found.append("【】 inside the template (the signature's brackets)")
    if text[:1] in "[]" or text[-1:] in "[]":
        found.append("[ ] at an end of the template")
    if not _VAR.sub("", text).strip(" ,,。:;"):
        found.append("only variables")
    if re.search(r"\}\$\{", text):
        found.append("two variables side by side")
    if len(names) != len(set(names)) or set(names) != set(spec["vars"]):
        found.append(f"variables {names} do not match {sorted(spec['vars'])}")
    if _LINK.search(text):
        found.append("a link (only fixed links may stand in a template, and none is needed)")
    if any(word in text for word in REJECTED_WORDS):
        found.append("a word providers reject in notices")
    longest = len(_VAR.sub("", text)) + sum(LIMITS[v["kind"]][1] for v in spec["vars"].values())
    if longest > MAX_TEMPLATE:
        found.append(f"up to {longest} characters with its variables, over {MAX_TEMPLATE}")
    if not spec.get("aliyun") or not spec.get("tencent"):
        found.append("no provider code")
    return found


# -- sending ---------------------------------------------------------------------------------------------

class CnSmsSender:
    """Sends one templated SMS through the configured provider (XNH_CNSMS_PROVIDER: aliyun | tencent)."""

    def __init__(self, settings, timeout: float = 10.0):
        self.settings, self.timeout = settings, timeout
        self.provider = (settings.cnsms_provider or "").strip().lower()
        self._local = None

    @property
    def configured(self) -> bool:
        return self.settings.cnsms_configured

    def warm(self) -> None:
        if self.provider == "tencent":
            from tencentcloud.sms.v20210111 import sms_client  # noqa: F401

    def send(self, row: dict) -> Result:
        try:
            made = for_fields(json.loads(row.get("fields") or "{}"))
        except TemplateProblem as e:
            return Result(code=f"template: {e}")
        code = table()[made.key][self.provider]
        if self.provider == "tencent":
            return _send_tencent(self.settings, row, code, made, self.timeout)
        return _send_aliyun(self.settings, row, code, made, self.timeout)


def _send_aliyun(settings, row: dict, code: str, made: Templated, timeout: float) -> Result:
    """Aliyun SendSms: an RPC call signed with HMAC-SHA1 over the sorted, percent-encoded parameters."""
    import requests

    params = {"Action": "SendSms", "Version": "2017-05-25", "Format": "JSON", "RegionId": "cn-hangzhou",
              "PhoneNumbers": row["recipient"], "SignName": settings.cnsms_sign_name, "TemplateCode": code,
              "TemplateParam": json.dumps(made.vars, ensure_ascii=False, separators=(",", ":")),
              "OutId": str(row["id"]), "AccessKeyId": settings.aliyun_access_key_id,
              "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex,
              "Timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    params["Signature"] = aliyun_signature(params, settings.aliyun_access_key_secret, "POST")
    try:
        answer = requests.post(settings.aliyun_sms_api_base.rstrip("/") + "/", data=params, timeout=timeout)
    except requests.RequestException:
        return Result(timeout=True)
    try:
        body = answer.json()
    except ValueError:
        return Result(http_status=answer.status_code)
    if body.get("Code") == "OK":
        return Result(sid=f"aliyun:{body.get('BizId')}")
    return Result(http_status=answer.status_code, code=str(body.get("Code")))


def _percent(value: str) -> str:
    return quote(str(value), safe="-_.~")


def aliyun_signature(params: dict, secret: str, method: str = "POST") -> str:
    """Aliyun's RPC signature (SignatureVersion 1.0): HMAC-SHA1 with `secret&` over METHOD&%2F&<the sorted,
    percent-encoded query>, base64."""
    query = "&".join(f"{_percent(k)}={_percent(v)}" for k, v in sorted(params.items()) if k != "Signature")
    to_sign = f"{method}&{_percent('/')}&{_percent(query)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _send_tencent(settings, row: dict, code: str, made: Templated, timeout: float) -> Result:
    """Tencent Cloud SendSms through its SDK (TC3-HMAC-SHA256), at TENCENT_SMS_API_BASE."""
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.sms.v20210111 import models, sms_client

    scheme, _, host = settings.tencent_sms_api_base.partition("://")
    profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme or "https", endpoint=host.rstrip("/"),
                                                    reqTimeout=int(timeout)))
    client = sms_client.SmsClient(credential.Credential(settings.tencent_secret_id, settings.tencent_secret_key),
                                  "ap-guangzhou", profile)
    request = models.SendSmsRequest()
    request.SmsSdkAppId, request.SignName, request.TemplateId = settings.tencent_sms_app_id, settings.cnsms_sign_name, code
    request.PhoneNumberSet = [f"+86{row['recipient']}"]
    request.TemplateParamSet = [made.vars[name] for name in _VAR.findall(table()[made.key]["text"])]
    request.SessionContext = str(row["id"])
    try:
        answer = client.SendSms(request)
    except TencentCloudSDKException as e:
        code_ = e.get_code() or ""
        if code_.startswith("ClientNetworkError") or "timeout" in (e.get_message() or "").lower():
            return Result(timeout=True)
        return Result(code=code_)
    status = answer.SendStatusSet[0]
    if status.Code == "Ok":
        return Result(sid=f"tencent:{status.SerialNo}")
    return Result(code=status.Code)


# -- what an answer means -------------------------------------------------------------------------------

def classify(result: Result) -> Action:
    """What a refused China SMS means (Aliyun's and Tencent's codes)."""
    code = result.code or ""
    if result.timeout or not code:
        return classify_http(result.http_status, code or None, result.timeout)
    if code.startswith("template:"):
        return Action("fail", code)
    if code.startswith(("Throttling", "RequestLimitExceeded")):
        return Action("retry_free", f"provider rate limit ({code})")
    if code.startswith(("InternalError", "isp.SYSTEM_ERROR")):
        return Action("retry", f"provider error {code} (may have been sent)", maybe_sent=True)
    if code in ("isv.MOBILE_NUMBER_ILLEGAL", "InvalidParameterValue.IncorrectPhoneNumber"):
        return Action("bad_number", "bad number")
    if code in ("isv.BLACK_KEY_CONTROL_LIMIT", "FailedOperation.PhoneNumberInBlacklist"):
        return Action("opt_out", f"the number refuses our SMS ({code})")
    if code in ("isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL") or code.startswith("LimitExceeded.PhoneNumber"):
        return Action("fail", f"per-number limit ({code})")
    return Action("fail", f"error {code}")


def parts(text: str) -> int:
    """SMS parts as China's carriers count them (70 characters, 67 a part when longer), the signature's
    brackets and name included (counted by the provider, so a few characters are kept for them)."""
    return segments.count(text + "【" + "字" * SIGNATURE + "】").segments


def receipt_status(success: bool) -> str:
    return DELIVERED if success else UNDELIVERED


def moves_on(status: str, current: str) -> bool:
    """A receipt applies unless the row already has a final receipt."""
    return current not in (DELIVERED, UNDELIVERED)


def inbound_key(provider: str, item: dict) -> str:
    """What identifies one inbound SMS across the provider's retries of its callback."""
    if provider == "aliyun" and item.get("sequence_id") not in (None, ""):
        return f"aliyun:{item['sequence_id']}"
    text = (item.get("content") or item.get("text") or "").encode()
    when = item.get("send_time") or item.get("time") or ""
    phone = item.get("phone_number") or item.get("mobile") or ""
    return f"{provider}:{phone}:{when}:{hashlib.sha1(text).hexdigest()[:12]}"
