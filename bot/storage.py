"""SQL storage for mentors, their channel identities, questionnaire runs and answers.

SQLAlchemy 1.4 in 2.0 style (``future=True``, ``select()``), so the same code runs on SQLite
(default, a file under ``var/``) and PostgreSQL (``MENTORWIJZER_DB_URL``). The database, not
Rasa's slots, is the source of truth for scan progress: every answer is committed the moment
it is given, and a re-sent answer updates the row instead of duplicating it.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, declarative_base, relationship, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.identity import TEAMS_PREFIX
from bot.settings import get_settings

log = logging.getLogger(__name__)
Base = declarative_base()


def utcnow() -> datetime:
    """Naive UTC timestamps: SQLite has no time zones, so we store UTC everywhere."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class Mentor(Base):
    __tablename__ = "mentors"
    id = Column(String(32), primary_key=True, default=new_id)
    display_name = Column(String(200), nullable=True)
    school = Column(String(200), nullable=True)
    partnership = Column(String(64), nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    last_seen_at = Column(DateTime, nullable=False, default=utcnow)
    # "stop met herinneren": no reminder or invitation is ever sent again (bot/reminders.py)
    reminders_off = Column(Boolean, nullable=False, default=False, server_default="0")

    identities = relationship("Identity", back_populates="mentor", cascade="all, delete-orphan")
    runs = relationship("ScanRun", back_populates="mentor", cascade="all, delete-orphan")


class Identity(Base):
    """One Rasa sender id (per channel) that belongs to a mentor; linked channels share a mentor."""

    __tablename__ = "identities"
    sender_id = Column(String(255), primary_key=True)  # Rasa allows 255
    channel = Column(String(32), nullable=False, default="rest")
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    mentor = relationship("Mentor", back_populates="identities")


class LinkCode(Base):
    __tablename__ = "link_codes"
    code = Column(String(16), primary_key=True)
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False, index=True)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime, nullable=True)


# How long a failed link-code redemption counts against its sender (bot/linking.py) and is kept.
LINK_FAILURE_WINDOW = timedelta(hours=1)


class LinkFailure(Base):
    """A wrong or expired link code typed by one sender: the guard against guessing codes.

    Personal data (it says who tried when): deleted with the mentor and after LINK_FAILURE_WINDOW.
    """

    __tablename__ = "link_failures"
    id = Column(Integer, primary_key=True, autoincrement=True)
    sender_id = Column(String(255), nullable=False, index=True)  # no foreign key: any sender may try
    failed_at = Column(DateTime, nullable=False, default=utcnow)


class ScanRun(Base):
    """One attempt at one questionnaire; a redo starts a new run so earlier results stay."""

    __tablename__ = "scan_runs"
    id = Column(Integer, primary_key=True, autoincrement=True)
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False, index=True)
    questionnaire_id = Column(String(64), nullable=False)
    questionnaire_version = Column(Integer, nullable=False)
    started_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)
    completed_at = Column(DateTime, nullable=True)
    paused = Column(Boolean, nullable=False, default=False)
    # The item the mentor asked to change ("terug"); asked before the next unanswered one.
    edit_item_id = Column(String(32), nullable=True)

    mentor = relationship("Mentor", back_populates="runs")
    answers = relationship("Answer", back_populates="run", cascade="all, delete-orphan")


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("run_id", "item_id", name="uq_answer_run_item"),
        Index("ix_answers_run_message", "run_id", "message_id"),
    )
    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = Column(Integer, ForeignKey("scan_runs.id", ondelete="CASCADE"), nullable=False, index=True)
    item_id = Column(String(32), nullable=False)
    value = Column(Text, nullable=False)
    channel = Column(String(32), nullable=False, default="rest")
    answered_at = Column(DateTime, nullable=False, default=utcnow)
    # The channel's message id: a re-delivered message is recognised and not applied twice.
    message_id = Column(String(64), nullable=True)

    run = relationship("ScanRun", back_populates="answers")


