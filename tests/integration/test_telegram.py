"""The Telegram bridge against a fake Bot API and a fake (or, last test, real) Rasa, all on 127.0.0.1."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
from contextlib import asynccontextmanager
from typing import AsyncIterator

import httpx
import pytest
from telegram.ext import Application

from bot.channels import telegram
from bot.settings import Settings
from tests.integration.fake_telegram import BOT_USER, TOKEN, FakeRasa, FakeTelegram

USER = 4242
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_rasa() -> AsyncIterator[FakeRasa]:
    fake = await FakeRasa().start()
    yield fake
    await fake.stop()


def settings_for(fake_telegram: FakeTelegram, rasa_url: str, **extra) -> Settings:
    return Settings(db_url="sqlite://", telegram_token=TOKEN, telegram_base_url=fake_telegram.base_url,
                    rasa_url=rasa_url, **extra)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def polling(application: Application) -> AsyncIterator[Application]:
    """What ``run_polling`` does, inside the test's event loop."""
    await application.initialize()
    await application.post_init(application)
    await application.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=telegram.ALLOWED_UPDATES)
    await application.start()
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        await application.post_shutdown(application)
        await application.shutdown()


@pytest.fixture
async def bridge(fake_telegram, fake_rasa) -> AsyncIterator[Application]:
    async with polling(telegram.build_application(settings_for(fake_telegram, fake_rasa.url))) as application:
        yield application


async def say(fake: FakeTelegram, text: str, user: int = USER, **kwargs) -> dict:
    return await fake.push(fake.message_update(user, text, **kwargs))


async def keyboard_message(fake: FakeTelegram) -> dict:
    """The stored message the bot sent with an inline keyboard."""
    params = (await fake.wait_for("sendMessage", where=lambda p: "reply_markup" in p))[0]
    return next(m for m in fake.messages.values() if m.get("reply_markup") == params["reply_markup"])


async def test_telegram_message_reaches_rasa_as_rest_call(fake_telegram, fake_rasa, bridge):
    fake_rasa.replies.append([{"text": "Hoi! Waarmee kan ik je helpen?"}])
    await say(fake_telegram, "wie is mijn contactpersoon")
    body = (await fake_rasa.wait_for())[0]
    assert {k: v for k, v in body.items() if k != "metadata"} == {"sender": f"tg-{USER}", "message": "wie is mijn contactpersoon"}
    assert body["metadata"]["channel"] == "telegram"
    assert body["metadata"]["message_id"].startswith("tg-")  # the update id: re-deliveries are recognised
    sent = (await fake_telegram.wait_for("sendMessage"))[0]
    assert sent["chat_id"] == USER and sent["text"] == "Hoi! Waarmee kan ik je helpen?"
    assert "parse_mode" not in sent
    actions = fake_telegram.params("sendChatAction")
    assert actions and actions[0]["action"] == "typing"
    methods = [name for name, _ in fake_telegram.calls]
    assert methods.index("sendChatAction") < methods.index("sendMessage")


async def test_telegram_commands_registered_at_start(fake_telegram, bridge):
    commands = (await fake_telegram.wait_for("setMyCommands"))[0]["commands"]
    assert [c["command"] for c in commands] == ["start", "help", "scan", "privacy", "stop"]
    assert all(c["description"] for c in commands)
    assert fake_telegram.params("deleteWebhook")  # polling removes a webhook left from before


@pytest.mark.parametrize("text, expected", [
    ("/start scan", "/start_scan"),
    ("/start", "hoi"),
    ("/help", "/help"),
    ("/scan", "/start_scan"),
    ("/privacy", "/ask_privacy"),
    ("/stop", "/pause_scan"),
    (f"/scan@{BOT_USER['username']}", "/start_scan"),
])
async def test_telegram_commands_become_rasa_messages(fake_telegram, fake_rasa, bridge, text, expected):
    await say(fake_telegram, text)
    assert (await fake_rasa.wait_for())[0]["message"] == expected


