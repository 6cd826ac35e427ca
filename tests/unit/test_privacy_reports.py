"""A mentor's own data (see, export, delete) and k-anonymous group reports (linking: test_linking.py)."""
from __future__ import annotations

import csv
import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from bot import linking, privacy, reports, scan, storage
from bot.cli import main as cli


def complete_scan(sender: str, likert: str = "4", school: str | None = None, goal: str = "Beter doseren.",
                  yes_no: str = "nee", answers: dict[str, str] | None = None) -> None:
    """All likert items ``likert``, all yes/no items ``yes_no``, except the item ids in ``answers``."""
    scan.start(sender, "rest")
    while (prompt := scan.current_prompt(sender)) is not None:
        values = [p for _, p in prompt.buttons]
        value = likert if values and values[0] == "1" else (yes_no if values else goal)
        scan.submit(sender, "rest", (answers or {}).get(prompt.item_id, value))
    if school:
        with storage.session_scope() as session:
            storage.find_mentor(session, sender).school = school


def test_privacy_first_contact_is_true_only_once():
    assert privacy.first_contact("p1", "rest") is True
    assert privacy.first_contact("p1", "rest") is False


def test_privacy_export_contains_profile_and_answers():
    complete_scan("p1")
    data = json.loads(privacy.export_json("p1"))
    assert data["channels"] == [{"channel": "rest", "sender_id": "p1"}]
    assert len(data["questionnaires"][0]["answers"]) == 37
    assert "37 antwoorden" in privacy.describe("p1")


def test_privacy_forget_deletes_answers_and_conversation_history(tracker_events):
    complete_scan("p1")
    for sender in ("p1", "p1", "other"):
        tracker_events(sender)
    counts = privacy.forget("p1")
    assert counts["answers"] == 37 and counts["conversation_events"] == 2
    with tracker_events.engine.connect() as c:
        assert c.execute(text("SELECT sender_id FROM events")).scalars().all() == ["other"]
    assert privacy.export("p1") is None


def test_privacy_cli_forget_by_sender_id(tracker_events, capsys):
    complete_scan("p9")
    assert cli(["forget", "p9"]) == 0
    assert "answers=37" in capsys.readouterr().out
    assert cli(["forget", "p9"]) == 1


def test_privacy_purge_removes_data_older_than_retention(tracker_events):
    complete_scan("old")
    complete_scan("new")
    with storage.session_scope() as session:
        mentor = storage.find_mentor(session, "old")
        mentor.last_seen_at = storage.utcnow() - timedelta(days=800)
        for run in mentor.runs:
            run.updated_at = storage.utcnow() - timedelta(days=800)
    assert cli(["purge"]) == 0
    assert privacy.export("old") is None and privacy.export("new") is not None


def test_reports_refuse_groups_smaller_than_three():
    complete_scan("a", school="De Regenboog")
    complete_scan("b", school="De Regenboog")
    with pytest.raises(reports.TooFewScans):
        reports.build(school="De Regenboog")


