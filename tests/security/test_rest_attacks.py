"""Acting as someone else over REST, and the doors around it: Rasa's HTTP API and the action server."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.integration.servers import Servers

SECRET_HEADER = "X-Mentorwijzer-Channel-Secret"


def webhook(target: Servers) -> str:
    return f"{target.rasa_url}/webhooks/rest/webhook"


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


@pytest.fixture(scope="module")
def victim(target):
    """A Telegram mentor with a stored profile (the bridge speaks for them with the secret)."""
    sender = f"tg-{uuid.uuid4().int % 10**9}"
    target.say(sender, "hoi")
    return sender


EXPORT = "mentorwijzer-gegevens.json"  # the file name of a mentor's data export


@pytest.mark.parametrize("message", ["/show_my_data", '/delete_my_data{"confirm": "ja"}'])
def test_rest_impersonating_a_telegram_mentor_is_refused(target, victim, message):
    reply = httpx.post(webhook(target), json={"sender": victim, "message": message}, timeout=60)
    assert reply.status_code == 403
    assert EXPORT not in reply.text and victim not in reply.text
    assert EXPORT in json.dumps(target.say(victim, "/show_my_data"))  # and nothing was deleted


@pytest.mark.parametrize("sender", ["teams:tenant-1:aad-1", "TG-424242", " tg-424242", "Teams:x:y"])
def test_rest_protected_namespaces_need_the_secret_in_any_spelling(target, sender):
    reply = httpx.post(webhook(target), json={"sender": sender, "message": "/show_my_data"}, timeout=60)
    assert reply.status_code == 403 and reply.json()["error"] == "forbidden"


def test_rest_wrong_channel_secret_is_refused_even_for_plain_ids(target):
    reply = httpx.post(webhook(target), json={"sender": "plain-id", "message": "hoi"},
                       headers={SECRET_HEADER: "guessed"}, timeout=60)
    assert reply.status_code == 403


def test_rest_plain_ids_keep_working_without_secret(target):
    reply = httpx.post(webhook(target), json={"sender": f"dev-{uuid.uuid4().hex[:8]}", "message": "hoi"}, timeout=60)
    assert reply.status_code == 200 and texts(reply.json()).strip()


def test_rest_cross_site_text_plain_body_is_refused(target, victim):
    """What a web page can post blind (no CORS preflight): text/plain carrying JSON."""
    body = json.dumps({"sender": "dev-csrf", "message": '/delete_my_data{"confirm": "ja"}'}).encode()
    reply = httpx.post(webhook(target), content=body, headers={"Content-Type": "text/plain"}, timeout=60)
    assert reply.status_code == 415


def test_rest_oversize_body_gets_413(target):
    reply = httpx.post(webhook(target), json={"sender": "dev-big", "message": "x" * 300_000}, timeout=60)
    assert reply.status_code == 413 and reply.json()["error"] == "too_large"


@pytest.mark.parametrize("method,path", [("GET", "/conversations/{victim}/tracker"), ("PUT", "/model"),
                                         ("GET", "/status"), ("POST", "/conversations/{victim}/tracker/events")])
def test_api_without_token_is_refused(target, victim, method, path):
    reply = httpx.request(method, target.rasa_url + path.format(victim=victim), json={}, timeout=30)
    assert reply.status_code == 401


def test_api_with_wrong_token_is_refused_and_right_token_works(target, victim):
    url = f"{target.rasa_url}/conversations/{victim}/tracker"
    assert httpx.get(url, params={"token": "guessed"}, timeout=30).status_code == 401
    assert httpx.get(url, params={"token": target.api_token}, timeout=30).status_code == 200


def forged_action_call(victim: str, action: str = "action_show_my_data") -> dict:
    return {"next_action": action, "sender_id": victim, "version": "3.6.21",
            "tracker": {"sender_id": victim, "slots": {}, "latest_message": {"text": "", "intent": {}, "entities": []},
                        "events": [], "latest_input_channel": "rest"},
            "domain": {}}


@pytest.mark.parametrize("headers", [{}, {"X-Mentorwijzer-Action-Secret": "guessed"},
                                     {"X-Mentorwijzer-Action-Secret": ""}])
def test_action_server_refuses_a_forged_call(target, victim, headers):
    reply = httpx.post(f"http://127.0.0.1:{target.action_port}/webhook", json=forged_action_call(victim),
                       headers=headers, timeout=30)
    assert reply.status_code == 401
    assert EXPORT not in reply.text and victim not in reply.text


def test_action_server_lists_nothing_without_secret(target):
    assert httpx.get(f"http://127.0.0.1:{target.action_port}/actions", timeout=30).status_code == 401
    assert httpx.get(f"http://127.0.0.1:{target.action_port}/health", timeout=30).status_code == 200


def test_action_server_obeys_rasa_with_the_secret(target, victim):
    """The same call with the secret works: the refusal above is the secret, not a broken call."""
    reply = httpx.post(f"http://127.0.0.1:{target.action_port}/webhook", json=forged_action_call(victim),
                       headers={"X-Mentorwijzer-Action-Secret": target.action_secret}, timeout=30)
    assert reply.status_code == 200 and EXPORT in reply.text