class Contact(Base):
    """A real person per school and role, maintained by the schoolopleider (``contacts import``)."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("school", "role", "email", name="uq_contact_school_role_email"),)
    id = Column(Integer, primary_key=True, autoincrement=True)
    school = Column(String(200), nullable=False, index=True)
    role = Column(String(64), nullable=False)
    name = Column(String(200), nullable=False)
    email = Column(String(200), nullable=False)
    partnership = Column(String(64), nullable=True)


# --- people in the loop (issue 16): feedback, staff, forwarded questions, proactive messages ---


class Feedback(Base):
    """A mentor's 👍/👎 on one answer (a knowledge entry, or ``vraag:<id>`` for a person's answer).

    Personal data: deleted with the mentor (FK cascade) and after the retention period.
    """

    __tablename__ = "feedback"
    id = Column(Integer, primary_key=True, autoincrement=True)
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False, index=True)
    entry_id = Column(String(128), nullable=False, index=True)
    kb_version = Column(String(64), nullable=True)
    partnership = Column(String(64), nullable=True)
    vote = Column(String(8), nullable=False)  # up | down
    comment = Column(Text, nullable=True)  # what was missing (after 👎), at most 500 characters
    created_at = Column(DateTime, nullable=False, default=utcnow)


class StaffMember(Base):
    """A schoolopleider (or a partnership's contact) registered by an operator (``staff add``).

    ``school`` None with role ``partnership-contact``: the partnership's default contact (or, with
    ``partnership`` None too, the deployment's). ``account_id`` is the chat account (a row in
    ``mentors``: everyone who chats has one) the person linked with their one-time staff code.
    """

    __tablename__ = "staff_members"
    __table_args__ = (UniqueConstraint("email", "role", "school", name="uq_staff_email_role_school"),)
    id = Column(Integer, primary_key=True, autoincrement=True)
    name = Column(String(200), nullable=False)
    email = Column(String(200), nullable=False)
    role = Column(String(64), nullable=False, default="schoolopleider")
    school = Column(String(200), nullable=True, index=True)
    partnership = Column(String(64), nullable=True)
    report_admin = Column(Boolean, nullable=False, default=False, server_default="0")
    account_id = Column(String(32), ForeignKey("mentors.id", ondelete="SET NULL"), nullable=True, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)


class StaffCode(Base):
    """A one-time code with which a staff member links their Teams/Telegram account."""

    __tablename__ = "staff_codes"
    code = Column(String(16), primary_key=True)
    staff_id = Column(Integer, ForeignKey("staff_members.id", ondelete="CASCADE"), nullable=False, index=True)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime, nullable=True)


class Question(Base):
    """A mentor's question forwarded to a person, from draft (awaiting consent) to answered.

    status: draft (shown to the mentor, not sent) | open (sent) | answered | cancelled.
    The mentor's text is personal data: deleted with the mentor (FK cascade).
    """

    __tablename__ = "questions"
    id = Column(Integer, primary_key=True, autoincrement=True)
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False, index=True)
    staff_id = Column(Integer, ForeignKey("staff_members.id", ondelete="SET NULL"), nullable=True, index=True)
    status = Column(String(16), nullable=False, default="draft", index=True)
    text = Column(Text, nullable=False, default="")
    topic = Column(String(128), nullable=True)  # closest knowledge entry, for insights
    school = Column(String(200), nullable=True)
    partnership = Column(String(64), nullable=True)
    sender_id = Column(String(255), nullable=False)  # where the answer goes (the channel asked from)
    channel = Column(String(32), nullable=False, default="rest")
    created_at = Column(DateTime, nullable=False, default=utcnow)
    sent_at = Column(DateTime, nullable=True)
    answered_at = Column(DateTime, nullable=True)
    answer = Column(Text, nullable=True)
    answered_by = Column(Integer, ForeignKey("staff_members.id", ondelete="SET NULL"), nullable=True)
    escalated_at = Column(DateTime, nullable=True)
    draft_requested_at = Column(DateTime, nullable=True)  # "toevoegen aan kennisbank"


class ConversationRef(Base):
    """How to reach a sender without them writing first (Teams: serviceUrl, conversation, bot, user).

    Telegram needs none (a private chat's id is the user id in ``tg-<id>``); REST has none.
    """

    __tablename__ = "conversation_refs"
    sender_id = Column(String(255), primary_key=True)
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False, index=True)
    channel = Column(String(32), nullable=False)
    reference = Column(Text, nullable=False)  # JSON
    updated_at = Column(DateTime, nullable=False, default=utcnow)


class OutboxMessage(Base):
    """A message for someone who is not writing to us right now (bot/delivery.py).

    Written in the same transaction as the fact it announces (an answer, a forwarded question), and
    delivered at most once: a sender claims it with a conditional UPDATE before sending. Channels:
    telegram | teams (proactive), rest (before the reply to the recipient's next message), email.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "channel"),)
    id = Column(Integer, primary_key=True, autoincrement=True)
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=True, index=True)
    sender_id = Column(String(255), nullable=True, index=True)  # chat recipient; None for e-mail
    email_to = Column(String(200), nullable=True)
    channel = Column(String(32), nullable=False)
    kind = Column(String(32), nullable=False)  # answer | new_question | escalation | reminder | evaluation
    question_id = Column(Integer, ForeignKey("questions.id", ondelete="CASCADE"), nullable=True, index=True)
    subject = Column(String(200), nullable=True)  # e-mail only
    text = Column(Text, nullable=False)
    buttons = Column(Text, nullable=True)  # JSON list of {"title", "payload"}
    created_at = Column(DateTime, nullable=False, default=utcnow)
    claimed_at = Column(DateTime, nullable=True)
    delivered_at = Column(DateTime, nullable=True)
    # The channel message id whose reply carried this row (delivered with the next message): when the
    # same message comes again (its reply was lost: a timeout, a crash), the row goes with it again.
    handed_out_with = Column(String(64), nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(64), nullable=True)  # an exception type or HTTP status, never content


class Reminder(Base):
    """An opted-in reminder for a paused scan (or an invitation to the training evaluation)."""

    __tablename__ = "reminders"
    # One reminder per scan run, ever (bot/reminders.py); NULL run ids (invitations) do not collide.
    __table_args__ = (UniqueConstraint("run_id", name="uq_reminder_run"),)
    id = Column(Integer, primary_key=True, autoincrement=True)
    mentor_id = Column(String(32), ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False, index=True)
    run_id = Column(Integer, ForeignKey("scan_runs.id", ondelete="CASCADE"), nullable=True, index=True)
    kind = Column(String(16), nullable=False, default="scan")  # scan | evaluation
    sender_id = Column(String(255), nullable=False)
    channel = Column(String(32), nullable=False)
    remind_at = Column(DateTime, nullable=False)
    sent_at = Column(DateTime, nullable=True)
    cancelled_at = Column(DateTime, nullable=True)


class Training(Base):
    """A school's mentor training date (``training-signup --date``): after it, the evaluation is offered."""

    __tablename__ = "trainings"
    __table_args__ = (UniqueConstraint("school", "training_date", name="uq_training_school_date"),)
    id = Column(Integer, primary_key=True, autoincrement=True)
    school = Column(String(200), nullable=False, index=True)
    training_date = Column(DateTime, nullable=False)


class AnswerLog(Base):
    """Anonymous usage: which entry was answered (or none), per partnership and day. No mentor id, no
    text: it counts how often an entry is asked and which topics go unanswered (bot/insights.py)."""

    __tablename__ = "answer_log"
    id = Column(Integer, primary_key=True, autoincrement=True)
    entry_id = Column(String(128), nullable=True, index=True)  # None: nothing answered
    topic = Column(String(128), nullable=True)  # closest entry's group when unanswered
    outcome = Column(String(16), nullable=False)  # answer | suggest | unknown
    partnership = Column(String(64), nullable=True)
    day = Column(DateTime, nullable=False)  # truncated to the day


def _sqlite_pragmas(*pragmas: str):
    """A connect listener that sets these pragmas on every new SQLite connection."""
    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()
    return on_connect


def sqlite_engine(url: Union[str, URL], pragmas: tuple[str, ...], **kwargs: Any) -> Engine:
    """A SQLite engine usable from any thread, with ``pragmas`` on every connection. A file's
    connections are kept (QueuePool): SQLAlchemy 1.4 gives a file a NullPool, a new connection with
    its pragmas for every session, which was most of the action server's time per scan answer and a
    sixth of Rasa's (issue 17)."""
    if make_url(url).database not in (None, "", ":memory:"):
        kwargs["poolclass"] = QueuePool
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5}, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas(*pragmas))
    return engine


