"""Shared secrets between our processes: taken from the environment, else generated once under
``var/secrets/`` (mode 600), so a fresh clone is closed by default and needs no set-up.

Each secret protects one door (docs/deployment.md, threat model):

* ``channel-secret`` (``MENTORWIJZER_CHANNEL_SECRET``): the Telegram bridge -> Rasa's REST channel;
  only with it may a request speak for a ``tg-`` or ``teams:`` sender;
* ``action-secret`` (``MENTORWIJZER_ACTION_SECRET``): Rasa -> the action server;
* ``log-key`` (``MENTORWIJZER_LOG_KEY``): keys the pseudonyms of sender ids in logs;
* ``rasa-api-token`` (``RASA_API_TOKEN``): Rasa's HTTP API. Never generated implicitly: the API
  stays off until an operator sets it or runs ``mentorwijzer api-token``.

Processes on one machine share ``var/`` and therefore the generated values; in production every
value comes from the environment file (deploy/README.md).
"""
from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Optional

from bot.settings import get_settings

CHANNEL_SECRET = "channel-secret"
ACTION_SECRET = "action-secret"
LOG_KEY = "log-key"
API_TOKEN = "rasa-api-token"
_FROM_SETTINGS = {
    CHANNEL_SECRET: "channel_secret",
    ACTION_SECRET: "action_secret",
    LOG_KEY: "log_key",
    API_TOKEN: "api_token",
}
# Header names: custom headers are never logged by nginx, Sanic or Rasa (a query token would be).
CHANNEL_SECRET_HEADER = "X-Mentorwijzer-Channel-Secret"
ACTION_SECRET_HEADER = "X-Mentorwijzer-Action-Secret"


def secrets_dir() -> Path:
    return get_settings().var_dir / "secrets"


def _read(path: Path) -> Optional[str]:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return value or None


def _generate(path: Path) -> str:
    """Write a new random value; when another process was first, its value wins (one value per name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(temporary, path)  # atomic, and fails when the file already exists
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    value = _read(path)
    if value is None:
        raise RuntimeError(f"secret file {path} is empty")
    return value


def get(name: str, generate: bool = True) -> Optional[str]:
    """The configured value of a secret, else the generated one (created on first use if ``generate``)."""
    configured = getattr(get_settings(), _FROM_SETTINGS[name])
    if configured:
        return configured
    path = secrets_dir() / name
    value = _read(path)
    if value is None and generate:
        value = _generate(path)
    return value


def api_token() -> Optional[str]:
    """The HTTP API token, or None: then ``make serve`` runs Rasa without ``--enable-api``."""
    return get(API_TOKEN, generate=False)


def create_api_token() -> str:
    return get(API_TOKEN, generate=True) or ""


def matches(given: Optional[str], expected: Optional[str]) -> bool:
    """Constant-time comparison; an unset expected value never matches."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
