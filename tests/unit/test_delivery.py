"""The outbox (bot/delivery.py) on a real SQLite file: rows written in the caller's transaction,
claimed before sending, delivered at most once (also by concurrent flushes and channels), kept
pending with an error type when sending fails, and deleted with the mentor.

The transports (SMTP, the Teams connector) are replaced by recorders here; the real ones are in
tests/integration/test_delivery_channels.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot import delivery, storage
from bot.settings import get_settings

TEAMS_SENDER = "teams:11111111-2222-4333-8444-555555555555:aad-object-id-1"
REFERENCE = {
    "serviceUrl": "https://smba.trafficmanager.net/emea/",
    "conversation": {"id": "a:1conv-personal", "tenantId": "11111111-2222-4333-8444-555555555555"},
    "bot": {"id": "28:bot-app-id", "name": "Mentorwijzer"},
    "user": {"id": "29:1user-teams-id", "aadObjectId": "aad-object-id-1", "name": "Juf Test"},
    "tenantId": "11111111-2222-4333-8444-555555555555",
}


def mentor_of(sender_id: str) -> str:
    with storage.session_scope() as s:
        return storage.mentor_for_sender(s, sender_id, delivery.channel_for(sender_id)).id


def queue(sender_id: str | None = None, text: str = "Je vraag is beantwoord.", **kwargs) -> int:
    with storage.session_scope() as s:
        return delivery.enqueue(s, kind=kwargs.pop("kind", "answer"), text=text, sender_id=sender_id, **kwargs).id


def row(row_id: int) -> storage.OutboxMessage:
    with storage.session_scope() as s:
        return s.get(storage.OutboxMessage, row_id)


def count(table) -> int:
    with storage.session_scope() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def smtp(monkeypatch):
    """E-mail configured, sent to a recorder (a list of (to, subject, text)) instead of a server."""
    monkeypatch.setenv("MENTORWIJZER_SMTP_HOST", "smtp.example.invalid")
    get_settings.cache_clear()
    sent: list[tuple[str, str, str]] = []

    def record(settings, message_row):
        time.sleep(0.005)  # long enough for concurrent flushes to overlap
        sent.append((message_row.email_to, message_row.subject, message_row.text))

    monkeypatch.setattr(delivery, "_smtp_send", record)
    return sent


@pytest.fixture
def teams(monkeypatch):
    """Teams configured, the sender has a saved reference, activities go to a recorder."""
    monkeypatch.setenv("MICROSOFT_APP_ID", "bot-app-id")
    monkeypatch.setenv("MICROSOFT_APP_PASSWORD", "not-a-real-secret")
    get_settings.cache_clear()
    assert delivery.save_reference(TEAMS_SENDER, mentor_of(TEAMS_SENDER), {"teams_reference": REFERENCE})
    sent: list[str] = []

    async def record(message_row, context, reference):
        await asyncio.sleep(0.005)
        sent.append(message_row.text)

    monkeypatch.setattr(delivery, "_send_teams", record)
    return sent


# --- writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sender, channel", [("tg-4242", "telegram"), (TEAMS_SENDER, "teams"),
                                             ("dev-123", "rest"), ("", "rest"), (None, "rest")])
def test_delivery_channel_for_by_sender_prefix(sender, channel):
    assert delivery.channel_for(sender) == channel


def test_delivery_enqueue_is_part_of_the_callers_transaction():
    with pytest.raises(RuntimeError):
        with storage.session_scope() as s:
            delivery.enqueue(s, kind="answer", text="Hallo", sender_id="tg-1")
            raise RuntimeError("the fact it announces was rolled back")
    assert count(storage.OutboxMessage) == 0

    mentor_id = mentor_of("tg-4242")
    row_id = queue("tg-4242", buttons=[("👍 Ja", "/vote_up"), ("👎 Nee", "/vote_down")])
    stored = row(row_id)
    assert (stored.channel, stored.mentor_id, stored.delivered_at, stored.attempts) == ("telegram", mentor_id, None, 0)
    assert json.loads(stored.buttons) == [{"title": "👍 Ja", "payload": "/vote_up"},
                                          {"title": "👎 Nee", "payload": "/vote_down"}]


def test_delivery_enqueue_email_defaults_and_refuses_header_injection():
    stored = row(queue(email_to="so@school.example", text="Er is een vraag voor je."))
    assert (stored.channel, stored.subject, stored.sender_id) == ("email", "Bericht van Mentorwijzer", None)
    with storage.session_scope() as s:
        with pytest.raises(ValueError):
            delivery.enqueue(s, kind="new_question", text="x", email_to="so@school.example\nBcc: iedereen@example.org")
        with pytest.raises(ValueError):
            delivery.enqueue(s, kind="answer", text="x", sender_id="dev-1", channel="telegram")  # not a Telegram user
        with pytest.raises(ValueError):
            delivery.enqueue(s, kind="answer", text="x")  # nobody to deliver to
    assert row(queue(email_to="so@school.example", text="x", subject="Vraag\r\nBcc: a@b")).subject == "Vraag Bcc: a@b"


# --- next-message delivery -------------------------------------------------------------------


def test_delivery_take_for_next_message_returns_pending_chat_rows_once_in_order(smtp):
    first = queue("dev-1", text="Eerste", buttons=[("Open vragen", "/open_questions")])
    queue("dev-1", text="Tweede", channel="rest")
    queue("dev-2", text="Voor iemand anders")
    queue(email_to="so@school.example", text="Per mail", sender_id="dev-1")

    assert delivery.take_for_next_message("dev-1") == [
        {"text": "Eerste", "buttons": [{"title": "Open vragen", "payload": "/open_questions"}]},
        {"text": "Tweede", "buttons": []},
    ]
    assert delivery.take_for_next_message("dev-1") == []
    assert row(first).delivered_at is not None
    assert [m["text"] for m in delivery.take_for_next_message("dev-2")] == ["Voor iemand anders"]


async def test_delivery_rest_rows_are_never_flushed(smtp):
    row_id = queue("dev-1", text="Wacht op je volgende bericht")
    assert await delivery.flush() == {"delivered": 0, "failed": 0, "skipped": 0}
    assert row(row_id).delivered_at is None


def test_delivery_concurrent_takes_never_deliver_a_row_twice():
    for rounds in range(3):
        texts = {f"bericht {rounds}-{n}" for n in range(25)}
        with storage.session_scope() as s:
            for text in sorted(texts):
                delivery.enqueue(s, kind="answer", text=text, sender_id="tg-4242")
        start = threading.Barrier(4)

        def take():
            start.wait()
            return [m["text"] for m in delivery.take_for_next_message("tg-4242")]

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: take(), range(4)))
        delivered = [text for result in results for text in result]
        assert sorted(delivered) == sorted(texts)  # every row once: none lost, none twice


async def test_delivery_concurrent_flushes_and_take_deliver_each_row_once(smtp, teams):
    for n in range(20):
        queue(TEAMS_SENDER, text=f"teams {n}")
        queue(email_to="so@school.example", text=f"mail {n}")

    results = await asyncio.gather(delivery.flush(), delivery.flush(),
                                   asyncio.to_thread(delivery.take_for_next_message, TEAMS_SENDER), delivery.flush())

    taken = [m["text"] for m in results[2]]
    assert sorted(teams + taken) == sorted(f"teams {n}" for n in range(20))
    assert sorted(text for _, _, text in smtp) == sorted(f"mail {n}" for n in range(20))
    assert sum(r["delivered"] for r in (results[0], results[1], results[3])) == 20 + len(teams)
    assert count(storage.OutboxMessage) == 40
    with storage.session_scope() as s:
        assert s.execute(select(func.count()).where(storage.OutboxMessage.delivered_at.is_(None))).scalar_one() == 0


async def test_delivery_claimed_row_is_left_alone_until_the_claim_is_stale(smtp):
    row_id = queue(email_to="so@school.example", text="Geclaimd")
    with storage.session_scope() as s:  # another process is sending it right now
        s.execute(update(storage.OutboxMessage).values(claimed_at=storage.utcnow() - timedelta(minutes=1)))
    assert (await delivery.flush())["delivered"] == 0 and smtp == []

    with storage.session_scope() as s:  # ... and died 6 minutes ago
        s.execute(update(storage.OutboxMessage).values(claimed_at=storage.utcnow() - timedelta(minutes=6)))
    assert (await delivery.flush())["delivered"] == 1
    assert [text for _, _, text in smtp] == ["Geclaimd"] and row(row_id).delivered_at is not None


# --- failures ----------------------------------------------------------------------------------


async def test_delivery_failure_keeps_row_pending_with_error_type(monkeypatch, smtp, caplog):
    def refuse(settings, message_row):
        raise ConnectionRefusedError(f"could not send {message_row.text}")  # an error text may quote content

    monkeypatch.setattr(delivery, "_smtp_send", refuse)
    row_id = queue(email_to="so@school.example", text="Geheime inhoud")

    assert await delivery.flush() == {"delivered": 0, "failed": 1, "skipped": 0}

    stored = row(row_id)
    assert (stored.delivered_at, stored.claimed_at, stored.attempts) == (None, None, 1)
    assert stored.last_error == "ConnectionRefusedError"
    assert "Geheime inhoud" not in caplog.text and "so@school.example" not in caplog.text


async def test_delivery_gives_up_after_max_attempts_and_leaves_chat_row_for_next_message(monkeypatch, teams):
    tries = []

    async def broken(message_row, context, reference):
        tries.append(message_row.id)
        raise delivery.DeliveryError("HTTP 503")

    monkeypatch.setattr(delivery, "_send_teams", broken)
    row_id = queue(TEAMS_SENDER, text="Je vraag is beantwoord.")

    for _ in range(delivery.MAX_ATTEMPTS + 3):
        await delivery.flush()

    assert len(tries) == delivery.MAX_ATTEMPTS
    stored = row(row_id)
    assert (stored.attempts, stored.last_error, stored.delivered_at) == (delivery.MAX_ATTEMPTS, "HTTP 503", None)
    assert [m["text"] for m in delivery.take_for_next_message(TEAMS_SENDER)] == ["Je vraag is beantwoord."]


async def test_delivery_without_smtp_host_email_stays_pending_and_is_noticed_once(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="bot.delivery")
    monkeypatch.setattr(delivery, "_noticed", set())
    row_id = queue(email_to="so@school.example", text="Per mail")

    assert await delivery.flush() == {"delivered": 0, "failed": 0, "skipped": 1}
    assert await delivery.flush() == {"delivered": 0, "failed": 0, "skipped": 1}

    assert row(row_id).delivered_at is None and row(row_id).attempts == 0
    assert caplog.text.count("MENTORWIJZER_SMTP_HOST not set") == 1


async def test_delivery_teams_sender_without_reference_waits_for_next_message(monkeypatch):
    monkeypatch.setenv("MICROSOFT_APP_ID", "bot-app-id")
    monkeypatch.setenv("MICROSOFT_APP_PASSWORD", "not-a-real-secret")
    get_settings.cache_clear()
    queue(TEAMS_SENDER, text="Nog geen gesprek bekend")

    assert await delivery.flush() == {"delivered": 0, "failed": 0, "skipped": 1}
    assert [m["text"] for m in delivery.take_for_next_message(TEAMS_SENDER)] == ["Nog geen gesprek bekend"]


# --- conversation references -------------------------------------------------------------------


def stored_reference(sender_id: str) -> dict | None:
    with storage.session_scope() as s:
        ref = s.get(storage.ConversationRef, sender_id)
        return None if ref is None else json.loads(ref.reference)


def test_delivery_save_reference_keeps_ids_only_and_updates():
    mentor_id = mentor_of(TEAMS_SENDER)
    assert delivery.save_reference(TEAMS_SENDER, mentor_id, {"channel": "teams", "teams_reference": REFERENCE})
    saved = stored_reference(TEAMS_SENDER)
    assert saved["serviceUrl"] == REFERENCE["serviceUrl"] and saved["conversation"]["id"] == "a:1conv-personal"
    assert saved["user"] == {"id": "29:1user-teams-id", "aadObjectId": "aad-object-id-1"}  # no name
    assert "Juf Test" not in json.dumps(saved) and "name" not in saved["bot"]

    moved = {**REFERENCE, "conversation": {"id": "a:2new-conversation"}}
    assert delivery.save_reference(TEAMS_SENDER, mentor_id, {"teams_reference": moved})
    assert stored_reference(TEAMS_SENDER)["conversation"]["id"] == "a:2new-conversation"
    assert count(storage.ConversationRef) == 1


@pytest.mark.parametrize("metadata", [
    None,
    {"channel": "teams"},
    {"teams_reference": "not a dict"},
    {"teams_reference": {**REFERENCE, "serviceUrl": "file:///etc/passwd"}},
    {"teams_reference": {**REFERENCE, "serviceUrl": "https://evil.example/ x"}},
    {"teams_reference": {**REFERENCE, "conversation": {}}},
    {"teams_reference": {**REFERENCE, "conversation": {"id": "19:team-channel", "conversationType": "channel"}}},
    {"teams_reference": {**REFERENCE, "user": {"id": "29:other", "aadObjectId": "someone-else"}}},
])
def test_delivery_save_reference_ignores_invalid_or_foreign_references(metadata):
    assert not delivery.save_reference(TEAMS_SENDER, mentor_of(TEAMS_SENDER), metadata)
    assert stored_reference(TEAMS_SENDER) is None


def test_delivery_save_reference_only_for_teams_senders():
    assert not delivery.save_reference("dev-1", mentor_of("dev-1"), {"teams_reference": REFERENCE})
    assert not delivery.save_reference("tg-4242", mentor_of("tg-4242"), {"teams_reference": REFERENCE})
    assert count(storage.ConversationRef) == 0


# --- privacy -------------------------------------------------------------------------------------


def test_delivery_rows_and_reference_deleted_with_the_mentor():
    mentor_id = mentor_of(TEAMS_SENDER)
    delivery.save_reference(TEAMS_SENDER, mentor_id, {"teams_reference": REFERENCE})
    queue(TEAMS_SENDER, text="Met mentor_id van de afzender")  # mentor_id looked up from the sender
    queue(TEAMS_SENDER, text="Expliciet", mentor_id=mentor_id)
    queue("dev-other", text="Van iemand anders")
    assert row(1).mentor_id == mentor_id

    with storage.session_scope() as s:
        counts = storage.delete_mentor(s, mentor_id)

    assert counts["messages"] == 2
    assert count(storage.ConversationRef) == 0
    assert delivery.take_for_next_message(TEAMS_SENDER) == []
    assert [m["text"] for m in delivery.take_for_next_message("dev-other")] == ["Van iemand anders"]


# --- flush_soon ---------------------------------------------------------------------------------


def test_delivery_flush_soon_without_a_loop_does_nothing(smtp):
    queue(email_to="so@school.example", text="Per mail")
    delivery.flush_soon()
    assert smtp == []


async def test_delivery_flush_soon_delivers_in_the_background(smtp):
    queue(email_to="so@school.example", text="Eerste")
    delivery.flush_soon()
    queue(email_to="so@school.example", text="Tweede")  # while the first flush may be running
    delivery.flush_soon()
    for _ in range(100):
        if len(smtp) == 2:
            break
        await asyncio.sleep(0.02)
    assert sorted(text for _, _, text in smtp) == ["Eerste", "Tweede"]


def test_delivery_a_resent_message_gets_its_pending_rows_again_a_new_one_does_not():
    """The reply to message m-1 was lost (timeout, crashed server): the client re-sends m-1."""
    queue("dev-1", text="Je vraag is beantwoord.")
    assert [m["text"] for m in delivery.take_for_next_message("dev-1", "m-1")] == ["Je vraag is beantwoord."]
    assert [m["text"] for m in delivery.take_for_next_message("dev-1", "m-1")] == ["Je vraag is beantwoord."]
    assert delivery.take_for_next_message("dev-1", "m-2") == []
    assert delivery.take_for_next_message("dev-2", "m-1") == []  # another sender's message id means nothing
