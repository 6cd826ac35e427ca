"""Insight for the partnership: anonymous usage log, k-anonymous counts per answer, topic and school."""
from __future__ import annotations

import argparse
import base64
import csv
import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot import insights, storage, usage
from bot.knowledge import load_knowledge
from bot.settings import get_settings

NH = "noord-holland"
REVIEWED = "begrip.wpa"  # review: false in knowledge/ (noord-holland)
TO_REVIEW = "contact.stagnatie"  # review: true
OTHER = "uren.mentor"


def add_mentors(count: int, school: str | None = "De Regenboog", partnership: str = NH) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(count)]
    with storage.session_scope() as session:
        for mentor_id in ids:
            session.add(storage.Mentor(id=mentor_id, display_name=f"Juf {mentor_id[:6]}", school=school,
                                       partnership=partnership))
    return ids


def vote(mentor_id: str, entry_id: str, value: str, comment: str | None = None, partnership: str = NH,
         at: datetime | None = None) -> None:
    with storage.session_scope() as session:
        session.add(storage.Feedback(mentor_id=mentor_id, entry_id=entry_id, kb_version="test", partnership=partnership,
                                     vote=value, comment=comment, created_at=at or storage.utcnow()))


def forward(mentor_id: str, topic: str | None, status: str = "open", text: str = "Een vraag.",
            school: str = "De Regenboog", draft: bool = False, at: datetime | None = None) -> None:
    with storage.session_scope() as session:
        session.add(storage.Question(mentor_id=mentor_id, status=status, text=text, topic=topic, school=school,
                                     partnership=NH, sender_id=f"tg-{mentor_id}", created_at=at or storage.utcnow(),
                                     draft_requested_at=storage.utcnow() if draft else None))


def scan_run(mentor_id: str, state: str, questionnaire: str = "mentorscan", started: datetime | None = None) -> None:
    started = started or storage.utcnow()
    with storage.session_scope() as session:
        session.add(storage.ScanRun(mentor_id=mentor_id, questionnaire_id=questionnaire, questionnaire_version=1,
                                    started_at=started, updated_at=started,
                                    completed_at=started if state == "finished" else None,
                                    paused=state == "paused"))


def asked(entry_id: str | None, times: int, outcome: str = "answer", topic: str | None = None,
          partnership: str = NH) -> None:
    for _ in range(times):
        usage.record(entry_id, outcome, partnership, topic=topic)


def rows(path: Path, key: str) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row[key]: row for row in csv.DictReader(handle)}


def written(tmp_path: Path, **filters) -> dict[str, Path]:
    paths = insights.write(insights.build(**filters), tmp_path / "out")
    return {path.name: path for path in paths}


