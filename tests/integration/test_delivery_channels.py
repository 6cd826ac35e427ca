"""Proactive delivery (bot/delivery.py) through the real transports, all on 127.0.0.1: the fake
Telegram Bot API, the fake Bot Framework connector, a real SMTP server (aiosmtpd), and a real Rasa
server whose REST channel puts waiting messages before its reply.
"""
from __future__ import annotations

import email
import email.policy
import logging
import uuid
from typing import AsyncIterator

import httpx
import pytest
from aiosmtpd.controller import Controller
from sanic import Sanic
from sqlalchemy import select

from bot import delivery, storage
from bot.channels.teams import TeamsInput, TeamsOutput
from bot.identity import teams_sender
from bot.settings import get_settings
from tests.integration.fake_botframework import FakeBotFramework
from tests.integration.fake_telegram import TOKEN, FakeTelegram
from tests.integration.servers import ChannelApps, free_port
from tests.integration.test_teams import APP_ID, APP_PASSWORD, TENANT, StubAgent, activity, post

USER = 4242
ANSWER = "Je vraag is beantwoord door Sanne (schoolopleider).\n\nAntwoord: kijk in het stagehandboek, hoofdstuk 3."
VOTES = [("👍 Ja", '/vote_up{"kb_entry":"vraag:7"}'), ("👎 Nee", '/vote_down{"kb_entry":"vraag:7"}')]


def queue(**kwargs) -> int:
    with storage.session_scope() as s:
        return delivery.enqueue(s, **{"kind": "answer", "text": ANSWER, **kwargs}).id


def outbox_row(row_id: int) -> storage.OutboxMessage:
    with storage.session_scope() as s:
        return s.get(storage.OutboxMessage, row_id)


def mentor_of(sender_id: str) -> str:
    with storage.session_scope() as s:
        return storage.mentor_for_sender(s, sender_id, delivery.channel_for(sender_id)).id


# --- Telegram --------------------------------------------------------------------------------


@pytest.fixture
async def fake_telegram(monkeypatch) -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram().start()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_BASE_URL", fake.base_url)
    get_settings.cache_clear()
    yield fake
    await fake.stop()


async def test_delivery_telegram_message_with_inline_keyboard_reaches_the_chat(fake_telegram, caplog):
    caplog.set_level(logging.DEBUG)
    row_id = queue(sender_id=f"tg-{USER}", buttons=VOTES)
    other = queue(sender_id="dev-rest-only", text="Alleen bij het volgende bericht")

    assert await delivery.flush() == {"delivered": 1, "failed": 0, "skipped": 0}

    [sent] = fake_telegram.params("sendMessage")
    assert sent["chat_id"] == USER
    assert sent["text"] == ANSWER
    assert sent["reply_markup"] == {"inline_keyboard": [[  # 👍 and 👎 share one row
        {"text": "👍 Ja", "callback_data": '/vote_up{"kb_entry":"vraag:7"}'},
        {"text": "👎 Nee", "callback_data": '/vote_down{"kb_entry":"vraag:7"}'},
    ]]}
    assert outbox_row(row_id).delivered_at is not None and outbox_row(other).delivered_at is None
    assert await delivery.flush() == {"delivered": 0, "failed": 0, "skipped": 0}  # at most once
    assert len(fake_telegram.params("sendMessage")) == 1
    assert TOKEN not in caplog.text and "stagehandboek" not in caplog.text  # no token, no content in logs


# --- Teams -----------------------------------------------------------------------------------


@pytest.fixture
def fake_bf(monkeypatch):
    bf = FakeBotFramework().start()
    bf.patch(monkeypatch)
    monkeypatch.setattr(TeamsOutput, "retry_base_delay", 0.01)
    monkeypatch.setenv("MICROSOFT_APP_ID", APP_ID)
    monkeypatch.setenv("MICROSOFT_APP_PASSWORD", APP_PASSWORD)
    get_settings.cache_clear()
    TeamsOutput.clear_token_cache()
    yield bf
    TeamsOutput.clear_token_cache()
    bf.stop()


