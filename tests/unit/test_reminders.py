"""Reminders that respect the mentor: asked for, in school hours, once per paused scan, stoppable."""
from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot import reminders, scan, storage
from bot.settings import get_settings

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SCHOOL = "De Regenboog"
# Week of Monday 7 October 2030: dates in the future, so the runs' real timestamps are in the past.
MONDAY = date(2030, 10, 7)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=AMSTERDAM)


def to_local(stored: datetime) -> datetime:
    return stored.replace(tzinfo=ZoneInfo("UTC")).astimezone(AMSTERDAM)


def answer(sender: str, count: int, channel: str = "rest", questionnaire_id: str = "mentorscan") -> None:
    """Start (or resume) a run and answer the next ``count`` items the way a mentor would."""
    scan.start(sender, channel, questionnaire_id)
    for _ in range(count):
        prompt = scan.current_prompt(sender, questionnaire_id)
        if prompt is None:
            return
        value = prompt.buttons[-1][1] if prompt.buttons else "Meer oefenen met feedback geven."
        scan.submit(sender, channel, value, questionnaire_id)


def paused_scan(sender: str, answered: int = 12, channel: str = "rest") -> None:
    answer(sender, answered, channel)
    scan.pause(sender)


def completed_scan(sender: str, channel: str = "rest", school: str = SCHOOL) -> None:
    answer(sender, 100, channel)
    with storage.session_scope() as session:
        storage.find_mentor(session, sender).school = school


def outbox(kind: str | None = None) -> list[storage.OutboxMessage]:
    with storage.session_scope() as session:
        query = select(storage.OutboxMessage).order_by(storage.OutboxMessage.id)
        if kind:
            query = query.where(storage.OutboxMessage.kind == kind)
        return list(session.execute(query).scalars())


def payloads(message: storage.OutboxMessage) -> list[str]:
    return [button["payload"] for button in json.loads(message.buttons)]


def reminder_rows() -> list[storage.Reminder]:
    with storage.session_scope() as session:
        return list(session.execute(select(storage.Reminder).order_by(storage.Reminder.id)).scalars())


# --- when the reminder comes -----------------------------------------------------------------


def test_opt_in_after_a_thursday_afternoon_pause_waits_for_monday_morning():
    paused_scan("s1")
    when = reminders.opt_in("s1", "rest", now=local(MONDAY + timedelta(days=3), 16))  # Thu 16:00 + 3 days = Sunday
    assert to_local(when) == local(MONDAY + timedelta(days=7), 8, 30)  # the next Monday, 08:30
    assert reminders.describe(when) == "maandag 14 oktober rond 08:30"


def test_opt_in_after_a_friday_evening_pause_lands_inside_school_hours():
    paused_scan("s1")
    friday = MONDAY + timedelta(days=4)
    when = to_local(reminders.opt_in("s1", "rest", now=local(friday, 17)))  # + 3 days: Monday 17:00
    assert when == local(friday + timedelta(days=4), 8, 30)  # Tuesday 08:30
    late = to_local(reminders.opt_in("s1", "rest", now=local(friday, 16)))  # Monday 16:00 is school time
    assert late == local(friday + timedelta(days=3), 16)


def test_opt_in_follows_the_configured_days_hours_and_timezone(monkeypatch):
    monkeypatch.setenv("MENTORWIJZER_REMINDER_AFTER_DAYS", "1")
    monkeypatch.setenv("MENTORWIJZER_REMINDER_HOURS", "09:00-12:00")
    get_settings.cache_clear()
    paused_scan("s1")
    when = to_local(reminders.opt_in("s1", "rest", now=local(MONDAY, 13)))  # Tuesday 13:00 is after 12:00
    assert when == local(MONDAY + timedelta(days=2), 9)


def test_opt_in_without_an_open_scan_schedules_nothing():
    assert reminders.opt_in("stranger", "rest", now=local(MONDAY, 10)) is None
    completed_scan("s1")
    assert reminders.opt_in("s1", "rest", now=local(MONDAY, 10)) is None
    assert reminder_rows() == []


def test_opt_in_twice_moves_the_one_reminder():
    paused_scan("s1")
    reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    later = reminders.opt_in("s1", "rest", now=local(MONDAY + timedelta(days=1), 10))
    rows = reminder_rows()
    assert len(rows) == 1 and rows[0].remind_at == later
    assert to_local(later) == local(MONDAY + timedelta(days=4), 10)


# --- sending ---------------------------------------------------------------------------------


