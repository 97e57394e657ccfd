"""Importing a county export from the console: upload → check → start, the upload's id being the
job's id (a second "start" of the same upload does nothing). The import is `xnh.sync.run()`, the same
code as `xnh sync`, run in a background thread on its own connection; its progress callback writes
`uploads.rows_done`, which the page shows as a progress bar (refreshing itself while it runs). The
rejected rows are listed and downloadable as CSV.

The file is streamed to disk as it arrives (`UploadRequest`: the form parser writes the file part straight
into a temporary file in UPLOAD_FOLDER, which becomes the upload's file without a copy), up to
CONSOLE_UPLOAD_LIMIT (XNH_UPLOAD_MB, 500 MB: a county's yearly claims export is about 190 MB). A .gz or
.zip (one CSV or .xlsx inside) is unpacked on the server, streaming, up to UNPACKED_LIMIT. An import
interrupted by a restart (its process gone) is marked failed with that reason when the app starts
(`fail_interrupted`) and can be started again: it wrote nothing, being one transaction."""
import csv
import gzip
import io
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

from flask import Request, Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ... import sync
from ...store import db as store_db
from ...store import state, stats
from ...store import uploads as store_uploads
from ...sync.read import KIND_WORD, estimate_rows, open_table
from .. import request_db
from .common import act, bp, csv_cell

logger = logging.getLogger(__name__)
SUFFIXES = (".csv", ".txt", ".xlsx")
PACKED = (".gz", ".zip")
UNPACKED_LIMIT = 4 << 30  # bytes a .gz or .zip may unpack to
SHOWN_REJECTED = 200
PROGRESS_EVERY = 0.2  # seconds between two progress writes
_IMPORTS = threading.Lock()  # one console import at a time (they all write the one county file)
_RUNNING: set[str] = set()  # the uploads this process is importing now
RUNNER = f"{socket.gethostname()}:{os.getpid()}"


class UploadRequest(Request):
    """A request whose uploaded files go straight to a temporary file in UPLOAD_FOLDER as they arrive
    (werkzeug's default keeps 500 KB in memory, then spools to the system's temporary folder, and the
    view copies it again)."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        if self.endpoint not in ("console.upload",):
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        folder = Path(current_app.config["UPLOAD_FOLDER"])
        folder.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile("w+b", dir=folder, suffix=".part")  # gone on close unless linked


class PackError(ValueError):
    """A .gz or .zip that cannot be unpacked to one export (the message says why)."""


def _keep(file, path: Path) -> None:
    """Give the uploaded file its final name: a link to the temporary file it was streamed into (no copy)."""
    stream = getattr(file.stream, "name", None) and file.stream
    if stream is not None and isinstance(stream.name, str) and os.path.exists(stream.name):
        stream.flush()
        os.link(stream.name, path)
    else:
        file.save(path)


def unpack(packed: Path, filename: str) -> tuple[Path, str]:
    """The export inside `packed` (.gz: the file it holds; .zip: its one CSV or .xlsx), written beside it,
    streaming and at most UNPACKED_LIMIT bytes; returns its path and its name. Raises PackError."""
    try:
        if filename.lower().endswith(".gz"):
            inner = filename[:-3]
            source = gzip.open(packed, "rb")
        else:
            archive = zipfile.ZipFile(packed)
            members = [m for m in archive.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in SUFFIXES]
            if len(members) != 1:
                raise PackError(f"压缩包里应当正好有一个 CSV 或 .xlsx 文件,现在有 {len(members)} 个。")
            inner = Path(members[0].filename).name
            source = archive.open(members[0])
        if Path(inner).suffix.lower() not in SUFFIXES:
            raise PackError("压缩文件里的不是 CSV 或 .xlsx 文件。")
        target = packed.with_name(packed.stem.split(".")[0] + Path(inner).suffix.lower())
        written = 0
        with source, open(target, "wb") as out:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > UNPACKED_LIMIT:
                    raise PackError(f"解压后超过 {UNPACKED_LIMIT >> 30} GB。")
                out.write(chunk)
        return target, inner
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise PackError(f"无法解压:{e.__class__.__name__}") from None


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
    if suffix not in SUFFIXES + PACKED:
        return _form(db, "只接受 CSV 或 .xlsx 文件(也可以是它们的 .gz 或 .zip 压缩包)。", 400)
    upload_id = uuid.uuid4().hex
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{upload_id}{suffix}"
    _keep(file, path)
    try:
        if suffix in PACKED:
            packed, (path, _) = path, unpack(path, file.filename)
            packed.unlink()
        encoding, _, _, rows = open_table(path, kind)
        rows.close()
        total = estimate_rows(path, encoding)
    except (sync.SyncError, PackError) as e:
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


@bp.get("/uploads/<upload_id>/poll")
@login_required
def upload_poll(upload_id: str):
    """304 while the import's status and rows done are what the page shows (its If-None-Match)."""
    item = _get(request_db.get_db(), upload_id)
    token = f"{item['status']}-{item['rows_done']}"
    response = jsonify(token=token)
    response.set_etag(token)
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


@bp.post("/uploads/<upload_id>/start")
@login_required
def upload_start(upload_id: str):
    """Start the import of a checked upload, once (a double submit finds it running and only redirects);
    `again=1` starts a failed one again (an import interrupted by a restart wrote nothing)."""
    db = request_db.get_db()
    item = _get(db, upload_id)
    again = request.form.get("again") == "1" and Path(item["path"]).exists()
    if store_uploads.claim_start(db, upload_id, RUNNER, again=again):
        act("sync_start", {"upload": upload_id, "file": item["filename"], "kind": item["kind"],
                           **({"again": 1} if again else {})})
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
        writer.writerow([csv_cell(row[k]) for k in ("line", "column", "reason", "raw")])
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


def fail_interrupted(db_path: str) -> list[dict]:
    """At start: the console imports whose process is gone (a restart, a crash) are marked failed with
    that reason, in the audit log too; they can be started again."""
    db = store_db.open_db(db_path)
    try:
        with store_db.writing(db):
            found = store_uploads.fail_interrupted(db, _alive)
            for row in found:
                state.audit(db, row["uploaded_by"] or "?", "sync_interrupted",
                            {"via": "console", "upload": row["id"], "file": row["filename"], "kind": row["kind"],
                             "rows_done": row["rows_done"]})
        return found
    finally:
        db.close()


def _alive(row: dict) -> bool:
    """The process running this upload's import still runs it."""
    host, _, pid = (row.get("runner") or "").partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return bool(row.get("runner")) and host != socket.gethostname()  # another host's: not ours to judge
    if int(pid) == os.getpid():
        return row["id"] in _RUNNING
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_import(db_path: str, upload_id: str, kind: str, path: str, actor: str) -> None:
    _RUNNING.add(upload_id)
    try:
        _import(db_path, upload_id, kind, path, actor)
    finally:
        _RUNNING.discard(upload_id)


def _import(db_path: str, upload_id: str, kind: str, path: str, actor: str) -> None:
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
        if result is not None:
            _refresh_figures(db)
        with store_db.writing(db):
            store_uploads.finish(db, upload_id, result, error)
            state.audit(db, actor, "sync_done" if error is None else "sync_failed",
                        {"via": "console", **detail, **({"error": error} if error else {})})
    finally:
        db.close()


def _refresh_figures(db) -> None:
    """The dashboard's figures of the new data, computed once now rather than by the first page."""
    try:
        stats.refresh(db)
    except sqlite3.Error as e:
        logger.warning("dashboard figures not refreshed after the import: %s", e)


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
