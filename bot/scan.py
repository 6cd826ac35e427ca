"""Running a questionnaire in a conversation: the glue between the engine and storage.

Everything is keyed by the Rasa sender id and read from the database on every turn, so a
restart of any process, a pause of days, or a linked second channel continues exactly where
the mentor left off. Each answer is committed before the next question is rendered.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Literal, Optional

from bot import storage
from bot.questionnaire import (
    Item,
    Questionnaire,
    Results,
    load_questionnaire,
    loadable_questionnaires,
    match_questionnaire,
    parse_answer,
    questionnaire_for_intent,
    results,
    scale_explanation,
)

log = logging.getLogger(__name__)
MENTORSCAN = "mentorscan"
# A scan button is an intent payload naming its item, so a press on an old keyboard (Telegram) or
# card (Teams) is recognised instead of answering whatever question is open by then.
BUTTON_INTENT = "inform_scan_answer"
BUTTON_ITEM = "scan_item"
BUTTON_VALUE = "scan_value"
STALE_EARLIER = "Die knop hoort bij een eerdere vraag, dus ik heb niets opgeslagen. Ik stel je de huidige vraag nog een keer."
STALE_OTHER = "Die knop hoort bij een andere vraag, dus ik heb niets opgeslagen. Ik stel je de huidige vraag nog een keer."


def button_payload(item_id: str, value: str) -> str:
    """``/inform_scan_answer{"scan_item":"1.2.a","scan_value":"4"}``: the answer and the item it is for.

    Compact JSON keeps the mentorscan's payloads within Telegram's 64 bytes of callback data.
    """
    entities = json.dumps({BUTTON_ITEM: item_id, BUTTON_VALUE: value}, ensure_ascii=False, separators=(",", ":"))
    return f"/{BUTTON_INTENT}{entities}"


@dataclass(frozen=True)
class Prompt:
    """One question as the mentor sees it: heading (when the part changes), progress, buttons."""

    questionnaire_id: str
    item_id: str
    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (title, answer value)

    @property
    def payload_buttons(self) -> list[tuple[str, str]]:
        """(title, payload) for the channels: each button names the item it answers."""
        return [(title, button_payload(self.item_id, value)) for title, value in self.buttons]


@dataclass(frozen=True)
class Turn:
    status: Literal["stored", "invalid", "dont_know", "stale", "completed", "no_scan"]
    hint: str = ""
    prompt: Optional[Prompt] = None
    item_id: Optional[str] = None


def _format_number(value: float) -> str:
    return f"{value:.1f}".replace(".", ",")


def render_prompt(questionnaire: Questionnaire, item: Item, answers: dict[str, str], with_heading: bool = False) -> Prompt:
    section = questionnaire.section_of(item.id)
    number, total = questionnaire.progress(item)
    lines = []
    first_of_part = all(
        questionnaire.section_of(other.id).part != section.part
        for other in questionnaire.items[: number - 1]
    )
    if with_heading or first_of_part:
        lines.append(f"📋 {section.part}")
    stem = section.title if section.title and section.title != item.text else None
    lines.append(f"Vraag {number} van {total}" + (f" · {section.id} {stem}" if stem else ""))
    lines.append(f"👉 {item.text}")
    if item.id in answers:
        lines.append(f"(Je vorige antwoord was: {answers[item.id]}. Kies opnieuw.)")
    scale = questionnaire.scale_of(item)
    buttons: list[tuple[str, str]] = []
    if scale is not None:
        if scale.type == "likert5":
            buttons = [(f"{opt.value} · {opt.label}", opt.value) for opt in scale.options]
        else:
            buttons = [(opt.label, opt.value) for opt in scale.options]
    else:
        lines.append("Typ je antwoord in je eigen woorden.")
    return Prompt(questionnaire.id, item.id, "\n".join(lines), buttons)


def _current_item(questionnaire: Questionnaire, run: storage.ScanRun, answers: dict[str, str]) -> Optional[Item]:
    if run.edit_item_id:
        try:
            return questionnaire.item(run.edit_item_id)
        except KeyError:
            run.edit_item_id = None
    return questionnaire.next_item(answers)


def _sender_open_run(session, sender_id: str, questionnaire_id: str) -> Optional[storage.ScanRun]:
    """The unfinished run of this sender's mentor, without creating a mentor for a stranger."""
    identity = session.get(storage.Identity, sender_id)
    return storage.open_run(session, identity.mentor_id, questionnaire_id) if identity else None


