"""Linking channels with a one-time code: recognised when typed, redeemed once, not guessable."""
from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import linking, scan, storage


def wrong_codes(count: int) -> list[str]:
    """Well-formed codes that were never issued (up to eight)."""
    return [f"ZZZZ2{digit}" for digit in linking.CODE_DIGITS][:count]


def failures_of(sender_id: str) -> int:
    with storage.session_scope() as session:
        return session.execute(
            select(func.count()).select_from(storage.LinkFailure).where(storage.LinkFailure.sender_id == sender_id)
        ).scalar_one()


def age_failures(sender_id: str, age: timedelta) -> None:
    with storage.session_scope() as session:
        for failure in session.execute(
            select(storage.LinkFailure).where(storage.LinkFailure.sender_id == sender_id)
        ).scalars():
            failure.failed_at = storage.utcnow() - age


def fail(sender_id: str, times: int) -> list[str]:
    return [linking.use_link_code(sender_id, "teams", code) for code in wrong_codes(times)]


def test_linking_code_shares_the_scan_between_channels():
    scan.start("tg-1", "telegram")
    scan.submit("tg-1", "telegram", "5")
    code = linking.create_link_code("tg-1", "telegram")
    assert len(code) == 6
    assert linking.use_link_code("teams-1", "teams", code) == "ok"
    assert linking.use_link_code("teams-2", "teams", code) == "invalid"  # single use
    resumed, prompt = scan.start("teams-1", "teams")
    assert resumed and prompt.item_id == "1.1.b"


@pytest.mark.parametrize("text, code", [
    ("K7P2QX", "K7P2QX"),
    ("mijn koppelcode is k7p2qx, graag koppelen", "K7P2QX"),
    ("koppel mijn account", None),          # 6 letters, no digit: a word, not a code
    ("ik wil teams koppelen", None),
    ("code 0O1I23", None),                    # 0, O, 1 and I are never in a code
])
def test_linking_find_link_code_only_accepts_codes(text, code):
    assert linking.find_link_code(text) == code


def test_linking_every_issued_code_is_recognised_when_typed():
    codes = [linking.create_link_code("tg-1", "telegram") for _ in range(100)]
    assert all(linking.find_link_code(f"mijn code is {code.lower()}") == code for code in codes)


def test_linking_code_expires_after_ten_minutes():
    code = linking.create_link_code("tg-1", "telegram")
    with storage.session_scope() as session:
        session.get(storage.LinkCode, code).expires_at = storage.utcnow() - timedelta(seconds=1)
    assert linking.use_link_code("teams-1", "teams", code) == "expired"


def test_linking_same_channel_again_is_same_and_keeps_the_code():
    code = linking.create_link_code("tg-1", "telegram")
    assert linking.use_link_code("tg-1", "telegram", code) == "same"
    assert linking.use_link_code("teams-1", "teams", code) == "ok"


def test_linking_simultaneous_redemptions_in_threads_link_exactly_one_sender():
    code = linking.create_link_code("tg-1", "telegram")
    senders = [f"teams-{n}" for n in range(8)]
    barrier = threading.Barrier(len(senders))

    def redeem(sender: str) -> str:
        barrier.wait()
        return linking.use_link_code(sender, "teams", code)

    with ThreadPoolExecutor(len(senders)) as pool:
        outcomes = list(pool.map(redeem, senders))
    assert sorted(outcomes) == ["invalid"] * 7 + ["ok"]
    with storage.session_scope() as session:
        mentor_id = storage.find_mentor(session, "tg-1").id
        assert sorted(storage.sender_ids(session, mentor_id)) == sorted(["tg-1", senders[outcomes.index("ok")]])


def _redeem_in_process(barrier, results, sender: str, code: str) -> None:
    barrier.wait()
    results.put(linking.use_link_code(sender, "teams", code))


