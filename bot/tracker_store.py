"""Rasa's SQL tracker store, made to keep deletions and to log no message text.

Configure it in endpoints.yml with the same keys as ``type: SQL``::

    tracker_store:
      type: bot.tracker_store.ForgettingSQLTrackerStore
      dialect: sqlite
      db: var/tracker.db

What differs from ``rasa.core.tracker_store.SQLTrackerStore`` (Rasa 3.6):

* a save first looks for a tombstone of the sender (bot/conversation_history.py). When the mentor's
  data was deleted during this turn (or by ``mentorwijzer forget`` while the turn ran), everything
  older than the deletion is dropped and only the events after it are stored, instead of writing
  the whole session back;
* its engine hides SQL parameters in errors (they are the events: message text, slot values), and
  the process gets the library log scrubber (bot/logsafety.py).

Note: Rasa falls back to an in-memory store with only a warning when this class cannot be imported;
the security tests check that conversations reach the database.
"""
from __future__ import annotations

from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from bot import conversation_history, logsafety
from bot.storage import sqlite_engine


class ForgettingSQLTrackerStore(SQLTrackerStore):
    """SQL tracker store that honours tombstones written by a deletion."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        logsafety.install()
        super().__init__(*args, **kwargs)
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            self._pool_sqlite_connections()
        self.engine.hide_parameters = True
        conversation_history.ensure_tombstones(self.engine)

    def _pool_sqlite_connections(self) -> None:
        """Keep SQLite connections open (SQLAlchemy 1.4 opens one per session for a file) and use
        write-ahead logging with synchronous=NORMAL: a commit no longer rewrites a journal file, and
        a crash or restart of any process loses nothing (only a power cut could lose the last turns
        of a conversation; scan answers live in the application database, which keeps full sync)."""
        url = self.engine.url
        self.engine.dispose()
        self.engine = sqlite_engine(url, ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"))
        self.sessionmaker = sessionmaker(bind=self.engine)

    async def save(self, tracker: DialogueStateTracker) -> None:
        with self.engine.connect() as connection:
            since = conversation_history.forgotten_at(connection, tracker.sender_id)
        if since is None:
            await super().save(tracker)
            return
        with self.engine.begin() as connection:
            connection.execute(delete(self.SQLEvent.__table__).where(
                self.SQLEvent.__table__.c.sender_id == tracker.sender_id))
            tombstones = conversation_history.forgotten_senders
            connection.execute(delete(tombstones).where(tombstones.c.sender_id == tracker.sender_id))
        kept = [event for event in tracker.events if (event.timestamp or 0) >= since]
        slots = list(self.domain.slots) if self.domain else []
        await super().save(DialogueStateTracker.from_events(tracker.sender_id, kept, slots=slots))
