"""Reminders that respect the mentor: opt-in only, school hours only, once per paused run, stoppable.

* A paused scan gets a reminder only when the mentor asked for one (:func:`opt_in`), a few days later,
  inside school hours (Monday to Friday, ``reminder_hours`` in ``timezone``), and never more than one
  per run, however often the run is paused again.
* After a school's mentor training (:func:`record_training`), each reachable mentor who did the
  mentorscan is invited once to the training evaluation.
* "Stop met herinneren" (:func:`stop`) switches both off for good; only a new opt-in switches it on.

:func:`run` is started every 15 minutes (``mentorwijzer remind``, deploy/systemd/mentorwijzer-remind.*)
and writes the messages to the outbox (bot/delivery.py) in the same transaction that marks them sent.

Sending twice is impossible, also when two ``remind`` runs overlap:

* Every transaction that creates, moves, sends or cancels a mentor's reminders starts by locking that
  mentor's row (:func:`_lock_mentor`, an UPDATE: a row lock on PostgreSQL, the write lock on SQLite)
  and only then reads what it decides on, so these transactions run one after the other per mentor.
* One Reminder row per run: :func:`opt_in` moves or re-arms the run's existing row instead of adding
  one, and refuses (None) once that row was sent. A scan reminder is claimed with a conditional
  UPDATE (``sent_at IS NULL AND cancelled_at IS NULL``) before its message is written.
* One evaluation Reminder row per mentor, ever: it is written together with the invitation.

(The schema has no unique index on ``reminders.run_id``; a partial unique index on ``run_id`` for
kind ``scan`` and on ``mentor_id`` for kind ``evaluation`` would add a second line of defence.)
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import delivery, storage
from bot.identity import TEAMS_PREFIX, TELEGRAM_PREFIX
from bot.questionnaire import Questionnaire, load_questionnaire
from bot.settings import get_settings

log = logging.getLogger(__name__)

MENTORSCAN = "mentorscan"
EVALUATION = "evaluatie-mentortraining"
SCAN = "scan"  # Reminder.kind of a paused run's reminder (any questionnaire)
INVITATION = "evaluation"  # Reminder.kind of the one evaluation invitation
EVALUATION_WINDOW_DAYS = 60  # a training longer ago than this gets no evaluation invitations
ACTIVE_GRACE = timedelta(hours=1)  # a run answered this recently is being worked on: remind later
MINUTES_PER_ITEM = 5 / 37  # the mentorscan's intro promises "ongeveer 5 minuten: 37 vragen"
STOP_BUTTON = ("Stop met herinneren", "/stop_reminders")
EVALUATION_BUTTON = ("Evaluatie invullen", "/start_evaluation")
CONTINUE_BUTTONS = {
    MENTORSCAN: ("Ga verder met de scan", "/continue_scan"),
    EVALUATION: ("Ga verder met de evaluatie", "/start_evaluation"),
}
WEEKDAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
          "oktober", "november", "december")


# --- school hours ------------------------------------------------------------------------


@dataclass(frozen=True)
class SchoolHours:
    start: time
    end: time
    zone: ZoneInfo


def school_hours() -> SchoolHours:
    """``reminder_hours`` ("08:30-16:30", local time) and ``timezone`` from the settings."""
    settings = get_settings()
    try:
        start_text, end_text = settings.reminder_hours.split("-")
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        raise ValueError(f"MENTORWIJZER_REMINDER_HOURS must look like 08:30-16:30, not {settings.reminder_hours!r}") from None
    if start >= end:
        raise ValueError("MENTORWIJZER_REMINDER_HOURS: the start must come before the end")
    return SchoolHours(start, end, ZoneInfo(settings.timezone))


def _as_utc(moment: Optional[datetime]) -> datetime:
    """Naive UTC, as storage keeps it; an aware datetime is converted, None means now."""
    if moment is None:
        return storage.utcnow()
    if moment.tzinfo is not None:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _local(moment_utc: datetime, hours: SchoolHours) -> datetime:
    return moment_utc.replace(tzinfo=timezone.utc).astimezone(hours.zone)


def in_school_hours(now: Optional[datetime] = None) -> bool:
    """Whether ``now`` is on a weekday within ``reminder_hours`` (start included, end excluded)."""
    hours = school_hours()
    local = _local(_as_utc(now), hours)
    return local.weekday() < 5 and hours.start <= local.time().replace(tzinfo=None) < hours.end


def next_school_time(moment: Optional[datetime] = None) -> datetime:
    """``moment`` itself when inside school hours, else the start of the next school-hours window
    (naive UTC)."""
    hours = school_hours()
    local = _local(_as_utc(moment), hours)
    for _ in range(8):
        if local.weekday() < 5:
            opening = datetime.combine(local.date(), hours.start, tzinfo=hours.zone)
            closing = datetime.combine(local.date(), hours.end, tzinfo=hours.zone)
            if local < opening:
                return _as_utc(opening)
            if local < closing:
                return _as_utc(local)
        local = datetime.combine(local.date() + timedelta(days=1), time(0, 0), tzinfo=hours.zone)
    raise AssertionError("a week always has a weekday")  # pragma: no cover


def describe(when: datetime) -> str:
    """A stored (naive UTC) time as the mentor reads it: ``maandag 14 oktober rond 08:30``."""
    local = _local(_as_utc(when), school_hours())
    return f"{WEEKDAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} rond {local:%H:%M}"


# --- the mentor's side: opt in, stop -----------------------------------------------------


def _lock_mentor(session: Session, mentor_id: str) -> bool:
    """Serialise the reminder transactions of one mentor (see the module docstring); False when the
    mentor no longer exists. Call it before reading anything the transaction decides on."""
    return session.execute(
        update(storage.Mentor)
        .where(storage.Mentor.id == mentor_id)
        .values(last_seen_at=storage.Mentor.last_seen_at)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def _mentor_id(session: Session, sender_id: str) -> Optional[str]:
    """The mentor behind a sender, without creating one for a stranger."""
    identity_row = session.get(storage.Identity, sender_id)
    return identity_row.mentor_id if identity_row is not None else None


def opt_in(sender_id: str, channel: str, questionnaire_id: str = MENTORSCAN,
           now: Optional[datetime] = None) -> Optional[datetime]:
    """The mentor said yes to "Zal ik je over een paar dagen herinneren?": schedule (or move) the one
    reminder of their open run of ``questionnaire_id``, ``reminder_after_days`` from ``now`` and moved
    into school hours. Returns when it will be sent (naive UTC; :func:`describe` says it in Dutch).

    Because the mentor asked for it explicitly, this switches ``reminders_off`` off again.
    None (and nothing changed) when there is no open run, or when this run already had its reminder:
    a run is reminded at most once. ``channel`` is the Rasa channel of the message; where the reminder
    goes is decided by the sender id (``delivery.channel_for``: the Telegram bridge speaks REST to Rasa).
    """
    now = _as_utc(now)
    remind_at = next_school_time(now + timedelta(days=get_settings().reminder_after_days))
    with storage.session_scope() as session:
        mentor_id = _mentor_id(session, sender_id)
        if mentor_id is None or not _lock_mentor(session, mentor_id):
            return None
        run = storage.open_run(session, mentor_id, questionnaire_id)
        if run is None:
            log.info("reminder opt-in without an open run questionnaire=%s", questionnaire_id)
            return None
        reminder = session.execute(
            select(storage.Reminder)
            .where(storage.Reminder.run_id == run.id, storage.Reminder.kind == SCAN)
            .order_by(storage.Reminder.id)
            .limit(1)
        ).scalar_one_or_none()
        if reminder is not None and reminder.sent_at is not None:
            log.info("reminder opt-in refused: run %s was reminded before", run.id)
            return None
        if reminder is None:
            reminder = storage.Reminder(mentor_id=mentor_id, run_id=run.id, kind=SCAN)
            session.add(reminder)
        reminder.sender_id = sender_id
        reminder.channel = delivery.channel_for(sender_id)
        reminder.remind_at = remind_at
        reminder.cancelled_at = None
        session.get(storage.Mentor, mentor_id).reminders_off = False
        log.info("reminder scheduled run=%s channel=%s in_days=%.1f", run.id, reminder.channel,
                 (remind_at - now).total_seconds() / 86400)
    return remind_at


def stop(sender_id: str) -> int:
    """"Stop met herinneren": no reminder or invitation is sent to this mentor again (until a new
    opt-in); returns how many pending reminders were cancelled."""
    with storage.session_scope() as session:
        mentor_id = _mentor_id(session, sender_id)
        if mentor_id is None or not _lock_mentor(session, mentor_id):
            return 0
        session.get(storage.Mentor, mentor_id).reminders_off = True
        cancelled = session.execute(
            update(storage.Reminder)
            .where(storage.Reminder.mentor_id == mentor_id, storage.Reminder.sent_at.is_(None),
                   storage.Reminder.cancelled_at.is_(None))
            .values(cancelled_at=storage.utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
    log.info("reminders stopped, cancelled=%d", cancelled)
    return cancelled


# --- trainings -----------------------------------------------------------------------------


def record_training(school: str, training_date: date) -> bool:
    """Remember a school's mentor training (``training-signup --date``); True when it is new, False
    when it was already recorded (calling it again changes nothing)."""
    school = school.strip()
    if not school:
        raise ValueError("a training needs a school")
    day = training_date.date() if isinstance(training_date, datetime) else training_date
    when = datetime.combine(day, time(0, 0))
    try:
        with storage.session_scope() as session:
            known = session.execute(
                select(storage.Training.id)
                .where(storage.Training.school == school, storage.Training.training_date == when)
            ).first()
            if known is not None:
                return False
            session.add(storage.Training(school=school, training_date=when))
    except IntegrityError:  # recorded at the same moment by another command
        return False
    return True


# --- sending ---------------------------------------------------------------------------------


def _minutes(remaining_items: int) -> str:
    minutes = max(1, math.ceil(remaining_items * MINUTES_PER_ITEM))
    return "ongeveer 1 minuut" if minutes == 1 else f"ongeveer {minutes} minuten"


def _subject(questionnaire: Questionnaire) -> str:
    return "Je mentorscan" if questionnaire.id == MENTORSCAN else f"Je {questionnaire.title[:1].lower()}{questionnaire.title[1:]}"


def reminder_text(questionnaire: Questionnaire, answered: int) -> str:
    total = len(questionnaire.items)
    return (f"Hoi! {_subject(questionnaire)} staat nog open: je hebt {answered} van de {total} vragen beantwoord. "
            f"Zullen we verdergaan? Het kost nog {_minutes(total - answered)}.")


def invitation_text(questionnaire: Questionnaire) -> str:
    return ("Hoi! Je hebt onlangs de mentortraining gevolgd. We horen graag hoe je die vond, zodat de "
            f"volgende training nog beter aansluit. De evaluatie heeft {len(questionnaire.items)} korte vragen. "
            "Doe je mee?")


def _send_scan_reminder(reminder_id: int, mentor_id: str, now: datetime) -> str:
    """One due reminder in its own transaction: sent | cancelled | deferred | skipped (handled elsewhere)."""
    with storage.session_scope() as session:
        if not _lock_mentor(session, mentor_id):
            return "skipped"
        claimed = session.execute(
            update(storage.Reminder)
            .where(storage.Reminder.id == reminder_id, storage.Reminder.sent_at.is_(None),
                   storage.Reminder.cancelled_at.is_(None), storage.Reminder.remind_at <= now)
            .values(sent_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return "skipped"
        reminder = session.get(storage.Reminder, reminder_id)
        run = session.get(storage.ScanRun, reminder.run_id) if reminder.run_id is not None else None
        mentor = session.get(storage.Mentor, mentor_id)
        reminded_before = run is not None and session.execute(
            select(exists().where(storage.Reminder.run_id == run.id, storage.Reminder.id != reminder_id,
                                  storage.Reminder.sent_at.is_not(None)))
        ).scalar()
        if run is None or run.completed_at is not None or mentor.reminders_off or reminded_before:
            reminder.sent_at, reminder.cancelled_at = None, now
            return "cancelled"
        if run.updated_at is not None and run.updated_at > now - ACTIVE_GRACE:
            reminder.sent_at = None  # the mentor is busy with it right now; try again next round
            return "deferred"
        questionnaire = load_questionnaire(run.questionnaire_id)
        answers = storage.run_answers(session, run.id)
        answered = sum(1 for item in questionnaire.items if item.id in answers)
        continue_button = CONTINUE_BUTTONS.get(run.questionnaire_id, CONTINUE_BUTTONS[MENTORSCAN])
        delivery.enqueue(session, kind="reminder", text=reminder_text(questionnaire, answered),
                         sender_id=reminder.sender_id, mentor_id=mentor_id, channel=reminder.channel,
                         buttons=[continue_button, STOP_BUTTON])
        return "sent"


def _reachable_sender(session: Session, mentor_id: str) -> Optional[str]:
    """A chat identity we can write to first: Telegram, or Teams (best with a saved conversation
    reference, else the message waits for their next Teams message); REST cannot reach anyone."""
    rows = session.execute(
        select(storage.Identity.sender_id, storage.Identity.created_at)
        .where(storage.Identity.mentor_id == mentor_id, _chat_sender(storage.Identity.sender_id))
    ).all()
    with_reference = set(session.execute(
        select(storage.ConversationRef.sender_id).where(storage.ConversationRef.mentor_id == mentor_id)
    ).scalars())

    def preference(row) -> tuple:
        sender_id, created_at = row
        direct = sender_id.startswith(TELEGRAM_PREFIX) or sender_id in with_reference
        return direct, created_at, sender_id

    return max(rows, key=preference)[0] if rows else None


def _chat_sender(column):
    return column.startswith(TELEGRAM_PREFIX) | column.startswith(TEAMS_PREFIX)


def _invitation_conditions(mentor_id):
    """What makes a mentor due for the evaluation invitation, besides a recent training at their school."""
    invited = exists().where(storage.Reminder.mentor_id == mentor_id, storage.Reminder.kind == INVITATION)
    scanned = exists().where(storage.ScanRun.mentor_id == mentor_id, storage.ScanRun.questionnaire_id == MENTORSCAN,
                             storage.ScanRun.completed_at.is_not(None))
    evaluated = exists().where(storage.ScanRun.mentor_id == mentor_id, storage.ScanRun.questionnaire_id == EVALUATION,
                               storage.ScanRun.completed_at.is_not(None))
    reachable = exists().where(storage.Identity.mentor_id == mentor_id, _chat_sender(storage.Identity.sender_id))
    return [~invited, scanned, ~evaluated, reachable]


def _invitation_candidates(session: Session, now: datetime) -> list[str]:
    today = _local(now, school_hours()).date()
    after = datetime.combine(today - timedelta(days=EVALUATION_WINDOW_DAYS), time(0, 0))
    before = datetime.combine(today, time(0, 0))  # the training day itself is over: from the next day on
    recent_training = exists().where(storage.Training.school == storage.Mentor.school,
                                     storage.Training.training_date >= after,
                                     storage.Training.training_date < before)
    return list(session.execute(
        select(storage.Mentor.id)
        .where(storage.Mentor.school.is_not(None), storage.Mentor.reminders_off.is_(False), recent_training,
               *_invitation_conditions(storage.Mentor.id))
        .order_by(storage.Mentor.id)
    ).scalars())


def _send_invitation(mentor_id: str, now: datetime) -> bool:
    """The one evaluation invitation, in its own transaction; False when it is no longer due."""
    with storage.session_scope() as session:
        if not _lock_mentor(session, mentor_id):
            return False
        mentor = session.get(storage.Mentor, mentor_id)
        still_due = session.execute(select(func.count()).where(*_invitation_conditions(mentor_id))).scalar_one()
        sender_id = _reachable_sender(session, mentor_id)
        if mentor.reminders_off or not still_due or sender_id is None:
            return False
        channel = delivery.channel_for(sender_id)
        session.add(storage.Reminder(mentor_id=mentor_id, run_id=None, kind=INVITATION, sender_id=sender_id,
                                     channel=channel, remind_at=now, sent_at=now))
        delivery.enqueue(session, kind="evaluation", text=invitation_text(load_questionnaire(EVALUATION)),
                         sender_id=sender_id, mentor_id=mentor_id, channel=channel,
                         buttons=[EVALUATION_BUTTON, STOP_BUTTON])
        return True


def run(now: Optional[datetime] = None) -> dict:
    """``mentorwijzer remind`` (every 15 minutes): write the due reminders and evaluation invitations to
    the outbox. Outside school hours it does nothing (``outside_school_hours`` 1). Returns counts."""
    now = _as_utc(now)
    counts = {"outside_school_hours": 0, "reminders_sent": 0, "reminders_cancelled": 0, "reminders_deferred": 0,
              "invitations_sent": 0}
    if not in_school_hours(now):
        counts["outside_school_hours"] = 1
        log.info("remind: outside school hours, nothing sent")
        return counts
    with storage.session_scope() as session:
        due = list(session.execute(
            select(storage.Reminder.id, storage.Reminder.mentor_id)
            .where(storage.Reminder.kind == SCAN, storage.Reminder.sent_at.is_(None),
                   storage.Reminder.cancelled_at.is_(None), storage.Reminder.remind_at <= now)
            .order_by(storage.Reminder.remind_at, storage.Reminder.id)
        ))
    for reminder_id, mentor_id in due:
        outcome = _send_scan_reminder(reminder_id, mentor_id, now)
        if outcome != "skipped":
            counts[f"reminders_{outcome}"] += 1
    with storage.session_scope() as session:
        candidates = _invitation_candidates(session, now)
    for mentor_id in candidates:
        counts["invitations_sent"] += _send_invitation(mentor_id, now)
    log.info("remind: " + ", ".join(f"{key}=%d" for key in counts), *counts.values())
    return counts
