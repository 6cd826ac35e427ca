"""Answering mentors' questions: which entry to answer, when to offer suggestions, when to say
honestly that the knowledge base has no answer, and who the actual person is at the mentor's school.

Returns channel-neutral :class:`Message` lists; the Rasa actions only dispatch them.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from sqlalchemy import select

from bot import feedback, storage
from bot.knowledge import ROLE_LABELS, ROLES, Entry, KnowledgeBase, load_knowledge, normalize, split_sentences

log = logging.getLogger(__name__)

# Calibrated on tests/eval (see `make eval`): above ANSWER the top entry is answered directly;
# between SUGGEST and ANSWER the closest entries are offered as buttons; below, no guessing.
ANSWER_THRESHOLD = 0.24
SUGGEST_THRESHOLD = 0.12
# When the runner-up is this close to the winner, ask instead of picking one.
AMBIGUITY_MARGIN = 0.02
# Below ANSWER, the top entry for a message of several sentences is still answered when it is this
# far ahead of the runner-up: the context sentences' words, unknown to the knowledge base, lower
# every score. Not for one-sentence questions: 'hoeveel verlofuren heeft een leerkracht' (out of
# scope) has a lone top match of 0.195.
LEAD_ANSWER_THRESHOLD = 0.2
CLEAR_LEAD = 0.1
# The NLU intents that mean "a question for the knowledge base" (they differ only in kind).
KB_INTENTS = ("ask_knowledge", "ask_who_to_contact", "ask_study_phase")
# NLU's fallback fires when no single intent is confident. When the knowledge intents together
# hold at least this much of the confidence, it is still a knowledge question; only its kind is unclear.
KB_SHARE = 0.5
# A knowledge-base match this strong is answered even when NLU was unsure about the intent.
STRONG_MATCH = 0.45
# A question NLU filed under another intent (out of scope, a follow-up) is still answered from the
# knowledge base when the match is at least this strong. Development set: no out-of-scope question
# scores above 0.42 there, misfiled knowledge questions mostly score 0.55 or more.
OVERRIDE_MATCH = 0.5
# ... but an out-of-scope verdict this confident is never overridden.
OUT_OF_SCOPE_SURE = 0.9
FOLLOW_UP_INTENTS = ("ask_meaning", "ask_contact_person", "inform_partnership", "ask_more")
# "Don't know" and "not sure" offer to forward the question to a person (bot/handoff.py).
FORWARD_OFFER = ("Vraag het mijn schoolopleider", "/forward_question")


@dataclass
class Message:
    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)
    image: Optional[str] = None


@dataclass
class Reply:
    messages: list[Message]
    entry_id: Optional[str] = None  # the entry answered, for 'meer' / 'wat betekent dat?' follow-ups
    outcome: str = "answer"  # answer | suggest | unknown
    score: float = 0.0  # the knowledge-base ranker's score of the entry answered, when searched
    partnership: Optional[str] = None  # the mentor's, for the anonymous usage log (bot/usage.py)
    best_guess: Optional[str] = None  # unanswered: the closest entry (its topic goes in the usage log)
    escalated_to: Optional[str] = None  # the role named as the next step (the first contact already knows)
    unknown_term: Optional[str] = None  # 'wat betekent X?' for an X the knowledge base does not know


def entry_payload(entry: Entry) -> str:
    return f'/ask_knowledge{{"kb_entry": "{entry.id}"}}'


Profile = tuple[Optional[str], Optional[str]]


def _profile(sender_id: Optional[str]) -> Profile:
    """(school, partnership) the mentor told us, if any."""
    if not sender_id:
        return None, None
    with storage.session_scope() as session:
        identity = session.get(storage.Identity, sender_id)
        if identity is None:
            return None, None
        return identity.mentor.school, identity.mentor.partnership


def directory_people(school: str, role: str) -> list[storage.Contact]:
    with storage.session_scope() as session:
        return list(
            session.execute(
                select(storage.Contact)
                .where(storage.Contact.school == school, storage.Contact.role == role)
                .order_by(storage.Contact.name)
            ).scalars()
        )


def _people_line(school: Optional[str], role: str) -> Optional[str]:
    if not school:
        return None
    people = directory_people(school, role)
    if not people:
        return None
    names = ", ".join(f"{p.name} ({p.email})" for p in people)
    return f"Op {school} is de {ROLE_LABELS.get(role, role)}: {names}."


def render_entry(kb: KnowledgeBase, entry: Entry, sender_id: Optional[str] = None,
                 profile: Optional[Profile] = None) -> Reply:
    school, partnership = profile or _profile(sender_id)
    answer = kb.answer(entry, partnership)
    text = answer.text
    if entry.contact is not None:
        people = _people_line(school, entry.contact.role)
        if people:
            text += "\n\n" + people
    footer = answer.source_line
    buttons = []
    if answer.has_more:
        buttons.append(("Meer hierover", "/ask_more"))
    if entry.contact is not None and not school:
        buttons.append(("Wie is dat bij ons?", "/ask_contact_person"))
    buttons.extend(feedback.buttons(entry.id))  # never blocking: the mentor can just type on
    return Reply([Message(f"{text}\n\n{footer}", buttons)], entry.id, "answer", partnership=partnership)


def dont_know(sender_id: Optional[str] = None, profile: Optional[Profile] = None) -> Reply:
    school, _ = profile or _profile(sender_id)
    text = (
        "Dat weet ik niet: daar staat niets over in mijn informatie, en ik wil je niets verkeerds vertellen. "
        "Je schoolopleider weet het vast, of weet bij wie je moet zijn. Als je wilt, stuur ik je vraag naar "
        "je schoolopleider door."
    )
    people = _people_line(school, "schoolopleider")
    if people:
        text += "\n" + people
    return Reply([Message(text, [FORWARD_OFFER, ("Wat kun je wel?", "/help")])], None, "unknown")


def answer_question(
    text: str,
    intent: Optional[str] = None,
    roles: Iterable[str] = (),
    phases: Iterable[str] = (),
    sender_id: Optional[str] = None,
    entry_id: Optional[str] = None,
    kb: Optional[KnowledgeBase] = None,
) -> Reply:
    """Answer one question: a sourced entry, 2-3 suggestions as buttons, or an honest 'weet ik niet'."""
    kb = kb or load_knowledge()
    profile = _profile(sender_id)  # read once per question
    if entry_id and entry_id in kb.by_id:
        return render_entry(kb, kb.by_id[entry_id], profile=profile)
    partnership = profile[1]
    term = unknown_term(text or "", kb)
    if term is not None:  # 'wat betekent X?' for an X the knowledge base never mentions
        reply = unknown_term_reply(term, profile=profile)
        reply.partnership = partnership
        return reply
    matches = kb.search(text or "", intent, roles, phases, partnership, limit=3)
    top = matches[0] if matches else None
    log.info("kb search intent=%s top=%s score=%.3f", intent, top.entry.id if top else None, top.score if top else 0.0)
    if top is None or top.score < SUGGEST_THRESHOLD:
        reply = dont_know(profile=profile)
        reply.best_guess, reply.partnership = (top.entry.id if top else None), partnership
        return reply
    runner_up = matches[1] if len(matches) > 1 else None
    clear_winner = runner_up is None or top.score - runner_up.score > AMBIGUITY_MARGIN
    far_ahead = (top.score >= LEAD_ANSWER_THRESHOLD and len(split_sentences(text or "")) > 1
                 and (runner_up is None or top.score - runner_up.score >= CLEAR_LEAD))
    if (top.score >= ANSWER_THRESHOLD and clear_winner) or far_ahead:
        reply = render_entry(kb, top.entry, profile=profile)
        reply.score = top.score
        return with_escalation(kb, reply, top.entry, text or "", profile)
    suggestions = [m for m in matches if m.score >= SUGGEST_THRESHOLD * 0.8]
    buttons = [(m.entry.question, entry_payload(m.entry)) for m in suggestions]
    buttons.append(("Geen van deze", "/deny"))
    return Reply([Message("Ik weet niet zeker wat je bedoelt. Bedoel je een van deze?", buttons)], None, "suggest",
                 partnership=partnership, best_guess=top.entry.id)


# --- escalation: the first contact already knows ------------------------------------------
# A long message often says what the mentor already tried ("ik heb het al met de schoolopleider
# besproken"). When that is the answer's first contact (contact.role), the answer leads with the
# next step from the entry's own data (contact.escalation); no texts per situation.

# Words that say someone has been told or asked (in any tense a mentor uses for it).
_INVOLVED = re.compile(
    r"\b(?:besproken|gesproken|overlegd|gemeld|ingelicht|gemaild|gebeld|geappt|gevraagd|aangekaart|aangegeven|"
    r"ingeschakeld|betrokken|verteld|doorgegeven|benaderd|voorgelegd|geinformeerd|gewaarschuwd|op de hoogte|"
    r"weet ervan|weet er van|weet het|wist het|weten ervan|weten het|samen met|gesprek gehad|gesprek gevoerd|"
    r"plan gemaakt|meegekeken|gekeken|meegedacht|langs geweest|bij geweest|opgepakt|aangesproken|geprobeerd|"
    r"already|told|informed|discussed|talked|spoke|spoken|emailed|called|asked|involved|knows|aware|mentioned|"
    r"raised|reported|contacted|looked into|had a talk|had a word|tried|bemiddeld|"
    r"couldn t|could not|doesn t know|does not know|has no idea)\b"
    r"|\b(?:al|reeds|inmiddels|meteen|already)\b.*\b(?:geweest|contact|gehad|gezegd)\b"
    r"|\b(?:is|zijn)\b(?: \w+)*? komen (?:kijken|praten|observeren)\b"  # 'de so is al extra komen kijken'
    # 'de so weet het al', 'de directeur weet er ook van'; 'de so weet het ook niet' (so she was asked);
    # not the mentor's own 'ik weet niet of ik de so moet inlichten'
    r"|(?<!\bik )(?<!\bwe )(?<!\bwij )\b(?:weet|weten|wist|wisten)\b(?! ik\b| we\b| wij\b)"
    r"(?: (?:het|er|dat|ervan|al|ook|allang|natuurlijk|inmiddels))* (?:al|ook|allang|van|niet)\b"
    # any perfect tense with a participle: 'de so heeft extra meegekeken', 'de io is erbij geweest',
    # 'ze heeft beeldbegeleiding ingezet', 'de tandem heeft al bemiddeld'
    r"|\b(?:heeft|hebben|heb|is|zijn|was|waren)\b(?: \w+)*? "
    r"(?:(?:aan|af|bij|door|in|mee|na|om|op|over|terug|toe|uit|voor|langs)?ge\w{2,}(?:d|t|en)|(?:be|ver|her)\w{3,}[dt])\b")
_PARTICIPLES = ("besproken|gesproken|overlegd|gemeld|ingelicht|gemaild|gebeld|gevraagd|aangekaart|ingeschakeld|"
                "betrokken|verteld|doorgegeven|benaderd|told|informed|asked|involved")
# ... unless the clause says it has not happened yet ("ik heb nog met niemand overlegd").
_NOT_YET = re.compile(
    r"\b(?:nog niet|nog geen|niemand|not yet|haven t|hasn t|have not|has not|didn t|did not|nobody|no one)\b"
    rf"|\bniet (?:{_PARTICIPLES})\b|\bnot (?:{_PARTICIPLES})\b")
# A clause that asks ("moet ik de so inlichten?") reports nothing that happened.
_ASKING = frozenset("wat wie hoe waar wanneer waarom welke welk hoeveel moet mag kan kun zal zou moeten "
                    "who what how when where which why should must can could do does shall".split())
# Roles that contain another role's name: matched first, then blanked out.
_COMPOUND_ROLES = (
    ("coordinerend_instituutsopleider", re.compile(r"\bcoordinerend(?:e)? (?:instituutsopleider|io)\b")),
    ("coordinerend_schoolopleider", re.compile(r"\bcoordinerend(?:e)? (?:schoolopleider|so)\b|\bcso\b")),
)
_ARTICLE = {"stagebureau": "het"}


def role_phrase(role: str) -> str:
    """'de schoolopleider', 'het stagebureau'."""
    return f"{_ARTICLE.get(role, 'de')} {ROLE_LABELS.get(role, role)}"


def roles_in(text: str, kb: KnowledgeBase) -> set[str]:
    """The roles a text names, by label or by any variant in knowledge/vocabulary.yml ('so', 'directeur')."""
    normalized = f" {normalize(text)} "
    found = set()
    for role, pattern in _COMPOUND_ROLES:
        if pattern.search(normalized):
            found.add(role)
            normalized = pattern.sub(" ", normalized)
    found |= {term for term in kb.vocabulary.terms_in(normalized.strip()) if term in ROLES}
    for role in ROLES:
        label = normalize(ROLE_LABELS[role].split(" (")[0])
        if f" {label} " in normalized or f" {normalize(role)} " in normalized:
            found.add(role)
    return found


def involved_roles(text: str, kb: KnowledgeBase) -> set[str]:
    """The roles the mentor says already know about it or were asked ('de so weet ervan, wie nu?')."""
    involved = set()
    for sentence in split_sentences(text):
        for clause in re.split(r"[,;:]|\s(?:maar|but)\s", sentence):
            words = normalize(clause).split()
            if not words or "?" in clause or words[0] in _ASKING:
                continue
            normalized = " ".join(words)
            if _INVOLVED.search(normalized) and not _NOT_YET.search(normalized):
                involved |= roles_in(normalized, kb)
    return involved


def _role_entry(kb: KnowledgeBase, role: str) -> Optional[Entry]:
    """The entry that says what ``role`` does (kind role, about that role first)."""
    return next((e for e in kb.entries if e.kind == "role" and e.roles[:1] == [role]), None)


def with_escalation(kb: KnowledgeBase, reply: Reply, entry: Entry, text: str,
                    profile: Optional[Profile] = None) -> Reply:
    """When the message says the entry's first contact already knows, lead with the next step
    (the entry's contact.escalation), or say honestly that the sources name none."""
    contact = entry.contact
    if contact is None or not text:
        return reply
    involved = involved_roles(text, kb)
    if contact.role not in involved:
        return reply
    first = role_phrase(contact.role)
    escalation = contact.escalation
    if escalation is None or escalation in involved:
        done = first if escalation is None else f"{first} en {role_phrase(escalation)}"
        lead = (f"Je hebt {done} al ingeschakeld. Een volgende stap staat voor deze situatie niet in mijn "
                f"informatie: bespreek met {first} wie er nog bij moet komen. Hieronder wat er verder over staat.")
        reply.messages.insert(0, Message(lead))
        return reply
    school = (profile or (None, None))[0]
    lead = f"Je hebt {first} al ingeschakeld. Helpt dat niet genoeg, dan is de volgende stap {role_phrase(escalation)}."
    people = _people_line(school, escalation)
    if people:
        lead += "\n" + people
    buttons = []
    about = _role_entry(kb, escalation)
    if about is not None:
        buttons.append((about.question, entry_payload(about)))
    reply.messages.insert(0, Message(lead, buttons))
    for message in reply.messages[1:]:  # "Wie is dat bij ons?" now asks for the next step's person
        message.buttons = [(title, f'/ask_contact_person{{"role": "{escalation}"}}')
                           if payload == "/ask_contact_person" else (title, payload)
                           for title, payload in message.buttons]
    reply.escalated_to = escalation
    return reply


# --- unknown terms ------------------------------------------------------------------------
# "wat betekent X?" for an X that no entry mentions: say that X is unknown (quoting it) and who
# does know, instead of "welk woord bedoel je?" or a guess.

_MEANING = (  # asks what a word means: any term of up to MAX_TERM_WORDS words
    re.compile(r"^(?:en |maar |he |hoi |hee )?wat (?:betekent|betekend|betekenen|beteken|bedoelen ze met|bedoel je met|"
               r"bedoelt men met|bedoelt ze met|bedoelt hij met|wordt bedoeld met|houdt|houden) (?P<term>.+)$"),
    re.compile(r"^waar staat (?P<term>.+?) voor$"),
    re.compile(r"^what (?:does|do) (?P<term>.+?) mean$"),
    re.compile(r"^(?P<term>.+?) wat (?:betekent|is|zijn) dat$"),
)
_WHAT_IS = (  # 'wat is X': a term only as 'een X' or one word ('wat is het weer morgen' is no term)
    re.compile(r"^(?:en |maar |he |hoi |hee )?wat (?:is|zijn) (?P<term>.+)$"),
    re.compile(r"^what (?:is|are) (?P<term>.+)$"),
)
# Words around the term that are not part of it ('wat is een X eigenlijk?', 'wat houdt X in').
_TERM_PREFIX = re.compile(r"^(?:(?:een|de|het|nou|eigenlijk|precies|toch|dan|dat|het woord|de term|de afkorting|"
                          r"a|an|the|the word|the term) )+")
_TERM_SUFFIX = re.compile(r"(?: (?:in|eigenlijk|precies|nou|dan|toch|ook alweer|alweer|nou weer|weer|voor iets|"
                          r"voor een|exactly|again|actually))+$")
# A 'term' with these words is a question about something else ('wat is de rol van de so', 'wat is dat').
_NOT_A_TERM = frozenset(
    "ik je jij u mijn jouw uw we wij ons onze ze hij het dat dit die deze daar hier van bij voor als met in op "
    "aan tussen over om naar wat wie hoe dan mij me i my you your we our it that this those these of for in on with "
    "to at between about there".split())
MAX_TERM_WORDS = 3


def _term_of(text: str, what_is: bool = True) -> Optional[tuple[str, str]]:
    """(term as typed, normalized term) when ``text`` asks what one term means; ``what_is``: also
    'wat is een X?' (not only 'wat betekent X?')."""
    normalized = normalize(text)
    patterns = [(p, False) for p in _MEANING] + ([(p, True) for p in _WHAT_IS] if what_is else [])
    for pattern, strict in patterns:
        match = pattern.match(normalized)
        if not match:
            continue
        raw = match.group("term")
        term = _TERM_SUFFIX.sub("", _TERM_PREFIX.sub("", raw)).strip()
        words = term.split()
        if not words or len(words) > MAX_TERM_WORDS or words[0] == "er" or any(w in _NOT_A_TERM for w in words):
            return None
        if strict and len(words) > 1 and not re.match(r"(?:een|a|an) ", raw):
            return None
        return _as_typed(text, term), term
    return None


def _asked_term(text: str, what_is: bool = True) -> Optional[tuple[str, str]]:
    """:func:`_term_of` the message, or of one of its sentences ('Mijn student zei IKC. Wat betekent IKC?')."""
    sentences = split_sentences(text)
    for candidate in [text] + (sentences if len(sentences) > 1 else []):
        found = _term_of(candidate, what_is)
        if found is not None:
            return found
    return None


def _as_typed(text: str, term: str) -> str:
    """The term as the mentor typed it (case, accents, apostrophes), else its normalized form."""
    pieces = [piece.strip("?!.,:;\"'‘’()") for piece in text.split()]
    for size in range(1, len(term.split()) + 1):
        for start in range(len(pieces) - size + 1):
            window = " ".join(pieces[start:start + size])
            if normalize(window) == term:
                return window
    return term


def unknown_term(text: str, kb: KnowledgeBase, what_is: bool = True) -> Optional[str]:
    """The term (as typed) when ``text`` asks what a term means and no entry, glossary term or
    vocabulary variant mentions it; None otherwise."""
    found = _asked_term(text, what_is)
    if found is None:
        return None
    typed, term = found
    if kb.glossary_in(term) or kb.vocabulary.terms_in(term) or kb.mentions(term):
        return None
    return typed


def unknown_term_reply(term: str, sender_id: Optional[str] = None, profile: Optional[Profile] = None) -> Reply:
    school, _ = profile or _profile(sender_id)
    text = (f"Wat ‘{term}’ betekent, weet ik niet: daar heb ik geen uitleg over, en ik wil je niets verkeerds "
            "vertellen. Je schoolopleider weet het vast. Als je wilt, stuur ik je vraag naar je schoolopleider door.")
    people = _people_line(school, "schoolopleider")
    if people:
        text += "\n" + people
    return Reply([Message(text, [FORWARD_OFFER, ("Wat kun je wel?", "/help")])], None, "unknown", unknown_term=term)


def kb_intent_when_unsure(ranking: Iterable[dict], text: Optional[str] = None) -> Optional[str]:
    """The leading knowledge intent when NLU fell back only because it could not choose between them.
    For a full question (``text``) the follow-up intents count as knowledge intents too: such a
    question is answered from the knowledge base under them as well (answer_instead_of_follow_up)."""
    named = [r for r in ranking if r.get("name") != "nlu_fallback"]
    if not named or named[0].get("name") not in KB_INTENTS:
        return None
    counted = KB_INTENTS + (FOLLOW_UP_INTENTS if text and looks_like_question(text) else ())
    share = sum(float(r.get("confidence") or 0.0) for r in named if r.get("name") in counted)
    return named[0]["name"] if share >= KB_SHARE else None


def answer_unsure(
    text: str,
    ranking: Iterable[dict],
    roles: Iterable[str] = (),
    phases: Iterable[str] = (),
    sender_id: Optional[str] = None,
    kb: Optional[KnowledgeBase] = None,
) -> Reply:
    """NLU was unsure. A question that is clearly for the knowledge base (by NLU's ranking or by a
    strong match) is answered as usual; otherwise the closest entry is only offered ("Bedoel je dit?")."""
    kb = kb or load_knowledge()
    intent = kb_intent_when_unsure(ranking, text)
    if intent is not None:
        return answer_question(text, intent=intent, roles=roles, phases=phases, sender_id=sender_id, kb=kb)
    reply = answer_question(text, sender_id=sender_id, kb=kb)
    if reply.outcome != "answer" or reply.score >= STRONG_MATCH:
        return reply
    entry = kb.by_id[reply.entry_id]
    buttons = [(entry.question, entry_payload(entry)), ("Nee, iets anders", "/deny")]
    return Reply([Message("Ik weet niet zeker of ik je goed begrijp. Bedoel je dit?", buttons)], None, "suggest")


def more(entry_id: Optional[str], kb: Optional[KnowledgeBase] = None) -> Reply:
    """The longer text of the last answer (or related entries), with the full source: document and section."""
    kb = kb or load_knowledge()
    entry = kb.by_id.get(entry_id or "")
    if entry is None:
        return Reply([Message("Waarover wil je meer weten? Stel je vraag gerust opnieuw.")], None, "unknown")
    source = kb.full_source_line(entry)
    if entry.more:
        return Reply([Message(f"{entry.more.strip()}\n\n{source}")], entry.id)
    related = [kb.by_id[r] for r in entry.related if r in kb.by_id]
    if related:
        buttons = [(r.question, entry_payload(r)) for r in related[:3]]
        return Reply([Message(f"Meer heb ik hier niet over.\n\n{source}\n\nMisschien helpt een van deze verder:",
                              buttons)], entry.id)
    return Reply([Message("Meer heb ik hier niet over. Voor de details kun je het beste je schoolopleider vragen.\n\n"
                          + source)], entry.id)


def explain_terms(text: str, kb: Optional[KnowledgeBase] = None, exclude: Iterable[str] = ()) -> list[Message]:
    """Glossary explanations for the terms that occur in ``text`` (at most three)."""
    kb = kb or load_knowledge()
    skip = set(exclude)
    messages = []
    for entry in kb.glossary_in(text):
        if entry.id in skip:
            continue
        messages.append(Message(f"{entry.terms[0]}: {entry.answer.strip()}\n\n{kb.source_line(entry)}"))
        if len(messages) == 3:
            break
    return messages


def explain_last_answer(entry_id: Optional[str], kb: Optional[KnowledgeBase] = None) -> Reply:
    kb = kb or load_knowledge()
    entry = kb.by_id.get(entry_id or "")
    if entry is None:
        return Reply([Message("Welk woord wil je uitgelegd hebben? Typ bijvoorbeeld 'wat is een LBF?'.")], None, "unknown")
    messages = explain_terms(f"{entry.question} {entry.answer}", kb, exclude=[entry.id])
    if not messages:
        return Reply([Message("In dat antwoord staan geen vaktermen die ik kan uitleggen. Welk woord bedoel je precies?")], entry.id)
    return Reply(messages, entry.id)


def contact_person(sender_id: Optional[str], entry_id: Optional[str], kb: Optional[KnowledgeBase] = None,
                   role: Optional[str] = None) -> Reply:
    """'En wie is dat bij ons?': the person for ``role`` (a button of an escalation, or named in the
    message), else for the last answer's role, at the mentor's school."""
    kb = kb or load_knowledge()
    entry = kb.by_id.get(entry_id or "")
    role = role if role in ROLES else None
    if role is None and entry is not None and entry.contact:
        role = entry.contact.role
    if role is None and entry is not None and entry.roles:
        role = entry.roles[0]
    role = role or "schoolopleider"
    school, _ = _profile(sender_id)
    label = ROLE_LABELS.get(role, role)
    if not school:
        return Reply([Message(
            f"Dat kan ik opzoeken als ik weet op welke school je werkt. Typ bijvoorbeeld 'ik werk op de Regenboog'. "
            f"Anders weet je schoolleider wie de {label} is.")], entry_id, "unknown")
    line = _people_line(school, role)
    if line:
        return Reply([Message(line)], entry_id)
    return Reply([Message(
        f"Ik heb voor {school} nog geen {label} in mijn lijst staan. Je schoolopleider of schoolleider weet wie het is.")],
        entry_id, "unknown")


def known_schools() -> list[str]:
    with storage.session_scope() as session:
        return list(session.execute(select(storage.Contact.school).distinct()).scalars())


def set_profile(sender_id: str, channel: str, text: str, partnership_entity: Optional[str] = None,
                kb: Optional[KnowledgeBase] = None) -> Reply:
    """'Ik werk bij …': remember the mentor's partnership and/or school (from the directory)."""
    kb = kb or load_knowledge()
    partnership = partnership_entity if partnership_entity in kb.partnerships else kb.match_partnership(text or "")
    padded = f" {normalize(text or '')} "
    school = next((s for s in known_schools() if f" {normalize(s)} " in padded), None)
    if partnership is None and school is None:
        return Reply([Message(
            "Bij welk partnerschap hoort jouw school? Dan stem ik mijn antwoorden daarop af.",
            [(p.title, f'/inform_partnership{{"partnership": "{p.id}"}}') for p in kb.partnerships.values()],
        )], None, "unknown")
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, sender_id, channel)
        if school:
            mentor.school = school
            people = session.execute(
                select(storage.Contact.partnership).where(storage.Contact.school == school)
            ).scalars().first()
            partnership = partnership or people
        if partnership:
            mentor.partnership = partnership
    parts = []
    if school:
        parts.append(f"je werkt op {school}")
    if partnership:
        parts.append(f"je school hoort bij {kb.partnerships[partnership].title}")
    return Reply([Message("Genoteerd: " + " en ".join(parts) + ". Mijn antwoorden houden daar voortaan rekening mee.")])