def test_reports_group_summary_without_individual_answers(tmp_path):
    for sender, likert in (("a", "2"), ("b", "4"), ("c", "3")):
        complete_scan(sender, likert, school="De Regenboog", goal=f"doel van {sender}")
    report = reports.build(school="De Regenboog")
    assert report.scans == 3
    first = next(s for s in report.sections if s.section_id == "1.1")
    assert first.average is None and first.distribution == {"2": None, "3": None, "4": None}
    assert report.goals == []
    paths = reports.write(report, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "3 afgeronde scans" in md and "doel van" not in md
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    assert {r["section"] for r in rows} >= {"1.1", "2.1"}
    assert (tmp_path / "out" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert len(paths) == 3
    with_goals = reports.build(school="De Regenboog", with_goals=True)
    assert sorted(with_goals.goals) == ["doel van a", "doel van b", "doel van c"]


def section(report: reports.GroupReport, section_id: str) -> reports.SectionSummary:
    return next(s for s in report.sections if s.section_id == section_id)


def test_reports_hide_distribution_counts_below_three():
    complete_scan("a", school="De Regenboog", answers={"1.1.a": "2", "1.1.b": "3", "1.2.a": "1"})
    complete_scan("b", school="De Regenboog", answers={"1.1.b": "3", "1.2.a": "1"})
    complete_scan("c", school="De Regenboog")
    report = reports.build(school="De Regenboog")
    assert section(report, "1.1").distribution == {"2": None, "3": None, "4": 3}
    assert section(report, "1.2").distribution == {"1": None, "4": 3}
    assert section(report, "1.3").distribution == {"4": 3}


def test_reports_keep_a_count_of_exactly_three():
    for sender in ("a", "b", "c"):
        complete_scan(sender, school="De Regenboog", answers={"1.1.a": "2"})
    assert section(reports.build(school="De Regenboog"), "1.1").distribution == {"2": 3, "4": 3}


ALL_OF_1_1 = ("1.1.a", "1.1.b", "1.1.c", "1.1.d", "1.1.e", "1.1.f", "1.1.g")


def test_reports_hide_a_value_one_mentor_gave_on_every_item_of_a_section():
    complete_scan("a", school="De Regenboog", answers={item: "2" for item in ALL_OF_1_1})
    for sender in ("b", "c", "d"):
        complete_scan(sender, school="De Regenboog")
    first = section(reports.build(school="De Regenboog"), "1.1")
    assert first.distribution == {"2": None, "4": 3} and first.average is None  # 7 answers "2", one mentor


def test_reports_count_three_mentors_giving_the_same_value_as_three():
    complete_scan("a", school="De Regenboog", answers={"1.1.a": "2"})
    complete_scan("b", school="De Regenboog", answers={"1.1.b": "2"})
    complete_scan("c", school="De Regenboog", answers={item: "2" for item in ALL_OF_1_1[2:]})
    assert section(reports.build(school="De Regenboog"), "1.1").distribution == {"2": 3, "4": 3}


def test_reports_give_an_average_when_every_value_comes_from_three_mentors():
    complete_scan("a", school="De Regenboog", answers={"1.1.a": "2"})
    complete_scan("b", school="De Regenboog", answers={"1.1.b": "2"})
    complete_scan("c", school="De Regenboog", answers={item: "2" for item in ALL_OF_1_1[2:]})
    assert section(reports.build(school="De Regenboog"), "1.1").average == round((7 * 2 + 14 * 4) / 21, 2)


def test_reports_give_no_average_for_a_section_with_a_hidden_count():
    complete_scan("a", school="De Regenboog", answers={"1.1.a": "1"})
    complete_scan("b", school="De Regenboog")
    complete_scan("c", school="De Regenboog")
    report = reports.build(school="De Regenboog")
    assert section(report, "1.1").average is None
    assert section(report, "1.2").average == 4.0


def test_reports_show_hidden_counts_as_less_than_three_in_markdown_and_csv(tmp_path):
    complete_scan("a", school="De Regenboog", answers={"1.1.a": "1"})
    complete_scan("b", school="De Regenboog")
    complete_scan("c", school="De Regenboog")
    reports.write(reports.build(school="De Regenboog"), tmp_path)
    assert "| 1.1 " in (md := (tmp_path / "report.md").read_text()) and "| – | 1: <3, 4: 3 |" in md
    rows = {r["section"]: r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert rows["1.1"]["mentors_per_value"] == "1=<3;4=3" and rows["1.1"]["average"] == ""
    assert rows["1.2"]["mentors_per_value"] == "4=3" and float(rows["1.2"]["average"]) == 4.0


def test_reports_say_in_markdown_and_csv_headings_that_counts_are_mentors(tmp_path):
    for sender in ("a", "b", "c"):
        complete_scan(sender, school="De Regenboog")
    reports.write(reports.build(school="De Regenboog"), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| onderdeel | gemiddelde | aantal mentoren per antwoord |" in md
    assert "hoger zijn dan het aantal mentoren" in md
    assert "mentors_per_value" in (tmp_path / "report.csv").read_text().splitlines()[0].split(",")


def test_reports_markdown_gives_nee_items_as_a_number_of_mentors():
    for sender in ("a", "b", "c"):
        complete_scan(sender, school="De Regenboog", yes_no="ja", answers={"2.1.a": "nee"})
    md = reports.to_markdown(reports.build(school="De Regenboog"))
    assert "(nee van 3 mentoren)" in md


def test_reports_list_nee_items_only_when_three_mentors_answered_nee():
    complete_scan("a", school="De Regenboog", yes_no="ja", answers={"2.1.a": "nee", "2.2.a": "nee", "2.3.a": "nee"})
    complete_scan("b", school="De Regenboog", yes_no="ja", answers={"2.1.a": "nee", "2.2.a": "nee"})
    complete_scan("c", school="De Regenboog", yes_no="ja", answers={"2.1.a": "nee"})
    report = reports.build(school="De Regenboog")
    assert [(item.id, count) for item, count in report.no_items] == [("2.1.a", 3)]


def test_reports_propose_no_chapter_for_an_unlisted_nee_item():
    complete_scan("a", school="De Regenboog", yes_no="ja", answers={"2.3.a": "nee"})
    complete_scan("b", school="De Regenboog", yes_no="ja")
    complete_scan("c", school="De Regenboog", yes_no="ja")
    report = reports.build(school="De Regenboog")
    assert report.no_items == [] and "6" not in [chapter.id for chapter in report.chapters]


def test_reports_build_leaves_out_the_excluded_mentor_before_counting():
    for sender in ("a", "b", "c"):
        complete_scan(sender, school="De Regenboog")
    with storage.session_scope() as session:
        excluded = storage.find_mentor(session, "a").id
    with pytest.raises(reports.TooFewScans) as error:
        reports.build(school="De Regenboog", exclude_mentor_id=excluded)
    assert error.value.found == 2


def test_reports_chat_leaves_out_the_requesters_own_scan():
    for sender in ("a", "b", "so-1"):
        complete_scan(sender, school="De Regenboog")
    messages = reports.chat_report("so-1")
    assert len(messages) == 1 and "pas 2 afgeronde scans" in messages[0].text


def test_reports_chat_leaves_out_scans_of_the_requesters_linked_channels():
    for sender in ("a", "b", "c", "so-tg"):
        complete_scan(sender, school="De Regenboog")
    assert linking.use_link_code("so-1", "teams", linking.create_link_code("so-tg", "telegram")) == "ok"
    assert reports.chat_report("so-1")[0].text.startswith("Groepsoverzicht De Regenboog (3 scans)")


def test_reports_chat_names_sections_without_average():
    complete_scan("a", school="De Regenboog", answers={"1.1.a": "1"})
    complete_scan("b", school="De Regenboog")
    complete_scan("c", school="De Regenboog")
    with storage.session_scope() as session:
        storage.mentor_for_sender(session, "so-1", "rest").school = "De Regenboog"
    text = reports.chat_report("so-1")[0].text
    assert "• 1.1:" not in text and "• 1.2: 4,0" in text
    assert "Zonder gemiddelde (een antwoord kwam daar van minder dan 3 mentoren): 1.1" in text


def test_cli_export_writes_one_row_per_answer(tmp_path, capsys):
    complete_scan("e1")
    out = tmp_path / "answers.csv"
    assert cli(["export", "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 37 and rows[0]["questionnaire"] == "mentorscan" and rows[0]["completed"] == "True"
    assert cli(["export", "--format", "json", "--questionnaire", "evaluatie-mentortraining"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_reports_in_chat_only_for_admins_and_only_groups(monkeypatch):
    from actions.privacy import ActionReport
    from bot.settings import get_settings
    from tests.actions.test_actions import run, tracker

    for sender in ("a", "b", "c"):
        complete_scan(sender, "3", school="De Regenboog")
    with storage.session_scope() as session:
        storage.mentor_for_sender(session, "so-1", "rest").school = "De Regenboog"
    refused, _ = run(ActionReport(), tracker("so-1", "rapport voor mijn school", "ask_report"))
    assert "alleen voor schoolopleiders" in refused[0]["text"]
    monkeypatch.setenv("MENTORWIJZER_REPORT_ADMINS", "so-1, so-2")
    get_settings.cache_clear()
    messages, _ = run(ActionReport(), tracker("so-1", "rapport voor mijn school", "ask_report"))
    assert "De Regenboog (3 scans)" in messages[0]["text"]
    assert messages[1]["image"].startswith("data:image/png;base64,")
    assert "Beter doseren." not in str(messages)  # learning goals never in chat


def test_training_signup_form_is_prefilled_with_school_count_and_topics(tmp_path):
    for sender, likert in (("a", "2"), ("b", "2"), ("c", "3")):
        complete_scan(sender, likert, school="De Regenboog")
    assert cli(["training-signup", "--school", "De Regenboog", "--out", str(tmp_path / "form.md")]) == 0
    form = (tmp_path / "form.md").read_text()
    assert "School/scholen: De Regenboog" in form
    assert "Deelnemende mentoren: 3" in form
    assert "Hoofdstuk" in form and "opleideninschool@iselinge.nl" in form
