"""Rasa adapters for the mentorscan (and any other questionnaire): one form, one requested slot.

Which item is asked and whether an answer is valid is decided by bot.scan / bot.questionnaire;
the database is the source of truth for progress, so these actions hold no scan state.
"""
from __future__ import annotations

from typing import Any, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import buttons, channel_of, entity, latest_intent, latest_text, message_id_of, send
from bot import qa, scan
from bot.charts import chart_message
from bot.questionnaire import load_questionnaire

EVALUATION = "evaluatie-mentortraining"
# Intents that interrupt the scan instead of answering the question (handled by rules).
INTERRUPTIONS = {
    "pause_scan", "previous_question", "explain_item", "ask_meaning", "ask_knowledge",
    "ask_who_to_contact", "ask_study_phase", "help", "ask_privacy", "bot_challenge",
    "continue_scan", "start_scan",
}
KNOWLEDGE_INTENTS = {"ask_knowledge", "ask_who_to_contact", "ask_study_phase"}
# For open questions (learning goals) almost any text is an answer.
OPEN_TEXT_INTERRUPTIONS = {"pause_scan", "previous_question", "explain_item", "ask_meaning", "help"}


def _questionnaire(tracker: Tracker) -> str:
    return tracker.get_slot("questionnaire") or scan.MENTORSCAN


def _utter_prompt(dispatcher: CollectingDispatcher, prompt: scan.Prompt) -> None:
    dispatcher.utter_message(text=prompt.text, buttons=buttons(prompt.payload_buttons) or None)


def _pressed_button(tracker: Tracker) -> Optional[str]:
    """The item of a pressed scan button (its payload names it); None for a typed message."""
    return entity(tracker, scan.BUTTON_ITEM)


class ActionStartScan(Action):
    def name(self) -> str:
        return "action_start_scan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        intent = latest_intent(tracker)
        if intent == "start_evaluation":
            questionnaire_id = EVALUATION
        elif intent == "continue_scan":
            questionnaire_id = scan.resumable(tracker.sender_id, tracker.get_slot("questionnaire"))
        else:
            questionnaire_id = scan.MENTORSCAN
        questionnaire = load_questionnaire(questionnaire_id)
        resumed, _ = scan.start(tracker.sender_id, channel_of(tracker), questionnaire_id)
        if resumed:
            dispatcher.utter_message(text=f"Welkom terug! We gaan verder met de {questionnaire.title.lower()} waar je gebleven was.")
        else:
            dispatcher.utter_message(text=questionnaire.intro.strip())
        events = [SlotSet("questionnaire", questionnaire_id)]
        if tracker.get_slot("scan_answer") is not None:
            events.append(SlotSet("scan_answer", None))
        return events


class ActionAskScanAnswer(Action):
    """Renders the current item from the database (the form calls this to ask)."""

    def name(self) -> str:
        return "action_ask_scan_answer"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        prompt = scan.current_prompt(tracker.sender_id, _questionnaire(tracker))
        if prompt is None:
            dispatcher.utter_message(text="Er staat geen vraag meer open.")
            return [ActiveLoop(None), SlotSet("requested_slot", None)]
        _utter_prompt(dispatcher, prompt)
        return []