QUESTION_WORDS = ("wat", "wie", "hoe", "waar", "wanneer", "waarom", "welke", "welk", "hoeveel", "mag", "moet",
                  "kan", "kun", "is", "zijn", "heb", "krijg", "who", "what", "how", "when")


# Words that make a sentence a question wherever they stand ('ik werk in amsterdam, wat verwachten ze van me').
INTERROGATIVES = ("wat", "wie", "hoe", "waar", "wanneer", "waarom", "welke", "welk", "hoeveel", "who", "what", "how",
                  "when", "which", "why")


def looks_like_question(text: str) -> bool:
    """A full question rather than a short follow-up ('en wie is dat?', 'meer')."""
    words = normalize(text).split()
    return len(words) >= 6 and ("?" in text or words[0] in QUESTION_WORDS
                                or any(w in QUESTION_WORDS for w in words[-4:])
                                or any(w in INTERROGATIVES for w in words[2:]))


def answer_instead_of_follow_up(intent: Optional[str], text: str, sender_id: Optional[str] = None,
                                kb: Optional[KnowledgeBase] = None, confidence: float = 1.0) -> Optional[Reply]:
    """NLU sometimes files a full question under a follow-up intent (a partnership name or
    'wat is dat' inside it) or under out_of_scope. When the knowledge base clearly answers it,
    answer that instead; None means: handle the intent as NLU said."""
    kb = kb or load_knowledge()
    if intent == "ask_meaning":
        terms = kb.glossary_in(text)
        if terms:
            return render_entry(kb, terms[0], sender_id)
    if intent in ("ask_meaning", "out_of_scope"):
        # 'wat betekent X?' names its word: answer about X, never "welk woord bedoel je?"
        found = _asked_term(text, what_is=intent == "ask_meaning" or confidence < OUT_OF_SCOPE_SURE)
        if found is not None:
            reply = answer_question(text, sender_id=sender_id, kb=kb)
            if reply.outcome == "unknown":
                return unknown_term_reply(found[0], sender_id)
            if intent == "out_of_scope" and (reply.outcome != "answer" or reply.score < OVERRIDE_MATCH):
                return None  # out of scope stays out of scope unless the knowledge base clearly has it
            return reply
    follow_up = intent in FOLLOW_UP_INTENTS
    full_question = follow_up and looks_like_question(text)  # any answer will do
    long_enough = (follow_up or (intent == "out_of_scope" and confidence < OUT_OF_SCOPE_SURE)) \
        and len(normalize(text).split()) >= 5  # only a strong match will do
    if not (full_question or long_enough):
        return None
    reply = answer_question(text, sender_id=sender_id, kb=kb)
    if reply.outcome == "answer" and (full_question or reply.score >= OVERRIDE_MATCH):
        return reply
    return None
