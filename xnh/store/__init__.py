"""All SQLite, one writer module per table: connections, the message unit of work and `with writing(db):`
(`db.py`), the schema and its migrations (`schema.py`), per-sender state, tickets, subscriptions and audit
(`state.py`), reads of the synced county data (`county.py`), the outbound queue (`outbox/`, one module a
concern), campaigns (`campaigns.py`), the WeChat official account's replies, followers and token
(`wechat.py`), the senders' heartbeats (`senders.py`), named values (`meta.py`), the console's users, uploads and figures (`users.py`, `uploads.py`, `stats.py`).

Nothing here imports the channel adapters (`xnh.bot`) or the handlers (`xnh.handlers`)."""
