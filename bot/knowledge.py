"""The curated knowledge base: load and validate ``knowledge/*.yml``, find the entry a mentor asks about.

Every entry names its source document and section (or ``algemeen`` with ``review: true``), so
each answer can end with where it comes from: the chat shows the document's short title, "Meer
hierover" the full title and section. An entry with ``review: false`` (its text says only what
the source says) must cite a section of a seed document (one with ``seed:`` in sources.yml). An
entry may be one partnership's version of another's (``variant_of``): a mentor gets their own
partnership's version. Ranking is plain TF-IDF over the entry's question and example phrasings
(word and character n-grams, so typos still match), nudged by what Rasa's NLU recognised (intent
kind, role and study phase entities). A new entry needs YAML, no code.

Fitting the ranker takes half a minute, so it is never done inside a turn: ``make install`` runs
``python -m bot.knowledge``, which stores it as plain numpy arrays (no pickle) in
``build/knowledge_index.npz``, keyed by a hash of the knowledge files, this module and the library
versions; the action server loads it (or, when it is missing or stale, fits and stores it) before
it listens.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterable, Literal, Optional, Union

import numpy as np
import yaml
from pydantic import BaseModel, Extra, ValidationError, root_validator, validator

from bot.settings import PROJECT_ROOT, get_settings

log = logging.getLogger(__name__)

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
MAX_SHORT_SOURCE = 40  # "Bron: <short>." fits one line on a phone
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
# Long messages (situation, what was tried, then the question): the question sentences are counted
# this many extra times. Context words then still name the topic of a vague question ('wat is dat
# precies?') but no longer outvote the question itself. Scoring the question sentences on their own
# and blending did worse on the development sets (a vague question then matches generic entries).
QUESTION_REPEAT = 2
# ... but only when the question sentences point somewhere on their own: a vague one ('wie kan ik nu
# benaderen?', 'wat is de volgende stap?') would only pull towards generic entries.
SPECIFIC_QUESTION = 0.4
# Words of a question that ask who or what next without naming a topic.
VAGUE_WORDS = frozenset("""wie wat hoe waar wanneer welke welk waarom laten laat weten
    inschakelen inlichten informeren benaderen contacteren melden helpen help terecht stap volgende nu nog iemand
    anders verder dan zou zouden kunnen zal moeten mogen hoort ervan daarvan hiervan daarover hierover
    who what how where when which whom else next step involved contact tell inform should need now
    doen gaan kun kunt jij weet weten dat""".split())

# Which entry kinds each NLU intent is about; used as a boost, not a filter, so a
# misclassified intent still finds the right entry.
INTENT_KINDS = {
    "ask_who_to_contact": {"contact"},
    "ask_study_phase": {"phase"},
    "ask_knowledge": {"role", "task", "requirement", "hours", "glossary", "training", "general"},
}


NOT_ENTRIES = ("sources.yml", "partnerships.yml", "vocabulary.yml")
# The fitted ranker of load_knowledge()'s knowledge base; built by `make install`.
INDEX_FILE = PROJECT_ROOT / "build" / "knowledge_index.npz"
INDEX_FORMAT = "1"  # bump when the stored arrays change meaning


class KnowledgeError(ValueError):
    """A knowledge file is invalid; the message names the file, the entry and the field."""


class StrictModel(BaseModel):
    """Unknown keys are errors, so a typo in a YAML file fails loudly at load time."""

    class Config:
        extra = Extra.forbid
        anystr_strip_whitespace = True


class SourceRef(StrictModel):
    document: str
    section: str = ""  # where in the document; required when the entry has review: false


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
    # This entry is its partnership's version of these entries of another partnership (the same
    # question, answered from that partnership's own document): a mentor of this partnership gets
    # it instead of them, and a mentor of theirs gets the first of them instead of this one.
    variant_of: list[str] = []

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
        if isinstance(values["source"], SourceRef) and not values["review"] and not values["source"].section:
            raise ValueError("review: false requires source.section: the section of the seed document the "
                             "answer comes from (or set review: true)")
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
    short: str  # what the chat shows after "Bron:" (phone-sized); the full title is behind "Meer hierover"
    partnership: str
    seed: Optional[str] = None  # the seed file it was curated from; only a seed can back a review: false entry

    @validator("short")
    def _short_enough(cls, value):
        if not value or len(value) > MAX_SHORT_SOURCE:
            raise ValueError(f"give a short title of 1 to {MAX_SHORT_SOURCE} characters")
        return value


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
# neighbouring entries apart. English function words are (a tenth of the questions are English):
# otherwise 'who do i call when my intern ...' matches any English phrasing by 'do i', 'my'.
STOPWORDS = frozenset(
    normalize(word)
    for word in """de het een en of ik je jij u mijn m n me mij we wij ons onze is zijn ben bent was
    met van voor op in aan bij als dan dat die dit deze er
    te om naar ook nog al maar kan kun kunnen moet moeten mag mogen wil willen heb hebt heeft hebben
    doe doet doen wordt worden zo even eigenlijk precies graag eens hier daar over of tot
    i me my you your we our us it its is are am was be been the a an to of in on at for with and or
    do does did have has had can could should would will about this that these those there if""".split()
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


# A sentence is a question when it ends in '?', or has a question word (first word, or an interrogative
# anywhere: 'ik vraag me af wat ...'); mentors often leave out the question mark.
_QUESTION_OPENERS = frozenset(
    "wat wie hoe waar wanneer waarom welke welk hoeveel mag mogen moet moeten kan kun kunnen is zijn ben heb "
    "krijg wordt worden telt zit klopt geldt bij met aan who what how when where which why do does is are can "
    "should must".split())
_INTERROGATIVES = frozenset("wat wie hoe waar wanneer waarom welke welk hoeveel who what how when where which why".split())


def split_sentences(text: str) -> list[str]:
    """The sentences of a message (split after . ! ? and at line breaks)."""
    return [part.strip() for part in re.split(r"(?<=[.!?])\s+|\n+", text) if normalize(part)]


def names_a_topic(question: str) -> bool:
    """Whether a question names a topic of its own, beyond asking who or what next ('wie moet ik dit
    laten weten?' names none: the situation is in the sentences before it)."""
    return any(token not in VAGUE_WORDS for token in _content_tokens(normalize(question)))


def question_part(text: str) -> Optional[str]:
    """The question sentences of a message of several sentences, or None when the message is one
    sentence or all question (then there is no context to weigh less)."""
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return None
    marked = [s for s in sentences if s.rstrip().endswith("?")]
    if not marked:
        def asks(sentence: str) -> bool:
            words = normalize(sentence).split()
            return bool(words) and (words[0] in _QUESTION_OPENERS or any(w in _INTERROGATIVES for w in words))
        marked = [s for s in sentences if asks(s)] or sentences[-1:]
    return " ".join(marked) if len(marked) < len(sentences) else None


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
        err["msg"] if tuple(err["loc"]) == ("__root__",)  # a rule across fields names its fields itself
        else f"field {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors()
    )
    return f"{path.name}: entry {entry_id!r}: {problems}"


