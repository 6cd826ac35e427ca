"""Attacks on the Teams channel's trust boundary, played against the real channel on 127.0.0.1.

Bot Framework signs activities of every channel with the same keys (``ALL_CHANNELS``), so a valid
token alone does not prove a Teams user: over Direct Line or Web Chat the client chooses ``from``.
Each test sends what an attacker can send and checks the refusal and that nothing reached the agent
(no user message, no reply through the connector).
"""
from __future__ import annotations

import json
import logging
from typing import Optional

import aiohttp
import pytest

from bot.channels.teams import TeamsInput, TeamsOutput
from bot.settings import get_settings
from tests.integration.fake_botframework import ALL_CHANNELS, FakeBotFramework
from tests.integration.test_teams import (  # noqa: F401  (serve is a fixture)
    APP_ID,
    APP_PASSWORD,
    HTTP_TIMEOUT,
    TENANT,
    StubAgent,
    activity,
    post,
    serve,
)

OTHER_TENANT = "99999999-0000-4000-8000-000000000000"
VICTIM_AAD = "aad-object-id-1"


@pytest.fixture
def fake(monkeypatch):
    """A Bot Framework whose signing key endorses Direct Line, Web Chat and the Emulator too."""
    bf = FakeBotFramework(endorsements=ALL_CHANNELS).start()
    bf.patch(monkeypatch)
    TeamsOutput.clear_token_cache()
    yield bf
    TeamsOutput.clear_token_cache()
    bf.stop()


async def post_bytes(url: str, data: bytes, content_type: str, token: Optional[str]) -> int:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(url, data=data, headers=headers) as reply:
            await reply.read()
            return reply.status


def assert_nothing_reached(agent: StubAgent, fake: FakeBotFramework) -> None:
    assert agent.messages == []
    assert fake.posted() == []


def without_tenant(body: dict) -> dict:
    body["conversation"].pop("tenantId", None)
    body.pop("channelData", None)
    return body


def in_tenant(body: dict, tenant: str) -> dict:
    body["conversation"]["tenantId"] = tenant
    body["channelData"] = {"tenant": {"id": tenant}}
    return body


