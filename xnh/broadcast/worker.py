"""The outbound worker: sends what the outbox holds, at the configured rate, and records every answer.

    xnh worker               # until Ctrl-C / SIGTERM
    xnh worker --until-idle  # until nothing is due (cron, tests)
    (xnh serve runs one in a background thread)

Each round claims the rows due now in one short transaction (store.outbox.claim: send window, schedule,
priority, the rate bucket shared through SQLite), then sends them from a few threads, each at its slot,
outside any transaction; each answer is written back in its own short transaction. What each Twilio
answer means is decided in twilio_errors.py. A worker killed between sending and recording leaves its
rows `claimed`; nothing is resent, and `xnh broadcast status` lists them.

SMS go through twilio's Client (TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN, sender TWILIO_FROM_NUMBER or
TWILIO_MESSAGING_SERVICE_SID, TWILIO_API_BASE for a local fake), with StatusCallback
XNH_PUBLIC_URL/sms/status?outbox=<id>. Telegram rows go through python-telegram-bot's Bot
(TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL); without a token they are skipped with a reason. Without SMS
credentials SMS rows wait. A demo database never sends.
"""
import asyncio
import logging
import os
import queue
import random
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..privacy import mask_phone
from ..store import db as store_db
from ..store import outbox, state
from . import campaigns, render, twilio_errors

logger = logging.getLogger(__name__)

IDLE_POLL = 0.25  # seconds between looks at an empty outbox, growing to IDLE_MAX while nothing is due
IDLE_MAX = 3.0
HORIZON = 0.25  # claim only rows whose send slot is at most this far ahead: a kill leaves few claimed
RETRY_SOON = 60.0  # --until-idle waits for retries due within this many seconds


@dataclass
class Result:
    """One attempt's outcome: accepted (sid) or refused (HTTP status, error code, or a timeout)."""

    sid: str | None = None
    http_status: int | None = None
    code: str | None = None
    timeout: bool = False
    final: str = "submitted"  # the row's status when accepted (Telegram has no delivery callbacks: sent)

    @property
    def ok(self) -> bool:
        return self.sid is not None


class TwilioSender:
    """Sends one SMS through twilio's Client (one client per thread)."""

    def __init__(self, env=os.environ, timeout: float = 10.0):
        self.timeout = timeout
        self.sid, self.token = env.get("TWILIO_ACCOUNT_SID"), env.get("TWILIO_AUTH_TOKEN")
        self.from_, self.service = env.get("TWILIO_FROM_NUMBER"), env.get("TWILIO_MESSAGING_SERVICE_SID")
        self.base, self.public = env.get("TWILIO_API_BASE"), env.get("XNH_PUBLIC_URL")
        self._local = threading.local()

    @property
    def configured(self) -> bool:
        return bool(self.sid and self.token and (self.from_ or self.service))

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            client = Client(self.sid, self.token, http_client=TwilioHttpClient(timeout=self.timeout))
            if self.base:
                client.api.base_url = self.base.rstrip("/")
            self._local.client = client
        return client

    def send(self, row: dict) -> Result:
        from requests import RequestException
        from twilio.base.exceptions import TwilioRestException

        args = {"to": e164(row["recipient"]), "body": row["text"]}
        args.update({"from_": self.from_} if self.from_ else {"messaging_service_sid": self.service})
        if self.public:
            args["status_callback"] = f"{self.public.rstrip('/')}/sms/status?outbox={row['id']}"
        try:
            message = self._client().messages.create(**args)
        except TwilioRestException as e:
            return Result(http_status=e.status, code=str(e.code) if e.code else None)
        except (RequestException, socket.timeout, TimeoutError, ConnectionError):
            return Result(timeout=True)
        return Result(sid=message.sid)


class TelegramSender:
    """Sends one Telegram message through python-telegram-bot's Bot (TELEGRAM_API_URL for a fake)."""

    def __init__(self, env=os.environ):
        self.token = env.get("TELEGRAM_BOT_TOKEN")
        self.base = env.get("TELEGRAM_API_URL") or "https://api.telegram.org/bot"

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def send(self, row: dict) -> Result:
        from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

        async def go():
            from telegram import Bot

            async with Bot(self.token, base_url=self.base) as bot:
                return await bot.send_message(int(row["recipient"].removeprefix("tg:")), row["text"])

        try:
            message = asyncio.run(go())
        except RetryAfter:
            return Result(http_status=429)
        except Forbidden:
            return Result(http_status=403, code="blocked by the user")
        except BadRequest as e:
            return Result(http_status=400, code=str(e)[:80])
        except (TimedOut, NetworkError):
            return Result(timeout=True)
        return Result(sid=f"tg:{message.message_id}", final="sent")


def e164(phone: str) -> str:
    """13800009001 → +8613800009001; a number already with + stays as it is."""
    return phone if phone.startswith("+") else f"+86{phone}"