def has_open_run(sender_id: str, questionnaire_id: str = MENTORSCAN) -> bool:
    with storage.session_scope() as session:
        return _sender_open_run(session, sender_id, questionnaire_id) is not None


def start(sender_id: str, channel: str, questionnaire_id: str = MENTORSCAN) -> tuple[bool, Prompt]:
    """Open (or resume) a run; returns (resumed, first prompt)."""
    questionnaire = load_questionnaire(questionnaire_id)
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, sender_id, channel)
        run = storage.open_run(session, mentor.id, questionnaire_id)
        resumed = run is not None
        if run is None:
            run = storage.start_run(session, mentor.id, questionnaire.id, questionnaire.version)
        run.paused = False
        answers = storage.run_answers(session, run.id)
        item = _current_item(questionnaire, run, answers)
        log.info("scan start questionnaire=%s resumed=%s answered=%d", questionnaire_id, resumed, len(answers))
        if item is None:  # every item answered but not marked complete (crash between commits)
            run.completed_at = storage.utcnow()
            run = storage.start_run(session, mentor.id, questionnaire.id, questionnaire.version)
            answers = {}
            item = questionnaire.items[0]
        return resumed, render_prompt(questionnaire, item, answers, with_heading=True)


def current_prompt(sender_id: str, questionnaire_id: str = MENTORSCAN, with_heading: bool = False) -> Optional[Prompt]:
    questionnaire = load_questionnaire(questionnaire_id)
    with storage.session_scope() as session:
        run = _sender_open_run(session, sender_id, questionnaire_id)
        if run is None:
            return None
        answers = storage.run_answers(session, run.id)
        item = _current_item(questionnaire, run, answers)
        return render_prompt(questionnaire, item, answers, with_heading) if item else None


def current_item(sender_id: str, questionnaire_id: str = MENTORSCAN) -> Optional[Item]:
    questionnaire = load_questionnaire(questionnaire_id)
    with storage.session_scope() as session:
        run = _sender_open_run(session, sender_id, questionnaire_id)
        return _current_item(questionnaire, run, storage.run_answers(session, run.id)) if run else None


def _stale_hint(questionnaire: Questionnaire, button_item_id: str, current: Item) -> str:
    items = [item.id for item in questionnaire.items]
    if button_item_id in items and items.index(button_item_id) < items.index(current.id):
        return STALE_EARLIER
    return STALE_OTHER


