"""The questionnaire engine: YAML questionnaires, free-text parsing, progress, results, chapters."""
from __future__ import annotations

import pytest
import yaml

from bot.questionnaire import (
    MAX_PAYLOAD_BYTES,
    Questionnaire,
    QuestionnaireError,
    available_questionnaires,
    load_questionnaire,
    loadable_questionnaires,
    match_questionnaire,
    parse_answer,
    results,
    start_payload,
)
from bot.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def scan() -> Questionnaire:
    return load_questionnaire("mentorscan")


@pytest.fixture(scope="module")
def evaluation() -> Questionnaire:
    return load_questionnaire("evaluatie-mentortraining")


def all_answers(q: Questionnaire, likert: str = "4", yes_no: str = "ja") -> dict[str, str]:
    answers = {}
    for item in q.items:
        scale = q.scale_of(item)
        if scale is None:
            answers[item.id] = "beter feedback geven"
        elif scale.type == "likert5":
            answers[item.id] = likert
        elif scale.type == "yes_no":
            answers[item.id] = yes_no
        else:
            answers[item.id] = scale.options[0].value
    return answers


def test_questionnaire_mentorscan_has_the_seed_structure(scan):
    types = [scan.scale_of(i).type if i.scale else i.type for i in scan.items]
    assert len(scan.items) == 37
    assert types.count("likert5") == 25 and types.count("yes_no") == 11 and types.count("open_text") == 1
    counts = {s.id: len(s.items) for s in scan.sections}
    assert counts == {"1.1": 7, "1.2": 4, "1.3": 4, "1.4": 1, "1.5": 5, "1.6": 3, "1.7": 1,
                      "2.1": 4, "2.2": 4, "2.3": 3, "3": 1}
    assert scan.item("1.1.a").text == "bevestigen"


def test_questionnaire_sections_map_to_training_chapters(scan):
    chapters = {s.id: s.chapter.id for s in scan.sections if s.chapter}
    assert chapters == {"1.1": "5.1", "1.2": "5.1", "1.3": "5.2", "1.4": "5.2", "1.5": "4.4", "1.6": "5.2",
                        "1.7": "5.3", "2.1": "3", "2.2": "4", "2.3": "6"}


def test_questionnaire_evaluation_form_runs_on_the_same_engine(evaluation):
    assert [i.id for i in evaluation.items] == [str(n) for n in range(1, 22)]
    first = evaluation.item("1")
    assert evaluation.scale_of(first).multiple
    assert parse_answer(evaluation, first, "1, 3").value.count(",") == 1
    assert parse_answer(evaluation, evaluation.item("12"), "voldoende").value == "voldoende"
    assert parse_answer(evaluation, evaluation.item("19"), "te hoog").value == "te_hoog"
    assert parse_answer(evaluation, evaluation.item("10"), "De rollenspellen").value == "De rollenspellen"


@pytest.mark.parametrize("typed, expected", [
    ("4", "4"), ("vier", "4"), ("eens", "4"), ("helemaal mee eens", "5"), ("5!", "5"), ("doe maar 3", "3"),
    ("helemaal oneens", "1"), ("oneens", "2"), ("niet eens, niet oneens", "3"), ("klopt", "4"),
    ("4 · eens", "4"), ("neutraal", "3"), ("meestal wel", "4"), ("af en toe", "3"), ("zelden", "2"),
    ("doe maar een vier", "4"), ("vier denk ik", "4"), ("ik geef het een 4", "4"), ("daar ben ik het helemaal mee eens", "5"),
    ("agree", "4"),
])
def test_questionnaire_parses_typed_likert_answers(scan, typed, expected):
    parsed = parse_answer(scan, scan.item("1.1.a"), typed)
    assert (parsed.status, parsed.value) == ("ok", expected)


@pytest.mark.parametrize("typed, expected", [
    ("ja", "ja"), ("ja hoor", "ja"), ("klopt", "ja"), ("jazeker", "ja"), ("nee hoor", "nee"), ("nee", "nee"),
    ("nog niet", "nee"), ("zeker niet", "nee"), ("ken ik wel", "ja"), ("doe ik niet", "nee"),
])
def test_questionnaire_parses_typed_yes_no_answers(scan, typed, expected):
    parsed = parse_answer(scan, scan.item("2.1.a"), typed)
    assert (parsed.status, parsed.value) == ("ok", expected)


@pytest.mark.parametrize("typed", ["", "   ", "paarse olifant", "7", "3 of 4", "🙂", "'; DROP TABLE answers; --"])
def test_questionnaire_rejects_nonsense_with_a_hint(scan, typed):
    parsed = parse_answer(scan, scan.item("1.1.a"), typed)
    assert parsed.status == "invalid" and parsed.hint


@pytest.mark.parametrize("typed", ["dat laatste antwoord klopt niet", "terug naar vraag 3",
                                   "ik bedoelde 4 bij de vorige vraag", "wat betekent eens hier"])
def test_questionnaire_does_not_read_a_request_as_an_answer(scan, typed):
    """A scale word or number inside a request ('terug', 'uitleg') is not stored as an answer."""
    assert parse_answer(scan, scan.item("1.1.a"), typed).status == "invalid"


def test_questionnaire_dont_know_is_not_an_answer(scan):
    assert parse_answer(scan, scan.item("1.1.a"), "weet ik niet").status == "dont_know"
    assert parse_answer(scan, scan.item("2.2.b"), "geen idee").status == "dont_know"


