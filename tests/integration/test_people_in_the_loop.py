"""People in the loop through the real servers: a mentor forwards a question (after consent), the
schoolopleider is notified and answers in chat, and the answer reaches the mentor proactively on
Telegram (a fake Bot API on 127.0.0.1, sent by the action server itself) or, over REST, first thing
in the reply to the mentor's next message; exactly once. Plus feedback and the operator's CLI."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.fake_telegram import TOKEN, FakeTelegram
from tests.integration.servers import Servers

BIN = Path(sys.executable).parent
SCHOOL = "De Regenboog"


def cli(servers: Servers, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MENTORWIJZER_DB_URL": f"sqlite:///{servers.workdir / 'mentorwijzer.db'}",
           "MENTORWIJZER_VAR_DIR": str(servers.workdir / "var"), **servers.env}
    return subprocess.run([str(BIN / "mentorwijzer"), *args], env=env, capture_output=True, text=True, timeout=120)


def texts(messages: list[dict]) -> list[str]:
    return [m.get("text") or "" for m in messages]


def titles(messages: list[dict]) -> list[str]:
    return [b["title"] for m in messages for b in m.get("buttons") or []]


def register_staff(servers: Servers, sender: str, metadata: dict | None = None) -> None:
    done = cli(servers, "staff", "add", "--name", "Anna de Vries", "--email", "anna@regenboog.nl",
               "--school", SCHOOL)
    assert done.returncode == 0, done.stderr
    code = done.stdout.split("link code: ")[1].split()[0]
    reply = servers.say(sender, f"mijn code is {code}", metadata)
    assert "account als schoolopleider" in texts(reply)[-1]


def forward(servers: Servers, sender: str, question: str, metadata: dict | None = None) -> list[dict]:
    servers.say(sender, f"ik werk op {SCHOOL}", metadata)
    servers.say(sender, question, metadata)
    preview = servers.say(sender, "/forward_question", metadata)
    assert f"“{question}”" in texts(preview)[-1] and "Anna de Vries" in texts(preview)[-1]
    assert titles(preview) == ["Versturen", "Aanpassen", "Annuleren"]
    return servers.say(sender, "versturen", metadata)


@pytest.fixture
async def telegram():
    fake = await FakeTelegram().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def telegram_servers(tmp_path, telegram):
    servers = Servers(tmp_path, env={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": telegram.base_url})
    await asyncio.to_thread(servers.start)
    yield servers
    await asyncio.to_thread(servers.stop)


async def test_telegram_question_and_answer_are_delivered_proactively_once(telegram, telegram_servers):
    servers = telegram_servers
    metadata = {"channel": "telegram"}
    say = lambda sender, text: asyncio.to_thread(servers.say, sender, text, metadata)  # noqa: E731
    await asyncio.to_thread(register_staff, servers, "tg-900", metadata)

    sent = await asyncio.to_thread(forward, servers, "tg-500", "Mag mijn student mee op schoolkamp?", metadata)
    assert "Verstuurd naar Anna de Vries" in texts(sent)[-1]

    # the schoolopleider hears about it in her own Telegram chat, with a button to answer
    [notice] = await telegram.wait_for("sendMessage", where=lambda p: p["chat_id"] == 900)
    assert "Mag mijn student mee op schoolkamp?" in notice["text"]
    [[button]] = notice["reply_markup"]["inline_keyboard"]
    assert button["text"] == "Beantwoorden"

    prompt = await say("tg-900", button["callback_data"])
    assert "Typ je antwoord" in texts(prompt)[-1]
    done = await say("tg-900", "Ja, als de stagedagen kloppen.")
    assert "Verstuurd naar de mentor" in texts(done)[-1]

    [answer] = await telegram.wait_for("sendMessage", where=lambda p: p["chat_id"] == 500)
    assert "Ja, als de stagedagen kloppen." in answer["text"] and "Anna de Vries" in answer["text"]
    keys = [key["text"] for row in answer["reply_markup"]["inline_keyboard"] for key in row]
    assert keys == ["👍 Ja", "👎 Nee"]

    # the mentor's next message does not bring the answer a second time, and nothing else arrives twice
    later = await say("tg-500", "hoi")
    assert not any("Ja, als de stagedagen kloppen." in text for text in texts(later))
    await asyncio.sleep(1)
    assert len(telegram.params("sendMessage")) == 2
    listed = json.loads((await asyncio.to_thread(cli, servers, "questions", "list", "--format", "json")).stdout)
    assert [(q["status"], q["answer"]) for q in listed] == [("answered", "Ja, als de stagedagen kloppen.")]
    # neither server logged the question, the answer, the staff member's name or a chat id
    logs = (servers.workdir / "actions.log").read_text() + (servers.workdir / "rasa.log").read_text()
    for secret in ("schoolkamp", "stagedagen", "Anna de Vries", "tg-500", "tg-900", TOKEN):
        assert secret not in logs


def test_rest_answer_comes_before_the_reply_to_the_next_message(servers):
    register_staff(servers, "rest-staff-1")
    forward(servers, "rest-mentor-1", "Telt een schoolkamp mee als stage-uren?")
    opened = servers.say("rest-staff-1", "open vragen")
    assert any("Telt een schoolkamp mee als stage-uren?" in text for text in texts(opened))
    listed = json.loads(cli(servers, "questions", "list", "--status", "open", "--format", "json").stdout)
    [mine] = [q for q in listed if q["question"] == "Telt een schoolkamp mee als stage-uren?"]

    answered = cli(servers, "questions", "answer", str(mine["id"]), "Ja, de uren tellen mee.")
    assert answered.returncode == 0, answered.stderr
    again = cli(servers, "questions", "answer", str(mine["id"]), "Nog een antwoord")
    assert again.returncode == 1 and "not open" in again.stderr

    reply = servers.say("rest-mentor-1", "hoi")
    assert "Ja, de uren tellen mee." in texts(reply)[0] and "Had je hier iets aan?" in texts(reply)[0]
    assert "Hoi!" in texts(reply)[-1]  # and then the reply to "hoi" itself
    assert not any("Ja, de uren tellen mee." in text for text in texts(servers.say("rest-mentor-1", "hoi")))

    # 👎 on the person's answer: asked once what was missing, and offered to ask again
    down = servers.say("rest-mentor-1", f'/vote_down{{"kb_entry":"vraag:{mine["id"]}"}}')
    assert "Wat miste je?" in texts(down)[-1]
    thanks = servers.say("rest-mentor-1", "of het ook voor de LIO geldt")
    assert "doorsturen" in texts(thanks)[-1]
    data = servers.say("rest-mentor-1", "/show_my_data")
    assert "1 beoordeling(en)" in texts(data)[0] and "1 vraag/vragen" in texts(data)[0]


def test_cancel_sends_nothing_and_a_mentor_cannot_answer_questions(servers):
    register_staff(servers, "rest-staff-2")
    servers.say("rest-mentor-2", f"ik werk op {SCHOOL}")
    servers.say("rest-mentor-2", "mag mijn student een week eerder stoppen met de stage?")
    servers.say("rest-mentor-2", "/forward_question")
    cancelled = servers.say("rest-mentor-2", '/forward_question{"confirm":"nee"}')
    assert texts(cancelled)[-1] == "Oké, ik stuur niets door."
    listed = json.loads(cli(servers, "questions", "list", "--format", "json").stdout)
    assert not any("een week eerder stoppen" in q["question"] for q in listed)

    forward(servers, "rest-mentor-3", "Mag mijn student een dag ruilen?")
    [question] = [q for q in json.loads(cli(servers, "questions", "list", "--format", "json").stdout)
                  if q["question"] == "Mag mijn student een dag ruilen?"]
    # another mentor presses an answer button they were never given
    refused = servers.say("rest-mentor-2", f'/answer_question{{"question_id":"{question["id"]}"}}')
    assert "niet aan jou gesteld" in texts(refused)[-1]
    servers.say("rest-mentor-2", "Nee, dat mag niet.")
    [still] = [q for q in json.loads(cli(servers, "questions", "list", "--format", "json").stdout)
               if q["id"] == question["id"]]
    assert still["status"] == "open" and still["answer"] is None


def test_a_knowledge_answer_has_feedback_buttons_and_typing_on_is_never_blocked(servers):
    reply = servers.say("rest-mentor-4", "wat zijn mijn taken als mentor?")
    assert titles(reply)[-2:] == ["👍 Nuttig", "👎 Niet nuttig"]
    down = [b["payload"] for b in reply[-1]["buttons"] if b["title"] == "👎 Niet nuttig"][0]
    servers.say("rest-mentor-4", down)
    # instead of saying what was missing the mentor presses another button: handled as that button
    scan = servers.say("rest-mentor-4", "/start_scan")
    assert any("Vraag 1 van 37" in text for text in texts(scan))
