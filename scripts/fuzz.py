"""Fuzz test: hostile and odd input against the running production set-up (`make serve-prod`,
scripts/prod.sh). `make loadtest` runs it after the load test, and tests/integration/test_prod.py
runs it too; on its own: `.venv/bin/python scripts/fuzz.py` while `make serve-prod` runs.

Sends at least ``--messages`` requests (default 1,000) through nginx on 127.0.0.1, bounded by
``--max-seconds``:

* the trust boundary first: on nginx's PUBLIC port (``--public-url``, PROD_HTTP_PORT) the REST
  channel, Rasa's HTTP API and /status must answer 404, also under path tricks (``//``, ``../``,
  percent-encoding, case) and spoofed ``X-Forwarded-For``; on the INTERNAL port (``--base-url``,
  PROD_INTERNAL_PORT) the REST channel must refuse ``tg-``/``teams:`` senders without the channel
  secret or with a wrong one (403), and such refused senders must leave no trace (no identity, no
  answer, no conversation); with the secret (MENTORWIJZER_CHANNEL_SECRET from <prod-dir>/prod.env)
  a ``tg-`` sender is answered like the Telegram bridge;
* well-formed REST messages (internal port) with odd text: empty, whitespace, 10 kB, emoji,
  right-to-left and bidi controls, HTML/Markdown, SQL and template injection, control characters,
  lone surrogates, Rasa's "/intent" syntax, long and strange sender ids; half of the senders are
  inside the mentorscan, so the text also reaches the answer parser;
* malformed requests (internal port): invalid UTF-8, broken or deep JSON, wrong field types, wrong
  content types (415), wrong methods, oversized bodies (413); and the Teams webhook (public port)
  without a valid token (401 expected when the channel is enabled, 404 when it is not).

Then checks: no server process died (pid files), every well-formed message got a non-empty Dutch
reply, malformed requests got no 5xx (the REST channel, bot/channels/rest.py, answers 400 to a body
that is not a message), the boundary held (``public_not_404=0 protected_not_403=0 refused_traces=0
secret_accepted=yes``), and the answers table changed only by valid answers: rows of other senders
are untouched, every new value is valid for its item, and each fuzz sender has exactly the answers
the bot confirmed by moving on to the next question. Malformed requests answered with another status
than expected, or failing in transport, are reported (``--strict`` fails on them).

Prints ``fuzz messages=… crashes=0 …`` and exits non-zero when a check fails.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
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

from bot.questionnaire import MAX_OPEN_TEXT, load_questionnaire  # noqa: E402

CHANNEL_SECRET_HEADER = "X-Mentorwijzer-Channel-Secret"  # bot/keys.py

QUESTION = re.compile(r"Vraag (\d+) van (\d+)")
DUTCH = {"je", "jij", "jouw", "ik", "de", "het", "een", "van", "niet", "wat", "kun", "kunt", "kan", "is", "dat",
         "met", "voor", "op", "over", "vraag", "typ", "bijvoorbeeld", "helaas", "weet", "graag", "of", "en",
         "dit", "welke", "wil", "mentorscan", "antwoord", "kies", "knop", "snap", "begrijp", "bedoel", "hoi",
         "hallo", "dank", "wie", "waar", "hoe", "mij", "mijn", "er", "nog", "zijn", "wordt", "jullie"}
ENGLISH = {"the", "you", "please", "sorry,", "understand", "your", "what", "hello", "didn't", "i'm"}
ZALGO = "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇"
ODD_TEXTS: list[tuple[str, str]] = [
    ("empty", ""),
    ("space", " "),
    ("whitespace", " \t\n\r\n  \u00a0\u2003"),
    ("10kB", ("Ik ben mentor en ik heb een vraag over mijn student. " * 200)[:10240]),
    ("10kB-one-word", "a" * 10240),
    ("emoji", "👍"),
    ("emoji-many", "🙂🙃🤔🎉👩🏽‍🏫👨‍👩‍👧‍👦🏳️‍🌈" * 20),
    ("emoji-digit", "4️⃣"),
    ("hebrew", "שלום, מה שלומך? אני מורה"),
    ("arabic", "مرحبا، أنا معلم في المدرسة"),
    ("bidi-override", "\u202eneeb nav sneem\u202c 3"),
    ("mixed-rtl", "ik ben \u05de\u05d5\u05e8\u05d4 mentor \u200f!"),
    ("zero-width", "\u200b\u200c\u200d\ufeff"),
    ("zalgo", ZALGO),
    ("html-script", "<script>alert('x')</script>"),
    ("html-img", "<img src=x onerror=alert(1)><b>vet</b>"),
    ("markdown", "**vet** _schuin_ [klik](javascript:alert(1)) `code` # kop\n- lijst"),
    ("markdown-telegram", "*_[]()~`>#+-=|{}.!"),
    ("sql-drop", "'; DROP TABLE answers; --"),
    ("sql-or", "1' OR '1'='1"),
    ("sql-union", "3 UNION SELECT sender_id, value FROM answers --"),
    ("sql-comment", "4; --"),
    ("template-jinja", "{{7*7}} {% for x in range(9) %}x{% endfor %}"),
    ("template-dollar", "${7*7} #{7*7} %{7*7}"),
    ("template-rasa", "{name} {requested_slot} {scan_answer}"),
    ("format-string", "%s%s%s%n%x %(x)s"),
    ("control", "\x00\x01\x02\x07\x08\x1b[31mrood\x1b[0m\x7f"),
    ("nul-only", "\x00"),
    ("noncharacters", "\ufffe\uffff\U0010ffff"),
    ("newlines", "\n" * 500),
    ("long-number", "9" * 400),
    ("negative", "-1"),
    ("decimal", "3,5"),
    ("float", "1e308"),
    ("json-in-text", '{"sender": "iemand-anders", "message": "5"}'),
    ("path", "../../../../etc/passwd"),
    ("url", "https://example.invalid/?q=<x>"),
    ("english", "I don't speak Dutch, what is this?"),
    ("shouting", "WAT IS EEN SCHOOLOPLEIDER???"),
    ("typos", "wie moet ik mailn als mijn studnet ziek is"),
    ("null-word", "null"),
    ("undefined", "undefined"),
    ("none", "None"),
    ("repeat-answer", "5 5 5 5 5 5 5 5"),
]
# Rasa's own syntax for intents ("/intent{entities}"): a reply is expected, a missing one is reported
# (silent_commands) but not an error: Rasa's built-in /restart and /session_start say nothing.
COMMANDS = [
    ("command-restart", "/restart"),
    ("command-start", "/start_scan"),
    ("command-entities", '/ask_knowledge{"role": "schoolopleider"}'),
    ("command-broken", "/ask_knowledge{\"role\": "),
    ("command-unknown", "/bestaat_niet"),
    ("command-session", "/session_start"),
]
# Not valid Unicode (lone UTF-16 surrogates, sent as JSON escapes): Rasa's spaCy step fails on them,
# so no reply is required; nothing may crash or be stored.
INVALID_UNICODE = [("lone-surrogate", "\ud800 3 \udfff"), ("lone-low-surrogate", "\udc00")]
SENDER_LIMIT = 200  # identities.sender_id is VARCHAR(200)
ODD_SENDERS = ["fuzz-ü-ñ-✓", "fuzz-" + "x" * 150, "fuzz-" + "y" * (SENDER_LIMIT - 14), "fuzz-'; DROP TABLE identities; --", "fuzz-<b>", "fuzz-\u202e"]


@dataclass
class Checks:
    sent: int = 0
    well_formed: int = 0
    malformed: int = 0
    no_reply: list = field(default_factory=list)
    not_dutch: list = field(default_factory=list)
    silent_commands: list = field(default_factory=list)
    invalid_unicode_unanswered: int = 0
    malformed_5xx: list = field(default_factory=list)
    malformed_unexpected: list = field(default_factory=list)  # other status than expected, or transport error
    well_formed_errors: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    teams: Counter = field(default_factory=Counter)
    longest_reply: int = 0
    public_not_404: list = field(default_factory=list)  # public port answered something else than 404
    protected_not_403: list = field(default_factory=list)  # tg-/teams: sender without the secret not refused
    secret_accepted: str = "skipped"  # yes | no: ... | skipped (no secret known)


@dataclass
class FuzzSender:
    sender: str
    in_scan: bool
    asked: Optional[int] = None
    confirmed: set = field(default_factory=set)  # question numbers the bot moved past


def text_of(reply) -> str:
    if not isinstance(reply, list):
        return ""
    return "\n".join(str(m.get("text") or "") for m in reply if isinstance(m, dict))


def question_of(reply) -> Optional[int]:
    number = None
    for match in QUESTION.finditer(text_of(reply)):
        number = int(match.group(1))
    return number


def is_dutch(reply_text: str) -> bool:
    words = re.findall(r"[a-zà-ÿ']+,?", reply_text.lower())
    plain = {w.rstrip(",") for w in words}
    return bool(plain & DUTCH) and len(plain & ENGLISH) <= 1


def malformed_requests(sender: str, rng: random.Random) -> list[tuple[str, str, str, dict, bytes, set]]:
    """(name, method, path, headers, body, expected statuses).

    The REST channel (bot/channels/rest.py) takes only ``application/json`` (415 otherwise, also
    without a Content-Type), at most 256 KiB (413, from nginx first), and answers 400 to anything
    that is not ``{"sender": str, "message": str, "metadata": object}``; what is still a message is
    answered (200). These go to the INTERNAL port, where Rasa's API is not served either (404).
    """
    rest = "/webhooks/rest/webhook"
    json_type = {"Content-Type": "application/json"}
    ok = {200}
    bad = {400}
    media = {415}
    deep = 3000
    return [
        ("invalid-utf8", "POST", rest, json_type, b'{"sender": "%s", "message": "\xff\xfe\xc3\x28 \xed\xa0\x80"}' % sender.encode(), bad),
        ("truncated-json", "POST", rest, json_type, b'{"sender": "%s", "message": "hoi' % sender.encode(), {400}),
        ("brace", "POST", rest, json_type, b"{", {400}),
        ("empty-body", "POST", rest, json_type, b"", {400}),
        ("json-null", "POST", rest, json_type, b"null", {400}),
        ("json-array", "POST", rest, json_type, b'["hoi"]', {400}),
        ("json-string", "POST", rest, json_type, b'"hoi"', {400}),
        ("json-number", "POST", rest, json_type, b"42", {400}),
        ("no-message", "POST", rest, json_type, json.dumps({"sender": sender}).encode(), bad),
        ("no-sender", "POST", rest, json_type, json.dumps({"message": "hoi"}).encode(), bad),
        ("message-null", "POST", rest, json_type, json.dumps({"sender": sender, "message": None}).encode(), bad),
        ("message-number", "POST", rest, json_type, json.dumps({"sender": sender, "message": 3}).encode(), bad),
        ("message-object", "POST", rest, json_type, json.dumps({"sender": sender, "message": {"a": 1}}).encode(), bad),
        ("message-list", "POST", rest, json_type, json.dumps({"sender": sender, "message": ["3", "4"]}).encode(), bad),
        ("sender-number", "POST", rest, json_type, json.dumps({"sender": 12345, "message": "hoi"}).encode(), bad),
        ("sender-object", "POST", rest, json_type, json.dumps({"sender": {"id": 1}, "message": "hoi"}).encode(), bad),
        ("metadata-string", "POST", rest, json_type, json.dumps({"sender": sender, "message": "hoi", "metadata": "x"}).encode(), bad),
        ("metadata-channel", "POST", rest, json_type, json.dumps({"sender": sender, "message": "hoi", "metadata": {"channel": "x" * 500}}).encode(), ok),
        ("nan", "POST", rest, json_type, b'{"sender": "%s", "message": NaN}' % sender.encode(), bad),
        ("duplicate-keys", "POST", rest, json_type, b'{"sender": "%s", "message": "3", "message": "4"}' % sender.encode(), ok),
        ("bom", "POST", rest, json_type, b"\xef\xbb\xbf" + json.dumps({"sender": sender, "message": "hoi"}).encode(), ok),
        ("utf16", "POST", rest, json_type, json.dumps({"sender": sender, "message": "hoi"}).encode("utf-16"), ok),
        ("deep-array", "POST", rest, json_type, b"[" * deep + b"]" * deep, bad),
        ("deep-object", "POST", rest, json_type, b'{"a":' * deep + b"1" + b"}" * deep, bad),
        ("text-plain", "POST", rest, {"Content-Type": "text/plain"}, json.dumps({"sender": sender, "message": "hoi"}).encode(), media),
        ("form", "POST", rest, {"Content-Type": "application/x-www-form-urlencoded"}, b"sender=%s&message=hoi" % sender.encode(), media),
        ("multipart", "POST", rest, {"Content-Type": "multipart/form-data; boundary=xx"},
         b'--xx\r\nContent-Disposition: form-data; name="message"\r\n\r\nhoi\r\n--xx--\r\n', media),
        ("multipart-broken", "POST", rest, {"Content-Type": "multipart/form-data"}, b"--\r\n\r\n", media),
        ("xml", "POST", rest, {"Content-Type": "application/xml"}, b"<message>hoi</message>", media),
        ("json-lookalike", "POST", rest, {"Content-Type": "application/jsonx"}, json.dumps({"sender": sender, "message": "hoi"}).encode(), media),
        ("no-content-type", "POST", rest, {}, json.dumps({"sender": sender, "message": "hoi"}).encode(), media),
        ("content-type-garbage", "POST", rest, {"Content-Type": "application/json; charset=klingon"},
         json.dumps({"sender": sender, "message": "hoi"}).encode(), ok),
        ("content-type-upper", "POST", rest, {"Content-Type": "Application/JSON"}, json.dumps({"sender": sender, "message": "hoi"}).encode(), ok),
        ("get", "GET", rest, {}, b"", {405}),
        ("put", "PUT", rest, json_type, b"{}", {405}),
        ("delete", "DELETE", rest, {}, b"", {405}),
        ("oversized", "POST", rest, json_type, json.dumps({"sender": sender, "message": "a" * 300_000}).encode(), {413}),
        ("just-over-256KiB", "POST", rest, json_type, json.dumps({"sender": sender, "message": "a" * 262_144}).encode(), {413}),
        ("oversized-text-plain", "POST", rest, {"Content-Type": "text/plain"}, b"a" * 300_000, {413}),
        ("random-bytes", "POST", rest, json_type, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))), bad),
        ("api-tracker", "GET", f"/conversations/{sender}/tracker", {}, b"", {404}),
        ("api-model", "PUT", "/model", json_type, b"{}", {404}),
        ("api-status", "GET", "/status", {}, b"", {401, 403}),
        ("unknown-channel", "POST", "/webhooks/bestaatniet/webhook", json_type, b"{}", {404}),
    ]


def public_requests(sender: str) -> list[tuple[str, str, str, dict, bytes]]:
    """(name, method, path, headers, body) that nginx's PUBLIC port must answer with 404.

    Only Teams (POST /webhooks/teams/webhook) and /telegram/ are public; the REST channel trusts
    its caller to name the sender, so it must not be reachable from outside however the path is
    spelled and whatever address a request claims to come from.
    """
    json_type = {"Content-Type": "application/json"}
    message = json.dumps({"sender": sender, "message": "hoi"}).encode()
    protected = json.dumps({"sender": "tg-4242", "message": "hoi"}).encode()
    spoofed = {**json_type, "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}
    rest = "/webhooks/rest/webhook"
    cases = [
        ("rest-post", "POST", rest, json_type, message),
        ("rest-health", "GET", "/webhooks/rest/", {}, b""),
        ("rest-protected-with-secret-header", "POST", rest, {**json_type, CHANNEL_SECRET_HEADER: "guess"}, protected),
        ("rest-spoofed-forwarded", "POST", rest, spoofed, message),
        ("rest-query", "POST", rest + "?stream=true", json_type, message),
        ("rest-trailing-slash", "POST", rest + "/", json_type, message),
        ("rest-double-slash", "POST", "/webhooks//rest/webhook", json_type, message),
        ("rest-leading-double-slash", "POST", "//webhooks/rest/webhook", json_type, message),
        ("rest-dot", "POST", "/webhooks/./rest/webhook", json_type, message),
        ("rest-encoded", "POST", "/webhooks/%72est/webhook", json_type, message),
        ("rest-encoded-slash", "POST", "/webhooks%2Frest%2Fwebhook", json_type, message),
        ("rest-upper", "POST", "/webhooks/REST/webhook", json_type, message),
        ("rest-via-teams-dotdot", "POST", "/webhooks/teams/../rest/webhook", json_type, message),
        ("rest-via-teams-encoded-dotdot", "POST", "/webhooks/teams/%2e%2e/rest/webhook", json_type, message),
        ("rest-via-teams-encoded-slash", "POST", "/webhooks/teams/..%2Frest/webhook", json_type, message),
        ("rest-via-teams-webhook-dotdot", "POST", "/webhooks/teams/webhook/../../rest/webhook", json_type, message),
        ("rest-via-telegram-dotdot", "POST", "/telegram/../webhooks/rest/webhook", json_type, message),
        ("api-tracker", "GET", "/conversations/x/tracker", {}, b""),
        ("api-tracker-events", "POST", "/conversations/x/tracker/events", json_type, b"[]"),
        ("api-messages", "POST", "/conversations/x/messages", json_type, b'{"text": "hoi", "sender": "user"}'),
        ("api-trigger", "POST", "/conversations/x/trigger_intent", json_type, b'{"name": "greet"}'),
        ("api-model", "PUT", "/model", json_type, b"{}"),
        ("api-parse", "POST", "/model/parse", json_type, b'{"text": "hoi"}'),
        ("api-root", "GET", "/", {}, b""),
        ("api-version", "GET", "/version", {}, b""),
        ("status", "GET", "/status", {}, b""),
        ("status-token", "GET", "/status?token=guess", {}, b""),
        ("status-spoofed", "GET", "/status", {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}, b""),
        ("other-channel", "POST", "/webhooks/bestaatniet/webhook", json_type, b"{}"),
        ("other-channel-health", "GET", "/webhooks/bestaatniet/", {}, b""),
        ("botframework-default", "POST", "/webhooks/botframework/webhook", json_type, b"{}"),
    ]
    return cases


async def raw_request(base_url: str, method: str, path: str, headers: dict, body: bytes, timeout: float = 30.0) -> int:
    """The status of one HTTP/1.1 request sent byte for byte: httpx normalises "..", "//" and "%2e"
    in paths away, and those are exactly what a path trick needs."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(url.hostname, url.port or 80), timeout)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc}", "Connection: close",
                 f"Content-Length: {len(body)}", *(f"{key}: {value}" for key, value in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"no HTTP status line: {status_line[:60]!r}")
        return int(parts[1])
    finally:
        writer.close()


