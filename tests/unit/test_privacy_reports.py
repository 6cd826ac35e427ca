"""A mentor's own data (see, export, delete, link) and k-anonymous group reports."""
from __future__ import annotations

import csv
import json
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from bot import privacy, reports, scan, storage
from bot.cli import main as cli


def complete_scan(sender: str, likert: str = "4", school: str | None = None, goal: str = "Beter doseren.") -> None:
    scan.start(sender, "rest")
    while (prompt := scan.current_prompt(sender)) is not None:
        values = [p for _, p in prompt.buttons]
        value = likert if values and values[0] == "1" else ("nee" if values else goal)
        scan.submit(sender, "rest", value)
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


def test_privacy_forget_deletes_answers_and_conversation_history(isolated_db, tmp_path):
    complete_scan("p1")
    tracker_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    engine = create_engine(tracker_url, future=True)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, data TEXT)"))
        c.execute(text("INSERT INTO events (sender_id, data) VALUES ('p1', 'x'), ('p1', 'y'), ('other', 'z')"))
    counts = privacy.forget("p1")
    assert counts["answers"] == 37 and counts["conversation_events"] == 2
    with engine.connect() as c:
        assert c.execute(text("SELECT sender_id FROM events")).scalars().all() == ["other"]
    assert privacy.export("p1") is None


def test_privacy_link_code_shares_the_scan_between_channels():
    scan.start("tg-1", "telegram")
    scan.submit("tg-1", "telegram", "5")
    code = privacy.create_link_code("tg-1", "telegram")
    assert len(code) == 6
    assert privacy.use_link_code("teams-1", "teams", code) == "ok"
    assert privacy.use_link_code("teams-2", "teams", code) == "invalid"  # single use
    resumed, prompt = scan.start("teams-1", "teams")
    assert resumed and prompt.item_id == "1.1.b"


@pytest.mark.parametrize("text, code", [
    ("K7P2QX", "K7P2QX"),
    ("mijn koppelcode is k7p2qx, graag koppelen", "K7P2QX"),
    ("koppel mijn account", None),          # 6 letters, no digit: a word, not a code
    ("ik wil teams koppelen", None),
    ("code 0O1I23", None),                    # 0, O, 1 and I are never in a code
])
def test_privacy_find_link_code_only_accepts_codes(text, code):
    assert privacy.find_link_code(text) == code


def test_privacy_every_issued_link_code_is_recognised_when_typed():
    codes = [privacy.create_link_code("tg-1", "telegram") for _ in range(100)]
    assert all(privacy.find_link_code(f"mijn code is {code.lower()}") == code for code in codes)


def test_privacy_link_code_expires_after_ten_minutes():
    code = privacy.create_link_code("tg-1", "telegram")
    with storage.session_scope() as session:
        session.get(storage.LinkCode, code).expires_at = storage.utcnow() - timedelta(seconds=1)
    assert privacy.use_link_code("teams-1", "teams", code) == "expired"


def test_privacy_cli_forget_by_sender_id(capsys):
    complete_scan("p9")
    assert cli(["forget", "p9"]) == 0
    assert "answers=37" in capsys.readouterr().out
    assert cli(["forget", "p9"]) == 1


def test_privacy_purge_removes_data_older_than_retention():
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
    assert first.average == 3.0 and first.distribution == {"2": 7, "3": 7, "4": 7}
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
