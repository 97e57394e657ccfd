"""Shared fixtures: a fresh database per test, a fixed policy date, and a helper to send a message
through the one entry point `respond()`. Module-specific fixtures live in their own test files."""
from pathlib import Path

import pytest

from xnh.bot.store import open_db
from xnh.message import Message

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COPIES = Path(__file__).resolve().parent / "data"


def shared_file(relative: str) -> Path:
    """A file of ../shared/ (e.g. 'eval/dev_cases.json'), or its copy in tests/data/ in a bare clone."""
    path = SHARED / relative
    return path if path.exists() else COPIES / Path(relative).name


@pytest.fixture(autouse=True)
def policy_today(monkeypatch):
    """Every test runs on the evaluation's date unless it sets XNH_TODAY itself."""
    monkeypatch.setenv("XNH_TODAY", "2026-06-15")


@pytest.fixture
def db(tmp_path):
    database = open_db(str(tmp_path / "test.db"))
    yield database
    database.close()


@pytest.fixture
def ask(db):
    """ask(text, sender='13700000001', channel='sms') → Reply, through respond()."""
    from xnh.handlers.router import respond

    def _ask(text, sender="13700000001", channel="sms", phone=None):
        return respond(Message(text=text, sender=sender, channel=channel,
                               phone=phone if phone is not None else (None if channel == "telegram" else sender)), db)

    return _ask