@pytest.mark.parametrize("channel_id", ["directline", "webchat", "emulator", None])
async def test_teams_signed_activity_from_other_channel_is_refused(fake, serve, channel_id):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake, channelId=channel_id)
    if channel_id is None:
        del body["channelId"]

    assert await post(url, body, fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_conversation_update_from_directline_gets_no_welcome(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake, "conversationUpdate", channelId="directline", membersAdded=[{"id": f"28:{APP_ID}"}])

    assert await post(url, body, fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_message_without_tenant_is_refused(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, without_tenant(activity(fake)), fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_message_without_tenant_is_refused_when_tenant_configured(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD, tenant_id=TENANT), agent)

    assert await post(url, without_tenant(activity(fake)), fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_message_from_other_tenant_is_refused_when_tenant_configured(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD, tenant_id=TENANT), agent)

    assert await post(url, in_tenant(activity(fake), OTHER_TENANT), fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_configured_tenant_from_settings_is_enforced(fake, serve, monkeypatch):
    monkeypatch.setenv("MICROSOFT_APP_ID", APP_ID)
    monkeypatch.setenv("MICROSOFT_APP_PASSWORD", APP_PASSWORD)
    monkeypatch.setenv("MICROSOFT_TENANT_ID", TENANT)
    get_settings.cache_clear()
    agent = StubAgent()
    url = await serve(TeamsInput.from_credentials(None), agent)

    assert await post(url, in_tenant(activity(fake), OTHER_TENANT), fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_configured_tenant_matches_case_insensitively(fake, serve):
    tenant = "AAAABBBB-cccc-4DDD-8eee-FFFF00001111"
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD, tenant_id=tenant.upper()), agent)

    assert await post(url, in_tenant(activity(fake), tenant), fake.token(APP_ID)) == 200
    assert [m.sender_id for m in agent.messages] == [f"teams:{tenant.lower()}:{VICTIM_AAD}"]


async def test_teams_conflicting_tenants_are_refused(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake)
    body["channelData"] = {"tenant": {"id": OTHER_TENANT}}  # conversation.tenantId stays TENANT

    assert await post(url, body, fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_tenant_that_would_shift_the_sender_id_is_refused(fake, serve):
    """``teams:<a:b>:<c>`` and ``teams:<a>:<b:c>`` must not be the same mentor: ids never hold ':'."""
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = in_tenant(activity(fake), f"{TENANT}:{VICTIM_AAD}")

    assert await post(url, body, fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_message_without_aad_object_id_is_refused(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake, **{"from": {"id": VICTIM_AAD, "name": "Juf Test"}})  # from.id chosen to look like one

    assert await post(url, body, fake.token(APP_ID)) == 403
    assert_nothing_reached(agent, fake)


async def test_teams_same_aad_object_id_in_two_tenants_gets_two_senders(fake, serve):
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200
    assert await post(url, in_tenant(activity(fake), OTHER_TENANT), fake.token(APP_ID)) == 200

    assert [m.sender_id for m in agent.messages] == [f"teams:{TENANT}:{VICTIM_AAD}",
                                                     f"teams:{OTHER_TENANT}:{VICTIM_AAD}"]


async def test_teams_text_plain_body_is_refused_with_415(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    data = json.dumps(activity(fake)).encode()

    assert await post_bytes(url, data, "text/plain", fake.token(APP_ID)) == 415
    assert_nothing_reached(agent, fake)


async def test_teams_form_body_without_token_gets_415_before_401(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post_bytes(url, b"type=message&text=hoi", "application/x-www-form-urlencoded", None) == 415
    assert_nothing_reached(agent, fake)


async def test_teams_json_with_charset_parameter_is_accepted(fake, serve):
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    data = json.dumps(activity(fake)).encode()

    assert await post_bytes(url, data, "application/json; charset=utf-8", fake.token(APP_ID)) == 200
    assert len(agent.messages) == 1


async def test_teams_oversize_body_is_refused_with_413(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    body = activity(fake, text="x" * (get_settings().max_body_bytes + 1))

    assert await post(url, body, fake.token(APP_ID)) == 413
    assert_nothing_reached(agent, fake)


async def test_teams_oversize_body_without_token_gets_413_before_401(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    data = b"[" * (get_settings().max_body_bytes + 1)  # would also be a parser bomb

    assert await post_bytes(url, data, "application/json", None) == 413
    assert_nothing_reached(agent, fake)


async def test_teams_body_limit_follows_the_setting(fake, serve, monkeypatch):
    monkeypatch.setenv("MENTORWIJZER_MAX_BODY_BYTES", "2048")
    get_settings.cache_clear()
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake, text="x" * 4096), fake.token(APP_ID)) == 413
    assert_nothing_reached(agent, fake)


async def test_teams_deeply_nested_json_with_token_is_not_a_server_error(fake, serve):
    agent = StubAgent()
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)
    data = b"[" * 100_000 + b"]" * 100_000  # under the size limit, beyond the parser's recursion limit

    assert await post_bytes(url, data, "application/json", fake.token(APP_ID)) == 401
    assert_nothing_reached(agent, fake)


async def test_teams_valid_activity_reaches_agent_as_tenant_and_aad(fake, serve):
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD, tenant_id=TENANT), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    [message] = agent.messages
    assert message.sender_id == f"teams:{TENANT}:{VICTIM_AAD}"
    assert message.input_channel == "teams"
    assert len(fake.posted()) == 1


async def test_teams_logs_carry_no_ids_names_or_text_in_clear(fake, serve, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.channels.teams")
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD, tenant_id=TENANT), agent)
    secret_text = "geheime-tekst-van-de-mentor"

    assert await post(url, activity(fake, text=secret_text), fake.token(APP_ID)) == 200
    assert await post(url, in_tenant(activity(fake), OTHER_TENANT), fake.token(APP_ID)) == 403

    assert "Teams message from" in caplog.text and "another tenant" in caplog.text
    for clear in (TENANT, OTHER_TENANT, VICTIM_AAD, "29:1user-teams-id", "Juf Test", secret_text, "a:1conv-personal"):
        assert clear not in caplog.text