class _Pacer:
    """Paces one channel's sends in this process (called from the one dispatching thread): each goes
    within LATE seconds of a slot the shared bucket gave it, and never closer to the previous one than
    that one's segments allow. A send that would go later than LATE past its slot (the process ran late)
    takes a new slot from the bucket (outbox.reserve) instead: another worker may be sending in the old
    one's place."""

    LATE = 0.01

    def __init__(self, channel: str, rate: float, db):
        self.channel, self.rate, self.db = channel, rate, db
        self.gap, self.next = 1.0 / (rate * outbox.SAFETY), 0.0

    def wait(self, slot: float, parts: int) -> None:
        while True:
            if slot < self.next - 1e-6 or time.time() > slot + self.LATE:
                with store_db.WRITES:
                    slot = outbox.reserve(self.db, self.channel, parts, self.rate, now=max(time.time(), self.next))
            delay = slot - time.time()
            if delay > 0:
                time.sleep(delay)
            if time.time() <= slot + self.LATE:
                break
        self.next = slot + parts * self.gap


class Worker:
    """One worker process's loop (see the module docstring). `senders` maps a channel to a sender."""

    def __init__(self, path: str | None = None, *, senders: dict | None = None, threads: int = 4,
                 worker_id: str | None = None):
        self.path = path or store_db.db_path()
        self.db = store_db.open_db(self.path)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.senders = senders if senders is not None else {"sms": TwilioSender(), "telegram": TelegramSender()}
        self.rates = {}
        if self.senders.get("sms") and self.senders["sms"].configured:
            self.rates["sms"] = campaigns.sms_rate()
        else:
            logger.info("no Twilio credentials and sender: SMS wait in the outbox")
        self.rates["telegram"] = campaigns.TELEGRAM_PER_SECOND  # without a token: skipped with a reason
        self.pacers = {c: _Pacer(c, r, self.db) for c, r in self.rates.items()}
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="xnh-send")
        self.in_flight: set = set()
        self.sent = 0
        self._campaigns: dict[int, tuple] = {}
        # answers are written by one thread, many to a transaction, so sending threads never wait for SQLite
        self.results: queue.Queue = queue.Queue()
        self._recorder = threading.Thread(target=self._record_results, name="xnh-record", daemon=True)
        self._recorder.start()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.results.put(None)
        self._recorder.join()
        self.db.close()

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, until_idle: bool = False, stop: threading.Event | None = None) -> int:
        """Send until stopped (or, with until_idle, until nothing is due); returns the messages accepted."""
        stop = stop or threading.Event()
        if outbox.is_demo(self.db):
            logger.warning("demo database %s: the worker sends nothing", self.path)
            return 0
        idle = IDLE_POLL
        while not stop.is_set():
            claimed = self.round()
            if claimed:
                idle = IDLE_POLL
                continue
            self.in_flight = {f for f in self.in_flight if not f.done()}
            if until_idle and not self.in_flight and not self.results.unfinished_tasks and not self._due_soon():
                break
            stop.wait(idle)
            if not until_idle:  # a quiet night: look less often (each look may scan the waiting rows)
                idle = min(IDLE_MAX, idle * 1.5)
        for future in list(self.in_flight):
            future.result()
        self.results.join()
        return self.sent

    def round(self) -> int:
        """Claim what is due now and hand it to the sending threads; the number claimed."""
        with store_db.WRITES:
            rows = outbox.claim(self.db, self.id, rates=self.rates, prepare=self._prepare, horizon=HORIZON)
        for row in sorted(rows, key=lambda r: r["slot"]):  # this thread paces; the pool sends
            if row["channel"] in self.senders and self.senders[row["channel"]].configured:
                self.pacers[row["channel"]].wait(row["slot"], row["segments"])
            self.in_flight.add(self.pool.submit(self._send, row))
        if rows:  # do not claim far ahead of what the threads have sent
            most = max(4, max(self.rates.values()) * HORIZON / 2)
            while sum(1 for f in self.in_flight if not f.done()) > most:
                time.sleep(0.01)
            self.in_flight = {f for f in self.in_flight if not f.done()}
        return len(rows)

    def _due_soon(self) -> bool:
        return outbox.due_soon(self.db, list(self.rates), within=RETRY_SOON)

    # -- one row ---------------------------------------------------------------------------------------

    def _prepare(self, row: dict) -> tuple[str, int]:
        text = row["text"]
        if text is None:
            template, shared = self._campaign(row["campaign_id"])
            try:
                text = render.render(template, {**outbox.json_fields(row["fields"]), **shared})
            except render.TemplateProblem as e:
                raise outbox.Unsendable(str(e)) from None
        if len(text) > render.MAX_CHARS:
            raise outbox.Unsendable(f"text over {render.MAX_CHARS} characters")
        return text, render.parts(text) if row["channel"] == "sms" else 1

    def _campaign(self, campaign_id: int) -> tuple:
        if campaign_id not in self._campaigns:
            c = campaigns.get(self.db, campaign_id)
            self._campaigns[campaign_id] = (c["text"], campaigns.campaign_fields(c))
        return self._campaigns[campaign_id]

    def _send(self, row: dict) -> None:
        sender = self.senders.get(row["channel"])
        if sender is None or not sender.configured:
            self.results.put((row, None))
            return
        try:
            result = sender.send(row)
        except Exception:  # a bug or an unexpected library error: the row is retried like a timeout
            logger.exception("sending outbox row %s failed", row["id"])
            result = Result(timeout=True)
        self.results.put((row, result))

    def _record_results(self) -> None:
        db = store_db.thread_db(self.path)
        while True:
            batch = [self.results.get()]
            while True:
                try:
                    batch.append(self.results.get_nowait())
                except queue.Empty:
                    break
            try:
                with store_db.WRITES:
                    store_db.begin_write(db)
                    try:
                        for item in batch:
                            if item is not None:
                                self._apply(db, *item)
                    except BaseException:
                        db.conn.rollback()
                        raise
                    db.conn.commit()
            except Exception:  # the rows stay claimed: status lists them; nothing is resent
                logger.exception("recording %d answers failed", len(batch))
            for _ in batch:
                self.results.task_done()
            if None in batch:
                return

    def _apply(self, db, row: dict, result: Result | None) -> None:
        if result is None:
            outbox.mark_failed(db, row["id"], reason=f"no {row['channel']} credentials", status="skipped")
            return
        if result.ok:
            outbox.mark_submitted(db, row["id"], result.sid, status=result.final)
            self.sent += 1
            return
        action = twilio_errors.classify(result.http_status, result.code, result.timeout)
        logger.info("outbox %s to %s: %s", row["id"], mask_phone(row["recipient"]), action.reason)
        apply_action(db, row, action, result.code)


