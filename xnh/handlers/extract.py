"""Read what the estimator needs out of a normalised message: amounts (any way people write them),
the self-paid part, the visit type, the level or hospital, special groups, age and scheme.

Numbers are found as spans first, then each span is converted by cn2an ("smart" mode handles
3千, 一万二, 1.2万, 两万五, 1万5); spans that are ages, days, dates, phone or ID numbers are skipped.
"""
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ..policy_kb import concepts, hospitals
from ..policy_kb.loader import county_cached, levels

_CN_DIGITS = "零〇一二两三四五六七八九"
_CN_UNITS = "十百千万亿"
MAX_AMOUNT = Decimal("10000000")  # 1千万: no hospital bill of a county's farmer is larger; bigger is no amount
_SPAN = re.compile(
    rf"(?<![\d.])(?:\d{{1,3}}(?: \d{{3}})+(?![\d.])|\d[\d,]*(?:\.\d+)?|[{_CN_DIGITS}{_CN_UNITS}])"
    rf"[\d.{_CN_DIGITS}{_CN_UNITS}kKwW]*"
)
_UNIT = r"(?:元|块钱|块|圆|rmb|RMB|人民币)"
_MORE = r"(?:多(?!少)|来|余)"
_MONEY_AFTER = re.compile(rf"^\s*{_MORE}?\s*{_UNIT}")
_NOT_MONEY_AFTER = re.compile(
    rf"^\s*{_MORE}?\s*(?:岁|周岁|天|日|号|月|年|次|个(?!人(?:负担|承担|自付|自费|出|交|要|掏|付|花|拿))|%|点|小时|钟|分钟|周|星期|礼拜|床|人|口|斤|公斤|"
    r"里|公里|米|楼|层|级|组|户|胎|倍|页|张|项|位|份|瓶|盒|片|针|[:：/-]\d|\.\d|"
    # a number that names a place or a thing: 3病区, 18组, 2号楼, B3县, 市3院, 5单元, 3年级
    r"病区|病房|区|县|市|乡|镇|村|队|室|科|栋|幢|单元|路|街|巷|弄|排|班|型|类|种|条|期|代|届|年级|家|间|所|座|辆|"
    r"台|部|本|院(?!费)|中(?!心)|小(?!时))"
)
# a number glued to a Latin letter is a code (B3县, A2栋, 3B), not money; k, w and rmb are units
_CODE_BEFORE = re.compile(r"[A-Za-z]\s*$")
_CODE_AFTER = re.compile(r"^(?![kKwW](?![A-Za-z])|rmb|RMB)[A-Za-z]")
# A number without a money unit is money only beside words of spending, care or reimbursing, or
# when it is the whole message (a reply to "花了多少"): 住院3000能报多少, 花了1.6万.
_MONEY_NEAR = re.compile(r"花|费|用了|开了|交了|付了|掏|共|结算|报|自费|自付|住院|门诊|消费|医药|押金|账单|发票|钱|开销|"
                         r"看病|治疗|手术|检查|拿药|买药|药|医院|卫生院|多少|负担|出院|垫|生孩子|分娩|剖腹|剖宫|顺产|化疗|透析|输液|打针")
MONEY_WINDOW = (10, 8)  # characters looked at before and after a number for _MONEY_NEAR
# The characters a bill's number follows directly: the end of a word of spending, care or a place of care
# (花了3000, 住院3000, 医药费3000, 门诊200, 约3000, 做手术8000). A number glued to any other character
# is part of a name (一起慧99, 长青树2号): no amount unless a money unit follows it.
_BILL_AFTER = set("了院费用诊花共计约多近是有要交报付出掏金单票药销概过剩额值到为治疗术查病产子针液水钱元块万千百十"
                  "：:,，。 的个计垫押")
