"""Channel adapters only: Twilio SMS (`sms.py`), Telegram (`telegram_bot.py`), the WeChat official account
(`wechat.py`), the China SMS callbacks (`cnsms.py`), the web simulator (`web.py`), the request's database
connection (`request_db.py`) and the clerks' console (`console/`).
Each one verifies, decodes, builds a Message, calls `respond()` and encodes the Reply. SMS part counting is
the providers' (`xnh/providers/segments.py`)."""
