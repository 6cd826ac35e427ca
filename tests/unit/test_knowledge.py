"""The knowledge base: every shipped file validates; mistakes are reported by file, entry and field;
questions find the right entry; partnership scoping; sources on every answer; the stored ranker
(issue 17) ranks like a fresh fit and is refitted when a knowledge file changes."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot.knowledge import KnowledgeBase, KnowledgeError, load_knowledge

ROOT = Path(__file__).resolve().parents[2]
KNOWLEDGE = ROOT / "knowledge"
REQUIRED_ROLES = {"mentor", "slb", "schoolopleider", "coordinerend_schoolopleider", "schoolleider",
                  "instituutsopleider", "coordinerend_instituutsopleider", "programmaleider", "bestuurder",
                  "stuurgroep", "stagebureau", "tandem"}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    """The shipped knowledge base, validated, with its ranker from build/ (fitted once if stale)."""
    return load_knowledge(KNOWLEDGE)


def make_kb(tmp_path: Path, entries: list[dict]) -> Path:
    folder = tmp_path / "knowledge"
    folder.mkdir()
    shutil.copy(KNOWLEDGE / "sources.yml", folder)
    shutil.copy(KNOWLEDGE / "partnerships.yml", folder)
    (folder / "test.yml").write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    return folder


def entry(**overrides) -> dict:
    base = {"id": "rol.test", "kind": "role", "question": "Wat doet de test?", "examples": ["wat doet test", "test taken"],
            "answer": "De test test.", "source": {"document": "nh-rolbeschrijvingen-2024", "section": "Mentor"},
            "partnerships": ["noord-holland"], "review": False}
    base.update(overrides)
    return base


def test_knowledge_every_shipped_file_loads(kb):
    assert len(kb.entries) >= 60
    assert len({e.id for e in kb.entries}) == len(kb.entries)


def test_knowledge_covers_every_role_and_kind(kb):
    role_entries = {role for e in kb.entries if e.kind == "role" for role in e.roles}
    assert REQUIRED_ROLES <= role_entries
    kinds = {e.kind for e in kb.entries}
    assert {"role", "task", "requirement", "hours", "phase", "glossary", "contact", "training"} <= kinds


def test_knowledge_general_content_is_marked_for_review(kb):
    for e in kb.entries:
        if e.source == "algemeen":
            assert e.review, e.id


def test_knowledge_hours_name_their_partnership(kb):
    hours = [e for e in kb.entries if e.kind == "hours"]
    assert hours
    for e in hours:
        assert "Noord-Holland" in e.answer or "Noord-Holland" in kb.source_line(e), e.id


def test_knowledge_mistake_names_file_entry_and_field(tmp_path):
    folder = make_kb(tmp_path, [entry(kind="rol")])
    with pytest.raises(KnowledgeError, match=r"test\.yml: entry 'rol\.test': field kind"):
        KnowledgeBase.load(folder)


def test_knowledge_unknown_source_document_is_rejected(tmp_path):
    folder = make_kb(tmp_path, [entry(source={"document": "verzonnen", "section": "x"})])
    with pytest.raises(KnowledgeError, match="source.document"):
        KnowledgeBase.load(folder)


def test_knowledge_algemeen_without_review_is_rejected(tmp_path):
    folder = make_kb(tmp_path, [entry(source="algemeen", review=False)])
    with pytest.raises(KnowledgeError, match="review"):
        KnowledgeBase.load(folder)


def test_knowledge_duplicate_id_is_rejected(tmp_path):
    folder = make_kb(tmp_path, [entry(), entry()])
    with pytest.raises(KnowledgeError, match="duplicate"):
        KnowledgeBase.load(folder)


def test_knowledge_contact_entry_needs_a_contact(tmp_path):
    folder = make_kb(tmp_path, [entry(id="contact.x", kind="contact")])
    with pytest.raises(KnowledgeError, match="contact"):
        KnowledgeBase.load(folder)


def test_knowledge_new_entry_is_found_without_code(tmp_path):
    folder = make_kb(tmp_path, [
        entry(),
        entry(id="taak.koffie", kind="task", question="Wie zet de koffie?", examples=["wie zet er koffie", "koffie zetten wie"]),
    ])
    found = KnowledgeBase.load(folder).search("wie moet de koffie zetten")
    assert found[0].entry.id == "taak.koffie"


def test_knowledge_answer_says_when_figures_come_from_another_partnership(kb):
    hours = next(e for e in kb.entries if e.kind == "hours" and "noord-holland" in e.partnerships)
    assert "Let op" not in kb.answer(hours, "noord-holland").text
    assert "Let op" in kb.answer(hours, "amsterdam").text


def test_knowledge_source_line_is_short_and_names_document(kb):
    """On a phone the source line stays one short line; the full title and section are behind 'meer'."""
    sourced = [e for e in kb.entries if e.source != "algemeen"]
    for e in sourced:
        line = kb.source_line(e)
        assert line.startswith("Bron: ") and kb.sources[e.source.document].short in line, e.id
        assert e.source.section not in line, e.id
        assert len(line) <= 90, (e.id, line)
    nh = next(e for e in sourced if e.source.document == "nh-rolbeschrijvingen-2024" and not e.review)
    assert kb.source_line(nh) == "Bron: Rolbeschrijvingen SONH 2024-2025."


def test_knowledge_full_source_line_names_title_and_section(kb):
    sourced = next(e for e in kb.entries if e.source != "algemeen" and e.source.section)
    full = kb.full_source_line(sourced)
    assert kb.sources[sourced.source.document].title in full and sourced.source.section in full


def test_knowledge_review_false_without_section_is_rejected(tmp_path):
    folder = make_kb(tmp_path, [entry(source={"document": "nh-rolbeschrijvingen-2024", "section": ""})])
    with pytest.raises(KnowledgeError, match=r"test\.yml: entry 'rol\.test': .*source.*section"):
        KnowledgeBase.load(folder)
    (tmp_path / "2").mkdir()
    folder = make_kb(tmp_path / "2", [entry(source={"document": "nh-rolbeschrijvingen-2024"})])
    with pytest.raises(KnowledgeError, match=r"test\.yml: entry 'rol\.test': .*section"):
        KnowledgeBase.load(folder)


def test_knowledge_review_true_may_cite_a_document_without_section(tmp_path):
    folder = make_kb(tmp_path, [entry(source={"document": "nh-rolbeschrijvingen-2024"}, review=True)])
    assert KnowledgeBase.load(folder).by_id["rol.test"].review


def test_knowledge_review_false_needs_a_seed_document(tmp_path):
    folder = make_kb(tmp_path, [entry(source={"document": "praktijkgids", "section": "Stage"})])
    sources = yaml.safe_load((folder / "sources.yml").read_text(encoding="utf-8"))
    sources.append({"id": "praktijkgids", "title": "Praktijkgids", "short": "Praktijkgids", "partnership": "amsterdam"})
    (folder / "sources.yml").write_text(yaml.safe_dump(sources, allow_unicode=True), encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"test\.yml: entry 'rol\.test': field source.document: 'praktijkgids' "
                                             r"is not a seed document"):
        KnowledgeBase.load(folder)


def test_knowledge_mentor_gets_the_version_of_their_own_partnership(tmp_path):
    nh = entry(id="contact.ziek", kind="contact", question="Wie laat ik weten dat mijn student ziek is?",
               examples=["mijn student is ziek wie moet dat weten", "ziekmelding stagiair"],
               contact={"role": "slb", "prepare": "x"})
    ams = entry(id="contact.ziek-ams", kind="contact", question="Wie laat ik in Amsterdam weten dat mijn student ziek is?",
                examples=["student ziek amsterdam wie", "ziekmelding stagiair amsterdam"],
                contact={"role": "schoolopleider", "prepare": "x"}, partnerships=["amsterdam"],
                source={"document": "amsterdam-rolbeschrijving-mentor", "section": "Mentor"}, variant_of=["contact.ziek"])
    kb = KnowledgeBase.load(make_kb(tmp_path, [nh, ams]))
    question = "mijn student is ziek, wie moet dat weten"
    assert kb.search(question)[0].entry.id == "contact.ziek"
    assert kb.search(question, partnership="amsterdam")[0].entry.id == "contact.ziek-ams"
    assert [m.entry.id for m in kb.search(question, partnership="amsterdam")].count("contact.ziek-ams") == 1
    assert kb.for_partnership(kb.by_id["contact.ziek-ams"], "noord-holland").id == "contact.ziek"
    # a partnership named in the question counts, not the mentor's own
    assert kb.search("student ziek amsterdam wie", partnership="noord-holland")[0].entry.id == "contact.ziek-ams"
    assert kb.search(question, partnership="isop")[0].entry.id == "contact.ziek"  # no ISOP version


def test_knowledge_variant_of_must_name_another_partnerships_entry(tmp_path):
    folder = make_kb(tmp_path, [entry(), entry(id="rol.test2", variant_of=["rol.test"])])
    with pytest.raises(KnowledgeError, match=r"entry 'rol\.test2': field variant_of: 'rol\.test' must belong"):
        KnowledgeBase.load(folder)
    (tmp_path / "2").mkdir()
    folder = make_kb(tmp_path / "2", [entry(variant_of=["rol.weg"])])
    with pytest.raises(KnowledgeError, match="variant_of: unknown id 'rol.weg'"):
        KnowledgeBase.load(folder)


def test_knowledge_every_unreviewed_entry_cites_a_seed_section(kb):
    for e in kb.entries:
        if not e.review:
            assert e.source != "algemeen" and e.source.section, e.id
            assert kb.sources[e.source.document].seed, e.id


def test_knowledge_partnership_is_recognised_in_free_text(kb):
    assert kb.match_partnership("ik werk bij Samen Opleiden Noord-Holland") == "noord-holland"
    assert kb.match_partnership("wij vallen onder iselinge") == "isop"
    assert kb.match_partnership("ik werk op een school in A'dam-Noord") == "amsterdam"
    assert kb.match_partnership("wij zitten in het Amsterdamse partnerschap") == "amsterdam"
    assert kb.match_partnership("een Noord-Hollandse opleidingsschool") == "noord-holland"
    assert kb.match_partnership("ik werk in Utrecht") is None


def test_knowledge_glossary_terms_are_found_in_text(kb):
    terms = {e.terms[0].lower() for e in kb.glossary_in("Bespreek het LBF en de WPA met je student")}
    assert {"lbf", "wpa"} <= terms or any("lbf" in t for t in terms)


def test_knowledge_default_loader_uses_settings(kb):
    assert len(load_knowledge().entries) == len(kb.entries)


def test_knowledge_vocabulary_makes_variants_match_each_other(tmp_path):
    folder = make_kb(tmp_path, [
        entry(id="rol.so", question="Wat doet de schoolopleider?", examples=["taken schoolopleider", "wat doet de schoolopleider"]),
        entry(id="rol.io", question="Wat doet de instituutsopleider?", examples=["taken instituutsopleider", "wat doet de instituutsopleider"]),
    ])
    (folder / "vocabulary.yml").write_text(
        "- term: schoolopleider\n  variants: [so, schoolopleidster]\n", encoding="utf-8")
    kb = KnowledgeBase.load(folder)
    assert kb.vocabulary.terms_in("wat doet de so") == ["schoolopleider"]
    assert kb.vocabulary.terms_in("wat doet de sociale kaart") == []  # whole words only
    assert kb.search("taken van onze schoolopleidster")[0].entry.id == "rol.so"


def test_knowledge_vocabulary_mistake_is_reported(tmp_path):
    folder = make_kb(tmp_path, [entry()])
    (folder / "vocabulary.yml").write_text("- term: so\n  varianten: [x]\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="vocabulary.yml.*varianten"):
        KnowledgeBase.load(folder)


def test_knowledge_phase_named_in_question_beats_wording_of_another_phase(kb):
    assert kb.vocabulary.phases_in("ik heb een 2e jaars") == ["jaar2"]
    found = kb.search("wat is normaal voor een 2e jaars student in de klas", "ask_study_phase")
    assert "jaar2" in found[0].entry.phases


def test_knowledge_partnership_named_in_question_scopes_the_entry(kb):
    for partnership in ("noord-holland", "amsterdam"):
        found = kb.search(f"wat zijn de eisen om mentor te worden in {partnership}", "ask_knowledge")
        assert found[0].entry.kind == "requirement" and partnership in found[0].entry.partnerships


def test_no_evaluation_question_is_a_knowledge_base_phrasing(kb):
    """`make eval` only measures something if its questions were not learned: a phrasing copied from
    tests/eval into an entry's examples would make that question count as understood."""
    def plain(text: str) -> str:
        return " ".join(text.lower().strip(" ?!.").split())

    phrasings = {plain(text): e.id for e in kb.entries for text in [e.question, *e.examples]}
    leaked = [
        (path.name, case["text"])
        for path in sorted((ROOT / "tests/eval").glob("questions*.yml"))
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))
        if plain(case["text"]) in phrasings
    ]
    assert leaked == []


