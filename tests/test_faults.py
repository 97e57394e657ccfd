"""Nothing stops silently (issue 17): the outbound sender survives faults and says how it is, a message that
cannot be stored is refused at once with 503 and Retry-After, and /healthz checks what really answers.

The fault-injection test runs a real `xnh serve` (its own supervised sender) against the local fake Twilio
while a second connection holds `BEGIN EXCLUSIVE` on the service file for 8 s. Timings are measured by
bench/refusal_bench.py, never asserted here."""
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from fake_twilio import FakeTwilio
from test_broadcast import make_county, new_campaign
from test_sms import TOKEN, URL, form, sign
from xnh.app import create_app
from xnh.broadcast import campaigns, health, worker
from xnh.cli import cli
from xnh.providers import twilio as twilio_provider
from xnh.settings import Settings
from xnh.store import db as store_db
from xnh.store import outbox
from xnh.store.db import open_db

ROOT = Path(__file__).resolve().parents[1]
TWILIO_ENV = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token",
              "TWILIO_FROM_NUMBER": "+15005550006"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait(predicate, seconds: float, step: float = 0.05) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _hold_exclusive(path: str, seconds: float, taken: threading.Event) -> threading.Thread:
    """A second connection (any sqlite3 session, a backup tool) holding the service file's write lock."""
    def hold():
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        taken.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


# -- the fault-injection test: a write lock of 8 s while `xnh serve` sends a campaign ----------------------

