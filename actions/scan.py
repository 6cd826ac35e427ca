"""Rasa adapters for the mentorscan (and any other questionnaire): one loop action per answer.

Which item is asked and whether an answer is valid is decided by bot.scan / bot.questionnaire;
the database is the source of truth for progress, so these actions hold no scan state.
"""
from __future__ import annotations

from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecutionRejected, ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import buttons, channel_of, entity, latest_intent, latest_text, message_id_of, send
from bot import qa, scan
from bot.charts import chart_message
from bot.questionnaire import START_ENTITY, load_questionnaire, start_intents

# The active loop while a questionnaire is open: a form in domain.yml that this module's
# ActionScanAnswer implements (Rasa calls a custom action that has the form's name instead of its
# own FormAction; data/rules/mentorscan.yml).
SCAN_LOOP = "scan_form"
# Intents that interrupt the scan instead of answering the question (handled by rules). The intents
# of its own that a questionnaire's YAML names (`start.intents`, e.g. start_evaluation) do too.
INTERRUPTIONS = {
    "pause_scan", "previous_question", "explain_item", "ask_meaning", "ask_knowledge",
    "ask_who_to_contact", "ask_study_phase", "help", "ask_privacy", "bot_challenge",
    "continue_scan", "start_scan", "vote_up", "vote_down", "show_results",
}
KNOWLEDGE_INTENTS = {"ask_knowledge", "ask_who_to_contact", "ask_study_phase"}
# For open questions (learning goals) almost any text is an answer, except these requests and any
# button of something else (a payload such as '/vote_up{...}' is never a learning goal).
OPEN_TEXT_INTERRUPTIONS = {"pause_scan", "previous_question", "explain_item", "ask_meaning", "help", "show_results"}


def _questionnaire(tracker: Tracker) -> str:
    return tracker.get_slot("questionnaire") or scan.MENTORSCAN


def _utter_prompt(dispatcher: CollectingDispatcher, prompt: scan.Prompt) -> None:
    dispatcher.utter_message(text=prompt.text, buttons=buttons(prompt.payload_buttons) or None)


def _pressed_button(tracker: Tracker) -> Optional[str]:
    """The item of a pressed scan button (its payload names it); None for a typed message."""
    return entity(tracker, scan.BUTTON_ITEM)


class ActionStartScan(Action):
    """Start or resume a questionnaire; which one comes from the YAML files (bot.scan.questionnaire_to_start)."""

    def name(self) -> str:
        return "action_start_scan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        questionnaire_id = scan.questionnaire_to_start(
            tracker.sender_id, latest_intent(tracker), latest_text(tracker),
            requested=entity(tracker, START_ENTITY), current=tracker.get_slot("questionnaire"))
        questionnaire = load_questionnaire(questionnaire_id)
        resumed, _ = scan.start(tracker.sender_id, channel_of(tracker), questionnaire_id)
        if resumed:
            dispatcher.utter_message(text=f"Welkom terug! We gaan verder met de {questionnaire.title.lower()} waar je gebleven was.")
        else:
            dispatcher.utter_message(text=questionnaire.intro.strip())
        return [] if tracker.get_slot("questionnaire") == questionnaire_id else [SlotSet("questionnaire", questionnaire_id)]


