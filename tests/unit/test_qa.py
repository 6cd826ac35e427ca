"""Answering: the right entry with its source, suggestions when unsure, honesty when unknown,
follow-ups, and the real person at the mentor's school from the imported directory."""
from __future__ import annotations

import pytest

from bot import contacts, qa, storage
from bot.knowledge import names_a_topic, question_part


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


def test_qa_answer_shows_the_short_source_and_more_the_full_one():
    """On a phone the answer ends with a short source line; 'Meer hierover' names the document and section."""
    kb = qa.load_knowledge()
    entry = kb.by_id["taak.nagesprek"]
    answer = qa.render_entry(kb, entry, profile=(None, None)).messages[0].text
    assert answer.endswith("Bron: Rolbeschrijvingen SONH 2024-2025.")
    assert entry.source.section not in answer
    full = qa.more(entry.id).messages[0].text
    assert kb.sources[entry.source.document].title in full and entry.source.section in full


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


# --- long messages, escalation, unknown terms (issue 15) --------------------------------------


def test_qa_long_message_question_sentence_outweighs_its_context():
    text = ("Mijn stagiaire is een zij-instromer met jaren werkervaring in de zorg. Ervaring voor de klas heeft ze "
            "nog weinig. Welke begeleidingshouding wordt er van mij verwacht?")
    assert question_part(text) == "Welke begeleidingshouding wordt er van mij verwacht?"
    assert answered(qa.answer_question(text, intent="ask_knowledge")).id == "taak.houding"


@pytest.mark.parametrize("question, named", [
    ("Wie moet ik dit laten weten?", False), ("Who else should be involved?", False),
    ("Wat is nu de volgende stap?", False), ("Wie regelt de vervanging?", True), ("Hoeveel uur krijg ik?", True),
])
def test_qa_a_vague_question_names_no_topic_so_the_context_decides(question, named):
    assert names_a_topic(question) is named


def test_qa_question_part_is_none_for_a_single_question():
    assert question_part("wat doet de schoolopleider?") is None
    assert question_part("wat doet de schoolopleider? en de io?") is None


@pytest.mark.parametrize("text, involved", [
    ("Ik heb het al met de schoolopleider besproken, maar het helpt niet.", {"schoolopleider"}),
    ("de so weet ervan, wie nu?", {"schoolopleider"}),
    ("Samen met mijn schoolopleidster hebben we een plan gemaakt.", {"schoolopleider"}),
    ("The schoolopleider already knows, who is next?", {"schoolopleider"}),
    ("Ik ben al bij de directeur geweest.", {"schoolleider"}),
    ("De coördinerend schoolopleider is ingelicht.", {"coordinerend_schoolopleider"}),
    ("Ik heb nog met niemand overlegd. Moet ik de schoolopleider inlichten?", set()),
    ("Ik heb de so nog niet ingelicht.", set()),
    ("De schoolopleider was er ook bij en gaf een onvoldoende.", set()),
    ("Moet de schoolopleider op de hoogte zijn?", set()),
    ("De so heeft al twee keer meegekeken en de io is er ook bij geweest.", {"schoolopleider", "instituutsopleider"}),
    ("I mentioned it to the schoolopleider, nothing changed.", {"schoolopleider"}),
    ("De schoolopleider is al extra komen kijken en heeft beeldbegeleiding ingezet.", {"schoolopleider"}),
    ("De schoolopleider en de instituutsopleider hebben als tandem al bemiddeld.",
     {"schoolopleider", "instituutsopleider", "tandem"}),
    ("de slb'er van mn student weet al dat ze achterloopt", {"slb", "student"}),
    ("de schoolopleider weet er ook van.", {"schoolopleider"}),
    ("Onze schoolopleider weet ook niet wanneer de training start.", {"schoolopleider"}),
    ("Our schoolopleider couldn't reach her either.", {"schoolopleider"}),
    ("De schoolopleider is morgen jarig.", set()),
    ("Wie weet of de schoolopleider er is?", set()),
    ("Ik weet niet of ik de schoolopleider moet inlichten.", set()),
    ("Eerlijk gezegd weet ik niet of de schoolopleider dit moet horen.", set()),
    ("De instituutsopleider komt volgende week komen kijken.", set()),
])
def test_qa_involved_roles_reads_who_already_knows(text, involved):
    assert qa.involved_roles(text, qa.load_knowledge()) == involved


def test_qa_every_escalation_in_the_contact_data_is_the_next_step():
    """Generic: for each contact entry, a mentor who already involved its first contact gets its escalation."""
    kb = qa.load_knowledge()
    escalating = [e for e in kb.entries if e.contact is not None and e.contact.escalation]
    assert escalating
    for entry in escalating:
        first = qa.role_phrase(entry.contact.role)
        text = f"Ik heb {first} al ingelicht, maar het is niet opgelost. {entry.question}"
        reply = qa.with_escalation(kb, qa.render_entry(kb, entry, profile=(None, None)), entry, text)
        assert reply.escalated_to == entry.contact.escalation, entry.id
        lead = reply.messages[0].text
        assert qa.ROLE_LABELS[entry.contact.escalation] in lead and "al ingeschakeld" in lead
        payloads = [payload for message in reply.messages for _, payload in message.buttons]
        assert "/ask_contact_person" not in payloads  # 'Wie is dat bij ons?' asks for the next step's person
        if "Wie is dat bij ons?" in [title for message in reply.messages for title, _ in message.buttons]:
            assert f'/ask_contact_person{{"role": "{entry.contact.escalation}"}}' in payloads