def test_an_8_s_write_lock_while_serve_sends_a_campaign_loses_and_doubles_nothing(tmp_path):
    path = tmp_path / "serve.db"
    db = open_db(str(path))
    make_county(db, 57)
    cid = new_campaign(db)
    db.close()
    port = _free_port()
    with FakeTwilio() as fake:
        env = {**os.environ, **TWILIO_ENV, "TWILIO_API_BASE": fake.base, "XNH_DB": str(path),
               "XNH_SMS_PER_SECOND": "10", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        serve = subprocess.Popen([sys.executable, "-m", "xnh", "serve", "--port", str(port)], env=env, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert _wait(lambda: _healthz_answers(port), 30), "xnh serve did not start"
            db = open_db(str(path))
            campaigns.send(db, cid, actor="test")
            db.close()
            assert _wait(lambda: len(fake.requests) >= 5, 20)  # sending, at 10 a second
            taken = threading.Event()
            holder = _hold_exclusive(str(path), 8.0, taken)
            assert taken.wait(10)
            during = _get(f"http://127.0.0.1:{port}/healthz")
            holder.join(20)
            assert during[0] == 503 and "locked" in during[1]["reason"]
            assert _wait(lambda: len(fake.requests) >= 57, 60), f"only {len(fake.requests)} of 57 sent"
            db = open_db(str(path))
            assert _wait(lambda: campaigns.status(db, cid)["counts"]["submitted"] == 57, 30)
            phones = [r[0] for r in db.execute("SELECT recipient FROM outbox WHERE campaign_id = ?", [cid])]
            assert len(phones) == 57 and all(len(fake.to("+86" + p)) == 1 for p in phones)  # each exactly once
            assert campaigns.status(db, cid)["stale_claims"] == []
            db.close()
            time.sleep(0.5)  # exactly once, also a moment later
            assert len(fake.requests) == 57
            status, body = _get(f"http://127.0.0.1:{port}/healthz")
            assert status == 200 and body["outbound"]["problems"] == [], body
        finally:
            serve.terminate()
            _, err = serve.communicate(timeout=30)
    assert "the outbound sender failed" in err or "trying again" in err  # the fault was logged with its reason
    assert "database is locked" in err or "database is locked by another process" in err


def _healthz_answers(port: int) -> bool:
    try:
        return _get(f"http://127.0.0.1:{port}/healthz")[0] in (200, 503)
    except OSError:
        return False


# -- the sender: supervised, visible ------------------------------------------------------------------------

@pytest.fixture
def twilio_settings(tmp_path):
    with FakeTwilio() as fake:
        yield fake, Settings(db_path=str(tmp_path / "s.db"), twilio_api_base=fake.base, sms_per_second=50,
                             sender_stale=1.0, **{k.lower(): v for k, v in TWILIO_ENV.items()})


def test_a_dead_sender_makes_healthz_unhealthy_and_a_recovered_one_healthy(twilio_settings, monkeypatch):
    from xnh import server

    fake, settings = twilio_settings
    app = create_app({"TESTING": True}, settings=settings)
    client = app.test_client()
    stop, thread = server.start_sender(app, settings)
    try:
        assert _wait(lambda: client.get("/healthz").status_code == 200, 10)
        real_due = outbox.due

        def broken(*args, **kwargs):
            raise RuntimeError("injected fault")

        monkeypatch.setattr(worker.outbox, "due", broken)  # every round now fails: a bug in the sender
        assert _wait(lambda: client.get("/healthz").status_code == 503, 10)
        body = client.get("/healthz").get_json()
        assert "no good round" in body["reason"] and "RuntimeError: injected fault" in body["reason"]
        assert thread.is_alive()  # retried, never the end of the thread
        monkeypatch.setattr(worker.outbox, "due", real_due)
        db = open_db(settings.db_path)
        outbox.queue_reply(db, channel="sms", recipient="13700000009", text="答复", ref="ticket:9")
        db.close()
        assert _wait(lambda: client.get("/healthz").status_code == 200, 40)
        assert _wait(lambda: len(fake.requests) == 1, 10)
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_a_sender_thread_that_ended_is_reported_with_its_last_fault():
    h = worker.Health()
    h.thread = threading.Thread(target=lambda: None)
    h.thread.start()
    h.thread.join()
    h.fault("disk full")
    assert "stopped" in h.problem(stale=60) and "disk full" in h.problem(stale=60)
    alive = worker.Health()
    assert alive.problem(stale=60) is None  # negative row: a fresh heartbeat, no thread given
    alive.heartbeat -= 120
    assert "120 s" in alive.problem(stale=60)


def test_the_backlog_turns_healthz_unhealthy_and_broadcast_status_says_so(db, tmp_path, monkeypatch):
    path = db.execute("PRAGMA database_list").fetchone()[2]
    rid = outbox.queue_reply(db, channel="sms", recipient="13700000009", text="答复", ref="ticket:1")
    app = create_app({"TESTING": True}, settings=Settings(db_path=path, backlog_limit=600))
    assert app.test_client().get("/healthz").status_code == 200  # due now, but just queued
    with store_db.writing(db):  # queued an hour before the policy clock's now
        db.conn.execute("UPDATE outbox SET created_at = '2026-06-15T11:00:00+08:00' WHERE id = ?", [rid])
    got = app.test_client().get("/healthz")
    assert got.status_code == 503 and "has waited 3600 s (limit 600 s)" in got.get_json()["reason"]
    assert got.get_json()["outbound"]["oldest_due_age"] == 3600
    cid = campaigns.create(db, name="x", audience="unpaid=2027", text="hi", actor="t")
    monkeypatch.setenv("XNH_DB", path)
    monkeypatch.setenv("XNH_BACKLOG_LIMIT", "600")
    shown = CliRunner().invoke(cli, ["broadcast", "status", str(cid)])
    assert "oldest due: 3600 s" in shown.output and "has waited 3600 s" in shown.output
    assert "sender: none has run on this database" in shown.output


@pytest.mark.parametrize("now, created, age", [
    ("2026-06-15T08:30:00+08:00", "2026-06-14T22:00:00+08:00", 1800),  # waited out the night: due since 08:00
    ("2026-06-15T23:00:00+08:00", "2026-06-15T22:00:00+08:00", None),  # quiet hours: not due at all
    ("2026-06-15T12:00:00+08:00", "2026-06-15T11:59:00+08:00", 60),
])
def test_the_backlog_counts_from_when_a_row_became_due(db, monkeypatch, now, created, age):
    monkeypatch.setenv("XNH_TODAY", now)
    with store_db.writing(db):
        db.conn.execute("INSERT INTO outbox (kind, ref, recipient, channel, text, priority, status, quiet_start, "
                        "quiet_end, created_at, updated_at) VALUES ('payment', 'C1', '13700000009', 'sms', 'x', 1, "
                        "'pending', '21:00', '08:00', ?, ?)", [created, created])
    assert outbox.oldest_due_age(db) == age


def test_the_outbound_report_of_a_sender_in_another_process(db):
    from xnh.store import senders

    settings = Settings(sender_stale=60)
    with store_db.writing(db):
        senders.beat(db, "host:1:abc", state="running", started_at=time.time() - 500, sent=3,
                     now=time.time() - 300)
    report = health.outbound(db, settings)
    assert report["sender"]["id"] == "host:1:abc" and "has not beaten for 300 s" in report["problems"][0]
    with store_db.writing(db):
        senders.beat(db, "host:1:abc", state="stopped", started_at=time.time() - 500, sent=3)
    assert health.outbound(db, settings)["problems"] == []  # negative row: stopped cleanly


# -- fast, honest refusals ------------------------------------------------------------------------------------

@pytest.fixture
def sms_app(db, tmp_path):
    return create_app({"DB_PATH": str(tmp_path / "test.db"), "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_URL": None,
                       "TESTING": True})


def _post_sms(client, body="查参合", sid="SM" + "7" * 32):
    params = form(body, sid=sid)
    return client.post("/sms", data=params, headers={"X-Twilio-Signature": sign(params)})


def test_a_message_that_cannot_be_stored_for_a_lock_gets_503_and_retry_after(sms_app, tmp_path):
    taken = threading.Event()
    holder = _hold_exclusive(str(tmp_path / "test.db"), 6.0, taken)
    assert taken.wait(10)
    got = _post_sms(sms_app.test_client())
    holder.join(10)
    assert got.status_code == 503 and got.headers["Retry-After"] == "5"
    assert _post_sms(sms_app.test_client()).status_code == 200  # the lock is gone: Twilio's retry is answered


def test_a_full_disk_is_503_never_500(sms_app, monkeypatch):
    from xnh.store import state

    client = sms_app.test_client()
    assert _post_sms(client, sid="SM" + "1" * 32).status_code == 200

    def full(*args, **kwargs):  # what SQLite raises when the disk (or max_page_count) has no page left
        raise sqlite3.OperationalError("database or disk is full")

    real = state.remember_reply
    monkeypatch.setattr(state, "remember_reply", full)
    got = _post_sms(client, sid="SM" + "2" * 32)
    assert got.status_code == 503 and got.headers["Retry-After"] == "5"
    monkeypatch.setattr(state, "remember_reply", real)
    assert _post_sms(client, sid="SM" + "2" * 32).status_code == 200  # nothing half-stored: answered afresh


@pytest.mark.parametrize("error, unavailable", [
    (sqlite3.OperationalError("database is locked"), True), (sqlite3.OperationalError("database or disk is full"), True),
    (sqlite3.OperationalError("disk I/O error"), True), (OSError(28, "No space left on device"), True),
    (sqlite3.OperationalError("no such table: outbox"), False), (sqlite3.IntegrityError("UNIQUE constraint"), False),
    (ValueError("a bug"), False),
])
def test_which_faults_are_refused_with_503(error, unavailable):
    assert store_db.is_unavailable(error) is unavailable


@pytest.mark.parametrize("outbox_id", ["99999999999999999999999999", "9223372036854775808", "１２", "-1", "1e3"])
def test_a_status_callback_for_an_impossible_outbox_id_is_not_a_500(sms_app, outbox_id):
    url = f"http://localhost/sms/status?outbox={outbox_id}"
    params = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    got = sms_app.test_client().post(f"/sms/status?outbox={outbox_id}", data=params,
                                     headers={"X-Twilio-Signature": sign(params, url=url)})
    assert got.status_code == 204  # no such message: recorded as an event, nothing else


def test_healthz_checks_the_demo_database_when_the_demo_answers(tmp_path):
    from xnh import demo

    real = str(tmp_path / "real.db")
    app = create_app({"DEMO": True, "TESTING": True}, settings=Settings(db_path=real))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    taken = threading.Event()
    holder = _hold_exclusive(demo.serving_path(real), 2.0, taken)
    assert taken.wait(10)
    got = client.get("/healthz")
    holder.join(10)
    assert got.status_code == 503 and "demo" in got.get_json()["reason"]


def test_a_standalone_worker_ends_with_one_line_on_a_fault(tmp_path):
    path = tmp_path / "w.db"
    db = open_db(str(path))
    outbox.queue_reply(db, channel="sms", recipient="13700000009", text="答复", ref="ticket:1")
    db.close()
    env = {**os.environ, **TWILIO_ENV, "TWILIO_API_BASE": "http://127.0.0.1:9", "XNH_DB": str(path),
           "PYTHONPATH": str(ROOT)}
    taken = threading.Event()
    holder = _hold_exclusive(str(path), 8.0, taken)
    assert taken.wait(10)
    done = subprocess.run([sys.executable, "-m", "xnh", "worker"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    holder.join(10)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "locked" in done.stderr


def test_messages_behind_one_stuck_on_the_lock_are_refused_without_waiting_their_turn(db, tmp_path):
    path = str(tmp_path / "test.db")
    taken = threading.Event()
    holder = _hold_exclusive(path, 6.0, taken)
    assert taken.wait(10)
    first: list = []

    def stuck():
        try:
            with store_db.message_db(path) as conn:
                store_db.begin_write(conn)
        except sqlite3.OperationalError as e:
            first.append(e)

    thread = threading.Thread(target=stuck)
    thread.start()
    time.sleep(1.5)  # the first message has held the message lock past STUCK, waiting for SQLite's
    with pytest.raises(store_db.Busy, match="the message before this one has waited"):
        with store_db.message_db(path):
            pass
    thread.join(10)
    holder.join(10)
    assert first and "locked" in str(first[0])
    with store_db.message_db(path) as conn:  # negative row: the lock gone, a message has the database
        store_db.begin_write(conn)
