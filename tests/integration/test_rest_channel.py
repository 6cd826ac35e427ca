"""The validating REST channel (``bot.channels.rest``): 400 for malformed bodies, 415 for anything but
JSON, no message text in logs. (Who may speak for whom: tests/security/.)

The session's ``servers`` fixture runs Rasa's built-in ``rest:`` channel, so this module starts its
own ``rasa run`` (plus action server) with ``bot.channels.rest.RestInput`` registered the way the
project's credentials.yml does it. The failure-path tests mount the channel on a Sanic app in the
test process, with a stub agent that raises.
"""
from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from rasa.core.channels.channel import UserMessage
from rasa.core.run import _create_single_channel
from sanic import Sanic

from bot.channels.rest import RestInput
from tests.integration import servers as rasa_servers

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "bot.channels.rest.RestInput"
SECRET = f"geheime-tekst-{uuid.uuid4().hex[:8]}"  # must never appear in a log
SECRET_SENDER = f"geheime-afzender-{uuid.uuid4().hex[:8]}"

# (case, content type, body, expected error code); every body is refused with 400.
BAD_BODIES = [
    ("malformed-json", "application/json", b'{"sender": "%s", "message": "%s' % (SECRET_SENDER.encode(), SECRET.encode()),
     "invalid_json"),
    ("empty-body", "application/json", b"", "invalid_json"),
    ("invalid-utf8", "application/json", b'{"sender": "x", "message": "\xff\xfe %s"}' % SECRET.encode(), "invalid_json"),
    ("deep-nesting", "application/json", b"[" * 5000 + b"]" * 5000, "invalid_json"),
    ("json-array", "application/json", json.dumps([SECRET]).encode(), "not_an_object"),
    ("json-string", "application/json", json.dumps(SECRET).encode(), "not_an_object"),
    ("json-number", "application/json", b"42", "not_an_object"),
    ("json-null", "application/json", b"null", "not_an_object"),
    ("no-sender", "application/json", json.dumps({"message": SECRET}).encode(), "invalid_sender"),
    ("empty-sender", "application/json", json.dumps({"sender": " ", "message": SECRET}).encode(), "invalid_sender"),
    ("sender-number", "application/json", json.dumps({"sender": 12345, "message": SECRET}).encode(), "invalid_sender"),
    ("sender-object", "application/json", json.dumps({"sender": {"id": 1}, "message": SECRET}).encode(),
     "invalid_sender"),
    ("sender-too-long", "application/json", json.dumps({"sender": "x" * 256, "message": SECRET}).encode(),
     "invalid_sender"),
    ("no-message", "application/json", json.dumps({"sender": SECRET_SENDER}).encode(), "invalid_message"),
    ("message-null", "application/json", json.dumps({"sender": SECRET_SENDER, "message": None}).encode(),
     "invalid_message"),
    ("message-number", "application/json", json.dumps({"sender": SECRET_SENDER, "message": 3}).encode(),
     "invalid_message"),
    ("message-list", "application/json", json.dumps({"sender": SECRET_SENDER, "message": [SECRET]}).encode(),
     "invalid_message"),
    ("message-nan", "application/json", b'{"sender": "%s", "message": NaN}' % SECRET_SENDER.encode(),
     "invalid_message"),
    ("metadata-string", "application/json",
     json.dumps({"sender": SECRET_SENDER, "message": SECRET, "metadata": SECRET}).encode(), "invalid_metadata"),
    ("metadata-list", "application/json",
     json.dumps({"sender": SECRET_SENDER, "message": SECRET, "metadata": [1]}).encode(), "invalid_metadata"),
    ("input-channel-number", "application/json",
     json.dumps({"sender": SECRET_SENDER, "message": SECRET, "input_channel": 7}).encode(), "invalid_input_channel"),
]


@pytest.fixture(scope="module")
def rasa_rest(servers):
    """The session's servers: tests/integration/servers.py registers the project's REST channel."""
    assert f"{CHANNEL}:" in (servers.workdir / "credentials.yml").read_text()
    return servers


def webhook(running: rasa_servers.Servers) -> str:
    return f"{running.rasa_url}/webhooks/rest/webhook"


def rasa_log(running: rasa_servers.Servers) -> str:
    return (running.workdir / "rasa.log").read_text(errors="replace")


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


# --- registration ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["credentials.yml", "deploy/credentials.yml"])
def test_rest_channel_registered_in_credentials(path):
    credentials = yaml.safe_load((ROOT / path).read_text())
    assert CHANNEL in credentials and "rest" not in credentials
    channel = _create_single_channel(CHANNEL, credentials[CHANNEL])  # what `rasa run` does; no config
    assert isinstance(channel, RestInput)
    assert channel.name() == "rest" and channel.url_prefix() == "rest"


# --- a real Rasa server ----------------------------------------------------------------------


def test_rest_channel_refuses_bad_bodies_with_400_and_keeps_answering(rasa_rest):
    statuses = {}
    for case, content_type, body, code in BAD_BODIES:
        reply = httpx.post(webhook(rasa_rest), content=body, headers={"Content-Type": content_type}, timeout=30)
        statuses[case] = (reply.status_code, reply.json().get("error") if reply.status_code == 400 else None)
    assert statuses == {case: (400, code) for case, _, _, code in BAD_BODIES}

    sender = f"test-{uuid.uuid4().hex[:10]}"
    messages = rasa_rest.say(sender, "hoi")
    assert texts(messages).strip()  # the server still answers normally


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", ""])
def test_rest_channel_refuses_bodies_that_are_not_json_with_415(rasa_rest, content_type):
    """A web page can send these cross-site without a CORS preflight; JSON it cannot."""
    body = json.dumps({"sender": SECRET_SENDER, "message": SECRET}).encode()
    reply = httpx.post(webhook(rasa_rest), content=body, headers={"Content-Type": content_type}, timeout=30)
    assert reply.status_code == 415 and reply.json()["error"] == "unsupported_media_type"


