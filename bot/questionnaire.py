"""Questionnaire engine: questionnaires are YAML data; this module knows the next item, parses and
normalises answers typed in free Dutch, computes progress and results.

Generic by design: the mentorscan and the training evaluation run on the same code, and how each
is started in chat (button, keywords, intro) is in its own YAML file too (`start:`), so a new
questionnaire is one file. Answers are stored by item id together with the questionnaire version,
so later text edits never corrupt them.
"""
from __future__ import annotations

import difflib
import json
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import mean
from typing import Literal, Optional

import yaml
from pydantic import ValidationError, root_validator, validator

from bot.knowledge import SourceRef, StrictModel, normalize
from bot.settings import get_settings

log = logging.getLogger(__name__)
MAX_OPEN_TEXT = 2000
# Starting a questionnaire in chat (its `start:` block): the generic intent, with the questionnaire
# as an entity in button payloads.
START_INTENT = "start_scan"
START_ENTITY = "questionnaire"
GENERIC_INTENTS = {START_INTENT, "continue_scan"}
MAX_PAYLOAD_BYTES = 64  # Telegram's callback data: a longer payload does not survive a bridge restart


class Option(StrictModel):
    value: str
    label: str


class Scale(StrictModel):
    type: Literal["likert5", "yes_no", "choice"]
    options: list[Option]
    multiple: bool = False


class Item(StrictModel):
    id: str
    text: str
    scale: Optional[str] = None
    type: Optional[Literal["open_text"]] = None
    hint: Optional[str] = None

    @root_validator(skip_on_failure=True)
    def _scale_or_open(cls, values):
        if bool(values.get("scale")) == bool(values.get("type")):
            raise ValueError("an item has either `scale: <name>` or `type: open_text`")
        return values


class Chapter(StrictModel):
    id: str
    title: str
    training: Optional[str] = None  # what the basistraining offers on this topic (seed 001), Dutch


class Section(StrictModel):
    id: str
    part: str
    title: Optional[str] = None
    chapter: Optional[Chapter] = None
    items: list[Item]


class Start(StrictModel):
    """How a mentor starts the questionnaire in chat; read by actions/scan.py, so no code per questionnaire."""

    # Title of its start button (payload ``/start_scan{"questionnaire":"<id>"}``); default "<title> invullen".
    button: Optional[str] = None
    # Words or phrases that pick it when a mentor types a request to fill in a questionnaire
    # ("evaluatie", "training evalueren"); a word also matches compounds it begins ("evaluatieformulier")
    # and small typos. The most specific match wins; no match (or a tie) starts the mentorscan.
    keywords: list[str] = []
    # Intents of its own that start it. Optional: each needs NLU examples, a rule and a domain entry
    # (README, "Adding an intent"); keywords on the generic `start_scan` need none of that.
    intents: list[str] = []

    @validator("keywords", each_item=True)
    def _keyword_has_words(cls, keyword: str) -> str:
        if not normalize(keyword):
            raise ValueError(f"keyword {keyword!r} has no letters or digits")
        return keyword

    @validator("intents", each_item=True)
    def _intent_of_its_own(cls, intent: str) -> str:
        if intent in GENERIC_INTENTS:
            raise ValueError(f"intent {intent!r} is shared by every questionnaire; use `keywords` instead")
        return intent


