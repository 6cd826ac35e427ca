"""The curated knowledge base: load and validate ``knowledge/*.yml``, find the entry a mentor asks about.

Every entry names its source document and section (or ``algemeen`` with ``review: true``), so
each answer can end with where it comes from. Ranking is plain TF-IDF over the entry's question
and example phrasings (word and character n-grams, so typos still match), nudged by what Rasa's
NLU recognised (intent kind, role and study phase entities). A new entry needs YAML, no code.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Literal, Optional, Union

import numpy as np
import yaml
from pydantic import BaseModel, Extra, ValidationError, root_validator, validator

from bot.settings import get_settings

ROLES = (
    "mentor", "student", "slb", "schoolopleider", "coordinerend_schoolopleider", "schoolleider",
    "instituutsopleider", "coordinerend_instituutsopleider", "programmaleider", "bestuurder",
    "stuurgroep", "stagebureau", "tandem",
)
ROLE_LABELS = {
    "mentor": "mentor", "student": "student", "slb": "studieloopbaanbegeleider (SLB-er)",
    "schoolopleider": "schoolopleider", "coordinerend_schoolopleider": "coördinerend schoolopleider",
    "schoolleider": "schoolleider", "instituutsopleider": "instituutsopleider",
    "coordinerend_instituutsopleider": "coördinerend instituutsopleider",
    "programmaleider": "programmaleider", "bestuurder": "bestuurder", "stuurgroep": "stuurgroep",
    "stagebureau": "stagebureau", "tandem": "tandem",
}
PHASES = ("jaar1", "jaar2", "jaar3", "jaar4", "lio")
KINDS = ("role", "task", "requirement", "hours", "phase", "glossary", "contact", "training", "general")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
MAX_ID_LENGTH = 34  # '/ask_knowledge{"kb_entry": "<id>"}' stays within Telegram's 64-byte callback data
# Ranking: answer sentences count less than phrasings of the question; the classifier's share.
ANSWER_TEXT_WEIGHT = 0.6
CLASSIFIER_WEIGHT = 0.7
# What NLU's intent adds to entries of the kinds it is about ('wie moet ik hebben voor de WPA'
# is a who-to-contact question, not the WPA definition). 0.16 helped the development set but not
# the blind set (see `make eval`), so it stays small.
INTENT_KIND_BOOST = 0.08
# A question whose content words the knowledge base has never seen ('verlofdagen', 'waterpokken') is
# probably not about it: every score drops by this much times the share of such words.
UNKNOWN_WORD_PENALTY = 0.4

# Which entry kinds each NLU intent is about; used as a boost, not a filter, so a
# misclassified intent still finds the right entry.
INTENT_KINDS = {
    "ask_who_to_contact": {"contact"},
    "ask_study_phase": {"phase"},
    "ask_knowledge": {"role", "task", "requirement", "hours", "glossary", "training", "general"},
}


NOT_ENTRIES = ("sources.yml", "partnerships.yml", "vocabulary.yml")


class KnowledgeError(ValueError):
    """A knowledge file is invalid; the message names the file, the entry and the field."""


class StrictModel(BaseModel):
    """Unknown keys are errors, so a typo in a YAML file fails loudly at load time."""

    class Config:
        extra = Extra.forbid
        anystr_strip_whitespace = True


class SourceRef(StrictModel):
    document: str
    section: str


class Contact(StrictModel):
    role: str
    escalation: Optional[str] = None
    prepare: str

    @validator("role", "escalation")
    def _known_role(cls, value):
        if value is not None and value not in ROLES:
            raise ValueError(f"unknown role {value!r}; use one of {', '.join(ROLES)}")
        return value


class Entry(StrictModel):
    id: str
    kind: Literal["role", "task", "requirement", "hours", "phase", "glossary", "contact", "training", "general"]
    question: str
    examples: list[str]
    answer: str
    more: Optional[str] = None
    roles: list[str] = []
    phases: list[str] = []
    terms: list[str] = []
    contact: Optional[Contact] = None
    source: Union[SourceRef, Literal["algemeen"]]
    partnerships: list[str]
    review: bool
    related: list[str] = []

    @validator("id")
    def _id_format(cls, value):
        if not ID_PATTERN.match(value):
            raise ValueError("id must be lowercase letters, digits, '.', '_' or '-'")
        if len(value) > MAX_ID_LENGTH:
            raise ValueError(f"id is longer than {MAX_ID_LENGTH} characters (button payloads must fit Telegram's 64 bytes)")
        return value

    @validator("examples")
    def _enough_examples(cls, value):
        if len(value) < 2:
            raise ValueError("give at least 2 example phrasings")
        return value

    @validator("roles", each_item=True)
    def _role(cls, value):
        if value not in ROLES:
            raise ValueError(f"unknown role {value!r}")
        return value

    @validator("phases", each_item=True)
    def _phase(cls, value):
        if value not in PHASES:
            raise ValueError(f"unknown study phase {value!r}; use one of {', '.join(PHASES)}")
        return value

    @validator("partnerships")
    def _some_partnership(cls, value):
        if not value:
            raise ValueError("name at least one partnership, or [alle]")
        return value

    @root_validator(skip_on_failure=True)
    def _consistency(cls, values):
        if values["source"] == "algemeen" and not values["review"]:
            raise ValueError("source: algemeen requires review: true")
        if values["kind"] == "contact" and values.get("contact") is None:
            raise ValueError("kind contact requires a contact: {role, prepare}")
        if values["kind"] == "glossary" and not values.get("terms"):
            raise ValueError("kind glossary requires terms")
        return values

    @property
    def is_general(self) -> bool:
        return "alle" in self.partnerships


class Source(StrictModel):
    id: str
    title: str
    partnership: str
    seed: str


class Partnership(StrictModel):
    id: str
    title: str
    names: list[str]


class Term(StrictModel):
    """One line of knowledge/vocabulary.yml: the words mentors use for the same thing."""

    term: str
    variants: list[str]


class Vocabulary:
    """Adds the canonical term to a text for every variant it contains ('so' -> 'schoolopleider'),
    and tells which study phases a text mentions ('2e jaars' -> jaar2)."""

    def __init__(self, terms: Iterable[Term] = ()):
        self._patterns = []
        for term in terms:
            variants = sorted({normalize(v) for v in [term.term, *term.variants] if normalize(v)}, key=len, reverse=True)
            pattern = re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(v) for v in variants) + r")(?![a-z0-9])")
            self._patterns.append((normalize(term.term), pattern))

    def terms_in(self, text: str) -> list[str]:
        """Canonical terms mentioned in ``text`` (already normalized)."""
        return [term for term, pattern in self._patterns if pattern.search(text)]

    def phases_in(self, text: str) -> list[str]:
        return [term for term in self.terms_in(normalize(text)) if term in PHASES]


@dataclass(frozen=True)
class Match:
    entry: Entry
    score: float


@dataclass(frozen=True)
class Answer:
    """What the bot says for one entry, already scoped to the mentor's partnership."""

    entry: Entry
    text: str
    source_line: str
    has_more: bool