def test_qa_long_escalation_question_names_the_next_step():
    text = ("Mijn tweedejaars maakt al maanden geen vooruitgang in haar lessen. De schoolopleider heb ik al op de "
            "hoogte gebracht en we hebben samen feedback gegeven. Wie kan ik er nu nog bij betrekken?")
    reply = qa.answer_question(text, intent="ask_who_to_contact")
    entry = answered(reply)
    assert entry.contact is not None and entry.contact.role == "schoolopleider"
    assert reply.escalated_to == entry.contact.escalation is not None
    assert "volgende stap" in reply.messages[0].text


def test_qa_no_escalation_when_the_first_contact_does_not_know_yet():
    reply = qa.answer_question("Mijn stagiair maakt geen vooruitgang. Ik heb het nog met niemand besproken. "
                               "Wie moet ik inlichten?", intent="ask_who_to_contact")
    assert answered(reply).kind == "contact" and reply.escalated_to is None
    assert "volgende stap" not in reply.messages[0].text


def test_qa_involved_first_contact_without_escalation_data_says_so_honestly():
    kb = qa.load_knowledge()
    entry = next(e for e in kb.entries if e.contact is not None and not e.contact.escalation)
    text = f"Ik heb {qa.role_phrase(entry.contact.role)} al gemaild. {entry.question}"
    reply = qa.with_escalation(kb, qa.render_entry(kb, entry, profile=(None, None)), entry, text)
    assert reply.escalated_to is None and "niet in mijn informatie" in reply.messages[0].text


def test_qa_no_escalation_to_someone_who_already_knows_too():
    kb = qa.load_knowledge()
    entry = next(e for e in kb.entries if e.contact is not None and e.contact.escalation)
    text = (f"Ik heb {qa.role_phrase(entry.contact.role)} en {qa.role_phrase(entry.contact.escalation)} al "
            f"ingelicht. {entry.question}")
    reply = qa.with_escalation(kb, qa.render_entry(kb, entry, profile=(None, None)), entry, text)
    assert reply.escalated_to is None and "niet in mijn informatie" in reply.messages[0].text


def test_qa_contact_person_for_a_named_role(tmp_path):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("school,role,name,email,partnership\n"
                        "De Regenboog,instituutsopleider,Ivo Voorbeeld,i.voorbeeld@example.org,noord-holland\n")
    contacts.import_csv(csv_file)
    qa.set_profile("mentor-5", "rest", "ik werk op De Regenboog")
    reply = qa.contact_person("mentor-5", "contact.stagnatie", role="instituutsopleider")
    assert "Ivo Voorbeeld" in reply.messages[0].text


@pytest.mark.parametrize("text, term", [
    ("wat betekent IKC?", "IKC"),
    ("Wat is een groepsplan eigenlijk?", "groepsplan"),
    ("waar staat PDCA voor", "PDCA"),
    ("what does ikc mean?", "ikc"),
    ("wat bedoelen ze met een ontwikkelingsperspectief", "ontwikkelingsperspectief"),
])
def test_qa_unknown_term_is_named_and_the_schoolopleider_offered(text, term):
    for reply in (qa.answer_question(text, intent="ask_knowledge"),
                  qa.answer_instead_of_follow_up("ask_meaning", text),
                  qa.answer_instead_of_follow_up("out_of_scope", text, confidence=0.6)):
        assert reply.outcome == "unknown" and reply.unknown_term == term
        assert f"‘{term}’" in reply.messages[0].text and "schoolopleider" in reply.messages[0].text
        assert qa.FORWARD_OFFER in reply.messages[0].buttons


@pytest.mark.parametrize("text", ["wat betekent dat?", "wat is de rol van de so", "wat is het weer morgen",
                                  "wat is een lbf", "wat betekent werkplekassessment"])
def test_qa_not_an_unknown_term(text):
    assert qa.unknown_term(text, qa.load_knowledge()) is None


def test_qa_sure_out_of_scope_takes_only_explicit_meaning_questions_as_terms():
    assert qa.answer_instead_of_follow_up("out_of_scope", "wat is een lekker recept", confidence=0.99) is None
    reply = qa.answer_instead_of_follow_up("out_of_scope", "wat betekent IKC", confidence=0.99)
    assert reply.unknown_term == "IKC"


def test_qa_known_glossary_term_is_still_explained():
    assert answered(qa.answer_instead_of_follow_up("ask_meaning", "wat betekent pop?")).kind == "glossary"
