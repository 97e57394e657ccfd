"""The question radar and the office's own answers in the console (xnh/radar.py, store/local_answers.py).

    /console/radar                  open tickets grouped by what they ask, biggest and oldest first, with
                                    their villages; how many tickets a saved answer would have answered
    /console/radar/group?key=…      one group: its tickets, one answer to all of them; an admin may save it
                                    as a local entry (question, the words people used, the answer)
    /console/answers                the local entries: listed; edited, retired and restored by an admin;
                                    exported as the knowledge base's TOML
Every action is in the audit log with the clerk's name."""
from flask import Response, abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ... import clock, radar
from ...store import db as store_db
from ...store import local_answers
from .. import request_db
from .common import act, bp, role_required


@bp.get("/radar", endpoint="radar")
@login_required
def radar_page():
    db = request_db.get_db()
    return render_template("console/radar.html", groups=radar.groups(db), figure=radar.figure(db))


@bp.get("/radar/group")
@login_required
def radar_group():
    return _group_page(_group(request.args.get("key", "")))


def _group_page(g, status: int = 200, **extra):
    return render_template("console/radar_group.html", g=g, today=clock.today().isoformat(), **extra), status


@bp.post("/radar/group")
@login_required
def radar_answer():
    """One answer to every ticket of the group the clerk saw; with `save` (admins), the answer is kept as a
    local entry too, and the bot gives it from now on."""
    db = request_db.get_db()
    key = request.form.get("key", "")
    seen = []
    for item in request.form.getlist("ticket"):
        ticket_id, _, answers = item.partition(":")
        if ticket_id.isdigit() and answers.isdigit():
            seen.append((int(ticket_id), int(answers)))
    text = " ".join(request.form.get("answer", "").split())
    g = radar.group(db, key)
    if not text or len(text) > local_answers.MAX_ANSWER:
        return _group_page(g, 400, error=f"回复不能为空,最多{local_answers.MAX_ANSWER}个字。", answer=text)
    if g is not None:  # only the tickets of the group as it is now, as the clerk saw them
        mine = {t["id"] for t in g.tickets}
        seen = [(i, a) for i, a in seen if i in mine]
    saving = request.form.get("save") == "1"
    if saving and not current_user.is_admin:
        abort(403)
    store_db.finish(db)
    answered, left = radar.answer_group(db, seen, text, current_user.name) if seen else ([], [])
    entry = None
    if saving and g is not None:
        phrasings = [p for p in request.form.get("phrasings", "").splitlines() if p.strip()]
        try:
            entry = radar.save_local(db, g, question=request.form.get("question", "") or g.question,
                                     phrasings=phrasings, answer=text, actor=current_user.name)
        except local_answers.LocalAnswerError as e:
            return _group_page(radar.group(db, key), 400, error=str(e), answer=text)
    return render_template("console/radar_done.html", answered=answered, left=left, entry=entry)


@bp.get("/answers")
@login_required
def answers():
    status = request.args.get("status")
    return render_template("console/answers.html", entries=local_answers.entries(request_db.get_db(), status),
                           status=status)


@bp.route("/answers/<int:entry_id>", methods=["GET", "POST"])
@login_required
def answer_entry(entry_id: int):
    """GET: the entry; POST (admins): edit it, or retire / restore it (action=retire|restore)."""
    db = request_db.get_db()
    entry = local_answers.get(db, entry_id)
    if entry is None:
        abort(404)
    if request.method == "GET":
        return render_template("console/answer.html", e=entry)
    if not current_user.is_admin:
        abort(403)
    action = request.form.get("action", "edit")
    try:
        if action in ("retire", "restore"):
            local_answers.retire(db, entry_id, current_user.name, active=action == "restore")
        else:
            local_answers.update(db, entry_id, question=request.form.get("question", ""),
                                 phrasings=request.form.get("phrasings", "").splitlines(),
                                 answer=request.form.get("answer", ""), actor=current_user.name)
    except local_answers.LocalAnswerError as e:
        store_db.finish(db, failed=True)
        return render_template("console/answer.html", e={**entry, **request.form}, error=str(e)), 400
    return redirect(url_for("console.answer_entry", entry_id=entry_id))


@bp.get("/answers/export.toml")
@role_required("admin")
def answers_export():
    """The active entries as the knowledge base's TOML (xnh/policy_kb/qa/*.toml)."""
    db = request_db.get_db()
    text = radar.export_toml(local_answers.entries(db, "active"))
    act("local_answer_export", {"rows": text.count("[[topics]]")})
    return Response(text, mimetype="application/toml; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=local_answers.toml"})


def _group(key: str):
    g = radar.group(request_db.get_db(), key)
    if g is None:
        abort(404)
    return g
