"""'Zal ik je vraag doorsturen naar je schoolopleider?': a mentor's question to a person, and back.

The mentor's side: a question becomes a *draft* that the mentor sees word for word, with who will
get it; only an explicit "Versturen" sends it (status ``open``). They can edit it first (a student's
name may be in it) or cancel it, which deletes it. The staff side: the routed person (bot/staff.py)
is notified in their own chat and by e-mail, sees their ``open vragen``, answers by typing, and may
ask for the answer to become a draft knowledge entry. The answer reaches the mentor proactively in
the channel they asked from (bot/delivery.py). A question open for too many working days is
escalated once to the partnership's contact.

Every state change that notifies someone writes the notification into the outbox in the same
transaction (nothing is lost, and a conditional UPDATE makes sure nothing is sent twice), so a
restart between "answered" and "delivered" loses nothing.

Returns channel-neutral :class:`Step` objects; the Rasa actions (actions/handoff.py) only dispatch
them and keep ``awaiting`` (what the next typed message is for) in a slot.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import delivery, feedback, staff, storage
from bot.qa import Message
from bot.settings import get_settings

log = logging.getLogger(__name__)

MAX_QUESTION = 1000
MAX_ANSWER = 3000
OPEN_LIST_LIMIT = 10
DRAFT_SOURCE = "vraag van mentor, beantwoord door schoolopleider"
# What the next typed message is for: "<kind>:<question id>"
CONSENT, EDIT, STAFF_ANSWER = "consent", "edit", "staff_answer"


@dataclass
class Step:
    messages: list[Message]
    awaiting: Optional[str] = None  # None: nothing pending, the conversation goes on as usual
    notified: bool = False  # something was put in the outbox: flush it


def confirm_payload(choice: str) -> str:
    return f'/forward_question{{"confirm":"{choice}"}}'


def answer_payload(question_id: int) -> str:
    return f'/answer_question{{"question_id":"{question_id}"}}'


def draft_payload(question_id: int) -> str:
    return f'/add_to_knowledge{{"question_id":"{question_id}"}}'


def parse_awaiting(value: Optional[str]) -> tuple[Optional[str], Optional[int]]:
    kind, _, number = (value or "").partition(":")
    return (kind, int(number)) if kind and number.isdigit() else (None, None)


def _quote(text: str) -> str:
    return f"“{text.strip()}”"


def _own_question(session: Session, sender_id: str, question_id: int) -> Optional[storage.Question]:
    question = session.get(storage.Question, question_id)
    identity = session.get(storage.Identity, sender_id)
    if question is None or identity is None or question.mentor_id != identity.mentor_id:
        return None
    return question


# --- the mentor's side --------------------------------------------------------------------


def start(sender_id: str, channel: str, text: Optional[str], topic: Optional[str] = None,
          metadata: Optional[dict] = None) -> Step:
    """A draft of the question to forward, shown for consent (or a request to type it)."""
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, sender_id, channel)
        recipient = staff.route(session, mentor.school, mentor.partnership)
        if recipient is None:
            if not mentor.school:
                return Step([Message(
                    "Naar wie ik je vraag stuur, hangt af van je school. Op welke school werk je? "
                    "Typ bijvoorbeeld 'ik werk op De Regenboog', en vraag het me daarna nog een keer."
                )])
            return Step([Message(
                f"Ik kan je vraag nog niet doorsturen: voor {mentor.school} is nog geen schoolopleider bij mij "
                "aangemeld. Stel je vraag gerust rechtstreeks aan je schoolopleider."
            )])
        # One draft at a time: an earlier, never-sent draft is replaced (its text is not kept).
        session.execute(storage.Question.__table__.delete().where(
            storage.Question.mentor_id == mentor.id, storage.Question.status == "draft"))
        question = storage.Question(
            mentor_id=mentor.id, staff_id=recipient.id, status="draft", text=(text or "").strip()[:MAX_QUESTION],
            topic=topic, school=mentor.school, partnership=mentor.partnership, sender_id=sender_id, channel=channel,
        )
        session.add(question)
        session.flush()
        mentor_id = mentor.id
        if question.text:
            step = _preview(question, recipient)
        else:
            step = Step([Message(f"Wat wil je aan {staff.label(recipient)} vragen? Typ je vraag in één bericht.",
                                 [("Annuleren", confirm_payload("nee"))])], awaiting=f"{EDIT}:{question.id}")
    delivery.save_reference(sender_id, mentor_id, metadata)  # where the answer will go (Teams)
    return step


def _preview(question: storage.Question, recipient: Optional[storage.StaffMember]) -> Step:
    shortened = " (ingekort tot 1000 tekens)" if len(question.text) >= MAX_QUESTION else ""
    text = (
        f"Dit stuur ik naar {staff.label(recipient)}{shortened}:\n\n{_quote(question.text)}\n\n"
        "Je naam stuur ik niet mee, het antwoord krijg je hier in de chat. Staat er een naam van een leerling "
        "of van je student in die er niet in hoeft? Kies dan 'Aanpassen'."
    )
    buttons = [("Versturen", confirm_payload("ja")), ("Aanpassen", confirm_payload("aanpassen")),
               ("Annuleren", confirm_payload("nee"))]
    return Step([Message(text, buttons)], awaiting=f"{CONSENT}:{question.id}")


def current_draft(sender_id: str) -> Optional[int]:
    """The sender's unsent draft, for a consent button pressed after the conversation moved on."""
    with storage.session_scope() as session:
        identity = session.get(storage.Identity, sender_id)
        if identity is None:
            return None
        return session.execute(
            select(storage.Question.id).where(storage.Question.mentor_id == identity.mentor_id,
                                              storage.Question.status == "draft")
            .order_by(storage.Question.id.desc()).limit(1)
        ).scalar_one_or_none()


