"""Clerk-written campaign texts: Jinja templates rendered in the sandbox (no attribute tricks, no file
access), with StrictUndefined so a misspelt field is an error in the preview, not a blank in 50,000 SMS.

Fields per recipient: `name` (masked: 张*三), `amount` (Decimal as text), `year`, `deadline` (the
contribution deadline of the scheme file in force, e.g. 2026年12月30日), `township`. Filter `yuan` formats money as the bot's replies do.
"""
from functools import cache

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from ..providers import segments
from ..money import yuan

FIELDS = ("name", "amount", "year", "deadline", "township")
MAX_CHARS = segments.MAX_CHARS


class TemplateProblem(ValueError):
    """A campaign text that does not compile or render (the message says where)."""


@cache
def _env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["yuan"] = _yuan
    return env


def _yuan(value) -> str:
    return yuan(value) if value not in (None, "") else ""


@cache
def compile_text(text: str):
    """The compiled template (cached by text), or TemplateProblem."""
    try:
        return _env().from_string(text)
    except TemplateError as e:
        raise TemplateProblem(f"模板错误 / template error: {e}") from None


def render(text: str, fields: dict) -> str:
    """One recipient's message: the template over its fields, lines joined, ends trimmed."""
    try:
        out = compile_text(text).render({k: fields.get(k, "") for k in FIELDS})
    except TemplateProblem:
        raise
    except Exception as e:  # UndefinedError, SecurityError, a filter's TypeError…: the clerk's template
        raise TemplateProblem(f"模板错误 / template error: {e}") from None
    return out.strip()
