"""Policy questions answered from the knowledge base (policy_kb/qa), with numbered choices when two
topics are close, and a handoff ticket for a person when nothing matches."""
import re

from ..store import state as store
from ..message import Reply
from ..policy_kb import matcher, qa
from .context import Context

_CHOICE = re.compile(r"^\s*(?:第\s*)?([1-3一二三])\s*(?:个|条|项)?\s*[.。!！]?\s*$")
_CN = {"一": 1, "二": 2, "三": 3}


def chosen(text: str, state: dict) -> int | None:
    """The index picked by a reply like '1', '第二个', when choices are pending."""
    if state.get("pending") != "choice":
        return None
    m = _CHOICE.match(text)
    if not m:
        return None
    n = _CN.get(m.group(1)) or int(m.group(1))
    return n - 1 if n <= len(state["topics"]) else None


def answer(ctx: Context, topic_id: str) -> Reply:
    topic = qa.by_id(topic_id)
    field = "telegram" if ctx.message.channel == "telegram" else "sms"
    ctx.state.clear()
    return Reply("policy", "policy", {"answer": qa.render_answer(getattr(topic, field), ctx.today),
                                      "topic": topic.id, "source": topic.source})


def handle(ctx: Context) -> Reply:
    best, close = matcher.match(ctx.text)
    if best:
        return answer(ctx, best.topic.id)
    if close:
        ctx.state.clear()
        ctx.state.update({"pending": "choice", "topics": [m.topic.id for m in close]})
        return Reply("policy", "policy_choice", {"choices": [m.topic.question for m in close]})
    return handoff(ctx, asked=False)


def handoff(ctx: Context, asked: bool) -> Reply:
    """Save the question for a clerk; the reply says a person will answer."""
    ticket = store.open_ticket(ctx.db, ctx.message.sender, ctx.message.channel, ctx.message.text)
    ctx.state.clear()
    return Reply("handoff", "handoff", {"ticket": ticket, "asked": asked})
