"""Cold start (issue 17): the action server answers ``/health`` only once the knowledge base and its
ranker are loaded, so no turn ever fits the ranker. Speed itself is measured by `make bench`
(``--only coldstart``), not asserted here."""
from __future__ import annotations

import os

import httpx
import pytest

from tests.integration.servers import Servers, free_port

READY = "knowledge base ready"
FITTED = "knowledge index fitted"


@pytest.fixture
def action_server(tmp_path):
    """Only the action server (no Rasa), the way tests/integration/servers.py starts it."""
    running = Servers(tmp_path, action_port=free_port())
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false",
           "MENTORWIJZER_DB_URL": f"sqlite:///{tmp_path / 'mentorwijzer.db'}",
           "MENTORWIJZER_VAR_DIR": str(tmp_path / "var"), "MENTORWIJZER_HOST": "127.0.0.1",
           "MENTORWIJZER_ACTION_SECRET": running.action_secret}
    try:
        running.start_actions(env)  # returns as soon as /health answers
        yield running
    finally:
        running.stop()


def knowledge_call(sender: str, text: str) -> dict:
    """What Rasa sends for action_answer_question after 'wat doet een schoolopleider'."""
    return {"next_action": "action_answer_question", "sender_id": sender, "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": sender, "slots": {}, "events": [], "paused": False, "followup_action": None,
                        "active_loop": {}, "latest_action_name": "action_listen", "latest_input_channel": "rest",
                        "latest_message": {"text": text, "intent": {"name": "ask_knowledge", "confidence": 0.9},
                                           "entities": [], "metadata": {}}}}


def test_cold_start_knowledge_is_loaded_before_health_answers(action_server):
    log = action_server.workdir / "actions.log"
    at_health = log.read_text(errors="replace")
    assert READY in at_health
    assert at_health.index(READY) < at_health.index("action server listening")


def test_cold_start_first_question_fits_nothing(action_server):
    log = action_server.workdir / "actions.log"
    before = len(log.read_text(errors="replace"))
    response = httpx.post(f"http://127.0.0.1:{action_server.action_port}/webhook",
                          json=knowledge_call("cold-start", "wat doet een schoolopleider"),
                          headers={"X-Mentorwijzer-Action-Secret": action_server.action_secret}, timeout=60)
    assert response.status_code == 200, response.text
    texts = [message.get("text") or "" for message in response.json()["responses"]]
    assert any("Bron:" in text for text in texts), texts
    assert FITTED not in log.read_text(errors="replace")[before:]