_APPROX_AFTER = re.compile(rf"^\s*(?:{_MORE}|{_UNIT}?\s*(?:{_MORE}|左右|上下|出头))")
_APPROX_BEFORE = re.compile(r"(?:大概|大约|约|差不多|将近|快|估计|可能|好像)(?:花了|用了|花|用|是|有|要|共)?\s*$")
_SELF_PAY_AFTER = re.compile(r"^\s*(?:多|来)?\s*(?:元|块钱|块)?\s*(?:钱)?\s*(?:都|全)?\s*(?:是|为|属于|算)?\s*(?:自费|自付|目录外|不能报|报不了)(?![的部分费用是要有]{0,3}(?:多少|几))")
# what was already reimbursed this year, as the message says it: "今年已经报了40000"
_ALREADY_BEFORE = re.compile(r"(?:已经报了|已经报销了|已经报过|已报了|已报|已经报|报过了|前面报了|之前报了|先前报了|今年报了)\s*$")
_SELF_PAY_BEFORE = re.compile(r"(?:自费|自付|自己出|自己掏|目录外|不能报|报不了|不报)[的药品项目部分了是有约大概]{0,3}\s*$")
# What looks like a number but is not money: masked before amounts are read.
_NOT_AMOUNTS = re.compile(
    r"\+?\d{11,}[\dXx]?"  # phone and ID numbers
    r"|(?<!\d)(?:\+?86[- ]?)?1\d{2}[- ]\d{4}[- ]\d{4}(?!\d)"  # 138-1234-5678
    r"|(?<!\d)0\d{2,3}-\d{7,8}(?!\d)"  # 0851-12345678
    r"|(?<!\d)(?:19|20)\d\d[-/.](?:1[0-2]|0?[1-9])[-/.]\d{1,2}(?!\d)"  # 2026-03-05, 2026.3.5
    r"|(?<!\d)(?:19|20)\d\d[-/](?:1[0-2]|0?[1-9])(?![\d.])"  # 2026-03
    r"|(?<![\d.])(?:19|20)\d\d\s*年(?:\d{1,2}\s*月(?:\d{1,2}\s*[日号])?)?"  # 2026年3月5日
    r"|(?<![\d.])\d{1,2}\s*月\s*\d{1,2}\s*[日号]?"  # 3月5日
    r"|(?<![\d.])(?:1[0-2]|0?[1-9])/\d{1,2}(?![\d/])"  # 3/5
    r"|\d{1,2}[:：]\d\d"  # 10:30
    rf"|百分之[\d.{_CN_DIGITS}{_CN_UNITS}]+"  # 百分之七十
)
# 两三千 → 两千多, 十几万 → 十万多: a range or "some" is read as its lower bound, marked approximate.
# Both rewrites keep the text's length, so positions stay valid.
_SUCCESSOR = {"一": "二两", "二": "三", "两": "三", "三": "四", "四": "五", "五": "六", "六": "七", "七": "八", "八": "九"}
_RANGE = re.compile(r"([一二两三四五六七八])([二两三四五六七八九])([十百千万])")
_SOME = re.compile(rf"([{_CN_DIGITS}]?十)几([百千万]?)")


def _lower_bound(m: re.Match) -> str:
    first, second, unit = m.groups()
    return first + unit + "多" if second in _SUCCESSOR[first] else m.group()


INPATIENT_WORDS = ("住院", "住了", "住过", "出院", "入院", "开刀", "手术", "生孩子", "分娩", "住着")
OUTPATIENT_WORDS = ("门诊", "看病拿药", "拿药", "开药", "看门诊", "买药", "打针", "输液", "挂水", "看了个病", "看病")
# a stay denied or not needed is no stay: 不能住院治疗,只能在门诊开药 is outpatient care
_NO_STAY = re.compile(r"(?:不能|不用|不需要|不必|没有|没能|没|未|无法|不让|不给)住院|住不了院|住不上院")
URBAN_WORDS = ("城镇居民", "居民医保", "城镇医保", "城居")
# an injury: the township 合管办 investigates before paying, and a third party's fault is not covered
INJURY_WORDS = ("摔", "受伤", "伤了", "骨折", "车祸", "撞", "被打", "打伤", "咬伤", "被狗咬", "烫伤", "烧伤", "砸", "意外", "外伤", "工伤")
GROUP_WORDS = {
    "五保户": ("五保户", "五保"),
    "独生子女户": ("独生子女", "独生"),
    "二女户": ("二女户", "两女户", "双女户", "两个女儿", "二个女儿", "只有两个女儿"),
    "村干部": ("村干部", "村支书", "村主任", "村长", "村会计", "支书"),
    "低保户": ("低保",),
}
_PERSON = r"(?:我|俺|他|她|爸|爹|妈|娘|爷爷|奶奶|爷|奶|姥姥|姥爷|外公|外婆|老人|父亲|母亲|公公|婆婆|老伴|岳父|岳母)"
_AGE = re.compile(rf"([\d{_CN_DIGITS}十]+)\s*(?:多)?\s*(?:周岁|岁)|"
                  rf"(?:今年|{_PERSON}(?:今年|都|已经|快|也)?)\s*(\d{{1,3}}|[{_CN_DIGITS}十]{{1,4}})\s*(?:多)?\s*(?:了|啦)")


