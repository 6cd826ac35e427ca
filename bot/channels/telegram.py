"""Telegram channel: a python-telegram-bot bridge between Telegram and Rasa's REST channel.

Every private Telegram message (or button press) becomes one ``POST {rasa_url}/webhooks/rest/webhook``
with ``{"sender": "tg-<user id>", "message": ..., "metadata": {"channel": "telegram"}}``; Rasa's
answers (text, buttons, images, ``{"type": "export"}`` files) are rendered back into Telegram.
The bridge keeps no conversation state (Rasa's tracker store does), so Rasa can be scaled out
behind a load balancer; see ``docs/telegram.md``.

Two modes: long polling (default) or a webhook (``TELEGRAM_WEBHOOK_URL`` / ``--webhook-url``) served
by a small aiohttp route on ``TELEGRAM_LISTEN:TELEGRAM_PORT`` that rejects every request without
the ``X-Telegram-Bot-Api-Secret-Token`` registered with ``setWebhook`` (403).

The bridge proves to Rasa's REST channel that it speaks for ``tg-`` senders with the channel secret
(``X-Mentorwijzer-Channel-Secret``; bot/keys.py); without it the REST channel refuses them (403).

Nothing personal is logged: no message text, names, tokens or URLs; sender ids only as keyed
pseudonyms (bot/identity.py).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import posixpath
import re
import secrets
import signal
import warnings
import weakref
from collections import OrderedDict
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, NamedTuple, Optional, TypeVar
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
from aiohttp import web
from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot import identity, keys
from bot.settings import Settings, get_settings

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
SENDER_PREFIX = identity.TELEGRAM_PREFIX
MAX_MESSAGE_LENGTH = 4096  # Telegram counts UTF-16 code units
MAX_CALLBACK_DATA = 64  # bytes
CALLBACK_KEY_PREFIX = "k:"
# Payloads of scan-question buttons (bot/scan.py button_payload); a new question's keyboard retires the last one.
QUESTION_PAYLOAD_PREFIX = "/inform_scan_answer{"
FEEDBACK_PAYLOAD_PREFIXES = ("/vote_up{", "/vote_down{")
MAX_TRACKED_CHATS = 10_000
MAX_SEND_ATTEMPTS = 5
TYPING_REFRESH_SECONDS = 4.5  # Telegram shows "typing" for 5 s
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
DEFAULT_EXPORT_NAME = "mentorwijzer-export.json"

APOLOGY = "Er ging even iets mis aan mijn kant. Probeer het zo nog eens."
BUTTON_EXPIRED = "Deze knop is verlopen, typ je antwoord gerust."
PRIVATE_ONLY = "Stuur me een privébericht, dan praten we verder."
TEXT_ONLY = "Ik kan alleen tekst lezen. Typ je vraag of antwoord gerust."
BUTTONS_ONLY_TEXT = "Kies een van deze mogelijkheden:"

# command -> (message sent to Rasa, description shown in Telegram's command menu)
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("hoi", "Begin het gesprek met Mentorwijzer"),
    "help": ("/help", "Waarmee kan Mentorwijzer je helpen?"),
    "scan": ("/start_scan", "Start of hervat de mentorscan"),
    "privacy": ("/ask_privacy", "Wat gebeurt er met je gegevens?"),
    "stop": ("/pause_scan", "Pauzeer de mentorscan"),
}
# t.me/<bot>?start=<key> -> message sent to Rasa
DEEP_LINKS: dict[str, str] = {"scan": "/start_scan"}

T = TypeVar("T")


# --- pure rendering ---------------------------------------------------------------------


def sender_id(user_id: int) -> str:
    """The Rasa sender id of a Telegram user (stable across chats and restarts)."""
    return identity.telegram_sender(user_id)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """The number of characters of ``text`` that fit in ``limit`` UTF-16 code units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Telegram-sized parts of ``text``, cut at a paragraph, else a line, else a word boundary."""
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        fits = _fitting_prefix(rest, limit)
        window = rest[: fits + 1]  # a separator right after the limit still counts
        cut = next((pos for sep in ("\n\n", "\n", " ") if (pos := window.rfind(sep)) > 0), fits)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n ")
        if head:
            parts.append(head)
    if rest.strip():
        parts.append(rest.rstrip())
    return parts


class CallbackStore:
    """Per-process map from short callback keys to Rasa payloads longer than Telegram's 64 bytes.

    Short payloads travel in ``callback_data`` itself (and so survive restarts and scale-out);
    only long ones are kept here, bounded, oldest forgotten first.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._payloads: OrderedDict[str, str] = OrderedDict()

    def data_for(self, payload: str) -> str:
        if len(payload.encode("utf-8")) <= MAX_CALLBACK_DATA and not payload.startswith(CALLBACK_KEY_PREFIX):
            return payload
        key = CALLBACK_KEY_PREFIX + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]
        self._payloads[key] = payload
        self._payloads.move_to_end(key)
        while len(self._payloads) > self.max_entries:
            self._payloads.popitem(last=False)
        return key

    def payload_for(self, data: str) -> Optional[str]:
        """The payload behind ``callback_data``; None when the key is unknown (e.g. after a restart)."""
        if not data.startswith(CALLBACK_KEY_PREFIX):
            return data or None
        return self._payloads.get(data)