def edit(sender_id: str, question_id: int, text: str) -> Step:
    with storage.session_scope() as session:
        question = _own_question(session, sender_id, question_id)
        if question is None or question.status != "draft":
            return Step([Message("Die vraag kan ik niet meer aanpassen: hij is al verstuurd of geannuleerd.")])
        if not (text or "").strip():
            return Step([Message("Typ je vraag in één bericht, of kies 'Annuleren'.",
                                 [("Annuleren", confirm_payload("nee"))])], awaiting=f"{EDIT}:{question_id}")
        question.text = text.strip()[:MAX_QUESTION]
        return _preview(question, session.get(storage.StaffMember, question.staff_id) if question.staff_id else None)


def ask_edit(sender_id: str, question_id: int) -> Step:
    with storage.session_scope() as session:
        question = _own_question(session, sender_id, question_id)
        if question is None or question.status != "draft":
            return Step([Message("Die vraag kan ik niet meer aanpassen: hij is al verstuurd of geannuleerd.")])
    return Step([Message("Typ je vraag zoals je hem wilt versturen.", [("Annuleren", confirm_payload("nee"))])],
                awaiting=f"{EDIT}:{question_id}")


def cancel(sender_id: str, question_id: Optional[int]) -> Step:
    """Drop the draft: nothing is sent and its text is not kept."""
    with storage.session_scope() as session:
        question = _own_question(session, sender_id, question_id) if question_id else None
        if question is not None and question.status == "draft":
            session.delete(question)
    return Step([Message("Oké, ik stuur niets door.")])


def send(sender_id: str, question_id: int) -> Step:
    """The mentor said "Versturen": the question is open and its recipient is notified."""
    with storage.session_scope() as session:
        question = _own_question(session, sender_id, question_id)
        if question is None or question.status != "draft":
            return Step([Message("Die vraag is al verstuurd of geannuleerd. Typ 'open vragen' om je vragen te zien.")])
        if not question.text.strip():
            return ask_edit(sender_id, question_id)
        recipient = session.get(storage.StaffMember, question.staff_id) if question.staff_id else None
        recipient = recipient or staff.route(session, question.school, question.partnership)
        if recipient is None:
            return Step([Message("Er is op dit moment niemand bij mij aangemeld om je vraag te beantwoorden. "
                                 "Stel je vraag gerust rechtstreeks aan je schoolopleider.")])
        question.staff_id = recipient.id
        question.status = "open"
        question.sent_at = storage.utcnow()
        _notify(session, question, recipient, "new_question",
                f"Nieuwe vraag (nr. {question.id}) van een mentor{_of_school(question)}:")
        who = staff.label(recipient)
    log.info("question forwarded")
    return Step([Message(f"Verstuurd naar {who}. Het antwoord krijg je hier in de chat. "
                         "Typ 'mijn vragen' om te zien wat er nog openstaat.")], notified=True)


