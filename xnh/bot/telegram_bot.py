"""The Telegram adapter (python-telegram-bot). `xnh serve` runs it when TELEGRAM_BOT_TOKEN is set:
polling by default, or fed by POST /telegram/webhook when TELEGRAM_WEBHOOK_URL and
TELEGRAM_WEBHOOK_SECRET are set. TELEGRAM_API_URL replaces https://api.telegram.org/bot.

- /start: a greeting with an inline menu (报销估算, 政策问答, 查参合, 查报销, 人工服务) and, until the
  user has shared a phone, a "分享手机号" button (request_contact).
- A shared contact binds the Telegram user to that phone only when it is the user's own
  (contact.user_id == from_user.id); afterwards 查参合/查报销 answer as from that phone.
- Any other text goes through respond() as channel "telegram", sender "tg:<user id>"; replies use
  templates/telegram/*.html (HTML parse mode) or the escaped SMS wording.
- Private chats only: personal data never goes to a group. Outgoing calls go through PTB's
  AIORateLimiter; an error handler logs and answers politely.
"""
import asyncio
import hmac
import html
import logging
import threading

from flask import Blueprint, abort, current_app, request
from telegram import (BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton,
                      ReplyKeyboardMarkup, ReplyKeyboardRemove, Update)
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (AIORateLimiter, Application, ApplicationBuilder, CallbackQueryHandler,
                          CommandHandler, ContextTypes, MessageHandler, filters)

from .. import render
from ..handlers.router import respond
from ..message import Message, Reply
from ..privacy import mask_phone, normalize_phone
from .. import demo
from ..store import db as store_db
from ..providers import segments
from ..store import state

logger = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_API_URL = "https://api.telegram.org/bot"
MAX_TEXT = 4096
MENU = [("报销估算", "estimate"), ("政策问答", "policy"), ("查参合", "enrollment"), ("查报销", "claims"),
        ("人工服务", "human")]
MENU_WORDS = {"enrollment": "查参合", "claims": "查报销", "human": "人工"}  # sent through respond()
MENU_PROMPTS = {"estimate": "prompt_estimate", "policy": "prompt_policy"}  # templates/telegram/<name>.html
SHARE_BUTTON = "分享手机号"
PRIVATE = filters.ChatType.PRIVATE


def words(name: str, **data) -> str:
    """The adapter's own messages (greeting, prompts, binding), from templates/telegram/<name>.html."""
    data.setdefault("button", SHARE_BUTTON)
    return render.env().get_template(f"telegram/{name}.html").render(**data).strip()


def build_application(token: str, base_url: str | None = None, db_path: str = "xnh.db", *,
                      webhook: bool = False, rate_limit: bool = True, demo_until_synced: bool = False) -> Application:
    """The PTB Application with every handler, talking to `base_url` (Settings.telegram_api_url; default
    Telegram's own). With `demo_until_synced` (xnh serve), it answers from the demo county's database
    until county data is synced into `db_path`."""
    base_url = base_url or DEFAULT_API_URL
    builder = (ApplicationBuilder().token(token).base_url(base_url).base_file_url(_file_url(base_url))
               .post_init(_post_init))
    if rate_limit:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=2))
    if webhook:
        builder = builder.updater(None)
    app = builder.build()
    app.bot_data["db_path"] = db_path
    app.bot_data["demo"] = demo_until_synced
    app.add_handler(CommandHandler("start", on_start, filters=PRIVATE))
    app.add_handler(CommandHandler("help", on_help, filters=PRIVATE))
    app.add_handler(CallbackQueryHandler(on_menu, pattern=f"^({'|'.join(key for _, key in MENU)})$"))
    app.add_handler(MessageHandler(PRIVATE & filters.CONTACT, on_contact))
    app.add_handler(MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_text))
    app.add_error_handler(on_error)
    return app


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: greeting, the service menu, and the share-phone button until a phone is bound."""
    chat = update.effective_chat.id
    menu = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=key)] for label, key in MENU])
    await context.bot.send_message(chat, words("start"), parse_mode=ParseMode.HTML, reply_markup=menu)
    if not await _run_db(context, _bound_phone, _sender(update)):
        await context.bot.send_message(chat, words("share_prompt"), reply_markup=_share_keyboard())


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the assistant can do (the SMS help wording)."""
    text = render.render(_help_reply(), "telegram")
    await context.bot.send_message(update.effective_chat.id, html.escape(text))


