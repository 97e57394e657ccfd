"""The China SMS callbacks (Aliyun SMS, Tencent Cloud SMS): inbound SMS (上行) and delivery receipts.

    POST /cnsms/<CNSMS_CALLBACK_SECRET>/<aliyun|tencent>/up        a farmer's SMS to the service number
    POST /cnsms/<CNSMS_CALLBACK_SECRET>/<aliyun|tencent>/report    receipts of the SMS we sent

Neither provider signs its callbacks, so a callback must come to the secret path (404 otherwise, and when no
secret is set) from an allowed address (CNSMS_CALLBACK_ALLOW, CIDRs; 403 otherwise). Both are acknowledged
at once in the provider's own words (Aliyun {"code": 0, "msg": "成功"}, Tencent {"result": 0, "errmsg":
"OK"}). An inbound SMS is answered through the outbox, never in the HTTP answer: in one transaction
(store.db.message_db) its key is looked up (a retried callback changes nothing), respond() answers it as
channel "cnsms", the Reply is put into its approved template (providers/cnsms.py) and queued, and the key is
kept; the per-number daily limit (XNH_CNSMS_DAILY_LIMIT) holds: the last SMS allowed in a day says so,
then nothing more is queued that day. A receipt is matched by the outbox id the SMS carried (Aliyun
`out_id`; Tencent the SessionContext when the receipt carries it, else its `sid`, the SerialNo we kept).
"""
import hmac
import ipaddress
import json
import logging
import sqlite3

from flask import Blueprint, Response, abort, current_app, jsonify, request

from ..handlers.router import respond
from ..message import Message
from ..privacy import mask_phone, normalize_phone
from ..providers import cnsms
from ..store import db as store_db
from ..store import outbox, state
from . import request_db
from .sms import serving_path

logger = logging.getLogger(__name__)
bp = Blueprint("cnsms", __name__)

PROVIDERS = ("aliyun", "tencent")
ACK = {"aliyun": {"code": 0, "msg": "成功"}, "tencent": {"result": 0, "errmsg": "OK"}}
CHANNEL = "cnsms"


@bp.post("/cnsms/<secret>/<provider>/up")
def inbound(secret: str, provider: str):
    """Inbound SMS: each answered through the outbox; acknowledged at once."""
    items = _items(secret, provider)
    path = serving_path()
    settings = current_app.config["SETTINGS"]
    try:
        for item in items:
            phone = normalize_phone(item.get("phone_number") or item.get("mobile") or "")
            text = item.get("content") if provider == "aliyun" else item.get("text")
            if phone and text is not None:
                answer(path, cnsms.inbound_key(provider, item), phone, str(text), settings.cnsms_daily_limit)
    except (sqlite3.Error, OSError) as e:
        if not store_db.is_unavailable(e):
            raise
        logger.warning("china sms not answered: %s", store_db.explain(e, path))
        return Response("busy", status=503, headers={"Retry-After": "5"})  # the provider calls again
    return jsonify(ACK[provider])


@bp.post("/cnsms/<secret>/<provider>/report")
def report(secret: str, provider: str):
    """Delivery receipts: each recorded on its outbox row."""
    db = request_db.get_db()
    for item in _items(secret, provider):
        outbox_id, sid, success, code = _receipt(provider, item)
        status = cnsms.receipt_status(success)
        with store_db.writing(db):
            row = outbox.record_delivery(db, sid, status, None if success else code, outbox_id=outbox_id,
                                         moves_on=lambda old: cnsms.moves_on(status, old))
        if row is None:
            logger.info("receipt for an unknown message %s", sid)
    return jsonify(ACK[provider])


def _receipt(provider: str, item: dict) -> tuple[int | None, str, bool, str]:
    if provider == "aliyun":
        success = item.get("success") in (True, "true", "True", 1)
        return _id(item.get("out_id")), f"aliyun:{item.get('biz_id', '')}", success, str(item.get("err_code") or "")
    ext = item.get("ext")  # the SessionContext, when a receipt carries it back; else the SerialNo decides
    context = item.get("session_context") or (ext.get("SessionContext") if isinstance(ext, dict) else None)
    success = str(item.get("report_status", "")).upper() == "SUCCESS"
    return _id(context), f"tencent:{item.get('sid', '')}", success, str(item.get("errmsg") or "")


def _id(raw) -> int | None:
    raw = str(raw or "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _items(secret: str, provider: str) -> list[dict]:
    """The callback's items, once the path's secret and the caller's address are checked."""
    settings = current_app.config["SETTINGS"]
    if provider not in PROVIDERS or not settings.cnsms_callback_secret \
            or not hmac.compare_digest(secret.encode(), settings.cnsms_callback_secret.encode()):
        abort(404)
    if not allowed(request.remote_addr, settings.cnsms_callback_allow):
        logger.warning("china sms callback from a refused address %s", request.remote_addr)
        abort(403)
    try:
        data = json.loads(request.get_data(cache=False) or b"null")
    except ValueError:
        abort(400)
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        abort(400)
    return items


def allowed(address: str | None, allow: str | None) -> bool:
    """True when `address` is in one of the comma-separated networks of `allow` (no list: every address)."""
    if not allow or not allow.strip():
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    for net in allow.split(","):
        try:
            if net.strip() and ip in ipaddress.ip_network(net.strip(), strict=False):
                return True
        except ValueError:
            logger.warning("CNSMS_CALLBACK_ALLOW holds %r, not a network", net)
    return False


def answer(path: str, key: str, phone: str, text: str, daily_limit: int) -> int | None:
    """Answer one inbound SMS through the outbox (see the module docstring); the outbox row's id, or None
    (a retried callback, or the day's limit reached)."""
    with store_db.message_db(path) as db:
        store_db.begin_write(db)
        if state.processed_reply(db, key) is not None:
            return None
        reply = respond(Message(text=text, sender=phone, channel=CHANNEL, phone=phone), db)
        made, queued = _templated(db, reply, phone, daily_limit), None
        if made is not None:
            queued = outbox.queue_templated(db, kind="reply", ref=f"sms-up:{key}", recipient=phone, channel=CHANNEL,
                                            text=made.text, fields=made.fields())
        state.remember_reply(db, key, phone, made.text if made else "")
        logger.info("china sms from %s → %s", mask_phone(phone), made.key if made else "nothing (daily limit)")
        return queued


def _templated(db, reply, phone: str, daily_limit: int):
    """The approved template for `reply`, the day's-limit notice for the last SMS allowed, or None past it."""
    today = outbox.queued_today(db, phone, CHANNEL)
    if today >= daily_limit:
        return None
    if today == daily_limit - 1:
        return cnsms.make("daily_limit", {})
    try:
        return cnsms.for_reply(reply)
    except cnsms.TemplateProblem:  # a bug in the table: a short help rather than silence
        logger.exception("no approved template carries the reply %s", reply.template)
        return cnsms.make("help", {})
