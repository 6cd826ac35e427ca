"""`make loadtest`: simulated mentors fill in the whole mentorscan over REST through nginx while a
Rasa server is killed, the action server restarted and PostgreSQL restarted; then every answer is
checked in the database.

Runs against the set-up of scripts/prod.sh (start it first), through nginx's INTERNAL listener
(PROD_INTERNAL_PORT, default 8081; the public one answers 404 for the REST channel). Senders are
plain ids (``load-<run>-<n>``), which need no channel secret; ``--sender-prefix tg-load`` sends
Telegram-style ids instead, with the channel secret header as the Telegram bridge does
(MENTORWIJZER_CHANNEL_SECRET from <prod-dir>/prod.env, else the environment). Every mentor starts the scan, answers
all 37 questions (button payloads and typed Dutch answers), sends one nonsense message and asks one
knowledge question half-way. Clients behave like a channel that re-delivers: on a connection error
or a 5xx they back off and re-send the same message (same message id in the metadata). When a
reply carries no question (the bot failed internally; Rasa's REST channel still answers 200) the
mentor sends the same answer again. The next reply's question number tells what happened: if it
skipped a question, the re-sent answer was stored for the next question too (at-least-once delivery
without deduplication in the bot: "retry_misapplied"); the mentor then goes back ("terug") and
answers that question as intended ("corrected").

Every mentor (or --forward-share of them) also forwards one question to their schoolopleider, half
of them before the scan (the answer then comes with some scan reply, during the faults) and half
after it: "ik werk op <school>", the question (with a token unique to the mentor), the 'Vraag het
mijn schoolopleider' button, and "versturen" at the preview, each re-sent like any other message
(a second "versturen" must not make a second question; when the confirmation got lost, the
'Open vragen' button, which shows a mentor their own questions, tells whether it was sent). Before the mentors start, one schoolopleider per load-test
school is registered with ``mentorwijzer staff add`` in the stack's database and links a REST chat
with the printed code; concurrently with the mentors and the faults, each lists its open questions
(the 'Open vragen' button), presses 'Beantwoord nr. N' and types an answer carrying the question's
token. After the scan a mentor presses 'Open vragen' until the answer has arrived (at most
--answer-wait seconds), then once more. Checked in the database and in every reply: each mentor has
exactly one forwarded question, answered, with one answer row in the outbox, delivered, and the
mentor saw the answer exactly once (and the schoolopleider each notification at most once).

Prints one line ``mentors=… answers_expected=… stored=… lost=0 duplicated=0 errors_5xx=… questions=…
q_answered=… q_lost=0 q_duplicated=0`` and exits non-zero when an answer is lost, duplicated or wrong,
a mentor could not finish, or a forwarded question or its answer was lost or delivered twice (with
--strict also when a re-delivered answer was misapplied).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.questionnaire import load_questionnaire  # noqa: E402  (item ids per question number)

CHANNEL_SECRET_HEADER = "X-Mentorwijzer-Channel-Secret"  # bot/keys.py
PROTECTED_PREFIXES = ("tg-", "teams:")  # bot/identity.py: these senders need the channel secret

TOTAL = 37
START = "ik wil de mentorscan invullen"
BACK = "terug"
RESULTS = "mijn resultaten"
PROBE = "help"  # inside the scan an interruption: the current question comes again, nothing is stored
NONSENSE = ["blablabla paarse olifant", "qwerty asdf", "de kat zit op de mat met een hoed"]
KNOWLEDGE = ["wat doet een schoolopleider?", "wat is een schoolopleider", "wie is de schoolopleider en wat doet die?"]
# Typed answers with the value the bot must store (independent of bot/questionnaire.py).
LIKERT_TYPED = [("vier", "4"), ("helemaal mee eens", "5"), ("drie", "3"), ("twee", "2"), ("oneens", "2"),
                ("eens", "4"), ("helemaal oneens", "1"), ("vijf", "5")]
YES_NO_TYPED = [("ja hoor", "ja"), ("nee hoor", "nee"), ("jazeker", "ja"), ("nee", "nee"), ("ja", "ja")]
QUESTION = re.compile(r"Vraag (\d+) van (\d+)")
MAX_HTTP_ATTEMPTS = 12
MAX_RESENDS = 12
# Forwarded questions (bot/handoff.py): what mentors and schoolopleiders type and press.
SCHOOL_TEXTS = ("ik werk op {school}", "mijn school is {school}")
FORWARD = "/forward_question"  # the 'Vraag het mijn schoolopleider' button
SEND = "versturen"
OPEN_QUESTIONS = "/open_questions"  # the 'Open vragen' button: a mentor's own questions, a schoolopleider's open ones
LINK = "mijn code is {code}"
QUESTION_TEXT = "Mag mijn student een dag ruilen voor een studiedag? (vraag {token})"
ANSWER_TEXT = "Antwoord {token}: ja, dat mag in overleg met de student."
ANSWER_MARKER = "Antwoord {token}:"  # in the answer only, never in the question
LISTED = re.compile(r"Nr\. (\d+)\b[^“\n]*“([^”\n]*)”")  # a line of a schoolopleider's 'open vragen'
NOTICE = re.compile(r"Nieuwe vraag \(nr\. (\d+)\)")  # a schoolopleider's notification of a new question
OPEN_LIST_LIMIT = 10  # bot/handoff.py: 'open vragen' shows at most this many
MAX_STAFF = 26


def button_value(payload: str, item_id: str) -> str:
    """The value a scan button stores: ``/inform_scan_answer{"scan_item": ..., "scan_value": "4"}`` -> "4";
    a button of another item (or anything else) is returned as is, so it never looks valid."""
    if not payload.startswith("/inform_scan_answer{"):
        return payload
    entities = json.loads(payload[payload.index("{"):])
    return str(entities.get("scan_value")) if entities.get("scan_item") == item_id else payload


class GaveUp(Exception):
    """A mentor could not get an answer through (recorded, the run goes on)."""


@dataclass
class Stats:
    requests: int = 0
    errors_5xx: int = 0
    errors_4xx: int = 0
    connection_errors: int = 0
    resent_no_question: int = 0  # 200 without a question (the bot failed internally): re-sent
    corrected: int = 0  # a misapplied re-delivery corrected with 'terug'
    retry_misapplied: int = 0
    not_resumed: int = 0  # after a knowledge question the scan question was not asked again
    latencies: list = field(default_factory=list)
    problems: Counter = field(default_factory=Counter)
    sent: int = 0


@dataclass
class Staff:
    """A load-test school's schoolopleider, answering forwarded questions in their linked chat."""

    sender: str
    letter: str
    school: str
    seq: list = field(default_factory=lambda: [0])
    replies: list = field(default_factory=list)  # every reply it got (notifications included)
    sent: set = field(default_factory=set)  # tokens of questions the mentors saw sent to this person
    handled: set = field(default_factory=set)  # tokens answered (or found no longer open)

    @property
    def label(self) -> str:
        return f"schoolopleider {self.letter}"