class ActionScanAnswer(Action):
    """The scan's loop: ONE call per message while a questionnaire is open (issue 17).

    After the mentor's message it parses and stores the answer (bot.scan.submit commits before it
    returns) and renders the next item from the database, or the results when the last item was
    answered; an interruption it cannot read as an answer is rejected, so the rules answer it and
    call this action again, which then only asks the current question. No slots: the database is
    the source of truth, so a scan turn adds only the user message, this action, its messages and
    action_listen to the tracker.
    """

    def name(self) -> str:
        return SCAN_LOOP

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        questionnaire_id = _questionnaire(tracker)
        activate = [] if tracker.active_loop.get("name") == SCAN_LOOP else [ActiveLoop(SCAN_LOOP)]
        if tracker.latest_action_name != "action_listen":  # after the start or an interruption: ask
            prompt = scan.current_prompt(tracker.sender_id, questionnaire_id)
            if prompt is None:
                dispatcher.utter_message(text="Er staat geen vraag meer open.")
                return [ActiveLoop(None)]
            _utter_prompt(dispatcher, prompt)
            return activate
        value = _answer_in(tracker, questionnaire_id)
        if value is None:  # an interruption: the rules for it take over, then call this action again
            return [ActionExecutionRejected(SCAN_LOOP)]
        turn = scan.submit(tracker.sender_id, channel_of(tracker), value, questionnaire_id, message_id_of(tracker),
                           item_id=_pressed_button(tracker))
        if turn.status == "no_scan":
            dispatcher.utter_message(text="Je hebt nu geen vragenlijst openstaan. Typ 'mentorscan' om te beginnen.")
            return [ActiveLoop(None)]
        if turn.status == "completed":
            _utter_results(dispatcher, tracker, questionnaire_id, just_finished=True)
            # A new session: the finished scan's turns are not loaded, replayed and sent again on
            # every later turn (action_session_start carries the slots over, shows no notice).
            return [ActiveLoop(None), FollowupAction("action_session_start")]
        if turn.hint:  # invalid, don't know, or a button of another item: nothing was stored
            dispatcher.utter_message(text=turn.hint)
        if turn.prompt is not None:
            _utter_prompt(dispatcher, turn.prompt)
        return activate


def _answer_in(tracker: Tracker, questionnaire_id: str) -> Optional[str]:
    """The message as an answer, or None when it is an interruption the engine cannot parse."""
    if _pressed_button(tracker) is not None:  # bot.scan.submit checks it is this item's button
        return entity(tracker, scan.BUTTON_VALUE) or ""
    text = latest_text(tracker)
    intent = latest_intent(tracker)
    if intent not in INTERRUPTIONS and intent not in start_intents():  # no database read needed: an answer
        return text
    item = scan.current_item(tracker.sender_id, questionnaire_id)
    if item is None:
        return text  # submit says there is no open scan
    if item.type == "open_text":
        return None if intent in OPEN_TEXT_INTERRUPTIONS or text.lstrip().startswith("/") else text
    if scan.parses_item(item, text, questionnaire_id):
        return text
    if intent in KNOWLEDGE_INTENTS and qa.answer_question(text, intent=intent).outcome == "unknown":
        return text  # nothing in the knowledge base either: a garbled answer, it gets the hint
    return None


class ActionPauseScan(Action):
    def name(self) -> str:
        return "action_pause_scan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        answered, total = scan.pause(tracker.sender_id, _questionnaire(tracker))
        dispatcher.utter_message(
            text=f"Gepauzeerd. Je {answered} antwoorden (van de {total}) zijn bewaard. "
            "Typ 'ga verder met de scan' wanneer je verder wilt, ook als dat pas over een paar dagen is. "
            "Zal ik je over een paar dagen herinneren?",
            buttons=buttons([("Ja, herinner me", "/remind_me"), ("Ga verder met de scan", "/continue_scan")]),
        )
        return [ActiveLoop(None)]


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
                text="Ik weet niet bij welke vraag dit antwoord hoort. Wil je een vragenlijst invullen?",
                buttons=buttons([*scan.start_buttons(), ("Wat kun je?", "/help")]),
            )
        return []


class ActionScanResults(Action):
    """'Mijn resultaten': the newest completed run of the mentorscan."""

    def name(self) -> str:
        return "action_scan_results"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        _utter_results(dispatcher, tracker, scan.MENTORSCAN, just_finished=False)
        return []


def _utter_results(dispatcher: CollectingDispatcher, tracker: Tracker, questionnaire_id: str, just_finished: bool) -> None:
    found = scan.latest_results(tracker.sender_id, questionnaire_id)
    if found is None:
        dispatcher.utter_message(
            text="Je hebt de mentorscan nog niet afgerond, dus er zijn nog geen resultaten.",
            buttons=buttons([("Mentorscan invullen", "/start_scan")]),
        )
        return
    result, runs = found
    if just_finished:
        dispatcher.utter_message(text=f"Klaar, dank je wel! Je antwoorden zijn opgeslagen. Dit is je overzicht van de {result.questionnaire.title.lower()}:")
    elif runs > 1:
        dispatcher.utter_message(text=f"Je hebt de scan {runs} keer ingevuld. Dit zijn de resultaten van de laatste keer:")
    for text in scan.summary_messages(result):
        dispatcher.utter_message(text=text)
    chart = chart_message(result, channel_of(tracker))
    if chart is not None:
        send(dispatcher, [chart])
