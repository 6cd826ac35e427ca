"""Who is speaking: sender ids per channel, and the keyed pseudonyms under which they appear in logs.

A sender id carries its channel, and each channel proves it before a message reaches Rasa:

* ``tg-<telegram user id>``: only the Telegram bridge, which authenticates to the REST channel with
  the channel secret (bot/channels/rest.py);
* ``teams:<tenant id>:<AAD object id>``: only the Teams channel, from a Bot Framework token it
  verified (bot/channels/teams.py);
* anything else: a plain REST id (terminal, tests, scripts), which may never use the prefixes above.
"""
from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from bot import keys

TELEGRAM = "telegram"
TEAMS = "teams"
REST = "rest"
TELEGRAM_PREFIX = "tg-"
TEAMS_PREFIX = "teams:"
PROTECTED_PREFIXES = (TELEGRAM_PREFIX, TEAMS_PREFIX)


def telegram_sender(user_id: int) -> str:
    return f"{TELEGRAM_PREFIX}{int(user_id)}"


def teams_sender(tenant_id: str, aad_object_id: str) -> str:
    """Stable across Teams conversations; the tenant keeps two organisations' users apart."""
    return f"{TEAMS_PREFIX}{tenant_id.strip().lower()}:{aad_object_id.strip().lower()}"


def is_protected(sender_id: str) -> bool:
    """True for ids only an authenticated channel may use (case and surrounding blanks ignored)."""
    return sender_id.strip().lower().startswith(PROTECTED_PREFIXES)


@lru_cache(maxsize=1)
def _log_key() -> bytes:
    return (keys.get(keys.LOG_KEY) or "").encode("utf-8")


def pseudonym(value: str) -> str:
    """A short keyed pseudonym for logs: stable within a deployment, not reversible without the key
    (a plain hash of a Telegram id could be reversed by trying every id)."""
    return hmac.new(_log_key(), str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:12]


def reset_caches() -> None:
    """Forget the cached log key (tests switch var directories)."""
    _log_key.cache_clear()