@dataclass
class Mentor:
    sender: str
    number: int
    expected: dict = field(default_factory=dict)  # item id -> value the bot must have stored
    finished: bool = False
    failure: str = ""
    seq: list = field(default_factory=lambda: [0])
    replies: list = field(default_factory=list)  # every reply it got, to count the answer's arrivals
    token: str = ""  # the forwarded question's token; empty: this mentor forwards none
    staff: Optional[Staff] = None  # who gets the question (the mentor works at their school)
    forward_first: bool = False  # forward before the scan (else after it)
    question_failure: str = ""

    @property
    def label(self) -> str:
        return f"mentor {self.number}"


def texts(messages: list) -> str:
    return "\n".join(str(m.get("text") or "") for m in messages if isinstance(m, dict))


def question_of(messages: list) -> tuple[Optional[int], list]:
    """The number of the last question asked in a reply and its buttons' payloads."""
    number, payloads = None, []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        match = QUESTION.search(str(message.get("text") or ""))
        if match:
            number = int(match.group(1))
            payloads = [str(b.get("payload")) for b in message.get("buttons") or []]
    return number, payloads


def completed(messages: list) -> bool:
    """The end-of-scan reply, or the results a mentor asked for ('Je gemiddelde per onderdeel')."""
    text = texts(messages)
    return "Klaar" in text or "Je gemiddelde per onderdeel" in text


