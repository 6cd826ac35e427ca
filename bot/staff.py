"""Staff: the schoolopleiders (and partnership contacts) who answer the questions the bot cannot.

An operator registers a person (``mentorwijzer staff add``) and hands them a one-time code; the
person types it in their own Teams or Telegram chat with the bot, which links that chat account to
the staff record (bot/linking.py redeems the code, with the same guard against guessing as the
mentors' codes). From then on the bot can reach them there, and only they can see and answer the
questions routed to them.

Routing (:func:`route`): the schoolopleider of the mentor's school; else the partnership's contact
(role ``partnership-contact`` with that partnership and no school); else the deployment's contact
(role ``partnership-contact`` without partnership and school).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot import linking, storage
from bot.settings import get_settings

SCHOOLOPLEIDER = "schoolopleider"
PARTNERSHIP_CONTACT = "partnership-contact"
ROLES = (SCHOOLOPLEIDER, PARTNERSHIP_CONTACT)
ROLE_LABELS = {SCHOOLOPLEIDER: "schoolopleider", PARTNERSHIP_CONTACT: "contactpersoon van het partnerschap"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class StaffError(ValueError):
    """An operator's staff command that cannot be carried out (the message says why)."""


@dataclass(frozen=True)
class Registered:
    staff_id: int
    code: str
    valid_days: int


def _new_code(session: Session, staff_id: int) -> str:
    code = linking.new_code()
    session.add(storage.StaffCode(
        code=code, staff_id=staff_id,
        expires_at=storage.utcnow() + timedelta(days=get_settings().staff_code_valid_days),
    ))
    return code


def add(name: str, email: str, role: str = SCHOOLOPLEIDER, school: Optional[str] = None,
        partnership: Optional[str] = None, report_admin: bool = False) -> Registered:
    """Register (or update) a staff member and issue a fresh link code. A schoolopleider needs a
    school; the person is also put in the contacts directory, so 'wie is onze schoolopleider?' finds them."""
    name, email = (name or "").strip(), (email or "").strip().lower()
    school = (school or "").strip() or None
    partnership = (partnership or "").strip() or None
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    if not name or not EMAIL.match(email):
        raise StaffError("a name and a valid e-mail address are required")
    if role == SCHOOLOPLEIDER and not school:
        raise StaffError("a schoolopleider needs --school")
    with storage.session_scope() as session:
        member = session.execute(
            select(storage.StaffMember).where(storage.StaffMember.email == email, storage.StaffMember.role == role,
                                              _same_school(school))
        ).scalar_one_or_none()
        if member is None:
            member = storage.StaffMember(email=email, role=role, school=school)
            session.add(member)
        member.name, member.partnership, member.report_admin = name, partnership, report_admin
        session.flush()
        if school and role == SCHOOLOPLEIDER:
            contact = session.execute(
                select(storage.Contact).where(storage.Contact.school == school, storage.Contact.role == role,
                                              storage.Contact.email == email)
            ).scalar_one_or_none()
            if contact is None:
                session.add(storage.Contact(school=school, role=role, name=name, email=email, partnership=partnership))
            else:
                contact.name, contact.partnership = name, partnership or contact.partnership
        code = _new_code(session, member.id)
        return Registered(member.id, code, get_settings().staff_code_valid_days)


def _same_school(school: Optional[str]):
    return storage.StaffMember.school.is_(None) if school is None else storage.StaffMember.school == school


def new_code(staff_id: int) -> Optional[str]:
    """A fresh link code for an existing staff member (e.g. a new phone); None if unknown."""
    with storage.session_scope() as session:
        if session.get(storage.StaffMember, staff_id) is None:
            return None
        return _new_code(session, staff_id)


def remove(staff_id: int) -> bool:
    """Remove a staff member; their open questions go to the next contact at the next escalation."""
    with storage.session_scope() as session:
        member = session.get(storage.StaffMember, staff_id)
        if member is None:
            return False
        session.delete(member)
        return True


