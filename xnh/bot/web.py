"""The web simulator: GET / shows a phone-like chat page; POST /api/simulate {phone, text} sends the
text through respond() exactly as an SMS from that phone would go, and returns the SMS reply with
the parts it would cost. No credentials: this is what a newcomer sees after `xnh serve`.

The page is for a demo county (synthetic households): the simulator answers as whichever phone
number is typed into it, so by default (XNH_SIMULATOR=auto) it is served only while the database
holds nothing but the demo county; a real `xnh sync` turns it off. XNH_SIMULATOR=on/off forces it.
"""
import logging

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from .. import demo
from ..store import db as store_db
from ..handlers.router import respond
from ..message import Message
from ..privacy import mask_name, normalize_phone
from . import request_db, segments

logger = logging.getLogger(__name__)
bp = Blueprint("web", __name__)

MAX_TEXT = 1600
DEMO_PHONES = 12


@bp.get("/")
def page():
    """The simulator page, with the demo households' phones to pick from."""
    _require_enabled()
    return render_template("web/simulator.html", phones=demo_phones(request_db.get_db()))


@bp.post("/api/simulate")
def simulate():
    """{phone, text} → {reply, segments, chars, encoding, intent}."""
    _require_enabled()
    data = request.get_json(silent=True) if request.is_json else None
    if not isinstance(data, dict):
        return _bad("send JSON: {\"phone\": \"13800000001\", \"text\": \"...\"}", 415 if data is None else 400)
    phone, text = normalize_phone(str(data.get("phone") or "")), data.get("text")
    if not phone.isdigit() or not 5 <= len(phone) <= 15:
        return _bad("phone must be 5 to 15 digits")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return _bad(f"text must be a string of at most {MAX_TEXT} characters")
    with store_db.message_db(current_app.config["DB_PATH"]) as db:  # as the SMS webhook answers
        reply = respond(Message(text=text, sender=phone, channel="web", phone=phone), db)
    words = segments.fit(reply.text)
    parts = segments.count(words)
    return jsonify(reply=words, intent=reply.intent, segments=parts.segments, chars=parts.chars,
                   encoding=parts.encoding)


def demo_phones(db, limit: int = DEMO_PHONES) -> list[dict]:
    """[{phone, label}] for the first households' phones, labelled with a masked name (户主 first)."""
    rows = db.execute("select phone, name, relation from members where phone is not null and phone != '' "
                      "order by household_id, relation != '户主', member_id limit ?", [limit * 4])
    found = {}
    for phone, name, relation in rows:
        if phone not in found and len(found) < limit:
            found[phone] = f"{'户主 ' if relation == '户主' else ''}{mask_name(name)}"
    return [{"phone": phone, "label": label} for phone, label in found.items()]


def _require_enabled():
    """The simulator answers as whatever phone is typed in: with real county data that would show
    anyone's claims, so in "auto" mode it exists only while the database is the demo county."""
    mode = current_app.config["SIMULATOR"]
    if mode == "auto":
        mode = demo.is_demo_only(request_db.get_db())
    if not mode:
        abort(404)


def _bad(why: str, status: int = 400):
    return jsonify(error=why), status