class LoadTest:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.stats = Stats()
        self.tag = uuid.uuid4().hex[:8]
        self.random = random.Random(args.seed)
        self.items = load_questionnaire("mentorscan").items
        if len(self.items) != TOTAL:
            raise SystemExit(f"questionnaire has {len(self.items)} items, expected {TOTAL}")
        self.answered = 0  # answers confirmed so far (drives the fault schedule)
        self.fault_log: list[str] = []
        self.wrong_details: list[str] = []
        self.question_details: list[str] = []
        self.events: list[tuple[float, str, str]] = []  # (seconds since start, who ('FAULT' for faults), what)
        self.staff: list[Staff] = []
        self.mentors_done = False
        self.done = False
        self.token = re.compile(rf"\(vraag ({re.escape(self.tag)}-\d{{4}})\)")
        self.started = time.monotonic()
        self.url = args.base_url.rstrip("/") + "/webhooks/rest/webhook"
        self.prefix = f"{args.sender_prefix}-{self.tag}-"
        self.headers = {CHANNEL_SECRET_HEADER: args.channel_secret} if args.channel_secret else {}

    # --- one message, with the retries of a re-delivering channel ----------------------

    async def post(self, client: httpx.AsyncClient, mentor: Mentor | Staff, message: str, message_id: str) -> list:
        body = {"sender": mentor.sender, "message": message, "metadata": {"message_id": message_id}}
        for attempt in range(MAX_HTTP_ATTEMPTS):
            started = time.perf_counter()
            self.stats.requests += 1
            try:
                response = await client.post(self.url, json=body, headers=self.headers)
            except httpx.TransportError as exc:
                self.stats.connection_errors += 1
                self.event(mentor, f"{type(exc).__name__}: re-delivering")
            else:
                if response.status_code == 200:
                    self.stats.latencies.append(time.perf_counter() - started)
                    try:
                        reply = response.json()
                    except ValueError:
                        self.stats.problems["invalid JSON reply"] += 1
                        return []
                    mentor.replies.append(reply)
                    if isinstance(mentor, Mentor) and mentor.token \
                            and ANSWER_MARKER.format(token=mentor.token) in texts(reply):
                        self.event(mentor, f"the answer to its question arrived (time {self.arrivals(mentor)})")
                    return reply
                if response.status_code >= 500:
                    self.stats.errors_5xx += 1
                    self.event(mentor, f"HTTP {response.status_code}: re-delivering")
                else:
                    self.stats.errors_4xx += 1
                    raise GaveUp(f"HTTP {response.status_code}")
            await asyncio.sleep(self.backoff(attempt))
        raise GaveUp("no reply after retries")

    async def say(self, client, mentor: Mentor | Staff, message: str, seq: Optional[list] = None) -> list:
        seq = mentor.seq if seq is None else seq
        seq[0] += 1
        self.stats.sent += 1
        if self.args.think:
            await asyncio.sleep(self.random.uniform(0, self.args.think))
        return await self.post(client, mentor, message, f"{mentor.sender}-{seq[0]}")

    # --- one mentor ----------------------------------------------------------------------

    def answer_for(self, number: int, payloads: list, mentor: Mentor) -> tuple[str, str]:
        """(text to send, value the bot must store) for question ``number``."""
        item = self.items[number - 1]
        if not payloads:
            if item.type != "open_text":
                self.stats.problems[f"question {number} ({item.id}) has no buttons"] += 1
            text = f"Ik wil beter leren doseren in mijn feedback (mentor {mentor.number}, {self.tag})."
            return text, text
        use_typed = self.random.random() < 0.4
        pressed = {button_value(payload, item.id): payload for payload in payloads}
        if set(pressed) == {"1", "2", "3", "4", "5"}:
            if use_typed:
                return self.random.choice(LIKERT_TYPED)
            value = self.random.choice(sorted(pressed))
            return pressed[value], value
        if set(pressed) == {"ja", "nee"}:
            if use_typed:
                return self.random.choice(YES_NO_TYPED)
            value = self.random.choice(sorted(pressed))
            return pressed[value], value
        self.stats.problems[f"question {number} ({item.id}) has unexpected buttons {sorted(payloads)}"] += 1
        value = payloads[0]
        return value, value

    def value_if_reapplied(self, number: int, sent: str, value: str) -> str:
        """What a re-sent answer becomes when the bot applies it to question ``number`` too."""
        item = self.items[number - 1]
        return sent if item.type == "open_text" else value

    async def run_mentor(self, client, mentor: Mentor) -> None:
        seq = mentor.seq
        number, payloads, reply = None, [], []
        for attempt in range(MAX_RESENDS):
            reply = await self.say(client, mentor, START, seq)
            number, payloads = question_of(reply)
            if number is not None:
                break
            self.stats.resent_no_question += 1
            self.event(mentor, "start: no question, re-sent")
            await asyncio.sleep(self.backoff(attempt))
        if number != 1:
            raise GaveUp(f"scan start: expected question 1, got {number}")
        middle = list(range(3, TOTAL - 2))
        nonsense_at, knowledge_at = self.random.sample(middle, 2)
        interruptions = {nonsense_at: "nonsense", knowledge_at: "knowledge"}
        attempts: Counter = Counter()
        chosen: dict[int, tuple[str, str]] = {}
        while True:
            item = self.items[number - 1]
            attempts[number] += 1
            if attempts[number] > MAX_RESENDS:
                raise GaveUp(f"question {number}: no progress after {MAX_RESENDS} attempts")
            kind = interruptions.pop(number, None)
            if kind is not None and item.type != "open_text":
                message = self.random.choice(NONSENSE if kind == "nonsense" else KNOWLEDGE)
                reply = await self.say(client, mentor, message, seq)
                again, again_payloads = question_of(reply)
                if again is None:
                    if kind == "knowledge" and reply:
                        self.stats.not_resumed += 1
                    self.event(mentor, f"{kind} message at question {number}: no question in the reply")
                    again, again_payloads = number, payloads  # answer the question we know is open
                elif again != number:
                    self.stats.problems[f"after a {kind} message: question {again}, expected {number}"] += 1
                    self.event(mentor, f"{kind} message at question {number}: now question {again}")
                number, payloads = again, again_payloads
                continue
            # The same text until the question is confirmed: a re-send is the same message.
            if number not in chosen:
                chosen[number] = self.answer_for(number, payloads, mentor)
            message, value = chosen[number]
            if number == TOTAL and attempts[number] > 2 and attempts[number] % 2:
                # After two lost replies to the last answer, every other try checks whether the scan is
                # complete already (then a re-typed answer is just a new message). The last item is
                # open text, where any text, 'mijn resultaten' too, is stored as the answer; so first
                # 'help', which an open scan answers with the question again, and only without a
                # question ask for the results (as a mentor would).
                probe = await self.say(client, mentor, PROBE, seq)
                asked, asked_payloads = question_of(probe)
                if asked == number:
                    payloads = asked_payloads or payloads
                    continue
                message = RESULTS
            reply = await self.say(client, mentor, message, seq)
            following, following_payloads = question_of(reply)
            if completed(reply) or (number == TOTAL and "geen vragenlijst" in texts(reply).lower()):
                following = TOTAL + 1
            if following is None:
                # The bot failed somewhere (Rasa's REST channel then answers 200 without the
                # question): send the same answer again, as a mentor would.
                self.stats.resent_no_question += 1
                self.event(mentor, f"answer to question {number}: no question in the reply, re-sending")
                await asyncio.sleep(self.backoff(attempts[number] - 1))
                continue
            if following == number:
                if attempts[number] == 1:
                    self.stats.problems[f"valid answer {message!r} to question {number} not accepted"] += 1
                payloads = following_payloads or payloads
                continue
            if following < number:
                self.stats.problems[f"bot went back from question {number} to {following}"] += 1
                number, payloads = following, following_payloads
                continue
            mentor.expected[item.id] = value
            self.progress()
            if following > number + 1:
                # A re-delivered answer was applied to question number+1 as well.
                skipped = number + 1
                self.stats.retry_misapplied += following - number - 1
                self.event(mentor, f"re-delivered answer {message!r} to question {number} also stored for question {skipped}")
                if following <= TOTAL and await self.correct(client, mentor, seq, skipped, following):
                    number, payloads = following, following_payloads
                    continue
                for n in range(skipped, min(following, TOTAL + 1)):
                    mentor.expected[self.items[n - 1].id] = self.value_if_reapplied(n, message, value)
                    self.progress()
            if following > TOTAL:
                mentor.finished = True
                return
            number, payloads = following, following_payloads

    async def correct(self, client, mentor: Mentor, seq: list, skipped: int, current: int) -> bool:
        """'terug' and answer the skipped question as intended, as a mentor who notices would."""
        reply = await self.say(client, mentor, BACK, seq)
        asked, payloads = question_of(reply)
        if asked != skipped:
            self.stats.problems[f"'{BACK}' asked question {asked}, expected {skipped}"] += 1
            return False
        message, value = self.answer_for(skipped, payloads, mentor)
        reply = await self.say(client, mentor, message, seq)
        following, _ = question_of(reply)
        if following != current:
            self.stats.problems[f"after correcting question {skipped}: question {following}, expected {current}"] += 1
            return False
        mentor.expected[self.items[skipped - 1].id] = value
        self.progress()
        self.stats.corrected += 1
        self.event(mentor, f"corrected question {skipped} with 'terug'")
        return True

    # --- forwarded questions: the mentor's side --------------------------------------------

    def arrivals(self, mentor: Mentor) -> int:
        """How many messages across all the mentor's replies carried its question's answer."""
        marker = ANSWER_MARKER.format(token=mentor.token)
        return sum(marker in str(message.get("text") or "")
                   for reply in mentor.replies if isinstance(reply, list)
                   for message in reply if isinstance(message, dict))

    async def forward(self, client, mentor: Mentor) -> None:
        """School, question, 'Vraag het mijn schoolopleider', 'versturen': each step again until the
        bot's reply shows it done. Whether a re-sent step made a second question is checked later."""
        question = QUESTION_TEXT.format(token=mentor.token)
        school = mentor.staff.school
        state, tries = "school", Counter()
        while True:
            tries[state] += 1
            if tries[state] > MAX_RESENDS:
                raise GaveUp(f"forwarding the question: no progress at step '{state}'")
            if state == "school":
                reply = await self.say(client, mentor, SCHOOL_TEXTS[(tries[state] - 1) % 2].format(school=school))
                if "Genoteerd" in texts(reply) and school in texts(reply):
                    state = "ask"
                    continue
                self.event(mentor, "school not noted, saying it again")
            elif state == "ask":
                await self.say(client, mentor, question)  # a knowledge answer or 'weet ik niet': either will do
                state = "forward"
                continue
            elif state in ("forward", "type"):
                # The button forwards the latest typed question; when that is too far back, the bot asks for it.
                reply = await self.say(client, mentor, FORWARD if state == "forward" else question)
                text = texts(reply)
                if f"“{question}”" in text and "Dit stuur ik naar" in text:
                    if school not in text:
                        self.stats.problems["the preview names another recipient than the school's schoolopleider"] += 1
                    state = "consent"
                    continue
                if "Wat wil je aan" in text:
                    state = "type"
                    continue
                if "hangt af van je school" in text:
                    self.stats.problems["forwarding: the bot forgot the school"] += 1
                    state = "school"
                    continue
                self.event(mentor, f"{state}: no preview in the reply, again")
                state = "forward"
            elif state == "consent":
                reply = await self.say(client, mentor, SEND)
                text = texts(reply)
                if "Verstuurd naar" in text:
                    break
                if "nog niet verstuurd" in text:  # still waiting for the consent: say it again
                    self.event(mentor, "consent not taken, 'versturen' again")
                else:
                    self.event(mentor, "'versturen' not confirmed: asking for its questions")
                    state = "verify"
                    continue
            elif state == "verify":
                reply = await self.say(client, mentor, OPEN_QUESTIONS)
                text = texts(reply)
                if mentor.token in text and "Je doorgestuurde vragen" in text:
                    break
                if "nog geen vragen doorgestuurd" in text:
                    state = "forward"  # not sent: a new draft replaces the old one
                    continue
            await asyncio.sleep(self.backoff(tries[state] - 1))
        mentor.staff.sent.add(mentor.token)
        self.event(mentor, "question forwarded")

    async def await_answer(self, client, mentor: Mentor) -> None:
        """'Open vragen' until the answer came with a reply (bounded), then once more: it must not come again."""
        deadline = time.monotonic() + self.args.answer_wait
        while not self.arrivals(mentor):
            if time.monotonic() > deadline:
                raise GaveUp(f"no answer to the forwarded question within {self.args.answer_wait:.0f}s")
            await asyncio.sleep(self.random.uniform(1.0, 3.0))
            await self.say(client, mentor, OPEN_QUESTIONS)
        await self.say(client, mentor, OPEN_QUESTIONS)

    async def question_flow(self, client, mentor: Mentor, step: str) -> None:
        """One step of the forwarded question ('forward' or 'await'); a failure is recorded, the scan goes on."""
        if not mentor.token or mentor.question_failure:
            return
        try:
            await (self.forward(client, mentor) if step == "forward" else self.await_answer(client, mentor))
        except GaveUp as exc:
            mentor.question_failure = str(exc)

    # --- forwarded questions: the schoolopleider's side --------------------------------------

    def cli(self, *args: str) -> str:
        """``mentorwijzer ARGS`` against the stack's database (the environment of scripts/prod.sh)."""
        command = Path(sys.executable).parent / "mentorwijzer"
        if not command.exists():
            command = ROOT / ".venv" / "bin" / "mentorwijzer"
        env = {**os.environ, **self.args.prod_env, "MENTORWIJZER_DB_URL": self.args.db_url}
        done = subprocess.run([str(command), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"mentorwijzer {' '.join(args[:2])} failed: {done.stderr.strip()[-800:]}")
        return done.stdout

    async def is_staff(self, client, member: Staff) -> bool:
        text = texts(await self.say(client, member, OPEN_QUESTIONS))
        return "Open vragen van mentoren" in text or "Er staan geen vragen van mentoren" in text

    async def register_staff(self, client, letter: str) -> Staff:
        """``staff add`` for a school of this run, and the code typed in the schoolopleider's chat."""
        school = f"OBS De Proeftuin {self.tag}{letter}"
        out = await asyncio.to_thread(
            self.cli, "staff", "add", "--name", f"Loadtest Schoolopleider {letter.upper()}",
            "--email", f"loadtest+{self.tag}{letter}@mentorwijzer.invalid", "--school", school)
        code = re.search(r"link code: (\S+)", out)
        if code is None:
            raise SystemExit(f"mentorwijzer staff add printed no link code:\n{out}")
        member = Staff(f"{self.prefix}staff-{letter}", letter, school)
        for attempt in range(MAX_RESENDS):
            reply = await self.say(client, member, LINK.format(code=code.group(1)))
            # A lost confirmation: the code is used up by then, 'open vragen' tells whether it worked.
            if "account als schoolopleider" in texts(reply) or await self.is_staff(client, member):
                return member
            await asyncio.sleep(self.backoff(attempt))
        raise SystemExit(f"the load test's {member.label} could not link a chat with the code")

    async def answer(self, client, member: Staff, question_id: int, token: str) -> bool:
        """'Beantwoord nr. N' and the answer; True when the bot confirmed it (or it was answered before)."""
        text = texts(await self.say(client, member, f'/answer_question{{"question_id":"{question_id}"}}'))
        if f"Vraag {question_id} is al beantwoord" in text:
            return True
        if "Typ je antwoord" not in text or token not in text:
            self.event(member, f"question {question_id}: no answer prompt")
            return False
        text = texts(await self.say(client, member, ANSWER_TEXT.format(token=token)))
        if "Verstuurd naar de mentor" in text or "was al beantwoord" in text:
            return True
        self.event(member, f"question {question_id}: answer not confirmed")
        return False

    async def run_staff(self, client, member: Staff) -> None:
        """While the mentors run (faults included): whenever a mentor saw a question sent and it is not
        handled yet, 'Open vragen' and answer every question listed. Only button payloads besides the
        answers: typed text while the bot waits for an answer would become the answer."""
        attempt = 0
        while not self.mentors_done:
            pending = member.sent - member.handled
            if not pending:
                await asyncio.sleep(0.5)
                continue
            progress = False
            try:
                reply = await self.say(client, member, OPEN_QUESTIONS)
                text = texts(reply)
                if "Open vragen van mentoren" in text or "Er staan geen vragen van mentoren" in text:
                    lines = LISTED.findall(text)
                    listed = {}
                    for number, short in lines:
                        match = self.token.search(short)
                        if match is None:
                            self.stats.problems["a question without this run's token in the load-test list"] += 1
                        else:
                            listed[match.group(1)] = int(number)
                    for token, number in listed.items():
                        if token not in member.handled and await self.answer(client, member, number, token):
                            member.handled.add(token)
                            progress = True
                    if len(lines) < OPEN_LIST_LIMIT and pending - set(listed):
                        member.handled |= pending - set(listed)  # no longer open: an earlier answer got through
                        progress = True
                else:
                    self.event(member, "'open vragen' not answered")
            except GaveUp as exc:
                self.event(member, f"gave up on a message ({exc}), going on")
            attempt = 0 if progress else attempt + 1
            if not progress:  # a schoolopleider looks again soon (at most ~3 s): answers are not held up
                await asyncio.sleep(self.backoff(min(attempt, 2)))

    def backoff(self, attempt: int) -> float:
        return min(8.0, 0.5 * 2 ** attempt) * self.random.uniform(0.5, 1.5)

    def event(self, mentor: Mentor | Staff, what: str) -> None:
        self.events.append((time.monotonic() - self.started, mentor.label, what))

    def fault_event(self, what: str) -> None:
        self.events.append((time.monotonic() - self.started, "FAULT", what))


    def progress(self) -> None:
        self.answered += 1

    @property
    def fraction(self) -> float:
        return self.answered / (self.args.mentors * TOTAL)

    # --- faults --------------------------------------------------------------------------

    def prod(self, *args: str) -> float:
        started = time.monotonic()
        subprocess.run([str(ROOT / "scripts" / "prod.sh"), *args], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        return time.monotonic() - started

    def pid(self, service: str) -> int:
        return int((self.args.prod_dir / f"{service}.pid").read_text().split()[0])

    async def at(self, fraction: float) -> None:
        while self.fraction < fraction and not self.done:
            await asyncio.sleep(0.2)

    async def fault_kill_rasa(self, fraction: float) -> None:
        await self.at(fraction)
        service = f"rasa-{self.args.rasa_ports[0]}"
        os.kill(self.pid(service), 9)
        self.fault_event(f"kill -9 {service}")
        started = time.monotonic()
        await asyncio.to_thread(self.prod, "start", service)
        self.fault_event(f"{service} healthy again")
        self.fault_log.append(f"kill -9 {service} at {fraction:.0%}: back after {time.monotonic() - started:.0f}s")

    async def fault_restart_actions(self, fraction: float) -> None:
        await self.at(fraction)
        started = time.monotonic()
        self.fault_event("action server: stop")
        await asyncio.to_thread(self.prod, "stop", "actions")
        self.fault_event("action server: start")
        await asyncio.to_thread(self.prod, "start", "actions")
        self.fault_event("action server healthy again")
        self.fault_log.append(f"action server restart at {fraction:.0%}: back after {time.monotonic() - started:.0f}s")

    async def fault_restart_postgres(self, fraction: float) -> None:
        await self.at(fraction)
        started = time.monotonic()
        self.fault_event("PostgreSQL: pg_ctl stop -m fast")
        await asyncio.to_thread(self.prod, "stop", "postgres")  # pg_ctl stop -m fast
        await asyncio.sleep(5)
        await asyncio.to_thread(self.prod, "start", "postgres")
        self.fault_event("PostgreSQL up again")
        self.fault_log.append(f"PostgreSQL down 5s at {fraction:.0%}: back after {time.monotonic() - started:.0f}s")

    # --- the run -------------------------------------------------------------------------

    def forwarders(self, mentors: list[Mentor]) -> list[Mentor]:
        """The --forward-share of the mentors, spread evenly over the numbers."""
        share = self.args.forward_share
        return [m for m in mentors if int((m.number + 1) * share) > int(m.number * share)]

    async def run(self) -> list[Mentor]:
        self.done = self.mentors_done = False
        self.started = time.monotonic()
        mentors = [Mentor(f"{self.prefix}{n:04d}", n) for n in range(self.args.mentors)]
        limit = asyncio.Semaphore(self.args.concurrency)
        timeout = httpx.Timeout(150.0, connect=5.0)
        limits = httpx.Limits(max_connections=self.args.concurrency + 5 + self.args.staff,
                              max_keepalive_connections=self.args.concurrency + self.args.staff)

        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
            forwarding = self.forwarders(mentors)
            if forwarding:  # before the faults: registering and linking is not under test here
                self.staff = [await self.register_staff(client, letter)
                              for letter in "abcdefghijklmnopqrstuvwxyz"[:self.args.staff]]
            for index, mentor in enumerate(forwarding):
                mentor.token = f"{self.tag}-{mentor.number:04d}"
                mentor.staff = self.staff[index % len(self.staff)]
                mentor.forward_first = self.args.forward_when == "before" or (
                    self.args.forward_when == "mixed" and mentor.number % 2 == 0)
            self.started = time.monotonic()

            async def one(mentor: Mentor) -> None:
                async with limit:
                    if mentor.forward_first:
                        await self.question_flow(client, mentor, "forward")
                    try:
                        await self.run_mentor(client, mentor)
                    except GaveUp as exc:
                        mentor.failure = str(exc)
                    if not mentor.forward_first:
                        await self.question_flow(client, mentor, "forward")
                    await self.question_flow(client, mentor, "await")

            answering = [asyncio.create_task(self.run_staff(client, member)) for member in self.staff]
            faults = []
            if self.args.faults:
                faults = [asyncio.create_task(self.fault_kill_rasa(0.15)),
                          asyncio.create_task(self.fault_restart_actions(0.40)),
                          asyncio.create_task(self.fault_restart_postgres(0.65))]
            try:
                await asyncio.wait_for(asyncio.gather(*(one(m) for m in mentors)), self.args.max_seconds)
            except asyncio.TimeoutError:
                self.stats.problems[f"time limit of {self.args.max_seconds}s reached"] += 1
            self.mentors_done = self.done = True
            # A schoolopleider may be in the middle of a message (at most the client's timeout).
            _, busy = await asyncio.wait(answering, timeout=200) if answering else (set(), set())
            for task in busy:
                task.cancel()
                self.stats.problems["a schoolopleider was still busy after the mentors were done"] += 1
            for task in answering:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    self.stats.problems[f"schoolopleider failed: {task.exception()!r}"] += 1
            for result in await asyncio.gather(*faults, return_exceptions=True):
                if isinstance(result, BaseException):
                    self.stats.problems[f"fault injection failed: {result!r}"] += 1
        return mentors

    # --- the check -----------------------------------------------------------------------

    def check(self, mentors: list[Mentor]) -> dict:
        engine = create_engine(self.args.db_url, future=True)
        stored: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        runs: dict[str, set] = defaultdict(set)
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT i.sender_id, r.id, a.item_id, a.value FROM identities i "
                "JOIN scan_runs r ON r.mentor_id = i.mentor_id JOIN answers a ON a.run_id = r.id "
                "WHERE i.sender_id LIKE :prefix"), {"prefix": f"{self.prefix}%"})
            for sender, run_id, item_id, value in rows:
                stored[sender][item_id].append(value)
                runs[sender].add(run_id)
        engine.dispose()
        figures = Counter()
        for mentor in mentors:
            got = stored.get(mentor.sender, {})
            figures["answers_expected"] += TOTAL
            figures["stored"] += sum(len(values) for values in got.values())
            figures["duplicated"] += sum(len(values) - 1 for values in got.values()) + max(0, len(runs[mentor.sender]) - 1)
            for item in self.items:
                values = got.get(item.id, [])
                if not values:
                    figures["lost"] += 1
                elif item.id in mentor.expected and values[0] != mentor.expected[item.id]:
                    figures["wrong"] += 1
                    self.wrong_details.append(f"{mentor.sender} item {item.id}: stored {values[0]!r}, "
                                              f"expected {mentor.expected[item.id]!r}")
                elif item.id not in mentor.expected:
                    figures["unconfirmed"] += 1  # stored, but the mentor never saw it confirmed
        return figures

    def check_questions(self, mentors: list[Mentor]) -> Counter:
        """Forwarded questions: one per forwarding mentor (none for the others), answered, one answer
        row in the outbox, delivered, and seen by the mentor exactly once; each schoolopleider's
        notification of it at most once (``q_notices_unseen`` counts the ones never seen)."""
        figures = Counter(questions=sum(1 for m in mentors if m.token), q_answered=0, q_lost=0, q_duplicated=0,
                          q_notices_unseen=0)
        engine = create_engine(self.args.db_url, future=True)
        with engine.connect() as connection:
            questions = connection.execute(text(
                "SELECT id, sender_id, status, text, answer FROM questions "
                "WHERE sender_id LIKE :prefix AND status <> 'draft'"), {"prefix": f"{self.prefix}%"}).all()
            outbox = connection.execute(text(
                "SELECT o.question_id, o.kind, o.delivered_at FROM outbox o JOIN questions q ON q.id = o.question_id "
                "WHERE q.sender_id LIKE :prefix"), {"prefix": f"{self.prefix}%"}).all()
        engine.dispose()
        by_sender: dict[str, list] = defaultdict(list)
        for row in questions:
            by_sender[row.sender_id].append(row)
        rows: dict[tuple[int, str], list] = defaultdict(list)
        for row in outbox:
            rows[(row.question_id, row.kind)].append(row)
        notices: Counter = Counter()
        for member in self.staff:
            for reply in member.replies:
                for message in reply if isinstance(reply, list) else []:
                    if isinstance(message, dict):
                        notices.update(int(n) for n in NOTICE.findall(str(message.get("text") or "")))

        def lost(mentor: Mentor, why: str) -> None:
            figures["q_lost"] += 1
            failure = f" ({mentor.question_failure})" if mentor.question_failure else ""
            self.question_details.append(f"lost: {mentor.sender}: {why}{failure}")

        def duplicated(mentor: Mentor, extra: int, what: str) -> None:
            if extra > 0:
                figures["q_duplicated"] += extra
                self.question_details.append(f"duplicated: {mentor.sender}: {what}")

        for mentor in mentors:
            stored = by_sender.get(mentor.sender, [])
            if not mentor.token:
                duplicated(mentor, len(stored), f"{len(stored)} question(s) without forwarding one")
                continue
            duplicated(mentor, len(stored) - 1, f"{len(stored)} forwarded questions: {sorted(q.id for q in stored)}")
            own = [q for q in stored if mentor.token in q.text]
            if not own:
                lost(mentor, "no forwarded question in the database")
                continue
            question = own[0]
            answers = rows[(question.id, "answer")]
            arrivals = self.arrivals(mentor)
            duplicated(mentor, len(answers) - 1, f"question {question.id}: {len(answers)} answer rows in the outbox")
            duplicated(mentor, arrivals - 1, f"question {question.id}: the answer came {arrivals} times")
            notified = len(rows[(question.id, "new_question")])
            duplicated(mentor, notified - 1, f"question {question.id}: {notified} notifications in the outbox")
            duplicated(mentor, notices[question.id] - 1,
                       f"question {question.id}: the schoolopleider was notified {notices[question.id]} times")
            figures["q_notices_unseen"] += notices[question.id] == 0
            figures["q_answered"] += question.status == "answered"
            if question.status != "answered":
                lost(mentor, f"question {question.id} is {question.status}")
            elif question.answer != ANSWER_TEXT.format(token=mentor.token):
                lost(mentor, f"question {question.id}: another answer was stored")
            elif not answers:
                lost(mentor, f"question {question.id}: answered, but no answer row in the outbox")
            elif not any(row.delivered_at for row in answers):
                lost(mentor, f"question {question.id}: the answer row is still undelivered")
            elif not arrivals:
                lost(mentor, f"question {question.id}: the answer row is marked delivered, but no reply carried it")
        return figures


