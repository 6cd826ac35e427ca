"""'Had je hier iets aan?': a 👍/👎 on an answer, and after 👎 once, optionally, what was missing.

Every vote is stored with the entry, the knowledge base's version and the mentor's partnership, so a
partnership sees which answers help (bot/insights.py). Votes are personal data (mentor id, free text):
deleted with the mentor and after the retention period (bot/storage.py).
"""
from __future__ import annotations

import hashlib
from datetime import timedelta
from functools import lru_cache
from typing import Optional

from sqlalchemy import select

from bot import storage
from bot.settings import get_settings

UP, DOWN = "up", "down"
MAX_COMMENT = 500
QUESTION_PREFIX = "vraag:"  # votes on a person's answer to a forwarded question: vraag:<question id>
# A second tap on the same answer within this time changes the vote instead of adding one (Teams
# cards stay clickable; Telegram removes the keyboard after the first tap).
SAME_VOTE_WINDOW = timedelta(minutes=30)


def buttons(entry_id: str, up: str = "👍 Nuttig", down: str = "👎 Niet nuttig") -> list[tuple[str, str]]:
    """The two feedback buttons for an answer; compact payloads (Telegram allows 64 bytes)."""
    return [(up, f'/vote_up{{"kb_entry":"{entry_id}"}}'), (down, f'/vote_down{{"kb_entry":"{entry_id}"}}')]


@lru_cache(maxsize=1)
def kb_version() -> str:
    """A short digest of the knowledge files: which version of an answer a vote is about."""
    digest = hashlib.sha256()
    for path in sorted(get_settings().knowledge_dir.glob("*.yml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def vote(sender_id: str, channel: str, entry_id: str, value: str) -> int:
    """Store a vote; returns its id (a repeated tap on the same answer updates the earlier vote)."""
    if value not in (UP, DOWN):
        raise ValueError(value)
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, sender_id, channel)
        recent = session.execute(
            select(storage.Feedback)
            .where(storage.Feedback.mentor_id == mentor.id, storage.Feedback.entry_id == entry_id,
                   storage.Feedback.created_at >= storage.utcnow() - SAME_VOTE_WINDOW)
            .order_by(storage.Feedback.id.desc()).limit(1)
        ).scalar_one_or_none()
        if recent is None:
            recent = storage.Feedback(mentor_id=mentor.id, entry_id=entry_id[:128], kb_version=kb_version(),
                                      partnership=mentor.partnership)
            session.add(recent)
        recent.vote = value
        recent.created_at = storage.utcnow()
        session.flush()
        return recent.id


def add_comment(sender_id: str, feedback_id: int, text: str) -> bool:
    """What was missing, at most MAX_COMMENT characters; only on the sender's own vote."""
    with storage.session_scope() as session:
        row = session.get(storage.Feedback, feedback_id)
        identity = session.get(storage.Identity, sender_id)
        if row is None or identity is None or row.mentor_id != identity.mentor_id:
            return False
        row.comment = (text or "").strip()[:MAX_COMMENT] or None
        return True
