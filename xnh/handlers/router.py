"""`respond(message, db)`: the one entry point every channel calls. It normalises the text, decides
what the message is about from what it contains, calls that intent's handler, keeps the sender's
conversation memory, and words the reply with the channel's template.

Order of the checks (first that applies wins):
 1. nothing readable, a greeting, thanks  → help
 2. opt-out / opt-in words                → unsubscribe / subscribe
 3. 人工 / 转人工                          → handoff
 4. a number picking a pending choice     → policy (a Q&A topic) or estimate (a row of the level table)
 5. an ID number + name                   → identity check, then 查报销/查参合
 6. 今年报了多少 / 还能报多少 (a known member) → claim_status (what is left of the caps)
    查报销-type words                      → claim_status
 7. 查参合-type words                      → enrollment
 8. a scheme this service does not handle (养老保险, 职工医保) → policy (a plain decline, no ticket)
    an amount with a visit/level/spending, or a bare amount → estimate
 9. a level, hospital or visit type after an estimate (remembered amount), unless it asks about rules
                                          → estimate
10. anything else                         → knowledge base (answer, choice, or handoff)
"""
import logging
import re
from copy import deepcopy

from sqlite_utils import Database

from .. import clock
from ..store import state as store
from ..store.state import Conversation
from ..message import Message, Reply
from ..policy_kb import concepts, understand
from ..render import render
from . import estimate, extract, lookup, policy
from .context import Context
from .normalize import normalize

logger = logging.getLogger(__name__)