def apply_action(db, row: dict, action, code: str | None) -> None:
    """Record a failed attempt on a claimed row as the error table says (inside the caller's transaction)."""
    rid, attempts = row["id"], (row.get("attempts") or 0) + 1
    if action.kind == "retry_free":
        outbox.mark_retry(db, rid, delay=twilio_errors.RATE_LIMITED_DELAY, counts=False, reason=action.reason, code=code)
    elif action.kind == "retry" and attempts < twilio_errors.MAX_ATTEMPTS:
        outbox.mark_retry(db, rid, delay=twilio_errors.backoff(attempts, random.random()), counts=True,
                          reason=action.reason, code=code, maybe_sent=action.maybe_sent)
    elif action.kind == "retry_once" and row.get("error_code") != str(code):
        outbox.mark_retry(db, rid, delay=twilio_errors.RETRY_ONCE_DELAY, counts=True, reason=action.reason, code=code)
    elif action.kind == "opt_out":
        state.set_subscribed(db, row["recipient"], False, via=f"twilio {code}")
        outbox.skip_opted_out(db, row["recipient"])
        outbox.mark_failed(db, rid, reason=action.reason, code=code, status="skipped")
    elif action.kind == "bad_number":
        outbox.mark_bad_number(db, row["recipient"], str(code), action.reason)
        outbox.mark_failed(db, rid, reason=action.reason, code=code)
    else:
        reason = action.reason if action.kind != "retry" else f"{action.reason}, gave up after {attempts} attempts"
        outbox.mark_failed(db, rid, reason=reason, code=code, maybe_sent=action.maybe_sent)
    if action.kind == "burst" and row.get("campaign_id"):
        check_burst(db, row["campaign_id"])


def check_burst(db, campaign_id: int) -> None:
    """Pause the campaign when its recent answers hold a burst of carrier blocks, and say so in the audit log."""
    if twilio_errors.is_burst(outbox.recent_error_codes(db, campaign_id, twilio_errors.BURST_WINDOW)):
        why = (f"运营商拦截过多 / carrier blocked or filtered at least {twilio_errors.BURST} of the last "
               f"{twilio_errors.BURST_WINDOW} messages (30004/30007): check the text with the carrier, then resume")
        if outbox.pause_campaign(db, campaign_id, why):
            state.audit(db, "worker", "campaign_pause", {"campaign": campaign_id, "reason": why})
            logger.warning("campaign %s paused: %s", campaign_id, why)


def run(path: str | None = None, until_idle: bool = False, stop: threading.Event | None = None, **kw) -> int:
    """Run one worker on `path` (default XNH_DB); returns the messages accepted."""
    worker = Worker(path, **kw)
    try:
        return worker.run(until_idle=until_idle, stop=stop)
    finally:
        worker.close()
