"""What a mentor can do about their own data: first-contact notice, see it, export it, delete it,
and link two channels with a one-time code.

Deletion also removes the Rasa conversation history (the ``events`` table of the SQL tracker
store) for every sender id linked to the mentor.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from datetime import timedelta
from typing import Optional

from sqlalchemy import MetaData, Table, create_engine, delete, inspect
from sqlalchemy.exc import SQLAlchemyError

from bot import storage
from bot.settings import get_settings

log = logging.getLogger(__name__)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O/1/I: easy to type from a phone
CODE_LENGTH = 6
CODE_VALID_MINUTES = 10
CODE_DIGITS = "".join(char for char in CODE_ALPHABET if char.isdigit())
# A code as typed: CODE_LENGTH characters of the alphabet with at least one digit, so that words
# such as "koppel" or "teams" never count as a code (the same pattern is in data/nlu/regex.yml).
CODE_PATTERN = re.compile(rf"\b(?=[{CODE_ALPHABET}]*[{CODE_DIGITS}])[{CODE_ALPHABET}]{{{CODE_LENGTH}}}\b",
                          re.IGNORECASE)


def first_contact(sender_id: str, channel: str) -> bool:
    """Register the sender; True only the very first time we see them (show the AI notice once)."""
    with storage.session_scope() as session:
        if session.get(storage.Identity, sender_id) is not None:
            return False
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
    lines.append("• onze gesprekken (om het gesprek te kunnen voeren)")
    return "\n".join(lines)


def export_json(mentor_or_sender_id: str) -> str:
    return json.dumps(export(mentor_or_sender_id) or {}, ensure_ascii=False, indent=2)


# --- deletion --------------------------------------------------------------------------


def delete_tracker_events(sender_ids: list[str], url: Optional[str] = None) -> int:
    """Delete Rasa conversation events for these senders from the SQL tracker store."""
    url = url or get_settings().tracker_db_url
    if not url or not sender_ids:
        return 0
    try:
        engine = create_engine(url, future=True)
        try:
            if not inspect(engine).has_table("events"):
                return 0
            events = Table("events", MetaData(), autoload_with=engine)
            with engine.begin() as connection:
                return connection.execute(delete(events).where(events.c.sender_id.in_(sender_ids))).rowcount
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        log.warning("tracker events not deleted: %s", type(exc).__name__)
        return 0


def forget(mentor_or_sender_id: str, tracker_delay: Optional[float] = None) -> Optional[dict]:
    """Delete the mentor, answers, link codes and conversation history; returns counts.

    From inside a conversation Rasa saves the running turn after the action returns, so the
    tracker events are deleted again shortly afterwards (``tracker_delay`` seconds).
    """
    with storage.session_scope() as session:
        mentor = storage.find_mentor(session, mentor_or_sender_id)
        if mentor is None:
            return None
        senders = storage.sender_ids(session, mentor.id)
        counts = storage.delete_mentor(session, mentor.id)
    counts["conversation_events"] = delete_tracker_events(senders)
    if tracker_delay:
        for delay in (tracker_delay, tracker_delay * 3):
            timer = threading.Timer(delay, delete_tracker_events, args=(senders,))
            timer.daemon = True
            timer.start()
    log.info("mentor data deleted senders=%d answers=%d", len(senders), counts["answers"])
    return counts


# --- linking channels ------------------------------------------------------------------


def create_link_code(sender_id: str, channel: str) -> str:
    code = ""
    while not CODE_PATTERN.fullmatch(code):  # about 1 in 6 draws has no digit and would not be recognised
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, sender_id, channel)
        session.add(storage.LinkCode(
            code=code, mentor_id=mentor.id,
            expires_at=storage.utcnow() + timedelta(minutes=CODE_VALID_MINUTES),
        ))
    return code


def find_link_code(text: str) -> Optional[str]:
    """The link code in a message such as "mijn koppelcode is k7p2qx", upper-cased; None without one."""
    match = CODE_PATTERN.search(text or "")
    return match.group(0).upper() if match else None


def use_link_code(sender_id: str, channel: str, code: str) -> str:
    """Link this sender to the mentor who made ``code``; returns ok | invalid | expired | same.

    The answers of the linking sender's own, empty-handed record move along; a sender that
    already has scan answers keeps them under the merged mentor.
    """
    code = (code or "").strip().upper()
    with storage.session_scope() as session:
        link = session.get(storage.LinkCode, code)
        if link is None or link.used_at is not None:
            return "invalid"
        if link.expires_at < storage.utcnow():
            return "expired"
        target_id = link.mentor_id
        identity = session.get(storage.Identity, sender_id)
        if identity is not None and identity.mentor_id == target_id:
            return "same"
        link.used_at = storage.utcnow()
        if identity is None:
            session.add(storage.Identity(sender_id=sender_id, channel=channel, mentor_id=target_id))
            return "ok"
        old = identity.mentor
        for run in list(old.runs):
            run.mentor_id = target_id
        for other in list(old.identities):
            other.mentor_id = target_id
        target = session.get(storage.Mentor, target_id)
        target.school = target.school or old.school
        target.partnership = target.partnership or old.partnership
        session.flush()
        session.expire(old)
        session.execute(delete(storage.Mentor).where(storage.Mentor.id == old.id))
    return "ok"
