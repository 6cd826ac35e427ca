"""Action adapters: Tracker.from_dict + CollectingDispatcher; assert the events and what is said."""
from __future__ import annotations

import asyncio
import shutil
import textwrap

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecutionRejected, ActiveLoop, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import ActionAnswerQuestion, ActionOutOfScope, ActionSetPartnership
from actions.privacy import ActionDeleteMyData, ActionLinkAccount, ActionReport, ActionShowMyData
from actions.scan import SCAN_LOOP, ActionPauseScan, ActionScanAnswer, ActionStartScan, ActionStrayScanAnswer
from actions.session import ActionSessionStart
from bot import linking, privacy, scan, storage
from bot.questionnaire import start_payload
from bot.settings import get_settings


def tracker(sender: str, text: str, intent: str, entities: list | None = None, slots: dict | None = None,
            active_loop: str | None = None, confidence: float = 0.9, latest_action: str = "action_listen",
            metadata: dict | None = None) -> Tracker:
    return Tracker.from_dict({
        "sender_id": sender,
        "slots": slots or {},
        "latest_message": {"text": text, "intent": {"name": intent, "confidence": confidence},
                           "entities": entities or [], "metadata": metadata or {}},
        "events": [], "paused": False, "followup_action": None,
        "active_loop": {"name": active_loop} if active_loop else {},
        "latest_action_name": latest_action, "latest_input_channel": "rest",
    })


def run(action, t: Tracker, domain: dict | None = None):
    dispatcher = CollectingDispatcher()
    result = action.run(dispatcher, t, domain or {})
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return dispatcher.messages, result


def answer(sender: str, text: str, intent: str, entities: list | None = None, metadata: dict | None = None):
    """A message to the scan's loop action as Rasa sends it after the mentor wrote: (messages, events)."""
    return run(ActionScanAnswer(), tracker(sender, text, intent, entities, active_loop=SCAN_LOOP, metadata=metadata))


def ask(sender: str, after: str = "action_start_scan"):
    """The loop action called after another action (the start, an interruption): it only asks."""
    return run(ActionScanAnswer(), tracker(sender, "", "start_scan", active_loop=SCAN_LOOP, latest_action=after))


def test_actions_session_start_says_it_is_an_assistant_once():
    messages, events = run(ActionSessionStart(), tracker("s1", "", "greet"))
    assert messages[0]["response"] == "utter_first_contact"
    assert events[-1]["event"] == "action" and events[-1]["name"] == "action_listen"
    messages, _ = run(ActionSessionStart(), tracker("s1", "", "greet"))
    assert messages == []


def test_actions_answer_question_sets_last_entry_and_cites_source():
    messages, events = run(ActionAnswerQuestion(), tracker("s1", "wat doet een schoolopleider", "ask_knowledge"))
    assert "Bron:" in messages[0]["text"]
    assert events == [SlotSet("last_entry", "rol.schoolopleider")]


def test_actions_full_question_filed_as_partnership_is_answered_not_stored():
    messages, _ = run(ActionSetPartnership(), tracker(
        "s1", "hoeveel uur krijg ik als mentor in noord-holland per semester?", "inform_partnership"))
    assert "Bron:" in messages[0]["text"]
    with storage.session_scope() as session:
        mentor = storage.find_mentor(session, "s1")
        assert mentor is None or mentor.partnership is None


def test_actions_out_of_scope_is_refused_unless_nlu_was_unsure_about_a_clear_question():
    question = "hoeveel uur krijg ik als mentor in noord-holland per semester"
    messages, _ = run(ActionOutOfScope(), tracker("s1", "wat voor weer wordt het morgen in alkmaar", "out_of_scope", confidence=0.6))
    assert messages[0]["response"] == "utter_out_of_scope"
    messages, _ = run(ActionOutOfScope(), tracker("s1", question, "out_of_scope", confidence=0.95))
    assert messages[0]["response"] == "utter_out_of_scope"  # NLU was sure: never answered from the KB
    messages, events = run(ActionOutOfScope(), tracker("s1", question, "out_of_scope", confidence=0.6))
    assert "Bron:" in messages[0]["text"] and events[0]["value"].startswith("uren.")


