"""Clerk-written campaign texts: Jinja templates rendered in the sandbox (no attribute tricks, no file
access), with StrictUndefined so a misspelt field is an error in the preview, not a blank in 50,000 SMS.

Fields per recipient: `name` (masked: 张*三), `amount` (Decimal as text), `year`, `deadline` (the
contribution deadline of the scheme file in force, e.g. 2026年12月30日), `township`. Filter `yuan` formats money as the bot's replies do.

Bounded in size and time, so a clerk's template cannot hold a preview (or the worker) for long: at most
MAX_TEMPLATE characters; no loops, macros, blocks or includes (a message needs only fields, filters and
if/else: without loops a render is linear in the template's size); `*` and `**` refuse results past
MAX_PRODUCT (the sandbox's own range() is capped already).
"""
from functools import cache

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from ..providers import segments
from ..money import yuan

FIELDS = ("name", "amount", "year", "deadline", "township")
MAX_CHARS = segments.MAX_CHARS
MAX_TEMPLATE = 2000  # characters of template text
MAX_PRODUCT = 10_000  # the largest string, list or number `*` / `**` may make
_FORBIDDEN = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Call, nodes.Block, nodes.Include, nodes.Import,
              nodes.FromImport, nodes.Extends, nodes.FilterBlock, nodes.With, nodes.Scope)


class TemplateProblem(ValueError):
    """A campaign text that does not compile or render (the message says where)."""


class _Bounded(SandboxedEnvironment):
    """The sandbox, with `*` and `**` refusing results past MAX_PRODUCT ('好' * 10**9 would fill memory)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise SecurityError("the exponent is too large")
        result = super().call_binop(context, operator, left, right)
        size = len(result) if isinstance(result, (str, list, tuple)) else 0
        if size > MAX_PRODUCT or (isinstance(result, (int, float)) and abs(result) > 10 ** 15):
            raise SecurityError("the result is too large")
        return result


@cache
def _env() -> SandboxedEnvironment:
    env = _Bounded(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.globals.clear()  # no range, dict, lipsum, cycler: fields and filters only
    env.filters["yuan"] = _yuan
    return env


def _yuan(value) -> str:
    return yuan(value) if value not in (None, "") else ""


@cache
def compile_text(text: str):
    """The compiled template (cached by text), or TemplateProblem (too long, a loop, a syntax error)."""
    if len(text) > MAX_TEMPLATE:
        raise TemplateProblem(f"模板错误 / template error: the text is {len(text)} characters, over {MAX_TEMPLATE}")
    try:
        tree = _env().parse(text)
        for node in tree.find_all(_FORBIDDEN):
            raise TemplateProblem(f"模板错误 / template error: only fields, filters and if/else are allowed, "
                                  f"not {node.__class__.__name__.lower()} (line {node.lineno})")
        return _env().from_string(tree)
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
