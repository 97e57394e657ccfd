"""Imports that finish or say why (issue 18): an import interrupted by a restart is marked failed with its
reason at the next start and can be started again; uploads are streamed to disk under a limit that fits a
year's claims, .gz and .zip accepted; `xnh sync` from the command line is in the audit log with the
operator's name."""
import gzip
import socket
import zipfile

from click.testing import CliRunner

from tests.conftest import shared_file
from tests.test_console import CLERK, login, make_app, token, upload, wait_done
from xnh.cli import cli
from xnh.store import db as store_db
from xnh.store import uploads as store_uploads


def test_a_cli_sync_is_in_the_audit_log_with_the_operator(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "x.db"))
    monkeypatch.setenv("XNH_ACTOR", "张会计")
    ok = CliRunner().invoke(cli, ["sync", "enrollment", str(shared_file("data/enrollment.csv"))])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    refused = CliRunner().invoke(cli, ["sync", "claims", str(bad)])
    assert refused.exit_code == 2
    db = store_db.open_db(str(tmp_path / "x.db"))
    rows = db.execute("SELECT actor, action, detail FROM audit_log ORDER BY id").fetchall()
    db.close()
    assert [(a, b) for a, b, _ in rows] == [("张会计", "sync_done"), ("张会计", "sync_failed")]
    assert '"inserted"' in rows[0][2] and '"via": "cli"' in rows[0][2] and "bad.csv" in rows[1][2]


def test_a_packed_export_is_unpacked_and_imported(tmp_path):
    app = make_app(tmp_path / "t.db")
    client = app.test_client()
    login(client, CLERK)
    source = shared_file("data/enrollment.csv").read_bytes()
    packed_gz = tmp_path / "参合人员.csv.gz"
    packed_gz.write_bytes(gzip.compress(source))
    packed_zip = tmp_path / "参合人员.zip"
    with zipfile.ZipFile(packed_zip, "w") as z:
        z.writestr("导出/参合人员.csv", source)
    for packed in (packed_gz, packed_zip):
        got = upload(client, packed, kind="enrollment")
        assert got.status_code == 302, got.get_data(as_text=True)
        location = got.headers["Location"]
        client.post(location + "/start", data={"csrf_token": token(client, location)})
        assert wait_done(client, location)["status"] == "done"
    folder = tmp_path / "uploads"
    assert not list(folder.glob("*.part")) and not list(folder.glob("*.gz")) and not list(folder.glob("*.zip"))
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a.csv", source)
        z.writestr("b.csv", source)
    refused = upload(client, two, kind="enrollment")
    assert refused.status_code == 400 and "正好有一个" in refused.get_data(as_text=True)


def test_the_default_upload_limit_fits_a_years_claims(tmp_path):
    app = make_app(tmp_path / "t.db")
    assert app.config["CONSOLE_UPLOAD_LIMIT"] >= 191 << 20  # a county's yearly claims export: 191 MB


def test_an_import_a_restart_interrupted_is_failed_with_its_reason_and_starts_again(tmp_path):
    app = make_app(tmp_path / "t.db")
    client = app.test_client()
    login(client, CLERK)
    got = upload(client, shared_file("data/enrollment.csv"), kind="enrollment")
    location = got.headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    db = store_db.open_db(app.config["DB_PATH"])
    with store_db.writing(db):  # as a process killed mid-import leaves it: running, 700 rows done
        assert store_uploads.claim_start(db, upload_id, f"{socket.gethostname()}:999999")
        store_uploads.progress(db, upload_id, 700, 2600)
    db.close()
    assert client.get(location + "/progress.json").get_json()["status"] == "running"
    restarted = make_app(tmp_path / "t.db")  # the service starts again
    client = restarted.test_client()
    login(client, CLERK)
    page = client.get(location).get_data(as_text=True)
    assert 'data-status="failed"' in page and "服务重启而中断" in page and "重新开始导入" in page
    client.post(location + "/start", data={"csrf_token": token(client, location), "again": "1"})
    assert wait_done(client, location)["status"] == "done"
    db = store_db.open_db(app.config["DB_PATH"])
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]
    db.close()
    assert "sync_interrupted" in actions and actions[-1] == "sync_done"


def test_an_import_running_in_a_live_process_is_left_alone(tmp_path):
    app = make_app(tmp_path / "t.db")
    db = store_db.open_db(app.config["DB_PATH"])
    with store_db.writing(db):
        store_uploads.create(db, "u1", kind="claims", filename="x.csv", path="/nowhere", encoding="utf-8", size=1,
                             rows_total=1, actor="wang")
        store_uploads.claim_start(db, "u1", f"{socket.gethostname()}:1")  # pid 1 runs
    db.close()
    make_app(tmp_path / "t.db")
    db = store_db.open_db(app.config["DB_PATH"])
    assert store_uploads.get(db, "u1")["status"] == "running"
    db.close()