def texts(messages: list[dict]) -> list[str]:
    return [m.get("text") or "" for m in messages]


def test_actions_scan_stores_valid_answer_and_asks_next_in_one_call():
    scan.start("s1", "rest")
    messages, events = answer("s1", "helemaal mee eens", "inform_scan_answer")
    assert events == []  # no slot events: the database holds the progress
    assert len(messages) == 1 and "Vraag 2 van 37" in messages[0]["text"] and len(messages[0]["buttons"]) == 5
    assert stored("s1") == {"1.1.a": "5"}


def test_actions_scan_loop_activates_itself_and_asks_after_the_start():
    scan.start("s1", "rest")
    messages, events = run(ActionScanAnswer(), tracker("s1", "mentorscan", "start_scan", latest_action="action_start_scan"))
    assert events == [ActiveLoop(SCAN_LOOP)] and "Vraag 1 van 37" in messages[0]["text"]
    messages, events = ask("s1", after="action_answer_question")  # back from a knowledge question
    assert events == [] and "Vraag 1 van 37" in messages[0]["text"]
    assert stored("s1") == {}


def test_actions_scan_nonsense_gets_a_hint_and_the_question_again_and_nothing_is_stored():
    scan.start("s1", "rest")
    messages, events = answer("s1", "asdfgh", "out_of_scope")
    assert events == []
    assert "1 tot en met 5" in messages[0]["text"] and "Vraag 1 van 37" in messages[1]["text"]
    assert scan.current_prompt("s1").item_id == "1.1.a"


def test_actions_scan_pause_is_an_interruption_not_an_answer():
    scan.start("s1", "rest")
    messages, events = answer("s1", "pauze", "pause_scan")
    assert messages == [] and events == [ActionExecutionRejected(SCAN_LOOP)]  # rules run action_pause_scan
    messages, events = run(ActionPauseScan(), tracker("s1", "pauze", "pause_scan", active_loop=SCAN_LOOP))
    assert "0 antwoorden" in messages[0]["text"]
    assert events == [ActiveLoop(None)]


def test_actions_scan_answer_with_an_interrupting_intent_still_counts():
    scan.start("s1", "rest")
    _, events = answer("s1", "4", "help")  # misclassified, but a valid answer to the item
    assert events == []
    assert scan.current_prompt("s1").item_id == "1.1.b"


def test_actions_scan_redelivered_message_is_stored_once():
    scan.start("s1", "rest")
    answer("s1", "4", "inform_scan_answer", metadata={"message_id": "m-1"})
    messages, _ = answer("s1", "2", "inform_scan_answer", metadata={"message_id": "m-1"})  # same delivery again
    assert stored("s1") == {"1.1.a": "4"} and "Vraag 2 van 37" in messages[0]["text"]


def test_actions_scan_last_answer_shows_results_and_starts_a_new_session():
    scan.start("s1", "rest")
    while (item := scan.current_item("s1")) is not None and len(stored("s1")) < 36:
        scan.submit("s1", "rest", "geen" if item.type == "open_text" else "4" if item.scale == "likert5" else "ja")
    item = scan.current_item("s1")
    value = "geen" if item.type == "open_text" else "4" if item.scale == "likert5" else "ja"
    messages, events = answer("s1", value, "inform_scan_answer")
    assert "Klaar" in texts(messages)[0] and "gemiddelde" in " ".join(texts(messages))
    assert events == [ActiveLoop(None), FollowupAction("action_session_start")]
    with storage.session_scope() as session:
        runs = storage.completed_runs(session, storage.find_mentor(session, "s1").id, "mentorscan")
        assert len(runs) == 1 and len(storage.run_answers(session, runs[0].id)) == 37


def press(sender: str, item_id: str, value: str):
    """A scan button as Rasa parses its payload: intent inform_scan_answer with item and value entities."""
    entities = [{"entity": "scan_item", "value": item_id}, {"entity": "scan_value", "value": value}]
    return answer(sender, scan.button_payload(item_id, value), "inform_scan_answer", entities)


def stored(sender: str) -> dict:
    with storage.session_scope() as session:
        mentor = storage.find_mentor(session, sender)
        run = storage.open_run(session, mentor.id, "mentorscan")
        return storage.run_answers(session, run.id) if run else {}


