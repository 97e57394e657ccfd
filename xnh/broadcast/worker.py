"""The outbound worker: sends what the outbox holds, at the configured rate, and records every answer.

    xnh worker               # until Ctrl-C / SIGTERM; a fault ends it with one line (for a supervisor)
    xnh worker --until-idle  # until nothing is due (cron, tests)
    (xnh serve runs one under `supervise`: a fault is logged, backed off and retried, never the end)

outbox ─> Worker.round: claim the rows due now in one short transaction (store.outbox.claim: send window,
schedule, priority, the rate bucket shared through SQLite) ─> the row's provider module (xnh/providers/:
twilio.py for SMS, telegram.py, wechat.py, cnsms.py), from a few threads, each at its slot, outside any transaction ─> one
thread writes the answers back, many to a short transaction (outcomes.py carries out what the provider's
`classify` says) ─> later, the provider's delivery callbacks (POST /sms/status) move the rows on.

The worker never takes the process's message lock (store.db.WRITES): a message waits for nobody but
SQLite's own write lock, which the worker holds for milliseconds at a time. The worker's own threads take
turns on a lock of their own (`Worker.writes`). A worker killed between
sending and recording leaves its rows `claimed`; nothing is resent, and `xnh broadcast status` lists them.
Without SMS credentials SMS rows wait; without a Telegram token Telegram rows are skipped with a reason.
A demo database never sends. Each good round is a heartbeat (kept in memory, and every HEARTBEAT_EVERY
seconds in `senders`), which /healthz and `xnh broadcast status` report.
"""
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .. import providers
from ..privacy import mask_phone
from ..providers import base, cnsms, telegram, twilio, wechat
from ..store import db as store_db
from ..store import meta, outbox, senders
from ..store import wechat as store_wechat
from . import campaign_text, campaigns, outcomes

logger = logging.getLogger(__name__)

IDLE_POLL = 0.25  # seconds between looks at an empty outbox, growing to IDLE_MAX while nothing is due
IDLE_MAX = 3.0
HORIZON = 0.25  # claim only rows whose send slot is at most this far ahead: a kill leaves few claimed
RETRY_SOON = 60.0  # --until-idle waits for retries due within this many seconds
HEARTBEAT_EVERY = 5.0  # seconds between two heartbeats written to `senders`
FAULT_BACKOFF, FAULT_BACKOFF_MAX = 0.5, 30.0  # a fault: wait, doubling up to the most, then try again


class _Pacer:
    """Paces one channel's sends in this process (called from the one dispatching thread): each goes
    within LATE seconds of a slot the shared bucket gave it, and never closer to the previous one than
    that one's segments allow. A send that would go later than LATE past its slot (the process ran late)
    takes a new slot from the bucket (outbox.reserve) instead: another worker may be sending in the old
    one's place. The row is claimed already, so a database fault while reserving is waited out (`on_fault`
    told each time), never a reason to drop the row."""

    LATE = 0.01

    def __init__(self, channel: str, rate: float, db, lock, on_fault=None):
        self.channel, self.rate, self.db, self.lock, self.on_fault = channel, rate, db, lock, on_fault
        self.gap, self.next = 1.0 / (rate * outbox.SAFETY), 0.0

    def _reserve(self, parts: int) -> float:
        wait = FAULT_BACKOFF
        while True:
            try:
                with self.lock:
                    return outbox.reserve(self.db, self.channel, parts, self.rate, now=max(time.time(), self.next))
            except sqlite3.OperationalError as e:
                if self.on_fault:
                    self.on_fault(e)
                time.sleep(wait)
                wait = min(FAULT_BACKOFF_MAX, wait * 2)

    def wait(self, slot: float, parts: int) -> None:
        while True:
            if slot < self.next - 1e-6 or time.time() > slot + self.LATE:
                slot = self._reserve(parts)
            delay = slot - time.time()
            if delay > 0:
                time.sleep(delay)
            if time.time() <= slot + self.LATE:
                break
        self.next = slot + parts * self.gap


