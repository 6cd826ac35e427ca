"""Fakes for channel tests, both aiohttp servers on 127.0.0.1 (port chosen by the OS).

``FakeTelegram`` answers ``/bot<token>/<method>`` like the Bot API (``{"ok": true, "result": ...}``),
serves queued updates to ``getUpdates`` (long poll, short timeout), remembers the messages the bot
sent (so ``editMessageReplyMarkup`` on an already removed keyboard fails as on Telegram), can answer
a method with flood control (429 + ``retry_after``) and records every call for assertions.

``FakeRasa`` is Rasa's REST channel: it records the bodies it receives and answers scripted replies.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any, Callable, Optional

from aiohttp import web

TOKEN = "123456:TEST-fake-token"
BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Mentorwijzer",
    "username": "mentorwijzer_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# parameters PTB sends JSON-encoded; everything else is a plain string
JSON_PARAMS = {
    "chat_id", "message_id", "reply_markup", "commands", "allowed_updates", "offset", "limit", "timeout",
    "show_alert", "cache_time", "max_connections", "drop_pending_updates", "scope", "disable_notification",
    "protect_content", "reply_parameters", "link_preview_options", "entities", "message_thread_id",
}
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: Optional[dict] = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


class FakeTelegram:
    """A Bot API stand-in: records calls, serves queued updates, keeps the bot's sent messages."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[tuple[str, dict]] = []
        self.updates: list[dict] = []
        self.messages: dict[tuple[int, int], dict] = {}  # (chat id, message id) -> message
        self.chats: dict[int, dict] = {}
        self.flood: dict[str, list[int]] = {}  # method -> retry_after seconds to answer first, once each
        self.webhook: dict = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self._callback_ids = itertools.count(9000)
        self._changed: Optional[asyncio.Condition] = None
        self._runner: Optional[web.AppRunner] = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> "FakeTelegram":
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner, self.port = await _serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # --- scripting -------------------------------------------------------------------------

    def chat(self, chat_id: int, chat_type: str = "private") -> dict:
        if chat_type == "private":
            chat = {"id": chat_id, "type": "private", "first_name": "Test"}
        else:
            chat = {"id": chat_id, "type": chat_type, "title": "Testgroep"}
        self.chats[chat_id] = chat
        return chat

    @staticmethod
    def user(user_id: int) -> dict:
        return {"id": user_id, "is_bot": False, "first_name": "Test", "language_code": "nl"}

    async def push(self, update: dict) -> dict:
        """Queue one update (``update_id`` added) for the next ``getUpdates``."""
        update = {"update_id": next(self._update_ids), **update}
        async with self._changed:
            self.updates.append(update)
            self._changed.notify_all()
        return update

    def message_update(self, user_id: int, text: str, chat_type: str = "private", chat_id: Optional[int] = None,
                       reply_to: Optional[dict] = None) -> dict:
        """An update body with a text message; commands and @mentions get their entities (ASCII text)."""
        chat = self.chat(chat_id if chat_id is not None else user_id, chat_type)
        entities = [{"type": "mention", "offset": m.start(), "length": len(m.group())}
                    for m in re.finditer(r"@\w+", text)]
        if text.startswith("/"):
            entities.insert(0, {"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
        message: dict[str, Any] = {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                                   "from": self.user(user_id), "text": text}
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return {"message": message}

    def callback_update(self, user_id: int, message: dict, data: str) -> dict:
        """An update body for pressing a button with ``data`` on a message the bot sent."""
        return {"callback_query": {"id": str(next(self._callback_ids)), "from": self.user(user_id),
                                   "chat_instance": "42", "message": message, "data": data}}

    def params(self, method: str) -> list[dict]:
        return [params for name, params in self.calls if name == method]

    def sent_texts(self) -> list[str]:
        return [p["text"] for p in self.params("sendMessage")]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 10.0,
                       where: Callable[[dict], bool] = lambda p: True) -> list[dict]:
        """The first ``count`` recorded calls of ``method`` (matching ``where``), waiting up to ``timeout``."""

        def found() -> list[dict]:
            return [p for p in self.params(method) if where(p)]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(found()) >= count), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"{method}: {len(found())} of {count} calls after {timeout} s; "
                                     f"calls so far: {[name for name, _ in self.calls if name != 'getUpdates']}")
        return found()[:count]

    # --- the Bot API -----------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict:
        if request.content_type == "application/json":
            return dict(await request.json())
        params: dict[str, Any] = {}
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                with value.file as file:
                    params[key] = {"filename": value.filename, "content": file.read()}
            elif key in JSON_PARAMS:
                params[key] = json.loads(value)
            else:
                params[key] = value
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params = await self._params(request)
        async with self._changed:
            self.calls.append((method, params))
            self._changed.notify_all()
        handler = getattr(self, f"api_{method}", None)
        try:
            if self.flood.get(method):
                retry_after = self.flood[method].pop(0)
                raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = await handler(params)
        except ApiError as exc:
            body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
            return web.json_response(body, status=exc.code)
        return web.json_response({"ok": True, "result": result})

    def _sent(self, params: dict, **content: Any) -> dict:
        chat_id = int(params["chat_id"])
        message = {"message_id": next(self._message_ids), "date": int(time.time()), "from": BOT_USER,
                   "chat": self.chats.get(chat_id) or self.chat(chat_id), **content}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def api_getMe(self, params: dict) -> dict:
        return BOT_USER

    async def api_setMyCommands(self, params: dict) -> bool:
        return True

    async def api_deleteWebhook(self, params: dict) -> bool:
        self.webhook = {}
        return True

    async def api_setWebhook(self, params: dict) -> bool:
        self.webhook = params
        return True

    async def api_getUpdates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 1.0)

        def pending() -> list[dict]:
            return [u for u in self.updates if u["update_id"] >= offset]

        async with self._changed:
            self.updates = pending()  # an offset confirms everything before it
            if not self.updates and timeout > 0:
                with_timeout = asyncio.wait_for(self._changed.wait_for(lambda: bool(pending())), timeout)
                try:
                    await with_timeout
                except asyncio.TimeoutError:
                    pass
            return pending()[: int(params.get("limit") or 100)]

    async def api_sendMessage(self, params: dict) -> dict:
        if len(params.get("text", "")) > 4096 or not params.get("text"):
            raise ApiError(400, "Bad Request: message is too long" if params.get("text") else
                           "Bad Request: message text is empty")
        return self._sent(params, text=params["text"])

    async def api_sendPhoto(self, params: dict) -> dict:
        photo = [{"file_id": "photo-1", "file_unique_id": "u-photo-1", "width": 640, "height": 480, "file_size": 1}]
        return self._sent(params, photo=photo)

    async def api_sendDocument(self, params: dict) -> dict:
        document = params.get("document")
        name = document.get("filename") if isinstance(document, dict) else "document"
        return self._sent(params, document={"file_id": "doc-1", "file_unique_id": "u-doc-1", "file_name": name})

    async def api_sendChatAction(self, params: dict) -> bool:
        return True

    async def api_answerCallbackQuery(self, params: dict) -> bool:
        return True

    async def api_editMessageReplyMarkup(self, params: dict) -> dict:
        message = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if message.get("reply_markup") == markup or (not markup and "reply_markup" not in message):
            raise ApiError(400, NOT_MODIFIED)
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message


class FakeRasa:
    """Rasa's REST channel: records bodies; answers ``replies`` in order, then ``default``."""

    def __init__(self, default: Optional[list[dict]] = None) -> None:
        self.bodies: list[dict] = []
        self.replies: list[list[dict]] = []
        self.default = default if default is not None else [{"text": "Oké."}]
        self._changed: Optional[asyncio.Condition] = None
        self._runner: Optional[web.AppRunner] = None
        self.port = 0

    async def start(self) -> "FakeRasa":
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self._handle)
        self._runner, self.port = await _serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def messages(self) -> list[str]:
        return [body["message"] for body in self.bodies]

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(self.bodies) >= count), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"Rasa got {len(self.bodies)} of {count} messages after {timeout} s")
        return self.bodies[:count]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._changed:
            self.bodies.append(body)
            self._changed.notify_all()
        reply = self.replies.pop(0) if self.replies else self.default
        return web.json_response([{"recipient_id": body.get("sender"), **message} for message in reply])
