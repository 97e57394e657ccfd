"""Policy questions answered from the knowledge base (policy_kb/qa), as policy_kb/understand.py
decides: one answer when one topic fits; what is known of the subject and a ticket when the topic
fits but does not state the point asked (a partial answer); two that fit about equally answered
together when short enough, else numbered choices; a plain decline for schemes this service does
not handle; and a handoff ticket for a person when a real question fits nothing (at most
MAX_OPEN_TICKETS open per sender; a repeat joins the open one). A message within a day of a clerk's
answer to the sender is a reply to that answer: it joins that ticket, opened again, instead of being
answered by the bot (store/tickets.py `recently_answered`). The office's own answers, saved from the
question radar (store/local_answers.py), come before a ticket: a partial answer whose topic and missing
points have a saved answer gets it, and so does a question the knowledge base knows nothing of that is
alike a saved one (handlers/likeness.py); the reply names its source (合管办答复 and the day)."""
import re

from ..store import state as store
from ..store import local_answers, tickets
from ..store.state import Conversation
from ..message import Reply
from ..policy_kb import concepts, points, qa, understand
from . import likeness
from .context import Context

_CHOICE = re.compile(r"^\s*(?:第\s*)?([1-3一二三])\s*(?:个|条|项)?\s*[.。!！]?\s*$")
_CN = {"一": 1, "二": 2, "三": 3}
MAX_OPEN_TICKETS = 3
# words of someone answering what they were told: not understood, which one, and then
_REPLYING = re.compile(r"没看懂|看不懂|没听懂|不明白|没明白|不懂|什么意思|啥意思|是哪个|哪一个|然后呢|那怎么办|那咋办|还是不行|还是不对|不对啊")
BOTH_LIMIT = 260  # the two best close answers together up to this many characters (4 SMS) are sent at once, not a menu


def chosen(text: str, state: Conversation) -> int | None:
    """The index picked by a reply like '1', '第二个', when choices are pending."""
    if state.pending != "choice":
        return None
    m = _CHOICE.match(text)
    if not m:
        return None
    n = _CN.get(m.group(1)) or int(m.group(1))
    return n - 1 if n <= len(state.topics) else None


def answer(ctx: Context, topic_id: str, area: str | None = None, care_area: str | None = None) -> Reply:
    """A topic's answer; `area`: the question was about another place's scheme (say so first);
    `care_area`: the care was in another place (a hospital there counts as 县外非定点)."""
    topic = qa.by_id(topic_id)
    field = "telegram" if ctx.message.channel == "telegram" else "sms"
    ctx.state = Conversation()
    return Reply("policy", "policy", {"answer": qa.render_answer(getattr(topic, field), ctx.today),
                                      "topic": topic.id, "source": topic.source,
                                      "area": area, "care_area": care_area})


def handle(ctx: Context) -> Reply:
    decision = understand.decide(ctx.text)
    if decision.kind in ("help", "clarify", "handoff") or _REPLYING.search(ctx.text):
        joined = follow_up(ctx)  # within a day of a clerk's answer: a reply to it (没看懂, 是哪个), for the clerk
        if joined:
            return joined
    if decision.kind == "answer":
        return answer(ctx, decision.topics[0], decision.area, decision.care_area)
    if decision.kind == "partial":
        return partial(ctx, decision)
    if decision.kind == "choice" and len(decision.topics) >= 2:
        both = _both(ctx, decision)
        if both:
            return both
    if decision.kind == "choice":
        ctx.state = Conversation(pending="choice", topics=decision.topics, area=decision.area,
                                 care_area=decision.care_area)
        return Reply("policy", "policy_choice", {"choices": [qa.by_id(t).question for t in decision.topics]})
    if decision.kind == "other_scheme":
        ctx.state = Conversation()
        return Reply("policy", "policy_decline", {"scheme": decision.scheme, "area": None})
    if decision.area:  # another place's rules, and no 示范县 topic fits: a clerk could not answer either
        ctx.state = Conversation()
        return Reply("policy", "policy_decline", {"scheme": None, "area": decision.area})
    if decision.kind in ("help", "clarify"):
        ctx.state = Conversation()
        return Reply("help", "help", {"reason": "vague" if decision.kind == "clarify" else "unclear",
                                      "about": decision.about})
    return _local_alike(ctx) or handoff(ctx, asked=False)


