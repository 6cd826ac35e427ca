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
from typing import Iterator, Optional

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
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, declarative_base, relationship, sessionmaker

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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


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
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 5}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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
        return {"mentors": 0, "identities": 0, "runs": 0, "answers": 0, "link_codes": 0, "link_failures": 0}
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
    session.execute(delete(LinkCode).where(LinkCode.expires_at < utcnow()))
    failures = session.execute(delete(LinkFailure).where(LinkFailure.failed_at < utcnow() - LINK_FAILURE_WINDOW))
    session.flush()
    return {"mentors": len(old_mentors), "runs": len(old_runs), "link_failures": failures.rowcount}
