"""The Teams channel (``bot.channels.teams``) against a fake Bot Framework on 127.0.0.1.

Rasa's own channel registration (``rasa.core.channels.channel.register``) mounts the channel on a
real Sanic server; a stub agent answers through the channel's output channel. The last test runs
``rasa run`` with the trained model and the action server, if the model exists.
"""
from __future__ import annotations

import base64
import uuid
from typing import Any, Optional

import aiohttp
import httpx
import pytest
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from bot.channels.teams import WELCOME_TEXT, TeamsInput, TeamsOutput
from bot.identity import teams_sender
from bot.settings import get_settings
from tests.integration import servers as rasa_servers
from tests.integration.servers import ChannelApps
from tests.integration.fake_botframework import FakeBotFramework, new_key
from tests.integration.test_scan_conversation import stored_answers

APP_ID = "00000000-0000-4000-8000-00000000b0t1"
APP_PASSWORD = "not-a-real-secret"
TENANT = "11111111-2222-4333-8444-555555555555"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=20)
PNG_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
BUTTONS_REPLY = {"text": "Wil je de mentorscan starten?",
                 "buttons": [{"title": "Ja, starten", "payload": "/start_scan"},
                             {"title": "Nee", "payload": "nee"}]}


class StubAgent:
    """Stands in for ``rasa.core.agent.Agent``: records user messages, answers via the channel."""

    def __init__(self, reply: Optional[dict] = None) -> None:
        self.messages: list[UserMessage] = []
        self.reply = reply or BUTTONS_REPLY

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_response(message.sender_id, dict(self.reply))


@pytest.fixture
def fake(monkeypatch):
    bf = FakeBotFramework().start()
    bf.patch(monkeypatch)
    monkeypatch.setattr(TeamsOutput, "retry_base_delay", 0.05)
    TeamsOutput.clear_token_cache()
    yield bf
    TeamsOutput.clear_token_cache()
    bf.stop()


@pytest.fixture
async def serve(monkeypatch):
    """Start a Sanic server with a channel registered the way ``rasa run`` does it."""
    monkeypatch.setattr(Sanic, "test_mode", True)  # several apps in one process (Sanic 21.12 touch-ups)
    apps = ChannelApps()

    async def start(channel: TeamsInput, agent: StubAgent) -> str:
        return await apps.start(channel, agent)

    yield start
    await apps.close()


def activity(fake: FakeBotFramework, kind: str = "message", conversation: str = "a:1conv-personal",
             **extra: Any) -> dict:
    body = {
        "type": kind,
        "id": uuid.uuid4().hex,
        "channelId": "msteams",
        "serviceUrl": fake.service_url,
        "from": {"id": "29:1user-teams-id", "name": "Juf Test", "aadObjectId": "aad-object-id-1"},
        "recipient": {"id": f"28:{APP_ID}", "name": "Mentorwijzer"},
        "conversation": {"id": conversation, "conversationType": "personal", "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
    }
    if kind == "message":
        body.update(text="hoi", textFormat="plain", locale="nl-NL")
    body.update(extra)
    return body


async def post(url: str, body: dict, token: Optional[str]) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(url, json=body, headers=headers) as reply:
            await reply.read()
            return reply.status


async def test_teams_valid_token_reply_is_hero_card_with_payload_actions(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake)

    status = await post(url, body, fake.token(APP_ID))

    assert status == 200
    [message] = agent.messages
    assert message.text == "hoi"
    assert message.sender_id == f"teams:{TENANT}:aad-object-id-1"
    assert message.input_channel == "teams"
    assert message.message_id == body["id"]
    # re-deliveries are recognised; the conversation reference lets the bot write first later (bot/delivery.py)
    assert {k: v for k, v in message.metadata.items() if k != "teams_reference"} == \
        {"channel": "teams", "message_id": body["id"]}
    assert message.metadata["teams_reference"]["conversation"]["id"] == body["conversation"]["id"]
    [sent] = fake.posted()
    assert sent.path == "/teams/v3/conversations/a:1conv-personal/activities"
    assert sent.headers["Authorization"] == "Bearer fake-access-token-1"
    assert sent.body["type"] == "message"
    assert sent.body["from"] == {"id": f"28:{APP_ID}", "name": "Mentorwijzer"}
    assert sent.body["recipient"]["id"] == "29:1user-teams-id"
    [card] = sent.body["attachments"]
    assert card["contentType"] == "application/vnd.microsoft.card.hero"
    assert card["content"]["text"] == "Wil je de mentorscan starten?"
    assert card["content"]["buttons"] == [
        {"type": "messageBack", "title": "Ja, starten", "text": "/start_scan", "displayText": "Ja, starten",
         "value": {"payload": "/start_scan"}},
        {"type": "imBack", "title": "Nee", "value": "nee"},
    ]
    [token_request] = fake.tokens_requested()
    assert token_request.path == "/botframework.com/oauth2/v2.0/token"
    assert token_request.body["client_id"] == APP_ID
    assert token_request.body["scope"] == "https://api.botframework.com/.default"


async def test_teams_message_back_value_reaches_rasa_as_payload(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake, text="", value={"payload": "/start_scan"})

    assert await post(url, body, fake.token(APP_ID)) == 200
    assert [m.text for m in agent.messages] == ["/start_scan"]


REJECTIONS = {
    "missing": "",
    "not_bearer": "no bearer token",
    "garbage": "malformed token",
    "forged": "InvalidSignatureError",
    "expired": "ExpiredSignatureError",
    "wrong_audience": "InvalidAudienceError",
    "wrong_issuer": "InvalidIssuerError",
    "other_service_url": "serviceurl claim does not match",
    "unknown_key": "unknown signing key",
    "not_endorsed": "does not endorse the channel",
}


@pytest.mark.parametrize("case", list(REJECTIONS))
async def test_teams_rejects_invalid_token(fake, serve, case, caplog):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake)
    token: Optional[str] = {
        "missing": lambda: None,
        "garbage": lambda: "not.a.jwt",
        "forged": lambda: fake.token(APP_ID, key=new_key()),  # same key id, another private key
        "expired": lambda: fake.token(APP_ID, expires_in=-3600),
        "wrong_audience": lambda: fake.token("another-app-id"),
        "wrong_issuer": lambda: fake.token(APP_ID, issuer="https://evil.example"),
        "other_service_url": lambda: fake.token(APP_ID, service_url="https://smba.trafficmanager.net/emea/"),
        "unknown_key": lambda: fake.token(APP_ID, key=new_key(), kid="other-key"),
        "not_endorsed": lambda: fake.token(APP_ID),
        "not_bearer": lambda: None,
    }[case]()
    if case == "not_endorsed":
        body["channelId"] = "webchat"

    if case == "not_bearer":
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
            async with session.post(url, json=body, headers={"Authorization": f"Basic {APP_PASSWORD}"}) as reply:
                status = reply.status
    else:
        status = await post(url, body, token)

    assert status == 401
    assert REJECTIONS[case] in caplog.text
    assert agent.messages == []
    assert fake.posted() == []
    assert fake.tokens_requested() == []


