"""Start and stop the real servers (action server, Rasa) for integration tests.

Servers run as subprocesses on free ports on 127.0.0.1 with their own databases; tests talk to
them over HTTP exactly as a channel would.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL = ROOT / "models" / "mentorwijzer.tar.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


@dataclass
class Servers:
    """An action server plus a Rasa server (REST channel, API with a token) sharing one work dir."""

    workdir: Path
    env: dict = field(default_factory=dict)
    action_port: int = 0
    rasa_port: int = 0
    processes: dict = field(default_factory=dict)
    extra_credentials: str = ""
    api_token: str = "test-api-token"
    action_secret: str = "test-action-secret"
    channel_secret: str = "test-channel-secret"
    _env: dict = field(default_factory=dict)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "endpoints.yml").write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{self.action_port}/webhook"\n'
            f'  headers:\n    X-Mentorwijzer-Action-Secret: "{self.action_secret}"\n'
            f'tracker_store:\n  type: bot.tracker_store.ForgettingSQLTrackerStore\n  dialect: "sqlite"\n'
            f'  db: "{self.workdir / "tracker.db"}"\n'
        )
        (self.workdir / "credentials.yml").write_text("bot.channels.rest.RestInput:\n" + self.extra_credentials)

    def start(self) -> "Servers":
        self.action_port = self.action_port or free_port()
        self.rasa_port = self.rasa_port or free_port()
        self._write_config()
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3",
               "MENTORWIJZER_DB_URL": f"sqlite:///{self.workdir / 'mentorwijzer.db'}",
               "MENTORWIJZER_TRACKER_DB_URL": f"sqlite:///{self.workdir / 'tracker.db'}",
               "MENTORWIJZER_VAR_DIR": str(self.workdir / "var"), "MENTORWIJZER_HOST": "127.0.0.1",
               "MENTORWIJZER_ACTION_SECRET": self.action_secret, "MENTORWIJZER_CHANNEL_SECRET": self.channel_secret,
               **self.env}
        try:
            self.start_actions(env)
            self.start_rasa(env)
        except Exception:
            self.stop()  # never leave half-started servers behind
            raise
        return self

    def start_actions(self, env: dict | None = None) -> None:
        env = env or self._env
        self._env = env
        log = open(self.workdir / "actions.log", "ab")
        self.processes["actions"] = subprocess.Popen(
            [str(BIN / "python"), "-m", "actions.server", "--port", str(self.action_port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_http(f"http://127.0.0.1:{self.action_port}/health", process=self.processes["actions"])

    def start_rasa(self, env: dict | None = None) -> None:
        env = env or self._env
        self._env = env
        log = open(self.workdir / "rasa.log", "ab")
        self.processes["rasa"] = subprocess.Popen(
            [str(BIN / "rasa"), "run", "--model", str(MODEL), "--enable-api", "--auth-token", self.api_token,
             "--interface", "127.0.0.1",
             "--port", str(self.rasa_port), "--endpoints", str(self.workdir / "endpoints.yml"),
             "--credentials", str(self.workdir / "credentials.yml")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_http(f"{self.rasa_url}/status?token={self.api_token}", timeout=300, process=self.processes["rasa"])

    def stop(self, name: str | None = None, sig: int = signal.SIGTERM) -> None:
        for key in [name] if name else list(self.processes):
            process = self.processes.pop(key, None)
            if process is None:
                continue
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def say(self, sender: str, message: str, metadata: dict | None = None) -> list[dict]:
        """As the channel bridges do: with the channel secret (so ``tg-``/``teams:`` ids work too)."""
        body = {"sender": sender, "message": message}
        if metadata:
            body["metadata"] = metadata
        response = httpx.post(f"{self.rasa_url}/webhooks/rest/webhook", json=body, timeout=60,
                              headers={"X-Mentorwijzer-Channel-Secret": self.channel_secret})
        response.raise_for_status()
        return response.json()


class ChannelApps:
    """Sanic servers with one input channel each, mounted the way ``rasa run`` does
    (``channel.register``), around a stub agent: for channel tests without a trained model."""

    def __init__(self) -> None:
        self._servers: list = []

    async def start(self, channel, agent) -> str:
        """Serve ``channel`` on a free port; returns its webhook URL."""
        import uuid

        from rasa.core.channels.channel import register
        from sanic import Sanic

        app = Sanic(f"channel_test_{uuid.uuid4().hex[:10]}", configure_logging=False)
        app.ctx.agent = agent
        register([channel], app, route="/webhooks/")
        port = free_port()
        server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
        await server.startup()
        self._servers.append(server)
        return f"http://127.0.0.1:{port}/webhooks/{channel.name()}/webhook"

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