def test_actions_scan_question_buttons_name_their_item():
    scan.start("s1", "rest")
    asked, _ = ask("s1")
    payloads = [b["payload"] for b in asked[0]["buttons"]]
    assert payloads == [scan.button_payload("1.1.a", value) for value in ["1", "2", "3", "4", "5"]]


def test_actions_scan_button_of_current_item_is_stored():
    scan.start("s1", "rest")
    messages, events = press("s1", "1.1.a", "4")
    assert events == [] and "Vraag 2 van 37" in messages[0]["text"]
    assert stored("s1") == {"1.1.a": "4"}


def test_actions_scan_old_button_is_refused_with_an_explanation():
    scan.start("s1", "rest")
    answer("s1", "3", "inform_scan_answer")
    messages, events = press("s1", "1.1.a", "1")
    assert events == []
    assert texts(messages)[0] == scan.STALE_EARLIER and "Vraag 2 van 37" in texts(messages)[1]  # asked again
    assert stored("s1") == {"1.1.a": "3"}


def test_actions_scan_old_button_on_an_open_question_is_not_taken_as_text():
    scan.start("s1", "rest")
    while (item := scan.current_item("s1")).type != "open_text":
        scan.submit("s1", "rest", "4" if item.scale == "likert5" else "ja")
    messages, events = press("s1", "1.1.a", "2")
    assert events == [] and messages[0]["text"] == scan.STALE_EARLIER
    assert item.id not in stored("s1") and scan.current_item("s1").id == item.id


def test_actions_report_is_refused_for_mentors():
    messages, _ = run(ActionReport(), tracker("s1", "rapport voor mijn school", "ask_report"))
    assert "alleen voor schoolopleiders" in messages[0]["text"]


@pytest.mark.parametrize("entities", [
    [{"entity": "mentor_id", "value": "victim"}],
    [{"entity": "sender_id", "value": "victim"}],
    [{"entity": "kb_entry", "value": "victim"}],
])
def test_actions_crafted_payload_cannot_show_another_mentors_data(entities):
    scan.start("victim", "rest")
    scan.submit("victim", "rest", "5")
    messages, _ = run(ActionShowMyData(), tracker("attacker", '/show_my_data{"mentor_id": "victim"}', "show_my_data",
                                                  entities=entities))
    shown = " ".join(m.get("text") or "" for m in messages) + str([m.get("json_message") for m in messages])
    assert "Ik heb niets over je opgeslagen" in shown
    assert "victim" not in shown


def test_actions_delete_asks_confirmation_then_deletes(tracker_events):
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "5")
    messages, events = run(ActionDeleteMyData(), tracker("s1", "verwijder mijn gegevens", "delete_my_data"))
    assert "Weet je het zeker" in messages[0]["text"] and events == []
    assert privacy.export("s1") is not None
    messages, events = run(ActionDeleteMyData(), tracker("s1", "/delete_my_data", "delete_my_data",
                                                        entities=[{"entity": "confirm", "value": "ja"}]))
    assert "1 antwoorden" in messages[0]["text"] or "1 vragenlijst" in messages[0]["text"]
    assert privacy.export("s1") is None
    assert events[0]["event"] == "restart"


def test_actions_delete_tells_the_truth_when_the_conversation_store_fails():
    """No tracker store reachable (no events table): nothing deleted, and the mentor is told so."""
    scan.start("s1", "rest")
    messages, events = run(ActionDeleteMyData(), tracker("s1", "/delete_my_data", "delete_my_data",
                                                        entities=[{"entity": "confirm", "value": "ja"}]))
    assert "niet gelukt" in messages[0]["text"] and "niets verwijderd" in messages[0]["text"]
    assert "Verwijderd" not in messages[0]["text"] and events == []
    assert privacy.export("s1") is not None


def test_actions_session_start_after_deletion_registers_nobody():
    tracked = tracker("s9", "/delete_my_data", "delete_my_data")
    tracked.events.append({"event": "action", "name": "action_delete_my_data"})
    tracked.events.append({"event": "restart"})
    messages, _ = run(ActionSessionStart(), tracked)
    assert messages  # the notice for a new start is shown ...
    assert privacy.export("s9") is None  # ... but nothing is stored until the mentor writes again


