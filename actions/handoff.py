"""Rasa adapters for people in the loop: answer feedback, forwarding a question to the
schoolopleider, the schoolopleider's side, reminders and insights. Decisions live in bot/.

While the bot waits for typed text (what was missing after 👎, the text of a question to forward,
a schoolopleider's answer) the loop ``free_text_form`` is active: Rasa then hands the next message
to :class:`ActionFreeText` whatever its intent, because such text can be anything. A button of
something else (a ``/payload``) ends the wait and is handled as usual.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecutionRejected, ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import buttons, channel_of, entity, latest_intent, latest_text, send
from bot import delivery, feedback, handoff, qa, reminders

FREE_TEXT_LOOP = "free_text_form"
AWAITING = "awaiting"
COMMENT = "comment"
# The user messages a forwarded question can come from (not buttons, not small talk).
QUESTION_INTENTS = {"ask_knowledge", "ask_who_to_contact", "ask_study_phase", "nlu_fallback", "out_of_scope",
                    "ask_meaning", "ask_more", "ask_contact_person"}
LOOK_BACK = 3  # user messages
YES = re.compile(r"^\s*(ja|jawel|ok[eé]?|oké|prima|goed|graag|versturen|verstuur|stuur( maar)?( door)?|doe maar)\b",
                 re.IGNORECASE)
NO = re.compile(r"^\s*(nee|neen|annuleer|annuleren|stop|laat maar|niet versturen|toch niet)\b", re.IGNORECASE)
# A whole message that only says "no thanks" / "cancel" (a comment or an answer may start with "nee").
CANCEL = re.compile(r"^\s*(nee|nee,? dank je( wel)?|nee,? bedankt|annuleer|annuleren|stop|laat maar|overslaan|"
                    r"sla over|hoeft niet|niets|geen)\s*[.!]?\s*$", re.IGNORECASE)
# A schoolopleider's answer may be just "Nee.": only these words cancel it.
STAFF_CANCEL = re.compile(r"^\s*(annuleer|annuleren|stop|laat maar)\s*[.!]?\s*$", re.IGNORECASE)
CHANGE = re.compile(r"^\s*(aanpassen|pas aan|wijzig|wijzigen|veranderen)\b", re.IGNORECASE)


def _metadata(tracker: Tracker) -> Optional[dict]:
    metadata = tracker.latest_message.get("metadata")
    return metadata if isinstance(metadata, dict) else None


def _dispatch(dispatcher: CollectingDispatcher, step: handoff.Step) -> list[EventType]:
    """Send a step's messages; keep waiting for typed text when the step asks for it."""
    send(dispatcher, step.messages)
    if step.notified:
        delivery.flush_soon()
    if step.awaiting:
        return [SlotSet(AWAITING, step.awaiting), ActiveLoop(FREE_TEXT_LOOP)]
    return [SlotSet(AWAITING, None), ActiveLoop(None)]


def question_to_forward(tracker: Tracker) -> Optional[str]:
    """The mentor's question: the message itself when it is one ('vraag aan mijn schoolopleider of
    ...'), else the latest typed question among the last few messages."""
    text = latest_text(tracker)
    if latest_intent(tracker) == "forward_question" and not text.startswith("/") and len(text.split()) >= 9:
        return text
    users = [e for e in tracker.events if e.get("event") == "user"][:-1][-LOOK_BACK:]
    for event in reversed(users):
        typed = (event.get("text") or "").strip()
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if typed and not typed.startswith("/") and intent in QUESTION_INTENTS:
            return typed
    return None


def _topic(text: Optional[str]) -> Optional[str]:
    if not text:
        return None
    from bot.knowledge import load_knowledge  # loaded once per process

    matches = load_knowledge().search(text, limit=1)
    return matches[0].entry.id if matches and matches[0].score >= 0.1 else None