def keyboard(buttons: list[dict], store: CallbackStore) -> Optional[InlineKeyboardMarkup]:
    """Rasa buttons as an inline keyboard: short titles share a row, longer ones get their own."""
    keys = [
        InlineKeyboardButton(str(b.get("title") or b.get("payload")), callback_data=store.data_for(str(b["payload"])))
        for b in buttons
        if isinstance(b, dict) and b.get("payload")
    ]
    if not keys:
        return None
    if all(len(key.text) <= 4 for key in keys):
        return InlineKeyboardMarkup([keys[i : i + 5] for i in range(0, len(keys), 5)])
    rows: list[list[InlineKeyboardButton]] = []
    feedback_row: Optional[list[InlineKeyboardButton]] = None
    payloads = [str(b["payload"]) for b in buttons if isinstance(b, dict) and b.get("payload")]
    for key, payload in zip(keys, payloads):
        if payload.startswith(FEEDBACK_PAYLOAD_PREFIXES):  # 👍 and 👎 (bot/feedback.py) share one row
            if feedback_row is None:
                feedback_row = []
                rows.append(feedback_row)
            feedback_row.append(key)
        else:
            rows.append([key])
    return InlineKeyboardMarkup(rows)


def asks_question(message: dict) -> bool:
    """Whether a Rasa message carries the buttons of a scan question."""
    return any(isinstance(b, dict) and str(b.get("payload") or "").startswith(QUESTION_PAYLOAD_PREFIX)
               for b in message.get("buttons") or [])


def decode_data_uri(uri: str) -> Optional[bytes]:
    """The bytes of a ``data:`` URI (base64 or percent-encoded); None for anything else."""
    if not uri.startswith("data:") or "," not in uri:
        return None
    header, _, data = uri[5:].partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(data, validate=False)
        return unquote_to_bytes(data)
    except (binascii.Error, ValueError):
        return None


def export_file(custom: dict) -> InputFile:
    """A ``{"type": "export", "filename", "content"}`` payload as a JSON document."""
    content = custom.get("content", "")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False, indent=2)
    filename = posixpath.basename(str(custom.get("filename") or "").replace("\\", "/")) or DEFAULT_EXPORT_NAME
    return InputFile(content.encode("utf-8"), filename=filename)


class Outgoing(NamedTuple):
    """One Bot API call to make for the chat: a ``telegram.Bot`` method name and its arguments."""

    method: str
    kwargs: dict[str, Any]


def render(message: dict, store: CallbackStore) -> list[Outgoing]:
    """One Rasa REST message as Telegram calls: text parts (keyboard on the last), photo, document."""
    out: list[Outgoing] = []
    text = str(message.get("text") or "")
    markup = keyboard(message.get("buttons") or [], store)
    parts = split_text(text) or ([BUTTONS_ONLY_TEXT] if markup else [])
    for index, part in enumerate(parts):
        kwargs: dict[str, Any] = {"text": part}
        if markup is not None and index == len(parts) - 1:
            kwargs["reply_markup"] = markup
        out.append(Outgoing("send_message", kwargs))
    image = message.get("image")
    if isinstance(image, str) and image:
        data = decode_data_uri(image)
        if data is not None:
            out.append(Outgoing("send_photo", {"photo": InputFile(data, filename="afbeelding.png")}))
        elif image.startswith(("https://", "http://")):
            out.append(Outgoing("send_photo", {"photo": image}))
    custom = message.get("custom")
    if isinstance(custom, dict) and custom.get("type") == "export":
        out.append(Outgoing("send_document", {"document": export_file(custom)}))
    elif custom is not None:
        logger.debug("custom payload without a Telegram rendering: %s", type(custom).__name__)
    return out


