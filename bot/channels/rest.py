"""REST channel: Rasa's ``rest`` channel with request validation and without message text in logs.

Register it in ``credentials.yml`` instead of ``rest:`` (no configuration)::

    bot.channels.rest.RestInput:

The name stays ``rest``, so clients keep posting ``{"sender": "...", "message": "..."}`` to
``/webhooks/rest/webhook`` (``?stream=true`` streams the replies as with Rasa's channel).

What differs from ``rasa.core.channels.rest`` (Rasa 3.6):

* **who may speak for whom**: ids of an authenticated channel (``tg-<id>``, ``teams:...``; see
  bot/identity.py) are accepted only with the channel secret in the ``X-Mentorwijzer-Channel-Secret``
  header (the Telegram bridge sends it; compared in constant time), otherwise **403**. Without the
  secret, plain ids keep working (terminal, tests, scripts), but the request cannot claim another
  channel: ``metadata.channel`` and ``input_channel`` are forced to ``rest``;
* only ``application/json`` bodies (**415** otherwise: a web page cannot post a "simple" cross-site
  request), at most ``MENTORWIJZER_MAX_BODY_BYTES`` (**413**);
* a body that is not a JSON object, or has a missing or empty ``sender``, a ``sender`` longer than
  255 characters, a ``message`` that is not a string (``""`` is fine and reaches Rasa as before), or a
  ``metadata`` or ``input_channel`` of the wrong type gets **400** with ``{"error": <code>, "detail":
  ...}`` instead of a 500 (or, for a missing sender, a message in the shared ``default`` conversation);
* a message whose handling fails is logged with a keyed pseudonym of the sender and the error type,
  never its text (upstream logs the text); a failure while streaming ends the stream instead of
  hanging it;
* messages waiting for the sender in the outbox (bot/delivery.py: a person's answer, a reminder)
  come first, before Rasa's reply (also in a stream).
"""
from __future__ import annotations

import asyncio
import json
import logging
from asyncio import CancelledError, Queue
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, Optional, Union

import rasa.utils.endpoints
from rasa.core.channels import rest as rasa_rest
from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse, ResponseStream

from bot import delivery, identity, keys, rasa_speedups
from bot.settings import get_settings

rasa_speedups.install()  # every Rasa process of ours loads this channel

logger = logging.getLogger(__name__)

# Rasa's SQL tracker store and identities.sender_id are VARCHAR(255); longer ids fail on PostgreSQL.
MAX_SENDER_LENGTH = 255


