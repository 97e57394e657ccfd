"""The Twilio SMS adapter: POST /sms (inbound messages, answered with TwiML) and POST /sms/status
(delivery callbacks for the messages we sent). It only translates: check X-Twilio-Signature, turn
the form into a Message, call respond(), put the words in TwiML.

Every request must carry a valid X-Twilio-Signature computed with TWILIO_AUTH_TOKEN over the URL
Twilio called (XNH_PUBLIC_URL + path when the service sits behind a proxy, else the request URL);
anything else gets 403, and so does everything when no token is configured.

Twilio retries a webhook that timed out or failed: an inbound MessageSid is kept in processed_messages
with its reply, written in the same transaction as everything its answer wrote, so a retry never runs
the handlers twice and gets the very reply the first delivery got, and a failure half-way leaves nothing.
"""
import hmac
import logging
import re
import sqlite3
from urllib.parse import parse_qsl

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.datastructures import MultiDict

from .. import demo
from ..broadcast import outcomes
from ..handlers.router import respond
from ..message import Message
from ..privacy import mask_phone, normalize_phone
from ..providers import segments, twilio
from ..store import db as store_db
from ..store import outbox, state
from . import request_db

logger = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)

RETRY_AFTER = "5"  # seconds Twilio is asked to wait before it retries a refused message
_MAX_ROWID = (1 << 63) - 1
# XML 1.0 cannot carry these at all, escaped or not
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@bp.post("/sms")
def inbound():
    """Twilio's inbound-message webhook: one TwiML <Message> with the reply."""
    form = signed_form()
    phone = normalize_phone(form.get("From", ""))
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    message = Message(text=form.get("Body", ""), sender=phone or "unknown", channel="sms", phone=phone or None)
    try:
        text = answer(serving_path(), sid, message)
    except (sqlite3.Error, OSError) as e:
        if not store_db.is_unavailable(e):
            raise
        # the service file stayed locked past the message's wait (another process writing it), or its disk
        # is full: nothing was stored, so Twilio's retry answers afresh
        logger.warning("sms %s not answered: %s", mask_phone(phone or "unknown"), store_db.explain(e, serving_path()))
        return Response("busy", status=503, headers={"Retry-After": RETRY_AFTER})
    return Response(twiml(text), mimetype="text/xml")


@bp.post("/sms/status")
def status_callback():
    """Twilio's delivery callback: record the status (and error code) on the outbound message."""
    form = signed_form()
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not sid or status not in twilio.STATUS_RANK:
        abort(400)
    db = request_db.get_db()
    if not record_status(db, sid, status, form.get("ErrorCode") or None, _outbox_id(request.args.get("outbox", ""))):
        logger.info("status %s for unknown message %s", status, sid)
    return Response(status=204)


def _outbox_id(raw: str) -> int | None:
    """The outbox id of a StatusCallback URL, or None when it is not one (then the MessageSid decides)."""
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _MAX_ROWID:
        return None
    return int(raw)


def serving_path() -> str:
    """DB_PATH, or the demo county's database while DB_PATH holds no county data (with DEMO on)."""
    path = current_app.config["DB_PATH"]
    return demo.serving_path(path) if current_app.config["DEMO"] else path


def answer(path: str, sid: str, message: Message) -> str:
    """The reply text for one inbound message, computed once per MessageSid.

    One transaction on the message connection (store.db.message_db: one message at a time per process),
    taken with the service file's write lock first (store.db.begin_write; never the county file's, which
    a sync holds): look the MessageSid up, answer, keep the reply with it, commit. A retry of the same
    MessageSid in this process waits for the lock, in another process for SQLite's write lock; either way
    it then finds the reply. A failure half-way rolls everything back, so the retry answers afresh."""
    with store_db.message_db(path) as db:
        if not sid:  # not from Twilio's webhook as such, but answer it all the same
            return _reply_text(message, db)
        store_db.begin_write(db)
        done = state.processed_reply(db, sid)
        if done is not None:
            return done
        text = _reply_text(message, db)
        state.remember_reply(db, sid, message.sender, text)
        return text


def _reply_text(message: Message, db) -> str:
    reply = respond(message, db)
    text = segments.fit(reply.text)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("sms %s → %s, %d part(s)", mask_phone(message.sender), reply.intent,
                     segments.count(text).segments)
    return text


def twiml(text: str) -> str:
    """A TwiML document with one <Message> holding `text`, escaped; characters XML cannot carry are dropped."""
    resp = MessagingResponse()
    resp.message(xml_safe(text))
    return str(resp)


def xml_safe(text: str) -> str:
    """`text` without what XML 1.0 cannot carry, and with XML's own line ends (\\r\\n and \\r → \\n)."""
    return _NOT_XML.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def record_status(db, sid: str, status: str, error_code: str | None, outbox_id: int | None = None) -> bool:
    """Apply a delivery callback to the outbox row `outbox_id` (from the StatusCallback URL), else the one
    sent as `sid`; False when no such message. A late callback never moves a message back (a 'sent'
    arriving after 'delivered' is kept as history only). An error code acts as Twilio's table says
    (providers/twilio.py; carried out by broadcast/outcomes.py, as for the worker's own answers)."""
    new = twilio.OUTBOX_STATUS[status]
    failed = new in twilio.NOT_DELIVERED
    action = twilio.classify(code=error_code) if error_code else None
    with store_db.writing(db):
        row = outbox.record_delivery(db, sid, status, error_code, outbox_id=outbox_id, apply=new,
                                     reason=action.reason if action and failed else None,
                                     moves_on=lambda old: twilio.moves_on(status, old))
        if row and action and failed:
            outcomes.apply_to_number(db, row, action, error_code)
    return row is not None


def signed_form() -> MultiDict:
    """The form Twilio posted, once its X-Twilio-Signature is checked (403 otherwise)."""
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        abort(403)
    validator, url, form = RequestValidator(token), signed_url(), _posted_form()
    # the usual case costs one HMAC; validate() then also tries the URL with and without its port
    if not (hmac.compare_digest(validator.compute_signature(url, form).encode(), signature.encode())
            or validator.validate(url, form, signature)):
        logger.warning("bad X-Twilio-Signature on %s", request.path)
        abort(403)
    return form


def _posted_form() -> MultiDict:
    """Twilio's application/x-www-form-urlencoded body (a few hundred bytes), parsed straight from the
    body: werkzeug's general form parser (multipart, streaming) costs ~40 µs more per request.
    The body size is capped by MAX_CONTENT_LENGTH (xnh/app.py)."""
    body = request.get_data(cache=False, parse_form_data=False).decode("latin-1")
    return MultiDict(parse_qsl(body, keep_blank_values=True, encoding="utf-8", errors="replace"))


def signed_url() -> str:
    """The URL Twilio signed: XNH_PUBLIC_URL + path (+ query) when set, else the request URL."""
    base = current_app.config["PUBLIC_URL"]
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")
