"""The terminal chat (bot/terminal_chat.py, `make chat`) driven through a pseudo-terminal, as a person
would: against the real servers of conftest.py, and once end to end through scripts/chat.sh, which
starts and stops its own servers.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import httpx
import pytest

from bot.terminal_chat import Button, Files, choose, render
from tests.integration.servers import ROOT, free_port

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")
WARNING = re.compile(r"warning", re.IGNORECASE)
CHOICE = re.compile(r"^ {2}(\d+)\) (.+?)\s*$", re.MULTILINE)
PROMPT = "Jij:"  # prompt_toolkit draws the space after it as a cursor movement
REPLY = r"Mentorwijzer:|\(geen antwoord\)|weigerde|kwam niet aan"


class Terminal:
    """A program on a pseudo-terminal (its controlling terminal, 120x40): type keys, read the screen."""

    def __init__(self, argv: list[str], env: dict, cwd: Path = ROOT) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env={**env, "TERM": "xterm-256color"},
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.raw = b""
        self.position = 0  # where the next expect() starts looking in screen()

    def screen(self) -> str:
        """Everything shown so far, without colours and cursor movements."""
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace")).replace("\r", "")

    def _read(self, timeout: float) -> bytes | None:
        """New output (b"" once the program closed the terminal), None after `timeout` without any."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return None
        try:
            chunk = os.read(self.master, 65536)
        except OSError as error:  # EIO: the program closed the terminal
            if error.errno != errno.EIO:
                raise
            chunk = b""
        self.raw += chunk
        return chunk

    def expect(self, pattern: str, timeout: float = 120) -> re.Match:
        """Wait until `pattern` shows up after the previous match; continue after it."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            match = regex.search(self.screen(), self.position)
            if match:
                self.position = match.end()
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._read(min(0.5, remaining)) == b"":
                if not regex.search(self.screen(), self.position):
                    raise AssertionError(f"{pattern!r} not on screen; it shows:\n{self.screen()[-3000:]}")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode("utf-8"))

    def ask(self, text: str) -> str:
        """Type a line at the prompt and press Enter; the reply, once the next prompt is shown."""
        self.type(text + "\r")
        start = self.position
        self.expect(REPLY)
        self.expect(re.escape(PROMPT))
        return self.screen()[start:self.position]

    def wait(self, timeout: float = 60) -> int:
        """The exit status, once the program has ended and its last output is read."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        status = self.process.wait(timeout=1)
        while self._read(0.2):
            pass
        return status

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.master)


def choices(text: str) -> dict[str, int]:
    """The numbered choices in a piece of screen: title -> number."""
    return {title: int(number) for number, title in CHOICE.findall(text)}


def last_user_text(servers, sender: str) -> str:
    tracker = httpx.get(f"{servers.rasa_url}/conversations/{sender}/tracker",
                        params={"token": servers.api_token}, timeout=30).json()
    return [event for event in tracker["events"] if event["event"] == "user"][-1]["text"]


@pytest.fixture
def client(servers):
    """The terminal client on a pseudo-terminal, talking to the shared servers as a fresh sender."""
    terminals = []

    def start() -> tuple[Terminal, str]:
        sender = f"terminal-test-{uuid.uuid4().hex[:8]}"
        terminal = Terminal([sys.executable, "-m", "bot.terminal_chat", "--url", servers.rasa_url,
                             "--sender", sender], env=dict(os.environ))
        terminals.append(terminal)
        return terminal, sender

    yield start
    for terminal in terminals:
        terminal.close()


def greet(terminal: Terminal) -> dict[str, int]:
    """Wait for the first prompt, say hoi; the numbered choices of the reply."""
    terminal.expect("Typ je vraag")
    terminal.expect(re.escape(PROMPT))
    return choices(terminal.ask("hoi"))


def test_terminal_chat_greeting_shows_numbered_choices(client):
    terminal, _ = client()
    shown = greet(terminal)
    assert "Mentorscan invullen" in shown, terminal.screen()
    assert sorted(shown.values()) == list(range(1, len(shown) + 1))
    assert not WARNING.search(terminal.screen()), terminal.screen()


def test_terminal_chat_typed_question_while_buttons_are_shown_is_a_question(client, servers):
    terminal, sender = client()
    assert greet(terminal)
    question = "wat doet een schoolopleider?"
    answer = terminal.ask(question)
    assert "Mentorwijzer:" in answer and "Vraag 1 van" not in answer, answer
    assert last_user_text(servers, sender) == question  # sent as typed, not as a button's payload
    assert not WARNING.search(terminal.screen())


def test_terminal_chat_number_presses_the_button(client, servers):
    terminal, sender = client()
    shown = greet(terminal)
    scan = terminal.ask(str(shown["Mentorscan invullen"]))
    assert re.search(r"Vraag 1 van \d+", scan), scan
    assert last_user_text(servers, sender).startswith("/")  # the button's payload (an intent)
    assert choices(scan).get("1 · helemaal oneens") == 1, scan  # the scale as numbered choices
    assert not WARNING.search(terminal.screen())


