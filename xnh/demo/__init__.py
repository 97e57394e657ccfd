"""The demo county (示范县): `xnh serve` and `xnh chat` load it into an empty database so that a
newcomer's first command shows something real.

    from xnh import demo
    from xnh.store import db
    demo.load_if_empty(db.open_db())   # '60+ households, 377 enrollment rows, 87 claims' or None

The files are xnh/demo/enrollment.csv and claims.csv (copies of ../shared/data/), imported through
the same code as `xnh sync`, so the rejected-row reports go to a temporary directory, not the package.
"""
import logging
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from sqlite_utils import Database

from .. import sync

logger = logging.getLogger(__name__)

FILES = (("enrollment", "enrollment.csv"), ("claims", "claims.csv"))


def is_empty(db: Database) -> bool:
    return db.execute("SELECT count(*) FROM members").fetchone()[0] == 0


DEMO_DIR_PREFIX = "xnh-demo-"


def is_demo_only(db: Database) -> bool:
    """True when every import into the database was the demo county's (or there was none)."""
    row = db.execute("SELECT count(*) FROM sync_runs WHERE file NOT LIKE ?",
                     [f"%{DEMO_DIR_PREFIX}%"]).fetchone()
    return row[0] == 0


def load(db: Database) -> str:
    """Import the demo county's enrollment, then its claims; returns a short description."""
    counts = {}
    with tempfile.TemporaryDirectory(prefix=DEMO_DIR_PREFIX) as tmp:
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
