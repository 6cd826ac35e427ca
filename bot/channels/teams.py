"""Microsoft Teams channel: Rasa's Bot Framework channel with working buttons, images, file exports,
single-tenant tokens, a welcome message and retries towards the Bot Connector.

Register it in ``credentials.yml`` (values left out are read from the settings, i.e. from the
``MICROSOFT_APP_ID``, ``MICROSOFT_APP_PASSWORD``, ``MICROSOFT_TENANT_ID`` and
``MENTORWIJZER_BOT_NAME`` environment variables)::

    bot.channels.teams.TeamsInput:

Teams then posts activities to ``https://<host>/webhooks/teams/webhook``.

What differs from ``rasa.core.channels.botframework`` (Rasa 3.6):

* requests are checked in this order, and a refused one never reaches Rasa: a body larger than
  ``MENTORWIJZER_MAX_BODY_BYTES`` gets 413, a Content-Type other than ``application/json`` 415
  (both before the body is parsed); then the token (401), then the activity's shape (400), then who
  is speaking (403);
* incoming tokens: algorithm pinned to RS256/384/512 (upstream lets the token header choose), issuer
  ``https://api.botframework.com`` and expiry required, the ``serviceurl`` claim must equal the
  activity's ``serviceUrl`` and the signing key must endorse the activity's ``channelId`` (as the
  Bot Framework SDK does); signing keys are fetched asynchronously and lazily, not with blocking
  ``requests`` calls at start-up;
* only Teams may speak: ``channelId`` must be ``msteams`` for every activity (Direct Line, Web Chat
  and the Emulator let the client choose ``from.id``); the activity must name its tenant
  (``conversation.tenantId`` / ``channelData.tenant.id``, which must agree) and, with
  ``MICROSOFT_TENANT_ID`` set, that tenant; a message must carry ``from.aadObjectId``. Else 403;
* the sender id is ``teams:<tenant id>:<AAD object id>`` (``bot.identity.teams_sender``): stable
  across Teams conversations, distinct per tenant, never ``from.id``;
* buttons become ``imBack``/``messageBack`` card actions carrying the payload (upstream sends
  actions without type and value, rasa issues #8164 and #11411);
* images (URLs and ``data:`` URIs) become image attachments; ``{"type": "export"}`` custom
  payloads become a JSON file attachment;
* no activity over ``MAX_ACTIVITY_BYTES`` (the JSON body of the POST) is ever posted: Teams refuses
  large messages with 413, which is not worth retrying. An export that is too large goes out as
  several smaller JSON files (``export_parts``), anything else too large is replaced by a short
  Dutch text saying so (the bot's only images are charts whose numbers precede them as text);
* outgoing calls use aiohttp, a per-app token cache, the tenant's token endpoint for single-tenant
  bots, and retry 429/5xx with exponential backoff that honours ``Retry-After``;
* the activity id travels as ``metadata["message_id"]``, so a re-delivered answer is not stored
  twice (``bot.scan.submit``); logs carry keyed pseudonyms (``bot.identity.pseudonym``) of sender,
  tenant and conversation ids, never text, names or tokens;
* people in the loop (``bot/delivery.py``): a message from a personal chat carries
  ``metadata["teams_reference"]``, the ids needed to write to the sender later
  (``bot.delivery.save_reference``); messages waiting for the sender in the outbox are sent before
  the reply; ``TeamsOutput.send`` returns whether the connector accepted the activity.
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import html
import json
import logging
import mimetypes
import posixpath
import re
import time
from collections import OrderedDict
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import quote, urlsplit

import aiohttp
import jwt
from jwt.algorithms import RSAAlgorithm
from rasa.core.channels import botframework
from rasa.core.channels.botframework import BEARER_REGEX, BotFramework, BotFrameworkInput
from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.rest import InvalidRequest, check_transport, send_pending
from bot.identity import pseudonym, teams_sender
from bot.settings import get_settings

logger = logging.getLogger(__name__)

CHANNEL_NAME = "teams"
WELCOME_TEXT = (
    "Hoi! Ik ben {bot_name}, een geautomatiseerde assistent voor mentoren. "
    "Typ 'help' om te zien wat ik kan, of 'mentorscan' om de scan in te vullen."
)
BOTFRAMEWORK_ISSUER = "https://api.botframework.com"
BOTFRAMEWORK_SCOPE = "https://api.botframework.com/.default"
ALLOWED_ALGORITHMS = ["RS256", "RS384", "RS512"]
SERVICE_URL_CLAIM = "serviceurl"
CLOCK_SKEW_SECONDS = 300  # the Bot Framework SDK's tolerance
HERO_CARD = "application/vnd.microsoft.card.hero"
MENTION = re.compile(r"<at>[^<]*</at>", re.IGNORECASE)
DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*),", re.IGNORECASE)
DEFAULT_EXPORT_NAME = "mentorwijzer-export.json"
# Largest activity body (JSON, bytes) posted to the connector. Teams' documented limit has varied
# (100 KB now, 40 KB before, both counted in UTF-16; about 28 KB for messages through Graph) and an
# over-size message gets 413 MessageSizeTooBig: stay well below all of them.
MAX_ACTIVITY_BYTES = 25_000
MAX_EXPORT_PARTS = 10
IMAGE_TOO_LARGE_TEXT = "De grafiek is te groot om in Teams te versturen. De cijfers staan hierboven als tekst."
EXPORT_IN_PARTS_TEXT = "Je gegevens passen niet in één Teams-bericht, daarom stuur ik ze in {parts} bestanden."
EXPORT_TOO_LARGE_TEXT = (
    "Je gegevens zijn te groot om in Teams als bestand te versturen. Hierboven staat een overzicht; "
    "neem voor het volledige bestand contact op met de beheerder van Mentorwijzer."
)
MESSAGE_TOO_LARGE_TEXT = "Dit antwoord is te groot om in Teams te versturen."
TEAMS_CHANNEL_ID = "msteams"
JSON_CONTENT_TYPE = "application/json"
# Tenant and AAD object ids are GUIDs; no ':' (the separator in sender ids), no blanks.
DIRECTORY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOGGABLE_CHANNEL_ID = re.compile(r"^[a-z0-9_-]{1,32}$")


def teams_text(text: str) -> str:
    """Plain text as Teams' XML text format: escaped, line breaks kept (Teams drops bare ``\n``)."""
    return html.escape(text.strip(), quote=False).replace("\r\n", "\n").replace("\n", "<br>")


