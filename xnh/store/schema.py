"""The whole database schema, in one place, applied by sqlite-utils Migrations.

Two files (xnh/store/db.py opens them): the county data that `xnh sync` writes (`county_migrations`:
members, enrollments, claims, claim_history, sync_runs, rejected_rows) and the service's own state
(`migrations`: conversations, processed messages, tickets, identity attempts, notifications,
subscriptions, bindings, audit). A message writes only the service file, so the import's long
transaction on the county file never holds a lock a message needs.

Money is stored as TEXT holding a Decimal string (never REAL). Dates are ISO TEXT.
Add a new migration at the end of its set; never edit one that has shipped.
"""
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("xnh")  # the service's own file (XNH_DB)
county_migrations = Migrations("xnh-county")  # the county data's file (db.county_path)

COUNTY_TABLES = ("members", "enrollments", "claims", "claim_history", "sync_runs", "rejected_rows")


@county_migrations()
def m001_county_data(db: Database):
    db["members"].create({
        "member_id": str, "household_id": str, "name": str, "sex": str, "id_number": str,
        "relation": str, "phone": str, "township": str, "village": str, "category": str, "updated_at": str,
    }, pk="member_id")
    db["enrollments"].create({
        "year": int, "member_id": str, "household_id": str, "name": str, "sex": str, "id_number": str,
        "relation": str, "phone": str, "township": str, "village": str, "category": str,
        "paid_amount": str, "paid_date": str, "status": str, "updated_at": str,
    }, pk=("year", "member_id"))
    db["claims"].create({
        "claim_id": str, "member_id": str, "household_id": str, "name": str, "id_number": str,
        "visit_type": str, "hospital": str, "level": str, "admitted": str, "discharged": str,
        "total": str, "eligible": str, "reimbursed": str, "status": str, "reject_reason": str,
        "paid_date": str, "paid_channel": str, "updated_at": str,
    }, pk="claim_id")
    db["claim_history"].create({
        "id": int, "claim_id": str, "old_status": str, "status": str, "changed_at": str, "sync_run_id": int,
    }, pk="id")
    db["sync_runs"].create({
        "id": int, "kind": str, "file": str, "encoding": str, "started_at": str, "finished_at": str,
        "inserted": int, "updated": int, "unchanged": int, "rejected": int, "status": str,
    }, pk="id")
    db["rejected_rows"].create({
        "id": int, "sync_run_id": int, "line": int, "column": str, "reason": str, "raw": str,
    }, pk="id")
    db["members"].create_index(["phone"])
    db["members"].create_index(["household_id"])
    db["members"].create_index(["id_number"])
    db["enrollments"].create_index(["household_id", "year"])
    db["enrollments"].create_index(["phone"])
    db["enrollments"].create_index(["id_number"])
    db["claims"].create_index(["household_id", "admitted"])
    db["claims"].create_index(["member_id"])
    db["claim_history"].create_index(["claim_id"])
    db["rejected_rows"].create_index(["sync_run_id"])


@migrations()
def m002_conversation(db: Database):
    db["conversations"].create({"sender": str, "state": str, "updated_at": float}, pk="sender")
    db["bindings"].create({"sender": str, "phone": str, "channel": str, "bound_at": str}, pk="sender")
    db["identity_attempts"].create({"id": int, "sender": str, "at": float, "ok": int}, pk="id")
    db["identity_attempts"].create_index(["sender", "at"])
    db["verified"].create({"sender": str, "household_id": str, "until": float}, pk="sender")
    db["handoff_tickets"].create({
        "id": int, "sender": str, "channel": str, "question": str, "created_at": str, "status": str,
        "answer": str, "answered_by": str, "answered_at": str,
    }, pk="id")
    db["handoff_tickets"].create_index(["status", "id"])
    db["processed_messages"].create({
        "message_sid": str, "sender": str, "reply": str, "at": float,
    }, pk="message_sid")


@migrations()
def m003_outbound(db: Database):
    db["subscriptions"].create({"phone": str, "subscribed": int, "changed_at": str, "via": str}, pk="phone")
    db["notifications"].create({
        "id": int, "phone": str, "kind": str, "ref": str, "text": str, "status": str, "created_at": str,
        "sent_at": str, "provider_sid": str, "error_code": str, "campaign_id": int,
    }, pk="id")
    db["notifications"].create_index(["status", "id"])
    db["notifications"].create_index(["provider_sid"])
    db["notifications"].create_index(["kind", "ref"], unique=True)
    db["audit_log"].create({"id": int, "at": str, "actor": str, "action": str, "detail": str}, pk="id")


