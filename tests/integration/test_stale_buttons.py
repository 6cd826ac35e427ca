"""Buttons of an earlier question (issue 17): they never answer the question that is open now.

Scan buttons name their item (bot/scan.py ``button_payload``); a press on an old Telegram keyboard or
an old Teams card is refused with an explanation and nothing is stored. The Telegram bridge also
takes the keyboard off the previous question when it sends a new one.
"""
from __future__ import annotations

import json
import uuid

import httpx
import pytest

from bot import scan
from bot.channels import telegram
from bot.identity import teams_sender
from tests.integration.fake_telegram import FakeRasa, FakeTelegram
from tests.integration.test_scan_conversation import stored_answers
from tests.integration.test_teams import APP_ID, TENANT, activity, rasa_with_teams  # noqa: F401 (fixture)
from tests.integration.test_telegram import polling, settings_for

USER = 5151  # not the USER of test_telegram.py: the session's Rasa is shared


def question(item_id: str, number: int) -> dict:
    """A scan question as Rasa sends it over REST."""
    return {"text": f"Vraag {number} van 37", "buttons": [
        {"title": f"{value}", "payload": scan.button_payload(item_id, value)} for value in ("1", "2", "3", "4", "5")]}


@pytest.fixture
async def fake_telegram():
    fake = await FakeTelegram().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_rasa():
    fake = await FakeRasa().start()
    yield fake
    await fake.stop()


@pytest.fixture
def real_servers(request):
    """The session's real Rasa + action server, or a skip when there is no trained model yet."""
    from tests.integration.servers import MODEL

    if not MODEL.exists():
        pytest.skip(f"no trained Rasa model at {MODEL} (run `make train`)")
    return request.getfixturevalue("servers")


def with_keyboard(fake: FakeTelegram, text: str) -> list[dict]:
    """The stored messages with ``text`` in it that still carry a keyboard, oldest first."""
    return [m for m in fake.messages.values() if text in m.get("text", "") and "reply_markup" in m]


async def test_telegram_new_question_removes_the_previous_question_keyboard(fake_telegram, fake_rasa):
    fake_rasa.replies.extend([[question("1.1.a", 1)], [question("1.1.b", 2)]])
    application = telegram.build_application(settings_for(fake_telegram, fake_rasa.url))
    async with polling(application):
        await fake_telegram.push(fake_telegram.message_update(USER, "mentorscan"))
        await fake_telegram.wait_for("sendMessage", where=lambda p: "Vraag 1" in p["text"])
        first = with_keyboard(fake_telegram, "Vraag 1")[0]
        await fake_telegram.push(fake_telegram.message_update(USER, "4"))  # answered by typing
        await fake_telegram.wait_for("editMessageReplyMarkup")
    edit = fake_telegram.params("editMessageReplyMarkup")[0]
    assert edit["message_id"] == first["message_id"] and not edit.get("reply_markup")
    assert with_keyboard(fake_telegram, "Vraag 1") == []
    assert len(with_keyboard(fake_telegram, "Vraag 2")) == 1


async def test_telegram_other_keyboards_stay_when_a_question_follows(fake_telegram, fake_rasa):
    menu = {"text": "Meer weten?", "buttons": [{"title": "Meer hierover", "payload": "/ask_more"}]}
    fake_rasa.replies.extend([[menu], [question("1.1.a", 1)]])
    application = telegram.build_application(settings_for(fake_telegram, fake_rasa.url))
    async with polling(application):
        await fake_telegram.push(fake_telegram.message_update(USER, "wat doet een schoolopleider"))
        await fake_telegram.wait_for("sendMessage", where=lambda p: "reply_markup" in p)
        await fake_telegram.push(fake_telegram.message_update(USER, "mentorscan"))
        await fake_telegram.wait_for("sendMessage", where=lambda p: "Vraag 1" in p["text"])
    assert fake_telegram.params("editMessageReplyMarkup") == []
    assert len(with_keyboard(fake_telegram, "Meer weten?")) == 1


async def test_telegram_stale_button_mid_scan_stores_nothing_and_says_why(real_servers, fake_telegram):
    """A keyboard the bridge no longer knows (sent before a restart) is pressed while question 2 is open."""
    servers = real_servers
    settings = settings_for(fake_telegram, servers.rasa_url, channel_secret=servers.channel_secret)
    async with polling(telegram.build_application(settings)):
        await fake_telegram.push(fake_telegram.message_update(USER, "/start scan"))
        await fake_telegram.wait_for("sendMessage", where=lambda p: "Vraag 1 van" in p["text"], timeout=60)
    old = with_keyboard(fake_telegram, "Vraag 1 van")[0]
    pressed = old["reply_markup"]["inline_keyboard"][0][0]["callback_data"]  # '1' for question 1
    assert pressed == scan.button_payload("1.1.a", "1")

    async with polling(telegram.build_application(settings)):  # the bridge restarted in between
        await fake_telegram.push(fake_telegram.message_update(USER, "4"))
        await fake_telegram.wait_for("sendMessage", where=lambda p: "Vraag 2 van" in p["text"], timeout=60)
        await fake_telegram.push(fake_telegram.callback_update(USER, old, pressed))
        refusal = await fake_telegram.wait_for("sendMessage", where=lambda p: "eerdere vraag" in p["text"], timeout=60)
        await fake_telegram.wait_for("sendMessage", count=2, where=lambda p: "Vraag 2 van" in p["text"], timeout=60)
    assert refusal[0]["text"] == scan.STALE_EARLIER
    assert len(fake_telegram.params("answerCallbackQuery")) == 1
    assert stored_answers(servers, telegram.sender_id(USER)) == {"1.1.a": "4"}
    assert len(with_keyboard(fake_telegram, "Vraag 2 van")) == 1  # the re-asked question's keyboard only


def test_teams_stale_card_button_mid_scan_stores_nothing_and_says_why(rasa_with_teams):  # noqa: F811
    """Teams cards stay clickable: pressing question 1's card while question 2 is open is refused."""
    running, bf = rasa_with_teams
    url = f"{running.rasa_url}/webhooks/teams/webhook"
    mentor = f"aad-{uuid.uuid4().hex[:12]}"
    user = {"id": f"29:{mentor}", "name": "Juf Test", "aadObjectId": mentor}
    conversation = f"a:{uuid.uuid4().hex}"

    def deliver(**fields) -> list[str]:
        """One activity; returns what the bot posted back, as JSON text per activity."""
        before = len(bf.posted())
        body = activity(bf, conversation=conversation, **{"from": user}, **fields)
        reply = httpx.post(url, json=body, headers={"Authorization": f"Bearer {bf.token(APP_ID)}"}, timeout=60)
        assert reply.status_code == 200
        return [json.dumps(p.body, ensure_ascii=False) for p in bf.wait_for(before + 1, timeout=30)[before:]]

    def press(item_id: str, value: str) -> list[str]:
        """What Teams sends for a messageBack card action (bot/channels/teams.py card_action)."""
        payload = scan.button_payload(item_id, value)
        return deliver(text=payload, value={"payload": payload})

    deliver(text="/start_scan")
    assert any("Vraag 2 van 37" in posted for posted in press("1.1.a", "4"))
    replies = press("1.1.a", "1")  # question 1's card, still in the chat
    sender = teams_sender(TENANT, mentor)
    assert stored_answers(running, sender) == {"1.1.a": "4"}
    assert any(scan.STALE_EARLIER in posted for posted in replies)
    assert any("Vraag 2 van 37" in posted for posted in replies)