async def on_menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A menu button: a prompt for 报销估算/政策问答, else the same as typing 查参合/查报销/人工."""
    query = update.callback_query
    await query.answer()
    if query.data in MENU_PROMPTS:
        await context.bot.send_message(update.effective_chat.id, words(MENU_PROMPTS[query.data]),
                                       parse_mode=ParseMode.HTML)
    else:
        await _answer(update, context, MENU_WORDS[query.data])


async def on_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A shared contact: bind it to the sender only when it is the sender's own phone."""
    contact, user = update.effective_message.contact, update.effective_user
    if contact.user_id is None or contact.user_id != user.id:
        logger.info("refused a contact that is not the sender's own (tg user %s)", user.id)
        await update.effective_message.reply_text(words("not_own"), reply_markup=_share_keyboard())
        return
    phone = normalize_phone(contact.phone_number)
    await _run_db(context, state.bind, _sender(update), phone, "telegram")
    await update.effective_message.reply_text(
        words("bound", phone=mask_phone(phone)), reply_markup=ReplyKeyboardRemove())


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other text: through respond()."""
    await _answer(update, context, update.effective_message.text)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure and, when there is a chat to answer, apologise."""
    logger.error("telegram update failed", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat:
        try:
            await context.bot.send_message(update.effective_chat.id, words("sorry"))
        except TelegramError:
            logger.warning("could not send the apology either", exc_info=True)


async def _answer(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
    sender = _sender(update)
    reply, bound = await _run_db(context, _respond, sender, text)
    markup = _share_keyboard() if reply.template == "ask_identity" and not bound else None
    await context.bot.send_message(update.effective_chat.id, as_html(reply), parse_mode=ParseMode.HTML,
                                   reply_markup=markup)


def as_html(reply) -> str:
    """The reply for HTML parse mode: a Telegram template's output as is, an SMS wording escaped."""
    if render.template_name(reply.template, "telegram").startswith("telegram/"):
        return reply.text
    return html.escape(segments.fit(reply.text, MAX_TEXT - 96))


def _respond(db, sender: str, text: str):
    reply = respond(Message(text=text, sender=sender, channel="telegram", phone=None), db)
    return reply, state.bound_phone(db, sender)


def _bound_phone(db, sender: str):
    return state.bound_phone(db, sender)


async def _run_db(context: ContextTypes.DEFAULT_TYPE, fn, *args):
    """Run fn(db, *args) in a worker thread as one unit of work on the message connection, as the SMS
    webhook answers (store.db.message_db: one at a time, committed after, rolled back if it raises)."""
    path = context.bot_data["db_path"]
    if context.bot_data.get("demo"):
        path = await asyncio.to_thread(demo.serving_path, path)
    return await asyncio.to_thread(_with_db, path, fn, *args)


def _with_db(path: str, fn, *args):
    with store_db.message_db(path) as db:
        return fn(db, *args)


def _help_reply():
    return Reply("help", "help", {"reason": ""})


def _sender(update: Update) -> str:
    return f"tg:{update.effective_user.id}"


def _share_keyboard() -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup([[KeyboardButton(SHARE_BUTTON, request_contact=True)]],
                               resize_keyboard=True, one_time_keyboard=True)


def _file_url(base_url: str) -> str:
    root, _, tail = base_url.rstrip("/").rpartition("/")
    return f"{root}/file/{tail}" if tail == "bot" else base_url.rstrip("/") + "/file/bot"


async def _post_init(app: Application) -> None:
    try:
        await app.bot.set_my_commands([BotCommand("start", "开始 / 服务菜单"), BotCommand("help", "我能做什么")])
    except TelegramError:
        logger.warning("setMyCommands failed; the bot works without the command list", exc_info=True)


# -- running it next to the WSGI server ------------------------------------------------------------

class TelegramRunner:
    """Runs an Application in a background thread with its own event loop: polling the Bot API, or
    (webhook mode) processing the updates that POST /telegram/webhook hands to `feed`."""

    def __init__(self, app: Application, webhook_url: str | None = None, secret: str | None = None):
        self.app, self.webhook_url, self.secret = app, webhook_url, secret
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 60) -> None:
        """Start and wait until the bot is initialised and receiving updates; raises what startup raised."""
        self._thread = threading.Thread(target=self._run, name="telegram", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the Telegram bot did not start")
        if self._error:
            raise self._error

    def stop(self, timeout: float = 30) -> None:
        """Stop polling, finish pending updates, shut the Application down and end the thread."""
        if self.loop and self._thread and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)

    def feed(self, data: dict) -> None:
        """Queue one update received on the webhook."""
        update = Update.de_json(data, self.app.bot)
        asyncio.run_coroutine_threadsafe(self.app.update_queue.put(update), self.loop).result(10)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._startup())
        except BaseException as e:  # reported to start()'s caller
            self._error = e
            self._ready.set()
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()

    async def _startup(self) -> None:
        await self.app.initialize()
        if self.app.post_init:  # run_polling would call it; we start the pieces ourselves
            await self.app.post_init(self.app)
        if self.webhook_url:
            await self.app.bot.set_webhook(self.webhook_url, secret_token=self.secret,
                                           allowed_updates=Update.ALL_TYPES)
        else:
            await self.app.updater.start_polling(allowed_updates=Update.ALL_TYPES)
        await self.app.start()
        logger.info("Telegram bot @%s running (%s)", self.app.bot.username,
                    "webhook" if self.webhook_url else "polling")

    async def _shutdown(self) -> None:
        if self.app.updater and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        try:
            await self.app.shutdown()
        except Exception:  # noqa: BLE001 - shutting down anyway
            logger.warning("Telegram shutdown was not clean", exc_info=True)


webhook_bp = Blueprint("telegram", __name__)


@webhook_bp.post("/telegram/webhook")
def webhook():
    """Telegram's webhook (webhook mode only): checks the secret token header, queues the update."""
    runner, secret = current_app.config["TELEGRAM_RUNNER"], current_app.config["TELEGRAM_WEBHOOK_SECRET"]
    if runner is None or not secret:
        abort(404)
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        abort(403)
    data = request.get_json(silent=True)
    try:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        runner.feed(data)
    except Exception as e:  # noqa: BLE001 - a malformed update must not make Telegram retry it forever
        logger.warning("malformed Telegram update ignored: %s: %s", e.__class__.__name__, e)
    return "", 200
