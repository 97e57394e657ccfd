"""Handoff tickets and their threads: every write to `handoff_tickets` and `ticket_messages` lives here
(store/state.py re-exports the functions the message path uses).

    tickets.open_ticket(db, sender, channel, question, topic=None, points=None)   # a question for a clerk
    tickets.follow_up(db, ticket_id, text)         # a farmer's reply within a day of an answer reopens it
    tickets.inbox(db, status="open", q="138 密码", page=1)   # oldest waiting first, 50 a page, searched
    tickets.assign(db, ticket_id, "wang")          # 我来处理: (True, "wang") or (False, "li")
    tickets.mark_answered(db, ticket_id, text, "wang", seen_answers=0)   # False: someone answered first

A ticket is `open` (waiting for a clerk: `waiting_since` is when its oldest unanswered message came) or
`answered`. Each message is a row of `ticket_messages`: the farmer's (`in`) and each clerk's answer
(`out`, with the outbox row that carries it, whose status says whether it was queued, sent, delivered or
failed and why). `answers` counts the answers given: a clerk answers the ticket as she saw it
(`seen_answers`), so of two clerks answering at once only the first is recorded and sent; the second is
told. Writes run inside the caller's transaction.
"""
import datetime as dt
import unicodedata

from .. import clock
from . import db as _db

FOLLOW_UP = dt.timedelta(days=1)  # a message this soon after an answer joins that ticket
PAGE = 50
_TICKET = ("id", "sender", "channel", "question", "created_at", "status", "answer", "answered_by", "answered_at",
           "topic", "points", "assigned_to", "assigned_at", "answers", "waiting_since")


def stamp() -> str:
    """The policy clock as an ISO string (as state.stamp: this module is imported by state.py)."""
    return clock.now().isoformat(timespec="seconds")