def rasa_message_for_command(command: str, args: list[str]) -> str:
    """What a Telegram command (``/start scan``, ``/help``, ...) says to Rasa; unknown ones ask for help."""
    if command == "start" and args:
        return DEEP_LINKS.get(args[0].lower(), COMMANDS["start"][0])
    return COMMANDS.get(command, COMMANDS["help"])[0]


def file_base_url(base_url: str) -> str:
    """``https://api.telegram.org/bot`` -> ``https://api.telegram.org/file/bot`` (also for local servers)."""
    head, sep, tail = base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else f"{base_url.rstrip('/')}/file/bot"


# --- Rasa -------------------------------------------------------------------------------


class RasaError(Exception):
    """Rasa could not be reached or did not answer with a list of messages."""


class RasaClient:
    """Sends one user message to Rasa's REST channel and returns the bot messages."""

    def __init__(self, url: str, timeout: float = 60.0, secret: Optional[str] = None) -> None:
        self.endpoint = f"{url.rstrip('/')}/webhooks/rest/webhook"
        self.timeout = timeout
        self.headers = {keys.CHANNEL_SECRET_HEADER: secret or keys.get(keys.CHANNEL_SECRET) or ""}
        self._client: Optional[httpx.AsyncClient] = None

    async def send(self, sender: str, message: str, message_id: Optional[str] = None) -> list[dict]:
        """``message_id`` (the Telegram update id) lets the bot recognise a re-delivered update."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        metadata = {"channel": CHANNEL, **({"message_id": message_id} if message_id else {})}
        body = {"sender": sender, "message": message, "metadata": metadata}
        try:
            response = await self._client.post(self.endpoint, json=body, headers=self.headers)
            response.raise_for_status()
            messages = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaError(type(exc).__name__) from exc
        if not isinstance(messages, list):
            raise RasaError("answer is not a list")
        return [m for m in messages if isinstance(m, dict)]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# --- Telegram side ----------------------------------------------------------------------


def _retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        delay = exc.retry_after
    return delay.total_seconds() if isinstance(delay, timedelta) else float(delay)


async def call_with_retry(method: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
    """Call the Bot API, waiting out flood control (``RetryAfter``) up to MAX_SEND_ATTEMPTS times."""
    for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
        try:
            return await method(*args, **kwargs)
        except RetryAfter as exc:
            if attempt == MAX_SEND_ATTEMPTS:
                raise
            delay = _retry_seconds(exc)
            logger.warning("Telegram flood control: attempt %d, retrying in %.0f s", attempt, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _answer(query: CallbackQuery, text: Optional[str] = None) -> None:
    """Acknowledge a button press; a query that is too old to answer must not stop the press itself."""
    try:
        await call_with_retry(query.answer, text)
    except BadRequest as exc:
        logger.info("could not answer callback query: %s", type(exc).__name__)


def _addressed(message: Message, bot_id: int, username: str) -> bool:
    """A group message meant for the bot: a reply to it, an @mention, or one of its commands."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return True
    username = username.lower()
    for entity, text in message.parse_entities([MessageEntity.MENTION, MessageEntity.BOT_COMMAND]).items():
        if entity.type == MessageEntity.MENTION and text.lower() == f"@{username}":
            return True
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            target = text.partition("@")[2].lower()
            if not target or target == username:
                return True
    return False