def test_run_sends_one_reminder_with_progress_and_buttons():
    paused_scan("tg-501", answered=12, channel="telegram")
    when = reminders.opt_in("tg-501", "rest", now=local(MONDAY, 10))
    assert reminders.run(when - timedelta(minutes=15))["reminders_sent"] == 0  # not due yet
    counts = reminders.run(when)
    assert counts["reminders_sent"] == 1 and counts["outside_school_hours"] == 0
    [message] = outbox()
    assert message.kind == "reminder" and message.sender_id == "tg-501" and message.channel == "telegram"
    assert "Je mentorscan staat nog open: je hebt 12 van de 37 vragen beantwoord." in message.text
    assert "Zullen we verdergaan? Het kost nog ongeveer 4 minuten." in message.text  # 25 items, ~5 min per 37
    assert payloads(message) == ["/continue_scan", "/stop_reminders"]


def test_run_never_sends_the_same_reminder_twice():
    paused_scan("s1")
    when = reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    reminders.run(when)
    for later in (when + timedelta(minutes=15), when + timedelta(days=1), when + timedelta(days=7)):
        assert reminders.run(later)["reminders_sent"] == 0
    assert len(outbox("reminder")) == 1


def test_overlapping_runs_send_one_reminder_each(monkeypatch):
    """A second `remind` that finishes while the first is still working through its (now stale) list."""
    for number in range(3):
        paused_scan(f"s{number}")
        when = reminders.opt_in(f"s{number}", "rest", now=local(MONDAY, 10))
    real_send = reminders._send_scan_reminder
    overlapped = []

    def send_after_another_run(reminder_id, mentor_id, now):
        if not overlapped:
            overlapped.append(None)
            overlapped[0] = reminders.run(now)  # the other process sends everything first
        return real_send(reminder_id, mentor_id, now)

    monkeypatch.setattr(reminders, "_send_scan_reminder", send_after_another_run)
    first = reminders.run(when)
    assert overlapped[0]["reminders_sent"] == 3 and first["reminders_sent"] == 0
    assert sorted(message.sender_id for message in outbox("reminder")) == ["s0", "s1", "s2"]


def test_concurrent_runs_in_threads_send_each_reminder_once():
    for number in range(6):
        paused_scan(f"s{number}")
        when = reminders.opt_in(f"s{number}", "rest", now=local(MONDAY, 10))
    storage.init_db()
    start = threading.Barrier(4)
    errors = []

    def remind():
        try:
            start.wait()
            reminders.run(when)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=remind) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(message.sender_id for message in outbox("reminder")) == [f"s{n}" for n in range(6)]


def test_run_never_sends_after_stop():
    paused_scan("s1")
    when = reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    assert reminders.stop("s1") == 1
    assert reminders.run(when + timedelta(days=1))["reminders_sent"] == 0
    assert outbox() == []
    with storage.session_scope() as session:
        assert storage.find_mentor(session, "s1").reminders_off


def test_opt_in_after_stop_switches_reminders_on_again():
    paused_scan("s1")
    reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    reminders.stop("s1")
    when = reminders.opt_in("s1", "rest", now=local(MONDAY, 11))
    assert reminders.run(when)["reminders_sent"] == 1


def test_stop_of_a_stranger_changes_nothing():
    assert reminders.stop("stranger") == 0
    with storage.session_scope() as session:
        assert storage.find_mentor(session, "stranger") is None


@pytest.mark.parametrize("moment", [
    local(MONDAY + timedelta(days=5), 10),  # Saturday
    local(MONDAY + timedelta(days=6), 12),  # Sunday
    local(MONDAY + timedelta(days=7), 8, 29),  # Monday, just before 08:30
    local(MONDAY + timedelta(days=7), 16, 30),  # Monday 16:30: school hours are over
    local(MONDAY + timedelta(days=7), 22),
])
def test_run_sends_nothing_outside_school_hours(moment):
    paused_scan("s1")
    reminders.opt_in("s1", "rest", now=local(MONDAY, 10))  # due Thursday 10:00
    counts = reminders.run(moment)
    assert counts["outside_school_hours"] == 1 and counts["reminders_sent"] == 0
    assert outbox() == []
    assert reminders.run(local(MONDAY + timedelta(days=7), 8, 30))["reminders_sent"] == 1  # the next window


def test_run_cancels_the_reminder_of_a_finished_scan():
    paused_scan("s1")
    when = reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    answer("s1", 100)  # the mentor finished the scan on their own
    counts = reminders.run(when)
    assert counts["reminders_sent"] == 0 and counts["reminders_cancelled"] == 1
    assert outbox() == []
    [row] = reminder_rows()
    assert row.cancelled_at is not None and row.sent_at is None


def test_a_scan_paused_again_gets_no_second_reminder():
    paused_scan("s1", answered=5)
    when = reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    reminders.run(when)
    paused_scan("s1", answered=3)  # continued after the reminder, paused again
    assert reminders.opt_in("s1", "rest", now=when) is None
    assert reminders.run(when + timedelta(days=7))["reminders_sent"] == 0
    assert len(outbox("reminder")) == 1 and len(reminder_rows()) == 1