class Health:
    """What a sender says about itself, read by /healthz from another thread: its last good round
    (`heartbeat`, real time), its last fault and when, whether its thread still runs."""

    def __init__(self):
        self.started = self.heartbeat = time.time()
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.thread: threading.Thread | None = None
        self.state = "starting"

    def fault(self, reason: str) -> None:
        self.last_error, self.last_error_at, self.state = reason, time.time(), "retrying"

    def problem(self, stale: float, now: float | None = None) -> str | None:
        """Why this sender is not sending (its thread ended, or no good round for `stale` s), or None."""
        now = time.time() if now is None else now
        if self.thread is not None and not self.thread.is_alive():
            return f"发送线程已停止 / the outbound sender stopped ({self.last_error or 'no fault recorded'})"
        if now - self.heartbeat > stale:
            return (f"发送程序 {now - self.heartbeat:.0f} 秒没有正常运行 / the outbound sender has had no good round "
                    f"for {now - self.heartbeat:.0f} s (limit {stale:g} s); last fault: {self.last_error or 'none'}")
        return None

    def as_dict(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        return {"state": self.state, "heartbeat_age": round(now - self.heartbeat, 1), "last_error": self.last_error,
                "last_error_age": round(now - self.last_error_at, 1) if self.last_error_at else None}


class Worker:
    """One worker process's loop (see the module docstring). `senders` maps a channel to a provider's
    sender (default: built from `settings`). Nothing starts in the constructor: `start()` opens the
    database and starts the threads, `close()` ends them; `run()` starts it when needed."""

    def __init__(self, settings, path: str | None = None, *, senders: dict | None = None, threads: int = 4,
                 worker_id: str | None = None, health: Health | None = None):
        self.settings = settings
        self.path = path or settings.db_path
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.senders = senders if senders is not None else {
            "sms": twilio.TwilioSender(settings), "telegram": telegram.TelegramSender(settings),
            "wechat": wechat.WeChatSender(settings, ledger=store_wechat.Ledger(self.path)),
            "cnsms": cnsms.CnSmsSender(settings)}
        self.rates = {}
        if self.senders.get("sms") and self.senders["sms"].configured:
            self.rates["sms"] = settings.sms_per_second
        self.rates["telegram"] = telegram.PER_SECOND  # without a token: skipped with a reason
        if self.senders.get("wechat") and self.senders["wechat"].configured:
            self.rates["wechat"] = wechat.PER_SECOND  # without AppID and secret: WeChat rows wait
        if self.senders.get("cnsms") and self.senders["cnsms"].configured:
            self.rates["cnsms"] = settings.cnsms_per_second  # without a China provider: its rows wait
        self.threads = threads
        self.health = health or Health()
        self.sent = 0
        self.db = self.pool = self._recorder = None
        self.in_flight: set = set()
        self.results: queue.Queue = queue.Queue()
        self._campaigns: dict[int, tuple] = {}
        self._beat_at = 0.0
        # this worker's own threads (the dispatcher, the recorder) write one at a time, handing over at once
        # rather than sleeping in SQLite's busy handler; messages never wait on it
        self.writes = threading.Lock()

    def start(self) -> "Worker":
        """Open the database and start the sending threads and the thread that records answers."""
        if self.db is not None:
            return self
        if "sms" not in self.rates:
            logger.info("no Twilio credentials and sender: SMS wait in the outbox")
        self.db = store_db.open_db(self.path)
        self.pacers = {c: _Pacer(c, r, self.db, self.writes, self._fault) for c, r in self.rates.items()}
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="xnh-send")
        for future in [self.pool.submit(self._warm) for _ in range(self.threads)]:
            future.result()  # each sending thread's client made before the first paced send
        # answers are written by one thread, many to a transaction, so sending threads never wait for SQLite
        self._recorder = threading.Thread(target=self._record_results, name="xnh-record", daemon=True)
        self._recorder.start()
        return self

    def close(self) -> None:
        if self.db is None:
            return
        self.pool.shutdown(wait=True)
        self.results.put(None)
        self._recorder.join()
        self._beat("stopped", force=True)
        self.db.close()
        self.db = None

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, until_idle: bool = False, stop: threading.Event | None = None) -> int:
        """Send until stopped (or, with until_idle, until nothing is due); returns the messages accepted.
        A fault (a locked or full database, a bug) raises: `supervise` retries, `xnh worker` ends."""
        self.start()
        stop = stop or threading.Event()
        if meta.is_demo(self.db):
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
        with self.writes:
            outbox.route_payments(self.db, wechat="wechat" in self.rates, cnsms="cnsms" in self.rates)
            rows = outbox.claim(self.db, self.id, rates=self.rates, prepare=self._prepare, horizon=HORIZON,
                                lease=self.settings.worker_lease)
        self.health.heartbeat, self.health.state = time.time(), "running"
        self._beat("running")
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

    def _beat(self, state: str, force: bool = False) -> None:
        """Write the heartbeat to `senders`, at most every HEARTBEAT_EVERY s; a failure is only logged."""
        now = time.time()
        if not force and now - self._beat_at < HEARTBEAT_EVERY:
            return
        self._beat_at = now
        try:
            with self.writes, store_db.writing(self.db):
                senders.beat(self.db, self.id, state=state, started_at=self.health.started, sent=self.sent,
                             error=self.health.last_error if state != "running" else None)
        except sqlite3.Error as e:
            logger.warning("outbound sender %s: heartbeat not written: %s", self.id, e)

    def _warm(self) -> None:
        for sender in self.senders.values():
            if sender.configured and hasattr(sender, "warm"):
                sender.warm()

    def _fault(self, error: Exception) -> None:
        reason = store_db.explain(error, self.path)
        self.health.fault(reason)
        logger.warning("outbound sender %s: %s; trying again", self.id, reason)

    def _due_soon(self) -> bool:
        return outbox.due_soon(self.db, list(self.rates), within=RETRY_SOON)

    # -- one row ---------------------------------------------------------------------------------------

    def _prepare(self, row: dict) -> tuple[str, int]:
        text = row["text"]
        if text is None:
            template, shared = self._campaign(row["campaign_id"])
            try:
                text = campaign_text.render(template, {**outbox.json_fields(row["fields"]), **shared})
            except campaign_text.TemplateProblem as e:
                raise outbox.Unsendable(str(e)) from None
        if len(text) > twilio.MAX_CHARS:
            raise outbox.Unsendable(f"text over {twilio.MAX_CHARS} characters")
        return text, providers.for_channel(row["channel"]).parts(text)

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
            result = base.Result(timeout=True)
        self.results.put((row, result))

    def _record_results(self) -> None:
        db = store_db.thread_db(self.path)
        done = False
        while not done:
            batch = [self.results.get()]
            while True:
                try:
                    batch.append(self.results.get_nowait())
                except queue.Empty:
                    break
            self._record_batch(db, [item for item in batch if item is not None])
            done = None in batch
            for _ in batch:
                self.results.task_done()

    def _record_batch(self, db, batch: list) -> None:
        """Write a batch of answers in one transaction. A fault of the database (locked, full, I/O) keeps the
        batch and tries again, backing off, until it is written; a bug drops it (its rows stay claimed and
        `xnh broadcast status` lists them: nothing is resent)."""
        wait = FAULT_BACKOFF
        while batch:
            try:
                with self.writes, store_db.writing(db):
                    for row, result in batch:
                        self._apply(db, row, result)
                return
            except sqlite3.OperationalError as e:
                self._fault(e)
                logger.warning("recording %d answers: again in %.1f s", len(batch), wait)
                time.sleep(wait)
                wait = min(FAULT_BACKOFF_MAX, wait * 2)
            except Exception:
                logger.exception("recording %d answers failed; their rows stay claimed", len(batch))
                return

    def _apply(self, db, row: dict, result: base.Result | None) -> None:
        if result is None:
            outbox.mark_failed(db, row["id"], reason=f"no {row['channel']} credentials", status="skipped")
            return
        if result.ok:
            outbox.mark_submitted(db, row["id"], result.sid, status=result.final)
            self.sent += 1
            return
        action = providers.for_channel(row["channel"]).classify(result)
        logger.info("outbox %s to %s: %s", row["id"], mask_phone(row["recipient"]), action.reason)
        outcomes.record_attempt(db, row, action, result.code)