@dataclass
class Bridge:
    """The handlers: forward private updates to Rasa (one at a time per mentor), render the answers."""

    rasa: RasaClient
    store: CallbackStore = field(default_factory=CallbackStore)
    owns_rasa: bool = True
    _locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = field(default_factory=weakref.WeakValueDictionary)
    # chat id -> id of the message with the newest question keyboard (per process, bounded)
    _question_keyboards: "OrderedDict[int, int]" = field(default_factory=OrderedDict)

    def _lock(self, sender: str) -> asyncio.Lock:
        lock = self._locks.get(sender)
        if lock is None:
            lock = self._locks[sender] = asyncio.Lock()
        return lock

    async def post_init(self, application: Application) -> None:
        commands = [BotCommand(name, description) for name, (_, description) in COMMANDS.items()]
        await call_with_retry(application.bot.set_my_commands, commands)

    async def post_shutdown(self, application: Application) -> None:
        if self.owns_rasa:
            await self.rasa.aclose()

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.text:
            await self.forward(update, context, message.text)

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        command = message.text.split(maxsplit=1)[0][1:].partition("@")[0].lower()
        await self.forward(update, context, rasa_message_for_command(command, list(context.args or [])))

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            await call_with_retry(update.effective_message.reply_text, TEXT_ONLY)

    async def on_group(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answers stay personal: in a group the bot only points to a private chat, when addressed."""
        message = update.effective_message
        if message is not None and _addressed(message, context.bot.id, context.bot.username):
            await call_with_retry(message.reply_text, PRIVATE_ONLY)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        chat, user = update.effective_chat, update.effective_user
        payload = self.store.payload_for(query.data or "")
        if chat is None or chat.type != ChatType.PRIVATE or user is None:
            await _answer(query)
            return
        if payload is None:
            await _answer(query, BUTTON_EXPIRED)
            return
        await _answer(query)
        sender = sender_id(user.id)
        async with self._lock(sender):
            if isinstance(query.message, Message) and self._question_keyboards.get(chat.id) == query.message.message_id:
                del self._question_keyboards[chat.id]
            if await self._remove_keyboard(update):
                await self._forward_locked(context, chat.id, sender, payload, f"tg-{update.update_id}")

    async def _remove_keyboard(self, update: Update) -> bool:
        """Take the keyboard off the pressed message; False when it was already gone (a double tap)."""
        query = update.callback_query
        if query is None or not isinstance(query.message, Message):
            return True  # too old to edit: still honour the press
        try:
            await call_with_retry(query.edit_message_reply_markup, reply_markup=None)
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return False
            logger.info("could not remove keyboard: %s", type(exc).__name__)
        return True

    async def forward(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:
            return
        sender = sender_id(user.id)
        async with self._lock(sender):
            await self._forward_locked(context, chat.id, sender, text, f"tg-{update.update_id}")

    async def _forward_locked(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, sender: str, text: str,
                              message_id: Optional[str] = None) -> None:
        logger.debug("update from %s", identity.pseudonym(sender))
        async with _typing(context, chat_id):
            try:
                messages = await self.rasa.send(sender, text, message_id)
            except RasaError as exc:
                logger.warning("Rasa unavailable for %s: %s", identity.pseudonym(sender), exc)
                messages = [{"text": APOLOGY}]
        for message in messages:
            question = asks_question(message)
            for outgoing in render(message, self.store):
                sent = await call_with_retry(getattr(context.bot, outgoing.method), chat_id=chat_id, **outgoing.kwargs)
                if question and "reply_markup" in outgoing.kwargs and isinstance(sent, Message):
                    await self._retire_question_keyboard(context, chat_id)
                    self._question_keyboards[chat_id] = sent.message_id
                    self._question_keyboards.move_to_end(chat_id)
                    while len(self._question_keyboards) > MAX_TRACKED_CHATS:
                        self._question_keyboards.popitem(last=False)

    async def _retire_question_keyboard(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
        """Take the keyboard off the chat's previous question: its buttons no longer answer anything."""
        message_id = self._question_keyboards.pop(chat_id, None)
        if message_id is None:
            return
        try:
            await call_with_retry(context.bot.edit_message_reply_markup, chat_id=chat_id, message_id=message_id,
                                  reply_markup=None)
        except TelegramError as exc:  # already gone (pressed, deleted): nothing to retire
            logger.info("could not remove an old question keyboard: %s", type(exc).__name__)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        logger.error("Telegram update failed: %s", type(context.error).__name__)


@asynccontextmanager
async def _typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> AsyncIterator[None]:
    """Show "typing..." before and while Rasa thinks; a failing chat action never blocks the answer."""

    async def send() -> None:
        with suppress(TelegramError):
            await context.bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)

    async def refresh() -> None:
        while True:
            await asyncio.sleep(TYPING_REFRESH_SECONDS)
            await send()

    await send()
    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def build_application(settings: Optional[Settings] = None, rasa_client: Optional[RasaClient] = None) -> Application:
    """The wired PTB application (handlers, commands, error handler); run it with polling or a webhook."""
    settings = settings or get_settings()
    if not settings.telegram_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    # httpx request lines carry the bot token; PTB's and httpcore's DEBUG output carries the token and
    # whole updates (message text, names): cap them so even MENTORWIJZER_LOG_LEVEL=DEBUG stays clean
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.INFO)
    bridge = Bridge(rasa_client or RasaClient(settings.rasa_url, secret=settings.channel_secret or None),
                    owns_rasa=rasa_client is None)
    application = (
        Application.builder()
        .token(settings.telegram_token)
        .base_url(settings.telegram_base_url)
        .base_file_url(file_base_url(settings.telegram_base_url))
        .job_queue(None)
        .concurrent_updates(True)  # mentors in parallel; one mentor's messages stay in order (Bridge._lock)
        .post_init(bridge.post_init)
        .post_shutdown(bridge.post_shutdown)
        .build()
    )
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    application.add_handler(CommandHandler(list(COMMANDS), bridge.on_command, filters=private))
    application.add_handler(MessageHandler(private & filters.COMMAND, bridge.on_command))
    application.add_handler(MessageHandler(private & filters.TEXT, bridge.on_text))
    application.add_handler(MessageHandler(private & ~filters.StatusUpdate.ALL, bridge.on_other))
    application.add_handler(MessageHandler(filters.ChatType.GROUPS & filters.UpdateType.MESSAGE, bridge.on_group))
    application.add_handler(CallbackQueryHandler(bridge.on_callback))
    application.add_error_handler(bridge.on_error)
    return application