@dataclass
class Amount:
    value: Decimal
    approximate: bool = False
    self_pay: bool = False
    start: int = 0
    already: bool = False  # already reimbursed this year
    contribution: bool = False  # the premium paid for the scheme (每人要交180元), not a bill
    absurd: bool = False  # at or over MAX_AMOUNT: no bill of a county's farmer; read as "the amount is wrong"


@dataclass
class Facts:
    """What a message says about a visit. None means: the message does not say."""

    total: Decimal | None = None
    self_pay: Decimal = Decimal(0)
    approximate: bool = False
    visit: str | None = None  # inpatient | outpatient
    level: str | None = None  # a key of levels.toml
    hospital: str | None = None  # the listed or written hospital name
    listed: bool = False  # the hospital is on policy_kb's list (else: as written, outside the county)
    groups: list = field(default_factory=list)
    age: int | None = None
    urban: bool = False
    already: Decimal | None = None  # inpatient already reimbursed this year, as the message says it
    injury: bool = False  # an accident or injury (摔伤, 车祸): needs the township 合管办's investigation
    rest: str = ""  # the text with the hospital's name blanked out
    third_party: bool = False  # about someone else (我爸, 孩子): personal data of the sender does not apply
    you_pay: bool = False  # asks what the patient pays (自己要掏多少): the reply names total − reimbursed
    absurd: bool = False  # an amount too large to be a bill (3000000000000元): ask for the real one