async def test_teams_text_keeps_line_breaks_and_is_escaped(fake, serve):
    agent = StubAgent(reply={"text": "Je kunt me vragen:\n• taken & uren\n• wie <wat> doet"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    [sent] = fake.posted()
    assert sent.body["textFormat"] == "xml"
    assert sent.body["text"] == "Je kunt me vragen:<br>• taken &amp; uren<br>• wie &lt;wat&gt; doet"


async def test_teams_image_data_uri_becomes_image_attachment(fake, serve):
    agent = StubAgent(reply={"text": "Je resultaten in een grafiek:", "image": PNG_URI})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    text, image = fake.posted()
    assert text.body["text"] == "Je resultaten in een grafiek:"
    assert image.body["attachments"] == [{"contentType": "image/png", "contentUrl": PNG_URI, "name": "afbeelding.png"}]


async def test_teams_export_payload_becomes_json_file_attachment(fake, serve):
    content = '{"mentor": {"id": 1}, "antwoorden": []}'
    agent = StubAgent(reply={"custom": {"type": "export", "filename": "mentorwijzer-gegevens.json",
                                        "content": content}})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    [sent] = fake.posted()
    [attachment] = sent.body["attachments"]
    assert attachment["contentType"] == "application/json"
    assert attachment["name"] == "mentorwijzer-gegevens.json"
    prefix = "data:application/json;base64,"
    assert attachment["contentUrl"].startswith(prefix)
    assert base64.b64decode(attachment["contentUrl"][len(prefix):]).decode() == content


async def test_teams_welcome_once_per_conversation(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    added = activity(fake, "conversationUpdate", membersAdded=[{"id": f"28:{APP_ID}"}, {"id": "29:1user-teams-id"}])

    assert await post(url, added, fake.token(APP_ID)) == 200
    assert await post(url, dict(added, id="again"), fake.token(APP_ID)) == 200

    [welcome] = fake.posted()
    assert welcome.body["text"] == WELCOME_TEXT.format(bot_name="Mentorwijzer")
    assert welcome.body["text"].startswith("Hoi! Ik ben Mentorwijzer, een geautomatiseerde assistent")
    assert agent.messages == []


async def test_teams_no_welcome_when_only_a_user_is_added(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    added = activity(fake, "conversationUpdate", membersAdded=[{"id": "29:1user-teams-id"}])

    assert await post(url, added, fake.token(APP_ID)) == 200
    assert fake.posted() == []


async def test_teams_connector_429_once_still_delivers(fake, serve):
    fake.fail_next(429, times=1, retry_after="1")
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    [sent] = fake.posted()
    assert sent.body["text"] == "Hoi!"


async def test_teams_connector_5xx_gives_up_after_bounded_attempts(fake, serve, monkeypatch, caplog):
    monkeypatch.setattr(TeamsOutput, "max_attempts", 3)
    fake.fail_next(503, times=5, retry_after=None)
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    assert fake.posted() == []
    assert fake.pending_failures() == 2  # three attempts used, then given up
    assert "not delivered after 3 attempt(s); last status 503" in caplog.text
    assert "Hoi!" not in caplog.text


async def test_teams_single_tenant_token_from_tenant_endpoint(fake, serve):
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD, tenant_id=TENANT), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    [token_request] = fake.tokens_requested()
    assert token_request.path == f"/{TENANT}/oauth2/v2.0/token"
    assert token_request.body["client_id"] == APP_ID
    assert len(fake.posted()) == 1


async def test_teams_single_tenant_refuses_other_tenant(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD, tenant_id=TENANT), agent)
    body = activity(fake, conversation="a:other")
    body["conversation"]["tenantId"] = "99999999-0000-4000-8000-000000000000"
    body["channelData"] = {"tenant": {"id": "99999999-0000-4000-8000-000000000000"}}

    assert await post(url, body, fake.token(APP_ID)) == 403
    assert agent.messages == []


async def test_teams_credentials_fall_back_to_settings(monkeypatch):
    monkeypatch.setenv("MICROSOFT_APP_ID", APP_ID)
    monkeypatch.setenv("MICROSOFT_APP_PASSWORD", APP_PASSWORD)
    monkeypatch.setenv("MICROSOFT_TENANT_ID", TENANT)
    get_settings.cache_clear()

    channel = TeamsInput.from_credentials(None)

    assert (channel.app_id, channel.app_password, channel.tenant_id) == (APP_ID, APP_PASSWORD, TENANT)
    assert channel.name() == "teams" and channel.url_prefix() == "teams"


@pytest.fixture(scope="module")
def rasa_with_teams(tmp_path_factory):
    """``rasa run`` + action server with the Teams channel in credentials.yml, against the fake."""
    if not rasa_servers.MODEL.exists():
        pytest.skip(f"no trained model at {rasa_servers.MODEL} (run `make train`)")
    bf = FakeBotFramework().start()
    running = rasa_servers.Servers(tmp_path_factory.mktemp("teams"), extra_credentials=(
        "bot.channels.teams.TeamsInput:\n"
        f"  app_id: \"{APP_ID}\"\n"
        f"  app_password: \"{APP_PASSWORD}\"\n"
        f"  open_id_metadata_url: \"{bf.open_id_url}\"\n"
        f"  oauth_base_url: \"{bf.base_url}\"\n"
    ))
    try:
        running.start()
        yield running, bf
    finally:
        running.stop()
        bf.stop()


def test_teams_rasa_run_answers_through_the_connector(rasa_with_teams):
    running, bf = rasa_with_teams
    url = f"{running.rasa_url}/webhooks/teams/webhook"
    body = activity(bf, conversation=f"a:{uuid.uuid4().hex}")

    reply = httpx.post(url, json=body, headers={"Authorization": f"Bearer {bf.token(APP_ID)}"}, timeout=60)
    assert reply.status_code == 200
    assert httpx.post(url, json=body, timeout=10).status_code == 401

    posted = bf.wait_for(1, timeout=30)
    assert all(p.body["type"] == "message" and p.body["from"]["id"] == f"28:{APP_ID}" for p in posted)
    assert any(p.body.get("text") or p.body.get("attachments") for p in posted)
    sender = teams_sender(TENANT, "aad-object-id-1")  # ":" is allowed in a URL path; Sanic does not unquote
    tracker = httpx.get(f"{running.rasa_url}/conversations/{sender}/tracker",
                        params={"token": running.api_token}, timeout=10).json()
    assert tracker["latest_input_channel"] == "teams"
    metadata = tracker["latest_message"]["metadata"]
    assert {k: v for k, v in metadata.items() if k != "teams_reference"} == {"channel": "teams", "message_id": body["id"]}


def test_teams_redelivered_scan_answer_is_stored_once(rasa_with_teams):
    """The Bot Connector re-sends an activity (same id) when our reply was late: one answer, not two."""
    running, bf = rasa_with_teams
    url = f"{running.rasa_url}/webhooks/teams/webhook"
    mentor = f"aad-{uuid.uuid4().hex[:12]}"
    user = {"id": f"29:{mentor}", "name": "Juf Test", "aadObjectId": mentor}
    conversation = f"a:{uuid.uuid4().hex}"

    def deliver(body: dict) -> None:
        reply = httpx.post(url, json=body, headers={"Authorization": f"Bearer {bf.token(APP_ID)}"}, timeout=60)
        assert reply.status_code == 200

    deliver(activity(bf, conversation=conversation, text="/start_scan", **{"from": user}))
    answer = activity(bf, conversation=conversation, text="4", **{"from": user})
    deliver(answer)
    deliver(answer)  # re-delivered: same activity id
    sender = teams_sender(TENANT, mentor)
    assert stored_answers(running, sender) == {"1.1.a": "4"}  # not also taken as the answer to 1.1.b

    deliver(activity(bf, conversation=conversation, text="2", **{"from": user}))
    assert stored_answers(running, sender) == {"1.1.a": "4", "1.1.b": "2"}
