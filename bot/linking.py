"""Linking two channels of one mentor with a one-time code: the code is the only proof that the
Telegram and Teams identities belong to the same person, so it lives apart from the data functions
(bot/privacy.py) and guards itself.

* A code is redeemed at most once, also by two messages at the same moment: a conditional
  ``UPDATE ... WHERE used_at IS NULL`` claims it, and only the sender whose update hit the row
  links (SQLite and PostgreSQL alike).
* Guessing is useless: a sender with ``MAX_FAILURES`` wrong or expired codes within
  ``storage.LINK_FAILURE_WINDOW`` is ``blocked``; the code is then not even looked at, so a right
  guess is refused too. Rasa handles one message per sender at a time (its lock store), so the
  count cannot be raced from one conversation.
"""
from __future__ import annotations

import logging
import re
import secrets
from datetime import timedelta
from typing import Optional

from sqlalchemy import delete, update

from bot import identity, storage

log = logging.getLogger(__name__)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O/1/I: easy to type from a phone
CODE_LENGTH = 6
CODE_VALID_MINUTES = 10
CODE_DIGITS = "".join(char for char in CODE_ALPHABET if char.isdigit())
# A code as typed: CODE_LENGTH characters of the alphabet with at least one digit, so that words
# such as "koppel" or "teams" never count as a code (the same pattern is in data/nlu/regex.yml).
CODE_PATTERN = re.compile(rf"\b(?=[{CODE_ALPHABET}]*[{CODE_DIGITS}])[{CODE_ALPHABET}]{{{CODE_LENGTH}}}\b",
                          re.IGNORECASE)
MAX_FAILURES = 5  # wrong or expired codes per sender within storage.LINK_FAILURE_WINDOW
OUTCOMES = ("ok", "same", "invalid", "expired", "blocked", "staff")


def new_code() -> str:
    """A random code that CODE_PATTERN recognises (mentors' link codes and staff codes alike)."""
    code = ""
    while not CODE_PATTERN.fullmatch(code):  # about 1 in 6 draws has no digit and would not be recognised
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return code


def create_link_code(sender_id: str, channel: str) -> str:
    code = new_code()
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
    """Link this sender to the mentor who made ``code``; returns ok | same | invalid | expired | blocked,
    or ``staff`` when it was a staff member's code (bot/staff.py): this chat is then theirs.

    The answers of the linking sender's own, empty-handed record move along; a sender that
    already has scan answers keeps them under the merged mentor.
    """
    code = (code or "").strip().upper()
    with storage.session_scope() as session:
        now = storage.utcnow()
        if storage.count_link_failures(session, sender_id, now - storage.LINK_FAILURE_WINDOW) >= MAX_FAILURES:
            log.warning("link code refused: sender %s is blocked", identity.pseudonym(sender_id))
            return "blocked"
        from bot import staff  # staff builds on linking

        try:
            if staff.redeem(session, code, sender_id, channel) is not None:
                log.info("staff account linked for %s", identity.pseudonym(sender_id))
                return "staff"
        except LookupError as unusable:
            storage.add_link_failure(session, sender_id)
            return str(unusable.args[0])
        link = session.get(storage.LinkCode, code)
        if link is None or link.used_at is not None:
            storage.add_link_failure(session, sender_id)
            return "invalid"
        if link.expires_at < now:
            storage.add_link_failure(session, sender_id)
            return "expired"
        target_id = link.mentor_id
        own = session.get(storage.Identity, sender_id)
        if own is not None and own.mentor_id == target_id:
            return "same"
        claimed = session.execute(
            update(storage.LinkCode)
            .where(storage.LinkCode.code == code, storage.LinkCode.used_at.is_(None),
                   storage.LinkCode.expires_at >= now)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:  # another message redeemed it since we read it
            storage.add_link_failure(session, sender_id)
            return "invalid"
        if own is None:
            session.add(storage.Identity(sender_id=sender_id, channel=channel, mentor_id=target_id))
            return "ok"
        old = own.mentor
        for run in list(old.runs):
            run.mentor_id = target_id
        for other in list(old.identities):
            other.mentor_id = target_id
        # everything else of the linking sender's record moves along too (its deletion would cascade)
        for table in (storage.Feedback, storage.Question, storage.OutboxMessage, storage.Reminder,
                      storage.ConversationRef):
            session.execute(update(table).where(table.mentor_id == old.id).values(mentor_id=target_id)
                            .execution_options(synchronize_session=False))
        session.execute(update(storage.StaffMember).where(storage.StaffMember.account_id == old.id)
                        .values(account_id=target_id).execution_options(synchronize_session=False))
        target = session.get(storage.Mentor, target_id)
        target.school = target.school or old.school
        target.partnership = target.partnership or old.partnership
        target.reminders_off = target.reminders_off or old.reminders_off
        session.flush()
        session.expire(old)
        session.execute(delete(storage.Mentor).where(storage.Mentor.id == old.id))
    return "ok"
