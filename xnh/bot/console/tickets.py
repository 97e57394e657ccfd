"""The inbox of handoff tickets: questions the bot gave to a person (store/tickets.py).

    /console/tickets                 oldest waiting first, 50 a page; search by phone, ticket number or words;
                                     open / answered / all / mine
    /console/tickets/<id>            the thread (each answer with its delivery state and why), 我来处理, answer
    POST …/assign                    我来处理 (or 转给我 from another clerk, or 放下)
    POST …/answer                    the answer goes back on the channel the question came from, through the
                                     outbox, recorded with the ticket in one transaction: a second clerk
                                     answering the same ticket at once is told, and nothing of hers is sent
    POST …/resend                    an answer whose fate is unknown (its worker died) is sent again

A farmer's reply within a day of an answer reopens the ticket (xnh/handlers/policy.py), so it comes
back to the inbox instead of going to the bot."""
from flask import abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ...store import db as store_db
from ...store import outbox, state
from ...store import tickets as store_tickets
from .. import request_db
from .common import act, bp

STATUSES = {"open": "待回复", "answered": "已回复"}
VIEWS = {"open": "待回复", "mine": "我处理的", "answered": "已回复", "all": "全部"}
MAX_ANSWER = 500


@bp.get("/tickets")
@login_required
def tickets():
    view = request.args.get("status", "open")
    view = view if view in VIEWS else "open"
    q = request.args.get("q", "").strip()[:100]
    order = request.args.get("order", "oldest")
    page = max(request.args.get("page", 1, type=int), 1)
    status = {"open": "open", "answered": "answered", "mine": "open"}.get(view)
    rows, total = store_tickets.inbox(request_db.get_db(), status=status, q=q, order=order, page=page,
                                assigned=current_user.name if view == "mine" else None)
    pages = max(-(-total // store_tickets.PAGE), 1)
    return render_template("console/tickets.html", tickets=rows, view=view, views=VIEWS, statuses=STATUSES,
                           q=q, order=order, page=page, pages=pages, total=total)




@bp.get("/tickets/<int:ticket_id>")
@login_required
def ticket(ticket_id: int):
    return _page(_get(ticket_id))


def _page(t: dict, status: int = 200, **extra):
    db = request_db.get_db()
    return render_template("console/ticket.html", t=t, thread=store_tickets.thread(db, t["id"]), statuses=STATUSES,
                           max_answer=MAX_ANSWER, **extra), status


@bp.post("/tickets/<int:ticket_id>/assign")
@login_required
def ticket_assign(ticket_id: int):
    """我来处理 (action=take), 转给我 (take_over: another clerk had it), 放下 (release)."""
    db = request_db.get_db()
    _get(ticket_id)
    action = request.form.get("action", "take")
    if action == "release":
        if store_tickets.unassign(db, ticket_id, current_user.name):
            act("ticket_release", {"ticket": ticket_id})
        return redirect(url_for("console.ticket", ticket_id=ticket_id))
    ok, holder = store_tickets.assign(db, ticket_id, current_user.name, take_over=action == "take_over")
    if not ok:
        return _page(_get(ticket_id), 409, error=f"这个工单已由 {holder} 处理。如需接手,请点“转给我”。")
    act("ticket_assign", {"ticket": ticket_id, **({"from": holder} if action == "take_over" else {})})
    return redirect(url_for("console.ticket", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/answer")
@login_required
def ticket_answer(ticket_id: int):
    db = request_db.get_db()
    t = _get(ticket_id)
    text = " ".join(request.form.get("answer", "").split())
    seen = request.form.get("seen_answers", type=int)
    if not text or len(text) > MAX_ANSWER:
        return _page(t, 400, error=f"回复不能为空,最多{MAX_ANSWER}个字。", answer=text)
    if seen is None:
        seen = t["answers"] or 0
    store_db.finish(db)  # the answer, its outbox row and the audit entry: one transaction of their own
    try:
        with store_db.writing(db):
            if not store_tickets.mark_answered(db, ticket_id, text, current_user.name, seen):
                raise _AnsweredMeanwhile
            queued = outbox.queue_reply_row(db, channel=t["channel"], recipient=t["sender"], text=text,
                                            ref=store_tickets.answer_ref(ticket_id, seen))
            store_tickets.add_answer(db, ticket_id, text, current_user.name, queued)
            state.audit(db, current_user.name, "ticket_answer",
                        {"via": "console", "ticket": ticket_id, "channel": t["channel"], "outbox": queued})
    except _AnsweredMeanwhile:
        now = _get(ticket_id)
        act("ticket_answer_refused", {"ticket": ticket_id, "reason": f"answered by {now['answered_by']}"})
        return _page(now, 409, answer=text, error=f"{now['answered_by']} 已经回复了这个工单(见下方),你的回复没有发送。"
                                                  "如还需补充,请在对方回复后再写。")
    except outbox.OutboxError as e:
        return _page(t, 400, error=f"无法发送:{e}", answer=text)
    return redirect(url_for("console.ticket", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/resend")
@login_required
def ticket_resend(ticket_id: int):
    """Send an answer again whose fate is unknown (its worker died, the provider could not be asked)."""
    db = request_db.get_db()
    _get(ticket_id)
    mine = {m["outbox_id"] for m in store_tickets.thread(db, ticket_id) if m["outbox_id"]}
    ids = [int(i) for i in request.form.getlist("outbox") if i.isdigit() and int(i) in mine]
    if ids:
        n = outbox.resend_unknown(db, ids=ids)
        act("outbox_resend", {"ticket": ticket_id, "rows": n})
    return redirect(url_for("console.ticket", ticket_id=ticket_id))


class _AnsweredMeanwhile(Exception):
    """Another clerk answered the ticket since this one opened it."""


def _get(ticket_id: int) -> dict:
    found = store_tickets.ticket(request_db.get_db(), ticket_id)
    if found is None:
        abort(404)
    return found