def test_actions_link_account_issues_a_code_and_redeems_one_typed_in_a_sentence():
    scan.start("tg-1", "telegram")
    scan.submit("tg-1", "telegram", "5")
    messages, _ = run(ActionLinkAccount(), tracker("tg-1", "koppel mijn account", "link_account"))
    code = linking.find_link_code(messages[0]["text"])
    assert code and f"Je koppelcode is {code}" in messages[0]["text"]
    # Typed lower-case inside a sentence and not extracted as an entity: still redeemed, no new code.
    messages, _ = run(ActionLinkAccount(), tracker("teams-1", f"mijn koppelcode is {code.lower()} graag koppelen",
                                                   "link_account"))
    assert messages[0]["text"].startswith("Gelukt")
    assert privacy.export("teams-1") == privacy.export("tg-1")
    messages, _ = run(ActionLinkAccount(), tracker("teams-2", code, "link_account",
                                                   entities=[{"entity": "link_code", "value": code}]))
    assert "ken ik niet" in messages[0]["text"]  # single use


# --- a new questionnaire needs only YAML ---------------------------------------------------

INTERVISIE = textwrap.dedent("""\
    id: intervisie
    version: 1
    title: Terugblik intervisie
    source: {document: isop-mentortraining, section: "Intervisie"}
    intro: |
      Een korte terugblik op de intervisiebijeenkomst: 3 vragen.
    start:
      button: Terugblik intervisie invullen
      keywords: [intervisie, intervisiebijeenkomst]
    scales:
      likert5:
        type: likert5
        options:
          - {value: "1", label: "helemaal oneens"}
          - {value: "2", label: "oneens"}
          - {value: "3", label: "niet oneens, niet eens"}
          - {value: "4", label: "eens"}
          - {value: "5", label: "helemaal eens"}
      ja_nee:
        type: yes_no
        options: [{value: "nee", label: "nee"}, {value: "ja", label: "ja"}]
    sections:
      - id: "1"
        part: "Terugblik"
        items:
          - {id: "1.a", text: "De casus die we bespraken was herkenbaar voor mij.", scale: likert5}
          - {id: "1.b", text: "Ik neem iets mee naar de begeleiding van mijn student.", scale: ja_nee}
          - {id: "1.c", text: "Wat neem je mee?", type: open_text}
    """)


@pytest.fixture
def third_questionnaire(tmp_path, monkeypatch):
    """A copy of knowledge/ with a third questionnaire added as one YAML file, and nothing else changed."""
    copy = tmp_path / "knowledge"
    shutil.copytree(get_settings().knowledge_dir, copy)
    (copy / "questionnaires" / "intervisie.yml").write_text(INTERVISIE, encoding="utf-8")
    monkeypatch.setenv("MENTORWIJZER_KNOWLEDGE_DIR", str(copy))
    get_settings.cache_clear()
    yield "intervisie"
    get_settings.cache_clear()


def start(sender: str, text: str, intent: str = "start_scan", entities: list | None = None, slots: dict | None = None):
    return run(ActionStartScan(), tracker(sender, text, intent, entities, slots=slots))


def test_actions_start_button_of_a_questionnaire_from_yaml_starts_it_and_it_completes(third_questionnaire):
    payload = start_payload("intervisie")
    messages, events = start("s1", payload, entities=[{"entity": "questionnaire", "value": "intervisie"}])
    assert texts(messages) == ["Een korte terugblik op de intervisiebijeenkomst: 3 vragen."]
    assert events == [SlotSet("questionnaire", "intervisie")]
    slots = {"questionnaire": "intervisie"}
    messages, events = run(ActionScanAnswer(), tracker("s1", payload, "start_scan", slots=slots,
                                                        latest_action="action_start_scan"))
    assert events == [ActiveLoop(SCAN_LOOP)] and "Vraag 1 van 3" in messages[0]["text"]
    for text, asked in [("eens", "Vraag 2 van 3"), ("ja hoor", "Vraag 3 van 3")]:
        messages, events = run(ActionScanAnswer(), tracker("s1", text, "inform_scan_answer", slots=slots,
                                                            active_loop=SCAN_LOOP))
        assert events == [] and asked in messages[0]["text"]
    messages, events = run(ActionScanAnswer(), tracker("s1", "vaker doorvragen", "inform_scan_answer", slots=slots,
                                                        active_loop=SCAN_LOOP))
    assert "terugblik intervisie" in texts(messages)[0] and "vaker doorvragen" in " ".join(texts(messages))
    assert events == [ActiveLoop(None), FollowupAction("action_session_start")]
    with storage.session_scope() as session:
        runs = storage.completed_runs(session, storage.find_mentor(session, "s1").id, "intervisie")
        assert len(runs) == 1
        assert storage.run_answers(session, runs[0].id) == {"1.a": "4", "1.b": "ja", "1.c": "vaker doorvragen"}