def protected_senders(tag: str) -> list[tuple[str, str, dict]]:
    """(name, sender, extra headers): ids of authenticated channels that the REST channel must refuse
    (403) without the right channel secret, in every spelling ``bot.identity.is_protected`` knows."""
    wrong = {CHANNEL_SECRET_HEADER: "wrong-" + tag}
    number = int(tag, 16) % 10**9
    return [
        ("tg-no-secret", f"tg-{number}", {}),
        ("tg-upper", f"TG-{number + 1}", {}),
        ("tg-blank-prefix", f" tg-{number + 2}", {}),
        ("tg-wrong-secret", f"tg-{number + 3}", wrong),
        ("tg-empty-secret", f"tg-{number + 4}", {CHANNEL_SECRET_HEADER: ""}),
        ("teams-no-secret", f"teams:{tag}:{tag}", {}),
        ("teams-mixed-case", f"Teams:{tag}:x{tag}", {}),
        ("teams-wrong-secret", f"teams:{tag}:y{tag}", wrong),
    ]


def teams_requests() -> list[tuple[str, dict, bytes]]:
    activity = json.dumps({"type": "message", "id": "1", "text": "hoi", "channelId": "msteams",
                           "serviceUrl": "http://127.0.0.1:9/", "from": {"id": "x"},
                           "conversation": {"id": "c"}, "recipient": {"id": "b"}}).encode()
    json_type = {"Content-Type": "application/json"}
    return [
        ("no-auth", json_type, activity),
        ("garbage-bearer", {**json_type, "Authorization": "Bearer garbage"}, activity),
        ("basic-auth", {**json_type, "Authorization": "Basic dXNlcjpwYXNz"}, activity),
        ("bare-bearer", {**json_type, "Authorization": "Bearer"}, activity),
        ("malformed-json", {**json_type, "Authorization": "Bearer garbage"}, b"{"),
    ]


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tag = uuid.uuid4().hex[:8]
        self.base = args.base_url.rstrip("/")
        self.public = args.public_url.rstrip("/")
        self.checks = Checks()
        self.refused: list[str] = []  # protected senders refused: they must leave no trace
        self.questionnaire = load_questionnaire("mentorscan")
        self.deadline = time.monotonic() + args.max_seconds

    def odd_texts(self) -> list[tuple[str, str]]:
        cases = list(ODD_TEXTS)
        for n in range(20):  # random unicode soup, incl. astral planes and controls
            length = self.rng.randrange(1, 200)
            cases.append((f"random-{n}", "".join(chr(self.rng.choice([self.rng.randrange(0x20, 0x7f),
                                                                       self.rng.randrange(0xa0, 0x2fff),
                                                                       self.rng.randrange(0x1f300, 0x1faff),
                                                                       self.rng.randrange(0, 0x20)]))
                                                 for _ in range(length))))
        return cases

    def track(self, fuzz: FuzzSender, reply) -> None:
        """Follow the scan: a reply asking the next question confirms the previous one was stored."""
        number = question_of(reply)
        if fuzz.asked is not None and number is not None and number == fuzz.asked + 1:
            fuzz.confirmed.add(fuzz.asked)
        if number is not None:
            fuzz.asked = number

    async def post_message(self, client, fuzz: FuzzSender, name: str, message: str, group: str = "text") -> None:
        self.checks.sent += 1
        self.checks.well_formed += 1
        try:
            # ASCII-escaped JSON, so lone surrogates travel as \\ud800 escapes like a JS client sends them.
            body = json.dumps({"sender": fuzz.sender, "message": message}).encode("ascii")
            response = await client.post(f"{self.base}/webhooks/rest/webhook", content=body,
                                         headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            self.checks.well_formed_errors.append(f"{name}: {type(exc).__name__}")
            return
        self.checks.statuses[f"well-formed {response.status_code}"] += 1
        if response.status_code != 200:
            self.checks.well_formed_errors.append(f"{name}: HTTP {response.status_code}")
            return
        try:
            reply = response.json()
        except ValueError:
            self.checks.no_reply.append(f"{name}: reply is not JSON")
            return
        reply_text = text_of(reply)
        self.checks.longest_reply = max(self.checks.longest_reply, max((len(str(m.get("text") or "")) for m in reply if isinstance(m, dict)), default=0))
        label = f"{name} (sender {fuzz.sender[:24]}…)"
        if not reply_text.strip() and group == "command":
            self.checks.silent_commands.append(name)
        elif not reply_text.strip() and group == "invalid-unicode":
            self.checks.invalid_unicode_unanswered += 1
        elif not reply_text.strip():
            self.checks.no_reply.append(label)
        elif not is_dutch(reply_text):
            self.checks.not_dutch.append(f"{label}: {reply_text[:80]!r}")
        self.track(fuzz, reply)

    async def post_raw(self, client, fuzz, name, method, path, headers, body, acceptable) -> None:
        self.checks.sent += 1
        self.checks.malformed += 1
        try:
            response = await client.request(method, f"{self.base}{path}", headers=headers, content=body)
        except httpx.HTTPError as exc:  # e.g. nginx closing an oversized upload early
            self.checks.malformed_unexpected.append(f"{name}: {type(exc).__name__}")
            return
        self.checks.statuses[f"malformed {response.status_code}"] += 1
        if response.status_code >= 500:
            self.checks.malformed_5xx.append(f"{name}: HTTP {response.status_code}")
        elif response.status_code not in acceptable:
            self.checks.statuses[f"malformed {name} unexpected {response.status_code}"] += 1
            self.checks.malformed_unexpected.append(f"{name}: HTTP {response.status_code}")
        if response.status_code == 200:  # some odd requests are still messages (e.g. duplicate keys)
            try:
                self.track(fuzz, response.json())
            except ValueError:
                pass

    async def post_teams(self, client) -> None:
        for name, headers, body in teams_requests():
            self.checks.sent += 1
            self.checks.malformed += 1
            try:
                response = await client.post(f"{self.public}/webhooks/teams/webhook", headers=headers, content=body)
            except httpx.HTTPError as exc:
                self.checks.teams[(name, type(exc).__name__)] += 1
                continue
            self.checks.teams[(name, response.status_code)] += 1

    async def check_public(self, client) -> None:
        """Nothing but Teams and /telegram/ on the public port: everything here must be 404."""
        for name, method, path, headers, body in public_requests(f"fuzz-public-{self.tag}"):
            self.checks.sent += 1
            self.checks.malformed += 1
            try:
                status = await raw_request(self.public, method, path, headers, body)
            except (OSError, ValueError, asyncio.TimeoutError) as exc:
                self.checks.public_not_404.append(f"{name}: {type(exc).__name__}")
                continue
            self.checks.statuses[f"public {status}"] += 1
            if status != 404:
                self.checks.public_not_404.append(f"{name} ({method} {path}): HTTP {status}")

    async def check_protected(self, client) -> None:
        """On the internal port, ids of authenticated channels need the channel secret."""
        url = f"{self.base}/webhooks/rest/webhook"
        for name, sender, headers in protected_senders(self.tag):
            for message in ("ik wil de mentorscan invullen", "5"):
                self.checks.sent += 1
                self.checks.malformed += 1
                try:
                    response = await client.post(url, json={"sender": sender, "message": message}, headers=headers)
                except httpx.HTTPError as exc:
                    self.checks.protected_not_403.append(f"{name}: {type(exc).__name__}")
                    continue
                self.checks.statuses[f"protected {response.status_code}"] += 1
                if response.status_code != 403:
                    self.checks.protected_not_403.append(f"{name}: HTTP {response.status_code}")
            self.refused.append(sender)
        if not self.args.channel_secret:
            return
        # The bridge's way in: a tg- sender with the secret is a normal conversation.
        sender = f"tg-{int(self.tag, 16) % 10**9 + 100}"
        self.checks.sent += 1
        self.checks.well_formed += 1
        try:
            response = await client.post(url, json={"sender": sender, "message": "wat doet een schoolopleider?"},
                                         headers={CHANNEL_SECRET_HEADER: self.args.channel_secret})
        except httpx.HTTPError as exc:
            self.checks.secret_accepted = f"no:{type(exc).__name__}"
            return
        self.checks.statuses[f"with-secret {response.status_code}"] += 1
        try:
            reply = response.json() if response.status_code == 200 else None
        except ValueError:
            reply = None
        if response.status_code != 200:
            self.checks.secret_accepted = f"no:HTTP{response.status_code}"
        elif not is_dutch(text_of(reply)):
            self.checks.secret_accepted = "no:reply"
        else:
            self.checks.secret_accepted = "yes"

    async def one_sender(self, client, fuzz: FuzzSender, budget: int) -> None:
        if fuzz.in_scan:
            await self.post_message(client, fuzz, "start", "ik wil de mentorscan invullen")
            budget -= 1
        cases = self.odd_texts()
        raw = malformed_requests(fuzz.sender, self.rng)
        while budget > 0 and time.monotonic() < self.deadline:
            roll = self.rng.random()
            if roll < 0.52:
                name, message = self.rng.choice(cases)
                await self.post_message(client, fuzz, name, message)
            elif roll < 0.57:
                name, message = self.rng.choice(COMMANDS)
                await self.post_message(client, fuzz, name, message, "command")
            elif roll < 0.6:
                name, message = self.rng.choice(INVALID_UNICODE)
                await self.post_message(client, fuzz, name, message, "invalid-unicode")
            else:
                await self.post_raw(client, fuzz, *self.rng.choice(raw))
            budget -= 1

    async def run(self) -> list[FuzzSender]:
        per_sender = 12
        count = max(1, -(-self.args.messages // per_sender))
        senders = []
        for n in range(count):
            name = f"{ODD_SENDERS[n]}-{self.tag}" if n < len(ODD_SENDERS) else f"fuzz-{self.tag}-{n:04d}"
            senders.append(FuzzSender(name, in_scan=n % 2 == 0))
        limit = asyncio.Semaphore(self.args.concurrency)
        timeout = httpx.Timeout(120.0, connect=5.0)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            await self.check_public(client)
            await self.check_protected(client)
            await self.post_teams(client)

            async def one(fuzz: FuzzSender, budget: int) -> None:
                async with limit:
                    await self.one_sender(client, fuzz, budget)

            remaining = self.args.messages - self.checks.sent
            budgets = [remaining // count + (1 if n < remaining % count else 0) for n in range(count)]
            await asyncio.gather(*(one(s, b) for s, b in zip(senders, budgets)))
        return senders


# --- database and process checks ------------------------------------------------------------


def answer_rows(db_url: str) -> list[tuple]:
    engine = create_engine(db_url, future=True)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(
                "SELECT a.id, i.sender_id, a.item_id, a.value, a.answered_at FROM answers a "
                "JOIN scan_runs r ON r.id = a.run_id JOIN identities i ON i.mentor_id = r.mentor_id")))
    finally:
        engine.dispose()


def valid_value(questionnaire, item_id: str, value: str) -> bool:
    try:
        item = questionnaire.item(item_id)
    except KeyError:
        return False
    scale = questionnaire.scale_of(item)
    if scale is None:
        return bool(value.strip()) and len(value) <= MAX_OPEN_TEXT and bool(re.search(r"\w", value))
    return value in {opt.value for opt in scale.options} or (
        getattr(scale, "multiple", False) and set(value.split(",")) <= {opt.value for opt in scale.options})


def answers_check(before: list[tuple], after: list[tuple], senders: list[FuzzSender], questionnaire, tag: str) -> list[str]:
    problems = []
    ours = {s.sender for s in senders}
    digest = lambda rows: hashlib.sha256(repr(sorted((r[0], r[1], r[2], r[3], str(r[4])) for r in rows)).encode()).hexdigest()
    others_before = [r for r in before if r[1] not in ours]
    others_after = [r for r in after if r[1] not in ours]
    if digest(others_before) != digest(others_after):
        problems.append(f"answers of other senders changed ({len(others_before)} -> {len(others_after)} rows)")
    stored = defaultdict(set)
    for _, sender, item_id, value, _ in after:
        if sender in ours:
            stored[sender].add(item_id)
            if not valid_value(questionnaire, item_id, value):
                problems.append(f"invalid value stored for {sender[:40]} item {item_id}: {value[:40]!r}")
    items = questionnaire.items
    for fuzz in senders:
        confirmed = {items[n - 1].id for n in fuzz.confirmed}
        if stored.get(fuzz.sender, set()) != confirmed:
            problems.append(f"{fuzz.sender[:40]}: stored {sorted(stored.get(fuzz.sender, set()))}, "
                            f"bot confirmed {sorted(confirmed)}")
    return problems


def traces_of(db_url: str, tracker_db_url: Optional[str], senders: list[str]) -> list[str]:
    """Where refused senders appear anyway: identities (answers hang off them) or Rasa's tracker."""
    found = []
    for label, url, query in [
        ("identities", db_url, "SELECT sender_id FROM identities WHERE sender_id = :sender"),
        ("conversations", tracker_db_url, "SELECT sender_id FROM events WHERE sender_id = :sender LIMIT 1"),
    ]:
        if not url:
            continue
        engine = create_engine(url, future=True)
        try:
            with engine.connect() as connection:
                for sender in senders:
                    variants = {sender, sender.strip(), sender.strip().lower()}
                    for variant in variants:
                        if connection.execute(text(query), {"sender": variant}).first():
                            found.append(f"{label}: {variant!r}")
        finally:
            engine.dispose()
    return found


def processes_alive(prod_dir: Path) -> tuple[int, list[str]]:
    result = subprocess.run([str(ROOT / "scripts" / "prod.sh"), "status"], capture_output=True, text=True,
                            env={**os.environ, "PROD_DIR": str(prod_dir)}, cwd=ROOT)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    dead = [line for line in lines if "running" not in line]
    return len(lines), dead


def handler_exceptions(prod_dir: Path, offsets: dict) -> int:
    count = 0
    for log in sorted((prod_dir / "logs").glob("rasa-*.log")) + [prod_dir / "logs" / "actions.log"]:
        if not log.exists():
            continue
        with open(log, "rb") as file:
            file.seek(offsets.get(log, 0))
            data = file.read().decode("utf-8", "replace")
        count += data.count("rest.message.received.failure") + data.count("Traceback (most recent call last)")
    return count


def log_offsets(prod_dir: Path) -> dict:
    return {log: log.stat().st_size for log in (prod_dir / "logs").glob("*.log")}


def read_env_file(path: Path) -> dict:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def parse_args(argv=None):
    prod_dir = Path(os.environ.get("PROD_DIR", "var/prod"))
    if not prod_dir.is_absolute():
        prod_dir = ROOT / prod_dir
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="requests to send (at least)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('PROD_INTERNAL_PORT', '8081')}",
                        help="nginx's INTERNAL listener: the REST channel (PROD_INTERNAL_PORT)")
    parser.add_argument("--public-url", default=f"http://127.0.0.1:{os.environ.get('PROD_HTTP_PORT', '8080')}",
                        help="nginx's PUBLIC listener: Teams only, REST must be 404 (PROD_HTTP_PORT)")
    parser.add_argument("--prod-dir", type=Path, default=prod_dir)
    parser.add_argument("--db-url")
    parser.add_argument("--channel-secret", help="MENTORWIJZER_CHANNEL_SECRET (default: <prod-dir>/prod.env, "
                                                 "else the environment); without it the with-secret check is skipped")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--strict", action="store_true",
                        help="also fail on malformed requests answered with another status than expected "
                             "(or failing in transport) and on commands without a reply")
    args = parser.parse_args(argv)
    for url in (args.base_url, args.public_url):
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error(f"refusing to fuzz {host}: only 127.0.0.1")
    prod_env = read_env_file(args.prod_dir / "prod.env")
    args.db_url = args.db_url or prod_env.get("MENTORWIJZER_DB_URL")
    if not args.db_url:
        parser.error("no database URL: start scripts/prod.sh first or pass --db-url")
    args.tracker_db_url = prod_env.get("MENTORWIJZER_TRACKER_DB_URL") or os.environ.get("MENTORWIJZER_TRACKER_DB_URL")
    # prod.env first: it belongs to the stack under test, a shell may still hold another one's secret.
    args.channel_secret = (args.channel_secret or prod_env.get("MENTORWIJZER_CHANNEL_SECRET")
                           or os.environ.get("MENTORWIJZER_CHANNEL_SECRET"))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    fuzzer = Fuzzer(args)
    services, dead_before = processes_alive(args.prod_dir)
    if dead_before:
        print("not running before the fuzz: " + "; ".join(dead_before))
        return 2
    offsets = log_offsets(args.prod_dir)
    before = answer_rows(args.db_url)
    started = time.monotonic()
    senders = asyncio.run(fuzzer.run())
    duration = time.monotonic() - started
    _, dead = processes_alive(args.prod_dir)
    after = answer_rows(args.db_url)
    answer_problems = answers_check(before, after, senders, fuzzer.questionnaire, fuzzer.tag)
    exceptions = handler_exceptions(args.prod_dir, offsets)
    checks = fuzzer.checks
    traces = traces_of(args.db_url, args.tracker_db_url, fuzzer.refused)
    codes = {code for _, code in checks.teams}
    teams_ok = codes == {404} or all(code == 401 or (name == "malformed-json" and code == 400) for name, code in checks.teams)
    teams = "absent(404)" if codes == {404} else ("401" if teams_ok else "|".join(f"{n}:{c}" for n, c in checks.teams))
    for label, items in [("no reply", checks.no_reply), ("not Dutch", checks.not_dutch),
                         ("well-formed failed", checks.well_formed_errors), ("malformed 5xx", checks.malformed_5xx),
                         ("malformed unexpected", checks.malformed_unexpected),
                         ("answers", answer_problems), ("dead", dead), ("silent command", checks.silent_commands),
                         ("public not 404", checks.public_not_404), ("protected not 403", checks.protected_not_403),
                         ("refused sender left a trace", traces)]:
        for item in sorted(set(items))[:15]:
            print(f"problem ({label}): {item}")
    for key, count in sorted(checks.statuses.items()):
        print(f"status: {key} x{count}")
    new_answers = len([r for r in after if r[1] in {s.sender for s in senders}])
    print(f"fuzz messages={checks.sent} well_formed={checks.well_formed} malformed={checks.malformed} "
          f"crashes={len(dead)} no_reply={len(checks.no_reply)} not_dutch={len(checks.not_dutch)} "
          f"well_formed_errors={len(checks.well_formed_errors)} silent_commands={len(checks.silent_commands)} "
          f"invalid_unicode_unanswered={checks.invalid_unicode_unanswered} malformed_5xx={len(checks.malformed_5xx)} "
          f"malformed_unexpected={len(checks.malformed_unexpected)} "
          f"teams={teams} answers_stored={new_answers} answer_violations={len(answer_problems)} "
          f"handler_exceptions={exceptions} longest_reply={checks.longest_reply} "
          f"public_not_404={len(checks.public_not_404)} protected_not_403={len(checks.protected_not_403)} "
          f"refused_traces={len(traces)} secret_accepted={checks.secret_accepted} duration={duration:.0f}s")
    boundary_failed = (checks.public_not_404 or checks.protected_not_403 or traces
                       or checks.secret_accepted.startswith("no"))
    failed = (dead or checks.no_reply or checks.not_dutch or checks.well_formed_errors or answer_problems
              or checks.malformed_5xx or not teams_ok or checks.sent < args.messages or boundary_failed)
    failed = failed or (args.strict and (checks.malformed_unexpected or checks.silent_commands))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