class ActionVote(Action):
    """👍 / 👎 under an answer. After 👎: what was missing (optional), and an offer to ask a person."""

    def name(self) -> str:
        return "action_vote"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        entry_id = entity(tracker, "kb_entry") or tracker.get_slot("last_entry")
        if not entry_id:
            dispatcher.utter_message(text="Dank je! Over welk antwoord gaat het? Stel je vraag gerust opnieuw.")
            return []
        value = feedback.UP if latest_intent(tracker) == "vote_up" else feedback.DOWN
        feedback_id = feedback.vote(tracker.sender_id, channel_of(tracker), entry_id, value)
        if value == feedback.UP:
            dispatcher.utter_message(text="Fijn dat je er iets aan had, dank je!")
            return []
        if tracker.active_loop.get("name"):  # in the middle of the scan: no questions in between
            dispatcher.utter_message(text="Dank je, dat neem ik mee om mijn antwoorden te verbeteren.")
            return []
        dispatcher.utter_message(
            text="Jammer, dank je dat je het laat weten. Wat miste je? Typ het in een paar woorden (dat hoeft niet).",
            buttons=buttons([qa.FORWARD_OFFER, ("Overslaan", "/deny")]),
        )
        return [SlotSet(AWAITING, f"{COMMENT}:{feedback_id}"), ActiveLoop(FREE_TEXT_LOOP)]


class ActionFreeText(Action):
    """The loop ``free_text_form``: the one message the bot asked for (see the module docstring)."""

    def name(self) -> str:
        return FREE_TEXT_LOOP

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        if tracker.latest_action_name != "action_listen":
            return []  # just activated: the activating action already asked
        kind, number = handoff.parse_awaiting(tracker.get_slot(AWAITING))
        text = latest_text(tracker)
        intent = latest_intent(tracker)
        button = text.startswith("/")
        confirm = entity(tracker, "confirm") if intent == "forward_question" else None
        if kind is None:
            return _stop_waiting()
        if kind == COMMENT:
            if (button and intent == "deny") or CANCEL.match(text):
                dispatcher.utter_message(text="Oké. Waar kan ik je nog mee helpen?")
                return _done()
            if button:
                return _stop_waiting()
            feedback.add_comment(tracker.sender_id, number, text)
            dispatcher.utter_message(
                text="Dank je, daar leren we van. Zal ik je vraag doorsturen naar je schoolopleider?",
                buttons=buttons([("Ja, doorsturen", "/forward_question"), ("Nee, dank je", handoff.confirm_payload("nee"))]),
            )
            return _done()
        if kind == handoff.CONSENT:
            if confirm == "ja" or intent == "affirm" and not button or YES.match(text):
                return _dispatch(dispatcher, handoff.send(tracker.sender_id, number))
            if confirm == "aanpassen" or CHANGE.match(text):
                return _dispatch(dispatcher, handoff.ask_edit(tracker.sender_id, number))
            if confirm == "nee" or intent == "deny" or NO.match(text):
                return _dispatch(dispatcher, handoff.cancel(tracker.sender_id, number))
            if button:
                return _stop_waiting()
            dispatcher.utter_message(
                text="Ik heb je vraag nog niet verstuurd. Kies 'Versturen', 'Aanpassen' of 'Annuleren'.",
                buttons=buttons([("Versturen", handoff.confirm_payload("ja")),
                                 ("Aanpassen", handoff.confirm_payload("aanpassen")),
                                 ("Annuleren", handoff.confirm_payload("nee"))]),
            )
            return []
        if kind == handoff.EDIT:
            if confirm == "nee" or (button and intent == "deny"):
                return _dispatch(dispatcher, handoff.cancel(tracker.sender_id, number))
            if button:
                return _stop_waiting()
            return _dispatch(dispatcher, handoff.edit(tracker.sender_id, number, text))
        if kind == handoff.STAFF_ANSWER:
            if (button and intent == "deny") or STAFF_CANCEL.match(text):
                dispatcher.utter_message(text="Oké, ik heb niets verstuurd. Typ 'open vragen' om de vragen weer te zien.")
                return _done()
            if button:
                return _stop_waiting()
            _, step = handoff.answer(number, text, sender_id=tracker.sender_id)
            return _dispatch(dispatcher, step)
        return _stop_waiting()


def _done() -> list[EventType]:
    return [SlotSet(AWAITING, None), ActiveLoop(None)]


