"""Storage: answers are stored per run and item, updated not duplicated, on SQLite and PostgreSQL."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from bot import storage


def test_storage_creates_sqlite_file_on_first_use(isolated_db):
    storage.init_db()
    assert isolated_db.exists()


def test_storage_same_sender_is_same_mentor():
    with storage.session_scope() as s:
        first = storage.mentor_for_sender(s, "sender-1", "rest").id
    with storage.session_scope() as s:
        assert storage.mentor_for_sender(s, "sender-1", "rest").id == first
        assert storage.mentor_for_sender(s, "sender-2", "rest").id != first


def test_storage_resent_answer_updates_instead_of_duplicating():
    with storage.session_scope() as s:
        mentor = storage.mentor_for_sender(s, "m", "rest")
        run = storage.start_run(s, mentor.id, "mentorscan", 1)
        storage.save_answer(s, run, "1.1.a", "3")
        storage.save_answer(s, run, "1.1.a", "5")
        run_id = run.id
    with storage.session_scope() as s:
        assert storage.run_answers(s, run_id) == {"1.1.a": "5"}
        assert s.execute(select(func.count()).select_from(storage.Answer)).scalar_one() == 1


def test_storage_delete_mentor_removes_runs_answers_and_identities():
    with storage.session_scope() as s:
        mentor = storage.mentor_for_sender(s, "m", "rest")
        run = storage.start_run(s, mentor.id, "mentorscan", 1)
        storage.save_answer(s, run, "1.1.a", "3")
        counts = storage.delete_mentor(s, mentor.id)
    assert counts["answers"] == 1 and counts["runs"] == 1 and counts["identities"] == 1
    with storage.session_scope() as s:
        for table in (storage.Answer, storage.ScanRun, storage.Identity, storage.Mentor):
            assert s.execute(select(func.count()).select_from(table)).scalar_one() == 0


@pytest.mark.skipif(not os.environ.get("MENTORWIJZER_TEST_PG_URL"), reason="set MENTORWIJZER_TEST_PG_URL to test PostgreSQL")
def test_storage_works_on_postgresql(monkeypatch):
    url = os.environ["MENTORWIJZER_TEST_PG_URL"]
    storage.reset_caches()
    with storage.session_scope(url) as s:
        mentor = storage.mentor_for_sender(s, f"pg-{os.getpid()}", "rest")
        run = storage.start_run(s, mentor.id, "mentorscan", 1)
        storage.save_answer(s, run, "1.1.a", "2")
        storage.save_answer(s, run, "1.1.a", "4")
        run_id, mentor_id = run.id, mentor.id
    with storage.session_scope(url) as s:
        assert storage.run_answers(s, run_id) == {"1.1.a": "4"}
        storage.delete_mentor(s, mentor_id)