def test_terminal_chat_number_without_such_button_is_sent_as_text(client, servers):
    terminal, sender = client()
    shown = greet(terminal)
    terminal.ask(str(len(shown) + 7))
    assert last_user_text(servers, sender) == str(len(shown) + 7)


@pytest.mark.parametrize("ending", ["/stop\r", "\x04", "\x03"], ids=["stop", "ctrl-d", "ctrl-c"])
def test_terminal_chat_ends_cleanly(client, ending):
    terminal, _ = client()
    greet(terminal)
    terminal.type(ending)
    assert terminal.wait() == 0
    assert "Tot ziens!" in terminal.screen()
    assert "Traceback" not in terminal.screen() and not WARNING.search(terminal.screen()), terminal.screen()


def test_terminal_chat_without_server_says_so():
    port = free_port()
    terminal = Terminal([sys.executable, "-m", "bot.terminal_chat", "--url", f"http://127.0.0.1:{port}"],
                        env=dict(os.environ))
    try:
        assert terminal.wait() == 1
        assert "niet bereikbaar" in terminal.screen()
    finally:
        terminal.close()


def test_terminal_chat_renders_images_and_exports(tmp_path):
    png = "data:image/png;base64,iVBORw0KGgo="
    export = {"type": "export", "filename": "../mentorwijzer-gegevens.json", "content": '{"a": 1}'}
    messages = [{"text": "Je resultaten:", "image": png}, {"custom": export},
                {"text": "Verder?", "buttons": [{"title": "Ja", "payload": "/affirm"}]}]
    shown = render(messages, Files(None))
    assert ("note", "[afbeelding]") in shown.lines and ("button", "  1) Ja") in shown.lines
    assert any("mentorwijzer-gegevens.json" in text for _, text in shown.lines)
    saved = render(messages, Files(tmp_path / "files"))
    assert (tmp_path / "files" / "mentorwijzer-gegevens.json").read_text() == '{"a": 1}'
    assert (tmp_path / "files" / "afbeelding.png").read_bytes().startswith(b"\x89PNG")
    assert oct((tmp_path / "files" / "mentorwijzer-gegevens.json").stat().st_mode & 0o777) == "0o600"
    assert any(str(tmp_path / "files" / "afbeelding.png") in text for _, text in saved.lines)


def test_terminal_chat_choose_maps_only_bare_keys_of_shown_buttons():
    buttons = {"1": Button("Ja", "/affirm"), "2": Button("Nee", "/deny"), "a": Button("Meer", "/ask_more")}
    assert choose("2", buttons) == "/deny"
    assert choose(" 1 ", buttons) == "/affirm"
    assert choose("A", buttons) == "/ask_more"
    assert choose("3", buttons) == "3"
    assert choose("2 uur per week?", buttons) == "2 uur per week?"
    assert choose("1", {}) == "1"


def test_terminal_chat_numbers_the_last_set_of_buttons_and_letters_earlier_ones():
    answer = {"text": "Antwoord. Bron: ...", "buttons": [{"title": "Meer hierover", "payload": "/ask_more"},
                                                          {"title": "👍 Nuttig", "payload": "/feedback"}]}
    question = {"text": "Vraag 2 van 37", "buttons": [{"title": f"{n} · x", "payload": f"/v{n}"} for n in (1, 2, 3)]}
    shown = render([answer, question], Files(None))
    assert [text for style, text in shown.lines if style == "button"] == [
        "  a) Meer hierover", "  b) 👍 Nuttig", "  1) 1 · x", "  2) 2 · x", "  3) 3 · x"]
    assert choose("3", shown.buttons) == "/v3" and choose("a", shown.buttons) == "/ask_more"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_chat_script_starts_chats_and_stops_everything(tmp_path):
    rasa_port, actions_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MENTORWIJZER_", "RASA_", "TELEGRAM_", "MICROSOFT_"))}
    env.update({"RASA_PORT": str(rasa_port), "MENTORWIJZER_ACTIONS_PORT": str(actions_port),
                "MENTORWIJZER_VAR_DIR": str(tmp_path / "var"),
                "MENTORWIJZER_DB_URL": f"sqlite:///{tmp_path / 'mentorwijzer.db'}",
                "MENTORWIJZER_TRACKER_DB_URL": f"sqlite:///{tmp_path / 'tracker.db'}",
                "MENTORWIJZER_CHAT_SENDER": "terminal-chat-script-test"})
    terminal = Terminal([str(ROOT / "scripts" / "chat.sh")], env=env)
    try:
        terminal.expect("Even geduld, Mentorwijzer start op", timeout=30)
        terminal.expect("Typ je vraag", timeout=600)
        terminal.position = 0
        shown = greet(terminal)
        assert "Mentorscan invullen" in shown, terminal.screen()
        terminal.type("/stop\r")
        assert terminal.wait(timeout=60) == 0
    finally:
        terminal.close()
    screen = terminal.screen()
    assert "Tot ziens!" in screen
    assert not WARNING.search(screen) and "Traceback" not in screen, screen
    assert not port_open(rasa_port) and not port_open(actions_port)
    assert (tmp_path / "var" / "chat.log").stat().st_size > 0  # the servers' output went there
