"""What a mentor can do about their own data: first-contact notice, see it, export it, delete it.
Linking two channels with a one-time code is in bot/linking.py.

Deletion also removes the Rasa conversation history (the ``events`` table of the SQL tracker
store) for every sender id linked to the mentor, and it either happens or raises.
"""
from __future__ import annotations

import json
import logging
from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot import conversation_history, storage

log = logging.getLogger(__name__)


def first_contact(sender_id: str, channel: str, register: bool = True) -> bool:
    """True only the very first time we see the sender (show the AI notice once); registers them
    unless ``register`` is False (right after a deletion, nothing is stored until they write again)."""
    with storage.session_scope() as session:
        if session.get(storage.Identity, sender_id) or storage.adopt_legacy_identity(session, sender_id):
            return False
        if register:
            storage.mentor_for_sender(session, sender_id, channel)
        return True


def export(mentor_or_sender_id: str) -> Optional[dict]:
    """Everything stored about one mentor, as JSON-ready data (None if unknown)."""
    with storage.session_scope() as session:
        mentor = storage.find_mentor(session, mentor_or_sender_id)
        if mentor is None:
            return None
        return {
            "mentor_id": mentor.id,
            "name": mentor.display_name,
            "school": mentor.school,
            "partnership": mentor.partnership,
            "created_at": mentor.created_at.isoformat(timespec="seconds"),
            "channels": [{"channel": i.channel, "sender_id": i.sender_id} for i in mentor.identities],
            "questionnaires": [
                {
                    "questionnaire": run.questionnaire_id,
                    "version": run.questionnaire_version,
                    "started_at": run.started_at.isoformat(timespec="seconds"),
                    "completed_at": run.completed_at.isoformat(timespec="seconds") if run.completed_at else None,
                    "answers": {a.item_id: a.value for a in sorted(run.answers, key=lambda a: a.answered_at)},
                }
                for run in sorted(mentor.runs, key=lambda r: r.id)
            ],
            "feedback": [
                {"answer": f.entry_id, "vote": f.vote, "comment": f.comment,
                 "at": f.created_at.isoformat(timespec="seconds")}
                for f in session.execute(select(storage.Feedback).where(storage.Feedback.mentor_id == mentor.id)
                                         .order_by(storage.Feedback.id)).scalars()
            ],
            "forwarded_questions": [
                {"status": q.status, "question": q.text, "answer": q.answer,
                 "sent_at": q.sent_at.isoformat(timespec="seconds") if q.sent_at else None}
                for q in session.execute(select(storage.Question).where(storage.Question.mentor_id == mentor.id)
                                         .order_by(storage.Question.id)).scalars()
            ],
            "reminders_off": mentor.reminders_off,
        }


def describe(mentor_or_sender_id: str) -> str:
    """A short Dutch overview of what is stored, for 'wat weet je van mij?'."""
    data = export(mentor_or_sender_id)
    if data is None:
        return "Ik heb niets over je opgeslagen."
    lines = ["Dit heb ik over je opgeslagen:"]
    lines.append(f"• een anoniem nummer ({data['mentor_id'][:8]}…) en {len(data['channels'])} gekoppeld(e) kanaal/kanalen")
    if data["name"]:
        lines.append(f"• je naam: {data['name']}")
    if data["school"] or data["partnership"]:
        lines.append(f"• je school/partnerschap: {', '.join(x for x in (data['school'], data['partnership']) if x)}")
    done = [q for q in data["questionnaires"] if q["completed_at"]]
    open_ = [q for q in data["questionnaires"] if not q["completed_at"]]
    answers = sum(len(q["answers"]) for q in data["questionnaires"])
    lines.append(f"• {len(done)} afgeronde en {len(open_)} lopende vragenlijst(en), samen {answers} antwoorden")
    if data["feedback"]:
        lines.append(f"• {len(data['feedback'])} beoordeling(en) van mijn antwoorden (👍/👎)")
    if data["forwarded_questions"]:
        lines.append(f"• {len(data['forwarded_questions'])} vraag/vragen die je naar je schoolopleider stuurde")
    lines.append("• onze gesprekken (om het gesprek te kunnen voeren)")
    return "\n".join(lines)


def export_json(mentor_or_sender_id: str) -> str:
    return json.dumps(export(mentor_or_sender_id) or {}, ensure_ascii=False, indent=2)


# --- deletion --------------------------------------------------------------------------


class DeletionFailed(Exception):
    """Deletion did not (fully) happen: nothing may be reported as deleted that was not."""

    def __init__(self, where: str, conversations_deleted: bool) -> None:
        super().__init__(where)
        self.conversations_deleted = conversations_deleted


def forget(mentor_or_sender_id: str) -> Optional[dict]:
    """Delete the conversation history, then the mentor, answers and link codes; returns counts.

    The conversations of every linked sender id (and of the given id itself, even when no mentor is
    known for it) go first, with a tombstone so that Rasa's save of the running turn cannot write
    them back (bot/conversation_history.py). If that fails nothing else is deleted; every failure
    raises :class:`DeletionFailed`, so no caller can report a deletion that did not happen.
    Returns None when nothing at all was stored for the id.
    """
    with storage.session_scope() as session:
        mentor = storage.find_mentor(session, mentor_or_sender_id)
        mentor_id = mentor.id if mentor is not None else None
        senders = storage.sender_ids(session, mentor_id) if mentor_id else []
    if mentor_id != mentor_or_sender_id:
        senders.append(mentor_or_sender_id)  # a sender id: its conversation, with or without a profile
    try:
        events = conversation_history.forget_senders(senders)
    except conversation_history.HistoryError as error:
        log.error("deletion failed in the conversation store (%s); nothing was deleted", error)
        raise DeletionFailed("conversation store", conversations_deleted=False) from None
    if mentor_id is None:
        return {"conversation_events": events} if events else None
    try:
        with storage.session_scope() as session:
            counts = storage.delete_mentor(session, mentor_id)
    except SQLAlchemyError as error:
        log.error("deletion failed in the mentor database (%s); conversations were deleted", type(error).__name__)
        raise DeletionFailed("mentor database", conversations_deleted=True) from None
    counts["conversation_events"] = events
    log.info("mentor data deleted senders=%d answers=%d", len(senders), counts["answers"])
    return counts
