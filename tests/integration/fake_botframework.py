"""A fake Microsoft Bot Framework on 127.0.0.1: OpenID metadata + JWKS, token endpoint, connector.

One aiohttp server in a background thread (its own event loop, so the bot under test can call it
from any loop or process) serves

* ``GET  /v1/.well-known/openidconfiguration`` and ``GET /v1/.well-known/keys``: the public half of
  a locally generated RSA key, endorsed for ``msteams`` (``endorsements=ALL_CHANNELS``: also for
  Direct Line, Web Chat and the Emulator, as Bot Framework's real keys are);
* ``POST /<tenant>/oauth2/v2.0/token``: records client-credential requests, returns an access token;
* ``POST /v3/conversations/<id>/activities[/<activity id>]``: the connector (``serviceUrl``),
  recording activities; ``fail_next(429)`` makes it refuse the next request(s) first.

:meth:`FakeBotFramework.patch` points Rasa's ``rasa.core.channels.botframework`` URLs
(``MICROSOFT_OPEN_ID_URI`` for token validation, ``MICROSOFT_OAUTH2_URL`` for outgoing tokens) here.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://api.botframework.com"
# Bot Framework signs for every channel with the same keys: a valid token does not prove Teams.
ALL_CHANNELS = ("msteams", "directline", "webchat", "emulator")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Recorded:
    path: str
    headers: dict
    body: Any


@dataclass
class FakeBotFramework:
    """The remote ends a Teams bot talks to, all on 127.0.0.1."""

    kid: str = "fake-key-1"
    endorsements: tuple = ("msteams",)
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    port: int = 0
    activities: list = field(default_factory=list)
    token_requests: list = field(default_factory=list)
    key_requests: int = 0
    _fail: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: Optional[asyncio.AbstractEventLoop] = None
    _thread: Optional[threading.Thread] = None
    _runner: Optional[web.AppRunner] = None

    # --- addresses -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_id_url(self) -> str:
        return f"{self.base_url}/v1/.well-known/openidconfiguration"

    @property
    def service_url(self) -> str:
        """What the activities carry as ``serviceUrl`` (Teams uses e.g. .../emea/)."""
        return f"{self.base_url}/teams/"

    def patch(self, monkeypatch) -> None:
        """Point Rasa's Bot Framework URLs at this fake for the duration of a test."""
        from rasa.core.channels import botframework

        monkeypatch.setattr(botframework, "MICROSOFT_OPEN_ID_URI", self.open_id_url)
        monkeypatch.setattr(botframework, "MICROSOFT_OAUTH2_URL", self.base_url)

    # --- tokens --------------------------------------------------------------------------------

    def jwk(self) -> dict:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256", "endorsements": list(self.endorsements)}

    def token(self, app_id: str, *, service_url: Optional[str] = None, key: Optional[rsa.RSAPrivateKey] = None,
              kid: Optional[str] = None, expires_in: int = 3600, issuer: str = ISSUER, **extra: Any) -> str:
        """A channel-to-bot token as Bot Framework signs it (override any part to forge one)."""
        now = int(time.time())
        claims = {"iss": issuer, "aud": app_id, "serviceurl": service_url or self.service_url,
                  "nbf": now - 60, "iat": now - 60, "exp": now + expires_in, **extra}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    # --- behaviour -----------------------------------------------------------------------------

    def fail_next(self, status: int = 429, times: int = 1, retry_after: Optional[str] = "1") -> None:
        """Refuse the next connector request(s) with ``status`` (and a Retry-After header)."""
        with self._lock:
            self._fail.extend([(status, retry_after)] * times)

    def pending_failures(self) -> int:
        with self._lock:
            return len(self._fail)

    def posted(self) -> list:
        with self._lock:
            return list(self.activities)

    def tokens_requested(self) -> list:
        with self._lock:
            return list(self.token_requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        """Block until ``count`` activities arrived (the fake runs in its own thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posted = self.posted()
            if len(posted) >= count:
                return posted
            time.sleep(0.05)
        raise TimeoutError(f"expected {count} activities, got {len(self.posted())}")

    # --- server --------------------------------------------------------------------------------

    async def _openid(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": ISSUER,
            "authorization_endpoint": "https://invalid.example/authorize",
            "jwks_uri": f"{self.base_url}/v1/.well-known/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        })

    async def _keys(self, request: web.Request) -> web.Response:
        with self._lock:
            self.key_requests += 1
        return web.json_response({"keys": [self.jwk()]})

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        with self._lock:
            self.token_requests.append(Recorded(request.path, dict(request.headers), form))
            number = len(self.token_requests)
        if form.get("grant_type") != "client_credentials" or not form.get("client_secret"):
            return web.json_response({"error": "invalid_request"}, status=400)
        return web.json_response({"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
                                  "access_token": f"fake-access-token-{number}"})

    async def _activity(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            failure = self._fail.pop(0) if self._fail else None
            self.activities.append(Recorded(request.path, dict(request.headers), body))
            if failure is not None:
                self.activities.pop()  # refused: not delivered
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after else {}
            return web.json_response({"error": {"code": "TooManyRequests"}}, status=status, headers=headers)
        if not request.headers.get("Authorization", "").startswith("Bearer fake-access-token-"):
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        return web.json_response({"id": uuid.uuid4().hex})

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/.well-known/openidconfiguration", self._openid)
        app.router.add_get("/v1/.well-known/keys", self._keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_post("/teams/v3/conversations/{conversation}/activities", self._activity)
        app.router.add_post("/teams/v3/conversations/{conversation}/activities/{activity}", self._activity)
        return app

    def start(self) -> "FakeBotFramework":
        self.port = self.port or free_port()
        started = threading.Event()
        errors: list = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = web.AppRunner(self._app(), access_log=None)
                loop.run_until_complete(self._runner.setup())
                loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            except Exception as error:  # surfaced in start()
                errors.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-botframework", daemon=True)
        self._thread.start()
        if not started.wait(10) or errors:
            raise RuntimeError(f"fake Bot Framework did not start: {errors}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = self._loop = None