def md_row(md: str, first_cell: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


# --- usage ---------------------------------------------------------------------------------


def test_usage_record_writes_an_anonymous_row_for_the_day():
    usage.record(TO_REVIEW, "answer", NH)
    usage.record(None, "unknown", NH, topic="uren.mentor")
    with storage.session_scope() as session:
        logged = session.execute(select(storage.AnswerLog).order_by(storage.AnswerLog.id)).scalars().all()
    assert [(r.entry_id, r.topic, r.outcome, r.partnership) for r in logged] == [
        (TO_REVIEW, "contact", "answer", NH), (None, "uren", "unknown", NH)]
    today = storage.utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    assert all(r.day == today for r in logged)


def test_usage_topic_of_is_the_id_prefix_and_covers_every_entry():
    assert usage.topic_of("contact.stagnatie") == "contact"
    assert usage.topic_of("contact") == "contact"
    assert usage.topic_of("vraag:12") is None and usage.topic_of(None) is None and usage.topic_of("") is None
    topics = {usage.topic_of(entry.id) for entry in load_knowledge().entries}
    assert None not in topics and len(topics) <= 12  # a few groups, not one per entry


def test_usage_record_never_raises_on_a_broken_database(isolated_db, caplog):
    isolated_db.write_bytes(b"this is no database " * 200)
    with caplog.at_level(logging.WARNING, logger="bot.usage"):
        usage.record(TO_REVIEW, "answer", NH)
    assert "usage not recorded (DatabaseError)" in caplog.text


def test_usage_record_never_raises_on_an_unreachable_database(monkeypatch, caplog):
    monkeypatch.setenv("MENTORWIJZER_DB_URL", "postgresql://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    storage.reset_caches()
    with caplog.at_level(logging.WARNING, logger="bot.usage"):
        usage.record(None, "unknown", NH, topic="contact.stagnatie")
    assert "usage not recorded" in caplog.text


# --- per answer ------------------------------------------------------------------------------


def test_insights_counts_answers_votes_and_draft_requests_from_three(tmp_path):
    asked(TO_REVIEW, 5)
    ups = add_mentors(4)
    for mentor_id in ups:
        vote(mentor_id, TO_REVIEW, "up")
    downs = add_mentors(3)
    for mentor_id in downs:
        vote(mentor_id, TO_REVIEW, "down", comment="mist de stappen")
    # a mentor who changed their mind counts once, with the newest vote
    vote(ups[0], TO_REVIEW, "down", at=storage.utcnow() + timedelta(minutes=1))
    for mentor_id in downs:
        forward(mentor_id, TO_REVIEW, status="answered", draft=True)

    files = written(tmp_path)
    entry = rows(files["entries.csv"], "entry_id")[TO_REVIEW]
    assert (entry["answered"], entry["up"], entry["down"], entry["draft_requests"]) == ("5", "3", "4", "3")
    assert entry["review"] == "true" and entry["topic"] == "contact"
    assert rows(files["entries.csv"], "entry_id")[REVIEWED]["review"] == "false"
    md = files["report.md"].read_text(encoding="utf-8")
    assert md_row(md, TO_REVIEW)[2:] == ["5", "3", "4", "ja", "3"]


def test_insights_one_or_two_are_shown_as_below_three_and_zero_as_zero(tmp_path):
    asked(TO_REVIEW, 2)
    asked(REVIEWED, 4)
    mentor_id, = add_mentors(1)
    vote(mentor_id, REVIEWED, "down")

    files = written(tmp_path)
    entries = rows(files["entries.csv"], "entry_id")
    assert entries[TO_REVIEW]["answered"] == "<3"
    assert (entries[REVIEWED]["answered"], entries[REVIEWED]["up"], entries[REVIEWED]["down"]) == ("4", "0", "<3")
    assert entries[OTHER]["answered"] == "0"
    md = files["report.md"].read_text(encoding="utf-8")
    assert md_row(md, TO_REVIEW)[2] == "<3"
    assert md_row(md, REVIEWED)[2:5] == ["4", "0", "<3"]
    assert "'<3'" in md and "niemand herkenbaar" in md
    data = insights.build()
    assert next(e for e in data.entries if e.entry_id == TO_REVIEW).answered is None


def test_insights_hidden_counts_do_not_reveal_their_order(tmp_path):
    asked(OTHER, 2)
    asked(TO_REVIEW, 1)
    order = [e.entry_id for e in insights.build().entries]
    assert order.index(TO_REVIEW) < order.index(OTHER)  # by id (contact < uren), not 2 before 1


def test_insights_questions_from_fewer_than_three_mentors_are_hidden(tmp_path):
    two = add_mentors(2)
    for mentor_id in two * 2:  # four questions, two people
        forward(mentor_id, "uren.mentor", draft=True)
    files = written(tmp_path)
    assert rows(files["topics.csv"], "topic")["uren"]["forwarded"] == "<3"
    assert rows(files["entries.csv"], "entry_id")["uren.mentor"]["draft_requests"] == "<3"


# --- per topic -------------------------------------------------------------------------------


def test_insights_unanswered_and_forwarded_per_topic(tmp_path):
    asked(None, 4, outcome="unknown", topic="uren.mentor")
    asked(None, 1, outcome="unknown", topic="contact")
    asked(None, 3, outcome="suggest", topic="contact")  # offered a guess: not unanswered
    mentors = add_mentors(4)
    for mentor_id in mentors[:3]:
        forward(mentor_id, "contact.stagnatie", status="open")
    forward(mentors[3], "contact.stoppen", status="answered")
    forward(mentors[0], "contact.stoppen", status="draft")  # not sent
    forward(mentors[1], "contact.stoppen", status="cancelled")

    files = written(tmp_path)
    topics = rows(files["topics.csv"], "topic")
    assert (topics["uren"]["unanswered"], topics["uren"]["forwarded"]) == ("4", "0")
    assert (topics["contact"]["unanswered"], topics["contact"]["forwarded"]) == ("<3", "4")
    md = files["report.md"].read_text(encoding="utf-8")
    assert md_row(md, "uren")[1:] == ["4", "0"]
    chat = "\n".join(m.text for m in insights.chat_messages(insights.build()))
    assert "uren: 4×" in chat


# --- per school ------------------------------------------------------------------------------


def test_insights_scan_completion_per_school_counts_the_newest_run_per_mentor(tmp_path):
    earlier = storage.utcnow() - timedelta(days=2)
    regenboog = add_mentors(5, school="De Regenboog")
    for mentor_id in regenboog[:3]:
        scan_run(mentor_id, "finished")
    scan_run(regenboog[3], "paused")
    scan_run(regenboog[4], "finished", started=earlier)
    scan_run(regenboog[4], "in_progress")  # a redo: now in progress
    scan_run(regenboog[0], "in_progress", questionnaire="evaluatie")  # another questionnaire
    klimop = add_mentors(4, school="De Klimop")
    for mentor_id in klimop:
        scan_run(mentor_id, "in_progress")
    anywhere, = add_mentors(1, school=None)
    scan_run(anywhere, "paused")

    files = written(tmp_path)
    scans = rows(files["scans.csv"], "school")
    assert (scans["De Regenboog"]["in_progress"], scans["De Regenboog"]["paused"],
            scans["De Regenboog"]["finished"]) == ("<3", "<3", "3")
    assert (scans["De Klimop"]["in_progress"], scans["De Klimop"]["finished"]) == ("4", "0")
    assert scans[""]["paused"] == "<3"
    md = files["report.md"].read_text(encoding="utf-8")
    assert md_row(md, "De Regenboog")[1:] == ["<3", "<3", "3"]
    assert md_row(md, "school niet bekend")[1:] == ["0", "<3", "0"]
    chat = "\n".join(m.text for m in insights.chat_messages(insights.build()))
    assert "De Regenboog: 3 afgerond, <3 gepauzeerd, <3 bezig" in chat
    only = insights.build(school="De Klimop")
    assert [s.school for s in only.scans] == ["De Klimop"]


# --- filters ---------------------------------------------------------------------------------


def test_insights_partnership_school_and_since_filter(tmp_path):
    asked(REVIEWED, 3)
    asked(REVIEWED, 6, partnership="amsterdam")
    here = add_mentors(3, school="De Regenboog")
    there = add_mentors(3, school="De Klimop")
    long_ago = storage.utcnow() - timedelta(days=60)
    for mentor_id in here:
        vote(mentor_id, REVIEWED, "up")
    for mentor_id in there:
        vote(mentor_id, REVIEWED, "down")
        vote(mentor_id, OTHER, "down", at=long_ago)

    nh = {e.entry_id: e for e in insights.build(partnership=NH).entries}
    assert nh[REVIEWED].answered == 3
    assert "eis.mentor-amsterdam" not in nh  # an Amsterdam-only entry
    school = insights.build(school="De Regenboog")
    by_id = {e.entry_id: e for e in school.entries}
    assert (by_id[REVIEWED].up, by_id[REVIEWED].down) == (3, 0)
    assert by_id[REVIEWED].answered == 9  # the log has no school: all partnerships
    md = insights.to_markdown(school)
    assert "gelden voor alle scholen" in md
    recent = {e.entry_id: e for e in insights.build(since=storage.utcnow() - timedelta(days=7)).entries}
    assert recent[OTHER].down == 0 and recent[REVIEWED].down == 3


# --- privacy ---------------------------------------------------------------------------------


def test_insights_files_and_chat_contain_no_mentor_data(tmp_path):
    mentors = add_mentors(4)
    secrets = ["Mijn stagiaire Fleur Jansen huilt elke ochtend", "Het antwoord klopt niet voor groep 3 van Ahmed"]
    for mentor_id in mentors:
        vote(mentor_id, TO_REVIEW, "down", comment=secrets[1])
        forward(mentor_id, TO_REVIEW, status="answered", text=secrets[0], draft=True)
        scan_run(mentor_id, "finished")
    asked(TO_REVIEW, 4)

    files = written(tmp_path)
    chat = insights.chat_messages(insights.build())
    texts = [path.read_text(encoding="utf-8") for name, path in files.items() if name != "chart.png"]
    texts += [m.text for m in chat]
    with storage.session_scope() as session:
        names = session.execute(select(storage.Mentor.display_name)).scalars().all()
    forbidden = [*mentors, *names, *(f"tg-{m}" for m in mentors), *secrets, "Fleur", "Ahmed"]
    for text in texts:
        for word in forbidden:
            assert word not in text
    assert rows(files["entries.csv"], "entry_id")[TO_REVIEW]["down"] == "4"  # the data is there, the people not


def test_insights_csv_cells_are_not_spreadsheet_formulas(tmp_path):
    for mentor_id in add_mentors(3, school="=HYPERLINK(\"http://x\")"):
        scan_run(mentor_id, "finished")
    files = written(tmp_path)
    assert "'=HYPERLINK" in files["scans.csv"].read_text(encoding="utf-8")


# --- chart, chat and command line -------------------------------------------------------------


def test_insights_chart_is_a_small_png_and_the_chat_fits_one_activity(tmp_path):
    entries = [e.id for e in load_knowledge().entries][:12]
    for n, entry_id in enumerate(entries):
        asked(entry_id, 3 + n)
    files = written(tmp_path)
    png = files["chart.png"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) < 20_000

    messages = insights.chat_messages(insights.build())
    image = messages[-1].image
    assert image and image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]).startswith(b"\x89PNG")
    assert sum(len(m.text.encode()) + len((m.image or "").encode()) for m in messages) < 20_000
    top = messages[0].text.splitlines()
    assert len([line for line in top if line.startswith("•")]) == 5
    assert "14×" in top[2]  # the most asked first (3 + 11)