def test_rest_channel_bad_body_refused_before_streaming(rasa_rest):
    reply = httpx.post(webhook(rasa_rest) + "?stream=true", json={"sender": 1, "message": SECRET}, timeout=30)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_sender"


def test_rest_channel_streams_replies(rasa_rest):
    sender = f"test-{uuid.uuid4().hex[:10]}"
    reply = httpx.post(webhook(rasa_rest) + "?stream=true", json={"sender": sender, "message": "hoi"}, timeout=60)
    assert reply.status_code == 200
    messages = [json.loads(line) for line in reply.text.splitlines() if line.strip()]
    assert texts(messages).strip() and all(m["recipient_id"] == sender for m in messages)


def test_rest_channel_empty_message_still_reaches_rasa(rasa_rest):
    """Upstream passes "" on to Rasa (200 with the bot's replies); so does this channel."""
    sender = f"test-{uuid.uuid4().hex[:10]}"
    reply = httpx.post(webhook(rasa_rest), json={"sender": sender, "message": ""}, timeout=60)
    assert reply.status_code == 200 and isinstance(reply.json(), list)
    tracker = tracker_of(rasa_rest, sender)
    assert any(e["event"] == "user" and e["text"] == "" for e in tracker["events"])


def tracker_of(running: rasa_servers.Servers, sender: str) -> dict:
    reply = httpx.get(f"{running.rasa_url}/conversations/{sender}/tracker", params={"token": running.api_token},
                      timeout=10)
    reply.raise_for_status()
    return reply.json()


def test_rest_channel_metadata_from_a_bridge_reaches_the_tracker(rasa_rest):
    """With the channel secret (the Telegram bridge), metadata is kept as sent; a charset is fine."""
    sender = f"test-{uuid.uuid4().hex[:10]}"
    body = json.dumps({"sender": sender, "message": "hoi", "metadata": {"channel": "telegram", "message_id": "m-1"}})
    reply = httpx.post(webhook(rasa_rest), content=body.encode(), timeout=60,
                       headers={"Content-Type": "application/json; charset=utf-8",
                                "X-Mentorwijzer-Channel-Secret": rasa_rest.channel_secret})
    assert reply.status_code == 200 and texts(reply.json()).strip()
    tracker = tracker_of(rasa_rest, sender)
    assert tracker["latest_input_channel"] == "rest"
    assert tracker["latest_message"]["metadata"] == {"channel": "telegram", "message_id": "m-1"}


def test_rest_channel_without_secret_cannot_claim_another_channel(rasa_rest):
    sender = f"test-{uuid.uuid4().hex[:10]}"
    body = {"sender": sender, "message": "hoi", "input_channel": "teams",
            "metadata": {"channel": "telegram", "message_id": "m-1"}}
    reply = httpx.post(webhook(rasa_rest), json=body, timeout=60)
    assert reply.status_code == 200
    tracker = tracker_of(rasa_rest, sender)
    assert tracker["latest_input_channel"] == "rest"
    assert tracker["latest_message"]["metadata"] == {"channel": "rest", "message_id": "m-1"}


def test_rest_channel_logs_no_message_text(rasa_rest):
    """Privacy: after the tests above, the Rasa log has our rejections but none of the texts sent."""
    log = rasa_log(rasa_rest)
    assert "REST request rejected: invalid_sender" in log  # the log is captured ...
    for secret in (SECRET, SECRET_SENDER):
        assert secret not in log  # ... but never what was sent, nor by whom


# --- failures while handling, in process --------------------------------------------------------


class FailingAgent:
    """Stands in for ``rasa.core.agent.Agent``: answers once, then fails like a broken pipeline."""

    def __init__(self) -> None:
        self.messages: list[UserMessage] = []

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id, "Even geduld.")
        raise RuntimeError(f"pipeline broke on {message.text!r}")  # error messages may quote the text


@pytest.fixture
async def serve(monkeypatch):
    """Mount the channel on a Sanic server the way ``rasa run`` does (``channel.register``)."""
    monkeypatch.setattr(Sanic, "test_mode", True)
    apps = rasa_servers.ChannelApps()

    async def start(agent: FailingAgent) -> str:
        return await apps.start(RestInput.from_credentials(None), agent)

    yield start
    await apps.close()


async def test_rest_channel_handler_failure_logs_no_text(serve, caplog):
    caplog.set_level(logging.INFO)
    agent = FailingAgent()
    url = await serve(agent)

    async with httpx.AsyncClient(timeout=20) as client:
        reply = await client.post(url, json={"sender": SECRET_SENDER, "message": SECRET})

    assert reply.status_code == 200  # as upstream: the replies collected before the failure
    assert reply.json() == [{"recipient_id": SECRET_SENDER, "text": "Even geduld."}]
    assert "rest.message.received.failure" in caplog.text and "RuntimeError" in caplog.text
    assert SECRET not in caplog.text and SECRET_SENDER not in caplog.text


async def test_rest_channel_stream_ends_when_handling_fails(serve, caplog):
    caplog.set_level(logging.INFO)
    agent = FailingAgent()
    url = await serve(agent)

    async with httpx.AsyncClient(timeout=20) as client:
        reply = await client.post(url + "?stream=true", json={"sender": SECRET_SENDER, "message": SECRET})

    assert reply.status_code == 200
    assert [json.loads(line)["text"] for line in reply.text.splitlines() if line.strip()] == ["Even geduld."]
    assert "rest.message.received.failure" in caplog.text
    assert SECRET not in caplog.text and SECRET_SENDER not in caplog.text