@lru_cache(maxsize=8)
def get_engine(url: Optional[str] = None) -> Engine:
    """One engine per URL per process; SQLite files and their folder are created on first use."""
    url = url or get_settings().db_url
    # hide_parameters: a failing statement's values (answers, goals, names) never reach an error message
    kwargs: dict = {"future": True, "hide_parameters": True}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return sqlite_engine(url, ("foreign_keys=ON", "journal_mode=WAL", "busy_timeout=5000"), **kwargs)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, **kwargs)


@lru_cache(maxsize=8)
def _session_factory(url: Optional[str] = None) -> sessionmaker:
    engine = get_engine(url)
    Base.metadata.create_all(engine)  # idempotent: creates only missing tables
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)


def init_db(url: Optional[str] = None) -> Engine:
    """Create missing tables; safe to call at every start-up."""
    _session_factory(url)
    return get_engine(url)


@contextmanager
def session_scope(url: Optional[str] = None) -> Iterator[Session]:
    """One transaction per unit of work: committed on success, rolled back on error."""
    with _session_factory(url).begin() as session:
        yield session


def reset_caches() -> None:
    """Forget engines and session factories (tests switch databases between cases)."""
    _session_factory.cache_clear()
    get_engine.cache_clear()


# --- mentors and identities -------------------------------------------------------------


