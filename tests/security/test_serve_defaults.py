"""`make serve` on a fresh clone: no channel settings, no token, nothing reachable beyond 127.0.0.1."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx
import pytest

from tests.integration.servers import MODEL, ROOT, free_port, wait_http

CHANNEL_SETTINGS = ("MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_TENANT_ID", "TELEGRAM_BOT_TOKEN",
                    "RASA_API_TOKEN", "MENTORWIJZER_HOST", "MENTORWIJZER_CHANNEL_SECRET",
                    "MENTORWIJZER_ACTION_SECRET", "MENTORWIJZER_ACTION_URL")


def other_local_addresses() -> list[str]:
    """Addresses of this machine other than 127.0.0.1 (a server bound to 0.0.0.0 answers on them)."""
    addresses = {"127.0.0.2"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            addresses.add(probe.getsockname()[0])
        except OSError:
            pass
    return sorted(addresses - {"127.0.0.1", "0.0.0.0"})


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def make_serve(tmp_path_factory):
    if not MODEL.exists():
        pytest.skip(f"no trained Rasa model at {MODEL} (run `make train`)")
    var = tmp_path_factory.mktemp("serve")
    env = {key: value for key, value in os.environ.items() if key not in CHANNEL_SETTINGS}
    rasa_port, actions_port = free_port(), free_port()
    env.update(RASA_PORT=str(rasa_port), MENTORWIJZER_ACTIONS_PORT=str(actions_port), MENTORWIJZER_VAR_DIR=str(var),
               MENTORWIJZER_DB_URL=f"sqlite:///{var / 'mentorwijzer.db'}",
               MENTORWIJZER_TRACKER_DB_URL=f"sqlite:///{var / 'tracker.db'}")
    log = open(var / "serve.log", "wb")
    process = subprocess.Popen(["scripts/serve.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    wait_http(f"http://127.0.0.1:{rasa_port}/webhooks/rest/", timeout=300, process=process)
    yield process, rasa_port, actions_port, var
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_serve_without_channel_settings_answers_rest_on_loopback(make_serve):
    _, rasa_port, _, var = make_serve
    reply = httpx.post(f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook",
                       json={"sender": "nieuwe-collega", "message": "hoi"}, timeout=60)
    assert reply.status_code == 200 and reply.json()
    output = (var / "serve.log").read_text(errors="replace")
    notice = [line for line in output.splitlines() if "Teams off" in line]
    assert len(notice) == 1 and "Telegram off" in notice[0] and "API off" in notice[0]
    assert "teams" not in (var / "run" / "credentials.yml").read_text().lower()


def test_serve_listens_on_loopback_only(make_serve):
    _, rasa_port, actions_port, _ = make_serve
    for address in other_local_addresses():
        assert not reachable(address, rasa_port), f"Rasa answers on {address}"
        assert not reachable(address, actions_port), f"the action server answers on {address}"


def test_serve_has_no_http_api_without_token(make_serve):
    _, rasa_port, _, _ = make_serve
    assert httpx.get(f"http://127.0.0.1:{rasa_port}/conversations/nieuwe-collega/tracker", timeout=30).status_code == 404
    assert httpx.put(f"http://127.0.0.1:{rasa_port}/model", json={}, timeout=30).status_code in (404, 405)


def test_serve_secrets_are_generated_private(make_serve):
    _, _, _, var = make_serve
    secrets_dir = var / "secrets"
    assert {path.name for path in secrets_dir.iterdir()} >= {"action-secret", "channel-secret", "log-key"}
    assert all(path.stat().st_mode & 0o077 == 0 for path in secrets_dir.iterdir())


def test_serve_ctrl_c_stops_both_servers(make_serve):
    process, rasa_port, actions_port, _ = make_serve
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (reachable("127.0.0.1", rasa_port) or reachable("127.0.0.1", actions_port)):
        time.sleep(0.5)
    assert not reachable("127.0.0.1", rasa_port) and not reachable("127.0.0.1", actions_port)
