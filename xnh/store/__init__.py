"""All SQLite: connections and the unit of work (`db.py`), the schema and its migrations
(`schema.py`), per-sender state, tickets, subscriptions and audit (`state.py`), reads of the synced
county data (`county.py`) and the outbound queue (`outbox.py`).

Nothing here imports the channel adapters (`xnh.bot`) or the handlers (`xnh.handlers`)."""
