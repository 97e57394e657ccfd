"""Is anything sending? One answer for `/healthz` and `xnh broadcast status`: the sender's heartbeat (the
in-process one of `xnh serve`, else the latest any process wrote in `senders`), the age of the oldest row
due now, and the problems: a dead sender (its thread ended, or no good round for XNH_SENDER_STALE s) or a
backlog older than XNH_BACKLOG_LIMIT s.

    report = outbound(db, settings, health=app_sender_health)   # {"sender": …, "oldest_due_age": …, "problems": […]}
"""
import time

from ..store import outbox, senders
from .worker import HEARTBEAT_EVERY


def outbound(db, settings, health=None, now: float | None = None) -> dict:
    """The sender's state, the oldest due row's age in seconds (None: nothing due) and the problems."""
    now = time.time() if now is None else now
    problems = []
    if health is not None:
        sender = health.as_dict(now)
        problem = health.problem(settings.sender_stale, now)
        if problem:
            problems.append(problem)
    else:
        sender = _stored(db, settings, now, problems)
    age = outbox.oldest_due_age(db, now=now)
    if age is not None and age > settings.backlog_limit:
        problems.append(f"待发消息积压 / the oldest message due has waited {age:.0f} s "
                        f"(limit {settings.backlog_limit:g} s)")
    return {"sender": sender, "oldest_due_age": None if age is None else round(age, 1), "problems": problems}


def _stored(db, settings, now: float, problems: list) -> dict | None:
    """The latest sender of any process, from `senders`; a running one silent too long is a problem."""
    row = senders.latest(db)
    if row is None:
        return None
    age = now - row["heartbeat"]
    if row["state"] != "stopped" and age > settings.sender_stale + HEARTBEAT_EVERY:
        problems.append(f"发送程序没有心跳 / the outbound sender {row['id']} has not beaten for {age:.0f} s "
                        f"(limit {settings.sender_stale:g} s); last fault: {row['last_error'] or 'none'}")
    return {"id": row["id"], "state": row["state"], "heartbeat_age": round(age, 1), "sent": row["sent"],
            "last_error": row["last_error"]}
