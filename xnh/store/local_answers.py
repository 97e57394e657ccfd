"""`local_answers`: the office's own answers, saved from the question radar (xnh/radar.py), which the bot
gives from then on (handlers/policy.py). Every write to the table is here, audited with its actor.

    local_answers.save(db, question="…", phrasings=["…"], answer="…", actor="root", topic=None, points=None)
    local_answers.for_topic(db, "chronic_disease", "time")   # the active entry saved for that partial answer
    local_answers.phrasings(db)                               # {id: [question, phrasing…]} of topic-less ones

An entry is `active` or `retired` (never deleted: the audit log and the tickets it answered keep naming
it). Its source says who answered and when: "合管办答复 2026-06-15". Writes run inside the caller's
transaction.
"""
import json

from . import db as _db
from .state import audit, stamp

MAX_ANSWER = 500
MAX_PHRASINGS = 30
_COLUMNS = ("id", "topic", "points", "question", "phrasings", "answer", "source", "status", "tickets",
            "created_by", "created_at", "updated_by", "updated_at")


class LocalAnswerError(ValueError):
    """An entry that cannot be saved (no question, no answer, too long): the message says why."""


def source_for(day: str) -> str:
    """The source line of an answer the office gave on `day` (ISO date)."""
    return f"合管办答复 {day}"


def _clean(question: str, phrasings: list[str], answer: str) -> tuple[str, list[str], str]:
    question, answer = " ".join((question or "").split()), " ".join((answer or "").split())
    if not question:
        raise LocalAnswerError("请填写问题。")
    if not answer or len(answer) > MAX_ANSWER:
        raise LocalAnswerError(f"答复不能为空,最多{MAX_ANSWER}个字。")
    seen, kept = {question}, []
    for p in phrasings or []:
        p = " ".join(str(p).split())[:200]
        if p and p not in seen:
            seen.add(p)
            kept.append(p)
    return question, kept[:MAX_PHRASINGS], answer


def save(db, *, question: str, phrasings: list[str], answer: str, actor: str, topic: str | None = None,
         points: str | None = None, tickets: list[int] = ()) -> int:
    """A new active entry (the day of the policy clock in its source); an active entry for the same topic
    and points is retired by it. Returns its id."""
    question, phrasings, answer = _clean(question, phrasings, answer)
    now = stamp()
    if topic:
        for (old,) in db.conn.execute("SELECT id FROM local_answers WHERE topic = ? AND points IS ? AND status = 'active'",
                                      [topic, points]).fetchall():
            retire(db, old, actor)
    entry = db.conn.execute(
        "INSERT INTO local_answers (topic, points, question, phrasings, answer, source, status, tickets, created_by, "
        "created_at, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
        [topic, points, question, json.dumps(phrasings, ensure_ascii=False), answer, source_for(now[:10]),
         json.dumps(list(tickets)), actor, now, actor, now]).lastrowid
    audit(db, actor, "local_answer_save", {"entry": entry, "topic": topic, "points": points, "tickets": list(tickets)})
    return entry


def update(db, entry_id: int, *, question: str, phrasings: list[str], answer: str, actor: str) -> None:
    """Edit an entry's question, phrasings and answer (its source keeps the day it was first given)."""
    question, phrasings, answer = _clean(question, phrasings, answer)
    db.conn.execute("UPDATE local_answers SET question = ?, phrasings = ?, answer = ?, updated_by = ?, updated_at = ? "
                    "WHERE id = ?", [question, json.dumps(phrasings, ensure_ascii=False), answer, actor, stamp(),
                                     entry_id])
    audit(db, actor, "local_answer_edit", {"entry": entry_id})


def retire(db, entry_id: int, actor: str, active: bool = False) -> None:
    """Retire an entry (the bot stops giving it), or make it active again."""
    db.conn.execute("UPDATE local_answers SET status = ?, updated_by = ?, updated_at = ? WHERE id = ?",
                    ["active" if active else "retired", actor, stamp(), entry_id])
    audit(db, actor, "local_answer_edit" if active else "local_answer_retire", {"entry": entry_id})


def _decode(row: dict) -> dict:
    row["phrasings"] = json.loads(row["phrasings"] or "[]")
    row["tickets"] = json.loads(row["tickets"] or "[]")
    return row


def get(db, entry_id: int) -> dict | None:
    found = _db.rows(db, f"SELECT {', '.join(_COLUMNS)} FROM local_answers WHERE id = ?", [entry_id])
    return _decode(found[0]) if found else None


def entries(db, status: str | None = None) -> list[dict]:
    """Every entry (of `status`), active first, newest first."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    return [_decode(r) for r in _db.rows(db, f"SELECT {', '.join(_COLUMNS)} FROM local_answers {where} "
                                             "ORDER BY status != 'active', id DESC", params)]


def for_topic(db, topic: str, points: str) -> dict | None:
    """The active entry saved for a partial answer of `topic` that could not answer `points`."""
    found = _db.rows(db, f"SELECT {', '.join(_COLUMNS)} FROM local_answers WHERE topic = ? AND points = ? "
                         "AND status = 'active' ORDER BY id DESC LIMIT 1", [topic, points])
    return _decode(found[0]) if found else None


def phrasings(db) -> dict[int, list[str]]:
    """Active entries saved for questions the knowledge base knows nothing of: id → its question and phrasings."""
    return {r["id"]: [r["question"], *r["phrasings"]] for r in
            (_decode(x) for x in _db.rows(db, f"SELECT {', '.join(_COLUMNS)} FROM local_answers "
                                              "WHERE topic IS NULL AND status = 'active'"))}