def _of_school(question: storage.Question) -> str:
    return f" van {question.school}" if question.school else ""


def _notify(session: Session, question: storage.Question, member: storage.StaffMember, kind: str, intro: str) -> None:
    """Tell a staff member about a question: in their chat (with a button to answer) and by e-mail."""
    body = f"{intro}\n\n{_quote(question.text)}"
    chat = staff.chat_sender(session, member)
    if chat is not None:
        delivery.enqueue(session, kind=kind, sender_id=chat, mentor_id=member.account_id, question_id=question.id,
                         text=f"{body}\n\nTik op 'Beantwoorden' en typ je antwoord; ik stuur het naar de mentor.",
                         buttons=[("Beantwoorden", answer_payload(question.id))])
    if get_settings().smtp_host or chat is None:
        how = ("Beantwoorden kan in je chat met Mentorwijzer: typ daar 'open vragen'." if chat is not None else
               "Koppel je Teams of Telegram aan Mentorwijzer met de code die je van de beheerder kreeg, en typ "
               "daar 'open vragen'. De beheerder kan je antwoord ook voor je doorsturen.")
        delivery.enqueue(session, kind=kind, email_to=member.email, question_id=question.id,
                         subject=f"Mentorwijzer: vraag {question.id} van een mentor{_of_school(question)}",
                         text=f"Hallo {member.name},\n\n{body}\n\n{how}\n\nGroet,\nMentorwijzer")


def mine(sender_id: str) -> Step:
    """'Mijn vragen' for a mentor: what they forwarded and where it stands."""
    with storage.session_scope() as session:
        identity = session.get(storage.Identity, sender_id)
        questions = [] if identity is None else list(session.execute(
            select(storage.Question).where(storage.Question.mentor_id == identity.mentor_id,
                                           storage.Question.status.in_(("open", "answered")))
            .order_by(storage.Question.id.desc()).limit(OPEN_LIST_LIMIT)
        ).scalars())
        if not questions:
            return Step([Message("Je hebt nog geen vragen doorgestuurd. Weet ik iets niet? Dan kan ik je vraag "
                                 "doorsturen naar je schoolopleider.")])
        lines = ["Je doorgestuurde vragen:"]
        for question in questions:
            when = question.sent_at.strftime("%d-%m") if question.sent_at else ""
            state = "beantwoord" if question.status == "answered" else "staat nog open"
            lines.append(f"• {when} {_quote(_short(question.text))}: {state}")
        return Step([Message("\n".join(lines))])


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the staff side -------------------------------------------------------------------------


def _may_answer(session: Session, sender_id: str, question: storage.Question) -> Optional[storage.StaffMember]:
    """The sender's staff record that may answer ``question``: the one it was routed to, or after an
    escalation the partnership contact it went to. None for anyone else (mentors included)."""
    for member in staff.of_sender(session, sender_id):
        if member.id == question.staff_id:
            return member
        if question.escalated_at is not None and member.role == staff.PARTNERSHIP_CONTACT \
                and member.partnership in (None, question.partnership):
            return member
    return None


def open_for_staff(sender_id: str) -> Optional[Step]:
    """'Open vragen' for a staff member (None when the sender is not staff)."""
    with storage.session_scope() as session:
        members = staff.of_sender(session, sender_id)
        if not members:
            return None
        candidates = session.execute(
            select(storage.Question).where(storage.Question.status == "open").order_by(storage.Question.sent_at)
        ).scalars()
        questions = [q for q in candidates if _may_answer(session, sender_id, q)][:OPEN_LIST_LIMIT]
        if not questions:
            return Step([Message("Er staan geen vragen van mentoren voor je open. Fijn!")])
        lines = [f"Open vragen van mentoren ({len(questions)}):"]
        buttons = []
        for question in questions:
            days = (storage.utcnow() - (question.sent_at or question.created_at)).days
            age = "vandaag" if days == 0 else f"{days} dag{'en' if days != 1 else ''} geleden"
            lines.append(f"• Nr. {question.id}{_of_school(question)}, {age}: {_quote(_short(question.text))}")
            buttons.append((f"Beantwoord nr. {question.id}", answer_payload(question.id)))
        return Step([Message("\n".join(lines), buttons)])


