"""The WeChat official account adapter (公众号, wechatpy): GET /wechat (the server check: echostr) and
POST /wechat (messages and events, answered with a passive reply). Enabled by WECHAT_TOKEN; otherwise 404.
It only translates: check the signature, decrypt (safe mode), parse_message, build a Message, call
respond(), put the words in a passive reply XML.

- Every request must carry `signature` = sha1 of the sorted WECHAT_TOKEN, timestamp and nonce (403
  otherwise). In safe mode (`encrypt_type=aes`, WECHAT_AES_KEY and WECHAT_APP_ID set) the body is also
  checked against `msg_signature` and decrypted, and the reply is encrypted the same way.
- Senders are `wx:<openid>`. A 公众号 gives no phone number: a follower proves identity with
  "查询 身份证号 姓名" (the same check as SMS, handlers/lookup.py) and is then bound to the proven member's
  registered phone (`bindings`, channel "wechat", as a Telegram user's shared phone is), so 查参合/查报销
  answer as from that phone afterwards. Unfollowing removes the binding.
- Text, and voice messages carrying WeChat's speech recognition (`Recognition`), go through respond() the
  same way (the same normalisation); a voice message without it gets a request to type or to call at the
  office; images, stickers, videos, locations and links get a short help.
- Menu clicks (the menu `xnh wechat menu` creates: MENU) answer like typing 查参合/查报销/人工, or prompt.
- WeChat retries a message it has no answer to within 5 s, three times: the reply is kept by MsgId
  (store/wechat.py; events by sender and CreateTime) in the same transaction as everything its answer
  wrote, so a retry gets the very same reply without running the handlers again.
- A template message's delivery (the TEMPLATESENDJOBFINISH event) is recorded on its outbox row.
"""
import hmac
import logging
import re
import sqlite3
import time

from flask import Blueprint, Response, abort, current_app, request
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from .. import render
from ..handlers import lookup
from ..handlers.router import respond
from ..message import Message, Reply
from ..privacy import mask_phone
from ..providers import wechat as provider
from ..store import county
from ..store import db as store_db
from ..store import outbox, state
from ..store import wechat as store
from .sms import serving_path, xml_safe

logger = logging.getLogger(__name__)
bp = Blueprint("wechat", __name__)

MAX_REPLY_BYTES = 2048  # a passive text reply's Content, in UTF-8 bytes
MENU_WORDS = {"enrollment": "查参合", "claims": "查报销", "human": "人工"}  # a click = typing these
MENU_PROMPTS = {"estimate": "prompt_estimate", "policy": "prompt_policy"}  # templates/wechat/<name>.txt
_SIGNED = ("signature", "timestamp", "nonce")


@bp.get("/wechat")
def check_server():
    """WeChat's server check: echo `echostr` when the signature is right, else 403."""
    _check_signature(_token())
    return Response(request.args.get("echostr", ""), mimetype="text/plain")


@bp.post("/wechat")
def inbound():
    """A message or event: a passive reply (text), or "success" when there is nothing to say."""
    token = _token()
    _check_signature(token)
    crypto = _crypto(token) if request.args.get("encrypt_type") == "aes" else None
    body = request.get_data(cache=False)
    try:
        xml = crypto.decrypt_message(body, request.args.get("msg_signature", ""), request.args["timestamp"],
                                     request.args["nonce"]) if crypto else body
        message = parse_message(xml)
    except (InvalidSignatureException, InvalidAppIdException):
        logger.warning("bad msg_signature or AppID on /wechat")
        abort(403)
    except Exception as e:  # noqa: BLE001 - not XML, not WeChat's, or not decryptable: nothing to answer
        logger.warning("unreadable WeChat message: %s: %s", e.__class__.__name__, e)
        abort(400)
    if message is None or not message.source:
        abort(400)
    started = time.perf_counter()
    text = answer(serving_path(), message)
    logger.debug("wechat %s answered in %.0f ms", message.type, (time.perf_counter() - started) * 1000)
    if not text:
        return Response("success", mimetype="text/plain")
    xml_out = passive_reply(message, text)
    if crypto:
        xml_out = crypto.encrypt_message(xml_out, request.args["nonce"], request.args["timestamp"])
    return Response(xml_out, mimetype="application/xml")


def _token() -> str:
    token = current_app.config["WECHAT_TOKEN"]
    if not token:
        abort(404)
    return token


def _check_signature(token: str) -> None:
    """403 unless `signature` is the sha1 of the sorted token, timestamp and nonce."""
    signature, timestamp, nonce = (request.args.get(k, "") for k in _SIGNED)
    if not (signature and timestamp and nonce and hmac.compare_digest(sign(token, timestamp, nonce).encode(),
                                                                       signature.encode())):
        logger.warning("bad WeChat signature on %s %s", request.method, request.path)
        abort(403)


