"""A questionnaire in a conversation: each answer committed at once, resumable, correctable."""
from __future__ import annotations

from bot import scan, storage
from bot.questionnaire import load_questionnaire


def answer_all(sender: str, likert: str = "4", questionnaire_id: str = "mentorscan") -> scan.Turn:
    turn = None
    while True:
        prompt = scan.current_prompt(sender, questionnaire_id)
        if prompt is None:
            return turn
        value = prompt.buttons[-1][1] if prompt.buttons else "Beter doseren."
        if prompt.buttons and prompt.buttons[0][1] == "1":
            value = likert
        turn = scan.submit(sender, "rest", value, questionnaire_id)


def test_scan_start_shows_first_item_with_heading_progress_and_buttons():
    resumed, prompt = scan.start("s1", "rest")
    assert not resumed
    assert prompt.item_id == "1.1.a"
    assert "Begeleidingsvaardigheden" in prompt.text and "Vraag 1 van 37" in prompt.text
    assert [p for _, p in prompt.buttons] == ["1", "2", "3", "4", "5"]
    assert "helemaal eens" in prompt.buttons[-1][0]


def test_scan_answer_is_committed_before_the_next_question():
    scan.start("s1", "rest")
    turn = scan.submit("s1", "rest", "eens")
    assert turn.status == "stored" and turn.prompt.item_id == "1.1.b"
    storage.reset_caches()  # a new process: nothing cached
    with storage.session_scope() as session:
        run = storage.open_run(session, storage.find_mentor(session, "s1").id, "mentorscan")
        assert storage.run_answers(session, run.id) == {"1.1.a": "4"}


def test_scan_invalid_answer_repeats_the_question_with_a_hint():
    scan.start("s1", "rest")
    turn = scan.submit("s1", "rest", "paarse olifant")
    assert turn.status == "invalid" and "1 tot en met 5" in turn.hint
    assert turn.prompt.item_id == "1.1.a"


def test_scan_resume_continues_where_the_mentor_left_off():
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "3")
    scan.submit("s1", "rest", "2")
    assert scan.pause("s1") == (2, 37)
    storage.reset_caches()
    resumed, prompt = scan.start("s1", "rest")
    assert resumed and prompt.item_id == "1.1.c"


def test_scan_go_back_changes_the_previous_answer_then_continues():
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "3")
    scan.submit("s1", "rest", "2")
    prompt = scan.go_back("s1")
    assert prompt.item_id == "1.1.b" and "vorige antwoord was: 2" in prompt.text
    turn = scan.submit("s1", "rest", "5")
    assert turn.prompt.item_id == "1.1.c"
    with storage.session_scope() as session:
        run = storage.open_run(session, storage.find_mentor(session, "s1").id, "mentorscan")
        assert storage.run_answers(session, run.id) == {"1.1.a": "3", "1.1.b": "5"}


def test_scan_complete_gives_results_and_a_new_run_keeps_the_old_one():
    scan.start("s1", "rest")
    assert answer_all("s1", likert="4").status == "completed"
    result, runs = scan.latest_results("s1")
    assert runs == 1 and all(r.average == 4.0 for r in result.sections if r.average is not None)
    text = "\n".join(scan.summary_messages(result))
    assert "4,0" in text and "Beter doseren." in text
    resumed, prompt = scan.start("s1", "rest")
    assert not resumed and prompt.item_id == "1.1.a"
    answer_all("s1", likert="2")
    result, runs = scan.latest_results("s1")
    assert runs == 2 and result.lowest[0].average == 2.0


def test_scan_summary_names_lowest_section_chapter_and_no_items():
    scan.start("s1", "rest")
    while (prompt := scan.current_prompt("s1")) is not None:
        values = [p for _, p in prompt.buttons]
        if prompt.item_id.startswith("1.7"):
            value = "1"
        elif values == ["1", "2", "3", "4", "5"]:
            value = "4"
        elif values:
            value = "nee" if prompt.item_id == "2.3.c" else "ja"
        else:
            value = "geen"
        scan.submit("s1", "rest", value)
    result, _ = scan.latest_results("s1")
    text = "\n".join(scan.summary_messages(result))
    assert "1.7" in text and "5.3" in text and "intervisie" in text
    assert load_questionnaire("mentorscan").item("2.3.c").text in text
    assert "leerdoelen" not in text.lower()  # 'geen' is not repeated back as a goal


def test_scan_evaluation_form_runs_through_the_same_flow():
    resumed, prompt = scan.start("s2", "rest", "evaluatie-mentortraining")
    assert prompt.item_id == "1"
    assert answer_all("s2", questionnaire_id="evaluatie-mentortraining").status == "completed"
    with storage.session_scope() as session:
        runs = storage.completed_runs(session, storage.find_mentor(session, "s2").id, "evaluatie-mentortraining")
        assert len(runs) == 1 and len(storage.run_answers(session, runs[0].id)) == 21


def test_scan_redelivered_message_is_not_applied_to_the_next_question():
    scan.start("s1", "rest")
    first = scan.submit("s1", "rest", "4", message_id="tg-update-1")
    again = scan.submit("s1", "rest", "4", message_id="tg-update-1")  # reply was lost, channel retries
    assert first.prompt.item_id == again.prompt.item_id == "1.1.b"
    scan.submit("s1", "rest", "2", message_id="tg-update-2")
    with storage.session_scope() as session:
        run = storage.open_run(session, storage.find_mentor(session, "s1").id, "mentorscan")
        assert storage.run_answers(session, run.id) == {"1.1.a": "4", "1.1.b": "2"}


