"""xnh/app.py and the repository root's app.py: GET /healthz says 200 only when the database can be
written (with the schema version and the last sync), else 503 with the reason; the WSGI entry builds
the app without side effects beyond the database's migrations."""
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import shared_file
from xnh import app as app_module
from xnh import sync
from xnh.app import create_app
from xnh.store import db as store_db
from xnh.store import schema

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "h.db")


def test_healthz_reports_schema_and_last_sync(path):
    db = store_db.open_db(path)
    sync.run(db, "enrollment", shared_file("data/enrollment.csv"))
    got = create_app({"DB_PATH": path}).test_client().get("/healthz")
    body = got.get_json()
    assert got.status_code == 200 and body["status"] == "ok"
    last = schema.migrations._migrations[-1].name  # the newest migration of the service file, whichever it is
    assert last.startswith("m0") and body["schema"] == {"service": last, "county": "m010_county_sync_blocks_run"}
    assert body["last_sync"]["kind"] == "enrollment" and body["last_sync"]["inserted"] > 0
    db.close()


def _locked(path, monkeypatch):
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(app_module, "HEALTH_WAIT_MS", 50)
    return lock


def _read_only(path, monkeypatch):
    real = sqlite3.connect
    monkeypatch.setattr(store_db.sqlite3, "connect", lambda p, *a, **k: real(
        f"file:{p}?mode=ro", *a, uri=True, **k) if p == path else real(p, *a, **k))


def _disk_full(path, monkeypatch):
    monkeypatch.setattr(app_module.shutil, "disk_usage", lambda folder: SimpleNamespace(total=10 << 30, used=10 << 30, free=4096))


def _nothing(path, monkeypatch):
    return None


def _county_locked(path, monkeypatch):
    """A sync's long transaction holds the county file: the service file can still be written."""
    lock = sqlite3.connect(store_db.county_path(path), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    return lock


@pytest.mark.parametrize("fault, status, words", [
    (_nothing, 200, None),  # negative rows: a healthy database, and one a sync is writing
    (_county_locked, 200, None),
    (_locked, 503, "locked"),
    (_read_only, 503, "read-only"),
    (_disk_full, 503, "disk full"),
])
def test_healthz_is_503_with_the_reason_when_the_database_cannot_be_written(path, monkeypatch, fault, status, words):
    app = create_app({"DB_PATH": path})
    held = fault(path, monkeypatch)
    try:
        got = app.test_client().get("/healthz")
    finally:
        if held is not None:
            held.execute("ROLLBACK")
            held.close()
    assert got.status_code == status
    if words:
        assert got.get_json()["status"] == "error" and words in got.get_json()["reason"]


def test_the_root_app_is_what_wsgi_tools_load(tmp_path):
    """`flask --app app routes` from the repository root finds the app and its routes."""
    env = {"XNH_DB": str(tmp_path / "w.db"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "routes"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for rule in ("/sms", "/sms/status", "/healthz", "/api/simulate", "/telegram/webhook"):
        assert rule in done.stdout
    assert not (tmp_path / "w.demo.db").exists()  # building it loads no demo: only the first message does