def sign(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's request signature: sha1 of the token, timestamp and nonce, sorted and joined."""
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    return signer.signature


def _crypto(token: str) -> WeChatCrypto:
    key, app_id = current_app.config["WECHAT_AES_KEY"], current_app.config["WECHAT_APP_ID"]
    if not (key and app_id):
        logger.warning("a safe-mode message, but WECHAT_AES_KEY or WECHAT_APP_ID is not set")
        abort(403)
    return WeChatCrypto(token, key, app_id)


# -- answering -------------------------------------------------------------------------------------------

def message_key(message) -> str:
    """What identifies one inbound message across WeChat's retries: its MsgId, or for an event (which has
    none) the sender and CreateTime, as WeChat's documentation says (and the event's kind: a follow and an
    unfollow within one second are two events)."""
    if message.type != "event" and message.id:
        return str(message.id)
    return f"{message.source}:{message.time}:{getattr(message, 'event', '')}"


def answer(path: str, message) -> str:
    """The reply text for one message or event ("" for none), computed once per message_key: one unit of
    work on the message connection (store.db.message_db), as the SMS webhook answers. A database that stays
    locked past the message's wait gets a short "busy" reply (not kept): WeChat's retry, or the
    follower's next message, answers afresh."""
    key = message_key(message)
    try:
        with store_db.message_db(path) as db:
            store_db.begin_write(db)
            done = store.reply_for(db, key)
            if done is not None:
                return done
            text = provider.fit(handle(db, message), MAX_REPLY_BYTES)
            store.remember_reply(db, key, f"wx:{message.source}", text)
            return text
    except (sqlite3.Error, OSError) as e:
        if not store_db.is_unavailable(e):
            raise
        logger.warning("wechat message not answered: %s", store_db.explain(e, path))
        return words("busy")


def handle(db, message) -> str:
    """What one message or event says back (inside the message's transaction)."""
    openid, kind = message.source, message.type
    sender = f"wx:{openid}"
    if kind == "event":
        return _event(db, message, sender)
    store.note_interaction(db, openid, "message")
    if kind == "text":
        return _respond(db, sender, message.content or "")
    if kind == "voice":
        heard = (getattr(message, "recognition", None) or "").strip()
        return _respond(db, sender, heard) if heard else words("voice_unreadable")
    return words("media")  # images, stickers, videos, locations, links, files


def _event(db, message, sender: str) -> str:
    event, openid = (message.event or "").lower(), message.source
    if event in ("subscribe", "subscribe_scan"):
        store.set_following(db, openid, True)
        store.note_interaction(db, openid, "event")
        return words("welcome")
    if event == "unsubscribe":
        store.set_following(db, openid, False)
        state.unbind(db, sender)
        return ""
    if event == "click":
        store.note_interaction(db, openid, "event")
        key = (message.key or "").strip()
        if key in MENU_PROMPTS:
            return words(MENU_PROMPTS[key])
        if key in MENU_WORDS:
            return _respond(db, sender, MENU_WORDS[key])
        return words("help", reason="")  # a key from an older menu
    if event == "templatesendjobfinish":
        _template_finished(db, message)
    return ""


def _template_finished(db, message) -> None:
    """A template message's delivery: record it on its outbox row (sent as provider_sid wxtpl:<MsgID>)."""
    status = (getattr(message, "status", "") or "").lower()
    sid = provider.template_sid(message.id)
    outcome = provider.TEMPLATE_STATUS.get(status, "failed")
    outbox.record_delivery(db, sid, outcome, None if outcome == "delivered" else status[:60],
                           moves_on=lambda old: old not in ("delivered", "undelivered"))


def _respond(db, sender: str, text: str) -> str:
    phone = state.bound_phone(db, sender)
    reply = respond(Message(text=text, sender=sender, channel="wechat", phone=phone), db)
    words_ = reply.text
    if phone is None:
        bound = _bind_after_identity(db, sender, text, reply)
        if bound:
            words_ += "\n\n" + words("bound", phone=mask_phone(bound))
    return words_


def _bind_after_identity(db, sender: str, text: str, reply: Reply) -> str | None:
    """When this message proved identity (查询 身份证号 姓名 accepted: the sender is now verified for the
    member's household), bind the follower to that member's registered phone; returns the phone."""
    if reply.intent not in ("claim_status", "enrollment") or reply.template in ("verify_failed", "verify_locked",
                                                                                  "verify_bad_number", "ask_identity"):
        return None
    identity = lookup.parse_identity(re.sub(r"\s+", " ", text))
    household = state.verified_household(db, sender)
    if not identity or not identity[1] or not household:
        return None
    member = county.member_by_id_number(db, identity[0])
    if not member or member["household_id"] != household or member["name"] != identity[1] or not member["phone"]:
        return None
    state.bind(db, sender, member["phone"], "wechat")
    return member["phone"]


def words(name: str, **data) -> str:
    """The adapter's own messages (welcome, prompts, binding), from templates/wechat/<name>.txt."""
    return render.render(Reply("help", name, data), "wechat")


# -- the passive reply --------------------------------------------------------------------------------------

def cdata_safe(text: str) -> str:
    """`text` for a CDATA section: without what XML cannot carry, and with `]]>` split across two sections."""
    return xml_safe(text).replace("]]>", "]]]]><![CDATA[>")


def passive_reply(message, text: str) -> str:
    """The passive reply XML: a text message to the sender (ToUserName = their openid)."""
    return TextReply(message=message, content=cdata_safe(text)).render()
