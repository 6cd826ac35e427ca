"""Guessing or racing for someone's link code, through the real servers.

(That a code is redeemed atomically under real concurrency is shown with threads and processes on
one database in tests/unit/test_linking.py: the action server runs one action at a time, so two
requests through it never overlap.)
"""
from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.integration.servers import Servers

CODE = re.compile(r"koppelcode is ([A-Z0-9]{6})")


def text_of(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


def new_code(target: Servers, owner: str) -> str:
    match = CODE.search(text_of(target.say(owner, "koppel mijn account")))
    assert match, "no link code issued"
    return match.group(1)


def test_link_code_guessing_is_blocked_after_five_wrong_tries(target):
    owner, attacker = f"tg-{uuid.uuid4().int % 10**9}", f"dev-{uuid.uuid4().hex[:8]}"
    code = new_code(target, owner)
    wrong = [guess for guess in ("ABCD23", "ABCD24", "ABCD25", "ABCD26", "ABCD27", "ABCD28") if guess != code]
    replies = [text_of(target.say(attacker, f"mijn koppelcode is {guess}")) for guess in wrong[:5]]
    assert all("ken ik niet" in reply for reply in replies)
    blocked = text_of(target.say(attacker, f"mijn koppelcode is {code}"))  # the right one, sixth try
    assert "te vaak" in blocked and "Gelukt" not in blocked
    assert "Gelukt" in text_of(target.say(f"dev-{uuid.uuid4().hex[:8]}", f"mijn koppelcode is {code}"))


def test_link_code_redeemed_by_two_senders_at_once_links_only_one(target):
    owner = f"tg-{uuid.uuid4().int % 10**9}"
    code = new_code(target, owner)
    senders = [f"dev-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda s: text_of(target.say(s, f"mijn koppelcode is {code}")), senders))
    assert sum("Gelukt" in reply for reply in replies) == 1