def _message(db, ticket_id: int, direction: str, text: str, actor: str | None = None,
             outbox_id: int | None = None) -> None:
    db.conn.execute("INSERT INTO ticket_messages (ticket_id, at, direction, text, actor, outbox_id) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [ticket_id, stamp(), direction, text[:500], actor, outbox_id])


# -- the message path ---------------------------------------------------------------------------------------

def open_ticket(db, sender: str, channel: str, question: str, topic: str | None = None,
                points: str | None = None) -> int:
    """A question for a clerk; `topic` and `points` when the bot answered its subject but not the
    points asked (a partial answer)."""
    now = stamp()
    ticket_id = db.conn.execute(
        "INSERT INTO handoff_tickets (sender, channel, question, created_at, status, topic, points, answers, "
        "waiting_since) VALUES (?, ?, ?, ?, 'open', ?, ?, 0, ?)",
        [sender, channel, question[:500], now, topic, points, now]).lastrowid
    _message(db, ticket_id, "in", question)
    return ticket_id


def open_tickets(db, sender: str) -> list[dict]:
    """The sender's open tickets, newest first."""
    cursor = db.conn.execute("SELECT id, question FROM handoff_tickets WHERE sender = ? AND status = 'open' "
                             "ORDER BY id DESC", [sender])
    return [{"id": i, "question": q} for i, q in cursor]


def add_to_ticket(db, ticket: int, question: str) -> None:
    """A further question joins an open ticket (kept in full: the clerk reads them together)."""
    changed = db.conn.execute("UPDATE handoff_tickets SET question = substr(question || char(10) || ?, 1, 2000) "
                              "WHERE id = ? AND instr(question, ?) = 0",
                              [question[:500], ticket, question[:500]]).rowcount
    if changed:
        _message(db, ticket, "in", question)


def recently_answered(db, sender: str) -> int | None:
    """The sender's ticket answered within FOLLOW_UP (policy clock), whose answer a new message may be a
    reply to, or None. Not when the sender has an open ticket (that one takes the message)."""
    since = (clock.now() - FOLLOW_UP).isoformat(timespec="seconds")
    row = db.conn.execute(
        "SELECT id FROM handoff_tickets AS t WHERE sender = ? AND status = 'answered' AND answered_at >= ? "
        "AND NOT EXISTS (SELECT 1 FROM handoff_tickets AS o WHERE o.sender = t.sender AND o.status = 'open') "
        "ORDER BY answered_at DESC, id DESC LIMIT 1", [sender, since]).fetchone()
    return row[0] if row else None


def follow_up(db, ticket_id: int, text: str) -> None:
    """A farmer's message after a clerk's answer: the ticket is open again, waiting since now, with the
    message added to its question and its thread (the clerk who answered keeps it)."""
    db.conn.execute("UPDATE handoff_tickets SET status = 'open', waiting_since = ?, "
                    "question = substr(question || char(10) || ?, 1, 2000) WHERE id = ?",
                    [stamp(), text[:500], ticket_id])
    _message(db, ticket_id, "in", text)


# -- the console --------------------------------------------------------------------------------------------

def ticket(db, ticket_id: int) -> dict | None:
    found = _db.rows(db, f"SELECT {', '.join(_TICKET)} FROM handoff_tickets WHERE id = ?", [ticket_id])
    return found[0] if found else None


def thread(db, ticket_id: int) -> list[dict]:
    """The ticket's messages, oldest first; an answer with its outbox row's status and reason."""
    return _db.rows(db, "SELECT m.id, m.at, m.direction, m.text, m.actor, m.outbox_id, o.status AS delivery, "
                        "o.reason AS delivery_reason, o.error_code FROM ticket_messages AS m "
                        "LEFT JOIN outbox AS o ON o.id = m.outbox_id WHERE m.ticket_id = ? ORDER BY m.id",
                    [ticket_id])


_LAST_ANSWER = ("(SELECT o.status FROM ticket_messages AS m JOIN outbox AS o ON o.id = m.outbox_id "
                "WHERE m.ticket_id = t.id AND m.direction = 'out' ORDER BY m.id DESC LIMIT 1)")
_LAST_REASON = ("(SELECT o.reason FROM ticket_messages AS m JOIN outbox AS o ON o.id = m.outbox_id "
                "WHERE m.ticket_id = t.id AND m.direction = 'out' ORDER BY m.id DESC LIMIT 1)")
ORDERS = {"oldest": "t.status != 'open', coalesce(t.waiting_since, t.created_at), t.id",
          "newest": "coalesce(t.waiting_since, t.created_at) DESC, t.id DESC"}


def search_terms(q: str | None) -> tuple[list[str], list]:
    """SQL conditions and parameters for a clerk's search, every word must hold: a ticket number (#12, or
    up to 3 digits), a phone or part of one (7 digits or more, or starting with 0; 4-6 digits: either),
    else words of the question. Full-width input (１３８, ＃12) is accepted."""
    text = unicodedata.normalize("NFKC", q or "").strip()
    where, params = [], []
    for word in text.split():
        bare = word.lstrip("#")
        if bare.isdigit() and (word.startswith("#") or len(bare) < 4):  # #12, 12: a ticket number
            where.append("t.id = ?")
            params.append(int(bare))
        elif bare.isdigit() and (bare.startswith("0") or len(bare) >= 7):  # a phone or its end
            where.append("t.sender LIKE ?")
            params.append(f"%{bare}%")
        elif bare.isdigit():  # 4-6 digits: part of a phone, or a ticket number
            where.append("(t.sender LIKE ? OR t.id = ?)")
            params += [f"%{bare}%", int(bare)]
        else:
            where.append("t.question LIKE ?")
            params.append(f"%{word}%")
    return where, params


def inbox(db, *, status: str | None = "open", q: str | None = None, assigned: str | None = None,
          order: str = "oldest", page: int = 1, size: int = PAGE) -> tuple[list[dict], int]:
    """One page (from 1) of tickets and how many match: `status` open | answered | None (all), `q` searched
    (`search_terms`), `assigned` to that clerk; oldest waiting first (`order` "newest" for the reverse).
    Each with the delivery status and reason of its last answer."""
    where, params = search_terms(q)
    if status:
        where.append("t.status = ?")
        params.append(status)
    if assigned:
        where.append("t.assigned_to = ?")
        params.append(assigned)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    total = db.conn.execute(f"SELECT count(*) FROM handoff_tickets AS t {clause}", params).fetchone()[0]
    columns = ", ".join(f"t.{c}" for c in _TICKET)
    rows = _db.rows(db, f"SELECT {columns}, {_LAST_ANSWER} AS delivery, {_LAST_REASON} AS delivery_reason "
                        f"FROM handoff_tickets AS t {clause} ORDER BY {ORDERS.get(order, ORDERS['oldest'])} "
                        "LIMIT ? OFFSET ?", [*params, size, (max(page, 1) - 1) * size])
    return rows, total


def assign(db, ticket_id: int, user: str, take_over: bool = False) -> tuple[bool, str | None]:
    """我来处理: `user` takes the ticket unless another clerk has (`take_over` takes it from them).
    Returns (True, user), or (False, the clerk who has it)."""
    if take_over:
        db.conn.execute("UPDATE handoff_tickets SET assigned_to = ?, assigned_at = ? WHERE id = ?",
                        [user, stamp(), ticket_id])
    else:
        db.conn.execute("UPDATE handoff_tickets SET assigned_to = ?, assigned_at = ? WHERE id = ? "
                        "AND (assigned_to IS NULL OR assigned_to = ?)", [user, stamp(), ticket_id, user])
    holder = db.conn.execute("SELECT assigned_to FROM handoff_tickets WHERE id = ?", [ticket_id]).fetchone()
    return (holder is not None and holder[0] == user), (holder[0] if holder else None)


def unassign(db, ticket_id: int, user: str) -> bool:
    """The clerk gives the ticket back (only her own)."""
    return db.conn.execute("UPDATE handoff_tickets SET assigned_to = NULL, assigned_at = NULL WHERE id = ? "
                           "AND assigned_to = ?", [ticket_id, user]).rowcount == 1


def mark_answered(db, ticket_id: int, text: str, actor: str, seen_answers: int) -> bool:
    """Record `actor`'s answer to the open ticket as she saw it (`seen_answers` answers before); False when
    it is not open any more or someone answered meanwhile (nothing is written then). The caller queues
    the answer in the outbox in the same transaction and links it with `add_answer`."""
    return db.conn.execute(
        "UPDATE handoff_tickets SET status = 'answered', answer = ?, answered_by = ?, answered_at = ?, "
        "answers = answers + 1, assigned_to = coalesce(assigned_to, ?) WHERE id = ? AND status = 'open' "
        "AND answers = ?", [text, actor, stamp(), actor, ticket_id, seen_answers]).rowcount == 1


def add_answer(db, ticket_id: int, text: str, actor: str, outbox_id: int) -> None:
    """The answer's place in the thread, with the outbox row that carries it."""
    _message(db, ticket_id, "out", text, actor, outbox_id)


def answer_ref(ticket_id: int, answers_before: int) -> str:
    """The outbox ref of a ticket's answer: "ticket:12" for the first, "ticket:12#2" for the second …"""
    return f"ticket:{ticket_id}" if answers_before == 0 else f"ticket:{ticket_id}#{answers_before + 1}"


def tickets(db, status: str | None, limit: int) -> list[dict]:
    """Tickets of `status` (every status when None), oldest waiting first."""
    return inbox(db, status=status, size=limit)[0]


def answer_ticket(db, ticket_id: int, answer: str, actor: str) -> bool:
    """Mark an open ticket answered by `actor` whatever its answers so far; False when it was answered
    already. (The console uses mark_answered, which also refuses a second clerk.)"""
    found = ticket(db, ticket_id)
    return bool(found) and mark_answered(db, ticket_id, answer, actor, found["answers"] or 0)