def test_knowledge_words_it_never_saw_lower_every_score(kb, monkeypatch):
    """'verlofuren' occurs in no phrasing or answer: the question is probably not about the knowledge base."""
    from bot import knowledge

    question = "hoeveel verlofuren heeft een leerkracht"
    assert kb.unknown_share("hoeveel uur krijg ik als mentor") == 0.0
    assert kb.unknown_share(question) > 0.2
    penalised = kb.search(question)[0]
    monkeypatch.setattr(knowledge, "UNKNOWN_WORD_PENALTY", 0.0)
    plain = next(m for m in kb.search(question, limit=len(kb.entries)) if m.entry.id == penalised.entry.id)
    assert penalised.score < plain.score - 0.1


# --- the stored ranker: fitted at install time, never inside a turn (issue 17) ---------------

INDEX_QUESTIONS = ["wie zet de koffie", "kopieerapparaat kapot", "wanneer is het rooster klaar", "koffie rooster",
                   "waterpokken", ""]


def index_folder(tmp_path: Path, count: int = 3) -> Path:
    topics = [("koffie", "Wie zet de koffie?", ["wie zet er koffie", "koffie zetten wie"]),
              ("kopieren", "Wat doe ik als het kopieerapparaat kapot is?",
               ["kopieerapparaat stuk", "printer doet het niet"]),
              ("rooster", "Wanneer is het rooster klaar?", ["rooster komt wanneer", "wanneer weet ik mijn rooster"])]
    return make_kb(tmp_path, [entry(id=f"taak.{name}", kind="task", question=question, examples=examples)
                              for name, question, examples in topics[:count]])