async def test_telegram_buttons_become_inline_keyboard_and_press_sends_payload(fake_telegram, fake_rasa, bridge):
    fake_rasa.replies.append([{"text": "Vraag 1 van 37", "buttons": [
        {"title": "1 · helemaal oneens", "payload": "1"}, {"title": "5 · helemaal mee eens", "payload": "5"}]}])
    await say(fake_telegram, "scan starten")
    message = await keyboard_message(fake_telegram)
    rows = message["reply_markup"]["inline_keyboard"]
    assert [[b["text"] for b in row] for row in rows] == [["1 · helemaal oneens"], ["5 · helemaal mee eens"]]
    assert rows[1][0]["callback_data"] == "5"

    await fake_telegram.push(fake_telegram.callback_update(USER, message, "5"))
    bodies = await fake_rasa.wait_for(2)
    assert (bodies[1]["sender"], bodies[1]["message"], bodies[1]["metadata"]["channel"]) == (f"tg-{USER}", "5", "telegram")
    assert bodies[1]["metadata"]["message_id"] != bodies[0]["metadata"]["message_id"]
    assert len(await fake_telegram.wait_for("answerCallbackQuery")) == 1
    edit = (await fake_telegram.wait_for("editMessageReplyMarkup"))[0]
    assert edit["message_id"] == message["message_id"] and not edit.get("reply_markup")
    assert "reply_markup" not in fake_telegram.messages[(USER, message["message_id"])]


async def test_telegram_double_press_reaches_rasa_once(fake_telegram, fake_rasa, bridge):
    fake_rasa.replies.append([{"text": "Klopt dat?", "buttons": [{"title": "Ja", "payload": "/affirm"},
                                                                  {"title": "Nee", "payload": "/deny"}]}])
    await say(fake_telegram, "hoi")
    message = await keyboard_message(fake_telegram)
    assert [len(row) for row in message["reply_markup"]["inline_keyboard"]] == [2]  # short titles share a row
    await fake_telegram.push(fake_telegram.callback_update(USER, message, "/affirm"))
    await fake_telegram.push(fake_telegram.callback_update(USER, message, "/affirm"))
    await fake_telegram.wait_for("answerCallbackQuery", 2)
    await say(fake_telegram, "barrière")  # processed after both presses (one mentor: in order)
    await fake_rasa.wait_for(3)
    await asyncio.sleep(0.2)
    assert fake_rasa.messages() == ["hoi", "/affirm", "barrière"]
    assert len(fake_telegram.params("editMessageReplyMarkup")) == 2  # the second found no keyboard to remove


async def test_telegram_long_payload_uses_short_key_and_expires_after_restart(fake_telegram, fake_rasa, bridge):
    payload = '/inform_partnership{"partnership": "samen-opleiden-noord-holland-en-amstelland-extra"}'
    assert len(payload.encode()) > 64
    fake_rasa.replies.append([{"text": "Welk partnerschap?", "buttons": [{"title": "Noord-Holland", "payload": payload}]}])
    await say(fake_telegram, "partnerschap")
    message = await keyboard_message(fake_telegram)
    data = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert len(data.encode()) <= 64 and data != payload
    await fake_telegram.push(fake_telegram.callback_update(USER, message, data))
    assert (await fake_rasa.wait_for(2))[1]["message"] == payload

    unknown = fake_telegram.callback_update(USER, message, "k:0123456789abcdef01234567")
    await fake_telegram.push(unknown)
    answers = await fake_telegram.wait_for("answerCallbackQuery", 2)
    assert answers[1]["text"] == telegram.BUTTON_EXPIRED
    await say(fake_telegram, "barrière")
    await fake_rasa.wait_for(3)
    assert fake_rasa.messages() == ["partnerschap", payload, "barrière"]
    assert len(fake_telegram.params("editMessageReplyMarkup")) == 1


async def test_telegram_long_reply_is_split(fake_telegram, fake_rasa, bridge):
    paragraphs = [f"Alinea {i}: " + "woord " * 300 for i in range(8)]  # ~1.8k characters each
    fake_rasa.replies.append([{"text": "\n\n".join(paragraphs), "buttons": [{"title": "Verder", "payload": "/ask_more"}]}])
    await say(fake_telegram, "vertel alles")
    await keyboard_message(fake_telegram)
    sent = fake_telegram.params("sendMessage")
    assert len(sent) >= 4 and all(len(p["text"]) <= 4096 for p in sent)
    assert all(p["text"].startswith("Alinea") for p in sent)  # cut at paragraph boundaries
    assert [i for i, p in enumerate(sent) if "reply_markup" in p] == [len(sent) - 1]
    assert " ".join(" ".join(p["text"].split()) for p in sent) == " ".join(" ".join(paragraphs).split())


