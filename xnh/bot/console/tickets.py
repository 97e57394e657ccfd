"""The inbox of handoff tickets: questions the bot gave to a person. A clerk's answer goes back on the
channel the question came from, through the one outbox (`outbox.queue_reply`, its own transaction,
idempotent per ticket and recipient), then the ticket is marked answered; an answered ticket takes no
second answer."""
from flask import abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ...store import db as store_db
from ...store import outbox, state
from .. import request_db
from .common import act, bp

STATUSES = {"open": "待回复", "answered": "已回复"}
MAX_ANSWER = 500
PAGE = 50


@bp.get("/tickets")
@login_required
def tickets():
    status = request.args.get("status", "open")
    rows = state.tickets(request_db.get_db(), status if status in STATUSES else None, PAGE)
    return render_template("console/tickets.html", tickets=rows, status=status, statuses=STATUSES)


@bp.get("/tickets/<int:ticket_id>")
@login_required
def ticket(ticket_id: int):
    return render_template("console/ticket.html", t=_get(ticket_id), statuses=STATUSES, max_answer=MAX_ANSWER)


@bp.post("/tickets/<int:ticket_id>/answer")
@login_required
def ticket_answer(ticket_id: int):
    db = request_db.get_db()
    t = _get(ticket_id)
    text = " ".join(request.form.get("answer", "").split())
    if not text or len(text) > MAX_ANSWER:
        return render_template("console/ticket.html", t=t, statuses=STATUSES, max_answer=MAX_ANSWER,
                               error=f"回复不能为空,最多{MAX_ANSWER}个字。", answer=text), 400
    if t["status"] == "open":
        store_db.finish(db)  # queue_reply runs its own transaction (and is idempotent per ticket and recipient)
        try:
            queued = outbox.queue_reply(db, channel=t["channel"], recipient=t["sender"], text=text,
                                        ref=f"ticket:{ticket_id}")
        except outbox.OutboxError as e:
            return render_template("console/ticket.html", t=t, statuses=STATUSES, max_answer=MAX_ANSWER,
                                   error=f"无法发送:{e}", answer=text), 400
        state.answer_ticket(db, ticket_id, text, current_user.name)
        act("ticket_answer", {"ticket": ticket_id, "channel": t["channel"], "outbox": queued})
    return redirect(url_for("console.ticket", ticket_id=ticket_id))


def _get(ticket_id: int) -> dict:
    found = state.ticket(request_db.get_db(), ticket_id)
    if found is None:
        abort(404)
    return found
