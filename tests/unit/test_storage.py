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


def test_storage_teams_mentor_keeps_scan_from_before_namespaced_ids():
    from bot import scan

    scan.start("aad-1", "teams")  # stored under the bare AAD object id, as before
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, "teams:tenant-1:aad-1")
        assert [i.sender_id for i in mentor.identities] == ["teams:tenant-1:aad-1"]
        assert len(mentor.runs) == 1
        assert session.get(storage.Identity, "aad-1") is None


def test_storage_legacy_id_with_linked_identities_is_not_adopted():
    """A bare id someone could once claim over REST, linked to their own account, stays theirs."""
    with storage.session_scope() as session:
        legacy = storage.mentor_for_sender(session, "aad-2", "teams")
        session.add(storage.Identity(sender_id="attacker-rest", channel="rest", mentor_id=legacy.id))
    with storage.session_scope() as session:
        mentor = storage.mentor_for_sender(session, "teams:tenant-1:aad-2")
        assert mentor.id != legacy.id and [i.sender_id for i in mentor.identities] == ["teams:tenant-1:aad-2"]


def test_storage_legacy_id_of_another_channel_is_not_adopted():
    with storage.session_scope() as session:
        legacy = storage.mentor_for_sender(session, "aad-3", "rest")
    with storage.session_scope() as session:
        assert storage.mentor_for_sender(session, "teams:tenant-1:aad-3").id != legacy.id