@migrations()
def m004_delivery_events(db: Database):
    """Every Twilio delivery callback as it came (notifications keeps only the latest status)."""
    db["delivery_events"].create({
        "id": int, "provider_sid": str, "notification_id": int, "status": str, "error_code": str, "at": float,
    }, pk="id")
    db["delivery_events"].create_index(["provider_sid"])


@migrations(transactional=False)
def m005_county_data_in_its_own_file(db: Database):
    """Until this version the county data lived in the service's file: move it to the county file
    (attached as `county`). `meta` keeps the last claim_history id whose payment notices were derived
    (outbox.derive_payment_notices): the history already there had its notices queued by the sync.

    Two transactions, each writing one file (SQLite does not make a transaction over attached WAL files
    atomic across a crash): copy into the county file and commit, then drop from this file. A crash
    between the two runs the migration again: the copy ignores rows already there."""
    attached = any(row[1] == "county" for row in db.execute("PRAGMA database_list"))
    moving = [t for t in COUNTY_TABLES if attached and db.execute(
        "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?", [t]).fetchone()]
    with db.atomic():
        for table in moving:
            db.execute(f"INSERT OR IGNORE INTO county.{table} SELECT * FROM main.{table}")
    with db.atomic():
        for table in moving:
            db.execute(f"DROP TABLE main.{table}")
        db.execute("DELETE FROM main._sqlite_migrations WHERE migration_set = 'xnh' AND name = 'm001_county_data'")
        db.execute("CREATE TABLE IF NOT EXISTS main.meta (name TEXT PRIMARY KEY, value TEXT)")
        mark = db.execute("SELECT coalesce(max(id), 0) FROM claim_history").fetchone()[0]
        db.execute("INSERT OR IGNORE INTO main.meta (name, value) VALUES ('payment_notices_upto', ?)", [str(mark)])


@migrations()
def m006_outbox(db: Database):
    """One outbox for every outbound message (broadcasts, payment notices, clerks' answers), campaigns,
    numbers known to be bad, and the send-rate bucket shared by every worker (store/outbox.py).
    The queued payment notices move from `notifications` into it with their ids (delivery_events
    keep pointing at them), and `notifications` is dropped."""
    db["campaigns"].create({
        "id": int, "name": str, "audience": str, "text": str, "channels": str, "schedule": str,
        "quiet_start": str, "quiet_end": str, "status": str, "paused": int, "paused_reason": str,
        "created_by": str, "created_at": str, "sent_at": str, "cancelled_at": str,
    }, pk="id")
    db["outbox"].create({
        "id": int, "kind": str, "ref": str, "campaign_id": int, "recipient": str, "channel": str,
        "text": str, "fields": str, "segments": int, "priority": int, "status": str, "reason": str,
        "attempts": int, "not_before": float, "next_attempt_at": float, "quiet_start": str, "quiet_end": str,
        "lease_until": float, "worker": str, "provider_sid": str, "error_code": str, "maybe_sent": int,
        "created_at": str, "updated_at": str, "submitted_at": str,
    }, pk="id", defaults={"attempts": 0, "maybe_sent": 0, "priority": 2})
    db.execute("CREATE UNIQUE INDEX outbox_campaign_recipient ON outbox (campaign_id, recipient, channel) "
               "WHERE campaign_id IS NOT NULL")
    db.execute("CREATE UNIQUE INDEX outbox_kind_ref_recipient ON outbox (kind, ref, recipient, channel) "
               "WHERE campaign_id IS NULL")
    db.execute("CREATE INDEX outbox_due ON outbox (status, priority, id)")
    db.execute("CREATE INDEX outbox_campaign_status ON outbox (campaign_id, status)")
    db.execute("CREATE INDEX outbox_provider_sid ON outbox (provider_sid)")
    db.execute("CREATE INDEX outbox_recipient ON outbox (recipient, created_at)")
    db["bad_numbers"].create({"phone": str, "code": str, "reason": str, "at": str}, pk="phone")
    db["rate_buckets"].create({"name": str, "tat": float}, pk="name")
    if db["notifications"].exists():
        db.execute("""
            INSERT INTO outbox (id, kind, ref, recipient, channel, text, priority, status, reason,
                                provider_sid, error_code, created_at, updated_at, submitted_at,
                                quiet_start, quiet_end)
            SELECT id, kind, ref, phone, 'sms', text, 1,
                   CASE status WHEN 'queued' THEN 'pending' ELSE status END, NULL,
                   provider_sid, error_code, created_at, created_at, sent_at, '21:00', '08:00'
            FROM notifications""")
        db.execute("DROP TABLE notifications")
    db.execute("ALTER TABLE delivery_events RENAME COLUMN notification_id TO outbox_id")