def test_insights_without_enough_data_still_writes_every_file(tmp_path):
    asked(TO_REVIEW, 1)
    files = written(tmp_path)
    assert set(files) == {"report.md", "entries.csv", "topics.csv", "scans.csv", "chart.png"}
    assert files["chart.png"].read_bytes().startswith(b"\x89PNG")
    messages = insights.chat_messages(insights.build())
    assert all(m.image is None for m in messages)
    assert "Nog geen antwoord is 3 keer of vaker gegeven" in messages[0].text


def test_insights_cli_writes_the_files_and_rejects_a_bad_date(tmp_path, capsys):
    asked(TO_REVIEW, 3)
    args = argparse.Namespace(out=str(tmp_path / "cli"), partnership=NH, school=None, since="2020-01-31")
    assert insights.cmd_insights(args) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["report.md", "entries.csv", "topics.csv", "scans.csv", "chart.png"]
    assert rows(Path(printed[1]), "entry_id")[TO_REVIEW]["answered"] == "3"
    assert "partnerschap noord-holland" in Path(printed[0]).read_text(encoding="utf-8")

    future = argparse.Namespace(out=str(tmp_path / "later"), partnership=None, school=None,
                                since=(storage.utcnow() + timedelta(days=2)).date().isoformat())
    assert insights.cmd_insights(future) == 0
    assert rows(tmp_path / "later" / "entries.csv", "entry_id")[TO_REVIEW]["answered"] == "0"

    bad = argparse.Namespace(out=str(tmp_path / "bad"), partnership=None, school=None, since="31-01-2025")
    assert insights.cmd_insights(bad) == 2
    assert "JJJJ-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