def test_actions_typed_request_picks_the_questionnaire_its_yaml_keywords_name(third_questionnaire):
    _, events = start("s1", "ik wil de vragenlijst over de intervisie invullen")
    assert events == [SlotSet("questionnaire", "intervisie")]
    _, events = start("s2", "kan ik die intervisiebijeenkomst nog evalueren")  # the more specific keyword wins
    assert events == [SlotSet("questionnaire", "intervisie")]
    _, events = start("s3", "een vragenlijst over mijn begeleiding")  # no other keywords: the mentorscan
    assert events == [SlotSet("questionnaire", "mentorscan")]
    _, events = start("s4", "evaluatie invullen", intent="start_evaluation")  # an intent of its own, from its YAML
    assert events == [SlotSet("questionnaire", "evaluatie-mentortraining")]


def test_actions_start_button_naming_no_questionnaire_starts_the_mentorscan(third_questionnaire):
    for crafted in ["../sources", "bestaat-niet"]:
        _, events = start("s1", f"/start_scan{{\"questionnaire\":\"{crafted}\"}}",
                          entities=[{"entity": "questionnaire", "value": crafted}])
        assert events == [SlotSet("questionnaire", "mentorscan")]


def test_actions_stray_answer_offers_every_questionnaire_by_its_yaml_button(third_questionnaire):
    messages, _ = run(ActionStrayScanAnswer(), tracker("s1", "4", "inform_scan_answer"))
    offered = [(b["title"], b["payload"]) for b in messages[0]["buttons"]]
    assert offered == [("Mentorscan invullen", start_payload("mentorscan")),
                       ("Evaluatie mentortraining invullen", start_payload("evaluatie-mentortraining")),
                       ("Terugblik intervisie invullen", start_payload("intervisie")),
                       ("Wat kun je?", "/help")]


def test_actions_start_evaluation_inside_the_mentorscan_is_an_interruption():
    scan.start("s1", "rest")
    _, events = answer("s1", "evaluatie invullen", "start_evaluation")
    assert events == [ActionExecutionRejected(SCAN_LOOP)]  # the rule starts the evaluation
    assert stored("s1") == {}


@pytest.mark.parametrize("text,intent", [
    ("mijn resultaten", "show_results"),
    ('/vote_up{"kb_entry": "rol.schoolopleider"}', "vote_up"),
    ("/start_scan", "start_scan"),
])
def test_actions_scan_open_question_is_not_answered_by_a_request_or_another_button(text, intent):
    """On the learning-goal question nearly any text is an answer, but not 'mijn resultaten' or a
    button of something else: the loop hands it to the rules and stores nothing."""
    scan.start("s1", "rest")
    while (item := scan.current_item("s1")).type != "open_text":
        scan.submit("s1", "rest", "4" if item.scale == "likert5" else "ja")
    _, events = answer("s1", text, intent)
    assert [e["event"] for e in events] == ["action_execution_rejected"]
    assert item.id not in stored("s1")
    answer("s1", "Ik wil beter leren doseren in mijn feedback.", "inform_scan_answer")  # the last item
    with storage.session_scope() as session:
        run = storage.completed_runs(session, storage.find_mentor(session, "s1").id, "mentorscan")[0]
        assert storage.run_answers(session, run.id)[item.id] == "Ik wil beter leren doseren in mijn feedback."
