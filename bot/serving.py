"""What ``make serve`` and ``make chat`` start: only configured channels, closed by default.

``mentorwijzer serve-env`` prints the environment for the scripts (shell ``export`` lines) and writes
the credentials file with exactly the channels whose settings are present: REST always (bound to
127.0.0.1 by the scripts), Teams only with ``MICROSOFT_APP_ID`` and ``MICROSOFT_APP_PASSWORD``,
Telegram (a separate bridge process) only with ``TELEGRAM_BOT_TOKEN``. Rasa's HTTP API is on only
when an API token exists (``RASA_API_TOKEN`` or ``mentorwijzer api-token``).
"""
from __future__ import annotations

import shlex
from pathlib import Path

from bot import keys
from bot.settings import Settings, get_settings

REST_CHANNEL = "bot.channels.rest.RestInput:\n"
TEAMS_CHANNEL = "bot.channels.teams.TeamsInput:\n"


def teams_configured(settings: Settings) -> bool:
    return bool(settings.teams_app_id and settings.teams_app_password)


def credentials_yaml(settings: Settings) -> str:
    text = "# Written by `mentorwijzer serve-env`: the channels configured in the environment.\n" + REST_CHANNEL
    return text + (TEAMS_CHANNEL if teams_configured(settings) else "")


def notices(settings: Settings) -> list[str]:
    lines = []
    if not teams_configured(settings):
        lines.append("Teams off (set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to serve /webhooks/teams/webhook)")
    if not settings.telegram_token:
        lines.append("Telegram off (set TELEGRAM_BOT_TOKEN to start the bridge)")
    if not keys.api_token():
        lines.append("Rasa HTTP API off (set RASA_API_TOKEN or run `mentorwijzer api-token` to enable it)")
    return lines


def tracker_sqlite_path(settings: Settings) -> str:
    """The SQLite file endpoints.yml's tracker store uses: the one ``forget`` deletes from."""
    url = settings.tracker_db_url
    if not url.startswith("sqlite:///"):
        raise SystemExit("make serve/chat keep conversations in SQLite: set MENTORWIJZER_TRACKER_DB_URL to "
                         "sqlite:///<file> (PostgreSQL: deploy/endpoints.yml)")
    return url[len("sqlite:///"):]


def environment(credentials_out: Path) -> dict[str, str]:
    """Write the credentials file; the variables the scripts export (secrets included)."""
    settings = get_settings()
    credentials_out.parent.mkdir(parents=True, exist_ok=True)
    credentials_out.write_text(credentials_yaml(settings), encoding="utf-8")
    return {
        "MENTORWIJZER_HOST": settings.host,
        "MENTORWIJZER_ACTION_URL": settings.action_url,
        "MENTORWIJZER_TRACKER_SQLITE": tracker_sqlite_path(settings),
        "MENTORWIJZER_ACTION_SECRET": keys.get(keys.ACTION_SECRET) or "",
        "MENTORWIJZER_CHANNEL_SECRET": keys.get(keys.CHANNEL_SECRET) or "",
        "MENTORWIJZER_LOG_KEY": keys.get(keys.LOG_KEY) or "",
        "RASA_API_TOKEN": keys.api_token() or "",
        "MENTORWIJZER_CREDENTIALS": str(credentials_out),
        "MENTORWIJZER_TELEGRAM": "1" if settings.telegram_token else "",
    }


def shell_exports(variables: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
