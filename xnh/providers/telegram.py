"""Telegram, as an outbound provider: one message through python-telegram-bot's Bot (TELEGRAM_BOT_TOKEN;
TELEGRAM_API_URL for a local fake). No delivery callbacks: an accepted message is `sent`. Without a token
its rows are skipped with a reason. (The inbound side is xnh/bot/telegram_bot.py.)"""
import asyncio

from .base import Action, Result, classify_http

PER_SECOND = 25.0  # Telegram's limit for one bot


class TelegramSender:
    """Sends one Telegram message (recipient "tg:<chat id>")."""

    def __init__(self, settings):
        self.token = settings.telegram_bot_token
        self.base = settings.telegram_api_url

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def warm(self) -> None:
        """Import python-telegram-bot's Bot now, not during the first paced send."""
        from telegram import Bot  # noqa: F401

    def send(self, row: dict) -> Result:
        from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

        async def go():
            from telegram import Bot

            async with Bot(self.token, base_url=self.base) as bot:
                return await bot.send_message(int(row["recipient"].removeprefix("tg:")), row["text"])

        try:
            message = asyncio.run(go())
        except RetryAfter:
            return Result(http_status=429)
        except Forbidden:
            return Result(http_status=403, code="blocked by the user")
        except BadRequest as e:
            return Result(http_status=400, code=str(e)[:80])
        except (TimedOut, NetworkError):
            return Result(timeout=True)
        return Result(sid=f"tg:{message.message_id}", final="sent")


def classify(result: Result) -> Action:
    """What a refused Telegram message means (no codes of its own that act on a number)."""
    return classify_http(result.http_status, result.code, result.timeout)


def parts(text: str) -> int:
    """A Telegram message costs one send, whatever its length."""
    return 1
