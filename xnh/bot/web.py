"""The web simulator: GET / shows a phone-like chat page; POST /api/simulate {phone, text} sends the
text through respond() exactly as an SMS from that phone would go, and returns the SMS reply with
the parts it would cost. No credentials: this is what a newcomer sees after `xnh serve`.

The page is for a demo county (synthetic households): the simulator answers as whichever phone
number is typed into it, so by default (XNH_SIMULATOR=auto) it is served only while the database
holds nothing but the demo county; a real `xnh sync` turns it off. XNH_SIMULATOR=on/off forces it.
"""
import logging

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from .. import demo
from ..store import county
from ..store import db as store_db
from ..handlers.router import respond
from ..message import Message
from ..privacy import mask_name, normalize_phone
from ..providers import segments

logger = logging.getLogger(__name__)
bp = Blueprint("web", __name__)

MAX_TEXT = 1600
DEMO_PHONES = 12


@bp.get("/")
def page():
    """The simulator page, with the demo households' phones to pick from."""
    off = _off()
    if off:
        return Response(f"<!doctype html><meta charset=utf-8><title>模拟器已关闭 / simulator off</title><p>{off}",
                        status=404, mimetype="text/html")
    return render_template("web/simulator.html", phones=demo_phones(store_db.thread_db(_demo_path())))


@bp.post("/api/simulate")
def simulate():
    """{phone, text} → {reply, segments, chars, encoding, intent}."""
    off = _off()
    if off:
        return _bad(off, 404)
    data = request.get_json(silent=True) if request.is_json else None
    if not isinstance(data, dict):
        return _bad("send JSON: {\"phone\": \"13800000001\", \"text\": \"...\"}", 415 if data is None else 400)
    phone, text = normalize_phone(str(data.get("phone") or "")), data.get("text")
    if not phone.isdigit() or not 5 <= len(phone) <= 15:
        return _bad("phone must be 5 to 15 digits")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return _bad(f"text must be a string of at most {MAX_TEXT} characters")
    with store_db.message_db(_demo_path()) as db:  # as the SMS webhook answers, from the demo database
        reply = respond(Message(text=text, sender=phone, channel="web", phone=phone), db)
    words = segments.fit(reply.text)
    parts = segments.count(words)
    return jsonify(reply=words, intent=reply.intent, segments=parts.segments, chars=parts.chars,
                   encoding=parts.encoding)


def demo_phones(db, limit: int = DEMO_PHONES) -> list[dict]:
    """[{phone, label}] for the first households' phones, labelled with a masked name (户主 first)."""
    found = {}
    for phone, name, relation in county.phones(db, limit * 4):
        if phone not in found and len(found) < limit:
            found[phone] = f"{'户主 ' if relation == '户主' else ''}{mask_name(name)}"
    return [{"phone": phone, "label": label} for phone, label in found.items()]


SYNCED_TEXT = ("模拟器已关闭:这里已导入县里的真实数据,是正式服务,演示用的模拟器(只有演示县的虚构数据)不再开放。"
            "请用短信或 Telegram 提问。 / The simulator is off: real county data has been synced, so this address "
            "is a live service and no longer shows the demo (fictional demo county data only). Ask by SMS or Telegram; "
            "XNH_SIMULATOR=on shows the demo anyway.")
SWITCHED_OFF_TEXT = "模拟器已关闭(XNH_SIMULATOR=off)。 / The simulator is switched off here (XNH_SIMULATOR=off)."


def _demo_path() -> str:
    return demo.ensure(current_app.config["DB_PATH"])


def _off() -> str | None:
    """Why the simulator is not served (XNH_SIMULATOR=off, or auto and real county data is synced), or None."""
    mode = current_app.config["SIMULATOR"]
    if mode == "auto":
        return SYNCED_TEXT if store_db.has_county_data(current_app.config["DB_PATH"]) else None
    return None if mode else SWITCHED_OFF_TEXT


def _bad(why: str, status: int = 400):
    return jsonify(error=why), status
