"""Answering: the right entry with its source, suggestions when unsure, honesty when unknown,
follow-ups, and the real person at the mentor's school from the imported directory."""
from __future__ import annotations

import pytest

from bot import contacts, qa, storage


def answered(reply: qa.Reply):
    assert reply.outcome == "answer", reply
    return qa.load_knowledge().by_id[reply.entry_id]


@pytest.mark.parametrize("question, role", [
    ("wie moet ik contacten als mijn student stagneert?", "schoolopleider"),
    ("er is een incident gebeurd met mijn stagiaire, wie moet ik bellen", "schoolopleider"),
    ("mijn student loopt studievertraging op, bij wie moet ik zijn", "slb"),
    ("met wie neem ik contact op over onstage", "stagebureau"),
])
def test_qa_who_to_contact_routes_to_the_right_role(question, role):
    entry = answered(qa.answer_question(question, intent="ask_who_to_contact"))
    assert entry.kind == "contact" and entry.contact.role == role


def test_qa_answer_ends_with_its_source():
    reply = qa.answer_question("wat doet een schoolopleider", intent="ask_knowledge")
    assert "Bron: " in reply.messages[-1].text


@pytest.mark.parametrize("question", [
    "wat voor weer wordt het dit weekend", "hoeveel verdient een leraar in schaal L11", "ik heb hoofdpijn wat moet ik nemen",
    "xkcd qwerty asdf", "hoeveel verlofuren heeft een leerkracht met een volledige baan",
])
def test_qa_unknown_questions_are_not_answered_from_the_knowledge_base(question):
    reply = qa.answer_question(question, intent="ask_knowledge")
    assert reply.outcome != "answer"


def test_qa_dont_know_points_to_the_schoolopleider():
    reply = qa.dont_know()
    assert "schoolopleider" in reply.messages[0].text and "weet ik niet" in reply.messages[0].text.lower()


def test_qa_button_payload_answers_that_exact_entry():
    kb = qa.load_knowledge()
    some = kb.entries[5]
    assert qa.answer_question("", entry_id=some.id).entry_id == some.id


def test_qa_more_gives_the_longer_text_or_related_entries():
    kb = qa.load_knowledge()
    with_more = next(e for e in kb.entries if e.more)
    assert with_more.more.strip()[:40] in qa.more(with_more.id).messages[0].text
    assert "Waarover" in qa.more(None).messages[0].text


def test_qa_contact_person_from_the_directory(tmp_path):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("school,role,name,email,partnership\n"
                        "De Regenboog,schoolopleider,Fenna Voorbeeld,f.voorbeeld@example.org,noord-holland\n")
    assert contacts.import_csv(csv_file) == 1
    reply = qa.set_profile("mentor-1", "rest", "ik werk op De Regenboog")
    assert "De Regenboog" in reply.messages[0].text
    answer = qa.answer_question("wie moet ik contacten als mijn student stagneert?", intent="ask_who_to_contact",
                                sender_id="mentor-1")
    assert "Fenna Voorbeeld (f.voorbeeld@example.org)" in answer.messages[0].text
    follow_up = qa.contact_person("mentor-1", answer.entry_id)
    assert "Fenna Voorbeeld" in follow_up.messages[0].text


def test_qa_contact_person_without_school_asks_where_you_work():
    entry_id = qa.answer_question("wie moet ik contacten als mijn student stagneert?", intent="ask_who_to_contact").entry_id
    assert "op welke school" in qa.contact_person("mentor-2", entry_id).messages[0].text


def test_qa_partnership_is_remembered_and_scopes_answers():
    qa.set_profile("mentor-3", "rest", "ik werk bij samen opleiden amsterdam")
    with storage.session_scope() as session:
        assert storage.find_mentor(session, "mentor-3").partnership == "amsterdam"
    reply = qa.answer_question("hoeveel uur krijg ik als mentor per semester", intent="ask_knowledge", sender_id="mentor-3")
    assert "Noord-Holland" in reply.messages[0].text


def test_qa_contacts_import_rejects_bad_rows_and_imports_nothing(tmp_path):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("school,role,name,email\n"
                        "De Regenboog,schoolopleider,Fenna,f@example.org\n"
                        "De Regenboog,toverfee,Kees,kees@example.org\n"
                        "De Regenboog,slb,Anna,geen-mail\n")
    with pytest.raises(contacts.ContactsError) as error:
        contacts.import_csv(csv_file)
    assert "line 3" in str(error.value) and "line 4" in str(error.value)
    assert qa.directory_people("De Regenboog", "schoolopleider") == []


def test_qa_unsure_nlu_split_over_knowledge_intents_still_answers():
    ranking = [{"name": "nlu_fallback", "confidence": 0.45}, {"name": "ask_study_phase", "confidence": 0.4},
               {"name": "ask_knowledge", "confidence": 0.3}, {"name": "greet", "confidence": 0.05}]
    assert qa.kb_intent_when_unsure(ranking) == "ask_study_phase"
    entry = answered(qa.answer_unsure("wat kan een eerstejaars al in de klas", ranking))
    assert entry.kind == "phase"


def test_qa_unsure_nlu_offers_a_weak_match_and_answers_a_strong_one(monkeypatch):
    ranking = [{"name": "nlu_fallback", "confidence": 0.45}, {"name": "greet", "confidence": 0.3},
               {"name": "ask_knowledge", "confidence": 0.1}]
    assert qa.kb_intent_when_unsure(ranking) is None
    assert answered(qa.answer_unsure("wat is een lbf", ranking)).id == "begrip.lbf"
    monkeypatch.setattr(qa, "STRONG_MATCH", 1.01)  # every match counts as weak now
    reply = qa.answer_unsure("wat is een lbf", ranking)
    assert reply.outcome == "suggest" and "Bedoel je dit?" in reply.messages[0].text
    assert reply.messages[0].buttons[0][1] == qa.entry_payload(qa.load_knowledge().by_id["begrip.lbf"])