# --- webhook ----------------------------------------------------------------------------


def webhook_app(application: Application, secret: str, path: str) -> web.Application:
    """POST ``path`` with the right secret header -> update queue (else 403); GET /health."""
    async def telegram(request: web.Request) -> web.Response:
        if not keys.matches(request.headers.get(SECRET_HEADER), secret):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return web.Response(status=400)
        await application.update_queue.put(update)
        return web.Response(status=200)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=get_settings().max_body_bytes)  # larger updates: 413
    app.router.add_post(path, telegram)
    app.router.add_get("/health", health)
    return app


async def serve_webhook(
    application: Application,
    webhook_url: str,
    *,
    secret: Optional[str] = None,
    listen: str = "127.0.0.1",
    port: int = 8443,
    stop: Optional[asyncio.Event] = None,
) -> None:
    """Serve the webhook until ``stop`` is set; registers it (with the secret) once listening."""
    if secret is None:
        secret = secrets.token_urlsafe(32)
        logger.warning("TELEGRAM_WEBHOOK_SECRET not set: using a random secret (run a single bridge only)")
    if not SECRET_PATTERN.match(secret):
        raise ValueError("TELEGRAM_WEBHOOK_SECRET may only contain A-Z, a-z, 0-9, _ and - (1-256 characters)")
    stop = stop or asyncio.Event()
    runner = web.AppRunner(webhook_app(application, secret, urlsplit(webhook_url).path or "/"), access_log=None)
    await application.initialize()
    try:
        if application.post_init:
            await application.post_init(application)
        await application.start()
        await runner.setup()
        await web.TCPSite(runner, listen, port).start()
        await call_with_retry(application.bot.set_webhook, webhook_url, secret_token=secret,
                              allowed_updates=ALLOWED_UPDATES)
        logger.info("Telegram webhook listening on %s:%d", listen, port)
        await stop.wait()
    finally:
        await runner.cleanup()
        if application.running:
            await application.stop()
        if application.post_shutdown:
            await application.post_shutdown(application)
        await application.shutdown()


async def _serve_until_signal(application: Application, webhook_url: str, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve_webhook(application, webhook_url, secret=settings.telegram_webhook_secret or None,
                        listen=settings.telegram_listen, port=settings.telegram_port, stop=stop)


def run(webhook_url: Optional[str] = None) -> None:
    """Run the bridge until stopped: long polling, or a webhook when a URL is given or configured."""
    settings = get_settings()
    application = build_application(settings)
    url = webhook_url or settings.telegram_webhook_url
    if url:
        asyncio.run(_serve_until_signal(application, url, settings))
    else:
        logger.info("Telegram bridge: long polling")
        application.run_polling(allowed_updates=ALLOWED_UPDATES)