def test_a_mentor_busy_with_the_scan_is_reminded_later():
    paused_scan("s1")
    when = reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    with storage.session_scope() as session:
        run = storage.open_run(session, storage.find_mentor(session, "s1").id, "mentorscan")
        run.updated_at = when - timedelta(minutes=10)  # answered a question ten minutes ago
    assert reminders.run(when)["reminders_deferred"] == 1
    assert outbox() == []
    assert reminders.run(when + timedelta(hours=1))["reminders_sent"] == 1


def test_reminders_are_deleted_with_the_mentor():
    paused_scan("s1")
    when = reminders.opt_in("s1", "rest", now=local(MONDAY, 10))
    reminders.run(when)
    with storage.session_scope() as session:
        counts = storage.delete_mentor(session, storage.find_mentor(session, "s1").id)
    assert counts["reminders"] == 1 and counts["messages"] == 1
    assert reminder_rows() == [] and outbox() == []


# --- the evaluation invitation ------------------------------------------------------------------


def test_record_training_is_idempotent():
    assert reminders.record_training(SCHOOL, MONDAY) is True
    assert reminders.record_training(SCHOOL, MONDAY) is False
    with storage.session_scope() as session:
        assert session.execute(select(func.count(storage.Training.id))).scalar_one() == 1


def test_evaluation_invitation_only_after_the_training_day_and_once():
    completed_scan("tg-601", channel="telegram")
    reminders.record_training(SCHOOL, MONDAY + timedelta(days=1))  # Tuesday
    assert reminders.run(local(MONDAY, 10))["invitations_sent"] == 0  # before the training
    assert reminders.run(local(MONDAY + timedelta(days=1), 15))["invitations_sent"] == 0  # the training day
    assert reminders.run(local(MONDAY + timedelta(days=2), 9))["invitations_sent"] == 1
    for later in (timedelta(days=2, hours=1), timedelta(days=3), timedelta(days=30)):
        assert reminders.run(local(MONDAY, 9) + later)["invitations_sent"] == 0
    [message] = outbox()
    assert message.kind == "evaluation" and message.sender_id == "tg-601"
    assert "mentortraining" in message.text and "21" in message.text
    assert payloads(message) == ["/start_evaluation", "/stop_reminders"]


def test_evaluation_invitation_not_after_sixty_days():
    reminders.record_training(SCHOOL, MONDAY)
    completed_scan("tg-601", channel="telegram")
    assert reminders.run(local(MONDAY + timedelta(days=61), 10))["invitations_sent"] == 0
    assert reminders.run(local(MONDAY + timedelta(days=60), 10))["invitations_sent"] == 1


def test_evaluation_invitation_only_for_mentors_we_can_reach():
    reminders.record_training(SCHOOL, MONDAY)
    completed_scan("rest-only")
    completed_scan("teams:tenant:aad-1", channel="teams")
    completed_scan("tg-602", channel="telegram", school="Een andere school")
    assert reminders.run(local(MONDAY + timedelta(days=1), 10))["invitations_sent"] == 1
    [message] = outbox()
    assert message.sender_id == "teams:tenant:aad-1" and message.channel == "teams"


def test_evaluation_invitation_skips_who_should_not_get_it():
    reminders.record_training(SCHOOL, MONDAY)
    answer("tg-1", 5, "telegram")  # scan not finished
    with storage.session_scope() as session:
        storage.find_mentor(session, "tg-1").school = SCHOOL
    completed_scan("tg-2", channel="telegram")
    answer("tg-2", 100, "telegram", questionnaire_id="evaluatie-mentortraining")  # already evaluated
    completed_scan("tg-3", channel="telegram")
    reminders.stop("tg-3")  # "stop met herinneren"
    assert reminders.run(local(MONDAY + timedelta(days=1), 10))["invitations_sent"] == 0
    assert outbox() == []


def test_overlapping_runs_invite_once(monkeypatch):
    reminders.record_training(SCHOOL, MONDAY)
    completed_scan("tg-601", channel="telegram")
    real_send = reminders._send_invitation
    overlapped = []

    def send_after_another_run(mentor_id, now):
        if not overlapped:
            overlapped.append(None)
            overlapped[0] = reminders.run(now)  # the other process invites first
        return real_send(mentor_id, now)

    monkeypatch.setattr(reminders, "_send_invitation", send_after_another_run)
    first = reminders.run(local(MONDAY + timedelta(days=1), 10))
    assert overlapped[0]["invitations_sent"] == 1 and first["invitations_sent"] == 0
    assert len(outbox("evaluation")) == 1
