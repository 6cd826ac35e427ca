"""Small helpers shared by the action adapters: who is talking, on which channel, and sending
the channel-neutral messages that bot/ returns."""
from __future__ import annotations

from typing import Iterable, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from bot.qa import Message


def channel_of(tracker: Tracker) -> str:
    """The channel a mentor uses; bridges over REST (Telegram) say so in the message metadata."""
    channel = None
    for metadata in (tracker.latest_message.get("metadata"), tracker.get_slot("session_started_metadata")):
        if isinstance(metadata, dict) and metadata.get("channel"):
            channel = metadata["channel"]
            break
    return str(channel or tracker.get_latest_input_channel() or "rest")[:32]


def message_id_of(tracker: Tracker) -> Optional[str]:
    """The channel's id of the latest message (metadata.message_id), to recognise re-deliveries."""
    metadata = tracker.latest_message.get("metadata") or {}
    value = metadata.get("message_id") if isinstance(metadata, dict) else None
    return str(value)[:64] if value else None


def entity(tracker: Tracker, name: str) -> Optional[str]:
    return next(tracker.get_latest_entity_values(name), None)


def latest_intent(tracker: Tracker) -> Optional[str]:
    return (tracker.latest_message.get("intent") or {}).get("name")


def latest_text(tracker: Tracker) -> str:
    return tracker.latest_message.get("text") or ""


def buttons(pairs: Iterable[tuple[str, str]]) -> list[dict]:
    return [{"title": title, "payload": payload} for title, payload in pairs]


def send(dispatcher: CollectingDispatcher, messages: Iterable[Message]) -> None:
    for message in messages:
        kwargs = {}
        if message.buttons:
            kwargs["buttons"] = buttons(message.buttons)
        if message.image:
            kwargs["image"] = message.image
        dispatcher.utter_message(text=message.text or None, **kwargs)


# A conversation of only questions would otherwise grow one session without end: Rasa loads, replays
# and sends every event of the session on every turn, so turn 150 cost three times turn 10
# (docs/performance.md). About 25 questions fill this many events.
MAX_SESSION_EVENTS = 150


def fresh_session_when_long(tracker: Tracker) -> list:
    """A new session after this turn once the current one holds MAX_SESSION_EVENTS events, as the scan
    does after its last answer. Every rule looks only at the last turn, and what follow-ups need
    (last_entry, questionnaire) is carried over by action_session_start; never while a loop (scan,
    free text) is active, since a new session would end it."""
    if tracker.active_loop_name or len(tracker.events) < MAX_SESSION_EVENTS:
        return []
    return [FollowupAction("action_session_start")]
