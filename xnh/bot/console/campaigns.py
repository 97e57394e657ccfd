"""Broadcast campaigns from the console: the list, a new campaign with a live preview (the form is
posted to /console/campaigns/preview as the clerk types, and the rendered preview replaces the old
one; without script the 预览 button does the same), send, cancel, resume after a pause, and a campaign's progress, delivery
counts and failures by reason. The campaigns themselves are xnh/broadcast's (`campaigns.*`), the
outbox's counts xnh/store/outbox.py's; this module only translates."""
from flask import abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ... import clock, quiet_hours
from ...broadcast import campaigns as broadcast
from ...broadcast import audience as broadcast_audience
from ...store import campaigns as store_campaigns
from ...store import db as store_db
from ...store import outbox, stats
from .. import request_db
from .common import act, bp
from .words import reason_zh

DEFAULT_WINDOW = quiet_hours.DEFAULT
CHANNELS = {"sms": "短信", "telegram": "Telegram"}


@bp.get("/campaigns")
@login_required
def campaigns():
    db = request_db.get_db()
    return render_template("console/campaigns.html", campaigns=broadcast.list_campaigns(db),
                           unknown=outbox.unknown_rows(db, outside=True))


@bp.post("/outbox/resend")
@login_required
def outbox_resend():
    """Resend payment notices and answers whose fate is unknown (a worker died sending them and the provider
    could not be asked), the ones the clerk ticked."""
    db = request_db.get_db()
    shown = {r["id"] for r in outbox.unknown_rows(db, outside=True)}
    ids = [int(i) for i in request.form.getlist("outbox") if i.isdigit() and int(i) in shown]
    if ids:
        n = outbox.resend_unknown(db, ids=ids)
        act("outbox_resend", {"rows": n})
    return redirect(url_for("console.campaigns"))


@bp.route("/campaigns/new", methods=["GET", "POST"])
@login_required
def campaign_new():
    """GET: the form. POST action=preview: the form again with its preview; action=create: create it."""
    form = _read_form()
    db = request_db.get_db()
    if request.method == "GET":
        return render_template("console/campaign_new.html", form=form, channels=CHANNELS, choices=_choices(db))
    preview, error = _draft(db, form)
    if request.form.get("action") != "create" or error or preview.blockers:
        return render_template("console/campaign_new.html", form=form, channels=CHANNELS, preview=preview,
                               error=error, choices=_choices(db)), 200 if request.form.get("action") != "create" else 400
    store_db.finish(db)  # the campaign's own transaction follows (it writes the audit log itself)
    try:
        campaign_id = broadcast.create(db, name=form["name"], audience=form["audience"], text=form["text"],
                                          channels=tuple(form["channels"]), schedule=form["schedule"] or None,
                                          window=form["window"], actor=current_user.name)
    except ValueError as e:
        return render_template("console/campaign_new.html", form=form, channels=CHANNELS, preview=preview,
                               error=str(e), choices=_choices(db)), 400
    return redirect(url_for("console.campaign", campaign_id=campaign_id))


@bp.post("/campaigns/preview")
@login_required
def campaign_preview():
    """The preview fragment for the live preview (the new-campaign page's script posts the form here)."""
    preview, error = _draft(request_db.get_db(), _read_form())
    return render_template("console/_preview.html", preview=preview, error=error)


@bp.get("/campaigns/<int:campaign_id>")
@login_required
def campaign(campaign_id: int):
    """A campaign: its progress, counts, failures and unknown rows; the preview only before it is sent (a
    preview reads the whole audience). A page of a campaign still sending polls `campaign_poll`."""
    db = request_db.get_db()
    status = _status(db, campaign_id)
    preview = (broadcast.preview(db, campaign_id, current_app.config["SETTINGS"]) if status["status"] == "draft"
               else None)
    return render_template("console/campaign.html", c=status, preview=preview, counts=status["counts"],
                           failures=status["failures"], campaign_id=campaign_id,
                           token=store_campaigns.change_token(db, campaign_id))


@bp.get("/campaigns/<int:campaign_id>/poll")
@login_required
def campaign_poll(campaign_id: int):
    """Whether the campaign changed since the page was drawn: 304 when the ETag the page sends is still its
    change token (one row read, whatever the campaign's size), else 200 with the new token."""
    token = store_campaigns.change_token(request_db.get_db(), campaign_id)
    if token is None:
        abort(404)
    response = jsonify(token=token)
    response.set_etag(token)
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


