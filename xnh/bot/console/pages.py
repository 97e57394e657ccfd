"""The dashboard (charts of the county data) and the audit log."""
import json

from flask import redirect, render_template, request, url_for
from flask_login import login_required

from ...policy_kb.claim_status import COUNTED
from ...policy_kb.loader import levels
from ...store import state, stats
from .. import request_db
from . import charts
from .common import bp

AUDIT_PAGE = 50


@bp.get("")
def root():
    return redirect(url_for("console.dashboard"))


@bp.get("/")
@login_required
def dashboard():
    """The county's figures (store/stats.py: SQL aggregates, kept until the county data changes)."""
    db = request_db.get_db()
    years = stats.years(db)
    year = request.args.get("year", type=int) or stats.default_year(db)
    data = stats.summary(db, year)
    towns, money, status = data["towns"], data["money"], data["status"]
    return render_template(
        "console/dashboard.html", year=year, years=years, totals=data["totals"],
        enrollment_chart=charts.hbars([(t["township"], [t["enrolled"], t["unpaid"]]) for t in towns],
                                      ["已参合", "未缴费"], f"{year}年各乡镇参合与未缴费人数", "人"),
        status_chart=charts.hbars([(s["status"], [s["n"]]) for s in status], ["补偿单数"], "补偿单按状态", "单"),
        money_chart=charts.stacked_columns(money["months"], money["amounts"],
                                           f"各月补偿金额(按机构级别,{'与'.join(COUNTED)})", level_names(), "元"))


def level_names() -> dict[str, str]:
    """Level key → the word county exports write for it (policy_kb/levels.toml's `name`)."""
    return {key: entry["name"] for key, entry in levels().items()}


@bp.get("/audit")
@login_required
def audit():
    db = request_db.get_db()
    page = max(request.args.get("page", 1, type=int), 1)
    actor = request.args.get("actor", "").strip()
    rows, total = state.audit_page(db, actor or None, page, AUDIT_PAGE)
    for row in rows:
        row["detail"] = _detail(row["detail"])
    pages = max(-(-total // AUDIT_PAGE), 1)
    return render_template("console/audit.html", rows=rows, page=page, pages=pages, total=total, actor=actor)


def _detail(raw: str | None) -> str:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return raw or ""
    return ", ".join(f"{k}={v}" for k, v in data.items() if k != "via")