def test_linking_simultaneous_redemptions_in_processes_link_exactly_one_sender():
    code = linking.create_link_code("tg-1", "telegram")  # creates the schema before the children start
    context = multiprocessing.get_context("spawn")  # fresh interpreters, own connections
    barrier, results = context.Barrier(3), context.Queue()
    processes = [context.Process(target=_redeem_in_process, args=(barrier, results, f"teams-{n}", code))
                 for n in range(3)]
    for process in processes:
        process.start()
    try:
        outcomes = sorted(results.get(timeout=60) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
    assert outcomes == ["invalid", "invalid", "ok"]


def test_linking_five_wrong_codes_are_answered_normally():
    assert fail("teams-1", 5) == ["invalid"] * 5


def test_linking_sixth_try_within_an_hour_is_blocked():
    fail("teams-1", 5)
    assert linking.use_link_code("teams-1", "teams", wrong_codes(6)[-1]) == "blocked"


def test_linking_blocked_sender_is_refused_even_with_the_right_code():
    code = linking.create_link_code("tg-1", "telegram")
    fail("teams-1", 5)
    assert linking.use_link_code("teams-1", "teams", code) == "blocked"
    assert linking.use_link_code("teams-2", "teams", code) == "ok"  # the code itself was not used up


def test_linking_expired_codes_count_as_failures():
    codes = [linking.create_link_code("tg-1", "telegram") for _ in range(5)]
    with storage.session_scope() as session:
        for code in codes:
            session.get(storage.LinkCode, code).expires_at = storage.utcnow() - timedelta(seconds=1)
    assert [linking.use_link_code("teams-1", "teams", code) for code in codes] == ["expired"] * 5
    assert linking.use_link_code("teams-1", "teams", linking.create_link_code("tg-1", "telegram")) == "blocked"


def test_linking_failures_are_counted_per_sender():
    fail("teams-1", 5)
    code = linking.create_link_code("tg-1", "telegram")
    assert linking.use_link_code("teams-2", "teams", code) == "ok"


def test_linking_failures_older_than_an_hour_do_not_count():
    code = linking.create_link_code("tg-1", "telegram")
    fail("teams-1", 5)
    age_failures("teams-1", timedelta(hours=1, minutes=1))
    assert linking.use_link_code("teams-1", "teams", code) == "ok"


def test_linking_blocked_tries_are_not_recorded():
    fail("teams-1", 5)
    assert fail("teams-1", 3) == ["blocked"] * 3
    assert failures_of("teams-1") == 5  # the block ends an hour after the fifth failure, however often one tries


def test_linking_successful_redemption_records_no_failure():
    code = linking.create_link_code("tg-1", "telegram")
    assert linking.use_link_code("teams-1", "teams", code) == "ok"
    assert failures_of("teams-1") == 0


def test_storage_delete_mentor_removes_link_failures_of_every_linked_sender():
    fail("teams-1", 2)
    linking.use_link_code("teams-1", "teams", linking.create_link_code("tg-1", "telegram"))
    fail("tg-1", 1)
    fail("someone-else", 1)
    with storage.session_scope() as session:
        counts = storage.delete_mentor(session, storage.find_mentor(session, "tg-1").id)
    assert counts["link_failures"] == 3
    assert failures_of("teams-1") == failures_of("tg-1") == 0
    assert failures_of("someone-else") == 1


def test_storage_purge_removes_link_failures_older_than_an_hour():
    fail("teams-1", 2)
    age_failures("teams-1", timedelta(hours=1, minutes=1))
    fail("teams-2", 1)
    with storage.session_scope() as session:
        counts = storage.purge_older_than(session, days=730)
    assert counts["link_failures"] == 2
    assert failures_of("teams-1") == 0 and failures_of("teams-2") == 1


def test_linking_every_outcome_has_a_message():
    from actions.privacy import LINK_MESSAGES

    assert set(LINK_MESSAGES) == set(linking.OUTCOMES)
    assert "over een uur" in LINK_MESSAGES["blocked"]