@bp.post("/campaigns/<int:campaign_id>/send")
@login_required
def campaign_send(campaign_id: int):
    return _apply(campaign_id, broadcast.send)


@bp.post("/campaigns/<int:campaign_id>/cancel")
@login_required
def campaign_cancel(campaign_id: int):
    return _apply(campaign_id, broadcast.cancel)


@bp.post("/campaigns/<int:campaign_id>/resume")
@login_required
def campaign_resume(campaign_id: int):
    """Lift a pause (the worker pauses a campaign after a burst of carrier blocks)."""
    return _apply(campaign_id, broadcast.resume)


@bp.post("/campaigns/<int:campaign_id>/resend")
@login_required
def campaign_resend(campaign_id: int):
    """Resend the rows whose fate is unknown (a worker died while sending them, and the provider could not
    be asked): the clerk decided they did not arrive."""
    return _apply(campaign_id, broadcast.resend_unknown)


def _apply(campaign_id: int, action):
    """Run `action` (broadcast.send, cancel or resume) on a campaign (404 when there is none); it audits
    itself with the clerk's name."""
    db = request_db.get_db()
    _status(db, campaign_id)
    store_db.finish(db)  # the action runs its own transaction
    try:
        action(db, campaign_id, actor=current_user.name)
    except ValueError as e:
        return _refused(campaign_id, e)
    return redirect(url_for("console.campaign", campaign_id=campaign_id))


AUDIENCE_FIELDS = ("year", "paid", "township", "village", "category", "claim_status", "claim_days")


def _read_form() -> dict:
    """The new-campaign form: the audience from its Chinese fields (年度, 缴费情况, 乡镇, 村, 人员类别, 报销状态,
    天数; broadcast.audience.compose) and, when written, the terms typed in 更多条件 (full-width accepted)."""
    f = request.form
    channels = [c for c in f.getlist("channels") if c in CHANNELS] or ["sms"]
    window = (f.get("window_start") or DEFAULT_WINDOW[0], f.get("window_end") or DEFAULT_WINDOW[1])
    chosen = {k: f.get(k, "") for k in AUDIENCE_FIELDS}
    audience = " ".join([broadcast_audience.compose(chosen), *f.get("audience", "").split()]).strip()
    return {"name": f.get("name", "").strip(), "audience": audience, "typed": " ".join(f.get("audience", "").split()),
            "text": f.get("text", "").strip(), "channels": channels, "chosen": chosen,
            "schedule": (f.get("schedule") or "").strip(), "window": window}


def _choices(db) -> dict:
    """The form's lists: townships and their villages, categories, claim statuses (kept with the dashboard's
    figures until the county data changes)."""
    return {**stats.places(db), "statuses": broadcast_audience.CLAIM_STATUSES, "this_year": clock.today().year}


def _draft(db, form: dict):
    """(Preview, None), or (None, what is missing)."""
    if not form["audience"] or not form["text"]:
        return None, "请选择受众(至少一个条件)并填写短信内容。"
    # an unreadable audience or template comes back as a blocker of the preview
    return broadcast.draft_preview(db, audience=form["audience"], text=form["text"],
                                   channels=tuple(form["channels"]), window=form["window"],
                                   schedule=form["schedule"] or None, settings=current_app.config["SETTINGS"]), None


def _status(db, campaign_id: int) -> dict:
    try:
        return broadcast.status(db, campaign_id)
    except ValueError:  # CampaignError: no such campaign
        abort(404)


def _refused(campaign_id: int, error: Exception):
    act("campaign_refused", {"campaign": campaign_id, "reason": str(error)})
    return redirect(url_for("console.campaign", campaign_id=campaign_id, error=str(error)))


@bp.app_template_filter("duration")
def _duration(seconds) -> str:
    seconds = float(seconds or 0)
    if seconds < 60:
        return f"{seconds:.0f} 秒"
    if seconds < 3600:
        return f"{seconds / 60:.1f} 分钟"
    return f"{seconds / 3600:.1f} 小时"


@bp.app_template_filter("exclusion")
def _exclusion(reason: str) -> str:
    return reason_zh(reason)


@bp.app_template_filter("audience_zh")
def _audience_zh(text: str) -> str:
    return broadcast_audience.describe(text or "")


@bp.app_template_filter("zh_part")
def _zh_part(text: str) -> str:
    """The Chinese part of a bilingual message ("中文 / English")."""
    return str(text or "").split(" / ")[0]