async def test_telegram_data_uri_image_becomes_photo(fake_telegram, fake_rasa, bridge):
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    fake_rasa.replies.append([{"text": "Je grafiek:"}, {"image": data_uri},
                              {"image": "https://example.org/grafiek.png"}])
    await say(fake_telegram, "resultaten")
    photos = await fake_telegram.wait_for("sendPhoto", 2)
    assert photos[0]["photo"]["content"] == PNG and photos[0]["chat_id"] == USER
    assert photos[1]["photo"] == "https://example.org/grafiek.png"


async def test_telegram_export_becomes_document(fake_telegram, fake_rasa, bridge):
    content = json.dumps({"mentor": {"id": "m-1"}, "answers": []}, ensure_ascii=False)
    fake_rasa.replies.append([{"text": "Hier zijn je gegevens."},
                              {"custom": {"type": "export", "filename": "mentorwijzer-gegevens.json", "content": content}}])
    await say(fake_telegram, "mijn gegevens")
    document = (await fake_telegram.wait_for("sendDocument"))[0]["document"]
    assert document["filename"] == "mentorwijzer-gegevens.json"
    assert json.loads(document["content"]) == json.loads(content)


async def test_telegram_group_messages_never_reach_rasa(fake_telegram, fake_rasa, bridge):
    group = -100777
    await say(fake_telegram, "hoi allemaal", chat_type="supergroup", chat_id=group)
    await say(fake_telegram, "/scan", chat_type="group", chat_id=-5)
    await say(fake_telegram, f"@{BOT_USER['username']} wie is mijn contactpersoon?", chat_type="supergroup",
              chat_id=group)
    bot_message = {"message_id": 1, "date": 0, "chat": fake_telegram.chat(group, "supergroup"), "from": BOT_USER,
                   "text": telegram.PRIVATE_ONLY}
    await say(fake_telegram, "oké, en nu?", chat_type="supergroup", chat_id=group, reply_to=bot_message)
    replies = await fake_telegram.wait_for("sendMessage", 3)
    assert [r["text"] for r in replies] == [telegram.PRIVATE_ONLY] * 3
    await say(fake_telegram, "privé")
    await fake_rasa.wait_for(1)
    await asyncio.sleep(0.2)
    assert fake_rasa.messages() == ["privé"]
    assert {r["chat_id"] for r in replies} == {group, -5}
    assert len(fake_telegram.params("sendMessage")) == 4


async def test_telegram_non_text_message_asks_for_text(fake_telegram, fake_rasa, bridge):
    update = fake_telegram.message_update(USER, "")
    del update["message"]["text"]
    update["message"]["sticker"] = {"file_id": "s1", "file_unique_id": "u-s1", "width": 512, "height": 512,
                                    "is_animated": False, "is_video": False, "type": "regular"}
    await fake_telegram.push(update)
    assert (await fake_telegram.wait_for("sendMessage"))[0]["text"] == telegram.TEXT_ONLY
    assert fake_rasa.bodies == []


async def test_telegram_flood_control_retries_message(fake_telegram, fake_rasa, bridge):
    fake_telegram.flood["sendMessage"] = [1]
    fake_rasa.replies.append([{"text": "Even geduld, dit komt er toch."}])
    await say(fake_telegram, "hoi")
    calls = await fake_telegram.wait_for("sendMessage", 2, timeout=10)
    assert [c["text"] for c in calls] == ["Even geduld, dit komt er toch."] * 2
    assert [m.get("text") for m in fake_telegram.messages.values()] == ["Even geduld, dit komt er toch."]


async def test_telegram_rasa_down_gives_apology(fake_telegram):
    application = telegram.build_application(settings_for(fake_telegram, f"http://127.0.0.1:{free_port()}"))
    async with polling(application):
        await say(fake_telegram, "hoi")
        sent = (await fake_telegram.wait_for("sendMessage"))[0]
    assert sent["text"] == telegram.APOLOGY