def answer_prompt(sender_id: str, question_id: int) -> Step:
    with storage.session_scope() as session:
        question = session.get(storage.Question, question_id)
        if question is None or _may_answer(session, sender_id, question) is None:
            return Step([Message("Die vraag kan ik je niet laten beantwoorden: hij is niet aan jou gesteld, "
                                 "of bestaat niet meer.")])
        if question.status != "open":
            return Step([Message(f"Vraag {question_id} is al beantwoord. Typ 'open vragen' voor de andere vragen.")])
        return Step([Message(
            f"Vraag {question_id} van een mentor{_of_school(question)}:\n\n{_quote(question.text)}\n\n"
            "Typ je antwoord in één bericht; ik stuur het meteen naar de mentor. (Typ 'annuleer' om te stoppen.)",
            [("Annuleren", "/deny")])], awaiting=f"{STAFF_ANSWER}:{question_id}")


def answer(question_id: int, text: str, sender_id: Optional[str] = None) -> tuple[str, Step]:
    """Store the answer and put it in the outbox for the mentor, once. ``sender_id`` None: an operator
    answers (CLI) on behalf of the person the question was routed to. Returns (outcome, step) with
    outcome ok | not_allowed | not_open | empty."""
    text = (text or "").strip()
    if not text:
        return "empty", Step([Message("Typ je antwoord in één bericht.")], awaiting=f"{STAFF_ANSWER}:{question_id}")
    with storage.session_scope() as session:
        question = session.get(storage.Question, question_id)
        if question is None:
            return "not_allowed", Step([Message("Die vraag bestaat niet (meer).")])
        if sender_id is None:
            member = session.get(storage.StaffMember, question.staff_id) if question.staff_id else None
        else:
            member = _may_answer(session, sender_id, question)
            if member is None:
                return "not_allowed", Step([Message("Die vraag is niet aan jou gesteld.")])
        claimed = session.execute(  # two answers at once (chat and CLI): the first one counts
            update(storage.Question)
            .where(storage.Question.id == question_id, storage.Question.status == "open")
            .values(status="answered", answer=text[:MAX_ANSWER], answered_at=storage.utcnow(),
                    answered_by=member.id if member else None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return "not_open", Step([Message(f"Vraag {question_id} was al beantwoord; je antwoord is niet verstuurd.")])
        who = staff.label(member)
        delivery.enqueue(
            session, kind="answer", sender_id=question.sender_id, mentor_id=question.mentor_id, question_id=question.id,
            text=(f"Je vraag is beantwoord door {who}.\n\nJouw vraag: {_quote(_short(question.text, 300))}\n\n"
                  f"Antwoord: {text[:MAX_ANSWER]}\n\nHad je hier iets aan?"),
            buttons=feedback.buttons(f"{feedback.QUESTION_PREFIX}{question.id}", "👍 Ja", "👎 Nee"),
        )
    log.info("question answered")
    return "ok", Step([Message(
        "Verstuurd naar de mentor, dank je wel! Wil je je antwoord ook als concept aan de kennisbank toevoegen? "
        "Het partnerschap kijkt het dan na voordat andere mentoren het te zien krijgen.",
        [("Toevoegen aan kennisbank", draft_payload(question_id)), ("Open vragen", "/open_questions")])],
        notified=True)


def request_draft(question_id: int, sender_id: Optional[str] = None) -> Step:
    """'Toevoegen aan kennisbank': mark an answered question for ``mentorwijzer knowledge drafts``."""
    with storage.session_scope() as session:
        question = session.get(storage.Question, question_id)
        allowed = question is not None and (sender_id is None or _may_answer(session, sender_id, question))
        if not allowed or question.status != "answered":
            return Step([Message("Dat kan alleen met een vraag die jij hebt beantwoord.")])
        question.draft_requested_at = question.draft_requested_at or storage.utcnow()
    return Step([Message("Toegevoegd als concept voor de kennisbank. Het partnerschap kijkt het na; "
                         "pas daarna krijgen andere mentoren het als antwoord.")])


# --- operators ------------------------------------------------------------------------------


def list_questions(status: Optional[str] = None) -> list[dict]:
    """All forwarded questions (not drafts) for ``mentorwijzer questions list``; includes the texts,
    so it is for the operator's terminal only."""
    with storage.session_scope() as session:
        query = select(storage.Question).where(storage.Question.status != "draft").order_by(storage.Question.id)
        if status:
            query = query.where(storage.Question.status == status)
        rows = []
        for q in session.execute(query).scalars():
            member = session.get(storage.StaffMember, q.staff_id) if q.staff_id else None
            rows.append({
                "id": q.id, "status": q.status, "school": q.school, "partnership": q.partnership, "topic": q.topic,
                "routed_to": member.name if member else None, "question": q.text, "answer": q.answer,
                "sent_at": _iso(q.sent_at), "answered_at": _iso(q.answered_at), "escalated_at": _iso(q.escalated_at),
                "draft_requested": q.draft_requested_at is not None,
            })
        return rows


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat(timespec="seconds") if value else None


def knowledge_drafts() -> str:
    """The answers marked 'toevoegen aan kennisbank', as knowledge/*.yml entries to review (YAML)."""
    entries = []
    with storage.session_scope() as session:
        questions = session.execute(
            select(storage.Question).where(storage.Question.draft_requested_at.is_not(None),
                                           storage.Question.status == "answered")
            .order_by(storage.Question.id)
        ).scalars()
        for q in questions:
            entries.append({
                "id": f"concept.vraag-{q.id}",
                "kind": "general",
                "question": " ".join(q.text.split()),
                "examples": [" ".join(q.text.split()), "(voeg een tweede formulering toe)"],
                "answer": q.answer,
                "source": {"document": DRAFT_SOURCE,
                           "section": f"vraag {q.id}, beantwoord op {q.answered_at:%Y-%m-%d}"},
                "partnerships": [q.partnership] if q.partnership else [],
                "review": True,
                "related": [q.topic] if q.topic else [],
            })
    header = ("# Concepten voor de kennisbank: antwoorden van schoolopleiders op vragen van mentoren.\n"
              "# Controleer ze (haal namen weg!), vul kind, examples en source aan en zet ze in knowledge/*.yml.\n")
    return header + (yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, width=100) if entries else "[]\n")


def working_days_between(start: datetime, end: datetime) -> int:
    """Monday-Friday days after ``start``'s date up to and including ``end``'s date."""
    days, day = 0, start.date()
    while day < end.date():
        day += timedelta(days=1)
        if day.weekday() < 5:
            days += 1
    return days


def escalate_overdue(now: Optional[datetime] = None) -> dict:
    """Open questions unanswered for MENTORWIJZER_ESCALATE_AFTER_DAYS working days go, once, to the
    partnership's contact (``mentorwijzer remind`` runs this). Returns counts."""
    now = now or storage.utcnow()
    limit = get_settings().escalate_after_working_days
    counts = {"escalated": 0, "no_contact": 0}
    with storage.session_scope() as session:
        open_questions = list(session.execute(
            select(storage.Question).where(storage.Question.status == "open", storage.Question.escalated_at.is_(None))
        ).scalars())
        for question in open_questions:
            if working_days_between(question.sent_at or question.created_at, now) < limit:
                continue
            contact = staff.partnership_contact(session, question.partnership)
            if contact is None or contact.id == question.staff_id:
                counts["no_contact"] += 1
                continue
            claimed = session.execute(
                update(storage.Question)
                .where(storage.Question.id == question.id, storage.Question.escalated_at.is_(None),
                       storage.Question.status == "open")
                .values(escalated_at=now).execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                continue
            routed = session.get(storage.StaffMember, question.staff_id) if question.staff_id else None
            _notify(session, question, contact, "escalation",
                    f"Deze vraag (nr. {question.id}) van een mentor{_of_school(question)} staat al {limit} werkdagen "
                    f"open bij {staff.label(routed)}. Kun jij hem beantwoorden of uitzetten?")
            counts["escalated"] += 1
    if counts["no_contact"]:
        log.warning("%d overdue question(s) without a partnership contact to escalate to", counts["no_contact"])
    return counts
