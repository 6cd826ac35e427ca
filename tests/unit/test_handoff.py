"""Asking a person: staff registration and linking, routing, consent, answers, drafts, escalation,
and answer feedback (bot/staff.py, bot/handoff.py, bot/feedback.py)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import yaml
from sqlalchemy import select

from bot import feedback, handoff, linking, privacy, staff, storage
from bot.settings import get_settings

SCHOOL = "De Regenboog"
MENTOR = "mentor-1"


def outbox(**where) -> list[storage.OutboxMessage]:
    with storage.session_scope() as session:
        rows = session.execute(select(storage.OutboxMessage).order_by(storage.OutboxMessage.id)).scalars()
        return [row for row in rows if all(getattr(row, key) == value for key, value in where.items())]


def register(name="Anna de Vries", email="anna@regenboog.nl", school=SCHOOL, role=staff.SCHOOLOPLEIDER,
             partnership=None, sender="tg-900") -> staff.Registered:
    registered = staff.add(name, email, role, school, partnership)
    if sender:
        assert linking.use_link_code(sender, "telegram", registered.code) == "staff"
    return registered


def mentor_at(school: str | None = SCHOOL, sender: str = MENTOR, partnership: str | None = None) -> str:
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, sender, "rest")
        mentor.school, mentor.partnership = school, partnership
    return sender


def forwarded(text="Mag mijn student mee op schoolkamp?", sender=MENTOR) -> int:
    step = handoff.start(sender, "rest", text)
    kind, number = handoff.parse_awaiting(step.awaiting)
    assert kind == handoff.CONSENT
    handoff.send(sender, number)
    return number


# --- staff --------------------------------------------------------------------------------


def test_staff_code_links_the_chat_once_and_guards_against_guessing():
    registered = staff.add("Anna de Vries", "Anna@Regenboog.nl", staff.SCHOOLOPLEIDER, SCHOOL)
    assert linking.use_link_code("tg-900", "telegram", registered.code.lower()) == "staff"
    assert linking.use_link_code("tg-666", "telegram", registered.code) == "invalid"  # used up
    with storage.session_scope() as session:
        [member] = staff.of_sender(session, "tg-900")
        assert member.email == "anna@regenboog.nl" and member.name == "Anna de Vries"
        assert staff.of_sender(session, "tg-666") == []
        # also in the directory: 'wie is onze schoolopleider?' finds her
        assert session.execute(select(storage.Contact.name).where(storage.Contact.school == SCHOOL)).scalar_one() \
            == "Anna de Vries"


def test_expired_staff_code_is_refused(monkeypatch):
    registered = staff.add("Anna de Vries", "anna@regenboog.nl", staff.SCHOOLOPLEIDER, SCHOOL)
    with storage.session_scope() as session:
        session.get(storage.StaffCode, registered.code).expires_at = storage.utcnow() - timedelta(minutes=1)
    assert linking.use_link_code("tg-900", "telegram", registered.code) == "expired"
    assert not staff.list_all()[0]["linked"]


def test_staff_registration_needs_school_and_valid_email():
    with pytest.raises(staff.StaffError):
        staff.add("Anna", "anna@regenboog.nl", staff.SCHOOLOPLEIDER, None)
    with pytest.raises(staff.StaffError):
        staff.add("Anna", "geen-adres", staff.SCHOOLOPLEIDER, SCHOOL)


def test_routing_prefers_the_school_then_the_partnership_then_the_deployment():
    register()
    register("Piet", "piet@sonh.nl", school=None, role=staff.PARTNERSHIP_CONTACT, partnership="sonh", sender=None)
    register("Algemeen", "info@mentorwijzer.nl", school=None, role=staff.PARTNERSHIP_CONTACT, sender=None)
    with storage.session_scope() as session:
        assert staff.route(session, "de regenboog", "sonh").name == "Anna de Vries"
        assert staff.route(session, "Het Anker", "sonh").name == "Piet"
        assert staff.route(session, "Het Anker", "amsterdam").name == "Algemeen"


# --- the mentor's side --------------------------------------------------------------------


def test_nothing_is_sent_before_consent_and_the_preview_shows_text_and_recipient():
    register()
    mentor_at()
    step = handoff.start(MENTOR, "rest", "Mag mijn student mee op schoolkamp?")
    [message] = step.messages
    assert "“Mag mijn student mee op schoolkamp?”" in message.text
    assert "Anna de Vries (schoolopleider van De Regenboog)" in message.text
    assert [title for title, _ in message.buttons] == ["Versturen", "Aanpassen", "Annuleren"]
    assert outbox() == []  # not sent yet
    assert handoff.list_questions() == []  # drafts are not questions yet


def test_edit_then_send_notifies_the_schoolopleider_with_the_edited_text():
    register()
    mentor_at()
    step = handoff.start(MENTOR, "rest", "Mag Jan Jansen uit groep 8 mee op kamp?")
    _, number = handoff.parse_awaiting(step.awaiting)
    assert handoff.ask_edit(MENTOR, number).awaiting == f"edit:{number}"
    preview = handoff.edit(MENTOR, number, "Mag een leerling uit groep 8 mee op kamp?")
    assert "Jan Jansen" not in preview.messages[0].text and preview.awaiting == f"consent:{number}"
    sent = handoff.send(MENTOR, number)
    assert "Verstuurd naar Anna de Vries" in sent.messages[0].text and sent.notified
    [chat] = outbox()
    assert chat.sender_id == "tg-900" and chat.channel == "telegram" and chat.kind == "new_question"
    assert "Mag een leerling uit groep 8 mee op kamp?" in chat.text and "Jan Jansen" not in chat.text
    assert json.loads(chat.buttons) == [{"title": "Beantwoorden", "payload": handoff.answer_payload(number)}]
    # sending twice does not notify twice
    assert "al verstuurd" in handoff.send(MENTOR, number).messages[0].text
    assert len(outbox()) == 1


def test_cancel_deletes_the_draft_text():
    register()
    mentor_at()
    _, number = handoff.parse_awaiting(handoff.start(MENTOR, "rest", "Een vraag met een naam erin").awaiting)
    assert handoff.cancel(MENTOR, number).messages[0].text == "Oké, ik stuur niets door."
    with storage.session_scope() as session:
        assert session.get(storage.Question, number) is None
    assert outbox() == []


def test_someone_else_cannot_send_or_edit_a_mentors_draft():
    register()
    mentor_at()
    mentor_at(sender="intruder")
    _, number = handoff.parse_awaiting(handoff.start(MENTOR, "rest", "Mijn vraag").awaiting)
    assert "al verstuurd of geannuleerd" in handoff.send("intruder", number).messages[0].text
    handoff.edit("intruder", number, "Iets anders")
    handoff.cancel("intruder", number)
    with storage.session_scope() as session:
        question = session.get(storage.Question, number)
        assert question.status == "draft" and question.text == "Mijn vraag"


def test_without_school_or_registered_staff_the_mentor_is_told_what_to_do():
    mentor_at(school=None)
    assert "Op welke school werk je?" in handoff.start(MENTOR, "rest", "vraag").messages[0].text
    mentor_at(school="Het Anker")
    text = handoff.start(MENTOR, "rest", "vraag").messages[0].text
    assert "nog geen schoolopleider" in text and "Het Anker" in text


def test_email_goes_out_only_with_smtp_configured_or_when_the_staff_member_has_no_chat(monkeypatch):
    register(sender=None)  # not linked: e-mail is the only way to reach her
    mentor_at()
    forwarded()
    [mail] = outbox()
    assert mail.channel == "email" and mail.email_to == "anna@regenboog.nl" and "schoolkamp" in mail.text


# --- the staff side -----------------------------------------------------------------------


def test_only_the_routed_schoolopleider_may_see_and_answer_a_question():
    register()
    register("Bert", "bert@anker.nl", school="Het Anker", sender="tg-901")
    mentor_at()
    number = forwarded()
    assert handoff.open_for_staff(MENTOR) is None  # a mentor is not staff
    assert "Er staan geen vragen" in handoff.open_for_staff("tg-901").messages[0].text
    assert f"Nr. {number}" in handoff.open_for_staff("tg-900").messages[0].text
    for intruder in (MENTOR, "tg-901"):
        assert handoff.answer(number, "Nee hoor", sender_id=intruder)[0] == "not_allowed"
        assert handoff.answer_prompt(intruder, number).awaiting is None
    outcome, step = handoff.answer(number, "Ja, dat mag.", sender_id="tg-900")
    assert outcome == "ok" and "Toevoegen aan kennisbank" in [title for title, _ in step.messages[0].buttons]
    [answer] = outbox(kind="answer")
    assert answer.sender_id == MENTOR and answer.channel == "rest"
    assert "Ja, dat mag." in answer.text and "Had je hier iets aan?" in answer.text
    assert [b["payload"] for b in json.loads(answer.buttons)] == [payload for _, payload in feedback.buttons(f"vraag:{number}")]


def test_a_question_is_answered_once_even_from_chat_and_cli():
    register()
    mentor_at()
    number = forwarded()
    assert handoff.answer(number, "Eerste antwoord", sender_id="tg-900")[0] == "ok"
    assert handoff.answer(number, "Tweede antwoord")[0] == "not_open"
    assert len(outbox(kind="answer")) == 1
    [row] = handoff.list_questions("answered")
    assert row["answer"] == "Eerste antwoord" and row["routed_to"] == "Anna de Vries"


def test_draft_entries_are_valid_review_entries_with_their_source():
    register()
    mentor_at(partnership="sonh")
    number = forwarded("Telt schoolkamp als stage-uren?")
    assert "alleen met een vraag die jij hebt beantwoord" in handoff.request_draft(number, "tg-900").messages[0].text
    handoff.answer(number, "Ja, als de student meegaat als stagiair.", sender_id="tg-900")
    assert "alleen met een vraag" in handoff.request_draft(number, MENTOR).messages[0].text  # not the mentor
    handoff.request_draft(number, "tg-900")
    [entry] = yaml.safe_load(handoff.knowledge_drafts())
    assert entry["review"] is True and entry["source"]["document"] == handoff.DRAFT_SOURCE
    assert entry["question"] == "Telt schoolkamp als stage-uren?"
    assert entry["answer"] == "Ja, als de student meegaat als stagiair." and entry["partnerships"] == ["sonh"]


def test_escalation_after_working_days_goes_once_to_the_partnership_contact(monkeypatch):
    monkeypatch.setenv("MENTORWIJZER_ESCALATE_AFTER_DAYS", "3")
    get_settings.cache_clear()
    register()
    register("Piet", "piet@sonh.nl", school=None, role=staff.PARTNERSHIP_CONTACT, partnership="sonh", sender="tg-902")
    mentor_at(partnership="sonh")
    number = forwarded()
    friday = datetime(2026, 12, 4, 10, 0)
    with storage.session_scope() as session:
        session.get(storage.Question, number).sent_at = friday
    assert handoff.escalate_overdue(datetime(2026, 12, 8, 10, 0))["escalated"] == 0  # Mon, Tue: 2 working days
    assert handoff.answer(number, "Ik weet het", sender_id="tg-902")[0] == "not_allowed"  # not yet his
    assert handoff.escalate_overdue(datetime(2026, 12, 9, 10, 0))["escalated"] == 1
    assert handoff.escalate_overdue(datetime(2026, 12, 10, 10, 0))["escalated"] == 0  # once
    [escalation] = outbox(kind="escalation")
    assert escalation.sender_id == "tg-902" and "3 werkdagen" in escalation.text
    assert handoff.answer(number, "Ik weet het", sender_id="tg-902")[0] == "ok"


def test_working_days_skip_weekends():
    friday = datetime(2026, 12, 4, 16, 0)
    assert handoff.working_days_between(friday, datetime(2026, 12, 6, 9, 0)) == 0
    assert handoff.working_days_between(friday, datetime(2026, 12, 7, 9, 0)) == 1


# --- feedback and privacy -----------------------------------------------------------------


def test_votes_and_comments_are_stored_and_a_second_tap_changes_the_vote():
    mentor_at(partnership="sonh")
    first = feedback.vote(MENTOR, "rest", "contact.stagnatie", feedback.UP)
    second = feedback.vote(MENTOR, "rest", "contact.stagnatie", feedback.DOWN)
    assert first == second
    assert feedback.add_comment(MENTOR, second, "x" * 600)
    assert not feedback.add_comment("someone-else", second, "spam")
    with storage.session_scope() as session:
        [row] = session.execute(select(storage.Feedback)).scalars()
        assert (row.vote, row.entry_id, row.partnership, len(row.comment)) == ("down", "contact.stagnatie", "sonh", 500)
        assert row.kb_version == feedback.kb_version() and len(row.kb_version) == 12


def test_feedback_button_payloads_fit_telegram():
    for _, payload in feedback.buttons("taak.professionalisering-amsterdam"):
        assert len(payload.encode()) <= 64


def test_deleting_my_data_deletes_votes_questions_and_their_messages(tracker_events):
    register()
    mentor_at()
    feedback.vote(MENTOR, "rest", "contact.stagnatie", feedback.DOWN)
    number = forwarded()
    handoff.answer(number, "Antwoord", sender_id="tg-900")
    exported = privacy.export(MENTOR)
    assert exported["feedback"][0]["vote"] == "down"
    assert exported["forwarded_questions"][0]["answer"] == "Antwoord"
    counts = privacy.forget(MENTOR)
    assert counts["feedback"] == 1 and counts["questions"] == 1 and counts["messages"] == 2
    assert outbox() == [] and handoff.list_questions() == []
    assert staff.list_all()[0]["linked"]  # the schoolopleider's own link is not the mentor's data


def test_linking_a_second_channel_keeps_votes_and_questions():
    register()
    mentor_at(sender="tg-500")
    feedback.vote("tg-500", "telegram", "contact.stagnatie", feedback.UP)
    number = forwarded(sender="tg-500")
    code = linking.create_link_code("teams:t1:aad1", "teams")  # the mentor's Teams account asks for a code
    assert linking.use_link_code("tg-500", "telegram", code) == "ok"  # typed in Telegram: records merge
    exported = privacy.export("teams:t1:aad1")
    assert [f["vote"] for f in exported["feedback"]] == ["up"]
    assert [q["status"] for q in exported["forwarded_questions"]] == ["open"]
    assert handoff.answer(number, "Antwoord", sender_id="tg-900")[0] == "ok"
    assert [row.sender_id for row in outbox(kind="answer")] == ["tg-500"]  # still where it was asked
