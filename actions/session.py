"""Session start: carry slots over and, at the very first contact only, say that this is an
automated assistant and what it stores (EU AI Act art. 50 transparency)."""
from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import channel_of
from bot import privacy


def _after_deletion(tracker: Tracker) -> bool:
    """True when this session starts because the mentor just had all their data deleted (the delete
    action ends with a restart): then nobody is registered again until they write to us."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "action" and event.get("name") == "action_delete_my_data":
            return True
    return False


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        carried = ("questionnaire", "last_entry")
        events.extend(SlotSet(name, tracker.get_slot(name)) for name in carried if tracker.get_slot(name) is not None)
        if privacy.first_contact(tracker.sender_id, channel_of(tracker), register=not _after_deletion(tracker)):
            dispatcher.utter_message(response="utter_first_contact")
        events.append(ActionExecuted("action_listen"))
        return events
