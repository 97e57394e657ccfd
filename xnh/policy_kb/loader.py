"""Read and validate the TOML data files of policy_kb/. Errors name the file and the key."""
import datetime as dt
import tomllib
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

KB_DIR = Path(__file__).parent


class KBError(ValueError):
    """A policy_kb data file is missing a field or holds a bad value."""


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise KBError(f"{path.name}: not valid TOML: {e}") from e


def require(table: dict, key: str, where: str, kind=None):
    """table[key], or a KBError naming `where` and the key."""
    if key not in table:
        raise KBError(f"{where}: missing key {key!r}")
    value = table[key]
    if kind is not None and not isinstance(value, kind):
        raise KBError(f"{where}: key {key!r} should be {kind.__name__}, got {value!r}")
    return value


def decimal(table: dict, key: str, where: str, lo="0", hi=None) -> Decimal:
    raw = require(table, key, where)
    if isinstance(raw, float):
        raise KBError(f"{where}: key {key!r} must be a quoted decimal string, not the float {raw!r}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation as e:
        raise KBError(f"{where}: key {key!r} is not a number: {raw!r}") from e
    if value < Decimal(lo) or (hi is not None and value > Decimal(hi)):
        raise KBError(f"{where}: key {key!r}={raw!r} is outside {lo}..{hi or '∞'}")
    return value


def date(table: dict, key: str, where: str) -> dt.date:
    return require(table, key, where, dt.date)


@cache
def levels() -> dict:
    """Level key → {name, label, words, fallback}."""
    path = KB_DIR / "levels.toml"
    data = require(read_toml(path), "levels", path.name, dict)
    for key, entry in data.items():
        where = f"{path.name} [levels.{key}]"
        require(entry, "name", where, str)
        require(entry, "label", where, str)
        require(entry, "words", where, list)
        if entry.get("fallback") and entry["fallback"] not in data:
            raise KBError(f"{where}: fallback {entry['fallback']!r} is not a level")
    return data