"""The mentorscan over a real Rasa server + action server (REST), checked against the database."""
from __future__ import annotations

import itertools
import uuid

import httpx

from sqlalchemy import create_engine, text

from tests.integration.servers import Servers

TOTAL_ITEMS = 37


def stored_answers(servers: Servers, sender: str) -> dict[str, str]:
    engine = create_engine(f"sqlite:///{servers.workdir / 'mentorwijzer.db'}", future=True)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT a.item_id, a.value FROM answers a JOIN scan_runs r ON r.id = a.run_id "
            "JOIN identities i ON i.mentor_id = r.mentor_id WHERE i.sender_id = :sender"), {"sender": sender})
        result = {item_id: value for item_id, value in rows}
    engine.dispose()
    return result


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def question_of(messages: list[dict]) -> dict | None:
    """The bot message that asks a scan question ('Vraag N van 37')."""
    return next((m for m in messages if "Vraag " in (m.get("text") or "") and " van " in m.get("text", "")), None)


def new_sender() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def test_scan_complete_through_buttons_stores_every_answer(servers):
    sender = new_sender()
    messages = servers.say(sender, "/start_scan")  # the help menu's button
    assert "5 minuten" in texts(messages)
    assert "geen antwoord" not in texts(messages)  # starting is not a (missing) answer
    question = question_of(messages)
    assert question is not None and "Vraag 1 van 37" in question["text"]
    sent = {}
    for _ in range(TOTAL_ITEMS):
        if question is None:
            break
        number = question["text"].split("Vraag ", 1)[1].split(" ", 1)[0]
        if question.get("buttons"):
            payload = question["buttons"][-1]["payload"]  # '5' on likert, 'ja' on yes/no
        else:
            payload = "Ik wil beter leren doseren in mijn feedback."
        sent[number] = payload
        messages = servers.say(sender, payload)
        question = question_of(messages)
    answers = stored_answers(servers, sender)
    assert len(answers) == TOTAL_ITEMS
    assert answers["1.1.a"] == "5" and answers["2.1.a"] == "ja"
    assert answers["3.a"] == "Ik wil beter leren doseren in mijn feedback."
    final = texts(messages)
    assert "Klaar" in final and "gemiddelde" in final.lower()
    assert any((m.get("image") or "").startswith("data:image/png;base64,") for m in messages)


def test_scan_logs_contain_no_message_text_or_answers(servers):
    """Privacy: after a full scan (previous test) no goal text, sender id or typed text is logged."""
    sender = new_sender()
    servers.say(sender, "ik wil de mentorscan invullen")
    servers.say(sender, "helemaal mee eens")
    logs = "".join((servers.workdir / name).read_text(errors="replace") for name in ("actions.log", "rasa.log"))
    assert "scan answer stored" in logs  # our own log lines are there ...
    for secret in ("doseren in mijn feedback", "helemaal mee eens", "mentorscan invullen", sender):
        assert secret not in logs  # ... but never what the mentor typed, nor who they are


def test_scan_typed_answers_nonsense_and_correction(servers):
    sender = new_sender()
    servers.say(sender, "scan starten")
    messages = servers.say(sender, "vier")
    assert "Vraag 2 van 37" in texts(messages)
    messages = servers.say(sender, "blablabla paarse olifant")
    reply = texts(messages)
    assert "Vraag 2 van 37" in reply and "1 tot en met 5" in reply
    messages = servers.say(sender, "helemaal mee eens")
    assert "Vraag 3 van 37" in texts(messages)
    messages = servers.say(sender, "ga verder met de scan")  # while already in the scan
    assert "Vraag 3 van 37" in texts(messages)
    messages = servers.say(sender, "terug")
    assert "Vraag 2 van 37" in texts(messages)
    servers.say(sender, "2")
    answers = stored_answers(servers, sender)
    assert answers == {"1.1.a": "4", "1.1.b": "2"}


def test_scan_dont_know_explains_the_scale(servers):
    sender = new_sender()
    servers.say(sender, "ik wil de mentorscan invullen")
    reply = texts(servers.say(sender, "weet ik niet"))
    assert "Kies 3" in reply or "Twijfel" in reply
    assert "Vraag 1 van 37" in reply
    assert stored_answers(servers, sender) == {}


