"""The question radar: open tickets grouped by what they ask, so one answer reaches everyone who asked, and
an answer worth keeping becomes the office's own knowledge-base entry (store/local_answers.py), which the
bot gives from then on (handlers/policy.py).

    groups(db)                              # biggest first, then oldest waiting; each with its villages
    answer_group(db, group, text, actor)    # one answer to every ticket in it, through the outbox
    save_local(db, group, question=…, phrasings=[…], answer=…, actor=…)   # the bot answers it from now on
    export_toml(local_answers.entries(db))  # the same TOML as xnh/policy_kb/qa/*.toml
    figure(db)                              # of the tickets so far, how many a saved answer would have answered

What a ticket asks: a partial answer's ticket knows its topic and the points the bot could not answer
(`handoff_tickets.topic`, `.points`: `chronic_disease` + `time`): tickets with the same topic and points
form a group, however worded. A ticket the knowledge base knows nothing of (topic NULL) joins the first
group (oldest first) whose first question it is alike (handlers/likeness.py, `ALIKE`), else starts its own.
"""
import json
from collections import Counter
from dataclasses import dataclass, field

from .handlers import likeness
from .policy_kb import qa
from .store import county, db as store_db, local_answers, outbox, state, tickets as store_tickets

MAX_TICKETS = 5000  # open tickets grouped at a time (the oldest); a county office has hundreds


@dataclass
class Group:
    """Tickets that ask the same thing."""

    key: str  # "t:<topic>:<points>" for partial answers, "q:<first ticket id>" for questions alike
    topic: str | None
    points: str | None
    tickets: list = field(default_factory=list)  # rows of handoff_tickets, oldest waiting first
    villages: list = field(default_factory=list)  # [(township village, tickets)], most first; "未知" unknown

    @property
    def size(self) -> int:
        return len(self.tickets)

    @property
    def oldest(self) -> str:
        return min((t["waiting_since"] or t["created_at"]) for t in self.tickets)

    @property
    def question(self) -> str:
        """What the group asks: the topic's question and the points the bot could not answer, or the
        first ticket's question."""
        if self.topic:
            try:
                return qa.by_id(self.topic).question
            except KeyError:
                return self.topic
        return self.tickets[0]["question"].split("\n")[0]

    @property
    def phrasings(self) -> list[str]:
        """The words people used: each ticket's first question, as written, without repeats."""
        seen: dict[str, None] = {}
        for t in self.tickets:
            seen.setdefault(t["question"].split("\n")[0][:200], None)
        return list(seen)


def _open_tickets(db, status: str | None = "open") -> list[dict]:
    return store_tickets.inbox(db, status=status, size=MAX_TICKETS)[0]


def group_tickets(rows: list[dict]) -> list[Group]:
    """`rows` (tickets, oldest waiting first) grouped (see the module docstring), biggest first, then oldest."""
    found: dict[str, Group] = {}
    leaders: list[tuple[Group, tuple]] = []
    for t in rows:
        if t["topic"]:
            key = f"t:{t['topic']}:{t['points'] or ''}"
            found.setdefault(key, Group(key, t["topic"], t["points"] or None)).tickets.append(t)
            continue
        mine = likeness.tokens(t["question"].split("\n")[0])
        home = next((g for g, theirs in leaders if likeness.likeness_of(mine, theirs) >= likeness.ALIKE), None)
        if home is None:
            home = Group(f"q:{t['id']}", None, None)
            found[home.key] = home
            leaders.append((home, mine))
        home.tickets.append(t)
    return sorted(found.values(), key=lambda g: (-g.size, g.oldest))


def groups(db, status: str | None = "open") -> list[Group]:
    """The open tickets (`status` None: all of them) grouped, biggest first then oldest, with their villages."""
    found = group_tickets(_open_tickets(db, status))
    _add_villages(db, found)
    return found


def group(db, key: str) -> Group | None:
    return next((g for g in groups(db) if g.key == key), None)


def _phone(db, sender: str) -> str | None:
    if sender.startswith(("tg:", "wx:")):
        return state.bound_phone(db, sender)
    return sender