def test_questionnaire_yes_no_rejects_a_number(scan):
    assert parse_answer(scan, scan.item("2.1.a"), "4").status == "invalid"


def test_questionnaire_next_item_and_progress(scan):
    answers = {"1.1.a": "3", "1.1.b": "4"}
    item = scan.next_item(answers)
    assert item.id == "1.1.c"
    assert scan.progress(item) == (3, 37)
    assert scan.previous_item(answers, item).id == "1.1.b"
    assert scan.next_item(all_answers(scan)) is None


def test_questionnaire_results_lowest_section_and_chapters(scan):
    answers = all_answers(scan)
    for item in scan.section_of("1.5.a").items:
        answers[item.id] = "2"
    answers["2.3.b"] = "nee"
    result = results(scan, answers)
    assert [r.section.id for r in result.lowest] == ["1.5"]
    assert result.lowest[0].average == 2.0
    assert [c.id for c in result.chapters] == ["4.4", "6"]
    assert [i.id for i in result.no_items] == ["2.3.b"]
    assert result.open_answers == {"3.a": "beter feedback geven"}


def test_questionnaire_invalid_file_names_the_problem(tmp_path, monkeypatch):
    folder = tmp_path / "knowledge" / "questionnaires"
    folder.mkdir(parents=True)
    (folder / "kapot.yml").write_text(yaml.safe_dump({"id": "kapot", "version": 1, "title": "x",
        "source": {"document": "d", "section": "s"}, "intro": "i", "scales": {},
        "sections": [{"id": "1", "part": "p", "items": [{"id": "1.a", "text": "t", "scale": "bestaat_niet"}]}]}))
    monkeypatch.setenv("MENTORWIJZER_KNOWLEDGE_DIR", str(tmp_path / "knowledge"))
    from bot.settings import get_settings

    get_settings.cache_clear()
    assert available_questionnaires() == ["kapot"]
    with pytest.raises(QuestionnaireError, match="bestaat_niet"):
        load_questionnaire("kapot")


# --- starting in chat: the `start:` block ---------------------------------------------------


@pytest.mark.parametrize("typed, expected", [
    ("het evaluatieformulier graag", "evaluatie-mentortraining"),  # a compound the keyword begins
    ("evalutie invullen", "evaluatie-mentortraining"),  # a typo
    ("de vragenlijst over de training", "evaluatie-mentortraining"),
    ("zelfevaluatie invullen", "mentorscan"),  # not the evaluation: 'evaluatie' only matches at the start
    ("ik wil mezelf evalueren als mentor", "mentorscan"),
    ("ik wil de mentorscan doen voor de training", "mentorscan"),
    ("een vragenlijst over mijn begeleiding", "mentorscan"),
    ("vragenlijst invullen", None),  # names none: the caller starts the mentorscan
    ("/start_scan", None),  # a button payload is not a typed request
    ("", None),
])
def test_questionnaire_start_keywords_name_a_questionnaire(typed, expected):
    assert match_questionnaire(typed) == expected


def test_questionnaire_start_button_defaults_to_the_title(evaluation):
    assert evaluation.start_button == ("Evaluatie mentortraining invullen", start_payload("evaluatie-mentortraining"))
    bare = Questionnaire.parse_obj({**evaluation.dict(exclude={"start"}), "title": "Terugblik"})
    assert bare.start_button == ("Terugblik invullen", start_payload(evaluation.id))
    assert start_payload("mentorscan") == '/start_scan{"questionnaire":"mentorscan"}'


def test_questionnaire_id_must_fit_a_button_and_be_the_file_name(tmp_path, monkeypatch, evaluation):
    data = evaluation.dict()
    with pytest.raises(ValueError, match="too long"):
        Questionnaire.parse_obj({**data, "id": "x" * MAX_PAYLOAD_BYTES})
    with pytest.raises(ValueError, match="lower-case"):
        Questionnaire.parse_obj({**data, "id": "Evaluatie 2"})
    with pytest.raises(ValueError, match="shared by every questionnaire"):
        Questionnaire.parse_obj({**data, "start": {"intents": ["start_scan"]}})
    folder = tmp_path / "knowledge" / "questionnaires"
    folder.mkdir(parents=True)
    (folder / "terugblik.yml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("MENTORWIJZER_KNOWLEDGE_DIR", str(tmp_path / "knowledge"))
    from bot.settings import get_settings

    get_settings.cache_clear()
    with pytest.raises(QuestionnaireError, match="must be the file name"):
        load_questionnaire("terugblik")
    assert loadable_questionnaires() == []  # skipped with a warning, never a crash in chat


def test_questionnaire_own_start_intents_have_a_domain_entry_and_rules_in_and_outside_the_scan():
    """An intent in `start.intents` needs what the README's "Adding an intent" says; the generic start_scan needs nothing."""
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    intents = {i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]}
    rules = yaml.safe_load((PROJECT_ROOT / "data" / "rules" / "mentorscan.yml").read_text(encoding="utf-8"))["rules"]
    starts = {}
    for rule in rules:
        steps = rule["steps"]
        if steps[0].get("intent") and steps[1:2] == [{"action": "action_start_scan"}]:
            starts.setdefault(steps[0]["intent"], set()).add(bool(rule.get("condition")))
    own = [intent for q in loadable_questionnaires() for intent in q.start.intents]
    assert own == ["start_evaluation"]
    for intent in own + ["start_scan"]:
        assert intent in intents and starts.get(intent) == {False, True}, intent
