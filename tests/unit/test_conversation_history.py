"""Deleting and purging Rasa's conversation history: it happens, stays done, or says it did not."""
from __future__ import annotations

import asyncio
import time

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import text

from bot import conversation_history, privacy, scan
from bot.cli import main as cli
from bot.tracker_store import ForgettingSQLTrackerStore


def senders_in(tracker_events) -> list[str]:
    with tracker_events.engine.connect() as connection:
        return connection.execute(text("SELECT sender_id FROM events ORDER BY id")).scalars().all()


def test_history_forget_senders_deletes_events_and_leaves_a_tombstone(tracker_events):
    for sender in ("a", "a", "b"):
        tracker_events(sender)
    assert conversation_history.forget_senders(["a"]) == 2
    assert senders_in(tracker_events) == ["b"]
    with tracker_events.engine.connect() as connection:
        assert conversation_history.forgotten_at(connection, "a") == pytest.approx(time.time(), abs=5)
        assert conversation_history.forgotten_at(connection, "b") is None


def test_history_without_rasa_events_table_raises(isolated_db):
    with pytest.raises(conversation_history.HistoryError, match="events"):
        conversation_history.forget_senders(["a"])


def test_history_unreachable_database_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("MENTORWIJZER_TRACKER_DB_URL", f"sqlite:///{tmp_path / 'missing-dir' / 'tracker.db'}")
    from bot.settings import get_settings

    get_settings.cache_clear()
    with pytest.raises(conversation_history.HistoryError):
        conversation_history.forget_senders(["a"])


def test_history_purge_removes_events_past_retention_only(tracker_events):
    tracker_events("old", timestamp=time.time() - 40 * 86400)
    tracker_events("new")
    assert conversation_history.purge_older_than(30) == {"conversation_events": 1}
    assert senders_in(tracker_events) == ["new"]


def test_privacy_forget_misconfigured_tracker_store_deletes_nothing_and_says_so(isolated_db):
    scan.start("p1", "rest")
    with pytest.raises(privacy.DeletionFailed) as failure:
        privacy.forget("p1")
    assert failure.value.conversations_deleted is False
    assert privacy.export("p1") is not None  # the profile is still there: nothing was claimed


def test_privacy_forget_unknown_sender_still_deletes_its_conversation(tracker_events):
    tracker_events("tg-77")
    assert privacy.forget("tg-77") == {"conversation_events": 1}
    assert senders_in(tracker_events) == []


def test_cli_forget_reports_failure_with_exit_code(isolated_db, capsys):
    scan.start("p1", "rest")
    assert cli(["forget", "p1"]) == 1
    assert "nothing was deleted" in capsys.readouterr().err


def test_cli_purge_includes_conversation_events(tracker_events, capsys):
    tracker_events("old", timestamp=time.time() - 800 * 86400)
    assert cli(["purge"]) == 0
    assert "conversation_events=1" in capsys.readouterr().out


def _store(tmp_path) -> ForgettingSQLTrackerStore:
    return ForgettingSQLTrackerStore(dialect="sqlite", db=str(tmp_path / "tracker.db"))


def test_tracker_store_save_after_deletion_keeps_only_later_events(tmp_path):
    """Rasa saves the running turn after the delete action: nothing from before the deletion returns."""
    store = _store(tmp_path)
    before = [ActionExecuted("action_listen"), UserUttered("mijn leerdoel is geheim-doel-42")]
    asyncio.run(store.save(DialogueStateTracker.from_events("m1", before)))
    conversation_history.forget_senders(["m1"], url=f"sqlite:///{tmp_path / 'tracker.db'}")
    after = [BotUttered("Verwijderd."), ActionExecuted("action_listen")]
    asyncio.run(store.save(DialogueStateTracker.from_events("m1", before + after)))
    stored = asyncio.run(store.retrieve_full_tracker("m1"))
    assert [e.type_name for e in stored.events] == ["bot", "action"]
    with store.engine.connect() as connection:
        assert "geheim-doel-42" not in " ".join(connection.execute(text("SELECT data FROM events")).scalars())
        assert conversation_history.forgotten_at(connection, "m1") is None  # honoured once, then gone


def test_tracker_store_save_without_tombstone_is_rasas_save(tmp_path):
    store = _store(tmp_path)
    events = [ActionExecuted("action_listen"), UserUttered("hoi")]
    asyncio.run(store.save(DialogueStateTracker.from_events("m2", events)))
    asyncio.run(store.save(DialogueStateTracker.from_events("m2", events + [BotUttered("Hallo!")])))
    assert [e.type_name for e in asyncio.run(store.retrieve_full_tracker("m2")).events] == ["action", "user", "bot"]


def test_tracker_store_keeps_sqlite_connections_and_a_second_store_sees_every_turn(tmp_path):
    """Pooled connections (issue 17) with write-ahead logging: another process's store (here: a second
    store on the same file, as after a restart) reads every saved turn at once."""
    store = _store(tmp_path)
    events = [ActionExecuted("action_listen"), UserUttered("hoi")]
    for turn in range(3):
        events = events + [BotUttered(f"antwoord {turn}"), ActionExecuted("action_listen")]
        asyncio.run(store.save(DialogueStateTracker.from_events("m3", events)))
    assert store.engine.pool.checkedin() >= 1  # a connection is kept for the next turn
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    restarted = _store(tmp_path)
    assert len(asyncio.run(restarted.retrieve_full_tracker("m3")).events) == len(events)