def list_all() -> list[dict]:
    with storage.session_scope() as session:
        members = session.execute(select(storage.StaffMember).order_by(storage.StaffMember.id)).scalars()
        return [
            {"id": m.id, "name": m.name, "email": m.email, "role": m.role, "school": m.school,
             "partnership": m.partnership, "report_admin": m.report_admin, "linked": m.account_id is not None}
            for m in members
        ]


# --- who is who ---------------------------------------------------------------------------


def of_sender(session: Session, sender_id: str) -> list[storage.StaffMember]:
    """The staff records linked to the chat account behind ``sender_id`` (none for a mentor)."""
    identity = session.get(storage.Identity, sender_id)
    if identity is None:
        return []
    return list(session.execute(
        select(storage.StaffMember).where(storage.StaffMember.account_id == identity.mentor_id)
    ).scalars())


def report_admin_of(sender_id: str) -> Optional[storage.StaffMember]:
    """The sender's staff record with report rights (``staff add --report-admin``), if any."""
    with storage.session_scope() as session:
        return next((member for member in of_sender(session, sender_id) if member.report_admin), None)


def route(session: Session, school: Optional[str], partnership: Optional[str]) -> Optional[storage.StaffMember]:
    """Who answers a question of a mentor at ``school`` in ``partnership`` (see the module docstring)."""
    if school:
        member = session.execute(
            select(storage.StaffMember)
            .where(func.lower(storage.StaffMember.school) == school.strip().lower(),
                   storage.StaffMember.role == SCHOOLOPLEIDER)
            .order_by(storage.StaffMember.account_id.is_(None), storage.StaffMember.id)  # linked ones first
            .limit(1)
        ).scalar_one_or_none()
        if member is not None:
            return member
    return partnership_contact(session, partnership)


def partnership_contact(session: Session, partnership: Optional[str]) -> Optional[storage.StaffMember]:
    """The partnership's contact, else the deployment's (the escalation address as well)."""
    for wanted in ([partnership] if partnership else []) + [None]:
        condition = storage.StaffMember.partnership.is_(None) if wanted is None \
            else storage.StaffMember.partnership == wanted
        member = session.execute(
            select(storage.StaffMember)
            .where(storage.StaffMember.role == PARTNERSHIP_CONTACT, storage.StaffMember.school.is_(None), condition)
            .order_by(storage.StaffMember.id).limit(1)
        ).scalar_one_or_none()
        if member is not None:
            return member
    return None


def chat_sender(session: Session, member: storage.StaffMember) -> Optional[str]:
    """The staff member's chat to notify: Teams before Telegram before anything else; None if unlinked."""
    if member.account_id is None:
        return None
    senders = storage.sender_ids(session, member.account_id)
    order = {"teams:": 0, "tg-": 1}
    ranked = sorted(senders, key=lambda s: next((rank for prefix, rank in order.items() if s.startswith(prefix)), 2))
    return ranked[0] if ranked else None


def label(member: Optional[storage.StaffMember]) -> str:
    """'Anna de Vries (schoolopleider van De Regenboog)', as a mentor sees the recipient."""
    if member is None:
        return "je schoolopleider"
    where = f" van {member.school}" if member.school else ""
    return f"{member.name} ({ROLE_LABELS.get(member.role, member.role)}{where})"


def redeem(session: Session, code: str, sender_id: str, channel: str) -> Optional[str]:
    """Link the sender's chat account to the staff member of ``code`` (bot/linking.py calls this
    inside its guarded transaction). Returns the staff member's label, or None when the code is not
    a staff code; raises LookupError('expired' | 'invalid') for a known but unusable code."""
    row = session.get(storage.StaffCode, code)
    if row is None:
        return None
    now = storage.utcnow()
    if row.used_at is not None:
        raise LookupError("invalid")
    if row.expires_at < now:
        raise LookupError("expired")
    claimed = session.execute(  # two chats typing the same code at once: only one links
        update(storage.StaffCode).where(storage.StaffCode.code == code, storage.StaffCode.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise LookupError("invalid")
    member = session.get(storage.StaffMember, row.staff_id)
    account = storage.mentor_for_sender(session, sender_id, channel)
    member.account_id = account.id
    session.flush()
    return label(member)