@pytest.fixture
async def teams_channel(monkeypatch, fake_bf):
    """The Teams channel on a Sanic server (as ``rasa run`` mounts it) with a stub agent; its URL."""
    monkeypatch.setattr(Sanic, "test_mode", True)
    apps = ChannelApps()
    agent = StubAgent(reply={"text": "Hoi! Waarmee kan ik je helpen?"})
    url = await apps.start(TeamsInput(APP_ID, APP_PASSWORD), agent)
    yield url, agent
    await apps.close()


async def test_delivery_teams_message_reaches_the_conversation_of_the_saved_reference(fake_bf, teams_channel):
    url, agent = teams_channel
    conversation = f"a:{uuid.uuid4().hex}"
    assert await post(url, activity(fake_bf, conversation=conversation), fake_bf.token(APP_ID)) == 200
    [message] = agent.messages
    sender = teams_sender(TENANT, "aad-object-id-1")
    assert delivery.save_reference(sender, mentor_of(sender), message.metadata)  # as the action server does
    assert "Juf Test" not in str(message.metadata["teams_reference"])  # ids only, no names
    group = activity(fake_bf, conversation="19:group-chat")
    group["conversation"]["conversationType"] = "groupChat"
    assert await post(url, group, fake_bf.token(APP_ID)) == 200
    assert "teams_reference" not in agent.messages[-1].metadata  # answers never go to a group chat
    before = len(fake_bf.posted())

    row_id = queue(sender_id=sender, buttons=VOTES)
    assert await delivery.flush() == {"delivered": 1, "failed": 0, "skipped": 0}

    [sent] = fake_bf.posted()[before:]
    assert sent.path == f"/teams/v3/conversations/{conversation}/activities"
    assert sent.body["recipient"]["id"] == "29:1user-teams-id"
    assert sent.body["from"]["id"] == f"28:{APP_ID}"
    [card] = sent.body["attachments"]
    assert card["content"]["text"] == ANSWER.replace("\n", "<br>")
    assert [b["value"] for b in card["content"]["buttons"]] == [{"payload": VOTES[0][1]}, {"payload": VOTES[1][1]}]
    assert outbox_row(row_id).delivered_at is not None


async def test_delivery_failed_teams_message_arrives_before_the_next_reply(fake_bf, teams_channel, monkeypatch):
    url, agent = teams_channel
    monkeypatch.setattr(TeamsOutput, "max_attempts", 2)
    conversation = f"a:{uuid.uuid4().hex}"
    assert await post(url, activity(fake_bf, conversation=conversation), fake_bf.token(APP_ID)) == 200
    sender = teams_sender(TENANT, "aad-object-id-1")
    delivery.save_reference(sender, mentor_of(sender), agent.messages[0].metadata)
    row_id = queue(sender_id=sender, text="Je vraag is beantwoord.")
    fake_bf.fail_next(503, times=2, retry_after=None)

    assert await delivery.flush() == {"delivered": 0, "failed": 1, "skipped": 0}
    assert (outbox_row(row_id).last_error, outbox_row(row_id).attempts) == ("HTTP 503", 1)
    before = len(fake_bf.posted())

    assert await post(url, activity(fake_bf, conversation=conversation, text="hallo"), fake_bf.token(APP_ID)) == 200

    waiting, reply = fake_bf.posted()[before:]
    assert waiting.body["text"] == "Je vraag is beantwoord."
    assert reply.body["text"] == "Hoi! Waarmee kan ik je helpen?"
    assert outbox_row(row_id).delivered_at is not None
    assert await delivery.flush() == {"delivered": 0, "failed": 0, "skipped": 0}


# --- e-mail ----------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(monkeypatch):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("MENTORWIJZER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MENTORWIJZER_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("MENTORWIJZER_SMTP_FROM", "mentorwijzer@pabo.example")
    get_settings.cache_clear()
    yield inbox
    controller.stop()


