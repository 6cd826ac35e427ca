"""A long conversation of only questions stays short for Rasa (issue 17): after about 25 questions a
new session starts, and the mentor notices nothing (follow-ups still work, no second notice)."""
from __future__ import annotations

import uuid

import httpx

from actions.common import MAX_SESSION_EVENTS

QUESTIONS = [
    "wat doet een schoolopleider", "hoeveel uur krijg ik als mentor", "wat is een lbf",
    "wie moet ik mailen als mijn student stagneert", "wat mag ik verwachten van een eerstejaars",
    "wat is de wpa", "wie is de slb er", "wat houdt de basistraining in",
]


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def tracker_events(servers, sender: str) -> list[dict]:
    return httpx.get(f"{servers.rasa_url}/conversations/{sender}/tracker",
                     params={"token": servers.api_token}).json()["events"]


def test_long_question_conversation_starts_new_sessions_without_the_mentor_noticing(servers):
    sender = f"test-{uuid.uuid4().hex[:10]}"
    first = texts(servers.say(sender, "hoi"))
    replies = [texts(servers.say(sender, QUESTIONS[i % len(QUESTIONS)])) for i in range(40)]
    assert all("Bron:" in reply for reply in replies)  # every question answered, before and after
    kinds = [event["event"] for event in tracker_events(servers, sender)]  # the API shows every session
    starts = [i for i, kind in enumerate(kinds) if kind == "session_started"]
    assert len(starts) >= 2, "40 questions should not stay in one session"
    sessions = [end - start for start, end in zip(starts, starts[1:] + [len(kinds)])]
    assert max(sessions) < MAX_SESSION_EVENTS + 20  # bounded: what Rasa loads and replays per turn
    # the answer just before a new session can still be followed up: last_entry is carried over
    last = texts(servers.say(sender, "vertel meer"))
    assert "Waarover wil je meer weten" not in last and "Bron:" in last
    notice = "Goed om te weten"
    assert notice in first and not any(notice in reply for reply in replies + [last])


def test_a_new_session_never_ends_an_open_scan(servers):
    """Questions in the middle of the scan do not start a new session: the scan would be lost."""
    sender = f"test-{uuid.uuid4().hex[:10]}"
    servers.say(sender, "/start_scan")
    for i in range(30):
        reply = texts(servers.say(sender, QUESTIONS[i % len(QUESTIONS)]))
        assert "Vraag 1 van 37" in reply  # answered, then the open scan question again
    kinds = [event["event"] for event in tracker_events(servers, sender)]
    assert kinds.count("session_started") == 1
    assert "Vraag 2 van 37" in texts(servers.say(sender, "4"))