def _stop_waiting() -> list[EventType]:
    """Not the text we waited for (another button): stop waiting and let the rules handle it."""
    return [SlotSet(AWAITING, None), ActiveLoop(None), ActionExecutionRejected(FREE_TEXT_LOOP)]


class ActionForwardQuestion(Action):
    """'Vraag het mijn schoolopleider': draft -> consent (send, edit, cancel); see bot/handoff.py."""

    def name(self) -> str:
        return "action_forward_question"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        confirm = entity(tracker, "confirm")
        if confirm == "nee":
            return _dispatch(dispatcher, handoff.cancel(tracker.sender_id, handoff.current_draft(tracker.sender_id)))
        if confirm in ("ja", "aanpassen"):  # a consent button pressed after the conversation moved on
            draft = handoff.current_draft(tracker.sender_id)
            if draft is None:
                dispatcher.utter_message(text="Die vraag is al verstuurd of geannuleerd. Typ 'mijn vragen' om je vragen te zien.")
                return _done()
            step = handoff.send(tracker.sender_id, draft) if confirm == "ja" else handoff.ask_edit(tracker.sender_id, draft)
            return _dispatch(dispatcher, step)
        text = question_to_forward(tracker)
        step = handoff.start(tracker.sender_id, channel_of(tracker), text, _topic(text), _metadata(tracker))
        return _dispatch(dispatcher, step)


class ActionOpenQuestions(Action):
    """'Open vragen': a schoolopleider's questions to answer; for a mentor, their own questions."""

    def name(self) -> str:
        return "action_open_questions"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        step = handoff.open_for_staff(tracker.sender_id)
        if step is not None:
            delivery.remember_sender(tracker.sender_id, _metadata(tracker))
        return _dispatch(dispatcher, step or handoff.mine(tracker.sender_id))


class ActionStaffAnswer(Action):
    """A schoolopleider pressed 'Beantwoorden': the next typed message is the answer."""

    def name(self) -> str:
        return "action_staff_answer"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        number = entity(tracker, "question_id")
        if not (number and str(number).isdigit()):
            return _dispatch(dispatcher, handoff.open_for_staff(tracker.sender_id) or handoff.mine(tracker.sender_id))
        delivery.remember_sender(tracker.sender_id, _metadata(tracker))
        return _dispatch(dispatcher, handoff.answer_prompt(tracker.sender_id, int(number)))


class ActionAddToKnowledge(Action):
    def name(self) -> str:
        return "action_add_to_knowledge"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        number = entity(tracker, "question_id")
        if not (number and str(number).isdigit()):
            dispatcher.utter_message(text="Welke vraag bedoel je? Gebruik de knop onder je antwoord.")
            return []
        return _dispatch(dispatcher, handoff.request_draft(int(number), sender_id=tracker.sender_id))


class ActionRemindMe(Action):
    """'Ja, herinner me' after pausing the scan (opt-in; bot/reminders.py decides when)."""

    def name(self) -> str:
        return "action_remind_me"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        questionnaire = tracker.get_slot("questionnaire") or "mentorscan"
        when = reminders.opt_in(tracker.sender_id, channel_of(tracker), questionnaire)
        if when is None:
            dispatcher.utter_message(text="Er staat geen gepauzeerde vragenlijst open, of ik heb je er al eens aan "
                                     "herinnerd. Typ 'ga verder met de scan' wanneer je verder wilt.")
            return []
        delivery.remember_sender(tracker.sender_id, _metadata(tracker))
        where = "" if delivery.channel_for(tracker.sender_id) != "rest" else \
            " Je ziet de herinnering hier zodra je me weer een bericht stuurt."
        dispatcher.utter_message(
            text=f"Goed, ik herinner je op {reminders.describe(when)}, één keer.{where} "
            "Wil je geen herinneringen? Typ dan 'stop met herinneren'."
        )
        return []


class ActionStopReminders(Action):
    def name(self) -> str:
        return "action_stop_reminders"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        reminders.stop(tracker.sender_id)
        dispatcher.utter_message(
            text="Oké, je krijgt geen herinneringen meer van me. Je scan blijft bewaard: typ 'ga verder met de scan' "
            "wanneer je wilt."
        )
        return []