def _add_villages(db, found: list[Group]) -> None:
    phones = {t["sender"]: _phone(db, t["sender"]) for g in found for t in g.tickets}
    places = county.places_of_phones(db, [p for p in phones.values() if p])
    for g in found:
        where = Counter()
        for t in g.tickets:
            place = places.get(phones.get(t["sender"]) or "")
            where[" ".join(x for x in place if x) if place else "未知"] += 1
        g.villages = sorted(where.items(), key=lambda kv: (kv[0] == "未知", -kv[1], kv[0]))


def answer_group(db, tickets: list[tuple[int, int]], text: str, actor: str) -> tuple[list[int], list[int]]:
    """One answer to every ticket in `tickets` ((id, answers the clerk saw)), each through the outbox on its
    own channel, in one transaction with the tickets and the audit entry. A ticket someone answered
    meanwhile is left out (its asker has an answer). Returns (answered ids, left-out ids). Commits."""
    text = " ".join((text or "").split())
    if not text:
        raise ValueError("回复不能为空。")
    answered, left = [], []
    with store_db.writing(db):
        for ticket_id, seen in tickets:
            t = store_tickets.ticket(db, ticket_id)
            if t is None or not store_tickets.mark_answered(db, ticket_id, text, actor, seen):
                left.append(ticket_id)
                continue
            queued = outbox.queue_reply_row(db, channel=t["channel"], recipient=t["sender"], text=text,
                                            ref=store_tickets.answer_ref(ticket_id, seen))
            store_tickets.add_answer(db, ticket_id, text, actor, queued)
            answered.append(ticket_id)
        state.audit(db, actor, "group_answer", {"via": "console", "tickets": answered, "left_out": left})
    return answered, left


def save_local(db, g: Group, *, question: str, phrasings: list[str], answer: str, actor: str) -> int:
    """Save `answer` as the office's own entry for what group `g` asks (its topic and points, or the
    words people used); the bot gives it from now on. Commits; returns its id."""
    with store_db.writing(db):
        return local_answers.save(db, question=question, phrasings=phrasings, answer=answer, actor=actor,
                                  topic=g.topic, points=g.points, tickets=[t["id"] for t in g.tickets])


# -- the TOML the knowledge base uses ---------------------------------------------------------------------

def _toml(value) -> str:
    """A TOML value: strings as basic strings (JSON's escapes are TOML's), lists as arrays."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def export_toml(entries: list[dict]) -> str:
    """Active entries as `[[topics]]` of xnh/policy_kb/qa/*.toml (id, question, concepts, points,
    paraphrases, sms, telegram, source): a maintainer may copy one into the package's knowledge base."""
    out = ["# 合管办本地答复 (question radar), exported from the service database.",
           "# The same fields as xnh/policy_kb/qa/*.toml; concepts are the topic's when saved for a partial answer.", ""]
    for e in entries:
        if e["status"] != "active":
            continue
        concepts = []
        if e["topic"]:
            try:
                concepts = list(qa.by_id(e["topic"]).concepts)
            except KeyError:
                concepts = []
        points = [p for p in (e["points"] or "").split(",") if p and ":" not in p]
        entry_id = f"local_{e['id']}" + (f"_{e['topic']}" if e["topic"] else "")
        out += ["[[topics]]", f"id = {_toml(entry_id)}",
                f"question = {_toml(e['question'])}", f"concepts = {_toml(concepts)}", f"points = {_toml(points)}",
                f"paraphrases = {_toml(e['phrasings'])}", f"sms = {_toml(e['answer'])}",
                f"telegram = {_toml(e['answer'])}", f"source = {_toml(e['source'])}", ""]
    return "\n".join(out)


# -- the figure: how many tickets a saved answer would have answered ----------------------------------------

def figure(db) -> dict:
    """Of every ticket so far (open and answered), grouped as the radar groups open ones: the tickets, the
    groups, and how many tickets a saved answer would have answered — in each group, every ticket after
    the first, had the first one's answer been saved (a partial answer's by its topic and points, exactly
    as the bot looks it up; a question alike, by likeness to the first, as the bot matches it)."""
    rows = sorted(_open_tickets(db, None), key=lambda t: (t["created_at"], t["id"]))
    found = group_tickets(rows)
    return {"tickets": len(rows), "groups": len(found), "repeated_groups": sum(1 for g in found if g.size > 1),
            "would_answer": sum(g.size - 1 for g in found)}