def normalize(text: str) -> str:
    """Lowercase, strip accents and punctuation: 'Coördinerend SLB'er?' -> 'coordinerend slb er'."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^a-z0-9€]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


# Question words are not stop words: 'wie' (contact), 'wat' (glossary) and 'wanneer' (phase) tell
# neighbouring entries apart.
STOPWORDS = frozenset(
    normalize(word)
    for word in """de het een en of ik je jij u mijn m n me mij we wij ons onze is zijn ben bent was
    met van voor op in aan bij als dan dat die dit deze er
    te om naar ook nog al maar kan kun kunnen moet moeten mag mogen wil willen heb hebt heeft hebben
    doe doet doen wordt worden zo even eigenlijk precies graag eens hier daar over of tot""".split()
)


def _stem(token: str) -> str:
    """A crude Dutch stem (strip plural/verb endings) so 'studenten', 'student' share a feature."""
    return re.sub(r"(en|s|e|t)$", "", token) if len(token) > 4 else token


def _content_tokens(normalized: str) -> list[str]:
    return [token for token in normalized.split() if token not in STOPWORDS]


def _word_features(text: str, vocabulary: Vocabulary) -> list[str]:
    normalized = normalize(text)
    tokens = _content_tokens(normalized)
    stems = [_stem(token) for token in tokens]
    return tokens + [f"~{stem}" for stem in stems] + [f"={term}" for term in vocabulary.terms_in(normalized)]


def _load_yaml_list(path: Path) -> list:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{path.name}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise KnowledgeError(f"{path.name}: expected a list of entries at the top level")
    return data


def _format_error(path: Path, raw: object, exc: ValidationError) -> str:
    entry_id = raw.get("id", "?") if isinstance(raw, dict) else "?"
    problems = "; ".join(
        f"field {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )
    return f"{path.name}: entry {entry_id!r}: {problems}"


class KnowledgeBase:
    def __init__(self, entries: list[Entry], sources: dict[str, Source], partnerships: dict[str, Partnership],
                 vocabulary: Optional[Vocabulary] = None):
        self.entries = entries
        self.by_id = {entry.id: entry for entry in entries}
        self.sources = sources
        self.partnerships = partnerships
        self.vocabulary = vocabulary or Vocabulary()
        self._build_index()

    # --- loading ----------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path) -> "KnowledgeBase":
        sources = {}
        for raw in _load_yaml_list(directory / "sources.yml"):
            source = Source.parse_obj(raw)
            sources[source.id] = source
        partnerships = {}
        for raw in _load_yaml_list(directory / "partnerships.yml"):
            partnership = Partnership.parse_obj(raw)
            partnerships[partnership.id] = partnership
        terms = []
        vocabulary_file = directory / "vocabulary.yml"
        if vocabulary_file.exists():
            for index, raw in enumerate(_load_yaml_list(vocabulary_file)):
                try:
                    terms.append(Term.parse_obj(raw))
                except ValidationError as exc:
                    raise KnowledgeError(_format_error(vocabulary_file, {"id": f"#{index + 1}"}, exc)) from None
        entries: list[Entry] = []
        seen: dict[str, str] = {}
        for path in sorted(directory.glob("*.yml")):
            if path.name in NOT_ENTRIES:
                continue
            for raw in _load_yaml_list(path):
                try:
                    entry = Entry.parse_obj(raw)
                except ValidationError as exc:
                    raise KnowledgeError(_format_error(path, raw, exc)) from None
                where = f"{path.name}: entry {entry.id!r}"
                if entry.id in seen:
                    raise KnowledgeError(f"{where}: field id: duplicate, also in {seen[entry.id]}")
                seen[entry.id] = path.name
                if isinstance(entry.source, SourceRef) and entry.source.document not in sources:
                    raise KnowledgeError(
                        f"{where}: field source.document: unknown document {entry.source.document!r}"
                    )
                for partnership in entry.partnerships:
                    if partnership != "alle" and partnership not in partnerships:
                        raise KnowledgeError(f"{where}: field partnerships: unknown partnership {partnership!r}")
                entries.append(entry)
        for entry in entries:
            for related in entry.related:
                if related not in seen:
                    raise KnowledgeError(f"{seen[entry.id]}: entry {entry.id!r}: field related: unknown id {related!r}")
        return cls(entries, sources, partnerships, Vocabulary(terms))

    # --- search -----------------------------------------------------------------------

    def _build_index(self) -> None:
        """Two signals per entry: nearest phrasing (TF-IDF cosine over question, examples, terms and,
        weighted lower, answer sentences) and a linear classifier trained on the phrasings."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from scipy.sparse import hstack

        texts: list[str] = []
        owners: list[int] = []
        weights: list[float] = []
        for index, entry in enumerate(self.entries):
            for text in [entry.question, *entry.examples, *entry.terms]:
                texts.append(text)
                owners.append(index)
                weights.append(1.0)
            for sentence in re.split(r"(?<=[.!?])\s+", entry.answer):
                if len(sentence.split()) > 3:
                    texts.append(sentence)
                    owners.append(index)
                    weights.append(ANSWER_TEXT_WEIGHT)
        self._word = self._char = self._classifier = None
        if not texts:
            return
        self._owners = np.array(owners)
        self._weights = np.array(weights)
        vocabulary = self.vocabulary
        self._word = TfidfVectorizer(analyzer=lambda text: _word_features(text, vocabulary), sublinear_tf=True)
        self._char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), preprocessor=normalize, sublinear_tf=True)
        self._word_matrix = self._word.fit_transform(texts)
        self._char_matrix = self._char.fit_transform(texts)
        phrasings = self._weights == 1.0
        if len(set(self._owners[phrasings])) > 1:
            features = hstack([self._word_matrix[phrasings], self._char_matrix[phrasings]]).tocsr()
            self._classifier = LogisticRegression(C=10, max_iter=3000).fit(features, self._owners[phrasings])
            # Column-major copy of the weights: sklearn's predict_proba copies the whole (classes x
            # features) matrix on every call for a sparse query, which was most of a search's time.
            self._coef_t = np.ascontiguousarray(self._classifier.coef_.T)

    def _probabilities(self, query_features) -> np.ndarray:
        """The classifier's probability per entry (multinomial: softmax of the linear scores)."""
        probabilities = np.zeros(len(self.entries))
        if len(self._classifier.classes_) == 2:
            probabilities[self._classifier.classes_] = self._classifier.predict_proba(query_features)[0]
            return probabilities
        logits = np.asarray(query_features @ self._coef_t).ravel() + self._classifier.intercept_
        logits = np.exp(logits - logits.max())
        probabilities[self._classifier.classes_] = logits / logits.sum()
        return probabilities

    def _scores(self, query: str) -> np.ndarray:
        word_query, char_query = self._word.transform([query]), self._char.transform([query])
        similarity = (0.5 * (self._word_matrix @ word_query.T).toarray().ravel()
                      + 0.5 * (self._char_matrix @ char_query.T).toarray().ravel()) * self._weights
        nearest = np.zeros(len(self.entries))
        np.maximum.at(nearest, self._owners, similarity)
        if self._classifier is None:
            return nearest
        from scipy.sparse import hstack

        probabilities = self._probabilities(hstack([word_query, char_query]).tocsr())
        return (1 - CLASSIFIER_WEIGHT) * nearest + CLASSIFIER_WEIGHT * probabilities

    def unknown_share(self, query: str) -> float:
        """The share of the query's content words that occur in no phrasing, title or answer (also not
        by their crude stem)."""
        tokens = [token for token in _content_tokens(normalize(query)) if not token.isdigit()]
        if not tokens:
            return 0.0
        known = self._word.vocabulary_
        unknown = [token for token in tokens if token not in known and f"~{_stem(token)}" not in known]
        return len(unknown) / len(tokens)

    def search(
        self,
        query: str,
        intent: Optional[str] = None,
        roles: Iterable[str] = (),
        phases: Iterable[str] = (),
        partnership: Optional[str] = None,
        limit: int = 3,
    ) -> list[Match]:
        """Entries ranked for a question; scores are roughly 0..1 (blended signals plus small boosts)."""
        if self._word is None or not normalize(query):
            return []
        named = self.match_partnership(query)
        base = self._scores(query) - UNKNOWN_WORD_PENALTY * self.unknown_share(query)
        roles = set(roles)
        phases = set(phases) | set(self.vocabulary.phases_in(query))
        kinds = INTENT_KINDS.get(intent or "", set())
        scored = []
        for index, score in enumerate(base):
            entry = self.entries[index]
            score = float(score)
            if kinds and entry.kind in kinds:
                score += INTENT_KIND_BOOST
            if roles and roles & set(entry.roles):
                score += 0.04
            if phases and entry.phases:
                # a question about a second-year student is not answered with the first-year entry
                score += 0.08 if phases & set(entry.phases) else -0.08
            scope = named or partnership  # named in the question, else the mentor's own
            if scope and not entry.is_general:
                # twin entries (the same topic for two partnerships) must resolve to the right one
                score += 0.04 if scope in entry.partnerships else -0.06
            scored.append(Match(entry, round(score, 4)))
        scored.sort(key=lambda match: match.score, reverse=True)
        return scored[:limit]

    def match_partnership(self, text: str) -> Optional[str]:
        """The partnership id a mentor names ('ik werk bij Samen Opleiden Noord-Holland')."""
        padded = f" {normalize(text)} "
        best: tuple[int, Optional[str]] = (0, None)
        for partnership in self.partnerships.values():
            for name in [partnership.id, *partnership.names]:
                needle = normalize(name)
                if needle and f" {needle} " in padded and len(needle) > best[0]:
                    best = (len(needle), partnership.id)
        return best[1]

    def glossary_in(self, text: str) -> list[Entry]:
        """Glossary entries whose term occurs in ``text`` (to explain 'wat betekent dat?')."""
        padded = f" {normalize(text)} "
        found = []
        for entry in self.entries:
            if entry.kind != "glossary":
                continue
            if any(f" {normalize(term)} " in padded for term in entry.terms if normalize(term)):
                found.append(entry)
        return found

    # --- rendering --------------------------------------------------------------------

    def source_line(self, entry: Entry) -> str:
        if entry.source == "algemeen":
            return "Bron: algemene informatie, nog niet gecontroleerd door je partnerschap."
        source = self.sources[entry.source.document]
        line = f"Bron: {source.title}, {entry.source.section}."
        if entry.review:
            line += " (Wordt nog gecontroleerd door je partnerschap.)"
        return line

    def answer(self, entry: Entry, partnership: Optional[str] = None) -> Answer:
        """The answer text for a mentor; says so when a figure comes from another partnership."""
        text = entry.answer.strip()
        if not entry.is_general:
            own = [self.partnerships[p].title for p in entry.partnerships if p in self.partnerships]
            if partnership and partnership not in entry.partnerships:
                mine = self.partnerships.get(partnership)
                text = (
                    f"Let op: dit komt uit de afspraken van {', '.join(own)}. "
                    f"Voor {mine.title if mine else 'jouw partnerschap'} kan het anders zijn; "
                    "check het bij je schoolopleider.\n\n" + text
                )
        return Answer(entry=entry, text=text, source_line=self.source_line(entry), has_more=bool(entry.more))

    def partnership_title(self, partnership_id: Optional[str]) -> Optional[str]:
        partnership = self.partnerships.get(partnership_id or "")
        return partnership.title if partnership else None


@lru_cache(maxsize=4)
def _load_cached(directory: str) -> KnowledgeBase:
    return KnowledgeBase.load(Path(directory))


def load_knowledge(directory: Optional[Path] = None) -> KnowledgeBase:
    """The knowledge base in ``directory`` (default: settings), loaded once per process."""
    return _load_cached(str(directory or get_settings().knowledge_dir))