@migrations()
def m007_console(db: Database):
    """The clerks' console (xnh/bot/console/): its users (argon2 hashes, role clerk|admin, disabled
    instead of deleted so the audit log keeps naming them), login attempts (failures are limited per
    name and address) and the exports uploaded through it (the upload id is the import's job id)."""
    db["users"].create({
        "id": int, "name": str, "password_hash": str, "role": str, "active": int, "created_at": str,
        "created_by": str,
    }, pk="id")
    db["users"].create_index(["name"], unique=True)
    db["login_attempts"].create({"id": int, "name": str, "ip": str, "at": float, "ok": int}, pk="id")
    db["login_attempts"].create_index(["name", "ip", "at"])
    db["uploads"].create({
        "id": str, "kind": str, "filename": str, "path": str, "encoding": str, "size": int, "status": str,
        "rows_done": int, "rows_total": int, "error": str, "sync_run_id": int, "inserted": int, "updated": int,
        "unchanged": int, "rejected": int, "uploaded_by": str, "created_at": str, "finished_at": str,
    }, pk="id")



@migrations()
def m008_ticket_topic(db: Database):
    """What a ticket is about, when the bot knew the subject but not the point asked (a partial
    answer): the knowledge-base topic and the points its answer did not state, so that questions
    alike can be grouped and answered once."""
    db["handoff_tickets"].add_column("topic", str)
    db["handoff_tickets"].add_column("points", str)


@migrations()
def m009_senders(db: Database):
    """The outbound senders' heartbeats (store/senders.py): each worker's last round, its state (running,
    retrying after a fault, stopped) and its last fault, so `/healthz` and `xnh broadcast status` can say
    whether anything is sending, from any process."""
    db["senders"].create({
        "id": str, "started_at": float, "heartbeat": float, "state": str, "last_error": str,
        "last_error_at": float, "sent": int,
    }, pk="id")


@county_migrations()
def m008_county_sync_blocks(db: Database):
    """Digests of blocks of export lines an import has taken in whole (xnh/sync/write.py): a re-sent export
    skips them without checking or writing their rows again."""
    db.execute("CREATE TABLE sync_blocks (kind TEXT NOT NULL, digest BLOB NOT NULL, PRIMARY KEY (kind, digest)) "
               "WITHOUT ROWID")


@migrations()
def m009_outbox_kind_ref(db: Database):
    """Payment notices are looked up by (kind, ref) whatever their recipient (outbox.derive_payment_notices:
    NOT EXISTS … kind = 'payment' AND ref = claim_id): the partial unique index cannot serve that query,
    which read the whole outbox once per paid claim (16 minutes for 170,000 notices, growing as n²)."""
    db.execute("CREATE INDEX IF NOT EXISTS outbox_kind_ref ON outbox (kind, ref)")


@county_migrations()
def m010_county_sync_blocks_run(db: Database):
    """The last import that had each block (sync_blocks.sync_run_id): those of the last
    xnh.sync.write.KEEP_RUNS imports of a kind are kept, so that the table stays small over the years."""
    db.execute("ALTER TABLE sync_blocks ADD COLUMN sync_run_id INTEGER")


@migrations()
def m011_wechat(db: Database):
    """The WeChat official account (xnh/bot/wechat.py, store/wechat.py): the reply given to each inbound
    message (by MsgId, or sender and CreateTime for events), so WeChat's retries get the same answer; each
    follower's last interactions and the customer-service messages sent since (the 48-hour window and its
    count limits); and the access token, one per AppID, shared by every process."""
    db["wechat_replies"].create({"msg_key": str, "sender": str, "reply": str, "at": float}, pk="msg_key")
    db["wechat_users"].create({
        "openid": str, "following": int, "last_message_at": float, "last_event_at": float,
        "cs_since_message": int, "cs_since_event": int, "updated_at": float,
    }, pk="openid", defaults={"following": 1, "cs_since_message": 0, "cs_since_event": 0})
    db["wechat_tokens"].create({"app_id": str, "token": str, "expires_at": float, "fetched_at": float},
                               pk="app_id")


@migrations()
def m012_outbox_claimed_at(db: Database):
    """When a worker claimed each outbox row (real time), just before handing it to the provider: after a
    kill -9, a row still `claimed` is looked up at the provider for messages since then (sent: recorded;
    never received: sent again; the provider cannot say: `unknown`, listed for a clerk)."""
    db["outbox"].add_column("claimed_at", float)


