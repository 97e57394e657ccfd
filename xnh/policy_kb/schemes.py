"""Schemes (方案) as effective-dated data: which rules apply to an admission on a given date.

Each file in a county's schemes/ is one scheme; a scheme applies from its `start` until the next
scheme of the same kind starts (or until its optional `end`, a last day). Numbers are Decimal; rates
are fractions (0.70 = 70%).
"""
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from .loader import KBError, county_cached, county_dir, date, decimal, levels, read_toml, require

KINDS = ("ncms", "urban")


@dataclass(frozen=True)
class LevelRule:
    deductible: Decimal  # 起付线, per admission
    rate: Decimal  # fraction of the eligible cost above the deductible


@dataclass(frozen=True)
class Scheme:
    id: str
    name: str
    short: str
    kind: str
    start: dt.date
    source: str  # shown to users
    inpatient_cap: Decimal
    group_bonus: Decimal
    bonus_groups: tuple
    bonus_age: int | None
    rules: dict = field(repr=False)  # level key → LevelRule
    outpatient_rate: Decimal | None = None
    outpatient_cap: Decimal | None = None
    contribution: dict = field(default_factory=dict, repr=False)
    trace: str = ""  # where the numbers come from (seed file and section, POLICY.md section)
    end: dt.date | None = None  # the last day it applies, when it stopped without a successor

    def rule(self, level: str) -> tuple[str, LevelRule] | None:
        """The level actually used (after fallbacks) and its rule, or None when not covered."""
        seen = set()
        while level and level not in seen:
            seen.add(level)
            if level in self.rules:
                return level, self.rules[level]
            level = levels().get(level, {}).get("fallback")
        return None


def _level_rules(raw: dict, where: str) -> dict:
    known = levels()
    rules, aliases = {}, {}
    for key, entry in raw.items():
        here = f"{where} [levels.{key}]"
        if key not in known:
            raise KBError(f"{here}: unknown level {key!r} (levels.toml has {sorted(known)})")
        if "same_as" in entry:
            aliases[key] = entry["same_as"]
            continue
        rules[key] = LevelRule(decimal(entry, "deductible", here), decimal(entry, "rate", here, "0", "1"))
    for key, target in aliases.items():
        if target not in rules:
            raise KBError(f"{where} [levels.{key}]: same_as {target!r} has no rule")
        rules[key] = rules[target]
    return rules


def _load(path) -> Scheme:
    raw = read_toml(path)
    where = path.name
    kind = require(raw, "kind", where, str)
    if kind not in KINDS:
        raise KBError(f"{where}: kind {kind!r} is not one of {KINDS}")
    outpatient = raw.get("outpatient")
    return Scheme(
        id=require(raw, "id", where, str),
        name=require(raw, "name", where, str),
        short=require(raw, "short", where, str),
        kind=kind,
        start=date(raw, "start", where),
        source=require(raw, "source", where, str),
        inpatient_cap=decimal(raw, "inpatient_cap", where),
        group_bonus=decimal(raw, "group_bonus", where, "0", "1"),
        bonus_groups=tuple(require(raw, "bonus_groups", where, list)),
        bonus_age=raw.get("bonus_age"),
        rules=_level_rules(require(raw, "levels", where, dict), where),
        outpatient_rate=decimal(outpatient, "rate", f"{where} [outpatient]", "0", "1") if outpatient else None,
        outpatient_cap=decimal(outpatient, "yearly_cap", f"{where} [outpatient]") if outpatient else None,
        contribution=_contribution(raw.get("contribution", {}), f"{where} [contribution]"),
        trace=require(raw, "trace", where, str),
        end=date(raw, "end", where) if "end" in raw else None,
    )


def _contribution(raw: dict, where: str) -> dict:
    out = {}
    for key, value in raw.items():
        if key.startswith("collect_"):
            if not re.fullmatch(r"\d\d-\d\d", str(value)):
                raise KBError(f"{where}: key {key!r} should be MM-DD, got {value!r}")
            out[key] = value
        else:
            out[key] = decimal(raw, key, where)
    return out


@county_cached
def all_schemes() -> tuple[Scheme, ...]:
    """Every scheme file, sorted by kind then start date. Raises KBError on a bad file."""
    found = [_load(p) for p in sorted((county_dir() / "schemes").glob("*.toml"))]
    ids = [s.id for s in found]
    if len(set(ids)) != len(ids):
        raise KBError(f"schemes/: duplicate scheme id in {ids}")
    return tuple(sorted(found, key=lambda s: (s.kind, s.start)))


def scheme_for(day: dt.date, kind: str = "ncms") -> Scheme:
    """The scheme of `kind` in force on `day` (the latest whose start is on or before it)."""
    candidates = [s for s in all_schemes() if s.kind == kind and s.start <= day and (s.end is None or day <= s.end)]
    if not candidates:
        raise KBError(f"no {kind} scheme is in force on {day}")
    return candidates[-1]
