"""Knowledge adapters for long questions (issue 15): escalation, unknown terms, the next step's person."""
from __future__ import annotations

from actions.knowledge import ActionAnswerQuestion, ActionContactPerson, ActionExplain, ActionFallback
from bot import qa
from tests.actions.test_actions import run, tracker

UNSURE = [{"name": "nlu_fallback", "confidence": 0.3}, {"name": "ask_meaning", "confidence": 0.28},
          {"name": "out_of_scope", "confidence": 0.25}]


def test_knowledge_actions_long_question_leads_with_the_next_step():
    text = ("Mijn stagiaire maakt al maanden geen vooruitgang. De schoolopleider is op de hoogte en kwam al extra "
            "kijken. Wie kan ik er nu bij halen?")
    messages, events = run(ActionAnswerQuestion(), tracker("k1", text, "ask_who_to_contact"))
    assert "volgende stap" in messages[0]["text"]
    assert "Bron:" in messages[-1]["text"]
    assert events and events[0]["name"] == "last_entry"


def test_knowledge_actions_unknown_term_is_named_as_a_follow_up():
    messages, events = run(ActionExplain(), tracker("k2", "wat betekent pdca?", "ask_meaning"))
    assert "‘pdca’" in messages[0]["text"] and "schoolopleider" in messages[0]["text"]
    assert {"title": qa.FORWARD_OFFER[0], "payload": qa.FORWARD_OFFER[1]} in messages[0]["buttons"]
    assert "Welk woord" not in messages[0]["text"]


def test_knowledge_actions_unknown_term_when_nlu_was_unsure_is_named_not_rephrase():
    t = tracker("k3", "wat betekent PDCA eigenlijk", "nlu_fallback", confidence=0.3)
    t.latest_message["intent_ranking"] = UNSURE
    messages, _ = run(ActionFallback(), t)
    assert "‘PDCA’" in messages[0]["text"]


def test_knowledge_actions_contact_person_for_the_role_of_the_button():
    t = tracker("k4", '/ask_contact_person{"role": "coordinerend_instituutsopleider"}', "ask_contact_person",
                entities=[{"entity": "role", "value": "coordinerend_instituutsopleider"}],
                slots={"last_entry": "contact.stagnatie"})
    messages, _ = run(ActionContactPerson(), t)
    assert "coördinerend instituutsopleider" in messages[0]["text"]
