"""The production topology on one machine (scripts/prod.sh): PostgreSQL, Redis, action server, two
Rasa servers and nginx; the public port serves no REST and no API while the internal one serves REST,
a small load test with all three faults (through the internal port) loses and duplicates nothing
(scan answers, forwarded questions and their answers), the fuzz crashes nothing and finds the trust
boundary closed, `stop` leaves no process behind and `destroy` no file.
Free ports and its own state dir, so it never touches a running `make serve-prod`. Works wherever the
checkout lives: inside a private (0700) directory PostgreSQL's files go to a directory of their own.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROD = ROOT / "scripts" / "prod.sh"
PG_BIN = Path(os.environ.get("PROD_PG_BIN", "/usr/lib/postgresql/15/bin"))
BINARIES = {
    "postgres": PG_BIN / "postgres", "initdb": PG_BIN / "initdb", "pg_ctl": PG_BIN / "pg_ctl", "psql": PG_BIN / "psql",
    "redis-server": Path("/usr/bin/redis-server"), "redis-cli": Path("/usr/bin/redis-cli"), "nginx": Path("/usr/sbin/nginx"),
}
MISSING = [name for name, path in BINARIES.items() if not path.exists()]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(MISSING), reason=f"production binaries missing: {', '.join(MISSING)} "
                                             "(apt-get install -y postgresql redis-server nginx)"),
]


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else f"({path} missing)"


def recorded_pids(prod_dir: Path) -> dict[str, int]:
    pids = {}
    for file in prod_dir.glob("*.pid"):
        try:
            pids[file.stem] = int(file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def figures(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def pg_dir(prod_dir: Path) -> Path:
    """Where prod.sh keeps PostgreSQL's files: recorded in pg.location when outside PROD_DIR."""
    location = prod_dir / "pg.location"
    return Path(location.read_text().strip()) if location.exists() else prod_dir / "pg"


