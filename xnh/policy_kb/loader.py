"""Read and validate the policy's TOML data files. Errors name the file and the key.

Two places hold them:
  KB_DIR        the product's understanding of Chinese questions, shipped in the package (concepts.toml,
                points.toml, vocabulary.toml): the same for every county, improved with every release
  county_dir()  a county's own policy directory (XNH_POLICY_DIR; the package's demo county when unset):
                county.toml, schemes/, levels.toml, hospitals.toml, qa/, claim_steps.toml, and optionally
                concepts.toml with the county's own words
Everything derived from them is cached with `county_cached`; `use_county(path)` switches the directory
in a running process (tests, `xnh policy check`) and clears those caches.
"""
import datetime as dt
import tomllib
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from pathlib import Path

from ..settings import live_policy_dir

KB_DIR = Path(__file__).parent
PACKAGE_COUNTIES = KB_DIR.parent / "counties"
DEMO_DIR = PACKAGE_COUNTIES / "demo"
_CACHES: list = []
_chosen: Path | None = None


def county_cached(fn=None, *, maxsize: int | None = None):
    """functools' cache for anything derived from the policy data; use_county() clears every one."""
    def wrap(f):
        cached = lru_cache(maxsize)(f) if maxsize else cache(f)
        _CACHES.append(cached)
        return cached
    return wrap(fn) if fn is not None else wrap


def county_dir() -> Path:
    """The county's policy directory: the one use_county() chose, else XNH_POLICY_DIR, else the demo's."""
    if _chosen is not None:
        return _chosen
    raw = live_policy_dir()
    return Path(raw).expanduser() if raw else DEMO_DIR


def use_county(path) -> None:
    """Answer from another county's directory from now on (None: back to XNH_POLICY_DIR or the demo)."""
    global _chosen
    _chosen = Path(path) if path is not None else None
    for cached in _CACHES:
        cached.cache_clear()


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


@county_cached
def county() -> dict:
    """The county itself (county.toml): its name, what people call it, its offices."""
    path = county_dir() / "county.toml"
    data = read_toml(path)
    for key in ("name", "short"):
        require(data, key, path.name, str)
    data.setdefault("aliases", [])
    data.setdefault("county_office", "县合管办")
    data.setdefault("township_office", "乡镇合管办")
    return data


@county_cached
def levels() -> dict:
    """Level key → {name, label, words, fallback}."""
    path = county_dir() / "levels.toml"
    data = require(read_toml(path), "levels", path.name, dict)
    for key, entry in data.items():
        where = f"{path.name} [levels.{key}]"
        require(entry, "name", where, str)
        require(entry, "label", where, str)
        require(entry, "words", where, list)
        if entry.get("fallback") and entry["fallback"] not in data:
            raise KBError(f"{where}: fallback {entry['fallback']!r} is not a level")
    return data