def stored(sender: str) -> dict[str, str]:
    with storage.session_scope() as session:
        run = storage.open_run(session, storage.find_mentor(session, sender).id, "mentorscan")
        return storage.run_answers(session, run.id)


def test_scan_button_payload_names_item_and_value():
    _, prompt = scan.start("s1", "rest")
    payloads = [p for _, p in prompt.payload_buttons]
    assert payloads[0] == '/inform_scan_answer{"scan_item":"1.1.a","scan_value":"1"}'
    assert payloads == [scan.button_payload("1.1.a", value) for value in ["1", "2", "3", "4", "5"]]
    assert [t for t, _ in prompt.payload_buttons] == [t for t, _ in prompt.buttons]


def test_scan_button_payloads_fit_in_telegram_callback_data():
    questionnaire = load_questionnaire("mentorscan")
    for item in questionnaire.items:
        scale = questionnaire.scale_of(item)
        for option in scale.options if scale else []:
            assert len(scan.button_payload(item.id, option.value).encode("utf-8")) <= 64


def test_scan_button_of_current_item_is_stored():
    scan.start("s1", "rest")
    turn = scan.submit("s1", "rest", "4", item_id="1.1.a")
    assert turn.status == "stored" and turn.prompt.item_id == "1.1.b"
    assert stored("s1") == {"1.1.a": "4"}


def test_scan_button_of_earlier_item_is_refused_and_stores_nothing():
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "3")
    scan.submit("s1", "rest", "2")
    turn = scan.submit("s1", "rest", "1", item_id="1.1.a")
    assert turn.status == "stale" and turn.hint == scan.STALE_EARLIER
    assert "eerdere vraag" in turn.hint and "niets opgeslagen" in turn.hint
    assert turn.prompt.item_id == "1.1.c" and "Vraag 3 van 37" in turn.prompt.text
    assert stored("s1") == {"1.1.a": "3", "1.1.b": "2"}


def test_scan_button_of_unknown_item_is_refused_as_another_question():
    scan.start("s1", "rest")
    turn = scan.submit("s1", "rest", "4", item_id="9.9.z")
    assert turn.status == "stale" and turn.hint == scan.STALE_OTHER
    assert stored("s1") == {}


def test_scan_button_of_item_being_edited_is_current():
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "3")
    scan.submit("s1", "rest", "2")
    scan.go_back("s1")
    turn = scan.submit("s1", "rest", "5", item_id="1.1.b")
    assert turn.status == "stored" and turn.prompt.item_id == "1.1.c"
    assert stored("s1") == {"1.1.a": "3", "1.1.b": "5"}


def test_scan_button_of_the_open_item_is_refused_while_editing_another():
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "3")
    scan.go_back("s1")  # edits 1.1.a; the keyboard of 1.1.b is still on screen
    turn = scan.submit("s1", "rest", "5", item_id="1.1.b")
    assert turn.status == "stale" and turn.hint == scan.STALE_OTHER and turn.prompt.item_id == "1.1.a"
    assert stored("s1") == {"1.1.a": "3"}


def test_scan_button_press_redelivered_is_not_refused_or_applied_again():
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "4", message_id="tg-1", item_id="1.1.a")
    turn = scan.submit("s1", "rest", "4", message_id="tg-1", item_id="1.1.a")
    assert turn.status == "stored" and turn.item_id == "1.1.a" and turn.prompt.item_id == "1.1.b"
    assert stored("s1") == {"1.1.a": "4"}


def test_scan_typed_answer_always_answers_the_current_item():
    scan.start("s1", "rest")
    scan.submit("s1", "rest", "3")
    turn = scan.submit("s1", "rest", "meestal wel")
    assert turn.status == "stored" and turn.item_id == "1.1.b"
    assert stored("s1") == {"1.1.a": "3", "1.1.b": "4"}


def test_scan_which_questionnaire_a_start_or_continue_request_means():
    evaluation = "evaluatie-mentortraining"
    assert scan.questionnaire_to_start("s1", "start_scan", "/start_scan", requested=evaluation) == evaluation
    assert scan.questionnaire_to_start("s1", "start_scan", "../sources", requested="../sources") == "mentorscan"
    assert scan.questionnaire_to_start("s1", "start_evaluation", "evaluatie") == evaluation  # its own intent
    assert scan.questionnaire_to_start("s1", "start_scan", "het evaluatieformulier invullen") == evaluation
    assert scan.questionnaire_to_start("s1", "start_scan", "vragenlijst graag") == "mentorscan"
    scan.start("s1", "rest", evaluation)
    scan.pause("s1", evaluation)
    # 'ga verder': the pause button and a text naming no open questionnaire resume the one worked on
    assert scan.questionnaire_to_start("s1", "continue_scan", "/continue_scan", current=evaluation) == evaluation
    assert scan.questionnaire_to_start("s1", "continue_scan", "ga verder met de scan") == evaluation
    scan.start("s1", "rest")  # now the mentorscan is open too, and the last one worked on
    assert scan.questionnaire_to_start("s1", "continue_scan", "verder met de evaluatie") == evaluation
    assert scan.questionnaire_to_start("s1", "continue_scan", "verder") == "mentorscan"


def test_scan_start_buttons_put_the_mentorscan_first():
    assert [title for title, _ in scan.start_buttons()] == ["Mentorscan invullen", "Evaluatie mentortraining invullen"]
