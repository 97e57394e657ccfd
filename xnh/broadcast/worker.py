"""The outbound worker: sends what the outbox holds, at the configured rate, and records every answer.

    xnh worker               # until Ctrl-C / SIGTERM (which finish the sends in flight and release the
                             # rest); a fault ends it with one line (for a supervisor)
    xnh worker --until-idle  # until nothing is due (cron, tests)
    (xnh serve runs one under `supervise`: a fault is logged, backed off and retried, never the end)

outbox ─> Worker.round: route payment notices to WeChat or China SMS where they reach farmers
(store.outbox.route_payments), read a few rows due now (store.outbox.due: send window, schedule, priority) ─> for
each, once a sending thread is free: claim it with its send slot in one short transaction
(store.outbox.claim_row, the rate bucket shared through SQLite), wait for the slot, hand it to the thread
─> the row's provider module (xnh/providers/: twilio.py for SMS, telegram.py, wechat.py, cnsms.py) sends it outside any
transaction ─> one thread writes the answers back, many to a short transaction (outcomes.py carries out
what the provider's `classify` says) ─> later, the provider's delivery callbacks (POST /sms/status) move the
rows on.

Nothing is lost when a worker stops: a row is claimed only just before its own send (the claim is the
record that it is being handed to the provider), never in a batch held across sends. Stopped (SIGTERM,
Ctrl-C, `stop`), the worker finishes the sends in flight, records them, and releases a row claimed but not
yet sent. Killed (kill -9), it leaves at most the rows in flight `claimed`: the next worker to start (or
any running one, every SETTLE_EVERY s) settles each with the provider's own list of messages to that
number since the claim (`settle_abandoned`): found, recorded as submitted; absent, sent again; when the
provider cannot say (Telegram has no such list, or the list fails), `unknown`, listed for a clerk, who
may resend it. A row whose last attempt got no answer (a timeout) is looked up the same way before it is
sent again.

The worker never takes the process's message lock (store.db.WRITES): a message waits for nobody but
SQLite's own write lock, which the worker holds for milliseconds at a time. The worker's own threads take
turns on a lock of their own (`Worker.writes`). Without SMS credentials SMS rows wait; without a Telegram
token Telegram rows are skipped with a reason. A demo database never sends. Each good round is a
heartbeat (kept in memory, and every HEARTBEAT_EVERY seconds in `senders`), which /healthz and
`xnh broadcast status` report.
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
HORIZON = 0.25  # claim a row only when its send slot is at most this far ahead (other workers share the rate)
GRACE = 2.0  # seconds after a claim before a dead process's row is looked up at the provider
SETTLE_EVERY = 5.0  # seconds between two looks for rows a gone worker left claimed
RETRY_SOON = 60.0  # --until-idle waits for retries due within this many seconds
HEARTBEAT_EVERY = 5.0  # seconds between two heartbeats written to `senders`
FAULT_BACKOFF, FAULT_BACKOFF_MAX = 0.5, 30.0  # a fault: wait, doubling up to the most, then try again


class _Pacer:
    """Paces one channel's sends in this process (called from the one dispatching thread): each goes
    within LATE seconds of the slot its claim took from the shared bucket, and never closer to the
    previous one than that one's segments allow. A send that would go later than LATE past its slot (the
    process ran late) takes a new slot from the bucket (outbox.reserve) instead: another worker may be
    sending in the old one's place. The row is claimed already, so a database fault while reserving is
    waited out (`on_fault` told each time), never a reason to drop the row."""

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

    def wait(self, slot: float, parts: int, stop: threading.Event | None = None) -> bool:
        """Wait for `slot`; False when `stop` was set before it came (the row is then not sent)."""
        while True:
            if slot < self.next - 1e-6 or time.time() > slot + self.LATE:
                slot = self._reserve(parts)
            delay = slot - time.time()
            if delay > 0 and (stop.wait(delay) if stop is not None else time.sleep(delay)):
                return False
            if time.time() <= slot + self.LATE:
                break
        self.next = slot + parts * self.gap
        return True


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
    database, settles what dead workers left claimed and starts the threads, `close()` ends them; `run()`
    starts it when needed."""

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
        self._beat_at = self._settled_at = 0.0
        self._free = threading.Semaphore(threads)  # a row is claimed only when a sending thread is free for it
        # this worker's own threads (the dispatcher, the recorder) write one at a time, handing over at once
        # rather than sleeping in SQLite's busy handler; messages never wait on it
        self.writes = threading.Lock()

    def start(self) -> "Worker":
        """Open the database, settle the rows dead workers left claimed, start the sending threads and the
        thread that records answers."""
        if self.db is not None:
            return self
        if "sms" not in self.rates:
            logger.info("no Twilio credentials and sender: SMS wait in the outbox")
        self.db = store_db.open_db(self.path)
        _LIVE.add(self.id)
        self.pacers = {c: _Pacer(c, r, self.db, self.writes, self._fault) for c, r in self.rates.items()}
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="xnh-send")
        for future in [self.pool.submit(self._warm) for _ in range(self.threads)]:
            future.result()  # each sending thread's client made before the first paced send
        # answers are written by one thread, many to a transaction, so sending threads never wait for SQLite
        self._recorder = threading.Thread(target=self._record_results, name="xnh-record", daemon=True)
        self._recorder.start()
        if not meta.is_demo(self.db):
            self.settle_abandoned()
        return self

    def close(self) -> None:
        """Finish the sends in flight, record their answers, and stop (rows never handed over were
        released by the loop)."""
        if self.db is None:
            return
        self.pool.shutdown(wait=True)
        self.results.put(None)
        self._recorder.join()
        self._beat("stopped", force=True)
        _LIVE.discard(self.id)
        self.db.close()
        self.db = None

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, until_idle: bool = False, stop: threading.Event | None = None) -> int:
        """Send until `stop` is set (or, with until_idle, until nothing is due); returns the messages
        accepted. Stopping finishes the sends in flight and sends nothing more: a row claimed and waiting
        for its slot is released (the provider never had it). A fault (a locked or full database, a bug)
        raises: `supervise` retries, `xnh worker` ends."""
        self.start()
        stop = stop or threading.Event()
        if meta.is_demo(self.db):
            logger.warning("demo database %s: the worker sends nothing", self.path)
            return 0
        idle = IDLE_POLL
        while not stop.is_set():
            claimed = self.round(stop)
            if claimed:
                idle = IDLE_POLL
                continue
            self.in_flight = {f for f in self.in_flight if not f.done()}
            if time.time() - self._settled_at >= SETTLE_EVERY:
                self.settle_abandoned()
            if until_idle and not self.in_flight and not self.results.unfinished_tasks and not self._due_soon():
                break
            stop.wait(idle)
            if not until_idle:  # a quiet night: look less often (each look may scan the waiting rows)
                idle = min(IDLE_MAX, idle * 1.5)
        for future in list(self.in_flight):
            future.result()
        self.results.join()
        return self.sent

    def round(self, stop: threading.Event | None = None) -> int:
        """Send what is due now, one row at a time: read a few due rows, then for each, once a sending thread
        is free, claim it with its send slot (one short transaction), wait for the slot and hand it to
        the thread. Returns the rows handed over or settled (skipped, failed)."""
        stop = stop or threading.Event()
        self.in_flight = {f for f in self.in_flight if not f.done()}
        with self.writes:
            outbox.route_payments(self.db, wechat="wechat" in self.rates, cnsms="cnsms" in self.rates)
        rows = outbox.due(self.db, self.rates, limit=self._batch())
        self.health.heartbeat, self.health.state = time.time(), "running"
        self._beat("running")
        done = 0
        for row in rows:
            if stop.is_set():
                break
            outcome = self._one(row, stop)
            if outcome == outbox.LATER:
                break
            done += outcome != outbox.GONE
        return done

    def _batch(self) -> int:
        """Rows read at a time: about half a second's worth, so what changes meanwhile (a pause, an opt-out)
        is seen soon."""
        return int(min(100, max(4, max(self.rates.values()) * 0.5)))

    def _one(self, row: dict, stop: threading.Event) -> str:
        """Claim, pace and hand over one due row (or skip it, or fail it); the outcome."""
        if row["opted_out"] or row["bad"]:
            with self.writes:
                outbox.settle(self.db, row, "skipped", "opted out" if row["opted_out"] else "bad number")
            return "settled"
        try:
            text, parts = self._prepare(row)
        except outbox.Unsendable as e:
            with self.writes:
                outbox.settle(self.db, row, "failed", str(e))
            return "settled"
        while not self._free.acquire(timeout=0.1):
            if stop.is_set():
                return outbox.LATER
        channel = row["channel"]
        try:
            with self.writes:
                outcome, slot = outbox.claim_row(self.db, self.id, row, text=text, parts=parts,
                                                 rate=self.rates[channel], horizon=HORIZON,
                                                 lease=self.settings.worker_lease)
        except BaseException:
            self._free.release()
            raise
        if outcome != outbox.CLAIMED:
            self._free.release()
            return outcome
        row = {**row, "text": text, "segments": parts, "slot": slot}
        sender = self.senders.get(channel)
        if sender is not None and sender.configured and not self.pacers[channel].wait(slot, parts, stop):
            self._release(row, "the worker stopped before sending it")
            self._free.release()
            return outbox.LATER
        self.in_flight.add(self.pool.submit(self._send, row))
        return outbox.CLAIMED

    def _release(self, row: dict, reason: str) -> None:
        wait = FAULT_BACKOFF
        for _ in range(5):  # a locked database: a few tries; else the row waits for the next start's settling
            try:
                with self.writes, store_db.writing(self.db):
                    outbox.release(self.db, row["id"], reason)
                return
            except sqlite3.OperationalError as e:
                self._fault(e)
                time.sleep(wait)
                wait = min(FAULT_BACKOFF_MAX, wait * 2)

    # -- rows a worker that died left claimed ---------------------------------------------------------------

    def settle_abandoned(self, now: float | None = None) -> dict[str, int]:
        """Settle the rows still `claimed` by a worker that is gone: one of this host whose process no longer
        runs (or an earlier worker of this process), claimed at least GRACE seconds ago; or any whose lease
        has passed. Each is looked up at its provider (`find`: its messages to the recipient since the
        claim): found, it is recorded as submitted with the provider's id; absent, it is released and sent
        again; when the provider cannot say, it becomes `unknown` (listed, a clerk may resend it).
        Returns the counts of each."""
        now = time.time() if now is None else now
        self._settled_at = now
        done = {"found": 0, "released": 0, "unknown": 0}
        for row in outbox.claimed_rows(self.db):
            if not abandoned(row, now):
                continue
            kind, value = self._look_up(row)
            with self.writes, store_db.writing(self.db):
                if kind == "found":
                    outbox.mark_submitted(self.db, row["id"], value)
                elif kind == "absent":
                    outbox.release(self.db, row["id"], "resent: the provider never got it (its worker stopped)")
                else:
                    outbox.mark_unknown(self.db, row["id"], value)
            done["released" if kind == "absent" else kind] += 1
            logger.warning("outbox %s claimed by %s, which is gone: %s", row["id"], row["worker"], kind)
        return done

    def _look_up(self, row: dict) -> tuple[str, str | None]:
        sender = self.senders.get(row["channel"])
        if sender is None or not sender.configured or not hasattr(sender, "find"):
            return "unknown", f"no way to ask {row['channel']} whether it got the message (its worker stopped)"
        try:
            sid = sender.find(row, since=row["claimed_at"] or 0.0)
        except base.NotKnown as e:
            return "unknown", f"may have been sent: {e}"
        return ("found", sid) if sid else ("absent", None)

    # -- bookkeeping ---------------------------------------------------------------------------------------

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
        """Something is due now or soon: a row, a retry within RETRY_SOON, or a row a gone worker left
        claimed that is not settled yet (its GRACE or lease has not run out)."""
        if outbox.due_soon(self.db, list(self.rates), within=RETRY_SOON):
            return True
        now = time.time()
        return any(row["worker"] != self.id and abandoned(row, now + RETRY_SOON) for row in outbox.claimed_rows(self.db))

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
        try:
            sender = self.senders.get(row["channel"])
            if sender is None or not sender.configured:
                self.results.put((row, None))
                return
            try:
                result = self._already_there(sender, row) or sender.send(row)
            except Exception:  # a bug or an unexpected library error: the row is retried like a timeout
                logger.exception("sending outbox row %s failed", row["id"])
                result = base.Result(timeout=True)
            self.results.put((row, result))
        finally:
            self._free.release()

    def _already_there(self, sender, row: dict) -> base.Result | None:
        """A row whose last attempt may have been sent (no answer came) is looked up before it is sent
        again: the provider's id when it has the message, so it is not sent twice."""
        if not row.get("maybe_sent") or not hasattr(sender, "find"):
            return None
        try:
            sid = sender.find(row, since=(row.get("claimed_at") or 0.0) - 1)
        except base.NotKnown as e:
            logger.warning("outbox %s: %s; sending again", row["id"], e)
            return None
        return base.Result(sid=sid) if sid else None

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
        the next worker to start settles them with the provider's list)."""
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


_LIVE: set[str] = set()  # the workers running in this process (a row claimed by another one of it is abandoned)


def abandoned(row: dict, now: float) -> bool:
    """A claimed row whose worker is gone: its lease has passed, or its worker ran on this host in a process
    that no longer runs (or is this process, which no longer runs that worker) and the claim is GRACE
    seconds old (a request the dead process had on the wire has reached the provider by then)."""
    if row["lease_until"] is not None and row["lease_until"] < now:
        return True
    host, _, rest = (row["worker"] or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or (row["claimed_at"] or 0) + GRACE > now:
        return False
    if int(pid) == os.getpid():
        return row["worker"] not in _LIVE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process of that number: alive
        return False
    return False


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
