"""Shared fixtures: every test gets its own SQLite database and settings from the environment."""
from __future__ import annotations

import pytest

from bot import storage
from bot.settings import get_settings


@pytest.fixture(autouse=True)
def isolated_db(tmp_path, monkeypatch):
    """A fresh SQLite file per test; MENTORWIJZER_DB_URL is what the code reads."""
    monkeypatch.setenv("MENTORWIJZER_DB_URL", f"sqlite:///{tmp_path / 'mentorwijzer.db'}")
    monkeypatch.setenv("MENTORWIJZER_TRACKER_DB_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    monkeypatch.setenv("MENTORWIJZER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RASA_TELEMETRY_ENABLED", "false")
    get_settings.cache_clear()
    storage.reset_caches()
    yield tmp_path / "mentorwijzer.db"
    storage.reset_caches()
    get_settings.cache_clear()
