"""The people-in-the-loop adapters without servers: waiting for typed text, insights for admins."""
from __future__ import annotations

from rasa_sdk.events import ActionExecutionRejected, ActiveLoop, SlotSet

from actions.handoff import FREE_TEXT_LOOP, ActionFreeText, ActionVote
from actions.privacy import ActionReport
from bot import linking, staff, storage, usage
from tests.actions.test_actions import run, tracker


def test_thumbs_down_waits_for_what_was_missing_and_a_button_ends_the_wait():
    messages, events = run(ActionVote(), tracker("m1", '/vote_down{"kb_entry":"taak.mentor"}', "vote_down",
                                                 entities=[{"entity": "kb_entry", "value": "taak.mentor"}]))
    assert "Wat miste je?" in messages[0]["text"]
    assert ActiveLoop(FREE_TEXT_LOOP) in events
    awaiting = next(e["value"] for e in events if e.get("name") == "awaiting")
    # the mentor presses another button instead: not stored as a comment, handled as that button
    _, events = run(ActionFreeText(), tracker("m1", "/start_scan", "start_scan", slots={"awaiting": awaiting},
                                              active_loop=FREE_TEXT_LOOP))
    assert ActionExecutionRejected(FREE_TEXT_LOOP) in events and ActiveLoop(None) in events
    # typed text is the comment
    run(ActionVote(), tracker("m1", "", "vote_down", entities=[{"entity": "kb_entry", "value": "taak.mentor"}]))
    messages, events = run(ActionFreeText(), tracker("m1", "ik miste de uren", "ask_knowledge",
                                                     slots={"awaiting": awaiting}, active_loop=FREE_TEXT_LOOP))
    assert "doorsturen" in messages[0]["text"] and SlotSet("awaiting", None) in events
    with storage.session_scope() as session:
        assert session.get(storage.Feedback, int(awaiting.split(":")[1])).comment == "ik miste de uren"


def test_thumbs_down_during_the_scan_asks_nothing_in_between():
    messages, events = run(ActionVote(), tracker("m1", "", "vote_down", active_loop="scan_form",
                                                 entities=[{"entity": "kb_entry", "value": "taak.mentor"}]))
    assert "Wat miste je?" not in messages[0]["text"] and events == []


def test_reports_and_insights_only_for_report_admins():
    usage.record("taak.mentor", "answer", "noord-holland")
    messages, _ = run(ActionReport(), tracker("m1", "inzichten", "ask_report"))
    assert "alleen voor schoolopleiders" in messages[0]["text"]
    registered = staff.add("Anna", "anna@regenboog.nl", staff.SCHOOLOPLEIDER, "De Regenboog", report_admin=True)
    assert linking.use_link_code("tg-900", "telegram", registered.code) == "staff"
    messages, _ = run(ActionReport(), tracker("tg-900", "inzichten", "ask_report"))
    assert messages and "alleen voor schoolopleiders" not in messages[0]["text"]
    assert not any("m1" in (m.get("text") or "") for m in messages)