@migrations()
def m013_inbox(db: Database):
    """The clerks' inbox (store/tickets.py): who handles a ticket (我来处理), how many answers it has had (a
    clerk answers the ticket as she saw it, so a second clerk answering at once is refused), since when it
    waits, and its thread: each message in and each answer out with the outbox row that carries it (whose
    status says whether the answer was sent, delivered or failed and why). Existing tickets get their
    question and answer as their thread."""
    db["handoff_tickets"].add_column("assigned_to", str)
    db["handoff_tickets"].add_column("assigned_at", str)
    db["handoff_tickets"].add_column("answers", int, not_null_default=0)
    db["handoff_tickets"].add_column("waiting_since", str)
    db.execute("UPDATE handoff_tickets SET answers = (status = 'answered'), waiting_since = created_at")
    db["handoff_tickets"].create_index(["sender", "status"])
    db["handoff_tickets"].create_index(["status", "waiting_since"])
    db["ticket_messages"].create({
        "id": int, "ticket_id": int, "at": str, "direction": str, "text": str, "actor": str, "outbox_id": int,
    }, pk="id")
    db["ticket_messages"].create_index(["ticket_id"])
    db.execute("INSERT INTO ticket_messages (ticket_id, at, direction, text) "
               "SELECT id, created_at, 'in', question FROM handoff_tickets ORDER BY id")
    db.execute("INSERT INTO ticket_messages (ticket_id, at, direction, text, actor, outbox_id) "
               "SELECT t.id, t.answered_at, 'out', t.answer, t.answered_by, (SELECT o.id FROM outbox AS o "
               "WHERE o.kind = 'reply' AND o.ref = 'ticket:' || t.id AND o.campaign_id IS NULL LIMIT 1) "
               "FROM handoff_tickets AS t WHERE t.status = 'answered' ORDER BY t.id")


@migrations()
def m014_local_answers(db: Database):
    """Answers the county's office saved from the question radar (store/local_answers.py): the bot answers
    a question alike with them from then on. Kept in the county's service database, never in the package:
    the knowledge base ships with the code, these are the office's own. `topic` and `points` when saved
    for a partial answer (matched exactly), else matched by likeness to the question and its phrasings."""
    db["local_answers"].create({
        "id": int, "topic": str, "points": str, "question": str, "phrasings": str, "answer": str, "source": str,
        "status": str, "tickets": str, "created_by": str, "created_at": str, "updated_by": str, "updated_at": str,
    }, pk="id")
    db["local_answers"].create_index(["topic", "points", "status"])


@migrations()
def m015_upload_runner(db: Database):
    """Which process runs a console import (host:pid), so one interrupted by a restart is seen at the next
    start, marked failed with its reason and can be started again (store/uploads.py `fail_interrupted`)."""
    db["uploads"].add_column("runner", str)
    db["uploads"].add_column("started_at", str)


@migrations()
def m016_console_sessions(db: Database):
    """Console sessions kept on the server (store/sessions.py): a session cookie names a row here, and a
    logout, a password change or a user's deactivation ends the rows, so a copied cookie stops working.
    `users.must_change`: an admin reset the password; the user sets a new one before anything else."""
    db["sessions"].create({"id": str, "user_id": int, "created_at": str, "ip": str, "ended_at": str,
                           "ended_why": str}, pk="id")
    db["sessions"].create_index(["user_id", "ended_at"])
    db["users"].add_column("must_change", int, not_null_default=0)
    db["users"].add_column("password_changed_at", str)
    db["login_attempts"].create_index(["ip", "at"])
    db["login_attempts"].create_index(["name", "at"])


@migrations()
def m017_dashboard_cache(db: Database):
    """The console dashboard's figures, computed by SQL aggregates over the county data and kept here
    (store/stats.py) until the county data changes (a new sync run or claim history): a million claims are
    summed once per sync, not once per page."""
    db["dashboard_cache"].create({"key": str, "version": str, "data": str, "at": str}, pk="key")


@migrations()
def m018_campaign_version(db: Database):
    """A campaign's change counter (store/campaigns.py): a trigger moves it on whenever one of its outbox
    rows changes status, so a page polling a campaign answers "nothing changed" (304) from one row, and
    the counts by status (a scan of its rows: seconds at millions) are kept with the version they are of."""
    db["campaigns"].add_column("version", int, not_null_default=0)
    db["campaigns"].add_column("counts", str)
    db["campaigns"].add_column("counts_version", int)
    db.execute("CREATE TRIGGER outbox_campaign_version AFTER UPDATE OF status ON outbox "
               "WHEN new.campaign_id IS NOT NULL AND new.status IS NOT old.status "
               "BEGIN UPDATE campaigns SET version = version + 1 WHERE id = new.campaign_id; END")


@migrations()
def m019_one_notice_index(db: Database):
    """The payment-notice look-up now repeats the partial unique index's WHERE (campaign_id IS NULL) and
    searches outbox_kind_ref_recipient; m009's outbox_kind_ref served the same look-up before that and is
    only a second index to keep up on every outbox write."""
    db.execute("DROP INDEX IF EXISTS outbox_kind_ref")
