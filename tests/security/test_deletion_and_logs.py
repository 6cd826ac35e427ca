"""Deletion that cannot silently fail, retention of conversations, and logs that stay clean when
things break. Each test runs its own servers, because it kills or breaks them."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from tests.integration.servers import BIN, ROOT, Servers
from tests.security.conftest import start_servers


def event_texts(tracker_db: Path, sender: str) -> list[str]:
    with sqlite3.connect(tracker_db) as db:
        return [row[0] for row in db.execute("SELECT data FROM events WHERE sender_id = ?", (sender,))]


def identities(mentor_db: Path, sender: str) -> int:
    with sqlite3.connect(mentor_db) as db:
        return db.execute("SELECT count(*) FROM identities WHERE sender_id = ?", (sender,)).fetchone()[0]


def test_deletion_survives_an_immediate_restart_of_every_server(tmp_path):
    servers = start_servers(tmp_path)
    sender, marker = "dev-delete", f"geheim-{uuid.uuid4().hex[:8]}"
    try:
        servers.say(sender, "hoi")
        servers.say(sender, f"wat doet een schoolopleider bij {marker}")
        assert any(marker in data for data in event_texts(tmp_path / "tracker.db", sender))
        reply = servers.say(sender, '/delete_my_data{"confirm": "ja"}')
        assert "Verwijderd" in reply[0]["text"]
        servers.stop(sig=signal.SIGKILL)  # "a second later": no process gets to finish anything
        assert not any(marker in data for data in event_texts(tmp_path / "tracker.db", sender))
        assert not any('"event": "user"' in data for data in event_texts(tmp_path / "tracker.db", sender))
        assert identities(tmp_path / "mentorwijzer.db", sender) == 0  # not registered again either
        servers.start_actions()
        servers.start_rasa()
        assert servers.say(sender, "hoi")  # a fresh start ...
        assert not any(marker in data for data in event_texts(tmp_path / "tracker.db", sender))  # ... stays clean
    finally:
        servers.stop()


def test_purge_removes_conversation_events_past_retention(target):
    tracker_db = target.workdir / "tracker.db"
    old, new = f"dev-old-{uuid.uuid4().hex[:6]}", f"dev-new-{uuid.uuid4().hex[:6]}"
    target.say(old, "hoi")
    target.say(new, "hoi")
    with sqlite3.connect(tracker_db) as db:
        db.execute("UPDATE events SET timestamp = timestamp - 800 * 86400 WHERE sender_id = ?", (old,))
    env = {**os.environ, **target._env, "RASA_TELEMETRY_ENABLED": "false"}
    result = subprocess.run([str(BIN / "mentorwijzer"), "purge"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert event_texts(tracker_db, old) == [] and event_texts(tracker_db, new)


def logs(servers: Servers) -> str:
    return "\n".join((servers.workdir / name).read_text(errors="replace") for name in ("rasa.log", "actions.log"))


def test_crashing_action_and_failed_save_log_no_learning_goal(tmp_path):
    servers = start_servers(tmp_path)
    goal, later = f"leerdoel-{uuid.uuid4().hex[:8]}", f"leerdoel-{uuid.uuid4().hex[:8]}"
    try:
        servers.say("dev-crash", "ik wil de mentorscan invullen")
        with sqlite3.connect(tmp_path / "mentorwijzer.db") as db:  # the scan database fails ...
            db.execute("ALTER TABLE answers RENAME TO answers_gone")
            db.execute("ALTER TABLE mentors RENAME TO mentors_gone")
        servers.say("dev-crash", f"Mijn leerdoel is: {goal}")  # ... while a goal is in the tracker
        with sqlite3.connect(tmp_path / "tracker.db") as db:  # then Rasa cannot save conversations
            db.execute("ALTER TABLE events RENAME TO events_gone")
        httpx.post(f"{servers.rasa_url}/webhooks/rest/webhook", json={"sender": "dev-crash", "message": later},
                   timeout=60)
        time.sleep(1)
    finally:
        servers.stop()
    text = logs(servers)
    assert "failed: OperationalError" in text  # the failures are logged ...
    assert "Error happened when trying to save conversation tracker" in text
    assert goal not in text and later not in text  # ... without what the mentor wrote
    assert "dev-crash" not in (servers.workdir / "actions.log").read_text(errors="replace")
