"""xnh/store/db.py: two files (the service's state, the synced county data), a message never waiting
for a sync, an older single-file database moved into two, and payment notices derived after the import
commits (none lost after a crash between the two, none doubled)."""
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from tests.conftest import put, shared_file
from tests.test_sms import form, post, reply_of
from xnh import sync
from xnh.app import create_app
from xnh.store import db as store_db
from xnh.store import outbox, schema

TOKEN = "test-auth-token"


def tables(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("path, county", [
    ("xnh.db", "xnh.county.db"),
    ("/srv/data/real.sqlite", "/srv/data/real.county.sqlite"),
    ("data", "data.county"),
    (":memory:", ":memory:"),
])
def test_county_path_is_derived_from_xnh_db(path, county):
    assert store_db.county_path(path) == county


def test_each_table_lives_in_one_file(tmp_path):
    path = tmp_path / "x.db"
    store_db.open_db(str(path)).close()
    service, county = tables(path), tables(tmp_path / "x.county.db")
    assert set(schema.COUNTY_TABLES) <= county
    assert not set(schema.COUNTY_TABLES) & service  # negative: no county table in the service file
    assert {"conversations", "processed_messages", "outbox", "audit_log", "meta"} <= service
    assert not {"conversations", "processed_messages", "outbox"} & county


@pytest.fixture
def app(tmp_path):
    return create_app({"DB_PATH": str(tmp_path / "s.db"), "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_URL": None,
                       "TESTING": True})


def test_a_message_is_answered_while_a_sync_holds_the_county_write_lock(app, tmp_path):
    """The import's transaction (here held open by hand) locks the county file only: a signed /sms is
    answered at once, from the county data as it was before the import, and its MessageSid is kept."""
    db = store_db.open_db(app.config["DB_PATH"])
    put(db, "members", {"member_id": "HH1-01", "household_id": "HH1", "name": "杨树林", "relation": "户主",
                        "phone": "13700000001", "updated_at": "2025-12-30T18:00:00"})
    importing = sqlite3.connect(store_db.county_path(app.config["DB_PATH"]), timeout=0)
    importing.execute("BEGIN IMMEDIATE")
    importing.execute("UPDATE members SET name = '换了人' WHERE member_id = 'HH1-01'")
    with store_db.message_db(app.config["DB_PATH"]) as conn:
        conn.execute("PRAGMA busy_timeout = 50")  # a wait for the county lock would fail, not hang
    client = app.test_client()
    for sid, text in (("SMsync1", "住院花了3000能报多少"), ("SMsync2", "查参合")):
        resp = post(client, form(text, sid=sid, frm="+8613700000001"))
        reply_of(resp)
    assert db.execute("select count(*) from processed_messages").fetchone()[0] == 2
    assert db.execute("select name from members").fetchone()[0] == "杨树林"  # the snapshot before the import
    importing.commit()
    importing.close()
    assert db.execute("select name from members").fetchone()[0] == "换了人"  # visible once committed
    db.close()


def _old_single_file(path: Path) -> None:
    """A database as versions before the split wrote it: every table in one file."""
    old = Migrations("xnh")
    for fn in (schema.m001_county_data, schema.m002_conversation, schema.m003_outbound,
               schema.m004_delivery_events):
        old()(fn)
    db = Database(str(path))
    old.apply(db)
    put(db, "members", {"member_id": "HH1-01", "household_id": "HH1", "name": "杨树林", "phone": "13700000001"})
    put(db, "claim_history", [{"claim_id": "B1", "status": "已拨付"}, {"claim_id": "B2", "status": "已拨付"}])
    put(db, "conversations", {"sender": "13700000001", "state": "{}", "updated_at": 0.0})
    db.close()


def test_an_older_single_file_database_is_split_on_open(tmp_path):
    path = tmp_path / "old.db"
    _old_single_file(path)
    db = store_db.open_db(str(path))
    assert not set(schema.COUNTY_TABLES) & tables(path)
    assert db.execute("select name from county.members").fetchone()[0] == "杨树林"
    assert db.execute("select count(*) from county.claim_history").fetchone()[0] == 2
    assert db.execute("select count(*) from main.conversations").fetchone()[0] == 1
    # the history already there had its notices queued by the old sync: none derived again
    assert outbox.derive_payment_notices(db) == 0
    db.close()
    store_db.open_db(str(path)).close()  # opening again changes nothing
    assert not set(schema.COUNTY_TABLES) & tables(path)


def test_notices_survive_a_crash_between_the_import_and_their_derivation(tmp_path, monkeypatch):
    db = store_db.open_db(str(tmp_path / "n.db"))
    sync.run(db, "enrollment", shared_file("data/enrollment.csv"))

    def crash(conn):
        raise KeyboardInterrupt("killed after the county commit")

    monkeypatch.setattr(outbox, "derive_payment_notices", crash)
    with pytest.raises(KeyboardInterrupt):
        sync.run(db, "claims", shared_file("data/claims.csv"))
    monkeypatch.undo()
    assert db.execute("select count(*) from claims").fetchone()[0] > 0  # the import committed
    assert db.execute("select count(*) from outbox").fetchone()[0] == 0
    queued = outbox.derive_payment_notices(db)  # what the next sync or `xnh serve` starting does
    paid = db.execute("select count(*) from claims where status = '已拨付'").fetchone()[0]
    assert 0 < queued <= paid
    assert outbox.derive_payment_notices(db) == 0  # and never twice
    result = sync.run(db, "claims", shared_file("data/claims.csv"))
    assert result.notifications == 0
    assert db.execute("select count(*) from outbox").fetchone()[0] == queued
    db.close()


def test_a_split_cut_after_the_copy_is_finished_by_the_next_open(tmp_path):
    """The copy into the county file committed, the drop from the old file did not (a crash in between):
    opening again finishes the move, with no row twice."""
    path = tmp_path / "old.db"
    _old_single_file(path)
    county = store_db.open_county(str(path))
    county.execute("ATTACH DATABASE ? AS old", [str(path)])
    with county.atomic():
        for table in schema.COUNTY_TABLES:
            county.execute(f"INSERT INTO main.{table} SELECT * FROM old.{table}")
    county.execute("DETACH DATABASE old")
    county.close()
    db = store_db.open_db(str(path))
    assert not set(schema.COUNTY_TABLES) & tables(path)
    assert db.execute("select count(*) from members").fetchone()[0] == 1
    assert db.execute("select count(*) from claim_history").fetchone()[0] == 2
    db.close()


def test_conversation_round_trips_and_forgets_unknown_fields(tmp_path):
    """Typed conversation memory: saved and loaded in one place; an older release's extra keys are dropped;
    an empty conversation leaves no row."""
    from xnh.store import db as store_db
    from xnh.store.state import Conversation, load_state, save_state

    db = store_db.open_db(str(tmp_path / "s.db"))
    memory = Conversation(pending="level", total="3000", groups=["五保户"], levels=["township", "county"])
    save_state(db, "13900000001", memory)
    assert load_state(db, "13900000001") == memory
    db.conn.execute("update conversations set state = ? where sender = ?",
                    ['{"pending": "choice", "topics": ["deductible"], "gone": 1}', "13900000001"])
    assert load_state(db, "13900000001") == Conversation(pending="choice", topics=["deductible"])
    save_state(db, "13900000001", Conversation())
    assert db.conn.execute("select count(*) from conversations").fetchone()[0] == 0


@pytest.mark.parametrize("which, locked", [("service", True), ("county", False)])
def test_begin_write_takes_the_service_files_lock_only(tmp_path, which, locked):
    path = str(tmp_path / "w.db")
    db = store_db.open_db(path)
    store_db.begin_write(db)
    other = sqlite3.connect(path if which == "service" else store_db.county_path(path), timeout=0,
                            isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        got = False
    except sqlite3.OperationalError as e:
        got = "locked" in str(e)
    finally:
        other.close()
        db.conn.rollback()
        db.close()
    assert got is locked


def test_the_notice_query_searches_the_outbox_index_instead_of_scanning(db):
    from xnh.store.outbox import payments

    sql = payments._CLAIMS_TO_NOTIFY.format(source="(SELECT DISTINCT claim_id FROM claim_history WHERE id > 0 "
                                                   "AND id <= 10 AND status = :paid)")
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, {"paid": "已拨付"})]
    assert any("SEARCH n USING INDEX outbox_kind_ref_recipient (kind=? AND ref=?)" in p for p in plan), plan
    assert not any(p.startswith("SCAN n") for p in plan), plan
    # negative row: without the index's own WHERE the same look-up scans the outbox
    bare = sql.replace("AND n.campaign_id IS NULL", "")
    assert any(p.startswith("SCAN n") for p in (r[3] for r in db.execute("EXPLAIN QUERY PLAN " + bare,
                                                                             {"paid": "已拨付"})))


def test_xnh_serve_derives_notices_in_the_background_after_it_listens(tmp_path, monkeypatch):
    """serve() binds the socket, then derives in a thread: a long derivation never keeps the webhook silent."""
    import threading

    from xnh import server

    started, release = threading.Event(), threading.Event()

    def slow(db):
        started.set()
        release.wait(10)
        return 0

    monkeypatch.setattr(outbox, "derive_payment_notices", slow)
    path = str(tmp_path / "s.db")
    store_db.open_db(path).close()
    thread = server.derive_in_background(path)
    assert started.wait(5) and thread.is_alive()  # returned at once, deriving meanwhile
    release.set()
    thread.join(5)
    assert not thread.is_alive()
    source = (Path(server.__file__)).read_text(encoding="utf-8")
    body = source[source.index("def serve("):source.index("def start_sender(")]
    assert body.index("make_server(") < body.index("derive_in_background(")  # listening first