@county_cached(maxsize=4096)
def _to_number(span: str) -> Decimal | None:
    """'3,000' → 3000, '3千2' → 3200, '1.2万' → 12000, '8k' → 8000, '3k5' → 3500; None when it is no number.
    Cached: people write amounts in few ways (三千, 两万五, 1.2万), and cn2an takes ~30 µs a numeral."""
    s = span.replace(",", "").replace(" ", "").rstrip(".")
    s = s.replace("k", "千").replace("K", "千").replace("w", "万").replace("W", "万")
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        return Decimal(s)
    import cn2an  # imported only for Chinese numerals: it costs about 0.2 s of start-up

    try:
        value = cn2an.cn2an(s, "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


_POLICY_NEAR = re.compile(r"标准|政策|规定|比例|最新|年度|新规|版|文件|方案")
_SPENDING = re.compile(r"花|费用|用了|开了|付了|交了|住了|一共|总共")


def _looks_like_year(span: str, text: str, start: int, end: int) -> bool:
    """A four-digit number from 2005 to 2035 without a money unit, next to policy words (报销标准2025)
    or in a message that speaks of no spending, is a year."""
    if not re.fullmatch(r"20(?:0[5-9]|[12]\d|3[0-5])", span):
        return False
    near = text[max(0, start - 4):start] + text[end:end + 4]
    return bool(_POLICY_NEAR.search(near)) or not _SPENDING.search(text)


# "8000自费药1000": the self-pay word names the next amount, not this one
_NEXT_AMOUNT = re.compile(rf"^[的药品项目部分费用了是有约大概占为]{{0,4}}\s*[\d{_CN_DIGITS}十]")


def _self_pay_after(after: str) -> bool:
    m = _SELF_PAY_AFTER.match(after)
    return bool(m) and not _NEXT_AMOUNT.match(after[m.end():])


def _mask(m: re.Match) -> str:
    return "#" * len(m.group())


_FINANCIAL = str.maketrans("壹贰貳叁參肆伍陆陸柒捌玖拾佰仟", "一二二三三四五六六七八九十百千")  # 大写数字 on receipts


# The premium, not a bill: 每人要交180元, 今年要缴250元, 交了一百五十元 in a message about the scheme's fee
_PREMIUM_BEFORE = re.compile(r"交|缴|收|每人|一人|人均|每个人")
_CARE_NEAR = re.compile(r"住院|花|医药|药|押金|看病|门诊|手术|医院|卫生院|费用|治疗|检查|生孩子|出院|报")
_SCHEME_WORDS = re.compile(r"医保|合作医疗|新农合|农合|参合|参保|保险|保费|合疗|农保")
PREMIUM_WINDOW = 12  # characters before the number looked at for a payment word


def _premium(text: str, start: int, end: int) -> bool:
    """A number paid as the scheme's premium: a payment word before it, no care or spending word near it,
    in a message about the scheme."""
    before = text[max(0, start - PREMIUM_WINDOW):start]
    near = text[max(0, start - 6):start] + " " + text[end:end + 6]
    return bool(_PREMIUM_BEFORE.search(before)) and not _CARE_NEAR.search(near) and bool(_SCHEME_WORDS.search(text))


# a run of digits as long as a phone number, written as money (花了3000000000000元): no phone, an absurd sum
_LONG_SUM = re.compile(r"(?:花了|花费|用了|费用|一共|总共|共计)\s*\d{11,}|\d{11,}\s*(?:元|块|万)")


def _money_context(text: str, start: int, end: int) -> bool:
    """Words of spending or care near the number, or nothing but the number in the message."""
    before, after = MONEY_WINDOW
    near = text[max(0, start - before):start] + " " + text[end:end + after]
    return bool(_MONEY_NEAR.search(near)) or not re.search(r"[\u4e00-\u9fffA-Za-z]", text[:start] + text[end:])


def amounts(text: str) -> list[Amount]:
    """Every money amount in `text`, in order. Ages, days, dates, percentages, phone and ID numbers
    are skipped; so are ordinals (第一) and lone numerals that are words (一下, 两个)."""
    masked = _NOT_AMOUNTS.sub(_mask, text.translate(_FINANCIAL))
    masked = _SOME.sub(lambda m: m.group(1) + m.group(2) + "多", _RANGE.sub(_lower_bound, masked))
    out = []
    for m in _SPAN.finditer(masked):
        span = m.group().rstrip(",.")  # "7000,自费1000": the comma ends the number, it is not in it
        end = m.start() + len(span)
        after, before = masked[end:end + 6], masked[max(0, m.start() - 8):m.start()]
        if _NOT_MONEY_AFTER.match(after) or re.search(r"[第几]\s*$", before):
            continue
        has_unit = bool(_MONEY_AFTER.match(after))
        if _CODE_BEFORE.search(masked[:m.start()]) or _CODE_AFTER.match(masked[end:end + 3]):
            continue  # B3县, 3B病房: a code
        if not has_unit and _looks_like_year(span, masked, m.start(), end):
            continue  # 新农合报销标准2025: a year, not 2025元
        if not has_unit and not re.search(f"[{_CN_UNITS}]|[kKwW]", span) and not _money_context(masked, m.start(), end):
            continue  # 我是3队的, 18号: a number, but nothing says it is money
        glued = masked[m.start() - 1] if m.start() else ""
        if not has_unit and re.fullmatch(r"[\u4e00-\u9fff]", glued) and glued not in _BILL_AFTER:
            continue  # 一起慧99: part of a name
        if not re.search(r"\d", span) and not re.search(f"[{_CN_UNITS}]", span) and not has_unit:
            continue  # a lone 一/二/两 is a word (一下, 两个), not money
        value = _to_number(span)
        if value is None or value <= 0:
            continue
        if value >= MAX_AMOUNT:
            out.append(Amount(value, start=m.start(), absurd=True))
            continue
        out.append(Amount(value, bool(_APPROX_AFTER.match(after) or _APPROX_BEFORE.search(before)),
                          bool(_SELF_PAY_BEFORE.search(before) or _self_pay_after(masked[end:end + 12])), m.start(),
                          bool(_ALREADY_BEFORE.search(before)), _premium(masked, m.start(), end)))
    return out


def _level_from_words(text: str) -> str | None:
    """The level whose word appears in `text`; the longest word wins."""
    best = None
    for key, entry in levels().items():
        for word in entry["words"]:
            if word in text and (best is None or len(word) > len(best[1])):
                best = (key, word)
    return best[0] if best else None


@county_cached
def _level_of_word() -> dict[str, str]:
    return {w: key for key, entry in levels().items() for w in entry["words"]}


@county_cached
def _fallbacks() -> dict[str, str]:
    """Level → the level it refines (province → city_province), or itself."""
    return {k: v.get("fallback", k) for k, v in levels().items()}


def _levels_named(text: str) -> set[str]:
    """Every level a level word in `text` names (longest words first, no word counted twice)."""
    found = set()
    for word in _level_words():
        if word in text:
            found.add(_level_of_word()[word])
            text = text.replace(word, "#")
    return found


def _agreed_level(mention, rest: str) -> str | None:
    """The level the message supports: a hospital named (listed: its level; another real place's:
    non_designated), a level word, another place named (在广州打工…: non_designated). None when
    nothing supports one, or when two readings disagree (the reply then asks)."""
    readings = set()
    if mention:
        readings.add(mention.hospital.level if mention.hospital else "non_designated")
    readings.update(_levels_named(rest))
    if not mention and concepts.find(rest).areas:
        readings.add("non_designated")
    fallback = _fallbacks()
    if len({fallback[r] for r in readings}) != 1:
        return None
    return max(readings, key=lambda r: r != fallback[r])  # the finer one (province refines city_province)


def _age(text: str) -> int | None:
    m = _AGE.search(text)
    if not m:
        return None
    value = _to_number(m.group(1) or m.group(2))
    return int(value) if value is not None and 0 < value < 130 else None


# "what do I pay myself": the answer is total − reimbursed, named as such (自己要掏多少, 报完还剩多少)
YOU_PAY = re.compile(
    r"(?:自己|个人|我|俺|咱|病人|家里)(?:还|要|得|需要|还要|还得|一共|总共|总|实际)*(?:掏|出|付|拿|花|承担|负担|垫)(?:钱)?(?:多少|几)|"
    r"(?:自付|自负|个人负担|个人承担|自掏腰包)(?:的|部分|费用)?(?:是|有|要)?(?:多少|几)|"
    r"(?:报完|报销完|报销后|报了以后|报完了|报销以后|报后)(?:了)?(?:我|自己)?(?:还)?(?:剩|要|得|需)?(?:多少|掏|出|付|拿|自己)|"
    r"还(?:剩|差)多少(?:钱)?(?:要|得)?(?:自己|我)?|(?:要|得)?自己(?:出|掏|付)的(?:是|有)?多少")


THIRD_PARTY = re.compile(r"我?(?:爸|妈|娘|爹|爷|奶|姥|外公|外婆|孩子|儿子|女儿|闺女|媳妇|老婆|老公|丈夫|妻子|"
                         r"他|她|婆婆|公公|岳父|岳母|哥|姐|弟|妹|侄|孙|亲戚|邻居|家人|老人|小孩|宝宝|娃)")


_FILLER = re.compile(r"[在那呢的住是了吧啊呀哦去到里看换要如果要是就还又也那个这个我俺他她家]|医院|住院|时候|的话")
PLACE_REST = 4  # characters a follow-up may keep besides its place words ("能报多少")


def place_only(f: "Facts") -> bool:
    """True when the message says little besides a place, level or visit ("那在省医院呢"): a follow-up to
    a remembered amount rather than a new question."""
    rest = f.rest.replace("#", "")
    for word in _level_words():
        rest = rest.replace(word, "")
    for word in INPATIENT_WORDS + OUTPATIENT_WORDS:
        rest = rest.replace(word, "")
    rest = _FILLER.sub("", rest)
    return len(re.findall(r"[\u4e00-\u9fff]", rest)) <= PLACE_REST


@county_cached
def _level_words() -> tuple:
    """Every level word, longest first (so 乡镇卫生院 goes before 卫生院)."""
    return tuple(sorted((w for entry in levels().values() for w in entry["words"]), key=len, reverse=True))


def facts(text: str) -> Facts:
    """Everything the estimator can use from a normalised message."""
    f = Facts()
    mention = hospitals.find(text)
    rest = text
    if mention:
        f.hospital = mention.hospital.name if mention.hospital else mention.text
        f.listed = mention.hospital is not None
        rest = text[:mention.start] + "#" * (mention.end - mention.start) + text[mention.end:]
    f.level = _agreed_level(mention, rest)
    age_free = _AGE.sub(lambda m: "#" * len(m.group()), rest)
    found = amounts(age_free)
    f.absurd = any(a.absurd for a in found) or bool(_LONG_SUM.search(age_free))
    found = [a for a in found if not a.absurd]
    if any(a.contribution for a in found):  # 每人交90元,本本上只填了60元: the other sums beside a premium are premiums too
        found = [a for a in found if not a.contribution and _CARE_NEAR.search(age_free[max(0, a.start - 6):a.start + 12])]
    paid = [a for a in found if a.self_pay and not a.already]
    totals = [a for a in found if not a.self_pay and not a.already]
    done = [a for a in found if a.already]
    if done:
        f.already = done[0].value
    if totals:
        main = max(totals, key=lambda a: a.value)
        f.total, f.approximate = main.value, main.approximate
    if paid and f.total is not None:
        f.self_pay = min(sum((a.value for a in paid), Decimal(0)), f.total)
    if any(w in _NO_STAY.sub("", text) for w in INPATIENT_WORDS):
        f.visit = "inpatient"
    elif any(w in text for w in OUTPATIENT_WORDS) or f.level == "village":
        f.visit = "outpatient"
    f.groups = [g for g, words in GROUP_WORDS.items() if any(w in text for w in words)]
    f.age = _age(text)
    f.urban = any(w in text for w in URBAN_WORDS)
    f.injury = any(w in text for w in INJURY_WORDS)
    f.third_party = bool(THIRD_PARTY.search(text))
    f.you_pay = bool(YOU_PAY.search(text))
    f.rest = rest
    return f
