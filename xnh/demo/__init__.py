"""The demo county (示范县) in its own database, never in the one real exports are synced into.

    from xnh import demo
    path = demo.ensure("xnh.db")        # xnh.demo.db (+ xnh.demo.county.db), loaded once
    demo.serving_path("xnh.db")         # xnh.db once it holds county data, else the demo's

`xnh ask`, `xnh chat` and `xnh serve` answer from it until county data has been synced into the real
database (XNH_DB); the web simulator always answers from it. A demo database is marked (meta.demo) so
that no payment notice is ever queued for its households, whose phone numbers have a real format.

The files are xnh/demo/enrollment.csv and claims.csv (copies of ../shared/data/), imported through
the same code as `xnh sync`, so the rejected-row reports go to a temporary directory, not the package.
"""
import logging
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from sqlite_utils import Database

from .. import sync
from ..store import db as store_db
from ..store import meta

logger = logging.getLogger(__name__)

FILES = (("enrollment", "enrollment.csv"), ("claims", "claims.csv"))


_READY: set[str] = set()


def ensure(real: str) -> str:
    """The demo database beside `real` (store.db.demo_path), created and loaded when it is not yet."""
    path = store_db.demo_path(real)
    if path in _READY:
        return path
    db = store_db.open_db(path)
    try:
        if not is_demo(db):  # marked before anything is loaded: no notice is derived for its claims
            with store_db.writing(db):
                meta.put(db, "demo", "1")
        loaded = load_if_empty(db)
        if loaded:
            logger.info("demo database %s: %s", os.path.abspath(path), loaded)
    finally:
        db.close()
    _READY.add(path)
    return path


def serving_path(real: str) -> str:
    """The database that answers messages: `real` once it holds county data, else the demo's."""
    return real if store_db.has_county_data(real) else ensure(real)


def is_demo(db: Database) -> bool:
    """True for a demo database (made by ensure)."""
    return meta.is_demo(db)


def is_empty(db: Database) -> bool:
    return db.execute("SELECT count(*) FROM members").fetchone()[0] == 0


def load(db: Database) -> str:
    """Import the demo county's enrollment, then its claims; returns a short description."""
    counts = {}
    with tempfile.TemporaryDirectory(prefix="xnh-demo-") as tmp:
        for kind, name in FILES:
            source = resources.files("xnh") / "demo" / name
            target = Path(tmp) / name
            with resources.as_file(source) as real:
                shutil.copyfile(real, target)
            result = sync.run(db, kind, target, progress=False)
            if result.rejected:
                logger.warning("demo %s: %d rows rejected", name, result.rejected)
            counts[kind] = result.inserted
    households = db.execute("SELECT count(DISTINCT household_id) FROM members").fetchone()[0]
    return f"示范县: {households} households, {counts['enrollment']} enrollment rows, {counts['claims']} claims"


def load_if_empty(db: Database) -> str | None:
    """Load the demo county when the database has no members; the description, or None."""
    if not is_empty(db):
        return None
    return load(db)


def county_name() -> str:
    """The demo county's name, from its policy directory (the exports here are its households)."""
    from ..policy_kb.loader import DEMO_DIR, read_toml

    return read_toml(DEMO_DIR / "county.toml")["name"]