@pytest.fixture
def fits(monkeypatch) -> list:
    """Records every fit of a ranker."""
    calls: list = []
    original = KnowledgeBase._build_index

    def counted(self):
        calls.append(len(self.entries))
        original(self)

    monkeypatch.setattr(KnowledgeBase, "_build_index", counted)
    return calls


def ranking(kb: KnowledgeBase, question: str) -> list[tuple[str, float]]:
    return [(m.entry.id, m.score) for m in kb.search(question, limit=len(kb.entries))]


@pytest.mark.parametrize("count", [2, 3])  # two entries: logistic; more: softmax
def test_knowledge_index_ranks_like_a_fresh_fit_without_fitting(tmp_path, fits, count):
    folder = index_folder(tmp_path, count)
    index = tmp_path / "build" / "knowledge_index.npz"
    fresh = KnowledgeBase.load(folder, index_file=index)
    assert index.exists() and fits == [count]
    stored = KnowledgeBase.load(folder, index_file=index)
    assert fits == [count]  # read, not fitted again
    for question in INDEX_QUESTIONS:
        assert ranking(stored, question) == ranking(fresh, question), question
        assert stored.unknown_share(question) == fresh.unknown_share(question)


def test_knowledge_index_holds_only_plain_arrays(tmp_path):
    index = tmp_path / "knowledge_index.npz"
    KnowledgeBase.load(index_folder(tmp_path), index_file=index)
    with np.load(index, allow_pickle=False) as stored:  # raises on anything that needs pickle
        assert all(stored[name].dtype != object for name in stored.files)


