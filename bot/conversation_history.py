"""Rasa's conversation history (the ``events`` table of the SQL tracker store), seen from our side:
delete a mentor's conversations so that they stay deleted, and purge old ones.

Deleting events is not enough on its own: Rasa saves the running turn *after* the deletion action
returns, and its SQL tracker store then writes the whole current session back. So a deletion also
writes a **tombstone** (``forgotten_senders``: sender id + time) in the same transaction, and our
tracker store (bot/tracker_store.py) keeps nothing older than the tombstone when it saves that
sender's tracker. No timers: a Rasa restart a second later finds nothing to restore, and the first
save after it still obeys the tombstone.

Every failure raises :class:`HistoryError`, so callers can tell the mentor the truth.
"""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Iterable, Optional

from sqlalchemy import Column, Float, MetaData, String, Table, create_engine, delete, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.settings import get_settings

TOMBSTONE_TTL_SECONDS = 24 * 3600  # a turn lasts seconds; purge drops older tombstones

_metadata = MetaData()
forgotten_senders = Table(
    "forgotten_senders",
    _metadata,
    Column("sender_id", String(255), primary_key=True),
    Column("forgotten_at", Float, nullable=False),
)


class HistoryError(Exception):
    """The conversation store could not be reached, or is not a Rasa SQL tracker store."""


@lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    return create_engine(url, future=True, hide_parameters=True)


def reset_caches() -> None:
    """Forget engines (tests switch databases between cases)."""
    _engine.cache_clear()


def _tracker_store(url: str) -> Engine:
    """The engine of Rasa's tracker store at ``url``, with the tombstone table; else HistoryError."""
    engine = _engine(url)
    if not inspect(engine).has_table("events"):
        raise HistoryError("no 'events' table: MENTORWIJZER_TRACKER_DB_URL is not Rasa's tracker store")
    ensure_tombstones(engine)
    return engine


def _events(connection: Connection) -> Table:
    return Table("events", MetaData(), autoload_with=connection)


def ensure_tombstones(engine: Engine) -> None:
    """Create the tombstone table if missing; two servers starting at once may both try (one wins)."""
    try:
        with engine.begin() as connection:
            _metadata.create_all(connection, tables=[forgotten_senders], checkfirst=True)
    except SQLAlchemyError:
        if not inspect(engine).has_table(forgotten_senders.name):
            raise


def forget_senders(sender_ids: Iterable[str], url: Optional[str] = None) -> int:
    """Delete every event of these senders and leave a tombstone for each; returns events deleted."""
    senders = sorted({sender for sender in sender_ids if sender})
    url = url or get_settings().tracker_db_url
    if not senders:
        return 0
    if not url:
        raise HistoryError("MENTORWIJZER_TRACKER_DB_URL is not set")
    now = time.time()
    try:
        with _tracker_store(url).begin() as connection:
            events = _events(connection)
            deleted = connection.execute(delete(events).where(events.c.sender_id.in_(senders))).rowcount
            connection.execute(delete(forgotten_senders).where(forgotten_senders.c.sender_id.in_(senders)))
            connection.execute(forgotten_senders.insert(), [{"sender_id": s, "forgotten_at": now} for s in senders])
    except SQLAlchemyError as error:
        raise HistoryError(type(error).__name__) from None
    return max(deleted, 0)


def forgotten_at(connection: Connection, sender_id: str) -> Optional[float]:
    """When this sender's history was deleted, if a save has not yet honoured it."""
    return connection.execute(
        select(forgotten_senders.c.forgotten_at).where(forgotten_senders.c.sender_id == sender_id)
    ).scalar_one_or_none()


def purge_older_than(days: int, url: Optional[str] = None) -> dict:
    """Retention: events older than ``days`` days, and tombstones older than a day."""
    url = url or get_settings().tracker_db_url
    now = time.time()
    try:
        with _tracker_store(url).begin() as connection:
            events = _events(connection)
            removed = connection.execute(delete(events).where(events.c.timestamp < now - days * 86400)).rowcount
            connection.execute(
                delete(forgotten_senders).where(forgotten_senders.c.forgotten_at < now - TOMBSTONE_TTL_SECONDS)
            )
    except SQLAlchemyError as error:
        raise HistoryError(type(error).__name__) from None
    return {"conversation_events": max(removed, 0)}