def _local(ctx: Context, entry: dict) -> Reply:
    """The office's own answer (a local entry), with its source."""
    ctx.state = Conversation()
    return Reply("policy", "policy_local", {"answer": entry["answer"], "source": entry["source"],
                                            "topic": entry["topic"], "local": entry["id"]})


def _local_alike(ctx: Context) -> Reply | None:
    """A saved answer to a question alike this one (the knowledge base knows nothing of it), or None."""
    saved = local_answers.phrasings(ctx.db)
    found = likeness.best(ctx.text, saved) if saved else None
    return _local(ctx, local_answers.get(ctx.db, found[0])) if found else None


def _both(ctx: Context, decision: understand.Decision) -> Reply | None:
    """The best two of the topics that fit about equally, answered in one message when both fit in
    BOTH_LIMIT: the better one first, then the other under its own question. A farmer with a basic
    phone gets both at once instead of a menu to answer first."""
    first, second = (qa.by_id(t) for t in decision.topics[:2])
    field = "telegram" if ctx.message.channel == "telegram" else "sms"
    texts = [qa.render_answer(getattr(t, field), ctx.today) for t in (first, second)]
    if field == "sms" and sum(map(len, texts)) + len(second.question) + 4 > BOTH_LIMIT:
        return None
    ctx.state = Conversation()
    return Reply("policy", "policy_both", {"answer": texts[0], "also": texts[1], "also_question": second.question,
                                           "topic": first.id, "topics": [first.id, second.id],
                                           "source": first.source, "area": decision.area, "care_area": decision.care_area})


def partial(ctx: Context, decision: understand.Decision) -> Reply:
    """What is known about the subject, then plainly what is not: a point the rules don't state gets a
    ticket for a clerk (with the topic and the points, so that questions alike can be answered once);
    another scheme named beside 新农合 (商业保险, 养老保险) gets where to ask about it."""
    missing = sorted(decision.missing)
    saved = local_answers.for_topic(ctx.db, decision.topics[0], ",".join(missing)) if missing else None
    if saved:
        return _local(ctx, saved)
    reply = answer(ctx, decision.topics[0], decision.area, decision.care_area)
    ticket = _ticket(ctx, topic=decision.topics[0], points=",".join(missing)) if missing else None
    labels = {**points.labels(), **concepts.labels()}
    reply.template = "policy_partial"
    reply.data.update(ticket=ticket, missing=[labels[p] for p in missing], elsewhere=list(decision.elsewhere))
    return reply


def follow_up(ctx: Context) -> Reply | None:
    """A message the bot can't answer itself, within a day of a clerk's answer to this sender (and none of
    the sender's tickets open), replies to that answer: it joins that ticket, open again, and the clerk
    sees it. None when there is no such answer. (A question the bot can answer is answered: a farmer who
    got a clerk's answer yesterday still gets today's estimate at once.)"""
    ticket = tickets.recently_answered(ctx.db, ctx.message.sender)
    if ticket is None:
        return None
    tickets.follow_up(ctx.db, ticket, ctx.message.text)
    ctx.state = Conversation()
    return Reply("handoff", "handoff", {"ticket": ticket, "asked": True, "follow_up": True})


def _ticket(ctx: Context, topic: str | None = None, points: str | None = None) -> int:
    """The sender's ticket for this question: a repeat of an open question, or a question beyond
    MAX_OPEN_TICKETS open ones, joins the latest open ticket; a question within a day of a clerk's answer
    joins the answered ticket (open again)."""
    sender = ctx.message.sender
    recent = tickets.recently_answered(ctx.db, sender)
    if recent is not None:
        tickets.follow_up(ctx.db, recent, ctx.message.text)
        return recent
    open_now = store.open_tickets(ctx.db, sender)
    same = next((t for t in open_now if t["question"] == ctx.message.text[:500]), None)
    if same or len(open_now) >= MAX_OPEN_TICKETS:
        ticket = (same or open_now[0])["id"]
        store.add_to_ticket(ctx.db, ticket, ctx.message.text)
        return ticket
    return store.open_ticket(ctx.db, sender, ctx.message.channel, ctx.message.text, topic, points)


def handoff(ctx: Context, asked: bool) -> Reply:
    """Save the question for a clerk; the reply says a person will answer."""
    ticket = _ticket(ctx)
    ctx.state = Conversation()
    return Reply("handoff", "handoff", {"ticket": ticket, "asked": asked})