def test_knowledge_index_changed_knowledge_file_is_refitted(tmp_path, fits):
    folder = index_folder(tmp_path, 2)
    index = tmp_path / "knowledge_index.npz"
    KnowledgeBase.load(folder, index_file=index)
    entries = yaml.safe_load((folder / "test.yml").read_text(encoding="utf-8"))
    entries.append(entry(id="taak.fiets", kind="task", question="Waar zet ik mijn fiets?",
                         examples=["fietsenstalling waar", "waar kan de fiets staan"]))
    (folder / "test.yml").write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    changed = KnowledgeBase.load(folder, index_file=index)
    assert fits == [2, 3]
    assert changed.search("waar is de fietsenstalling")[0].entry.id == "taak.fiets"
    KnowledgeBase.load(folder, index_file=index)
    assert fits == [2, 3]  # the refitted ranker was stored


def test_knowledge_index_changed_vocabulary_is_refitted(tmp_path, fits):
    folder = index_folder(tmp_path, 2)
    index = tmp_path / "knowledge_index.npz"
    KnowledgeBase.load(folder, index_file=index)
    (folder / "vocabulary.yml").write_text("- term: koffie\n  variants: [bakkie]\n", encoding="utf-8")
    KnowledgeBase.load(folder, index_file=index)
    assert fits == [2, 2]


def test_knowledge_index_unreadable_file_is_refitted_and_replaced(tmp_path, fits):
    folder = index_folder(tmp_path)
    index = tmp_path / "knowledge_index.npz"
    index.write_bytes(b"PK\x03\x04 not really a zip file")
    assert KnowledgeBase.load(folder, index_file=index).search("wie zet de koffie")[0].entry.id == "taak.koffie"
    KnowledgeBase.load(folder, index_file=index)
    assert fits == [3]


def test_knowledge_index_unwritable_location_still_loads(tmp_path):
    blocker = tmp_path / "read-only"
    blocker.write_text("a file where the index folder should be")
    kb = KnowledgeBase.load(index_folder(tmp_path), index_file=blocker / "knowledge_index.npz")
    assert kb.search("wie zet de koffie")[0].entry.id == "taak.koffie"
