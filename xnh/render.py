"""Word a Reply with the channel's Jinja2 template: templates/sms/*.txt (short, plain text) for SMS,
the web simulator and the CLI; templates/telegram/*.html (richer, HTML parse mode) for Telegram;
templates/wechat/*.txt (plain text, longer, kept on several lines) for the WeChat official account."""
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from .message import Reply
from .policy_kb.loader import county
from .money import percent, yuan

TEMPLATES = Path(__file__).parent / "templates"
CHANNEL_DIR = {"sms": "sms", "web": "sms", "cli": "sms", "telegram": "telegram", "wechat": "wechat"}


@cache
def env() -> Environment:
    e = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,  # templates ship with the package: no stat() per render
    )
    e.globals.clear()  # no template uses range, dict, lipsum...: every render would copy them into its context
    e.filters["yuan"] = yuan
    e.filters["pct"] = percent
    e.filters["md"] = month_day
    e.filters["ymd"] = year_month_day
    return e


def template_name(template: str, channel: str) -> str:
    """The file that words `template` for `channel`: the channel's own, else the SMS one."""
    folder = CHANNEL_DIR.get(channel, "sms")
    ext = "html" if folder == "telegram" else "txt"
    name = f"{folder}/{template}.{ext}"
    return name if folder == "sms" or name in _names() else f"sms/{template}.txt"


def render(reply: Reply, channel: str) -> str:
    """The reply's words for `channel`; falls back to the SMS template when a channel has none."""
    name = template_name(reply.template, channel)
    text = env().get_template(name).render(county=county(), **reply.data)  # the county's own names (county.toml)
    return _tidy(text, joiner="" if name.startswith("sms/") else "\n")


def month_day(iso: str | None) -> str:
    """'2026-03-01' → '3月1日'; '' when there is no date."""
    if not iso or len(iso) < 10:
        return ""
    return f"{int(iso[5:7])}月{int(iso[8:10])}日"


def year_month_day(iso: str | None) -> str:
    """'2025-11-03' → '2025年11月3日': a date a reader can't place in the wrong year."""
    if not iso or len(iso) < 10:
        return ""
    return f"{int(iso[:4])}年{month_day(iso)}"


@cache
def _names() -> frozenset:
    return frozenset(env().list_templates())


def _tidy(text: str, joiner: str) -> str:
    """SMS templates are written over several source lines but sent as one run of text (every
    character costs); Telegram keeps its lines."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return joiner.join(line for line in lines if line)
