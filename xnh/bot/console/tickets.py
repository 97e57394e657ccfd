"""The inbox of handoff tickets: questions the bot gave to a person. A clerk's answer goes back on the
channel the question came from, through the one outbox (`outbox.queue_reply`, its own transaction,
idempotent per ticket and recipient), then the ticket is marked answered; an answered ticket takes no
second answer."""
from flask import abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ...store import db as store_db
from ...store import state
from .. import request_db
from .common import act, bp

STATUSES = {"open": "待回复", "answered": "已回复"}
MAX_ANSWER = 500
PAGE = 50


@bp.get("/tickets")
@login_required
def tickets():
    status = request.args.get("status", "open")
    where, params = ("where status = ?", [status]) if status in STATUSES else ("", [])
    rows = store_db.rows(request_db.get_db(), f"select * from handoff_tickets {where} order by "
                         "status = 'open' desc, id desc limit ?", [*params, PAGE])
    return render_template("console/tickets.html", tickets=rows, status=status, statuses=STATUSES)


@bp.get("/tickets/<int:ticket_id>")
@login_required
def ticket(ticket_id: int):
    return render_template("console/ticket.html", t=_get(ticket_id), statuses=STATUSES, max_answer=MAX_ANSWER)


@bp.post("/tickets/<int:ticket_id>/answer")
@login_required
def ticket_answer(ticket_id: int):
    from ...store import outbox

    db = request_db.get_db()
    t = _get(ticket_id)
    text = " ".join(request.form.get("answer", "").split())
    if not text or len(text) > MAX_ANSWER:
        return render_template("console/ticket.html", t=t, statuses=STATUSES, max_answer=MAX_ANSWER,
                               error=f"回复不能为空,最多{MAX_ANSWER}个字。", answer=text), 400
    if t["status"] == "open":
        db.conn.commit()  # queue_reply runs its own transaction (and is idempotent per ticket and recipient)
        try:
            queued = outbox.queue_reply(db, channel=t["channel"], recipient=t["sender"], text=text,
                                        ref=f"ticket:{ticket_id}")
        except outbox.OutboxError as e:
            return render_template("console/ticket.html", t=t, statuses=STATUSES, max_answer=MAX_ANSWER,
                                   error=f"无法发送:{e}", answer=text), 400
        db.conn.execute("update handoff_tickets set status = 'answered', answer = ?, answered_by = ?, answered_at = ? "
                        "where id = ? and status = 'open'", [text, current_user.name, state.stamp(), ticket_id])
        act("ticket_answer", {"ticket": ticket_id, "channel": t["channel"], "outbox": queued})
    return redirect(url_for("console.ticket", ticket_id=ticket_id))


def _get(ticket_id: int) -> dict:
    found = store_db.rows(request_db.get_db(), "select * from handoff_tickets where id = ?", [ticket_id])
    if not found:
        abort(404)
    return found[0]