def submit(sender_id: str, channel: str, text: Optional[str], questionnaire_id: str = MENTORSCAN,
           message_id: Optional[str] = None, item_id: Optional[str] = None) -> Turn:
    """Parse and store one answer (committed before returning), then say what comes next.

    A message the channel delivers again (same ``message_id``) is not applied a second time.
    ``item_id`` is the item of a pressed button (None for typed text, which always answers the
    current item): a button of any other item stores nothing and gets status ``stale``.
    """
    started = time.perf_counter()
    questionnaire = load_questionnaire(questionnaire_id)
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, sender_id, channel)
        run = storage.open_run(session, mentor.id, questionnaire_id)
        if run is None:
            return Turn("no_scan")
        answers = storage.run_answers(session, run.id)
        item = _current_item(questionnaire, run, answers)
        if item is None:
            run.completed_at = storage.utcnow()
            return Turn("completed")
        already = storage.answered_by_message(session, run.id, message_id)
        if already is not None:
            log.info("scan answer re-delivered item=%s: not applied again", already)
            return Turn("stored", prompt=render_prompt(questionnaire, item, answers), item_id=already)
        if item_id is not None and item_id != item.id:
            log.info("scan button of another item refused, open item=%s", item.id)
            return Turn("stale", _stale_hint(questionnaire, item_id, item), render_prompt(questionnaire, item, answers), item.id)
        parsed = parse_answer(questionnaire, item, text)
        if parsed.status != "ok":
            log.info("scan answer rejected item=%s status=%s", item.id, parsed.status)
            hint = parsed.hint if parsed.status == "invalid" else scale_explanation(questionnaire, item)
            return Turn(parsed.status, hint, render_prompt(questionnaire, item, answers), item.id)
        storage.save_answer(session, run, item.id, parsed.value, channel, message_id)
        answers[item.id] = parsed.value
        run.edit_item_id = None
        run.paused = False
        following = questionnaire.next_item(answers)
        if following is None:
            run.completed_at = storage.utcnow()
        prompt = render_prompt(questionnaire, following, answers) if following else None
    log.info(
        "scan answer stored item=%s questionnaire=%s ms=%.1f",
        item.id, questionnaire_id, (time.perf_counter() - started) * 1000,
    )
    return Turn("completed" if prompt is None else "stored", prompt=prompt, item_id=item.id)


def go_back(sender_id: str, questionnaire_id: str = MENTORSCAN) -> Optional[Prompt]:
    """Ask the previous item again; its stored answer stays until a new one is given."""
    questionnaire = load_questionnaire(questionnaire_id)
    with storage.session_scope() as session:
        run = _sender_open_run(session, sender_id, questionnaire_id)
        if run is None:
            return None
        answers = storage.run_answers(session, run.id)
        current = _current_item(questionnaire, run, answers)
        previous = questionnaire.previous_item(answers, current)
        if previous is None:
            return render_prompt(questionnaire, current, answers) if current else None
        run.edit_item_id = previous.id
        return render_prompt(questionnaire, previous, answers, with_heading=True)


def pause(sender_id: str, questionnaire_id: str = MENTORSCAN) -> tuple[int, int]:
    """Mark the open run paused; returns (answered, total). Answers are already stored."""
    questionnaire = load_questionnaire(questionnaire_id)
    with storage.session_scope() as session:
        run = _sender_open_run(session, sender_id, questionnaire_id)
        if run is None:
            return 0, len(questionnaire.items)
        run.paused = True
        return len(storage.run_answers(session, run.id)), len(questionnaire.items)


def latest_results(sender_id: str, questionnaire_id: str = MENTORSCAN) -> Optional[tuple[Results, int]]:
    """Results of the mentor's newest completed run and how many completed runs they have."""
    with storage.session_scope() as session:
        identity = session.get(storage.Identity, sender_id)
        if identity is None:
            return None
        runs = storage.completed_runs(session, identity.mentor_id, questionnaire_id)
        if not runs:
            return None
        answers = storage.run_answers(session, runs[-1].id)
    return results(load_questionnaire(questionnaire_id), answers), len(runs)


def summary_messages(result: Results) -> list[str]:
    """The end-of-scan summary in friendly Dutch, a few short messages."""
    q = result.questionnaire
    messages = []
    scored = [r for r in result.sections if r.average is not None]
    if scored:
        lines = ["Je gemiddelde per onderdeel (1 = helemaal oneens, 5 = helemaal eens):"]
        for r in scored:
            title = (r.section.title or r.section.part).rstrip(":.… ")
            if len(title) > 45:
                title = title[:44].rstrip() + "…"
            lines.append(f"• {r.section.id} {title}: {_format_number(r.average)}")
        messages.append("\n".join(lines))
    if result.lowest:
        parts = []
        for r in result.lowest:
            chapter = r.section.chapter
            text = f"{r.section.id} ({_format_number(r.average)})"
            if chapter:
                text += f": daar past hoofdstuk {chapter.id} '{chapter.title}' uit OnderwijsOnline bij"
                if chapter.training:
                    text += f". {chapter.training}"
            parts.append(text)
        messages.append("Hier valt voor jou het meeste te halen: " + "; ".join(parts) + ".")
    if result.no_items:
        lines = ["Bij deze punten gaf je 'nee' aan; mooi om uit te zoeken of in de training te bespreken:"]
        for item in result.no_items:
            section = q.section_of(item.id)
            chapter = f" (hoofdstuk {section.chapter.id} {section.chapter.title})" if section.chapter else ""
            lines.append(f"• {item.text}{chapter}")
        messages.append("\n".join(lines))
    for item_id, text in result.open_answers.items():
        if text.strip().lower() not in ("geen", "nee", "-"):
            messages.append(f"Je leerdoelen: \"{text}\"\nNeem ze mee naar je volgende mentorbijeenkomst of bespreek ze met je schoolopleider.")
    return messages


