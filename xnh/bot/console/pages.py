"""The dashboard (charts of the county data) and the audit log."""
import json

from flask import redirect, render_template, request, url_for
from flask_login import login_required

from ... import clock
from ...store import db as store_db
from ...store import stats
from .. import request_db
from . import charts
from .common import bp

LEVELS = {"village": "村卫生室", "township": "乡镇卫生院", "county": "县级医院", "outside_private": "县外民营定点",
          "city_province": "省地级", "province": "省级医院", "non_designated": "县外非定点"}
AUDIT_PAGE = 50


@bp.get("")
def root():
    return redirect(url_for("console.dashboard"))


@bp.get("/")
@login_required
def dashboard():
    db = request_db.get_db()
    years = [y for (y,) in db.conn.execute("select distinct year from enrollments order by year desc")]
    year = request.args.get("year", type=int) or (clock.now().year if clock.now().year in years or not years
                                                   else years[0])
    towns = stats.enrollment_by_township(db, year)
    money = stats.reimbursed_by_level_month(db)
    status = stats.claims_by_status(db)
    return render_template(
        "console/dashboard.html", year=year, years=years, totals=stats.totals(db, year),
        enrollment_chart=charts.hbars([(t["township"], [t["enrolled"], t["unpaid"]]) for t in towns],
                                      ["已参合", "未缴费"], f"{year}年各乡镇参合与未缴费人数", "人"),
        status_chart=charts.hbars([(s["status"], [s["n"]]) for s in status], ["补偿单数"], "补偿单按状态", "单"),
        money_chart=charts.stacked_columns(money["months"], money["amounts"], "各月补偿金额(按机构级别,审核通过与已拨付)",
                                           LEVELS, "元"))


@bp.get("/audit")
@login_required
def audit():
    db = request_db.get_db()
    page = max(request.args.get("page", 1, type=int), 1)
    actor = request.args.get("actor", "").strip()
    where, params = ("where actor = ?", [actor]) if actor else ("", [])
    total = db.conn.execute(f"select count(*) from audit_log {where}", params).fetchone()[0]
    rows = store_db.rows(db, f"select id, at, actor, action, detail from audit_log {where} order by id desc "
                             "limit ? offset ?", [*params, AUDIT_PAGE, (page - 1) * AUDIT_PAGE])
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