def body_refusal(request: Request, max_bytes: int) -> Optional[HTTPResponse]:
    """413 for a body over ``max_bytes``, 415 for one that is not JSON (the REST channel's check);
    None when the body may be parsed."""
    try:
        check_transport(request, max_bytes)
    except InvalidRequest as error:
        return response.text(error.detail, status=error.status)
    return None


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _json_bytes(value: Any) -> int:
    return len(_json_text(value).encode("utf-8"))


def export_parts(content: str, max_bytes: int) -> Optional[List[str]]:
    """A JSON object as several JSON objects of at most ``max_bytes`` (UTF-8) each, with the same keys:
    top-level entries packed together, a long list spread over parts element by element. None when
    the content is not a JSON object or one entry or list element alone is larger."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    parts: List[Dict[str, Any]] = []
    current: Dict[str, Any] = {}

    def add(key: str, value: Any) -> None:
        nonlocal current
        if current and (key in current or _json_bytes({**current, key: value}) > max_bytes):
            parts.append(current)
            current = {}
        current[key] = value

    for key, value in data.items():
        if _json_bytes({key: value}) <= max_bytes:
            add(key, value)
            continue
        if not isinstance(value, list):
            return None
        chunk: List[Any] = []
        for element in value:
            if _json_bytes({key: [element]}) > max_bytes:
                return None
            if chunk and _json_bytes({key: chunk + [element]}) > max_bytes:
                add(key, chunk)
                chunk = []
            chunk.append(element)
        add(key, chunk)
    if current or not parts:
        parts.append(current)
    return [_json_text(part) for part in parts]


class TeamsAuthError(Exception):
    """The request does not carry a valid Bot Framework token for this bot."""


class TeamsIdentityError(Exception):
    """A signed activity that does not prove a Teams user of this bot (channel, tenant, AAD id)."""


class TeamsOutput(BotFramework):
    """Sends activities to the Bot Connector of one Teams conversation."""

    # None: Rasa's ``botframework.MICROSOFT_OAUTH2_URL``, read at call time (tests patch it).
    oauth_base_url: Optional[str] = None
    max_attempts: int = 4
    retry_base_delay: float = 0.5
    max_retry_delay: float = 10.0
    request_timeout: float = 15.0
    max_activity_bytes: int = MAX_ACTIVITY_BYTES
    token_margin_seconds: int = 300

    # (token url, app id) -> (access token, monotonic expiry); shared by all conversations.
    _tokens: Dict[Tuple[str, str], Tuple[str, float]] = {}

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    def __init__(
        self,
        app_id: str,
        app_password: str,
        conversation: Dict[str, Any],
        bot: Dict[str, Any],
        service_url: str,
        user: Optional[Dict[str, Any]] = None,
        tenant_id: str = "",
        oauth_base_url: Optional[str] = None,
    ) -> None:
        super().__init__(app_id, app_password, conversation, bot, service_url)
        self.user = {key: user[key] for key in ("id", "aadObjectId") if key in user} if user else {}
        self.tenant_id = tenant_id or ""
        if oauth_base_url:
            self.oauth_base_url = oauth_base_url

    @classmethod
    def clear_token_cache(cls) -> None:
        """Forget every cached access token (tests; a rotated secret)."""
        cls._tokens.clear()

    @property
    def token_url(self) -> str:
        """The tenant's token endpoint for single-tenant bots, Bot Framework's shared one otherwise."""
        base = (self.oauth_base_url or botframework.MICROSOFT_OAUTH2_URL).rstrip("/")
        if self.tenant_id:
            return f"{base}/{quote(self.tenant_id, safe='')}/oauth2/v2.0/token"
        return f"{base}/{botframework.MICROSOFT_OAUTH2_PATH}"

    @property
    def activities_url(self) -> str:
        return f"{self.global_uri}conversations/{quote(str(self.conversation['id']), safe='')}/activities"

    async def _access_token(self, session: aiohttp.ClientSession) -> Optional[str]:
        key = (self.token_url, self.app_id)
        cached = self._tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        payload = {
            "grant_type": "client_credentials",
            "client_id": self.app_id,
            "client_secret": self.app_password,
            "scope": BOTFRAMEWORK_SCOPE,
        }
        try:
            async with session.post(self.token_url, data=payload) as reply:
                if reply.status != HTTPStatus.OK:
                    logger.error("Teams token request failed (status %s)", reply.status)
                    return None
                data = await reply.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            logger.error("Teams token request failed (%s)", type(error).__name__)
            return None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not token:
            logger.error("Teams token response without access_token")
            return None
        lifetime = max(60, int(data.get("expires_in", 3600)) - self.token_margin_seconds)
        self._tokens[key] = (token, time.monotonic() + lifetime)
        return token

    async def _get_headers(self) -> Optional[Dict[str, Any]]:  # upstream API, kept for callers
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            token = await self._access_token(session)
        return {"content-type": "application/json", "Authorization": f"Bearer {token}"} if token else None

    def _retry_delay(self, attempt: int, retry_after: Optional[str]) -> float:
        delay = self.retry_base_delay * (2 ** (attempt - 1))
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                try:
                    when: Optional[datetime.datetime] = email.utils.parsedate_to_datetime(retry_after)
                except (TypeError, ValueError, IndexError):
                    when = None
                if when is not None:
                    now = datetime.datetime.now(when.tzinfo or datetime.timezone.utc)
                    delay = max(delay, (when - now).total_seconds())
        return min(self.max_retry_delay, max(0.0, delay))

    @staticmethod
    def _activity_bytes(message_data: Dict[str, Any]) -> int:
        """The size of the POST body ``send`` would post."""
        return len(json.dumps(message_data).encode("utf-8"))

    @staticmethod
    def _attachment_types(message_data: Dict[str, Any]) -> List[str]:
        return [str(a.get("contentType") or "") for a in message_data.get("attachments") or [] if isinstance(a, dict)]

    def _kind(self, message_data: Dict[str, Any]) -> str:
        """Activity type and attachment content types, for logs (never content)."""
        types = self._attachment_types(message_data)
        return str(message_data.get("type")) + (f" with {', '.join(types)}" if types else "")

    def _stand_in(self, message_data: Dict[str, Any]) -> Dict[str, Any]:
        """A short text activity, in the same conversation, saying that the original was too large."""
        types = self._attachment_types(message_data)
        if any(t.startswith("image/") for t in types):
            text = IMAGE_TOO_LARGE_TEXT
        elif JSON_CONTENT_TYPE in types:
            text = EXPORT_TOO_LARGE_TEXT
        else:
            text = MESSAGE_TOO_LARGE_TEXT
        stand_in = {key: message_data[key] for key in ("type", "from", "recipient", "conversation", "replyToId")
                    if key in message_data}
        stand_in.update(type="message", text=teams_text(text), textFormat="xml")
        return stand_in

    async def send(self, message_data: Dict[str, Any]) -> bool:
        """Post one activity; 429, 5xx and network errors are retried, a final failure is logged.
        An activity over ``max_activity_bytes`` is never posted: a short text goes instead.
        True when the connector accepted it (``last_status``: its last HTTP status, None if unreached)."""
        self.last_status: Optional[int] = None
        size = self._activity_bytes(message_data)
        if size > self.max_activity_bytes:
            logger.warning("Teams activity (%s) of %d bytes is over the limit of %d; sending a short text instead",
                           self._kind(message_data), size, self.max_activity_bytes)
            message_data = self._stand_in(message_data)
            size = self._activity_bytes(message_data)
            if size > self.max_activity_bytes:
                logger.error("Teams activity (%s) not sent: even its stand-in is %d bytes",
                             self._kind(message_data), size)
                return False
        body = json.dumps(message_data)
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        refreshed_token = False
        status: Optional[int] = None
        async with aiohttp.ClientSession(timeout=timeout) as session:
            attempt = 0
            while attempt < self.max_attempts:
                attempt += 1
                retry_after = None
                token = await self._access_token(session)
                if token is None:
                    status = None
                else:
                    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
                    try:
                        async with session.post(self.activities_url, data=body, headers=headers) as reply:
                            status = reply.status
                            retry_after = reply.headers.get("Retry-After")
                            await reply.read()
                    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                        logger.warning("Teams connector unreachable (%s)", type(error).__name__)
                        status = None
                self.last_status = status
                if status is not None and 200 <= status < 300:
                    return True
                if status == HTTPStatus.UNAUTHORIZED and not refreshed_token:
                    # A revoked or rotated token: fetch a new one once, without counting the attempt.
                    self._tokens.pop((self.token_url, self.app_id), None)
                    refreshed_token = True
                    attempt -= 1
                    continue
                retryable = status is None or status == HTTPStatus.TOO_MANY_REQUESTS or status >= 500
                if not retryable or attempt >= self.max_attempts:
                    break
                delay = self._retry_delay(attempt, retry_after)
                logger.warning(
                    "Teams connector answered %s; retry %d/%d in %.1fs", status, attempt, self.max_attempts - 1, delay
                )
                await asyncio.sleep(delay)
        logger.error(
            "Teams activity (%s) not delivered after %d attempt(s); last status %s",
            message_data.get("type"), attempt, status,
        )
        return False

    def prepare_message(self, recipient_id: str, message_data: Dict[str, Any]) -> Dict[str, Any]:
        data: Dict[str, Any] = {
            "type": "message",
            "from": self.bot,
            "recipient": self.user or {"id": recipient_id},
            "conversation": {"id": self.conversation["id"]},
            "text": "",
        }
        data.update(message_data)
        return data

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> bool:
        message = self.prepare_message(recipient_id, {"text": teams_text(text), "textFormat": "xml"})
        return await self.send(message)

    @staticmethod
    def card_action(button: Dict[str, Any]) -> Dict[str, Any]:
        """A Rasa button as a Teams card action that posts its payload back to the bot."""
        title = str(button.get("title") or button.get("payload") or "")
        url = button.get("url")
        if url or button.get("type") == "web_url":
            return {"type": "openUrl", "title": title, "value": url or button.get("payload")}
        payload = str(button.get("payload") or title)
        if payload.startswith("/"):
            # The user sees the title, the bot receives the intent payload as text.
            return {"type": "messageBack", "title": title, "text": payload, "displayText": title,
                    "value": {"payload": payload}}
        return {"type": "imBack", "title": title, "value": payload}

    async def send_text_with_buttons(
        self, recipient_id: str, text: Optional[str], buttons: List[Dict[str, Any]], **kwargs: Any
    ) -> bool:
        content: Dict[str, Any] = {"buttons": [self.card_action(button) for button in buttons]}
        if text:
            content["text"] = teams_text(text)  # card text: XML subset, no markdown
        card = {"contentType": HERO_CARD, "content": content}
        return await self.send(self.prepare_message(recipient_id, {"attachments": [card]}))

    async def send_quick_replies(
        self, recipient_id: str, text: Optional[str], quick_replies: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    @staticmethod
    def image_attachment(image: str) -> Dict[str, Any]:
        """An inline image attachment for a URL or a ``data:`` URI."""
        match = DATA_URI.match(image)
        if match:
            content_type = (match.group("mime") or "image/png").lower()
        else:
            content_type = mimetypes.guess_type(urlsplit(image).path)[0] or "image/png"
        extension = mimetypes.guess_extension(content_type) or ".png"
        name = "afbeelding" + extension
        if not match:
            name = posixpath.basename(urlsplit(image).path) or name
        return {"contentType": content_type, "contentUrl": image, "name": name}

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        message = self.prepare_message(recipient_id, {"attachments": [self.image_attachment(image)]})
        await self.send(message)

    @staticmethod
    def export_attachment(payload: Dict[str, Any]) -> Dict[str, Any]:
        """A ``{"type": "export", "filename", "content"}`` payload as a JSON file attachment."""
        content = payload.get("content", "")
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False, indent=2)
        filename = posixpath.basename(str(payload.get("filename") or "").replace("\\", "/")) or DEFAULT_EXPORT_NAME
        encoded = base64.b64encode(content.encode("utf-8")).decode("ascii")
        return {"contentType": "application/json", "contentUrl": f"data:application/json;base64,{encoded}",
                "name": filename}

    async def send_export(self, recipient_id: str, payload: Dict[str, Any]) -> None:
        """The export as one JSON file, or as several when one would be over ``max_activity_bytes``."""
        message = self.prepare_message(recipient_id, {"attachments": [self.export_attachment(payload)]})
        size = self._activity_bytes(message)
        if size <= self.max_activity_bytes:
            await self.send(message)
            return
        attachment = message["attachments"][0]
        stem, extension = posixpath.splitext(attachment["name"])
        longest = f"{stem}-deel-{MAX_EXPORT_PARTS}-van-{MAX_EXPORT_PARTS}{extension or '.json'}"
        empty = self.prepare_message(recipient_id, {"attachments": [self.export_attachment(
            {"filename": longest, "content": ""})]})
        # base64 makes 3 bytes of content 4 bytes of body
        content_budget = (self.max_activity_bytes - self._activity_bytes(empty)) * 3 // 4 - 3
        content = payload.get("content", "")
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False, indent=2)
        parts = export_parts(content, content_budget) if content_budget > 0 else None
        if parts is None or len(parts) > MAX_EXPORT_PARTS:
            logger.warning("Teams export of %d bytes cannot be split into %d files; sending a short text instead",
                           size, MAX_EXPORT_PARTS)
            await self.send_text_message(recipient_id, EXPORT_TOO_LARGE_TEXT)
            return
        logger.info("Teams export of %d bytes sent as %d files", size, len(parts))
        await self.send_text_message(recipient_id, EXPORT_IN_PARTS_TEXT.format(parts=len(parts)))
        for number, part in enumerate(parts, start=1):
            name = f"{stem}-deel-{number}-van-{len(parts)}{extension or '.json'}"
            attachment = self.export_attachment({"filename": name, "content": part})
            await self.send(self.prepare_message(recipient_id, {"attachments": [attachment]}))

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        if json_message.get("type") == "export":
            await self.send_export(recipient_id, json_message)
            return
        activity = self.prepare_message(recipient_id, {})
        activity.update(json_message)
        await self.send(activity)

    async def send_elements(self, recipient_id: str, elements: Iterable[Dict[str, Any]], **kwargs: Any) -> None:
        for element in elements:
            await self.send(self.prepare_message(recipient_id, dict(element)))


class TeamsInput(BotFrameworkInput):
    """Receives Teams activities on ``/webhooks/teams/webhook`` and hands messages to Rasa."""

    # None: Rasa's ``botframework.MICROSOFT_OPEN_ID_URI``, read at call time (tests patch it).
    open_id_uri: Optional[str] = None
    key_refresh_interval = datetime.timedelta(days=1)
    unknown_key_refresh_interval = datetime.timedelta(minutes=5)
    http_timeout: float = 10.0
    max_welcomed_conversations = 10_000

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "TeamsInput":
        """Values from credentials.yml win; empty or missing ones come from the settings."""
        credentials = credentials or {}
        settings = get_settings()
        app_id = str(credentials.get("app_id") or settings.teams_app_id or "")
        app_password = str(credentials.get("app_password") or settings.teams_app_password or "")
        if not app_id or not app_password:
            cls.raise_missing_credentials_exception()
        return cls(
            app_id,
            app_password,
            tenant_id=str(credentials.get("tenant_id") or settings.teams_tenant_id or ""),
            bot_name=str(credentials.get("bot_name") or settings.teams_bot_name or "Mentorwijzer"),
            # Only for national clouds and the integration tests' fake Bot Framework.
            open_id_uri=credentials.get("open_id_metadata_url") or None,
            oauth_base_url=credentials.get("oauth_base_url") or None,
        )

    def __init__(
        self,
        app_id: str,
        app_password: str,
        tenant_id: str = "",
        bot_name: str = "Mentorwijzer",
        open_id_uri: Optional[str] = None,
        oauth_base_url: Optional[str] = None,
    ) -> None:
        # No super().__init__(): upstream fetches the signing keys with blocking HTTP calls here;
        # this channel fetches them on the first request, asynchronously.
        self.app_id = app_id
        self.app_password = app_password
        self.tenant_id = tenant_id or ""
        self.bot_name = bot_name
        if open_id_uri:
            self.open_id_uri = open_id_uri
        self.oauth_base_url = oauth_base_url
        self.jwt_keys: Dict[str, Any] = {}
        self.jwt_update_time = datetime.datetime.fromtimestamp(0)
        self._keys_lock: Optional[asyncio.Lock] = None
        self._welcomed: "OrderedDict[str, None]" = OrderedDict()

    # --- incoming token validation -------------------------------------------------------------

    def _open_id_uri(self) -> str:
        return self.open_id_uri or botframework.MICROSOFT_OPEN_ID_URI

    async def _refresh_keys(self, min_age: datetime.timedelta) -> None:
        """Fetch the OpenID metadata and its JWKS unless the cached keys are younger than min_age."""
        if self._keys_lock is None:
            self._keys_lock = asyncio.Lock()
        async with self._keys_lock:
            if self.jwt_keys and datetime.datetime.now() - self.jwt_update_time < min_age:
                return
            timeout = aiohttp.ClientTimeout(total=self.http_timeout)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.get(self._open_id_uri()) as reply:
                        reply.raise_for_status()
                        jwks_uri = (await reply.json(content_type=None))["jwks_uri"]
                    async with session.get(jwks_uri) as reply:
                        reply.raise_for_status()
                        keys = (await reply.json(content_type=None))["keys"]
                self.jwt_keys = {key["kid"]: key for key in keys if "kid" in key}
                self.jwt_update_time = datetime.datetime.now()
                logger.debug("Teams signing keys updated (%d keys)", len(self.jwt_keys))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as error:
                logger.warning("Could not update Teams signing keys (%s)", type(error).__name__)

    async def _signing_key(self, key_id: str) -> Optional[Dict[str, Any]]:
        await self._refresh_keys(self.key_refresh_interval)
        if key_id not in self.jwt_keys:
            await self._refresh_keys(self.unknown_key_refresh_interval)  # keys may have rotated
        return self.jwt_keys.get(key_id)

    async def _verified_claims(self, auth_header: Optional[str], activity: Dict[str, Any]) -> Dict[str, Any]:
        """The token's claims if it was issued by Bot Framework for this bot and this activity."""
        match = BEARER_REGEX.match(auth_header or "")
        if not match:
            raise TeamsAuthError("no bearer token")
        token = match.group(1).strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TeamsAuthError("malformed token") from error
        if header.get("alg") not in ALLOWED_ALGORITHMS or not header.get("kid"):
            raise TeamsAuthError("unexpected token algorithm or key id")
        key = await self._signing_key(str(header["kid"]))
        if key is None:
            raise TeamsAuthError("unknown signing key")
        channel_id = activity.get("channelId")
        endorsements = key.get("endorsements")
        if channel_id and isinstance(endorsements, list) and channel_id not in endorsements:
            raise TeamsAuthError("signing key does not endorse the channel")
        try:
            claims = jwt.decode(
                token,
                key=RSAAlgorithm.from_jwk(json.dumps(key)),
                algorithms=ALLOWED_ALGORITHMS,
                audience=self.app_id,
                issuer=BOTFRAMEWORK_ISSUER,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise TeamsAuthError(type(error).__name__) from error
        if claims.get(SERVICE_URL_CLAIM) != activity.get("serviceUrl"):
            raise TeamsAuthError("serviceurl claim does not match the activity")
        return claims

    # --- activities ----------------------------------------------------------------------------

    def get_metadata(self, request: Request) -> Optional[Dict[str, Any]]:
        return {"channel": CHANNEL_NAME}

    @staticmethod
    def _directory_id(value: Any, what: str) -> str:
        """A tenant or AAD object id as the activity gives it, '' when absent; refused when not an id."""
        if value is None or value == "":
            return ""
        if not isinstance(value, str) or not DIRECTORY_ID.match(value.strip()):
            raise TeamsIdentityError(f"{what} is not an id")
        return value.strip()

    @classmethod
    def activity_tenant(cls, activity: Dict[str, Any]) -> str:
        """The activity's tenant (lower case, '' if none); ``conversation`` and ``channelData`` must agree."""
        conversation = activity.get("conversation")
        channel_data = activity.get("channelData")
        tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
        named = {
            cls._directory_id(conversation.get("tenantId") if isinstance(conversation, dict) else None, "tenant"),
            cls._directory_id(tenant.get("id") if isinstance(tenant, dict) else None, "tenant"),
        }
        named = {value.lower() for value in named if value}
        if len(named) > 1:
            raise TeamsIdentityError("conversation and channelData name different tenants")
        return named.pop() if named else ""

    @classmethod
    def sender_id(cls, activity: Dict[str, Any]) -> str:
        """``teams:<tenant>:<AAD object id>``: the same mentor in every Teams conversation, never the
        ``from.id`` a Direct Line client chooses. Only meaningful for an activity ``check_identity`` passed."""
        tenant = cls.activity_tenant(activity)
        sender = activity.get("from")
        aad_object_id = cls._directory_id(sender.get("aadObjectId") if isinstance(sender, dict) else None,
                                          "aadObjectId")
        if not tenant:
            raise TeamsIdentityError("activity without tenant")
        if not aad_object_id:
            raise TeamsIdentityError("message without aadObjectId")
        return teams_sender(tenant, aad_object_id)

    @staticmethod
    def message_text(activity: Dict[str, Any]) -> str:
        """The typed text without @mentions of the bot, or a button payload sent as value."""
        text = MENTION.sub("", activity.get("text") or "").strip()
        value = activity.get("value")
        if not text and isinstance(value, dict) and isinstance(value.get("payload"), str):
            text = value["payload"]
        return text

    @staticmethod
    def malformed(activity: Dict[str, Any]) -> Optional[str]:
        """Why the activity is not one this channel can answer, or None."""
        conversation = activity.get("conversation")
        recipient = activity.get("recipient")
        if not isinstance(conversation, dict) or not conversation.get("id"):
            return "Not a Bot Framework activity."
        if not isinstance(recipient, dict) or not recipient.get("id"):
            return "Not a Bot Framework activity."
        if activity.get("type") == "message":
            sender = activity.get("from")
            if not isinstance(sender, dict) or not sender.get("id"):
                return "Message without sender."
        return None

    def check_identity(self, activity: Dict[str, Any]) -> None:
        """Refuse (TeamsIdentityError) a signed activity that is not from Teams, not from this bot's
        tenant or, for a message, not from an AAD user."""
        channel_id = activity.get("channelId")
        if channel_id != TEAMS_CHANNEL_ID:
            shown = channel_id if isinstance(channel_id, str) and LOGGABLE_CHANNEL_ID.match(channel_id) else "?"
            raise TeamsIdentityError(f"channel {shown} is not {TEAMS_CHANNEL_ID}")
        tenant = self.activity_tenant(activity)
        if not tenant:
            raise TeamsIdentityError("activity without tenant")
        if self.tenant_id and tenant != self.tenant_id.strip().lower():
            raise TeamsIdentityError(f"activity from another tenant ({pseudonym(tenant)})")
        if activity.get("type") == "message":
            self.sender_id(activity)

    def output_channel(self, activity: Dict[str, Any]) -> TeamsOutput:
        return TeamsOutput(
            self.app_id,
            self.app_password,
            activity["conversation"],
            activity["recipient"],
            activity["serviceUrl"],
            user=activity["from"] if isinstance(activity.get("from"), dict) else None,
            tenant_id=self.tenant_id,
            oauth_base_url=self.oauth_base_url,
        )

    def _first_welcome(self, conversation_id: str) -> bool:
        if conversation_id in self._welcomed:
            return False
        self._welcomed[conversation_id] = None
        while len(self._welcomed) > self.max_welcomed_conversations:
            self._welcomed.popitem(last=False)
        return True

    async def _handle_conversation_update(self, activity: Dict[str, Any]) -> None:
        bot_id = (activity.get("recipient") or {}).get("id")
        added = [member.get("id") for member in activity.get("membersAdded") or [] if isinstance(member, dict)]
        if bot_id is None or bot_id not in added:
            return
        conversation_id = str(activity["conversation"]["id"])
        if not self._first_welcome(conversation_id):
            logger.debug("Teams bot re-added to conversation %s; no second welcome", pseudonym(conversation_id))
            return
        logger.info("Teams bot added to conversation %s; sending welcome", pseudonym(conversation_id))
        out = self.output_channel(activity)
        await out.send_text_message(str((activity.get("from") or {}).get("id", "")),
                                    WELCOME_TEXT.format(bot_name=self.bot_name))

    @classmethod
    def conversation_reference(cls, activity: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """How to reach this sender later without them writing first (bot/delivery.py): ids only, no
        names. None outside a personal chat: an answer meant for one mentor never goes to a group chat
        or channel. Only meaningful for an activity ``check_identity`` passed."""
        conversation = activity["conversation"]
        if conversation.get("conversationType") != "personal":
            return None
        sender = activity["from"]
        tenant = cls.activity_tenant(activity)
        reference_conversation = {"id": str(conversation["id"]), "conversationType": "personal"}
        if conversation.get("tenantId"):
            reference_conversation["tenantId"] = str(conversation["tenantId"])
        return {
            "serviceUrl": activity["serviceUrl"],
            "conversation": reference_conversation,
            "bot": {"id": str(activity["recipient"]["id"])},
            "user": {"id": str(sender["id"]), "aadObjectId": str(sender["aadObjectId"])},
            "tenantId": tenant,
        }

    async def _handle_message(
        self, activity: Dict[str, Any], request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> None:
        sender_id = self.sender_id(activity)
        metadata = self.add_attachments_to_metadata(activity, self.get_metadata(request))
        if activity.get("id"):  # the Bot Connector re-delivers with the same id: the scan ignores repeats
            metadata = {**(metadata or {}), "message_id": str(activity["id"])}
        reference = self.conversation_reference(activity)
        if reference is not None:
            metadata = {**(metadata or {}), "teams_reference": reference}
        logger.info("Teams message from %s", pseudonym(sender_id))
        output = self.output_channel(activity)
        await send_pending(output, sender_id, str(activity["id"])[:64] if activity.get("id") else None)
        await on_new_message(
            UserMessage(
                text=self.message_text(activity),
                output_channel=output,
                sender_id=sender_id,
                input_channel=self.name(),
                message_id=activity.get("id"),
                metadata=metadata,
            )
        )

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Health check on ``/`` and the Bot Framework messaging endpoint on ``/webhook``."""
        teams_webhook = Blueprint("teams_webhook", __name__)

        @teams_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @teams_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            refusal = body_refusal(request, get_settings().max_body_bytes)
            if refusal is not None:
                return refusal
            auth_header = request.headers.get("Authorization")
            if not auth_header:
                return response.text("No authorization header provided.", status=HTTPStatus.UNAUTHORIZED)
            try:
                activity = json.loads(request.body or b"null")
            except (ValueError, RecursionError):
                activity = None
            if not isinstance(activity, dict):
                activity = {}
            try:
                await self._verified_claims(auth_header, activity)
            except TeamsAuthError as error:
                logger.warning("Teams request rejected: %s", error)
                return response.text("Could not validate JWT token.", status=HTTPStatus.UNAUTHORIZED)

            problem = self.malformed(activity)
            if problem is not None:
                return response.text(problem, status=HTTPStatus.BAD_REQUEST)
            try:
                self.check_identity(activity)
            except TeamsIdentityError as error:
                logger.warning("Teams activity refused: %s", error)
                return response.text("Only Microsoft Teams users of this tenant may use this bot.",
                                     status=HTTPStatus.FORBIDDEN)

            kind = activity.get("type")
            try:
                if kind == "message":
                    await self._handle_message(activity, request, on_new_message)
                elif kind == "conversationUpdate":
                    await self._handle_conversation_update(activity)
                else:
                    logger.debug("Teams activity of type %s ignored", kind)
            except Exception as error:  # one bad turn must not make the connector resend the activity
                logger.error("Teams activity (%s) could not be handled: %s", kind, type(error).__name__)
                logger.debug("Teams handler error", exc_info=True)
            return response.text("success")

        return teams_webhook