def explain_current_item(sender_id: str, questionnaire_id: str = MENTORSCAN) -> list:
    """'Wat bedoelen ze hiermee?': the item's own hint plus glossary terms it uses."""
    from bot.qa import Message, explain_terms

    item = current_item(sender_id, questionnaire_id)
    if item is None:
        return [Message("Er staat nu geen vraag open.")]
    messages = []
    if item.hint:
        messages.append(Message(f"Uitleg: {item.hint}"))
    questionnaire = load_questionnaire(questionnaire_id)
    section = questionnaire.section_of(item.id)
    messages.extend(explain_terms(f"{section.title or ''} {item.text}"))
    if not messages:
        messages.append(Message(scale_explanation(questionnaire, item)))
    return messages


def parses(sender_id: str, text: str, questionnaire_id: str = MENTORSCAN) -> bool:
    """Whether ``text`` is a valid answer to the mentor's current item (without storing it)."""
    item = current_item(sender_id, questionnaire_id)
    return item is not None and parses_item(item, text, questionnaire_id)


def parses_item(item: Item, text: str, questionnaire_id: str = MENTORSCAN) -> bool:
    """Whether ``text`` is a valid answer to ``item`` (no database read)."""
    return parse_answer(load_questionnaire(questionnaire_id), item, text).status == "ok"


def resumable(sender_id: str, preferred: Optional[str] = None) -> str:
    """Which questionnaire 'ga verder' means: the preferred one if open, else the last one worked on."""
    with storage.session_scope() as session:
        identity = session.get(storage.Identity, sender_id)
        if identity is None:
            return preferred or MENTORSCAN
        if preferred and storage.open_run(session, identity.mentor_id, preferred) is not None:
            return preferred
        open_runs = [run for run in identity.mentor.runs if run.completed_at is None]
        if open_runs:
            return max(open_runs, key=lambda run: run.updated_at).questionnaire_id
    return preferred or MENTORSCAN


def questionnaire_to_start(sender_id: str, intent: Optional[str], text: str, requested: Optional[str] = None,
                           current: Optional[str] = None) -> str:
    """Which questionnaire a start or 'ga verder' message means; the YAML `start:` blocks decide.

    In this order: the one a button names (``requested``, only an existing questionnaire); the one
    whose own intent this is (`start.intents`); for 'ga verder' the open one the text names, else
    the one last worked on; for a typed start request the one whose keywords it names; else the
    mentorscan.
    """
    if requested and requested in {q.id for q in loadable_questionnaires()}:
        return requested
    own = questionnaire_for_intent(intent)
    if own is not None:
        return own
    named = match_questionnaire(text)
    if intent == "continue_scan":
        return named if named and has_open_run(sender_id, named) else resumable(sender_id, current)
    return named or MENTORSCAN


def start_buttons() -> list[tuple[str, str]]:
    """(title, payload) of a start button per questionnaire, the mentorscan first."""
    questionnaires = sorted(loadable_questionnaires(), key=lambda q: (q.id != MENTORSCAN, q.id))
    return [q.start_button for q in questionnaires]
