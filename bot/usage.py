"""Anonymous usage log: which knowledge entry was answered (or that none was), per partnership and day.

One ``AnswerLog`` row per reply, with no mentor id, no sender id and no text, so it is not personal
data; ``bot/insights.py`` turns it into "how often asked" and "which topics go unanswered". Recording
is best effort: a database error is logged by its type and swallowed, because usage statistics must
never break an answer. Call it after the answer's own transaction, not inside an open session.
"""
from __future__ import annotations

import logging
from typing import Optional

from bot import storage
from bot.knowledge import ID_PATTERN

log = logging.getLogger(__name__)

OUTCOMES = ("answer", "suggest", "unknown")


def topic_of(entry_id: Optional[str]) -> Optional[str]:
    """The group of a knowledge entry: its id up to the first dot (``contact.stagnatie`` -> ``contact``).

    Every entry id in ``knowledge/`` has such a prefix and each file holds one or two of them
    (mentortaken.yml: ``taak``, ``eis``), so the grouping needs no knowledge base at hand and stays
    the same for entries that were later removed. A group name maps to itself; anything that is not
    an entry id (``vraag:<id>``, empty) has no group.
    """
    if not entry_id or not ID_PATTERN.match(entry_id):
        return None
    return entry_id.split(".", 1)[0]


def record(entry_id: Optional[str], outcome: str, partnership: Optional[str] = None,
           topic: Optional[str] = None) -> None:
    """Count one reply: the entry answered (None: nothing answered) and the outcome
    (answer | suggest | unknown). ``topic``: the closest entry (or its group) when nothing was
    answered; defaults to the group of ``entry_id``. Never raises."""
    if outcome not in OUTCOMES:
        log.warning("usage not recorded: unknown outcome %r", outcome)
        return
    try:
        now = storage.utcnow()
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        group = topic_of(topic or entry_id)
        with storage.session_scope() as session:
            session.add(storage.AnswerLog(
                entry_id=entry_id[:128] if entry_id else None,
                topic=group[:128] if group else None,
                outcome=outcome,
                partnership=partnership[:64] if partnership else None,
                day=day,
            ))
    except Exception as exc:  # noqa: BLE001 - statistics must never break an answer
        log.warning("usage not recorded (%s)", type(exc).__name__)