def adopt_legacy_identity(session: Session, sender_id: str) -> Optional[Identity]:
    """Before Teams ids carried their channel, a Teams mentor's id was the bare AAD object id. The first
    proven ``teams:<tenant>:<aad>`` message takes that record over (scan progress kept), but only when
    no other id is linked to it: an id anyone could once claim must not lead into someone's data."""
    if not sender_id.startswith(TEAMS_PREFIX):
        return None
    legacy = session.get(Identity, sender_id.rsplit(":", 1)[-1])
    if legacy is None or legacy.channel != "teams" or len(legacy.mentor.identities) != 1:
        return None
    legacy.sender_id = sender_id
    session.flush()
    log.info("legacy Teams identity adopted")
    return legacy


def mentor_for_sender(session: Session, sender_id: str, channel: str = "rest") -> Mentor:
    """The mentor behind a sender id, created on first contact."""
    identity = session.get(Identity, sender_id) or adopt_legacy_identity(session, sender_id)
    if identity is not None:
        identity.mentor.last_seen_at = utcnow()
        return identity.mentor
    mentor = Mentor()
    session.add(mentor)
    session.flush()
    session.add(Identity(sender_id=sender_id, channel=channel or "rest", mentor_id=mentor.id))
    session.flush()
    return mentor


def find_mentor(session: Session, mentor_or_sender_id: str) -> Optional[Mentor]:
    mentor = session.get(Mentor, mentor_or_sender_id)
    if mentor is not None:
        return mentor
    identity = session.get(Identity, mentor_or_sender_id)
    return identity.mentor if identity is not None else None


def sender_ids(session: Session, mentor_id: str) -> list[str]:
    return list(session.execute(select(Identity.sender_id).where(Identity.mentor_id == mentor_id)).scalars())


def delete_mentor(session: Session, mentor_id: str) -> dict:
    """Delete a mentor and everything stored about them; returns what was deleted (counts)."""
    mentor = session.get(Mentor, mentor_id)
    if mentor is None:
        return {"mentors": 0, "identities": 0, "runs": 0, "answers": 0, "link_codes": 0, "link_failures": 0,
                "feedback": 0, "questions": 0, "messages": 0, "reminders": 0}
    counts = {
        "mentors": 1,
        "identities": len(mentor.identities),
        "runs": len(mentor.runs),
        "answers": sum(len(run.answers) for run in mentor.runs),
    }
    counts["link_codes"] = session.execute(delete(LinkCode).where(LinkCode.mentor_id == mentor_id)).rowcount
    counts["link_failures"] = session.execute(
        delete(LinkFailure).where(LinkFailure.sender_id.in_(sender_ids(session, mentor_id)))
    ).rowcount
    # Explicit, not only the foreign keys' ON DELETE: the counts are shown to the mentor, and a
    # message to a schoolopleider about this mentor's question goes with the question.
    questions = select(Question.id).where(Question.mentor_id == mentor_id).scalar_subquery()
    counts["messages"] = session.execute(
        delete(OutboxMessage).where((OutboxMessage.mentor_id == mentor_id) | OutboxMessage.question_id.in_(questions))
        .execution_options(synchronize_session=False)
    ).rowcount
    counts["questions"] = session.execute(delete(Question).where(Question.mentor_id == mentor_id)).rowcount
    counts["feedback"] = session.execute(delete(Feedback).where(Feedback.mentor_id == mentor_id)).rowcount
    counts["reminders"] = session.execute(delete(Reminder).where(Reminder.mentor_id == mentor_id)).rowcount
    session.execute(delete(ConversationRef).where(ConversationRef.mentor_id == mentor_id))
    session.execute(update(StaffMember).where(StaffMember.account_id == mentor_id).values(account_id=None))
    session.delete(mentor)
    session.flush()
    return counts


# --- link failures -----------------------------------------------------------------------


def count_link_failures(session: Session, sender_id: str, since: datetime) -> int:
    return session.execute(
        select(func.count(LinkFailure.id)).where(LinkFailure.sender_id == sender_id, LinkFailure.failed_at >= since)
    ).scalar_one()


