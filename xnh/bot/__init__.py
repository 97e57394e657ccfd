"""Channel adapters only: Twilio SMS (`sms.py`), Telegram (`telegram_bot.py`), the web simulator
(`web.py`), SMS part counting (`segments.py`) and the request's database connection (`request_db.py`).
Each one verifies, decodes, builds a Message, calls `respond()` and encodes the Reply."""
