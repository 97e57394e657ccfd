"""Importing a county export from the console: upload → check → start, the upload's id being the
job's id (a second "start" of the same upload does nothing). The import is `xnh.sync.run()`, the same
code as `xnh sync`, run in a background thread on its own connection; its progress callback writes
`uploads.rows_done`, which the page shows as a progress bar (refreshing itself while it runs). The
rejected rows are listed and downloadable as CSV."""
import csv
import io
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from flask import Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ... import sync
from ...store import db as store_db
from ...store import state
from ...store import uploads as store_uploads
from ...sync.read import KIND_WORD, estimate_rows, open_table
from .. import request_db
from .common import act, bp

logger = logging.getLogger(__name__)
SUFFIXES = (".csv", ".txt", ".xlsx")
SHOWN_REJECTED = 200
PROGRESS_EVERY = 0.2  # seconds between two progress writes
_IMPORTS = threading.Lock()  # one console import at a time (they all write the one county file)


@bp.route("/uploads", methods=["GET", "POST"])
@login_required
def upload():
    """GET: the form and the recent uploads. POST: save the file and check it (encoding, header)."""
    db = request_db.get_db()
    if request.method == "GET":
        return _form(db)
    kind = request.form.get("kind", "")
    file = request.files.get("file")
    if kind not in KIND_WORD:
        return _form(db, "请选择数据类型(参合人员或补偿记录)。", 400)
    if file is None or not file.filename:
        return _form(db, "请选择要上传的文件。", 400)
    suffix = Path(file.filename).suffix.lower()
    if suffix not in SUFFIXES:
        return _form(db, "只接受 CSV 或 .xlsx 文件。", 400)
    upload_id = uuid.uuid4().hex
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{upload_id}{suffix}"
    file.save(path)
    try:
        encoding, _, _, rows = open_table(path, kind)
        rows.close()
        total = estimate_rows(path, encoding)
    except sync.SyncError as e:
        path.unlink(missing_ok=True)
        act("upload_refused", {"file": file.filename, "kind": kind, "reason": str(e).replace(str(path), file.filename)})
        return _form(db, str(e).replace(str(path), file.filename), 400)
    store_uploads.create(db, upload_id, kind=kind, filename=file.filename, path=str(path), encoding=encoding,
                         size=path.stat().st_size, rows_total=total, actor=current_user.name)
    act("upload", {"upload": upload_id, "file": file.filename, "kind": kind, "encoding": encoding})
    return redirect(url_for("console.upload_page", upload_id=upload_id))


@bp.get("/uploads/<upload_id>")
@login_required
def upload_page(upload_id: str):
    db = request_db.get_db()
    item = _get(db, upload_id)
    rejected = (store_uploads.rejected_rows(db, item["sync_run_id"], SHOWN_REJECTED)
                if item["status"] == "done" and item["rejected"] else [])
    return render_template("console/upload.html", u=item, kind_word=KIND_WORD, rejected=rejected,
                           shown=SHOWN_REJECTED)


@bp.get("/uploads/<upload_id>/progress.json")
@login_required
def upload_progress(upload_id: str):
    item = _get(request_db.get_db(), upload_id)
    keys = ("status", "rows_done", "rows_total", "inserted", "updated", "unchanged", "rejected", "error")
    return jsonify({k: item[k] for k in keys})


@bp.post("/uploads/<upload_id>/start")
@login_required
def upload_start(upload_id: str):
    """Start the import of a checked upload, once (a double submit finds it running and only redirects)."""
    db = request_db.get_db()
    item = _get(db, upload_id)
    if store_uploads.claim_start(db, upload_id):
        act("sync_start", {"upload": upload_id, "file": item["filename"], "kind": item["kind"]})
        store_db.finish(db)  # the thread reads the row on its own connection
        start_import(current_app.config["DB_PATH"], item, current_user.name)
    return redirect(url_for("console.upload_page", upload_id=upload_id))


@bp.get("/uploads/<upload_id>/rejected.csv")
@login_required
def upload_rejected(upload_id: str):
    db = request_db.get_db()
    item = _get(db, upload_id)
    if item["status"] != "done":
        abort(404)
    out = io.StringIO()
    out.write("\ufeff")  # Excel opens UTF-8 with a BOM as UTF-8
    writer = csv.writer(out)
    writer.writerow(["行号", "列", "原因", "原始内容"])
    for row in store_uploads.rejected_rows(db, item["sync_run_id"]):
        writer.writerow([row["line"], row["column"], row["reason"], row["raw"]])
    act("download_rejected", {"upload": upload_id})
    name = f"{Path(item['filename']).stem}.rejected.csv"
    return Response(out.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=rejected.csv; filename*=UTF-8''"
                                                    f"{_quote(name)}"})


def start_import(db_path: str, item: dict, actor: str) -> threading.Thread:
    """Run the import of `item` (an uploads row) in a background thread."""
    thread = threading.Thread(target=_run_import, args=(db_path, item["id"], item["kind"], item["path"], actor),
                              name=f"import-{item['id'][:8]}", daemon=True)
    thread.start()
    return thread


def _run_import(db_path: str, upload_id: str, kind: str, path: str, actor: str) -> None:
    db = store_db.open_db(db_path)
    last = [0.0]

    def tick(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY:
            with store_db.writing(db):
                store_uploads.progress(db, upload_id, done, total)
            last[0] = time.monotonic()

    result, error = None, None
    try:
        with _IMPORTS:
            result = sync.run(db, kind, path, progress=tick)
    except sync.SyncError as e:
        error = str(e)
    except (sqlite3.Error, OSError) as e:
        error = store_db.explain(e, db_path)
    except Exception as e:  # a bug: say so on the page, keep the traceback in the log
        logger.exception("console import %s failed", upload_id)
        error = f"{e.__class__.__name__}: {e}"
    try:
        store_db.finish(db, failed=True)
        detail = {"upload": upload_id, "kind": kind}
        if result is not None:
            detail.update(inserted=result.inserted, updated=result.updated, unchanged=result.unchanged,
                          rejected=result.rejected)
        with store_db.writing(db):
            store_uploads.finish(db, upload_id, result, error)
            state.audit(db, actor, "sync_done" if error is None else "sync_failed",
                        {"via": "console", **detail, **({"error": error} if error else {})})
    finally:
        db.close()


def _form(db, error: str | None = None, status: int = 200):
    return render_template("console/uploads.html", uploads=store_uploads.recent(db), kind_word=KIND_WORD,
                           error=error, limit_mb=current_app.config["CONSOLE_UPLOAD_LIMIT"] >> 20), status


def _get(db, upload_id: str) -> dict:
    item = store_uploads.get(db, upload_id)
    if item is None:
        abort(404)
    return item


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)