class KnowledgeBase:
    def __init__(self, entries: list[Entry], sources: dict[str, Source], partnerships: dict[str, Partnership],
                 vocabulary: Optional[Vocabulary] = None, index: Optional[dict[str, np.ndarray]] = None):
        """``index``: the arrays of :meth:`index_arrays` of a knowledge base with the same entries and
        vocabulary (from :func:`read_index`); without it the ranker is fitted here."""
        self.entries = entries
        self.by_id = {entry.id: entry for entry in entries}
        # (entry id, partnership) -> that partnership's version of the entry (Entry.variant_of)
        self._variants: dict[tuple[str, str], Entry] = {}
        for entry in entries:
            for position, other in enumerate(entry.variant_of):
                for partnership in entry.partnerships:
                    self._variants.setdefault((other, partnership), entry)
                if position == 0 and other in self.by_id:
                    for partnership in self.by_id[other].partnerships:
                        self._variants.setdefault((entry.id, partnership), self.by_id[other])
        self.sources = sources
        self.partnerships = partnerships
        self.vocabulary = vocabulary or Vocabulary()
        if index is None:
            self._build_index()
        else:
            self._restore_index(index)

    # --- loading ----------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path, index_file: Optional[Path] = None) -> "KnowledgeBase":
        """Validate and load ``directory``. With ``index_file`` the fitted ranker is read from it when
        its key matches the files (:func:`index_key`), else fitted and written there for next time."""
        key = index_key(directory) if index_file else ""
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
                if isinstance(entry.source, SourceRef) and not entry.review and not sources[entry.source.document].seed:
                    raise KnowledgeError(
                        f"{where}: field source.document: {entry.source.document!r} is not a seed document "
                        "(no `seed:` in sources.yml); review: false requires a seed section, or set review: true"
                    )
                for partnership in entry.partnerships:
                    if partnership != "alle" and partnership not in partnerships:
                        raise KnowledgeError(f"{where}: field partnerships: unknown partnership {partnership!r}")
                entries.append(entry)
        by_id = {entry.id: entry for entry in entries}
        for entry in entries:
            for related in entry.related:
                if related not in seen:
                    raise KnowledgeError(f"{seen[entry.id]}: entry {entry.id!r}: field related: unknown id {related!r}")
            for other in entry.variant_of:
                where = f"{seen[entry.id]}: entry {entry.id!r}: field variant_of"
                if other not in by_id:
                    raise KnowledgeError(f"{where}: unknown id {other!r}")
                target = by_id[other]
                if entry.is_general or target.is_general or set(entry.partnerships) & set(target.partnerships):
                    raise KnowledgeError(f"{where}: {other!r} must belong to other partnerships than this entry "
                                         "(and neither to [alle])")
        if not index_file or not entries:
            return cls(entries, sources, partnerships, Vocabulary(terms))
        stored = read_index(index_file, key, len(entries))
        if stored is not None:
            return cls(entries, sources, partnerships, Vocabulary(terms), index=stored)
        started = time.perf_counter()
        kb = cls(entries, sources, partnerships, Vocabulary(terms))
        log.info("knowledge index fitted in %.1f s (%d entries)", time.perf_counter() - started, len(entries))
        write_index(index_file, key, kb.index_arrays())
        return kb

    # --- search -----------------------------------------------------------------------

    def _build_index(self) -> None:
        """Two signals per entry: nearest phrasing (TF-IDF cosine over question, examples, terms and,
        weighted lower, answer sentences) and a linear classifier trained on the phrasings."""
        from scipy.sparse import hstack
        from sklearn.linear_model import LogisticRegression

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
        self._word = self._char = None
        self._classes = np.zeros(0, dtype=np.int64)
        if not texts:
            return
        self._owners = np.array(owners)
        self._weights = np.array(weights)
        self._word, self._char = self._vectorizers()
        self._word_matrix = self._word.fit_transform(texts)
        self._char_matrix = self._char.fit_transform(texts)
        phrasings = self._weights == 1.0
        if len(set(self._owners[phrasings])) > 1:
            features = hstack([self._word_matrix[phrasings], self._char_matrix[phrasings]]).tocsr()
            classifier = LogisticRegression(C=10, max_iter=3000).fit(features, self._owners[phrasings])
            self._classes = classifier.classes_
            self._intercept = classifier.intercept_
            # Column-major weights: sklearn's predict_proba copies the whole (classes x features)
            # matrix on every call for a sparse query, which was most of a search's time.
            self._coef_t = np.ascontiguousarray(classifier.coef_.T)

    def _vectorizers(self, word_vocabulary: Optional[dict] = None, char_vocabulary: Optional[dict] = None):
        """The word and character TF-IDF vectorizers (unfitted, or with a stored vocabulary)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vocabulary = self.vocabulary
        word = TfidfVectorizer(analyzer=lambda text: _word_features(text, vocabulary), sublinear_tf=True,
                               vocabulary=word_vocabulary)
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), preprocessor=normalize, sublinear_tf=True,
                               vocabulary=char_vocabulary)
        return word, char

    def index_arrays(self) -> dict[str, np.ndarray]:
        """The fitted ranker as plain arrays (strings, numbers; nothing that needs pickle)."""
        arrays = {"owners": self._owners, "weights": self._weights, "classes": self._classes}
        fitted = (("word", self._word, self._word_matrix), ("char", self._char, self._char_matrix))
        for name, vectorizer, matrix in fitted:
            terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
            matrix = matrix.tocsr()
            arrays.update({f"{name}_terms": np.array(terms, dtype=str), f"{name}_idf": vectorizer.idf_,
                           f"{name}_data": matrix.data, f"{name}_indices": matrix.indices,
                           f"{name}_indptr": matrix.indptr, f"{name}_shape": np.array(matrix.shape)})
        if len(self._classes):
            arrays.update({"intercept": self._intercept, "coef_t": self._coef_t})
        return arrays

    def _restore_index(self, arrays: dict[str, np.ndarray]) -> None:
        from scipy.sparse import csr_matrix

        self._owners, self._weights, self._classes = arrays["owners"], arrays["weights"], arrays["classes"]
        vocabularies, matrices = {}, {}
        for name in ("word", "char"):
            terms = arrays[f"{name}_terms"].tolist()
            vocabularies[name] = dict(zip(terms, range(len(terms))))
            matrices[name] = csr_matrix(
                (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
                shape=tuple(arrays[f"{name}_shape"].tolist()))
        self._word, self._char = self._vectorizers(vocabularies["word"], vocabularies["char"])
        self._word.idf_, self._char.idf_ = arrays["word_idf"], arrays["char_idf"]
        self._word_matrix, self._char_matrix = matrices["word"], matrices["char"]
        if len(self._classes):
            self._intercept, self._coef_t = arrays["intercept"], arrays["coef_t"]

    def _probabilities(self, query_features) -> np.ndarray:
        """The classifier's probability per entry: softmax of the linear scores (multinomial), or
        for two entries the logistic of the one score (as sklearn's predict_proba)."""
        probabilities = np.zeros(len(self.entries))
        logits = np.asarray(query_features @ self._coef_t).ravel() + self._intercept
        if len(self._classes) == 2:
            positive = 1.0 / (1.0 + np.exp(-logits[0]))
            probabilities[self._classes] = [1.0 - positive, positive]
            return probabilities
        logits = np.exp(logits - logits.max())
        probabilities[self._classes] = logits / logits.sum()
        return probabilities

    def _scores(self, query: str) -> np.ndarray:
        word_query, char_query = self._word.transform([query]), self._char.transform([query])
        similarity = (0.5 * (self._word_matrix @ word_query.T).toarray().ravel()
                      + 0.5 * (self._char_matrix @ char_query.T).toarray().ravel()) * self._weights
        nearest = np.zeros(len(self.entries))
        np.maximum.at(nearest, self._owners, similarity)
        if not len(self._classes):
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
        question = question_part(query)
        base = self._scores(query)
        if question is not None and names_a_topic(question) \
                and float(self._scores(question).max()) >= SPECIFIC_QUESTION:
            base = self._scores(" ".join([query, *[question] * QUESTION_REPEAT]))
        base = base - UNKNOWN_WORD_PENALTY * self.unknown_share(query)
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
        return self._in_scope(scored, named or partnership)[:limit]

    def for_partnership(self, entry: Entry, partnership: Optional[str]) -> Entry:
        """The partnership's own version of ``entry`` (Entry.variant_of), else ``entry`` itself."""
        if not partnership or entry.is_general or partnership in entry.partnerships:
            return entry
        return self._variants.get((entry.id, partnership), entry)

    def _in_scope(self, matches: list[Match], partnership: Optional[str]) -> list[Match]:
        """Matches with each entry replaced by the partnership's version, keeping the best score of each:
        an Amsterdam mentor asking who to tell about a sick student gets the Amsterdam route."""
        if not partnership or not self._variants:
            return matches
        kept: dict[str, Match] = {}
        for match in matches:
            entry = self.for_partnership(match.entry, partnership)
            if entry.id not in kept:
                kept[entry.id] = Match(entry, match.score)
        return list(kept.values())

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

    def mentions(self, phrase: str) -> bool:
        """Whether anything the knowledge base says (an entry's question, phrasings, terms, answer or
        'more', a partnership's name) contains the normalized ``phrase`` as whole words."""
        return f" {phrase} " in self._all_text

    @cached_property
    def _all_text(self) -> str:
        parts = [text for entry in self.entries
                 for text in (entry.question, *entry.examples, *entry.terms, entry.answer, entry.more or "")]
        parts += [p.title for p in self.partnerships.values()] + [n for p in self.partnerships.values() for n in p.names]
        return f" {' '.join(normalize(part) for part in parts)} "

    # --- rendering --------------------------------------------------------------------

    def source_line(self, entry: Entry) -> str:
        """The short source under an answer in the chat ("Bron: Rolbeschrijvingen SONH 2024-2025.")."""
        if entry.source == "algemeen":
            return "Bron: algemene informatie, nog niet gecontroleerd door je partnerschap."
        line = f"Bron: {self.sources[entry.source.document].short}"
        return line + (" (nog niet gecontroleerd door je partnerschap)." if entry.review else ".")

    def full_source_line(self, entry: Entry) -> str:
        """The whole provenance, document title and section, for "Meer hierover"."""
        if entry.source == "algemeen":
            return self.source_line(entry)
        source = self.sources[entry.source.document]
        line = f"Bron: {source.title}" + (f", {entry.source.section}." if entry.source.section else ".")
        if entry.review:
            line += " Wordt nog gecontroleerd door je partnerschap."
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


# --- the stored ranker -------------------------------------------------------------------


def index_key(directory: Path) -> str:
    """Changes whenever the ranker could: a knowledge file, this module, or the numeric libraries."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"format {INDEX_FORMAT}\n".encode())
    for package in ("numpy", "scipy", "scikit-learn"):
        digest.update(f"{package} {version(package)}\n".encode())
    digest.update(Path(__file__).read_bytes())
    for path in sorted(directory.glob("*.yml")):
        digest.update(f"\n{path.name} {path.stat().st_size}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_index(path: Path, key: str, entries: int) -> Optional[dict[str, np.ndarray]]:
    """The stored ranker arrays when ``path`` holds them for ``key``; None when missing, stale or broken."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                log.info("knowledge index %s is stale (knowledge or code changed)", path)
                return None
            arrays = {name: stored[name] for name in stored.files if name != "key"}
        if len(arrays["owners"]) and int(arrays["owners"].max()) >= entries:
            raise ValueError("owners beyond the entries")
        return arrays
    except FileNotFoundError:
        log.info("knowledge index %s not found", path)
    except Exception as exc:  # a truncated or foreign file is refitted, never trusted
        log.warning("knowledge index %s unreadable (%s), fitting it again", path, type(exc).__name__)
    return None


def write_index(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Store atomically (a concurrent reader sees the old file or the new one); a read-only
    install (production) only logs, the ranker then is fitted at every start."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".knowledge_index-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, key=np.array(key), **arrays)
            os.chmod(temporary, 0o644)  # mkstemp makes it 0600; the service user must read it
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        log.warning("knowledge index not stored in %s (%s); run `make install` to store it", path,
                    type(exc).__name__)


@lru_cache(maxsize=4)
def _load_cached(directory: str, index_file: Optional[Path]) -> KnowledgeBase:
    return KnowledgeBase.load(Path(directory), index_file=index_file)


def load_knowledge(directory: Optional[Path] = None, index_file: Optional[Path] = INDEX_FILE) -> KnowledgeBase:
    """The knowledge base in ``directory`` (default: settings), loaded once per process, its ranker
    from ``index_file`` when that is up to date."""
    return _load_cached(str(directory or get_settings().knowledge_dir), index_file)


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m bot.knowledge [INDEX_FILE]` (`make install`): validate the knowledge base and store
    its fitted ranker, unless the stored one is up to date."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bot.knowledge", description=main.__doc__.splitlines()[0])
    parser.add_argument("index_file", nargs="?", type=Path, default=INDEX_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    try:
        kb = KnowledgeBase.load(get_settings().knowledge_dir, index_file=args.index_file)
    except KnowledgeError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    print(f"knowledge index ready: {args.index_file} ({len(kb.entries)} entries, {elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