class ValidateScanForm(FormValidationAction):
    def name(self) -> str:
        return "validate_scan_form"

    async def extract_scan_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Take the message as an answer unless it is an interruption the engine cannot parse."""
        if tracker.get_slot("requested_slot") != "scan_answer":
            return {}
        text = latest_text(tracker)
        intent = latest_intent(tracker)
        item = scan.current_item(tracker.sender_id, _questionnaire(tracker))
        if item is None:
            return {}
        if _pressed_button(tracker) is not None:  # the engine checks it is this item's button
            return {"scan_answer": entity(tracker, scan.BUTTON_VALUE) or ""}
        if item.type == "open_text":
            return {} if intent in OPEN_TEXT_INTERRUPTIONS else {"scan_answer": text}
        if intent not in INTERRUPTIONS or scan.parses(tracker.sender_id, text, _questionnaire(tracker)):
            return {"scan_answer": text}
        if intent in KNOWLEDGE_INTENTS and qa.answer_question(text, intent=intent).outcome == "unknown":
            # Nothing in the knowledge base either: treat it as a garbled answer and give the hint.
            return {"scan_answer": text}
        return {}

    def validate_scan_answer(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Optional[str]]:
        """Store the answer at once; keep the slot empty until the engine says the scan is done."""
        if value is None:  # the slot being cleared when the form starts, not an answer
            return {"scan_answer": None}
        turn = scan.submit(tracker.sender_id, channel_of(tracker), value, _questionnaire(tracker), message_id_of(tracker),
                           item_id=_pressed_button(tracker))
        if turn.status in ("invalid", "dont_know", "stale"):
            dispatcher.utter_message(text=turn.hint)
            return {"scan_answer": None}
        if turn.status == "no_scan":
            dispatcher.utter_message(text="Je hebt nu geen vragenlijst openstaan. Typ 'mentorscan' om te beginnen.")
            return {"scan_answer": "done"}
        if turn.status == "completed":
            return {"scan_answer": "done"}
        return {"scan_answer": None}


class ActionPauseScan(Action):
    def name(self) -> str:
        return "action_pause_scan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        answered, total = scan.pause(tracker.sender_id, _questionnaire(tracker))
        dispatcher.utter_message(
            text=f"Gepauzeerd. Je {answered} antwoorden (van de {total}) zijn bewaard. "
            "Typ 'ga verder met de scan' wanneer je verder wilt, ook als dat pas over een paar dagen is.",
            buttons=buttons([("Ga verder met de scan", "/continue_scan")]),
        )
        return [ActiveLoop(None), SlotSet("requested_slot", None)]


class ActionPreviousQuestion(Action):
    def name(self) -> str:
        return "action_previous_question"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        prompt = scan.go_back(tracker.sender_id, _questionnaire(tracker))
        if prompt is not None:
            dispatcher.utter_message(text="Oké, je kunt je vorige antwoord aanpassen.")
        return []


class ActionStrayScanAnswer(Action):
    """An answer-like message while no scan is running (e.g. after 'pauze')."""

    def name(self) -> str:
        return "action_stray_scan_answer"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        if scan.has_open_run(tracker.sender_id, _questionnaire(tracker)):
            dispatcher.utter_message(
                text="Je scan staat op pauze. Wil je verder waar je gebleven was?",
                buttons=buttons([("Ga verder met de scan", "/continue_scan")]),
            )
        else:
            dispatcher.utter_message(
                text="Ik weet niet bij welke vraag dit antwoord hoort. Wil je de mentorscan invullen?",
                buttons=buttons([("Mentorscan starten", "/start_scan"), ("Wat kun je?", "/help")]),
            )
        return []


class ActionScanResults(Action):
    def name(self) -> str:
        return "action_scan_results"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        questionnaire_id = _questionnaire(tracker) if latest_intent(tracker) != "show_results" else scan.MENTORSCAN
        found = scan.latest_results(tracker.sender_id, questionnaire_id)
        if found is None:
            dispatcher.utter_message(
                text="Je hebt de mentorscan nog niet afgerond, dus er zijn nog geen resultaten.",
                buttons=buttons([("Mentorscan invullen", "/start_scan")]),
            )
            return [SlotSet("scan_answer", None)]
        result, runs = found
        just_finished = latest_intent(tracker) != "show_results"
        if just_finished:
            dispatcher.utter_message(text=f"Klaar, dank je wel! Je antwoorden zijn opgeslagen. Dit is je overzicht van de {result.questionnaire.title.lower()}:")
        elif runs > 1:
            dispatcher.utter_message(text=f"Je hebt de scan {runs} keer ingevuld. Dit zijn de resultaten van de laatste keer:")
        for text in scan.summary_messages(result):
            dispatcher.utter_message(text=text)
        chart = chart_message(result, channel_of(tracker))
        if chart is not None:
            send(dispatcher, [chart])
        return [SlotSet("scan_answer", None)]