class InvalidRequest(Exception):
    """The request is not a REST channel message; ``code`` names the reason for the client."""

    def __init__(self, code: str, detail: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


def check_transport(request: Request, max_bytes: int) -> None:
    """JSON only, and not too large (declared or received): raised before the body is parsed.
    Every channel applies it (bot/channels/teams.py too), each answering in its own format."""
    declared = (request.headers.get("Content-Length") or "").strip()
    too_long = declared.isdigit() and (len(declared) > 18 or int(declared) > max_bytes)
    if too_long or len(request.body or b"") > max_bytes:
        raise InvalidRequest("too_large", f"The body may be at most {max_bytes} bytes.",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    content_type = request.headers.get("Content-Type") or ""
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise InvalidRequest("unsupported_media_type", "Send the body as application/json.",
                             HTTPStatus.UNSUPPORTED_MEDIA_TYPE)


def check_sender_proof(body: Dict[str, Any], given_secret: Optional[str], channel_secret: Optional[str]) -> bool:
    """True when the request proved to come from one of our channel bridges.

    A protected sender id without that proof is refused; an unproven request is pinned to ``rest``.
    """
    if given_secret is not None:
        if not keys.matches(given_secret, channel_secret):
            raise InvalidRequest("forbidden", "Wrong channel secret.", HTTPStatus.FORBIDDEN)
        return True
    if identity.is_protected(body["sender"]):
        raise InvalidRequest("forbidden", "This sender id belongs to another channel.", HTTPStatus.FORBIDDEN)
    body["input_channel"] = None
    body["metadata"] = {**(body.get("metadata") or {}), "channel": identity.REST}
    return False


def parse_body(raw: bytes) -> Dict[str, Any]:
    """The validated JSON object of a request, or InvalidRequest saying what is wrong with it."""
    try:
        body = json.loads(raw or b"")
    except (ValueError, RecursionError):  # also invalid UTF-8 and absurdly deep nesting
        raise InvalidRequest("invalid_json", "The body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("not_an_object", 'The body must be a JSON object: {"sender": ..., "message": ...}.')
    sender = body.get("sender")
    if not isinstance(sender, str) or not sender.strip():
        raise InvalidRequest("invalid_sender", "'sender' must be a non-empty string.")
    if len(sender) > MAX_SENDER_LENGTH:
        raise InvalidRequest("invalid_sender", f"'sender' may be at most {MAX_SENDER_LENGTH} characters.")
    if not isinstance(body.get("message"), str):
        raise InvalidRequest("invalid_message", "'message' must be a string.")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise InvalidRequest("invalid_metadata", "'metadata' must be a JSON object.")
    if body.get("input_channel") is not None and not isinstance(body["input_channel"], str):
        raise InvalidRequest("invalid_input_channel", "'input_channel' must be a string.")
    return body


class RestInput(rasa_rest.RestInput):
    """Receives ``{"sender", "message", "metadata"}`` on ``/webhooks/rest/webhook``; rejects anything else."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    @staticmethod
    async def on_message_wrapper(
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        text: str,
        queue: Queue,
        sender_id: str,
        input_channel: str,
        metadata: Optional[Dict[str, Any]],
    ) -> None:
        """Streaming: hand the message to Rasa; the stream always ends, also when handling fails."""
        collector = rasa_rest.QueueOutputChannel(queue)
        message = UserMessage(text, collector, sender_id, input_channel=input_channel, metadata=metadata)
        try:
            await _handle(on_new_message, message)
        finally:
            await queue.put("DONE")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        """Health check on ``/`` and the validated message endpoint on ``/webhook``."""
        custom_webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)
        channel_secret = keys.get(keys.CHANNEL_SECRET)  # once, not a file read per message

        @custom_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @custom_webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> Union[ResponseStream, HTTPResponse]:
            try:
                check_transport(request, get_settings().max_body_bytes)
                body = parse_body(request.body)
                check_sender_proof(body, request.headers.get(keys.CHANNEL_SECRET_HEADER), channel_secret)
            except InvalidRequest as error:
                logger.info("REST request rejected: %s", error.code)
                return response.json({"error": error.code, "detail": error.detail}, status=error.status)
            request.parsed_json = body  # upstream's _extract_* helpers read the validated body

            sender_id = await self._extract_sender(request)
            text = self._extract_message(request)
            input_channel = self._extract_input_channel(request)
            metadata = self.get_metadata(request)
            if rasa.utils.endpoints.bool_arg(request, "stream", default=False):
                return response.stream(
                    self.stream_response(on_new_message, text, sender_id, input_channel, metadata),
                    content_type="text/event-stream",
                )
            collector = CollectingOutputChannel()
            await _handle(
                on_new_message,
                UserMessage(text, collector, sender_id, input_channel=input_channel, metadata=metadata),
            )
            return response.json(collector.messages)

        return custom_webhook


async def send_pending(output: OutputChannel, sender_id: str, message_id: Optional[str] = None) -> None:
    """Send what waits in the outbox for this sender (bot/delivery.py: an answer from a person, a
    reminder) before the reply to their message; a re-sent message (same ``message_id``) gets it again.
    Never stops the message itself: a failure is logged by type and the message goes on to Rasa."""
    try:
        messages = await asyncio.to_thread(delivery.take_for_next_message, sender_id, message_id)
    except Exception as error:  # noqa: BLE001 - the database is down or locked: answer anyway
        logger.error("outbox.take.failure sender=%s error=%s", identity.pseudonym(sender_id), type(error).__name__)
        return
    for message in messages:
        message = {key: value for key, value in message.items() if value}  # no empty button list
        try:
            await output.send_response(sender_id, message)
        except Exception as error:  # noqa: BLE001
            logger.error("outbox.send.failure sender=%s error=%s", identity.pseudonym(sender_id),
                         type(error).__name__)


async def _handle(on_new_message: Callable[[UserMessage], Awaitable[Any]], message: UserMessage) -> None:
    """Let Rasa handle one message, after the sender's waiting outbox messages; a failure is logged
    without the text and the client gets what was collected (as upstream, which answers 200 with
    the replies so far)."""
    metadata = message.metadata if isinstance(message.metadata, dict) else {}
    message_id = str(metadata["message_id"])[:64] if metadata.get("message_id") else None
    await send_pending(message.output_channel, message.sender_id, message_id)
    try:
        await on_new_message(message)
    except CancelledError:
        logger.error("rest.message.received.timeout sender=%s", identity.pseudonym(message.sender_id))
    except Exception as error:
        logger.error("rest.message.received.failure sender=%s error=%s", identity.pseudonym(message.sender_id),
                     type(error).__name__)
        logger.debug("REST handler error", exc_info=True)  # tracebacks may quote the text: DEBUG only
