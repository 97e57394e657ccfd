"""Channels and plumbing: the store, county-export sync, Twilio SMS, Telegram, the CLI."""