def read_env_file(path: Path) -> dict:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def local_only(url: str) -> str:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to send load to {host}: only 127.0.0.1")
    return url


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    prod_dir = Path(os.environ.get("PROD_DIR", "var/prod"))
    if not prod_dir.is_absolute():
        prod_dir = ROOT / prod_dir
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentors", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--faults", action=argparse.BooleanOptionalAction, default=True,
                        help="kill -9 a Rasa server, restart the action server, restart PostgreSQL (default on)")
    parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('PROD_INTERNAL_PORT', '8081')}",
                        help="nginx's internal listener (PROD_INTERNAL_PORT); the public one refuses REST")
    parser.add_argument("--sender-prefix", default="load",
                        help="sender ids are <prefix>-<run>-<n>; tg-/teams: prefixes send the channel secret")
    parser.add_argument("--channel-secret", help="MENTORWIJZER_CHANNEL_SECRET for tg-/teams: senders "
                                                 "(default: <prod-dir>/prod.env, else the environment)")
    parser.add_argument("--prod-dir", type=Path, default=prod_dir, help="scripts/prod.sh state (PROD_DIR)")
    parser.add_argument("--db-url", help="answers database (default: MENTORWIJZER_DB_URL from <prod-dir>/prod.env)")
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--think", type=float, default=0.0, help="max think time per message in seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--forward-share", type=float, default=1.0,
                        help="share of the mentors who forward a question to their schoolopleider (0: none)")
    parser.add_argument("--forward-when", choices=("before", "after", "mixed"), default="mixed",
                        help="forward before or after the scan; mixed: even-numbered mentors before, odd ones after")
    parser.add_argument("--staff", type=int, default=None,
                        help=f"schoolopleiders answering in chat, one load-test school each (1-{MAX_STAFF}; "
                             "default one per 10 concurrent mentors)")
    parser.add_argument("--answer-wait", type=float, default=300,
                        help="how long a mentor keeps asking for its answer after the scan, in seconds")
    parser.add_argument("--verbose", action="store_true", help="print every fault, re-delivery and resync with its time")
    parser.add_argument("--strict", action="store_true", help="also fail when a re-delivered answer was stored twice")
    args = parser.parse_args(argv)
    local_only(args.base_url)
    prod_env = read_env_file(args.prod_dir / "prod.env")
    args.prod_env = prod_env  # the environment of `mentorwijzer staff add`
    args.db_url = args.db_url or prod_env.get("MENTORWIJZER_DB_URL")
    if args.sender_prefix.strip().lower().startswith(PROTECTED_PREFIXES):
        # prod.env first: it belongs to the stack under test, a shell may still hold another one's.
        args.channel_secret = (args.channel_secret or prod_env.get("MENTORWIJZER_CHANNEL_SECRET")
                               or os.environ.get("MENTORWIJZER_CHANNEL_SECRET"))
        if not args.channel_secret:
            parser.error(f"sender prefix {args.sender_prefix!r} needs the channel secret: start scripts/prod.sh "
                         "(writes prod.env), set MENTORWIJZER_CHANNEL_SECRET or pass --channel-secret")
    else:
        args.channel_secret = None  # plain ids need none; a wrong one would be refused (403)
    if not args.db_url:
        parser.error(f"no database URL: start scripts/prod.sh (writes {args.prod_dir / 'prod.env'}) or pass --db-url")
    args.rasa_ports = os.environ.get("PROD_RASA_PORTS", "5006 5007").split()
    if args.mentors < 1 or args.concurrency < 1:
        parser.error("--mentors and --concurrency must be at least 1")
    if not 0 <= args.forward_share <= 1:
        parser.error("--forward-share must be between 0 and 1")
    args.staff = args.staff if args.staff is not None else min(MAX_STAFF, max(1, -(-args.concurrency // 10)))
    if not 1 <= args.staff <= MAX_STAFF:
        parser.error(f"--staff must be between 1 and {MAX_STAFF}")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    test = LoadTest(args)
    started = time.monotonic()
    mentors = asyncio.run(test.run())
    duration = time.monotonic() - started
    figures = test.check(mentors)
    figures.update(test.check_questions(mentors))
    stats = test.stats
    finished = sum(m.finished for m in mentors)
    latencies = sorted(stats.latencies)
    p50 = statistics.median(latencies) if latencies else 0.0
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    if args.verbose:
        for at, who, what in test.events:
            print(f"event: {at:7.1f}s {who}: {what}")
    for line in test.fault_log:
        print(f"fault: {line}")
    for problem, count in stats.problems.most_common(20):
        print(f"problem: {problem} (x{count})")
    for detail in test.wrong_details[:20]:
        print(f"wrong: {detail}")
    for detail in test.question_details[:20]:
        print(f"question {detail}")
    for mentor in mentors:
        if mentor.failure:
            print(f"mentor {mentor.sender} gave up: {mentor.failure}")
    print(f"timing: duration={duration:.0f}s messages={stats.sent} requests={stats.requests} "
          f"throughput={stats.sent / duration:.1f}/s p50={p50 * 1000:.0f}ms p95={p95 * 1000:.0f}ms")
    print(f"mentors={len(mentors)} finished={finished} answers_expected={figures['answers_expected']} "
          f"stored={figures['stored']} lost={figures['lost']} duplicated={figures['duplicated']} "
          f"wrong={figures['wrong']} unconfirmed={figures['unconfirmed']} retry_misapplied={stats.retry_misapplied} "
          f"errors_5xx={stats.errors_5xx} connection_errors={stats.connection_errors} "
          f"corrected={stats.corrected} resent_no_question={stats.resent_no_question} not_resumed={stats.not_resumed} "
          f"questions={figures['questions']} q_answered={figures['q_answered']} q_lost={figures['q_lost']} "
          f"q_duplicated={figures['q_duplicated']} q_notices_unseen={figures['q_notices_unseen']}")
    failed = figures["lost"] or figures["duplicated"] or figures["wrong"] or finished < len(mentors)
    failed = failed or figures["q_lost"] or figures["q_duplicated"]
    failed = failed or (args.strict and stats.retry_misapplied)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