async def test_telegram_webhook_requires_secret(fake_telegram, fake_rasa):
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    application = telegram.build_application(settings_for(fake_telegram, fake_rasa.url))
    stop = asyncio.Event()
    server = asyncio.create_task(telegram.serve_webhook(application, url, listen="127.0.0.1", port=port, stop=stop))
    try:
        registered = (await fake_telegram.wait_for("setWebhook"))[0]
        secret = registered["secret_token"]
        assert registered["url"] == url and len(secret) >= 32
        assert registered["allowed_updates"] == ["message", "callback_query"]
        update = {"update_id": 1, **fake_telegram.message_update(USER, "via webhook")}
        async with httpx.AsyncClient(timeout=5) as client:
            missing = await client.post(url, json=update)
            wrong = await client.post(url, json=update, headers={telegram.SECRET_HEADER: "not-the-secret"})
            ok = await client.post(url, json=update, headers={telegram.SECRET_HEADER: secret})
            health = await client.get(f"http://127.0.0.1:{port}/health")
        assert (missing.status_code, wrong.status_code, ok.status_code, health.status_code) == (403, 403, 200, 200)
        assert (await fake_rasa.wait_for())[0]["message"] == "via webhook"
        await fake_telegram.wait_for("sendMessage")
        await asyncio.sleep(0.2)
        assert fake_rasa.messages() == ["via webhook"]
        assert fake_telegram.params("setMyCommands")
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


async def test_telegram_webhook_uses_configured_secret(fake_telegram, fake_rasa):
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg"
    application = telegram.build_application(settings_for(fake_telegram, fake_rasa.url))
    stop = asyncio.Event()
    server = asyncio.create_task(telegram.serve_webhook(application, url, secret="gedeeld-geheim_123",
                                                        listen="127.0.0.1", port=port, stop=stop))
    try:
        assert (await fake_telegram.wait_for("setWebhook"))[0]["secret_token"] == "gedeeld-geheim_123"
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


@pytest.fixture
def real_servers(request):
    """The session's real Rasa + action server, or a skip when there is no trained model yet."""
    from tests.integration.servers import MODEL

    if not MODEL.exists():
        pytest.skip(f"no trained Rasa model at {MODEL} (run `make train`)")
    return request.getfixturevalue("servers")


async def test_telegram_scan_over_real_rasa(real_servers, fake_telegram):
    """/start scan -> intro + first question with buttons -> press -> the answer is stored."""
    from sqlalchemy import select

    from bot import storage

    servers = real_servers
    application = telegram.build_application(settings_for(fake_telegram, servers.rasa_url,
                                                          channel_secret=servers.channel_secret))
    async with polling(application):
        await say(fake_telegram, "/start scan")
        question = await fake_telegram.wait_for(
            "sendMessage", where=lambda p: "Vraag 1 van" in p["text"] and "reply_markup" in p, timeout=60)
        assert fake_telegram.sent_texts().index(question[0]["text"]) > 0  # the intro came first
        keyboard = question[0]["reply_markup"]["inline_keyboard"]
        pressed = keyboard[-1][0]["callback_data"]
        stored = next(m for m in fake_telegram.messages.values() if m.get("reply_markup") == question[0]["reply_markup"])
        await fake_telegram.push(fake_telegram.callback_update(USER, stored, pressed))
        await fake_telegram.wait_for("sendMessage", where=lambda p: "Vraag 2 van" in p["text"], timeout=60)
    assert "reply_markup" not in stored
    url = f"sqlite:///{servers.workdir / 'mentorwijzer.db'}"
    with storage.session_scope(url) as session:
        mentor = storage.find_mentor(session, f"tg-{USER}")
        assert mentor is not None
        answers = session.execute(select(storage.Answer.value, storage.Answer.channel).join(storage.ScanRun)
                                  .where(storage.ScanRun.mentor_id == mentor.id)).all()
    assert [tuple(row) for row in answers] == [("5", "telegram")]  # the last button: 5 on the likert scale