class Questionnaire(StrictModel):
    id: str
    version: int
    title: str
    source: SourceRef
    intro: str
    start: Start = Start()
    scales: dict[str, Scale]
    sections: list[Section]

    @validator("id")
    def _id_fits_a_button(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
            raise ValueError(f"id {value!r}: use lower-case letters, digits and '-' (it is the file name)")
        if len(start_payload(value).encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"id {value!r} is too long for a start button (at most {MAX_PAYLOAD_BYTES} bytes of payload)")
        return value

    @property
    def start_button(self) -> tuple[str, str]:
        """(title, payload) of the button that starts this questionnaire."""
        return self.start.button or f"{self.title} invullen", start_payload(self.id)

    @root_validator(skip_on_failure=True)
    def _references(cls, values):
        seen = set()
        for section in values["sections"]:
            for item in section.items:
                if item.id in seen:
                    raise ValueError(f"duplicate item id {item.id!r}")
                seen.add(item.id)
                if item.scale and item.scale not in values["scales"]:
                    raise ValueError(f"item {item.id!r}: unknown scale {item.scale!r}")
        return values

    # --- navigation -------------------------------------------------------------------

    @property
    def items(self) -> list[Item]:
        return [item for section in self.sections for item in section.items]

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def section_of(self, item_id: str) -> Section:
        for section in self.sections:
            if any(item.id == item_id for item in section.items):
                return section
        raise KeyError(item_id)

    def scale_of(self, item: Item) -> Optional[Scale]:
        return self.scales[item.scale] if item.scale else None

    def next_item(self, answers: dict[str, str]) -> Optional[Item]:
        """The first unanswered item in questionnaire order; None when complete."""
        for item in self.items:
            if item.id not in answers:
                return item
        return None

    def previous_item(self, answers: dict[str, str], current: Optional[Item]) -> Optional[Item]:
        """The answered item just before ``current`` (or the last one when complete)."""
        items = self.items
        end = items.index(current) if current is not None else len(items)
        for item in reversed(items[:end]):
            if item.id in answers:
                return item
        return None

    def progress(self, item: Item) -> tuple[int, int]:
        items = self.items
        return items.index(item) + 1, len(items)


# --- answer parsing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    status: Literal["ok", "invalid", "dont_know"]
    value: Optional[str] = None
    hint: str = ""


DONT_KNOW = {"weet ik niet", "weet niet", "geen idee", "weet ik het niet", "geen flauw idee", "snap ik niet", "i don t know", "dunno"}
NUMBER_WORDS = {"een": "1", "eén": "1", "één": "1", "twee": "2", "drie": "3", "vier": "4", "vijf": "5"}
# Longest phrases first so 'helemaal mee eens' wins over 'eens'.
LIKERT_PHRASES = [
    ("niet oneens niet eens", "3"), ("niet eens niet oneens", "3"), ("niet mee eens niet mee oneens", "3"),
    ("helemaal mee oneens", "1"), ("helemaal niet mee eens", "1"), ("helemaal niet eens", "1"),
    ("strongly disagree", "1"), ("strongly agree", "5"),
    ("helemaal oneens", "1"), ("totaal oneens", "1"), ("totaal niet", "1"), ("helemaal niet", "1"), ("nooit", "1"),
    ("bijna nooit", "2"), ("bijna altijd", "5"),
    ("helemaal mee eens", "5"), ("helemaal eens", "5"), ("volledig eens", "5"), ("volledig mee eens", "5"),
    ("totaal eens", "5"), ("absoluut", "5"), ("zeker weten", "5"), ("altijd", "5"),
    ("niet mee eens", "2"), ("mee oneens", "2"), ("oneens", "2"), ("niet eens", "2"), ("klopt niet", "2"),
    ("meestal niet", "2"), ("zelden", "2"), ("weinig", "2"),
    ("af en toe", "3"), ("neutraal", "3"), ("soms", "3"), ("gemiddeld", "3"), ("beetje", "3"), ("een beetje", "3"),
    ("deels", "3"), ("half om half", "3"),
    ("meestal wel", "4"), ("meestal", "4"), ("regelmatig", "4"), ("mee eens", "4"), ("eens", "4"), ("klopt", "4"),
    ("vaak", "4"),
    ("disagree", "2"), ("never", "1"), ("rarely", "2"), ("sometimes", "3"), ("neutral", "3"), ("agree", "4"),
    ("often", "4"), ("always", "5"),
]
YES = {"ja", "ja hoor", "jazeker", "ja zeker", "jawel", "zeker", "klopt", "dat klopt", "yes", "yep", "jep", "jup", "wel",
       "natuurlijk", "uiteraard", "ja klopt", "absoluut", "ik weet het", "ken ik", "weet ik", "ken ik wel", "weet ik wel",
       "doe ik", "doe ik wel", "zeker wel", "zeker weten", "ja natuurlijk"}
NO = {"nee", "nee hoor", "neen", "nope", "no", "niet", "klopt niet", "nog niet", "helaas niet", "nee helaas", "ken ik niet",
      "nee niet", "niet echt", "nah", "zeker niet", "absoluut niet", "ken ik nog niet", "weet ik nog niet", "doe ik niet",
      "doe ik nog niet"}
FILLER = re.compile(r"^(doe maar|ik zeg|ik kies|ik denk|antwoord|mijn antwoord is|ik geef|graag)\s+")
# Words that may surround a scale answer ('ik geef het een 4', 'vier denk ik', 'meestal wel hoor'). Any other
# word makes the message something else: 'dat laatste antwoord klopt niet' is not a 2, 'terug naar vraag 3'
# is not a 3; the scan then treats it as a request (terug, uitleg, a question) instead of storing it.
SURROUNDING_WORDS = {
    "ik", "denk", "zeg", "kies", "doe", "maar", "geef", "graag", "antwoord", "mijn", "is", "het", "wel", "hoor", "toch",
    "dan", "een", "cijfer", "score", "ongeveer", "zo", "eigenlijk", "gewoon", "vind", "zou", "zeggen", "ben", "ermee",
    "er", "mee", "dat", "daar", "best", "wordt", "gok", "optie", "nummer", "neem", "je", "zet", "maak", "van", "ok",
    "oke", "nou", "eh", "uhm", "hmm", "ja", "nee", "i", "think", "say", "would", "id", "d", "m", "im",
}


def _strip_filler(text: str) -> str:
    return FILLER.sub("", text).strip()


def _likert_hint(scale: Scale) -> str:
    labels = ", ".join(f"{opt.value} = {opt.label}" for opt in scale.options)
    return f"Kies een cijfer van 1 tot en met 5 ({labels}). Je mag ook typen, bijvoorbeeld 'eens' of 'vier'."


def _parse_likert(text: str, scale: Scale) -> Parsed:
    words = text.split()
    # what may stand beside the answer: SURROUNDING_WORDS and the scale's own label words ('4 eens')
    allowed = SURROUNDING_WORDS | {word for opt in scale.options for word in normalize(opt.label).split()}
    digits = re.findall(r"(?<!\d)\d+(?!\d)", text)
    if len(set(digits)) == 1 and {w for w in words if not w.isdigit()} <= allowed:
        value = digits[0]
        if value in {opt.value for opt in scale.options}:
            return Parsed("ok", value)
        return Parsed("invalid", hint=f"{value} valt buiten de schaal. " + _likert_hint(scale))
    if len(set(digits)) > 1:
        return Parsed("invalid", hint="Kies één cijfer, niet meer. " + _likert_hint(scale))
    stripped = _strip_filler(text)
    if stripped in NUMBER_WORDS:
        return Parsed("ok", NUMBER_WORDS[stripped])
    for opt in scale.options:
        if stripped == normalize(opt.label):
            return Parsed("ok", opt.value)
    numbers = {NUMBER_WORDS[word] for word in words if word in NUMBER_WORDS and word != "een"}
    if len(numbers) == 1 and {w for w in words if w not in NUMBER_WORDS or w == "een"} <= allowed:
        return Parsed("ok", numbers.pop())  # 'doe maar een vier', 'vier denk ik'
    padded = f" {stripped} "
    for phrase, value in LIKERT_PHRASES:
        if f" {phrase} " in padded:
            if set(padded.replace(f" {phrase} ", " ", 1).split()) <= allowed:
                return Parsed("ok", value)
    return Parsed("invalid", hint="Dat kon ik niet als antwoord lezen. " + _likert_hint(scale))


def _parse_yes_no(text: str) -> Parsed:
    words = _strip_filler(text)
    hint = "Antwoord met 'ja' of 'nee' (of tik op een knop)."
    if words in YES or words.startswith(("ja ", "jazeker", "jawel")):
        return Parsed("ok", "ja")
    if words in NO or words.startswith(("nee ", "neen ")):
        return Parsed("ok", "nee")
    return Parsed("invalid", hint="Dat kon ik niet als ja of nee lezen. " + hint)


def _match_option(token: str, scale: Scale) -> Optional[str]:
    for index, opt in enumerate(scale.options, start=1):
        if token in (normalize(opt.value), normalize(opt.label), str(index)):
            return opt.value
    return None


def _parse_choice(raw: str, scale: Scale) -> Parsed:
    options = " / ".join(f"{i}. {opt.label}" for i, opt in enumerate(scale.options, start=1))
    text = normalize(raw)
    single = _match_option(text, scale)
    if single is not None:
        return Parsed("ok", single)
    if scale.multiple:
        parts = re.split(r"[,;+/&]| en | of ", f" {raw.lower()} ")
        tokens = [normalize(part) for part in parts if normalize(part)]
        values = [_match_option(tok, scale) for tok in tokens]
        if tokens and all(values):
            ordered = [opt.value for opt in scale.options if opt.value in values]
            return Parsed("ok", ",".join(ordered))
        return Parsed("invalid", hint=f"Kies een of meer van: {options}. Typ bijvoorbeeld '1, 3'.")
    # Free text containing exactly one option label ('ik vond hem goed').
    padded = f" {text} "
    hits = {opt.value for opt in scale.options if f" {normalize(opt.label)} " in padded}
    if len(hits) == 1:
        return Parsed("ok", hits.pop())
    return Parsed("invalid", hint=f"Kies een van: {options}.")


def parse_answer(questionnaire: Questionnaire, item: Item, raw: Optional[str]) -> Parsed:
    """Validate and normalise one typed or button answer; never raises on user input."""
    raw = (raw or "").strip()
    text = normalize(raw)
    if item.type == "open_text":
        if not raw or not re.search(r"\w", raw):
            return Parsed("invalid", hint="Typ je antwoord in een paar woorden. Niets te melden? Typ dan 'geen'.")
        return Parsed("ok", raw[:MAX_OPEN_TEXT])
    if text in DONT_KNOW:
        return Parsed("dont_know")
    scale = questionnaire.scale_of(item)
    if not text:
        return Parsed("invalid", hint="Ik zag geen antwoord. Tik op een knop of typ je antwoord.")
    if scale.type == "likert5":
        return _parse_likert(text, scale)
    if scale.type == "yes_no":
        return _parse_yes_no(text)
    return _parse_choice(raw, scale)


def scale_explanation(questionnaire: Questionnaire, item: Item) -> str:
    """What to say after 'weet ik niet': how the scale works, in friendly Dutch."""
    scale = questionnaire.scale_of(item)
    if scale is None:
        return "Schrijf in je eigen woorden wat je wilt leren als mentor. Niets te melden? Typ dan 'geen'."
    if scale.type == "likert5":
        return (
            "Geen goed of fout hier: het gaat om hoe jij het nu doet. "
            + _likert_hint(scale)
            + " Twijfel je? Kies dan 3."
        )
    if scale.type == "yes_no":
        return "Kies 'ja' als je dit weet of kent, en 'nee' als je er nog niet zeker van bent. Nee is ook een prima antwoord: dan weten we waar de training bij kan helpen."
    return "Kies het antwoord dat het best past: " + ", ".join(opt.label for opt in scale.options) + "."


# --- results -----------------------------------------------------------------------------


@dataclass
class SectionResult:
    section: Section
    average: Optional[float] = None  # likert sections
    yes: int = 0
    no: int = 0
    distribution: dict[str, int] = field(default_factory=dict)


@dataclass
class Results:
    questionnaire: Questionnaire
    sections: list[SectionResult]
    lowest: list[SectionResult]
    no_items: list[Item]
    open_answers: dict[str, str]
    chapters: list[Chapter]


def results(questionnaire: Questionnaire, answers: dict[str, str]) -> Results:
    """Averages per section, the lowest-scoring sections and their training chapters (seed 003)."""
    section_results = []
    no_items = []
    open_answers = {}
    for section in questionnaire.sections:
        result = SectionResult(section)
        likert_values = []
        for item in section.items:
            value = answers.get(item.id)
            if value is None:
                continue
            scale = questionnaire.scale_of(item)
            if scale is None:
                open_answers[item.id] = value
                continue
            result.distribution[value] = result.distribution.get(value, 0) + 1
            if scale.type == "likert5":
                likert_values.append(int(value))
            elif scale.type == "yes_no":
                if value == "ja":
                    result.yes += 1
                else:
                    result.no += 1
                    no_items.append(item)
        if likert_values:
            result.average = round(mean(likert_values), 2)
        section_results.append(result)
    scored = [r for r in section_results if r.average is not None]
    lowest = []
    if scored:
        minimum = min(r.average for r in scored)
        lowest = [r for r in scored if r.average == minimum]
    chapters: list[Chapter] = []
    for result in lowest + [r for r in section_results if r.no]:
        chapter = result.section.chapter
        if chapter and chapter not in chapters:
            chapters.append(chapter)
    return Results(questionnaire, section_results, lowest, no_items, open_answers, chapters)


# --- loading -----------------------------------------------------------------------------


class QuestionnaireError(ValueError):
    pass


@lru_cache(maxsize=32)
def _load(path: str) -> Questionnaire:
    file = Path(path)
    try:
        questionnaire = Questionnaire.parse_obj(yaml.safe_load(file.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise QuestionnaireError(f"{file.name}: {exc}") from None
    if questionnaire.id != file.stem:  # stored answers and start buttons find the file by its id
        raise QuestionnaireError(f"{file.name}: id {questionnaire.id!r} must be the file name {file.stem!r}")
    return questionnaire


def questionnaire_dir() -> Path:
    return get_settings().knowledge_dir / "questionnaires"


def load_questionnaire(questionnaire_id: str) -> Questionnaire:
    path = questionnaire_dir() / f"{questionnaire_id}.yml"
    if not path.exists():
        raise QuestionnaireError(f"no questionnaire {questionnaire_id!r} in {path.parent}")
    return _load(str(path))


def available_questionnaires() -> list[str]:
    return sorted(path.stem for path in questionnaire_dir().glob("*.yml"))


# --- starting a questionnaire in chat ------------------------------------------------------


def start_payload(questionnaire_id: str) -> str:
    """``/start_scan{"questionnaire":"evaluatie-mentortraining"}``: a button that starts one questionnaire."""
    entities = json.dumps({START_ENTITY: questionnaire_id}, separators=(",", ":"))
    return f"/{START_INTENT}{entities}"


def loadable_questionnaires() -> list[Questionnaire]:
    """Every questionnaire that loads; a broken file is logged and skipped (check-knowledge names it)."""
    found = []
    for questionnaire_id in available_questionnaires():
        try:
            found.append(load_questionnaire(questionnaire_id))
        except QuestionnaireError as exc:
            log.warning("questionnaire skipped: %s", exc)
    return found


def _keyword_matches(keyword: str, words: list[str], padded: str) -> bool:
    if " " in keyword:  # a phrase: its words in this order
        return f" {keyword} " in padded
    for word in words:
        if word == keyword or (len(keyword) >= 4 and word.startswith(keyword)):
            return True  # 'evaluatie' also names 'evaluatieformulier'
        if len(keyword) >= 6 and len(word) >= 6 and difflib.SequenceMatcher(None, word, keyword).ratio() >= 0.85:
            return True  # 'evalutie'
    return False


def keyword_score(questionnaire: Questionnaire, text: str) -> int:
    """How specifically ``text`` names the questionnaire: the words of its matching keywords."""
    normalized = normalize(text)
    words, padded = normalized.split(), f" {normalized} "
    return sum(len(keyword.split()) for keyword in {normalize(k) for k in questionnaire.start.keywords}
               if _keyword_matches(keyword, words, padded))


def match_questionnaire(text: str) -> Optional[str]:
    """The questionnaire whose `start.keywords` a typed request names most specifically; None for none or a tie."""
    if not text or text.lstrip().startswith("/"):  # a button payload is not a typed request
        return None
    scores = sorted(((keyword_score(q, text), q.id) for q in loadable_questionnaires()), reverse=True)
    if not scores or scores[0][0] == 0 or (len(scores) > 1 and scores[1][0] == scores[0][0]):
        return None
    return scores[0][1]


def questionnaire_for_intent(intent: Optional[str]) -> Optional[str]:
    """The questionnaire that has ``intent`` among its own `start.intents`."""
    for questionnaire in loadable_questionnaires():
        if intent and intent in questionnaire.start.intents:
            return questionnaire.id
    return None


def start_intents() -> set[str]:
    """Every intent a questionnaire's YAML names as its own."""
    return {intent for questionnaire in loadable_questionnaires() for intent in questionnaire.start.intents}