@pytest.fixture(scope="module")
def prod():
    pg, redis, actions, rasa_a, rasa_b, http, internal = free_ports(7)
    prod_dir = ROOT / "var" / f"prod-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ, "PROD_DIR": str(prod_dir), "PROD_PG_PORT": str(pg), "PROD_REDIS_PORT": str(redis),
        "PROD_ACTIONS_PORT": str(actions), "PROD_RASA_PORTS": f"{rasa_a} {rasa_b}", "PROD_HTTP_PORT": str(http),
        "PROD_INTERNAL_PORT": str(internal),
        # Tickets of the killed Rasa server expire sooner than the default 60 s: a shorter test.
        "PROD_LOCK_LIFETIME": "20",
        # Also serve /webhooks/teams/ (dummy app id, token checks against a closed local port).
        "PROD_TEAMS": "1",
    }
    # The stack's own values come from its prod.env; a shell's (e.g. after `eval "$(prod.sh env)"`) must not leak in.
    for name in ("PROD_MODEL", "MENTORWIJZER_DB_URL", "MENTORWIJZER_TRACKER_DB_URL", "MENTORWIJZER_VAR_DIR",
                 "MENTORWIJZER_CHANNEL_SECRET", "MENTORWIJZER_ACTION_SECRET", "MENTORWIJZER_LOG_KEY",
                 "MENTORWIJZER_RASA_URL", "MENTORWIJZER_HOST"):
        env.pop(name, None)
    started = subprocess.run([str(PROD), "start"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    try:
        if started.returncode != 0:
            files = sorted((prod_dir / "logs").glob("*.log")) + [pg_dir(prod_dir) / "postgres.log"]
            logs = "\n".join(f"--- {log.name}\n{tail(log)}" for log in files)
            pytest.fail(f"prod.sh start failed:\n{started.stderr}\n{logs}")
        yield {"env": env, "dir": prod_dir, "http": http, "internal": internal, "actions": actions,
               "pids": recorded_pids(prod_dir), "secrets": read_env_file(prod_dir / "prod.env"),
               "pg_dir": pg_dir(prod_dir)}
    finally:
        outside = pg_dir(prod_dir)
        subprocess.run([str(PROD), "destroy"], env=env, cwd=ROOT, capture_output=True, timeout=300)
        shutil.rmtree(prod_dir, ignore_errors=True)
        if outside.parent == Path("/var/tmp") and outside.name.startswith("mentorwijzer-pg."):
            shutil.rmtree(outside, ignore_errors=True)


def test_prod_public_port_serves_no_rest_and_no_api(prod):
    public = f"http://127.0.0.1:{prod['http']}"
    token = prod["secrets"]["RASA_AUTH_TOKEN"]
    message = {"sender": "door-public", "message": "hoi"}
    assert httpx.post(f"{public}/webhooks/rest/webhook", json=message, timeout=30).status_code == 404
    assert httpx.get(f"{public}/conversations/x/tracker", timeout=30).status_code == 404
    # Not even with the right API token: the API is not behind this door at all.
    assert httpx.get(f"{public}/conversations/x/tracker", params={"token": token}, timeout=30).status_code == 404
    assert httpx.get(f"{public}/status", params={"token": token}, timeout=30).status_code == 404


def test_prod_internal_port_serves_rest_with_channel_proof(prod):
    rest = f"http://127.0.0.1:{prod['internal']}/webhooks/rest/webhook"
    secret = prod["secrets"]["MENTORWIJZER_CHANNEL_SECRET"]
    plain = httpx.post(rest, json={"sender": "door-internal", "message": "wat doet een schoolopleider?"}, timeout=120)
    assert plain.status_code == 200 and any(m.get("text") for m in plain.json()), plain.text
    telegram = {"sender": "tg-777000111", "message": "wat doet een schoolopleider?"}
    assert httpx.post(rest, json=telegram, timeout=120).status_code == 403
    assert httpx.post(rest, json=telegram, headers={"X-Mentorwijzer-Channel-Secret": "wrong"}, timeout=120).status_code == 403
    bridged = httpx.post(rest, json=telegram, headers={"X-Mentorwijzer-Channel-Secret": secret}, timeout=120)
    assert bridged.status_code == 200 and any(m.get("text") for m in bridged.json()), bridged.text
    assert httpx.get(f"http://127.0.0.1:{prod['internal']}/conversations/x/tracker", timeout=30).status_code == 404


def test_prod_action_server_obeys_only_rasa(prod):
    actions = f"http://127.0.0.1:{prod['actions']}"
    assert httpx.get(f"{actions}/health", timeout=30).status_code == 200
    call = {"next_action": "action_session_start", "sender_id": "door-actions", "tracker": {"sender_id": "door-actions"}}
    assert httpx.post(f"{actions}/webhook", json=call, timeout=30).status_code == 401
    assert httpx.post(f"{actions}/webhook", json=call, headers={"X-Mentorwijzer-Action-Secret": "wrong"},
                      timeout=30).status_code == 401
    assert httpx.get(f"{actions}/actions", timeout=30).status_code == 401


def test_prod_loadtest_with_faults_loses_and_duplicates_nothing(prod):
    result = subprocess.run(
        [sys.executable, "scripts/loadtest.py", "--mentors", "6", "--concurrency", "3", "--faults",
         "--base-url", f"http://127.0.0.1:{prod['internal']}", "--prod-dir", str(prod["dir"]), "--max-seconds", "600",
         "--seed", "7"],
        env=prod["env"], cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    print(result.stdout)
    summary = next((line for line in result.stdout.splitlines() if line.startswith("mentors=")), "")
    assert summary, f"no summary line:\n{result.stdout}\n{result.stderr[-3000:]}"
    numbers = figures(summary)
    assert numbers["lost"] == "0" and numbers["duplicated"] == "0", result.stdout
    assert numbers["finished"] == "6" and numbers["wrong"] == "0", result.stdout
    # Every mentor forwarded one question: stored once, answered in chat, the answer seen exactly once.
    assert numbers["questions"] == "6" and numbers["q_answered"] == "6", result.stdout
    assert numbers["q_lost"] == "0" and numbers["q_duplicated"] == "0", result.stdout
    assert result.stdout.count("fault: ") == 3, result.stdout
    assert result.returncode == 0, result.stdout


def test_prod_fuzz_crashes_nothing_and_stores_only_valid_answers(prod):
    result = subprocess.run(
        [sys.executable, "scripts/fuzz.py", "--messages", "1000", "--concurrency", "8",
         "--base-url", f"http://127.0.0.1:{prod['internal']}", "--public-url", f"http://127.0.0.1:{prod['http']}",
         "--prod-dir", str(prod["dir"]), "--max-seconds", "240",
         "--seed", "11"],
        env=prod["env"], cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    print(result.stdout)
    summary = next((line for line in result.stdout.splitlines() if line.startswith("fuzz ")), "")
    assert summary, f"no summary line:\n{result.stdout}\n{result.stderr[-3000:]}"
    numbers = figures(summary)
    assert numbers["crashes"] == "0", result.stdout
    assert int(numbers["messages"]) >= 1000
    assert numbers["teams"] == "401", result.stdout  # the Teams webhook refuses requests without a valid token
    assert numbers["public_not_404"] == "0" and numbers["protected_not_403"] == "0", result.stdout
    assert numbers["refused_traces"] == "0" and numbers["secret_accepted"] == "yes", result.stdout
    assert result.returncode == 0, result.stdout


def test_prod_stop_leaves_no_processes(prod):
    pids = recorded_pids(prod["dir"])
    assert set(pids) >= {"postgres", "redis", "actions", "nginx"}
    result = subprocess.run([str(PROD), "stop"], env=prod["env"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert not list(prod["dir"].glob("*.pid"))
    ports = [int(prod["env"][key]) for key in ("PROD_PG_PORT", "PROD_REDIS_PORT", "PROD_ACTIONS_PORT", "PROD_HTTP_PORT",
                                                 "PROD_INTERNAL_PORT")]
    ports += [int(port) for port in prod["env"]["PROD_RASA_PORTS"].split()]
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def test_prod_postgres_files_live_where_postgres_can_reach_them(prod):
    pg_root = prod["pg_dir"]
    assert (pg_root / "data" / "PG_VERSION").exists()
    assert not (pg_root / "pwfile").exists()  # the superuser password file is gone after initdb
    private = any(not parent.stat().st_mode & 0o001 for parent in prod["dir"].parents)
    if os.geteuid() == 0 and private:  # PostgreSQL runs as another user, who cannot enter the checkout
        assert pg_root.parent == Path("/var/tmp") and pg_root.name.startswith("mentorwijzer-pg."), pg_root
        assert pg_root.stat().st_mode & 0o777 == 0o700
        assert pg_root.stat().st_uid != 0
    else:
        assert pg_root == prod["dir"] / "pg"


def test_prod_destroy_leaves_nothing_behind(prod):
    result = subprocess.run([str(PROD), "destroy"], env=prod["env"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert not prod["dir"].exists(), sorted(str(path) for path in prod["dir"].rglob("*"))
    assert not prod["pg_dir"].exists()
