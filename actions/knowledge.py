"""Rasa adapters for knowledge questions; all decisions live in bot.qa."""
from __future__ import annotations

from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import buttons, channel_of, entity, fresh_session_when_long, latest_intent, latest_text, send
from bot import qa, scan, usage


class ActionAnswerQuestion(Action):
    def name(self) -> str:
        return "action_answer_question"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        reply = qa.answer_question(
            latest_text(tracker),
            intent=latest_intent(tracker),
            roles=list(tracker.get_latest_entity_values("role")),
            phases=list(tracker.get_latest_entity_values("study_phase")),
            sender_id=tracker.sender_id,
            entry_id=entity(tracker, "kb_entry"),
        )
        send(dispatcher, reply.messages)
        _log_usage(reply)
        remembered = [SlotSet("last_entry", reply.entry_id)] if reply.entry_id else []
        return remembered + fresh_session_when_long(tracker)


def _log_usage(reply: qa.Reply) -> None:
    """Anonymous counts for the partnership's insights: which entry, or which topic went unanswered."""
    usage.record(reply.entry_id, reply.outcome, reply.partnership, usage.topic_of(reply.entry_id or reply.best_guess))


def _answered_as_question(dispatcher: CollectingDispatcher, tracker: Tracker) -> Optional[list]:
    """A full question misfiled under a follow-up intent is answered from the knowledge base."""
    reply = qa.answer_instead_of_follow_up(latest_intent(tracker), latest_text(tracker), tracker.sender_id)
    if reply is None:
        return None
    send(dispatcher, reply.messages)
    return [SlotSet("last_entry", reply.entry_id)]


class ActionMore(Action):
    def name(self) -> str:
        return "action_more"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        answered = _answered_as_question(dispatcher, tracker)
        if answered is not None:
            return answered
        send(dispatcher, qa.more(tracker.get_slot("last_entry")).messages)
        return []


class ActionExplain(Action):
    """'Wat bedoelen ze hiermee?' explains the scan item during a scan, else the last answer's terms."""

    def name(self) -> str:
        return "action_explain"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        if tracker.active_loop.get("name") == "scan_form":
            questionnaire = tracker.get_slot("questionnaire") or scan.MENTORSCAN
            send(dispatcher, scan.explain_current_item(tracker.sender_id, questionnaire))
            return []
        answered = _answered_as_question(dispatcher, tracker)
        if answered is not None:
            return answered
        send(dispatcher, qa.explain_last_answer(tracker.get_slot("last_entry")).messages)
        return []


class ActionContactPerson(Action):
    def name(self) -> str:
        return "action_contact_person"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        answered = _answered_as_question(dispatcher, tracker)
        if answered is not None:
            return answered
        reply = qa.contact_person(tracker.sender_id, tracker.get_slot("last_entry"), role=entity(tracker, "role"))
        send(dispatcher, reply.messages)
        return []


class ActionSetPartnership(Action):
    def name(self) -> str:
        return "action_set_partnership"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        answered = _answered_as_question(dispatcher, tracker)
        if answered is not None:
            return answered
        reply = qa.set_profile(tracker.sender_id, channel_of(tracker), latest_text(tracker), entity(tracker, "partnership"))
        send(dispatcher, reply.messages)
        return []


class ActionOutOfScope(Action):
    """Out of scope: "daar kan ik je niet mee helpen", unless NLU was unsure and the knowledge base
    has a strong match (bot.qa.answer_instead_of_follow_up decides)."""

    def name(self) -> str:
        return "action_out_of_scope"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        confidence = float((tracker.latest_message.get("intent") or {}).get("confidence") or 0.0)
        reply = qa.answer_instead_of_follow_up("out_of_scope", latest_text(tracker), tracker.sender_id,
                                               confidence=confidence)
        if reply is None:
            dispatcher.utter_message(response="utter_out_of_scope")
            return []
        send(dispatcher, reply.messages)
        return [SlotSet("last_entry", reply.entry_id)]


class ActionFallback(Action):
    """Unsure NLU: the knowledge base decides (bot.qa.answer_unsure); nothing found -> say so honestly."""

    def name(self) -> str:
        return "action_fallback"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        text = latest_text(tracker)
        intent = latest_intent(tracker)
        if intent == "deny":
            dispatcher.utter_message(text="Oké. Stel je vraag gerust op een andere manier, of laat mij hem doorsturen "
                                     "naar je schoolopleider.", buttons=buttons([qa.FORWARD_OFFER]))
            return []
        if intent == "affirm":
            dispatcher.utter_message(text="Fijn! Waar kan ik je nog meer mee helpen?")
            return []
        if text.startswith("/"):
            dispatcher.utter_message(response="utter_default")
            return []
        reply = qa.answer_unsure(
            text,
            tracker.latest_message.get("intent_ranking") or [],
            roles=list(tracker.get_latest_entity_values("role")),
            phases=list(tracker.get_latest_entity_values("study_phase")),
            sender_id=tracker.sender_id,
        )
        _log_usage(reply)
        if reply.outcome != "unknown" or reply.unknown_term:  # an unknown term is named, not "anders zeggen?"
            send(dispatcher, reply.messages)
            return [SlotSet("last_entry", reply.entry_id)] if reply.entry_id else []
        dispatcher.utter_message(response="utter_default")
        return []