def add_link_failure(session: Session, sender_id: str) -> None:
    session.add(LinkFailure(sender_id=sender_id, failed_at=utcnow()))
    session.flush()


# --- questionnaire runs and answers -----------------------------------------------------


def open_run(session: Session, mentor_id: str, questionnaire_id: str) -> Optional[ScanRun]:
    """The mentor's unfinished run of this questionnaire, if any (newest first)."""
    return session.execute(
        select(ScanRun)
        .where(
            ScanRun.mentor_id == mentor_id,
            ScanRun.questionnaire_id == questionnaire_id,
            ScanRun.completed_at.is_(None),
        )
        .order_by(ScanRun.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def completed_runs(session: Session, mentor_id: str, questionnaire_id: str) -> list[ScanRun]:
    return list(
        session.execute(
            select(ScanRun)
            .where(
                ScanRun.mentor_id == mentor_id,
                ScanRun.questionnaire_id == questionnaire_id,
                ScanRun.completed_at.is_not(None),
            )
            .order_by(ScanRun.completed_at, ScanRun.id)
        ).scalars()
    )


def start_run(session: Session, mentor_id: str, questionnaire_id: str, version: int) -> ScanRun:
    run = ScanRun(mentor_id=mentor_id, questionnaire_id=questionnaire_id, questionnaire_version=version)
    session.add(run)
    session.flush()
    return run


def run_answers(session: Session, run_id: int) -> dict[str, str]:
    rows = session.execute(select(Answer.item_id, Answer.value).where(Answer.run_id == run_id))
    return {item_id: value for item_id, value in rows}


def answered_by_message(session: Session, run_id: int, message_id: Optional[str]) -> Optional[str]:
    """The item a message (by channel message id) already answered in this run, if any."""
    if not message_id:
        return None
    return session.execute(
        select(Answer.item_id).where(Answer.run_id == run_id, Answer.message_id == message_id).limit(1)
    ).scalar_one_or_none()


def save_answer(session: Session, run: ScanRun, item_id: str, value: str, channel: str = "rest",
                message_id: Optional[str] = None) -> None:
    """Insert or update the answer to one item of a run (unique per run and item)."""
    existing = session.execute(
        select(Answer).where(Answer.run_id == run.id, Answer.item_id == item_id)
    ).scalar_one_or_none()
    now = utcnow()
    if existing is None:
        session.add(Answer(run_id=run.id, item_id=item_id, value=value, channel=channel or "rest",
                           answered_at=now, message_id=message_id))
    else:
        existing.value = value
        existing.channel = channel or "rest"
        existing.answered_at = now
        existing.message_id = message_id
    run.updated_at = now
    session.flush()


def purge_older_than(session: Session, days: int) -> dict:
    """Retention: delete runs (with answers) and mentors not seen for ``days`` days, expired link
    codes, and link failures older than LINK_FAILURE_WINDOW."""
    cutoff = utcnow() - timedelta(days=days)
    old_mentors = list(session.execute(select(Mentor.id).where(Mentor.last_seen_at < cutoff)).scalars())
    for mentor_id in old_mentors:
        delete_mentor(session, mentor_id)
    old_runs = list(session.execute(select(ScanRun).where(ScanRun.updated_at < cutoff)).scalars())
    for run in old_runs:
        session.delete(run)
    # Feedback comments, forwarded questions and their messages follow the same retention period.
    old_questions = select(Question.id).where(Question.created_at < cutoff).scalar_subquery()
    session.execute(delete(OutboxMessage).where((OutboxMessage.created_at < cutoff)
                                                | OutboxMessage.question_id.in_(old_questions))
                    .execution_options(synchronize_session=False))
    session.execute(delete(Question).where(Question.created_at < cutoff))
    session.execute(delete(Feedback).where(Feedback.created_at < cutoff))
    session.execute(delete(Reminder).where(Reminder.remind_at < cutoff))
    session.execute(delete(AnswerLog).where(AnswerLog.day < cutoff))
    session.execute(delete(StaffCode).where(StaffCode.expires_at < utcnow()))
    session.execute(delete(LinkCode).where(LinkCode.expires_at < utcnow()))
    failures = session.execute(delete(LinkFailure).where(LinkFailure.failed_at < utcnow() - LINK_FAILURE_WINDOW))
    session.flush()
    return {"mentors": len(old_mentors), "runs": len(old_runs), "link_failures": failures.rowcount}
