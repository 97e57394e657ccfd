"""The `campaigns` table: every write and read of a broadcast campaign's own row (its recipients are
outbox rows: store/outbox/). xnh/broadcast/campaigns.py decides; this module stores. The writes run inside
the caller's transaction (`store.db.writing`)."""
import json

from .db import keep
from .state import stamp

COLUMNS = ("id", "name", "audience", "text", "channels", "schedule", "quiet_start", "quiet_end", "status",
           "paused", "paused_reason", "created_by", "created_at", "sent_at", "cancelled_at")


def insert(db, *, name: str, audience: str, text: str, channels: list[str], schedule: str | None,
           quiet: tuple[str | None, str | None], actor: str) -> int:
    """A new draft campaign; its id."""
    return db.conn.execute(
        "INSERT INTO campaigns (name, audience, text, channels, schedule, quiet_start, quiet_end, status, "
        "paused, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'draft', 0, ?, ?)",
        [name, audience, text, json.dumps(channels), schedule, quiet[0], quiet[1], actor, stamp()]).lastrowid


def get(db, campaign_id: int) -> dict | None:
    """The campaign's row (channels as a list), or None."""
    row = db.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    if row is None:
        return None
    found = dict(zip(COLUMNS, row))
    found["channels"] = json.loads(found["channels"])
    return found


def ids(db) -> list[int]:
    """Every campaign's id, newest first."""
    return [r[0] for r in db.conn.execute("SELECT id FROM campaigns ORDER BY id DESC")]


def mark_sending(db, campaign_id: int) -> None:
    db.conn.execute("UPDATE campaigns SET status = 'sending', sent_at = coalesce(sent_at, ?), version = version + 1 "
                    "WHERE id = ?", [stamp(), campaign_id])


def mark_cancelled(db, campaign_id: int) -> None:
    db.conn.execute("UPDATE campaigns SET status = 'cancelled', cancelled_at = ?, version = version + 1 WHERE id = ?",
                    [stamp(), campaign_id])


def change_token(db, campaign_id: int) -> str | None:
    """What a page showing the campaign depends on, as one short string (its version, moved on by every
    status change of its rows, its status and its pause); None when there is no such campaign."""
    row = db.conn.execute("SELECT version, status, paused FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    return None if row is None else f"{row[0]}-{row[1]}-{row[2]}"


def kept_counts(db, campaign_id: int, compute) -> dict:
    """The campaign's rows by status: kept with the version they were counted at, `compute()`d again (and
    kept: `db.keep`) once the version moved on."""
    row = db.conn.execute("SELECT version, counts, counts_version FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    if row and row[1] and row[2] == row[0]:
        return json.loads(row[1])
    counts = compute()
    if row:
        keep(db, "UPDATE campaigns SET counts = ?, counts_version = ? WHERE id = ?", [json.dumps(counts), row[0],
                                                                                    campaign_id])
    return counts


def pause(db, campaign_id: int, why: str) -> bool:
    """Pause a campaign (its rows wait); True when it was not paused already."""
    return db.conn.execute("UPDATE campaigns SET paused = 1, paused_reason = ?, version = version + 1 WHERE id = ? "
                           "AND paused = 0", [why, campaign_id]).rowcount > 0


def unpause(db, campaign_id: int) -> None:
    db.conn.execute("UPDATE campaigns SET paused = 0, paused_reason = NULL, version = version + 1 WHERE id = ?",
                    [campaign_id])