async def test_delivery_email_reaches_the_smtp_server_as_utf8_text(smtp_server):
    text = "Hallo Sanne,\n\nEen mentor van De Zonnewijzer vraagt: hoe beoordeel ik één lesvoorbereiding? ✓\n\nGroet"
    row_id = queue(kind="new_question", email_to="sanne@school.example", subject="Mentorwijzer: vraag van één mentor",
                   text=text)

    assert await delivery.flush() == {"delivered": 1, "failed": 0, "skipped": 0}

    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["sanne@school.example"]
    assert envelope.mail_from == "mentorwijzer@pabo.example"
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["Subject"] == "Mentorwijzer: vraag van één mentor"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().replace("\r\n", "\n").rstrip("\n") == text  # CRLF: SMTP's line ends
    assert outbox_row(row_id).delivered_at is not None


async def test_delivery_email_refused_by_the_server_stays_pending(smtp_server, monkeypatch):
    async def refuse(server, session, envelope):
        return "550 mailbox unavailable"

    monkeypatch.setattr(smtp_server, "handle_DATA", refuse)
    row_id = queue(kind="new_question", email_to="sanne@school.example", text="Er is een vraag voor je.")

    assert await delivery.flush() == {"delivered": 0, "failed": 1, "skipped": 0}
    stored = outbox_row(row_id)
    assert (stored.delivered_at, stored.attempts, stored.last_error) == (None, 1, "SMTPDataError")


# --- REST, through a real Rasa server -----------------------------------------------------------


@pytest.fixture
def rasa(servers, monkeypatch):
    """The session's Rasa + action servers, with this test writing to their database."""
    monkeypatch.setenv("MENTORWIJZER_DB_URL", f"sqlite:///{servers.workdir / 'mentorwijzer.db'}")
    get_settings.cache_clear()
    storage.reset_caches()
    yield servers
    storage.reset_caches()


def test_delivery_rest_message_comes_first_in_the_reply_to_the_next_message(rasa):
    sender = f"dev-{uuid.uuid4().hex[:10]}"
    rasa.say(sender, "hoi")  # first contact: with the privacy notice
    usual = rasa.say(sender, "hoi")
    row_id = queue(sender_id=sender, buttons=VOTES[:1], text="Je vraag is beantwoord door Sanne.")

    reply = rasa.say(sender, "hoi")

    assert reply[0]["text"] == "Je vraag is beantwoord door Sanne."
    assert reply[0]["buttons"] == [{"title": "👍 Ja", "payload": VOTES[0][1]}]
    assert [m.get("text") for m in reply[1:]] == [m.get("text") for m in usual]  # then Rasa's own answer
    assert outbox_row(row_id).delivered_at is not None
    assert "Je vraag is beantwoord" not in str(rasa.say(sender, "hoi"))  # only once


def test_delivery_telegram_message_not_sent_comes_with_the_next_bridge_message(rasa):
    """The bridge speaks REST (with the channel secret); a payload message brings it too."""
    sender = f"tg-{uuid.uuid4().int % 10**9}"
    queue(sender_id=sender, text="Herinnering: je mentorscan staat nog open.")
    queue(sender_id=sender, text="Tweede bericht")

    reply = rasa.say(sender, "/help", metadata={"channel": "telegram"})

    assert [m.get("text") for m in reply[:2]] == ["Herinnering: je mentorscan staat nog open.", "Tweede bericht"]
    assert len(reply) > 2
    with storage.session_scope() as s:
        assert s.execute(select(storage.OutboxMessage.id).where(storage.OutboxMessage.sender_id == sender,
                                                                storage.OutboxMessage.delivered_at.is_(None))
                         ).first() is None


def test_delivery_rest_stream_sends_waiting_messages_first(rasa):
    sender = f"dev-{uuid.uuid4().hex[:10]}"
    queue(sender_id=sender, text="Eerst dit bericht.")
    response = httpx.post(f"{rasa.rasa_url}/webhooks/rest/webhook?stream=true", json={"sender": sender, "message": "hoi"},
                          timeout=60)
    assert response.status_code == 200
    lines = [line for line in response.text.splitlines() if line.strip()]
    assert '"Eerst dit bericht."' in lines[0] and len(lines) > 1
