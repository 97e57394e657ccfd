"""Broadcasts and the outbox end to end against a local fake Twilio API (tests/fake_twilio.py): the
audience parser, previews, the rate, retries and every error class, callbacks, opt-outs, the send window
on a fixed clock, cancel, payment notices, clerks' replies first, the CLI contract, and kill -9 of a worker."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_twilio import FakeTwilio
from xnh.broadcast import audience, campaigns, worker
from xnh.cli import cli
from xnh.providers import base, telegram, twilio as twilio_provider
from xnh.settings import Settings
from xnh.store import outbox, state
from xnh.store.db import open_db

ROOT = Path(__file__).resolve().parents[1]


def make_county(db, n: int, township: str = "东山镇", start: int = 0, status: str = "未缴费", year: int = 2027):
    """n households of one member each, phones 1390000NNNN, enrolled (已参合) last year and `status` in `year`."""
    members, enrollments = [], []
    for i in range(start, start + n):
        mid, hh, phone = f"M{i:06d}", f"H{i:06d}", f"1390{i:07d}"
        members.append((mid, hh, f"王小{i % 10}", f"52990119900101{i:04d}", "户主", phone, township, "村一", "普通"))
        enrollments.append((year - 1, mid, hh, "30.00", "已参合"))
        enrollments.append((year, mid, hh, "", status))
    db.conn.executemany("INSERT INTO members (member_id, household_id, name, id_number, relation, phone, township, "
                        "village, category) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", members)
    db.conn.executemany("INSERT INTO enrollments (year, member_id, household_id, paid_amount, status) "
                        "VALUES (?, ?, ?, ?, ?)", enrollments)
    db.conn.commit()


@pytest.fixture
def twilio(monkeypatch):
    with FakeTwilio(timeout_delay=1.5) as fake:
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
        monkeypatch.setenv("TWILIO_FROM_NUMBER", "+15005550006")
        monkeypatch.setenv("TWILIO_API_BASE", fake.base)
        monkeypatch.setenv("XNH_SMS_PER_SECOND", "50")
        monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
        monkeypatch.setattr(base, "BACKOFF", 0.05)
        monkeypatch.setattr(base, "RATE_LIMITED_DELAY", 0.05)
        monkeypatch.setattr(twilio_provider, "RETRY_ONCE_DELAY", 0.1)
        yield fake


def run_worker(db, **kw):
    return run_worker_on(db_path(db), **kw)


def run_worker_on(path: str, **kw):
    settings = Settings.from_env()  # what the test set in the environment
    senders = {"sms": twilio_provider.TwilioSender(settings, timeout=0.5), "telegram": telegram.TelegramSender(settings)}
    return worker.run(settings, path, until_idle=True, senders=senders, **kw)


def db_path(db) -> str:
    return db.execute("PRAGMA database_list").fetchone()[2]


def new_campaign(db, audience_text="unpaid=2027", text="{{ name }}您好,{{ year }}年度新农合请于{{ deadline }}前缴费",
                 **kw):
    return campaigns.create(db, name="缴费提醒", audience=audience_text, text=text, actor="tester", **kw)


# -- the audience parser ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,terms", [
    ("unpaid=2027", {"unpaid": 2027}),
    ("unpaid=2027 township=东山镇", {"unpaid": 2027, "township": "东山镇"}),
    ("  enrolled=2026   village=西河村 category=五保户 ", {"enrolled": 2026, "village": "西河村", "category": "五保户"}),
    ("claim_status=已拨付 claim_days=30", {"claim_status": "已拨付", "claim_days": 30}),
])
def test_audience_terms(text, terms):
    assert audience.parse(text).terms == terms


def test_full_width_and_chinese_terms_are_read():
    """As a Chinese input method writes them: full-width ＝, digits and spaces; terms named in Chinese."""
    assert audience.parse("未缴费＝２０２７　乡镇＝东山镇 claim_days＝３").terms == \
        {"unpaid": 2027, "township": "东山镇", "claim_days": 3}
    assert audience.compose({"year": "２０２７", "paid": "unpaid", "township": "东山镇", "village": ""}) == \
        "unpaid=2027 township=东山镇"
    assert audience.describe("unpaid=2027 township=东山镇") == "2027年未缴费 · 乡镇:东山镇"


@pytest.mark.parametrize("text,says", [
    ("", "no term"),
    ("paid=2027", "unknown term"),
    ("unpaid", "no value"),
    ("unpaid=", "no value"),
    ("unpaid=27", "year"),
    ("unpaid=二〇二七", "year"),
    ("claim_days=0", "days"),
    ("claim_days=-3", "days"),
    ("claim_days=3x", "days"),
    ("claim_status=paid", "claim_status= is one of"),
    ("township=东山镇 township=西河乡", "twice"),
    ("township==x", "name"),
])
def test_audience_errors_say_what_is_wrong(text, says):
    with pytest.raises(audience.AudienceError, match=says):
        audience.parse(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("=_ abcdeiklmnprstuvy0123456789东山镇已拨付\t")), max_size=40))
def test_audience_parser_accepts_or_explains(text):
    try:
        parsed = audience.parse(text)
    except audience.AudienceError as e:
        assert str(e)
        return
    assert parsed.terms and set(parsed.terms) <= set(audience.NAMES)
    assert len(parsed.terms) == len(text.split())


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["township", "village", "category"]),
                       st.text(alphabet="东西南北山河村镇乡", min_size=1, max_size=6), min_size=1),
       st.integers(2000, 2099))
def test_audience_round_trips(names, year):
    text = " ".join([f"unpaid={year}"] + [f"{k}={v}" for k, v in names.items()])
    assert audience.parse(text).terms == {"unpaid": year, **names}


# -- create and preview ------------------------------------------------------------------------------------

def test_preview_counts_excludes_renders_and_prices(db, monkeypatch):
    monkeypatch.setenv("XNH_SMS_PRICE", "0.10")
    monkeypatch.setenv("XNH_SMS_PER_SECOND", "2")
    make_county(db, 6)
    make_county(db, 2, township="西河乡", start=100)
    state.set_subscribed(db, "13900000001", False, via="sms")
    outbox.mark_bad_number(db, "13900000002", "21211", "bad number")
    db.conn.commit()
    cid = new_campaign(db, "unpaid=2027 township=东山镇", text="{{ name }}您好,请于{{ deadline }}前缴纳{{ year }}年度"
                       "参合费{{ amount|yuan }}元。" + "详" * 60)
    p = campaigns.preview(db, cid, Settings.from_env())
    assert p.count == 4 and p.excluded == {"opted out": 1, "bad number": 1}
    assert len(p.samples) == 3 and p.samples[0].startswith("王*0您好,请于2026年12月30日前缴纳2027年度参合费30元")
    assert "王小" not in "".join(p.samples)  # names masked
    assert p.segments_per_message == 2 and p.total_segments == 8
    assert p.cost == Decimal("0.80") and p.seconds == round(8 / (2 * outbox.SAFETY), 1)
    assert p.blockers == [] and p.same_day == 0


@pytest.mark.parametrize("text,blocker", [
    ("{{ nmae }}您好", "template error"),
    ("{{ name.__class__.__mro__ }}", "template error"),  # the sandbox
    ("{% for %}", "template error"),
    ("报" * 1601, "over the limit"),
])
def test_draft_preview_blockers(db, text, blocker):
    make_county(db, 2)
    p = campaigns.draft_preview(db, audience="unpaid=2027", text=text)
    assert any(blocker in b for b in p.blockers), p.blockers


def test_draft_preview_of_an_empty_audience_and_a_bad_one(db):
    make_county(db, 2)
    assert campaigns.draft_preview(db, audience="unpaid=2027 township=没有镇", text="hi").blockers[0].startswith("收件人为空")
    assert "unknown term" in campaigns.draft_preview(db, audience="paid=2027", text="hi").blockers[0]
    assert campaigns.draft_preview(db, audience="unpaid=2027", text="hi").blockers == []


@pytest.mark.parametrize("today,blocked", [
    ("2026-11-15T22:30:00+08:00", True),  # quiet until 08:00 tomorrow
    ("2026-11-15T03:00:00+08:00", False),  # quiet until 08:00 today: it waits, nothing to fix
    ("2026-11-15T10:00:00+08:00", False),
])
def test_a_send_window_that_starts_tomorrow_blocks(db, monkeypatch, today, blocked):
    monkeypatch.setenv("XNH_TODAY", today)
    make_county(db, 1)
    p = campaigns.draft_preview(db, audience="unpaid=2027", text="hi")
    assert any("tomorrow" in b for b in p.blockers) == blocked
    assert campaigns.draft_preview(db, audience="unpaid=2027", text="hi",
                                   schedule="2026-11-16T08:30:00").blockers == []


@pytest.mark.parametrize("kw,says", [
    ({"name": ""}, "name"),
    ({"audience": "paid=1"}, "unknown term"),
    ({"text": "{{ x"}, "template error"),
    ({"channels": ("fax",)}, "channels"),
    ({"window": ("21:00",)}, "window"),
    ({"window": "25:00-08:00"}, "window"),
    ({"schedule": "tomorrow"}, "ISO"),
])
def test_create_refuses(db, kw, says):
    args = {"name": "x", "audience": "unpaid=2027", "text": "hi", "actor": "t", **kw}
    with pytest.raises(ValueError, match=says):
        campaigns.create(db, **args)


def test_create_send_cancel_are_audited_with_the_actor(db, twilio):
    make_county(db, 3)
    cid = new_campaign(db)
    assert campaigns.send(db, cid, actor="clerk-a") == 3
    assert campaigns.cancel(db, cid, actor="clerk-b") == 3
    log = db.execute("select actor, action from audit_log where action like 'campaign_%' order by id").fetchall()
    assert log == [("tester", "campaign_create"), ("clerk-a", "campaign_send"), ("clerk-b", "campaign_cancel")]


def test_one_message_per_phone_even_when_sent_twice_and_phones_shared(db, twilio):
    make_county(db, 3)
    # a second household registered with the same phone as the first
    db.conn.execute("INSERT INTO members (member_id, household_id, name, relation, phone, township) "
                    "VALUES ('X1', 'HX', '李四', '户主', '13900000000', '东山镇')")
    db.conn.execute("INSERT INTO enrollments (year, member_id, household_id, status) VALUES (2027, 'X1', 'HX', '未缴费')")
    db.conn.commit()
    cid = new_campaign(db)
    assert campaigns.preview(db, cid).count == 3
    assert campaigns.send(db, cid, actor="t") == 3
    assert campaigns.send(db, cid, actor="t") == 0
    run_worker(db)
    assert sorted(r[1] for r in twilio.requests) == ["+8613900000000", "+8613900000001", "+8613900000002"]


def test_same_day_overlap_is_counted(db, twilio):
    make_county(db, 4)
    first = new_campaign(db, "unpaid=2027")
    campaigns.send(db, first, actor="t")
    second = new_campaign(db, "unpaid=2027", text="第二条")
    assert campaigns.preview(db, second).same_day == 4
    assert campaigns.preview(db, first).same_day == 0


def test_demo_database_never_sends(db, twilio):
    make_county(db, 2)
    cid = new_campaign(db)
    db.conn.execute("INSERT INTO meta (name, value) VALUES ('demo', '1')")
    db.conn.commit()
    with pytest.raises(campaigns.CampaignError, match="demo"):
        campaigns.send(db, cid, actor="t")
    outbox.queue_reply(db, channel="sms", recipient="13900000000", text="答复", ref="ticket:1")
    assert run_worker(db) == 0 and twilio.requests == []


# -- sending -----------------------------------------------------------------------------------------------

def test_campaign_is_sent_once_to_everyone_with_callbacks_url(db, twilio, monkeypatch):
    monkeypatch.setenv("XNH_PUBLIC_URL", "https://xnh.example.cn")
    make_county(db, 5)
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    assert run_worker(db) == 5
    assert len(twilio.requests) == 5 and len({r[1] for r in twilio.requests}) == 5
    ids = [r[0] for r in db.execute("select id from outbox where campaign_id = ? order by id", [cid])]
    assert sorted(r[3] for r in twilio.requests) == [f"https://xnh.example.cn/sms/status?outbox={i}" for i in ids]
    assert twilio.requests[0][2].endswith("年度新农合请于2026年12月30日前缴费")
    assert outbox.counts(db, cid)["submitted"] == 5
    status = campaigns.status(db, cid)
    assert status["finished"] and status["stale_claims"] == [] and not status["paused"]


def test_the_rate_holds_in_every_second(db, twilio, monkeypatch):
    """The worker starts at most the rate's sends in any window of one second (not only whole seconds).
    Taken where the worker starts each send: the fake's arrival times add this machine's scheduling
    jitter (slots are 104 ms apart at 10/s, so a 40-ms delay under load put 11 arrivals in one sliding
    second while the sends kept the rate)."""
    monkeypatch.setenv("XNH_SMS_PER_SECOND", "10")
    started = []
    send = twilio_provider.TwilioSender.send

    def timed(self, row):
        started.append(time.monotonic())
        return send(self, row)

    monkeypatch.setattr(twilio_provider.TwilioSender, "send", timed)
    make_county(db, 35)
    campaigns.send(db, new_campaign(db), actor="t")
    assert run_worker(db) == 35
    assert len(twilio.requests) == 35 and len({r[1] for r in twilio.requests}) == 35
    times = sorted(started)
    assert len(times) == 35
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) <= 10


def test_two_workers_share_the_rate(db, twilio, monkeypatch):
    import threading

    monkeypatch.setenv("XNH_SMS_PER_SECOND", "20")
    make_county(db, 60)
    campaigns.send(db, new_campaign(db), actor="t")
    threads = [threading.Thread(target=run_worker_on, args=(db_path(db),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(twilio.requests) == 60 and len({r[1] for r in twilio.requests}) == 60
    assert max(twilio.per_second().values()) <= 20


def test_segments_debit_the_bucket(db, twilio, monkeypatch):
    monkeypatch.setenv("XNH_SMS_PER_SECOND", "10")
    make_county(db, 12)
    campaigns.send(db, new_campaign(db, text="报" * 100), actor="t")  # 2 parts each: 5 messages a second
    run_worker(db)
    assert max(twilio.per_second().values()) <= 5


@pytest.mark.parametrize("script,status,reason,requests,attempts", [
    (["ok"], "submitted", None, 1, 1),
    ([429, 429, "ok"], "submitted", None, 3, 1),  # 429 waits without counting an attempt
    ([500, "ok"], "submitted", None, 2, 2),
    ([503, 500, 502], "failed", "may have been sent", 3, 3),  # at most 3 attempts, and says a 5xx may have sent
    (["timeout", "ok"], "submitted", None, 2, 2),
    ([21610], "skipped", "opted out", 1, 0),
    ([21211], "failed", "bad number", 1, 1),
    ([21614], "failed", "bad number", 1, 1),
    ([30005], "failed", "bad number", 1, 1),
    ([30006], "failed", "bad number", 1, 1),
    ([30003, "ok"], "submitted", None, 2, 2),  # retried once later
    ([30003, 30003], "failed", "unreachable", 2, 2),  # and only once
    ([30004], "failed", "blocked", 1, 1),
    ([30007], "failed", "filtered", 1, 1),
    ([21999], "failed", "error 21999", 1, 1),
])
def test_each_error_class(db, twilio, script, status, reason, requests, attempts):
    make_county(db, 2)
    twilio.script["+8613900000000"] = list(script)
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    run_worker(db)
    row = db.execute("select status, reason, attempts from outbox where recipient = '13900000000'").fetchone()
    assert row[0] == status and (reason is None or reason in row[1]) and row[2] == attempts
    assert len(twilio.to("+8613900000000")) == requests
    assert len(twilio.to("+8613900000001")) == 1  # the other recipient is not held up
    opted = db.execute("select subscribed from subscriptions where phone = '13900000000'").fetchone()
    assert (opted == (0,)) == (script == [21610])
    bad = db.execute("select code from bad_numbers where phone = '13900000000'").fetchone()
    assert (bad is not None) == (reason == "bad number")


def test_a_bad_or_opted_out_number_is_left_out_of_the_next_campaign(db, twilio):
    make_county(db, 3)
    twilio.script["+8613900000000"] = [21610]
    twilio.script["+8613900000001"] = [30006]
    campaigns.send(db, new_campaign(db), actor="t")
    run_worker(db)
    second = new_campaign(db, text="再次提醒")
    assert campaigns.preview(db, second).excluded == {"opted out": 1, "bad number": 1}
    campaigns.send(db, second, actor="t")
    run_worker(db)
    assert len(twilio.to("+8613900000000")) == 1 and len(twilio.to("+8613900000001")) == 1
    assert outbox.failures(db, second) == {"bad number": 1, "opted out": 1}


def test_an_opt_out_by_sms_stops_queued_messages_at_once(db, twilio):
    make_county(db, 2)
    campaigns.send(db, new_campaign(db), actor="t")
    state.set_subscribed(db, "13900000000", False, via="sms")  # TD arrives after the send, before the worker
    db.conn.commit()
    run_worker(db)
    assert twilio.to("+8613900000000") == [] and len(twilio.to("+8613900000001")) == 1


def test_a_burst_of_carrier_blocks_pauses_the_campaign(db, twilio):
    make_county(db, 30)
    for i in range(6):
        twilio.script[f"+861390000000{i}"] = [30007 if i % 2 else 30004]
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    run_worker(db)
    s = campaigns.status(db, cid)
    assert s["paused"] and "30004/30007" in s["paused_reason"]
    assert s["counts"]["pending"] > 0  # the rest waits for the clerk
    assert db.execute("select actor from audit_log where action = 'campaign_pause'").fetchone() == ("worker",)
    sent = len(twilio.requests)
    campaigns.resume(db, cid, actor="t")
    run_worker(db)
    assert len(twilio.requests) == sent + s["counts"]["pending"]


def test_cancel_stops_every_waiting_message(db, twilio):
    make_county(db, 5)
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    assert campaigns.cancel(db, cid, actor="t") == 5
    run_worker(db)
    assert twilio.requests == [] and outbox.counts(db, cid)["cancelled"] == 5
    with pytest.raises(campaigns.CampaignError, match="cancelled"):
        campaigns.send(db, cid, actor="t")


@pytest.mark.parametrize("today,sent", [
    ("2026-11-15T22:30:00+08:00", 0),
    ("2026-11-16T03:59:00+08:00", 0),
    ("2026-11-16T07:59:00+08:00", 0),
    ("2026-11-16T08:00:00+08:00", 3),
    ("2026-11-16T20:59:00+08:00", 3),
    ("2026-11-16T21:00:00+08:00", 0),
])
def test_the_send_window_on_a_fixed_clock(db, twilio, monkeypatch, today, sent):
    make_county(db, 3)
    monkeypatch.setenv("XNH_TODAY", "2026-11-15T10:00:00+08:00")
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    monkeypatch.setenv("XNH_TODAY", today)
    run_worker(db)
    assert len(twilio.requests) == sent
    assert outbox.counts(db, cid)["pending"] == 3 - sent


def test_the_night_waits_for_the_morning(db, twilio, monkeypatch):
    make_county(db, 3)
    monkeypatch.setenv("XNH_TODAY", "2026-11-15T10:00:00+08:00")
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    monkeypatch.setenv("XNH_TODAY", "2026-11-15T22:30:00+08:00")
    assert run_worker(db) == 0
    monkeypatch.setenv("XNH_TODAY", "2026-11-16T08:00:00+08:00")
    assert run_worker(db) == 3


def test_a_schedule_waits_for_its_time(db, twilio, monkeypatch):
    make_county(db, 2)
    cid = new_campaign(db, schedule="2026-06-16T09:00:00")
    campaigns.send(db, cid, actor="t")
    assert run_worker(db) == 0
    monkeypatch.setenv("XNH_TODAY", "2026-06-16T09:00:00+08:00")
    assert run_worker(db) == 2


def test_replies_go_before_bulk_and_at_any_hour(db, twilio, monkeypatch):
    monkeypatch.setenv("XNH_SMS_PER_SECOND", "5")
    make_county(db, 8)
    campaigns.send(db, new_campaign(db), actor="t")
    rid = outbox.queue_reply(db, channel="sms", recipient="13700000009", text="您的问题答复:…", ref="ticket:12")
    assert outbox.queue_reply(db, channel="sms", recipient="13700000009", text="again", ref="ticket:12") == rid
    run_worker(db)
    assert twilio.requests[0][1] == "+8613700000009"
    twilio.requests.clear()
    monkeypatch.setenv("XNH_TODAY", "2026-06-15T23:00:00+08:00")
    outbox.queue_reply(db, channel="sms", recipient="13700000009", text="深夜答复", ref="ticket:13")
    run_worker(db)
    assert [r[1] for r in twilio.requests] == ["+8613700000009"]


def test_queue_reply_refuses_and_telegram_without_a_token_is_skipped(db, twilio):
    with pytest.raises(outbox.OutboxError):
        outbox.queue_reply(db, channel="fax", recipient="1", text="x", ref="ticket:1")
    with pytest.raises(outbox.OutboxError):
        outbox.queue_reply(db, channel="sms", recipient="139", text=" ", ref="ticket:1")
    rid = outbox.queue_reply(db, channel="telegram", recipient="4242", text="答复", ref="ticket:2")
    run_worker(db)
    row = db.execute("select recipient, status, reason from outbox where id = ?", [rid]).fetchone()
    assert row == ("tg:4242", "skipped", "no telegram credentials")


def test_telegram_channel_reaches_bound_phones_instead_of_sms(db, twilio):
    make_county(db, 3)
    state.bind(db, "tg:777", "13900000001", "telegram")
    db.conn.commit()
    both = campaigns.preview(db, new_campaign(db, channels=("sms", "telegram")))
    assert both.count == 3 and both.channels == {"sms": 2, "telegram": 1} and both.total_segments == 2
    only = campaigns.preview(db, new_campaign(db, channels=("telegram",)))
    assert only.count == 1 and only.cost == 0


def test_payment_notices_go_through_the_outbox(db, twilio, monkeypatch):
    from conftest import put

    make_county(db, 1)
    for cid, paid in (("BC1", "2026-06-10"), ("BC2", "2026-01-10")):
        put(db, "claims", {"claim_id": cid, "member_id": "M000000", "household_id": "H000000", "name": "王小0",
                           "visit_type": "住院", "hospital": "县医院", "admitted": "2026-01-02", "reimbursed": "4000.00",
                           "status": "已拨付", "paid_date": paid})
        put(db, "claim_history", {"claim_id": cid, "old_status": "审核通过", "status": "已拨付", "changed_at": paid})
    assert outbox.derive_payment_notices(db) == 2
    rows = dict(db.execute("select ref, status from outbox where kind = 'payment'").fetchall())
    assert rows == {"BC1": "pending", "BC2": "skipped"}  # paid more than 30 days ago: not announced
    assert outbox.failures(db, None) == {"old payment": 1}
    assert run_worker(db) == 1
    assert "4000元" in twilio.requests[0][2] and twilio.requests[0][1] == "+8613900000000"


# -- delivery callbacks on outbox rows --------------------------------------------------------------------

def test_callbacks_update_rows_by_outbox_id(db, twilio, monkeypatch, tmp_path):
    from twilio.request_validator import RequestValidator

    from xnh.app import create_app

    monkeypatch.setenv("XNH_PUBLIC_URL", "https://xnh.example.cn")
    make_county(db, 30)
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    run_worker(db)
    app = create_app({"TESTING": True, "DB_PATH": db_path(db), "TWILIO_AUTH_TOKEN": "token",
                      "PUBLIC_URL": "https://xnh.example.cn"})
    client = app.test_client()

    def callback(url, status, code=None):
        form = {"MessageSid": "SMx", "MessageStatus": status, **({"ErrorCode": code} if code else {})}
        sig = RequestValidator("token").compute_signature(url, form)
        path = url.removeprefix("https://xnh.example.cn")
        return client.post(path, data=form, headers={"X-Twilio-Signature": sig})

    urls = sorted(r[3] for r in twilio.requests)
    assert callback(urls[0], "delivered").status_code == 204
    assert callback(urls[0], "sent").status_code == 204  # late: changes nothing
    assert callback(urls[1], "undelivered", "30005").status_code == 204
    for url in urls[2:8]:
        callback(url, "undelivered", "30007")
    rows = dict(db.execute("select id, status from outbox where campaign_id = ?", [cid]).fetchall())
    first, second = (int(u.rsplit("=", 1)[1]) for u in urls[:2])
    assert rows[first] == "delivered" and rows[second] == "undelivered"
    assert db.execute("select count(*) from delivery_events where outbox_id = ?", [first]).fetchone()[0] == 2
    phone = db.execute("select recipient from outbox where id = ?", [second]).fetchone()[0]
    assert db.execute("select code from bad_numbers where phone = ?", [phone]).fetchone() == ("30005",)
    assert campaigns.status(db, cid)["paused"]  # 6 of the last 20 filtered by the carrier
    assert outbox.failures(db, cid)["filtered by the carrier"] == 6


# -- the command line -----------------------------------------------------------------------------------

def test_cli_contract(tmp_path, monkeypatch, twilio):
    path = tmp_path / "cli.db"
    monkeypatch.setenv("XNH_DB", str(path))
    db = open_db(str(path))
    make_county(db, 3)
    db.close()
    runner = CliRunner()
    new = runner.invoke(cli, ["broadcast", "new", "--name", "提醒", "--audience", "unpaid=2027 township=东山镇",
                              "--text", "{{ name }}请缴费", "--channel", "sms", "--window", "21:00-08:00"])
    assert new.exit_code == 0, new.output
    cid = int(new.output.strip().splitlines()[-1])
    preview = runner.invoke(cli, ["broadcast", "preview", str(cid)])
    assert "recipients: 3" in preview.output and "preview 1: 王*0请缴费" in preview.output
    assert "blockers: none" in preview.output and "cost: 0.15" in preview.output
    assert runner.invoke(cli, ["broadcast", "send", str(cid)]).output.strip() == "queued=3"
    assert runner.invoke(cli, ["worker", "--until-idle"]).output.strip() == "sent=3"
    status = runner.invoke(cli, ["broadcast", "status", str(cid)])
    assert "submitted=3" in status.output and status.exit_code == 0
    as_json = json.loads(runner.invoke(cli, ["broadcast", "status", str(cid), "--json"]).output)
    assert as_json["counts"]["submitted"] == 3
    assert runner.invoke(cli, ["broadcast", "cancel", str(cid)]).output.strip() == "cancelled=0"


@pytest.mark.parametrize("args,says", [
    (["broadcast", "new", "--name", "x", "--audience", "paid=2027", "--text", "hi"], "unknown term"),
    (["broadcast", "new", "--name", "x", "--audience", "unpaid=2027", "--text", "{{ x"], "template error"),
    (["broadcast", "new", "--name", "x", "--audience", "unpaid=2027", "--text", "hi", "--window", "9-8"], "window"),
    (["broadcast", "preview", "999"], "no campaign 999"),
    (["broadcast", "send", "999"], "no campaign 999"),
    (["broadcast", "status", "999"], "no campaign 999"),
    (["broadcast", "cancel", "999"], "no campaign 999"),
])
def test_cli_refusals_are_one_line(tmp_path, monkeypatch, args, says):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "x.db"))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and says in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_send_of_an_empty_audience_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "x.db"))
    runner = CliRunner()
    cid = runner.invoke(cli, ["broadcast", "new", "--name", "x", "--audience", "unpaid=2027", "--text", "hi"])
    result = runner.invoke(cli, ["broadcast", "send", cid.output.strip().splitlines()[-1]])
    assert result.exit_code == 1 and "audience is empty" in result.output


# -- stopping and killing a worker: nothing lost, nothing doubled -----------------------------------------------

def _worker_process(env, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "xnh", "worker"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupt_at_random_points(twilio, env, tmp_path, signals, rng, total):
    """Start `xnh worker`, let it send a random number of messages, send it the next of `signals`; again."""
    for sig in signals:
        before = len(twilio.requests)
        process = _worker_process(env, tmp_path)
        target, deadline = before + rng.randint(3, 25), time.time() + 30
        while len(twilio.requests) < min(target, total) and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(rng.random() * 0.05)  # anywhere between two sends
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
        if sig == signal.SIGTERM:  # graceful: finishes what is in flight, releases the rest, says so
            assert process.returncode == 0 and out.startswith("stopped sent="), (out, err)
            db = open_db(env["XNH_DB"])
            assert db.execute("SELECT count(*) FROM outbox WHERE status = 'claimed' AND worker LIKE ?",
                              [f"%:{process.pid}:%"]).fetchone()[0] == 0  # (a killed one's may wait to be settled)
            db.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_sigterm_and_kill_9_at_random_points_then_until_idle_send_each_exactly_once(tmp_path, twilio, seed):
    rng = random.Random(seed)
    path = tmp_path / "crash.db"
    db = open_db(str(path))
    make_county(db, 150)
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    db.close()
    env = {**os.environ, "XNH_DB": str(path), "XNH_SMS_PER_SECOND": "100", "PYTHONPATH": str(ROOT)}
    signals = [signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM]
    rng.shuffle(signals)
    _interrupt_at_random_points(twilio, env, tmp_path, signals, rng, 150)
    assert 0 < len(twilio.requests) < 150
    again = subprocess.run([sys.executable, "-m", "xnh", "worker", "--until-idle"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=90)
    assert again.returncode == 0, again.stderr
    db = open_db(str(path))
    status = campaigns.status(db, cid)
    phones = [r[0] for r in db.execute("select recipient from outbox where campaign_id = ?", [cid])]
    assert sorted(len(twilio.to("+86" + p)) for p in phones) == [1] * 150  # every recipient exactly once
    assert status["counts"]["submitted"] == 150 and status["counts"]["unknown"] == 0 and status["finished"]
    assert status["stale_claims"] == []
    db.close()


def test_a_kill_9_when_the_provider_cannot_be_asked_lists_the_unknown_rows(tmp_path, twilio):
    path = tmp_path / "unknown.db"
    db = open_db(str(path))
    make_county(db, 80)
    cid = new_campaign(db)
    campaigns.send(db, cid, actor="t")
    db.close()
    twilio.list_fails = True  # the provider's message list is down: a dead worker's rows cannot be settled
    env = {**os.environ, "XNH_DB": str(path), "XNH_SMS_PER_SECOND": "100", "PYTHONPATH": str(ROOT)}
    _interrupt_at_random_points(twilio, env, tmp_path, [signal.SIGKILL], random.Random(7), 80)
    again = subprocess.run([sys.executable, "-m", "xnh", "worker", "--until-idle"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=90)
    assert again.returncode == 0, again.stderr
    db = open_db(str(path))
    unknown = {r["recipient"] for r in outbox.unknown_rows(db, cid)}
    assert len(unknown) <= 5  # at most what was in flight: four sending threads and the one waiting for its slot
    for phone in (r[0] for r in db.execute("select recipient from outbox where campaign_id = ?", [cid])):
        got = len(twilio.to("+86" + phone))
        assert got == 1 or (phone in unknown and got in (0, 1)), (phone, got)
    listed = CliRunner().invoke(cli, ["broadcast", "status", str(cid)], env={"XNH_DB": str(path)})
    assert f"unknown (the provider may have them; a clerk may resend): {len(unknown)}" in listed.output
    db.close()


def test_a_row_without_an_answer_is_looked_up_before_it_is_sent_again(db, twilio):
    outbox.queue_reply(db, channel="sms", recipient="13700000001", text="您的问题:已办好", ref="ticket:1")
    twilio.script["+8613700000001"] = ["accepted_timeout"]  # Twilio has it, the answer never came
    run_worker(db)
    assert len(twilio.to("+8613700000001")) == 1  # not sent twice
    row = db.execute("SELECT status, provider_sid FROM outbox").fetchone()
    assert row[0] == "submitted" and row[1] == twilio.messages[0]["sid"]


def test_a_dead_workers_rows_are_settled_with_the_providers_list(db, twilio):
    """A row the provider has is recorded (not resent); one it never got is sent; one of a live worker waits."""
    for i in range(3):
        outbox.queue_reply(db, channel="sms", recipient=f"1370000000{i}", text=f"答复{i}", ref=f"ticket:{i}")
    rows = outbox.due(db, {"sms": 10})
    dead = "%s:999999:dead" % __import__("socket").gethostname()  # no such process
    for row in rows:
        elsewhere = row["ref"] == "ticket:2"  # a worker on another host, its lease running for 10 more minutes
        outbox.claim_row(db, "other-host:1:x" if elsewhere else dead, row, text=row["text"], parts=1, rate=10,
                         now=time.time() - 5, lease=600 if elsewhere else 30)
    twilio.messages.append({"sid": "SMalready", "to": "+8613700000000", "body": "答复0", "at": time.time() - 4})
    assert run_worker(db) == 1  # only 答复1 sent; 答复0 was there; 答复2's worker may be alive elsewhere
    got = dict(db.execute("SELECT ref, status FROM outbox").fetchall())
    assert got == {"ticket:0": "submitted", "ticket:1": "submitted", "ticket:2": "claimed"}
    assert [r[1] for r in twilio.requests] == ["+8613700000001"]


def test_the_first_messages_are_paced_from_the_start(db, twilio, monkeypatch):
    monkeypatch.setenv("XNH_SMS_PER_SECOND", "50")
    make_county(db, 60)
    campaigns.send(db, new_campaign(db), actor="t")
    assert run_worker(db) == 60
    times = sorted(r[0] for r in twilio.requests)
    gap = 1 / 50
    assert times[5] - times[0] >= 5 * gap * 0.8, [round(t - times[0], 4) for t in times[:6]]  # no start burst
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) <= 50


# -- the migration from notifications ---------------------------------------------------------------------

def test_queued_notifications_move_into_the_outbox_with_their_ids(tmp_path):
    import sqlite3

    from sqlite_utils import Database

    from xnh.store import schema

    from xnh.store.db import open_county

    path = tmp_path / "old.db"
    open_county(str(path)).close()
    old = Database(sqlite3.connect(path))
    old.conn.execute("ATTACH DATABASE ? AS county", [str(tmp_path / "old.county.db")])
    schema.migrations.apply(old, stop_before="m006_outbox")
    old["notifications"].insert_all([
        {"id": 7, "phone": "13900000000", "kind": "payment", "ref": "BC7", "text": "补偿款已拨付", "status": "queued",
         "created_at": "2026-06-01T10:00:00+08:00"},
        {"id": 9, "phone": "13900000001", "kind": "payment", "ref": "BC9", "text": "…", "status": "delivered",
         "provider_sid": "SM9", "created_at": "2026-05-01T10:00:00+08:00"}])
    old["delivery_events"].insert({"provider_sid": "SM9", "notification_id": 9, "status": "delivered", "at": 1.0})
    old.conn.commit()
    old.close()
    db = open_db(str(path))
    rows = db.execute("select id, recipient, channel, kind, ref, status, priority from outbox order by id").fetchall()
    assert rows == [(7, "13900000000", "sms", "payment", "BC7", "pending", 1),
                    (9, "13900000001", "sms", "payment", "BC9", "delivered", 1)]
    assert not db["notifications"].exists()
    assert db.execute("select outbox_id from delivery_events").fetchall() == [(9,)]
    db.close()


def test_xnh_serve_runs_the_worker_in_a_thread(db, twilio):
    from xnh import server

    from xnh.app import create_app

    outbox.queue_reply(db, channel="sms", recipient="13700000009", text="答复", ref="ticket:3")
    settings = Settings.from_env(db_path=db_path(db))
    stop, thread = server.start_sender(create_app(settings=settings), settings)
    try:
        deadline = time.time() + 10
        while not twilio.requests and time.time() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and [r[1] for r in twilio.requests] == ["+8613700000009"]


@settings(max_examples=150, deadline=None)
@given(st.times(), st.times(), st.times())
def test_claims_respect_any_quiet_window(tmp_path_factory, start, end, now):
    """For any quiet hours and any time of day, a row is claimed exactly when the time is outside them."""
    path = tmp_path_factory.mktemp("w") / "w.db"
    db = open_db(str(path))
    qs, qe, hm = start.strftime("%H:%M"), end.strftime("%H:%M"), now.strftime("%H:%M")
    db.conn.execute("INSERT INTO outbox (kind, ref, recipient, channel, text, status, quiet_start, quiet_end, priority) "
                    "VALUES ('payment', 'X', '13900000000', 'sms', 'hi', 'pending', ?, ?, 1)", [qs, qe])
    db.conn.commit()
    saved = os.environ.get("XNH_TODAY")
    os.environ["XNH_TODAY"] = f"2026-06-15T{hm}:00+08:00"
    try:
        claimed = outbox.due(db, {"sms": 10})
    finally:
        if saved is None:
            os.environ.pop("XNH_TODAY")
        else:
            os.environ["XNH_TODAY"] = saved
        db.close()
    quiet = (qs <= hm or hm < qe) if qs > qe else (qs <= hm < qe)
    assert bool(claimed) == (not quiet)


def test_telegram_rows_go_through_the_bot_api(db, twilio, monkeypatch):
    from test_telegram import TOKEN, FakeBotAPI

    api = FakeBotAPI()
    try:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_API_URL", api.url)
        make_county(db, 3)
        state.bind(db, "tg:777", "13900000001", "telegram")
        db.conn.commit()
        cid = new_campaign(db, channels=("sms", "telegram"))
        campaigns.send(db, cid, actor="t")
        outbox.queue_reply(db, channel="telegram", recipient="tg:4242", text="您的问题答复", ref="ticket:5")
        assert run_worker(db) == 4
    finally:
        api.close()
    sent = api.sent()  # (the two Telegram calls run in parallel threads: their arrival order is not the claim order)
    assert sorted(int(m["chat_id"]) for m in sent) == [777, 4242]
    assert {m["text"] for m in sent} == {"您的问题答复", "王*1您好,2027年度新农合请于2026年12月30日前缴费"}
    assert sorted(r[1] for r in twilio.requests) == ["+8613900000000", "+8613900000002"]
    assert outbox.counts(db, cid)["sent"] == 1 and outbox.counts(db, cid)["submitted"] == 2


def test_claims_take_replies_then_notices_then_bulk(db):
    make_county(db, 5)
    campaigns.send(db, new_campaign(db), actor="t")
    db.conn.execute("INSERT INTO outbox (kind, ref, recipient, channel, text, status, priority) "
                    "VALUES ('payment', 'BC1', '13900000003', 'sms', '补偿款已拨付', 'pending', 1)")
    db.conn.commit()
    outbox.queue_reply(db, channel="telegram", recipient="tg:4242", text="答复", ref="ticket:5")
    rows = outbox.due(db, {"sms": 100, "telegram": 25})
    assert [r["kind"] for r in rows][:3] == ["reply", "payment", "broadcast"]
    # each is claimed on its own, with a slot a gap after the one before (no burst)
    slots = [outbox.claim_row(db, "w", r, text=r["text"] or "x", parts=1, rate=100)[1] for r in rows[1:4]]
    assert [round(b - a, 4) for a, b in zip(slots, slots[1:])] == [round(1 / (100 * outbox.SAFETY), 4)] * 2
    assert outbox.claim_row(db, "w2", rows[1], text="x", parts=1, rate=100) == (outbox.GONE, None)  # taken already
