"""All configuration, read once from ``MENTORWIJZER_*`` (and channel) environment variables.

This is the only module that reads ``os.environ``; everything else calls :func:`get_settings`,
so tests can ``monkeypatch.setenv`` and call ``get_settings.cache_clear()``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    db_url: str
    tracker_db_url: str = ""
    log_level: str = "INFO"
    knowledge_dir: Path = PROJECT_ROOT / "knowledge"
    var_dir: Path = PROJECT_ROOT / "var"
    rasa_url: str = "http://127.0.0.1:5005"
    public_url: str = "http://127.0.0.1:5055"
    retention_days: int = 730
    report_admins: tuple[str, ...] = field(default_factory=tuple)
    default_partnership: str = ""
    # Telegram (python-telegram-bot)
    telegram_token: str = ""
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = ""
    telegram_listen: str = "127.0.0.1"
    telegram_port: int = 8443
    # Microsoft Teams (Bot Framework)
    teams_app_id: str = ""
    teams_app_password: str = ""
    teams_tenant_id: str = ""
    teams_bot_name: str = "Mentorwijzer"
    # Trust boundary (bot/keys.py): empty values fall back to secrets generated under var/secrets/
    host: str = "127.0.0.1"
    action_url: str = "http://127.0.0.1:5055/webhook"
    api_token: str = ""
    channel_secret: str = ""
    action_secret: str = ""
    log_key: str = ""
    max_body_bytes: int = 256 * 1024
    # People in the loop (issue 16)
    smtp_host: str = ""  # no host: no e-mail (chat notifications only)
    smtp_port: int = 25
    smtp_from: str = "mentorwijzer@localhost"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    escalate_after_working_days: int = 3
    reminder_after_days: int = 3
    reminder_hours: str = "08:30-16:30"  # school hours, local time, Monday to Friday
    timezone: str = "Europe/Amsterdam"
    staff_code_valid_days: int = 14
    rasa_speedups: bool = True  # bot/rasa_speedups.py

    @property
    def charts_dir(self) -> Path:
        return self.var_dir / "charts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    env = os.environ
    var_dir = Path(env.get("MENTORWIJZER_VAR_DIR", str(PROJECT_ROOT / "var")))
    default_db = f"sqlite:///{var_dir / 'mentorwijzer.db'}"
    return Settings(
        db_url=env.get("MENTORWIJZER_DB_URL") or default_db,
        tracker_db_url=env.get("MENTORWIJZER_TRACKER_DB_URL") or f"sqlite:///{var_dir / 'tracker.db'}",
        log_level=env.get("MENTORWIJZER_LOG_LEVEL", "INFO").upper(),
        knowledge_dir=Path(env.get("MENTORWIJZER_KNOWLEDGE_DIR", str(PROJECT_ROOT / "knowledge"))),
        var_dir=var_dir,
        rasa_url=env.get("MENTORWIJZER_RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
        public_url=env.get("MENTORWIJZER_PUBLIC_URL", "http://127.0.0.1:5055").rstrip("/"),
        retention_days=int(env.get("MENTORWIJZER_RETENTION_DAYS", "730")),
        report_admins=_csv(env.get("MENTORWIJZER_REPORT_ADMINS", "")),
        default_partnership=env.get("MENTORWIJZER_PARTNERSHIP", ""),
        telegram_token=env.get("TELEGRAM_BOT_TOKEN", ""),
        telegram_base_url=env.get("TELEGRAM_BASE_URL", "https://api.telegram.org/bot"),
        telegram_webhook_url=env.get("TELEGRAM_WEBHOOK_URL", ""),
        telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET", ""),
        telegram_listen=env.get("TELEGRAM_LISTEN", "127.0.0.1"),
        telegram_port=int(env.get("TELEGRAM_PORT", "8443")),
        teams_app_id=env.get("MICROSOFT_APP_ID", ""),
        teams_app_password=env.get("MICROSOFT_APP_PASSWORD", ""),
        teams_tenant_id=env.get("MICROSOFT_TENANT_ID", ""),
        teams_bot_name=env.get("MENTORWIJZER_BOT_NAME", "Mentorwijzer"),
        host=env.get("MENTORWIJZER_HOST", "127.0.0.1"),
        action_url=env.get("MENTORWIJZER_ACTION_URL", "http://127.0.0.1:5055/webhook"),
        api_token=env.get("RASA_API_TOKEN", ""),
        channel_secret=env.get("MENTORWIJZER_CHANNEL_SECRET", ""),
        action_secret=env.get("MENTORWIJZER_ACTION_SECRET", ""),
        log_key=env.get("MENTORWIJZER_LOG_KEY", ""),
        max_body_bytes=int(env.get("MENTORWIJZER_MAX_BODY_BYTES", str(256 * 1024))),
        smtp_host=env.get("MENTORWIJZER_SMTP_HOST", ""),
        smtp_port=int(env.get("MENTORWIJZER_SMTP_PORT", "25")),
        smtp_from=env.get("MENTORWIJZER_SMTP_FROM", "mentorwijzer@localhost"),
        smtp_user=env.get("MENTORWIJZER_SMTP_USER", ""),
        smtp_password=env.get("MENTORWIJZER_SMTP_PASSWORD", ""),
        smtp_starttls=env.get("MENTORWIJZER_SMTP_STARTTLS", "").lower() in ("1", "true", "yes"),
        escalate_after_working_days=int(env.get("MENTORWIJZER_ESCALATE_AFTER_DAYS", "3")),
        reminder_after_days=int(env.get("MENTORWIJZER_REMINDER_AFTER_DAYS", "3")),
        reminder_hours=env.get("MENTORWIJZER_REMINDER_HOURS", "08:30-16:30"),
        timezone=env.get("MENTORWIJZER_TIMEZONE", "Europe/Amsterdam"),
        staff_code_valid_days=int(env.get("MENTORWIJZER_STAFF_CODE_DAYS", "14")),
        rasa_speedups=env.get("MENTORWIJZER_RASA_SPEEDUPS", "1") != "0",
    )