def run(settings, path: str | None = None, until_idle: bool = False, stop: threading.Event | None = None,
        **kw) -> int:
    """Run one worker on `path` (default settings.db_path) until stopped or idle; returns the messages
    accepted. A fault raises (a standalone `xnh worker` ends with one line; its supervisor restarts it)."""
    worker = Worker(settings, path, **kw)
    try:
        return worker.run(until_idle=until_idle, stop=stop)
    finally:
        worker.close()


def supervise(settings, path: str | None = None, stop: threading.Event | None = None,
              health: Health | None = None, **kw) -> None:
    """Run a worker until `stop` is set, whatever happens: a fault (a locked or full database, a provider
    outage, a bug) is logged with its reason and kept in `health`, and a new worker starts after a back-off
    (FAULT_BACKOFF, doubling up to FAULT_BACKOFF_MAX while the faults follow each other; one good round
    resets it). `xnh serve` runs this in a background thread."""
    stop = stop or threading.Event()
    health = health or Health()
    wait = FAULT_BACKOFF
    while not stop.is_set():
        began = time.time()
        worker = Worker(settings, path, health=health, **kw)
        try:
            worker.run(stop=stop)
            break  # stopped (or a demo database, which never sends)
        except Exception as e:  # anything: the sender must not end
            _fault(health, e, worker.path, wait)
        finally:
            try:
                worker.close()
            except Exception as e:  # closing after a fault may fault too (the same locked database)
                _fault(health, e, worker.path, wait)
        wait = FAULT_BACKOFF if health.heartbeat >= began else min(FAULT_BACKOFF_MAX, wait * 2)
        stop.wait(wait)
    health.state = "stopped"


def _fault(health: Health, error: Exception, path: str, wait: float) -> None:
    operational = isinstance(error, (sqlite3.Error, OSError))
    reason = store_db.explain(error, path) if operational else f"{error.__class__.__name__}: {error}"
    health.fault(reason)
    logger.error("the outbound sender failed: %s; starting again in %.1f s", reason, wait, exc_info=not operational)
