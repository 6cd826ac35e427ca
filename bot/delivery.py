"""Proactive messages (issue 16): the outbox of people in the loop, delivered at most once per row.

A row (``storage.OutboxMessage``) is written with :func:`enqueue` in the same transaction as the fact
it announces (an answer, a forwarded question, a reminder). Then:

* :func:`flush` (or :func:`flush_soon` after the commit) sends pending ``telegram``, ``teams`` and
  ``email`` rows: Telegram through python-telegram-bot (a private chat's id is the user id of
  ``tg-<id>``), Teams to the conversation reference saved from the mentor's last Teams message
  (:func:`save_reference`), e-mail over SMTP (``MENTORWIJZER_SMTP_*``);
* :func:`take_for_next_message` hands every pending chat row of a sender (``rest`` rows only this
  way, and Telegram/Teams rows that could not be sent) to the channel, which shows them before the
  reply to the sender's next message (bot/channels/rest.py, bot/channels/teams.py).

Each row is claimed with a conditional UPDATE before it is sent, so two processes never both send
it; a claim older than ``CLAIM_TIMEOUT`` (a sender that died) may be taken over. A failed send keeps
the row pending (``last_error``: an exception type or HTTP status, never content) until
``MAX_ATTEMPTS``. Logs carry row ids, channels, kinds and keyed pseudonyms only.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot import identity, storage
from bot.settings import Settings, get_settings

logger = logging.getLogger(__name__)

TELEGRAM, TEAMS, REST, EMAIL = identity.TELEGRAM, identity.TEAMS, identity.REST, "email"
CHAT_CHANNELS = (TELEGRAM, TEAMS, REST)
PROACTIVE_CHANNELS = (TELEGRAM, TEAMS, EMAIL)
CLAIM_TIMEOUT = timedelta(minutes=5)
MAX_ATTEMPTS = 10
SMTP_TIMEOUT_SECONDS = 30
DEFAULT_SUBJECT = "Bericht van Mentorwijzer"
TELEGRAM_SENDER = re.compile(r"tg-(\d{1,20})")
SERVICE_URL = re.compile(r"https?://\S+", re.IGNORECASE)
EMAIL_ADDRESS = re.compile(r"[^\x00-\x1f\x7f]+@[^\x00-\x1f\x7f]+")  # no line breaks: no header injection
MAX_REFERENCE_FIELD = 512

# Notices about a channel that is not configured: once per process, not once per flush.
_noticed: set[str] = set()
# flush_soon's running task per event loop, and whether another flush was asked for meanwhile.
_running: dict[int, asyncio.Task] = {}
_again: dict[int, bool] = {}


class DeliveryError(Exception):
    """A send that did not arrive; ``str()`` is what ``last_error`` records (an HTTP status or a type)."""


# --- writing ------------------------------------------------------------------------------


def channel_for(sender_id: Optional[str]) -> str:
    """``telegram`` for ``tg-<id>``, ``teams`` for ``teams:...``, else ``rest`` (only next-message delivery)."""
    sender = (sender_id or "").strip().lower()
    if sender.startswith(identity.TELEGRAM_PREFIX):
        return TELEGRAM
    if sender.startswith(identity.TEAMS_PREFIX):
        return TEAMS
    return REST


def _buttons_json(buttons: Optional[list[tuple[str, str]]]) -> Optional[str]:
    if not buttons:
        return None
    rows = []
    for button in buttons:
        title, payload = button
        if not isinstance(title, str) or not isinstance(payload, str) or not title.strip() or not payload.strip():
            raise ValueError("a button is a (title, payload) pair of non-empty strings")
        rows.append({"title": title, "payload": payload})
    return json.dumps(rows, ensure_ascii=False)


def enqueue(session, *, kind: str, text: str, sender_id: Optional[str] = None, mentor_id: Optional[str] = None,
            channel: Optional[str] = None, buttons: Optional[list[tuple[str, str]]] = None,
            question_id: Optional[int] = None, email_to: Optional[str] = None,
            subject: Optional[str] = None) -> storage.OutboxMessage:
    """Add a message to the outbox in the caller's transaction; delivered after the commit (flush_soon).

    ``channel`` defaults to ``email`` with ``email_to``, else to :func:`channel_for` the sender. A chat
    row without ``mentor_id`` gets the mentor of ``sender_id`` (so it is deleted with them).
    """
    if not isinstance(kind, str) or not kind.strip() or len(kind) > 32:
        raise ValueError("kind must be a short non-empty string")
    if not isinstance(text, str) or not (text.strip() or buttons):
        raise ValueError("a message needs text (or buttons)")
    channel = channel or (EMAIL if email_to else channel_for(sender_id))
    if channel not in CHAT_CHANNELS + (EMAIL,):
        raise ValueError(f"unknown channel {channel!r}")
    if channel == EMAIL:
        email_to = (email_to or "").strip()
        if not EMAIL_ADDRESS.fullmatch(email_to) or len(email_to) > 200:
            raise ValueError("an e-mail row needs one valid address in email_to")
        subject = " ".join((subject or DEFAULT_SUBJECT).split())[:200]  # no line breaks in a header
        if buttons:
            raise ValueError("e-mail has no buttons")
    else:
        if not sender_id:
            raise ValueError("a chat row needs sender_id")
        if channel in (TELEGRAM, TEAMS) and channel_for(sender_id) != channel:
            raise ValueError(f"{channel} can only reach its own senders")
        if mentor_id is None:
            known = session.get(storage.Identity, sender_id)
            mentor_id = known.mentor_id if known is not None else None
    row = storage.OutboxMessage(
        mentor_id=mentor_id,
        sender_id=sender_id,
        email_to=email_to if channel == EMAIL else None,
        channel=channel,
        kind=kind,
        question_id=question_id,
        subject=subject if channel == EMAIL else None,
        text=text,
        buttons=_buttons_json(buttons),
        created_at=storage.utcnow(),
        attempts=0,
    )
    session.add(row)
    session.flush()
    logger.info("outbox: %s message %d (%s) queued", channel, row.id, kind)
    return row


# --- conversation references -----------------------------------------------------------------


def _short_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value.strip() and len(value) <= MAX_REFERENCE_FIELD else None


def _clean_reference(sender_id: str, raw: Any) -> Optional[dict]:
    """The ids of a Teams conversation reference (nothing else), or None when it is not one of this sender."""
    if not isinstance(raw, dict):
        return None
    service_url = _short_str(raw.get("serviceUrl"))
    conversation = raw.get("conversation") if isinstance(raw.get("conversation"), dict) else {}
    conversation_id = _short_str(conversation.get("id"))
    if service_url is None or not SERVICE_URL.fullmatch(service_url) or conversation_id is None:
        return None
    if conversation.get("conversationType", "personal") != "personal":
        return None  # a group chat or channel: a mentor's messages never go there
    bot = raw.get("bot") if isinstance(raw.get("bot"), dict) else {}
    user = raw.get("user") if isinstance(raw.get("user"), dict) else {}
    if _short_str(bot.get("id")) is None or _short_str(user.get("id")) is None:
        return None
    tenant_id = _short_str(raw.get("tenantId")) or _short_str(conversation.get("tenantId"))
    aad_object_id = _short_str(user.get("aadObjectId"))
    if tenant_id and aad_object_id and identity.teams_sender(tenant_id, aad_object_id) != sender_id.strip().lower():
        return None  # another user's conversation: never store it under this sender
    reference: dict[str, Any] = {
        "serviceUrl": service_url,
        "conversation": {"id": conversation_id, "conversationType": "personal"},
        "bot": {"id": bot["id"]},
        "user": {"id": user["id"]},
    }
    if _short_str(conversation.get("tenantId")):
        reference["conversation"]["tenantId"] = conversation["tenantId"]
    if aad_object_id:
        reference["user"]["aadObjectId"] = aad_object_id
    if tenant_id:
        reference["tenantId"] = tenant_id
    return reference


def remember_sender(sender_id: str, metadata: Optional[dict]) -> bool:
    """``save_reference`` for a sender we already know (a mentor or a linked staff member): keeps
    their Teams conversation reference fresh, so a later proactive message reaches them."""
    with storage.session_scope() as session:
        identity = session.get(storage.Identity, sender_id)
        mentor_id = identity.mentor_id if identity is not None else None
    return mentor_id is not None and save_reference(sender_id, mentor_id, metadata)


def save_reference(sender_id: str, mentor_id: str, metadata: Optional[dict]) -> bool:
    """Store (or update) how to reach a Teams sender later, from ``metadata["teams_reference"]``.

    True if a reference was stored or already current; False when the metadata carries none (other
    channels: Telegram needs none) or an invalid one, which is ignored.
    """
    if not sender_id or not mentor_id or channel_for(sender_id) != TEAMS or not isinstance(metadata, dict):
        return False
    reference = _clean_reference(sender_id, metadata.get("teams_reference"))
    if reference is None:
        if "teams_reference" in metadata:
            logger.info("invalid Teams conversation reference of %s ignored", identity.pseudonym(sender_id))
        return False
    encoded = json.dumps(reference, sort_keys=True)
    for attempt in (1, 2):
        try:
            with storage.session_scope() as session:
                row = session.get(storage.ConversationRef, sender_id)
                if row is None:
                    session.add(storage.ConversationRef(sender_id=sender_id, mentor_id=mentor_id, channel=TEAMS,
                                                        reference=encoded, updated_at=storage.utcnow()))
                elif row.reference != encoded or row.mentor_id != mentor_id:
                    row.reference, row.mentor_id, row.updated_at = encoded, mentor_id, storage.utcnow()
            return True
        except IntegrityError as error:  # inserted concurrently: the second try updates
            if attempt == 2:
                logger.warning("Teams conversation reference not stored (%s)", type(error).__name__)
        except Exception as error:  # noqa: BLE001 - never break the conversation over a reference
            logger.warning("Teams conversation reference not stored (%s)", type(error).__name__)
            return False
    return False


# --- claiming -------------------------------------------------------------------------------


def _claimable(now):
    return (storage.OutboxMessage.delivered_at.is_(None)
            & (storage.OutboxMessage.claimed_at.is_(None) | (storage.OutboxMessage.claimed_at < now - CLAIM_TIMEOUT)))


def _claim(row_ids: list[int], deliver: bool = False, handed_out_with: Optional[str] = None) -> set[int]:
    """Claim rows (with ``deliver`` also mark them delivered) in one transaction: the ids this caller got.

    One conditional UPDATE per row: a row another caller claimed first matches no longer (rowcount 0).
    """
    now = storage.utcnow()
    values: dict[str, Any] = {"claimed_at": now}
    if deliver:
        values["delivered_at"] = now
        values["handed_out_with"] = handed_out_with
    claimed = set()
    with storage.session_scope() as session:
        for row_id in row_ids:
            result = session.execute(
                update(storage.OutboxMessage)
                .where(storage.OutboxMessage.id == row_id, _claimable(now))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                claimed.add(row_id)
    return claimed


def _finish(row_id: int, error: Optional[str]) -> None:
    """Record the outcome of a claimed row: delivered, or pending again with the error and one more attempt."""
    with storage.session_scope() as session:
        statement = update(storage.OutboxMessage).where(storage.OutboxMessage.id == row_id)
        if error is None:
            statement = statement.values(delivered_at=storage.utcnow(), last_error=None)
        else:
            statement = statement.values(claimed_at=None, last_error=error[:64],
                                         attempts=storage.OutboxMessage.attempts + 1)
        session.execute(statement.execution_options(synchronize_session=False))


def _message(row: storage.OutboxMessage) -> dict:
    try:
        buttons = json.loads(row.buttons) if row.buttons else []
    except ValueError:
        buttons = []
    buttons = [{"title": str(b.get("title")), "payload": str(b.get("payload"))}
               for b in buttons if isinstance(b, dict) and b.get("payload")]
    return {"text": row.text or "", "buttons": buttons}


def take_for_next_message(sender_id: str, message_id: Optional[str] = None) -> list[dict]:
    """Claim and mark delivered every pending chat row of this sender; Rasa-style messages, oldest first.

    For the channel that is about to answer the sender: it shows them before its reply. With the
    channel's ``message_id``, the rows remember it: when the same message arrives again (the client
    re-sends because the reply was lost to a timeout or a crashed server), they go out again with it,
    so a lost reply loses no answer. A client without message ids gets each row once.
    """
    if not sender_id:
        return []
    now = storage.utcnow()
    condition = _claimable(now)
    if message_id:
        condition = condition | (storage.OutboxMessage.handed_out_with == message_id)
    with storage.session_scope() as session:
        rows = list(session.execute(
            select(storage.OutboxMessage)
            .where(storage.OutboxMessage.sender_id == sender_id,
                   storage.OutboxMessage.channel.in_(CHAT_CHANNELS), condition)
            .order_by(storage.OutboxMessage.created_at, storage.OutboxMessage.id)
        ).scalars())
    again = {row.id for row in rows if message_id and row.handed_out_with == message_id and row.delivered_at}
    fresh = [row.id for row in rows if row.id not in again]
    claimed = (_claim(fresh, deliver=True, handed_out_with=message_id) if fresh else set()) | again
    taken = [row for row in rows if row.id in claimed]
    if taken:
        logger.info("outbox: %d message(s) for %s delivered with the reply", len(taken), identity.pseudonym(sender_id))
    return [_message(row) for row in taken]


# --- sending --------------------------------------------------------------------------------


@dataclass
class _Context:
    """What one flush shares between rows: settings, an open Telegram bot, the references it read."""

    settings: Settings
    telegram_bot: Any = None
    callback_store: Any = None


def _notice_once(key: str, text: str) -> None:
    if key not in _noticed:
        _noticed.add(key)
        logger.info(text)


def _reference_for(sender_id: str) -> Optional[dict]:
    with storage.session_scope() as session:
        row = session.get(storage.ConversationRef, sender_id)
        if row is None or row.channel != TEAMS:
            return None
        try:
            reference = json.loads(row.reference)
        except ValueError:
            return None
    return _clean_reference(sender_id, reference)


async def _send_telegram(row: storage.OutboxMessage, context: _Context) -> None:
    from bot.channels.telegram import MAX_CALLBACK_DATA, call_with_retry, render

    chat_id = int(TELEGRAM_SENDER.fullmatch(row.sender_id or "").group(1))
    message = _message(row)
    if any(len(b["payload"].encode("utf-8")) > MAX_CALLBACK_DATA for b in message["buttons"]):
        # Kept in this process's CallbackStore only: the bridge will call the button expired.
        logger.warning("outbox: telegram message %d has a button payload over %d bytes", row.id, MAX_CALLBACK_DATA)
    sent = 0
    try:
        for outgoing in render(message, context.callback_store):
            await call_with_retry(getattr(context.telegram_bot, outgoing.method), chat_id=chat_id, **outgoing.kwargs)
            sent += 1
    except Exception:
        if sent == 0:
            raise
        # Part of a long message arrived: sending it again would repeat that part (at most once).
        logger.warning("outbox: telegram message %d arrived only in part", row.id)


async def _send_teams(row: storage.OutboxMessage, context: _Context, reference: dict) -> None:
    from bot.channels.teams import TeamsOutput

    settings = context.settings
    out = TeamsOutput(
        settings.teams_app_id,
        settings.teams_app_password,
        reference["conversation"],
        reference["bot"],
        reference["serviceUrl"],
        user=reference["user"],
        tenant_id=settings.teams_tenant_id,
    )
    message = _message(row)
    recipient = reference["user"]["id"]
    if message["buttons"]:
        delivered = await out.send_text_with_buttons(recipient, message["text"], message["buttons"])
    else:
        delivered = await out.send_text_message(recipient, message["text"])
    if not delivered:
        status = getattr(out, "last_status", None)
        raise DeliveryError(f"HTTP {status}" if status else "TeamsNotDelivered")


def _smtp_send(settings: Settings, row: storage.OutboxMessage) -> None:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = row.email_to
    message["Subject"] = row.subject or DEFAULT_SUBJECT
    message.set_content(row.text, charset="utf-8", cte="quoted-printable")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


async def _send_email(row: storage.OutboxMessage, context: _Context) -> None:
    await asyncio.to_thread(_smtp_send, context.settings, row)


def _error_text(error: BaseException) -> str:
    if isinstance(error, DeliveryError):
        return str(error) or "DeliveryError"
    return type(error).__name__


def _pending_rows(limit: int) -> list[storage.OutboxMessage]:
    now = storage.utcnow()
    with storage.session_scope() as session:
        return list(session.execute(
            select(storage.OutboxMessage)
            .where(storage.OutboxMessage.channel.in_(PROACTIVE_CHANNELS),
                   storage.OutboxMessage.attempts < MAX_ATTEMPTS, _claimable(now))
            .order_by(storage.OutboxMessage.id)
            .limit(limit)
        ).scalars())


def _skip_reason(row: storage.OutboxMessage, settings: Settings) -> Optional[str]:
    """Why this row cannot be sent now (it stays pending), or None."""
    if row.channel == EMAIL and not settings.smtp_host:
        _notice_once(EMAIL, "e-mail off (MENTORWIJZER_SMTP_HOST not set): e-mail messages stay in the outbox")
        return "email off"
    if row.channel == TELEGRAM:
        if not settings.telegram_token:
            _notice_once(TELEGRAM, "Telegram off (TELEGRAM_BOT_TOKEN not set): Telegram messages wait for "
                                   "the mentor's next message")
            return "telegram off"
        if not TELEGRAM_SENDER.fullmatch(row.sender_id or ""):
            return "not a telegram sender"
    if row.channel == TEAMS and not (settings.teams_app_id and settings.teams_app_password):
        _notice_once(TEAMS, "Teams off (MICROSOFT_APP_ID / MICROSOFT_APP_PASSWORD not set): Teams messages "
                            "wait for the mentor's next message")
        return "teams off"
    return None


async def flush(limit: int = 200) -> dict:
    """Send pending Telegram, Teams and e-mail rows (at most ``limit``); counts delivered/failed/skipped.

    Skipped rows stay pending: their channel is not configured, a Teams sender has no conversation
    reference yet (the row then comes with their next message), or another sender claimed them first.
    """
    counts = {"delivered": 0, "failed": 0, "skipped": 0}
    settings = get_settings()
    rows = await asyncio.to_thread(_pending_rows, limit)
    sendable = []
    for row in rows:
        if _skip_reason(row, settings) is None:
            sendable.append(row)
        else:
            counts["skipped"] += 1
    if not sendable:
        return counts
    context = _Context(settings)
    bot = None
    if any(row.channel == TELEGRAM for row in sendable):
        import telegram

        from bot.channels.telegram import CallbackStore

        # httpx logs request URLs, which carry the bot token; PTB's DEBUG output carries whole messages
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)
        logging.getLogger("telegram").setLevel(logging.INFO)
        bot = telegram.Bot(settings.telegram_token, base_url=settings.telegram_base_url)
        context.callback_store = CallbackStore()
    try:
        if bot is not None:
            try:
                await bot.initialize()
                context.telegram_bot = bot
            except Exception as error:  # noqa: BLE001 - Telegram unreachable: its rows stay pending
                logger.warning("outbox: Telegram unavailable (%s)", type(error).__name__)
        for row in sendable:
            outcome = await _deliver(row, context)
            counts[outcome] += 1
    finally:
        if context.telegram_bot is not None:
            try:
                await bot.shutdown()
            except Exception as error:  # noqa: BLE001
                logger.debug("Telegram bot shutdown failed (%s)", type(error).__name__)
    if counts["delivered"] or counts["failed"]:
        logger.info("outbox flush: %(delivered)d delivered, %(failed)d failed, %(skipped)d skipped", counts)
    return counts


async def _deliver(row: storage.OutboxMessage, context: _Context) -> str:
    """Claim, send and record one row; returns the counter it belongs to."""
    reference = None
    if row.channel == TEAMS:
        reference = await asyncio.to_thread(_reference_for, row.sender_id or "")
        if reference is None:
            return "skipped"  # no way to reach them yet: comes with their next message
    if row.channel == TELEGRAM and context.telegram_bot is None:
        return "skipped"
    if not await asyncio.to_thread(_claim, [row.id]):
        return "skipped"  # someone else is sending it
    error: Optional[str] = None
    try:
        if row.channel == TELEGRAM:
            await _send_telegram(row, context)
        elif row.channel == TEAMS:
            await _send_teams(row, context, reference)
        else:
            await _send_email(row, context)
    except asyncio.CancelledError:
        await asyncio.shield(asyncio.to_thread(_finish, row.id, "CancelledError"))
        raise
    except Exception as exc:  # noqa: BLE001 - any failure keeps the row pending
        error = _error_text(exc)
    await asyncio.to_thread(_finish, row.id, error)
    who = identity.pseudonym(row.sender_id) if row.sender_id else "e-mail"
    if error is None:
        logger.info("outbox: %s message %d (%s) delivered to %s", row.channel, row.id, row.kind, who)
        return "delivered"
    logger.warning("outbox: %s message %d (%s) to %s failed (%s), attempt %d of %d", row.channel, row.id,
                   row.kind, who, error, (row.attempts or 0) + 1, MAX_ATTEMPTS)
    return "failed"


async def _flush_in_background(loop_id: int) -> None:
    try:
        while True:
            _again[loop_id] = False
            try:
                await flush()
            except Exception as error:  # noqa: BLE001 - fire and forget: never an unhandled task error
                logger.error("outbox flush failed: %s", type(error).__name__)
            if not _again.get(loop_id):
                break
    finally:
        _running.pop(loop_id, None)
        _again.pop(loop_id, None)


def flush_soon() -> None:
    """Flush in the background of the running event loop (call it after the commit); no loop: nothing.

    While a flush runs, further calls make it run once more instead of starting another.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop_id = id(loop)
    task = _running.get(loop_id)
    if task is not None and task.get_loop() is loop and not task.done():
        _again[loop_id] = True
        return
    _running[loop_id] = loop.create_task(_flush_in_background(loop_id))