# SPEC's words, Twilio's standard keywords, and a common typo (退定)
OPT_OUT = {"TD", "退订", "STOP", "取消订阅", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT", "退定"}
OPT_IN = {"订阅", "START", "开通订阅", "恢复订阅", "UNSTOP", "YES"}
HUMAN = re.compile(r"^(?:转)?人工(?:服务|客服)?$|转人工|找人工|人工客服|真人|工作人员")
# 查报销: explicit words, or money/approval words with a done-or-not marker (了/没): "钱打到卡上了吗"
# asks about a claim, "钱打到哪张卡" asks about the policy.
CLAIM_STATUS = re.compile(
    r"查(?:询|一下|一查|下|看)?(?:我家|我们家|家里|俺家|我|俺)?的?(?:报销|报账|补偿)|报销(?:进度|状态)|到哪(?:一步|了)|进度|"
    r"(?:钱|款|补偿|报销|报账).{0,8}(?:到账|到卡|打到|到|打|发|给|下来|批|拨|报).{0,5}(?:了|没)|"
    r"(?:到账|到卡|打款|拨付|批下来|报下来)(?:了吗|了没|没有|没)|审核.{0,3}(?:了吗|了没|完了|结果)|"
    r"(?:我|我家|家里|俺|俺家|咱家|我的|我妈|我爸|我娘|我爹|老人|孩子).{0,8}(?:报了吗|报了没)")
CLAIM_EXPLICIT = re.compile(r"查(?:询|一下|一查|下|看)?(?:我家|我们家|家里|俺家|我|俺)?的?(?:报销|报账|补偿)|报销(?:进度|状态)|"
                            r"(?:到账|打款|拨付)(?:了吗|了没|没有)")
LONG_MESSAGE = 60  # characters: a message board post, not an SMS question
# Questions about how things work, even when they use status words: "审核没通过咋办", "多久能到账".
HOW_QUESTION = re.compile(r"怎么办|咋办|怎么弄|怎么处理|如何|多久|多长时间|几天|多少天|哪里看|在哪看|公示|直接|会不会|能不能|可不可以|"
                          r"会把|会被|注销|后果|影响|失效|为什么|为啥")
# 查参合: explicit words, or paying/joining with a done-or-not marker in a sentence about the scheme or
# the family ("我家交了没有"); a short "交钱了吗" alone counts too. "要先把钱交了吗" does not.
ENROLL_EXPLICIT = re.compile(r"查(?:询|一下|一查|下|看)?(?:我家|我们家|家里|俺家|我|俺)?的?(?:参合|合作医疗|新农合|缴费|交费)|有没有参合|参合了(?:吗|没|么)|参合没|参没参合|是不是.{0,4}参合|交没交")
ENROLL_DONE = re.compile(r"(?:交|缴|参合|参加|买|办).{0,8}(?:没有|了没|了吗|了么|没交|没缴)")
ENROLL_TOPIC = re.compile(r"参合|合作医疗|新农合|农合|医保|参保|合疗|今年|明年|家里|我家|俺家|咱家|全家|家人|给我")
QUOTA = re.compile(r"(?:今年|已经|一共|总共).{0,4}报了多少|还(?:能|可以|剩)报?多少|剩(?:余|下)(?:的)?(?:额度|多少)|额度还(?:有|剩)")
GREETING = re.compile(r"^(?:你好|您好|在吗|在不在|喂|哈喽|hello|hi|嗨|早上好|晚上好|下午好)[啊呀吗么!！。.?？~]*$", re.I)
THANKS = re.compile(r"^(?:谢谢|多谢|谢了|感谢|好的|好|知道了|明白了|晓得了|行|嗯|哦|ok|OK)[啊呀了您你!！。.~]*$")
# a question about the rules, not about the remembered amount: "省医院起付线多少" after an estimate
POLICY_WORDS = re.compile(r"起付线|封顶|比例|几成|怎么|咋|如何|什么|啥|哪些|要不要|需不需要|需要|手续|材料|政策|规定")
_READABLE = re.compile(r"[\u4e00-\u9fff0-9a-zA-Z]")
_AMOUNT_ONLY = re.compile(r"^[约大概差不多花了共用]{0,4}[\d.,一二两三四五六七八九十百千万kK]+(?:多|来)?(?:元|块钱|块)?[左右]{0,2}$")


def _punctless(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", text).upper()


def route(ctx: Context) -> Reply:
    """Decide the intent from what the message contains and call its handler."""
    text, state = ctx.text, ctx.state
    if not _READABLE.search(text):
        return Reply("help", "help", {"reason": "empty" if not text else "unreadable"})
    word = _punctless(text)
    if word in OPT_OUT:
        return _subscription(ctx, False)
    if word in OPT_IN:
        return _subscription(ctx, True)
    if HUMAN.search(text):
        return policy.handoff(ctx, asked=True)
    if re.fullmatch(r"\d{1,3}", word) and state.pending not in ("choice", "level"):
        return Reply("help", "help", {"reason": "number"})  # a stray "1": nothing is waiting for a number
    if GREETING.match(text) or THANKS.match(text):
        return Reply("help", "help", {"reason": "greeting" if GREETING.match(text) else "thanks"})
    pick = policy.chosen(text, state)
    if pick is not None:
        return policy.answer(ctx, state.topics[pick], state.area, state.care_area)
    level = estimate.picked_level(text, state)
    if level:
        picked = extract.Facts(level=level)
        return estimate.handle(ctx, estimate.recall(state, picked))
    identity = lookup.parse_identity(text)
    if identity:
        return lookup.verify(ctx, *identity)
    if QUOTA.search(text) and ctx.me:
        return lookup.quota(ctx)
    asks_you_pay = bool(extract.YOU_PAY.search(text))  # 报完了我自己还要拿多少钱: an estimate, not a claim's status
    if _claim_status(text) and not asks_you_pay:
        return lookup.claim_status(ctx)
    if _enrollment_check(text) and not asks_you_pay:
        return lookup.enrollment(ctx)
    found = concepts.find(text)
    if understand.declined(found) or understand.unanswerable(found):
        return policy.handle(ctx)  # 养老保险交100元, 狂犬疫苗1600元: no bill the estimator can price
    facts = extract.facts(text)
    if facts.absurd and facts.total is None:  # 住院花了3000000000000元: never the last amount again, ask
        ctx.state = Conversation()
        return Reply("help", "help", {"reason": "amount"})
    if facts.total is not None and facts.visit != "inpatient" and "care:chronic" in concepts.find(text).concepts:
        return policy.handle(ctx)  # a chronic illness treated in outpatient care has its own application, no 门诊统筹 sum
    if estimate.wants_estimate(facts, text) or (facts.total is not None and facts.total >= 10 and _AMOUNT_ONLY.match(text)):
        return estimate.handle(ctx, facts)
    if state.pending == "level" and facts.total is None and (facts.level or facts.visit) \
            and not POLICY_WORDS.search(text) and extract.place_only(facts):
        return estimate.handle(ctx, estimate.recall(state, facts))
    return policy.handle(ctx)


def _claim_status(text: str) -> bool:
    """A question about one's own claim. A long message is a story (钱…出院了 in it is no status question):
    only explicit words count there."""
    if HOW_QUESTION.search(text):
        return False
    if len(text) > LONG_MESSAGE:
        return bool(CLAIM_EXPLICIT.search(text))
    return bool(CLAIM_STATUS.search(text))


def _enrollment_check(text: str) -> bool:
    if ENROLL_EXPLICIT.search(text):
        return True
    return bool(ENROLL_DONE.search(text)) and (bool(ENROLL_TOPIC.search(text)) or len(_punctless(text)) <= 6) \
        and not HOW_QUESTION.search(text)


def _subscription(ctx: Context, on: bool) -> Reply:
    phone = ctx.phone or ctx.message.sender
    store.set_subscribed(ctx.db, phone, on, ctx.message.channel)
    return Reply("subscribe" if on else "unsubscribe", "subscribe" if on else "unsubscribe", {})


def warm_up(db: Database) -> None:
    """Load what the first messages would otherwise wait for (concepts and place names, the Q&A index,
    OpenCC, pinyin, templates): a long-running server calls this once before it takes traffic."""
    for text in ("住院花了三千能報多少在县医院", "门诊报销有上限吗", "查报销"):
        route(Context(message=Message(text=text, sender="warm-up", channel="sms"), db=db, text=normalize(text),
                      today=clock.today(), state=Conversation()))
    understand.decide(normalize("四川农村医保报销比例是多少"))  # the place names of China


def respond(message: Message, db: Database) -> Reply:
    """The reply to one message, worded for its channel. Never raises for any text.
    Its writes (conversation memory, tickets, identity attempts ...) are left uncommitted: the caller
    commits once per message."""
    state = store.load_state(db, message.sender)
    ctx = Context(message=message, db=db, text=normalize(message.text), today=clock.today(), state=deepcopy(state))
    try:
        reply = route(ctx)
    except Exception:  # a bug must not leave a farmer without an answer; it is logged loudly
        logger.exception("respond failed for a %s message", message.channel)
        ctx.state = Conversation()
        reply = Reply("help", "help", {"reason": "error"})
    if ctx.state != state:
        store.save_state(db, message.sender, ctx.state)
    try:
        reply.text = render(reply, message.channel)
    except Exception:  # a template bug: still answer
        logger.exception("rendering %s failed", reply.template)
        reply = Reply("help", "help", {"reason": "error"})
        reply.text = render(reply, message.channel)
    return reply
