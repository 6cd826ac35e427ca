"""Shared fixtures: every test gets its own SQLite database and settings from the environment."""
from __future__ import annotations

import pytest

from bot import identity, storage
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
    identity.reset_caches()
    yield tmp_path / "mentorwijzer.db"
    storage.reset_caches()
    identity.reset_caches()
    get_settings.cache_clear()


@pytest.fixture
def tracker_events(isolated_db):
    """Rasa's ``events`` table (the columns our code uses) in the test's tracker database; call the
    fixture's value with ``(sender_id, timestamp)`` to add an event."""
    import time

    from sqlalchemy import create_engine, text

    from bot import conversation_history

    engine = create_engine(get_settings().tracker_db_url, future=True)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
                                "type_name VARCHAR(255), timestamp FLOAT, data TEXT)"))

    def add(sender_id: str, timestamp: float | None = None, data: str = "{}") -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (:s, 'user', :t, :d)"),
                               {"s": sender_id, "t": time.time() if timestamp is None else timestamp, "d": data})

    add.engine = engine
    yield add
    engine.dispose()
    conversation_history.reset_caches()