def test_scan_knowledge_question_midway_then_resumes(servers):
    sender = new_sender()
    servers.say(sender, "ik wil de mentorscan invullen")
    servers.say(sender, "3")
    messages = servers.say(sender, "wat doet een schoolopleider eigenlijk?")
    reply = texts(messages)
    assert "Bron:" in reply
    assert "Vraag 2 van 37" in reply
    assert stored_answers(servers, sender) == {"1.1.a": "3"}


def test_scan_pause_and_resume_after_restart(servers):
    sender = new_sender()
    servers.say(sender, "ik wil de mentorscan invullen")
    for answer in ("1", "2", "3"):
        servers.say(sender, answer)
    reply = texts(servers.say(sender, "pauze"))
    assert "3 antwoorden" in reply
    servers.stop()
    servers.start()
    reply = texts(servers.say(sender, "ga verder met de scan"))
    assert "Vraag 4 van 37" in reply
    servers.say(sender, "4")
    assert stored_answers(servers, sender) == {"1.1.a": "1", "1.1.b": "2", "1.1.c": "3", "1.1.d": "4"}


def test_scan_restart_of_both_servers_midway_loses_nothing(servers):
    sender = new_sender()
    servers.say(sender, "ik wil de mentorscan invullen")
    answers = itertools.cycle(["1", "2", "3", "4", "5"])
    question = None
    for _ in range(12):
        question = question_of(servers.say(sender, next(answers)))
    assert "Vraag 13 van 37" in question["text"]
    servers.stop()
    servers.start()
    # The conversation is still in the scan's loop: the next message answers question 13.
    messages = []
    for number in range(13, TOTAL_ITEMS + 1):
        assert f"Vraag {number} van 37" in question["text"]
        messages = servers.say(sender, question["buttons"][0]["payload"] if question.get("buttons") else "geen")
        question = question_of(messages)
        if number < TOTAL_ITEMS:
            assert question is not None, f"no question after answer {number}"
    assert len(stored_answers(servers, sender)) == TOTAL_ITEMS
    assert "Klaar" in texts(messages)


def test_scan_ends_with_a_short_new_session_and_results_on_request(servers):
    """After the last answer a new session starts (issue 17): later turns do not carry the scan."""
    sender = new_sender()
    question = question_of(servers.say(sender, "/start_scan"))
    while question is not None:
        messages = servers.say(sender, question["buttons"][0]["payload"] if question.get("buttons") else "geen")
        question = question_of(messages)
    assert "Klaar" in texts(messages)
    tracker = httpx.get(f"{servers.rasa_url}/conversations/{sender}/tracker",
                        params={"token": servers.api_token}).json()
    kinds = [e["event"] for e in tracker["events"]]  # the API shows every session
    last_session = len(kinds) - 1 - kinds[::-1].index("session_started")
    assert last_session > kinds.index("session_started") and len(kinds) - last_session < 10
    assert any("Klaar" in (e.get("text") or "") for e in tracker["events"][:last_session])
    assert tracker["active_loop"] in ({}, None) or not tracker["active_loop"].get("name")
    assert "Bron:" in texts(servers.say(sender, "wat doet een schoolopleider eigenlijk?"))
    assert "gemiddelde" in texts(servers.say(sender, "mijn resultaten")).lower()
    assert "Goed om te weten" not in texts(messages)  # no second first-contact notice


def test_scan_events_per_answer_are_few(servers):
    """One call of the scan's loop action (scan_form) per answer: no slots, no validation or ask actions."""
    sender = new_sender()
    servers.say(sender, "ik wil de mentorscan invullen")
    before = len(httpx.get(f"{servers.rasa_url}/conversations/{sender}/tracker", params={"token": servers.api_token}).json()["events"])
    for answer in ("1", "2", "3", "4"):
        servers.say(sender, answer)
    events = httpx.get(f"{servers.rasa_url}/conversations/{sender}/tracker", params={"token": servers.api_token}).json()["events"][before:]
    kinds = [e["event"] for e in events]
    assert "slot" not in kinds
    assert [e["name"] for e in events if e["event"] == "action"] == ["scan_form", "action_listen"] * 4
