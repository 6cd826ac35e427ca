"""`make chat`: talk to Mentorwijzer in the terminal through the REST channel, as Teams and Telegram do.

``python -m bot.terminal_chat --url http://127.0.0.1:5005 --sender terminal-ann`` posts every line to
``/webhooks/rest/webhook`` and prints the replies. Buttons are shown as numbered choices under their
message; typing a bare number that matches one sends that button's payload, anything else is sent as
typed (a question stays a question while buttons are shown). When one reply holds several sets of
buttons (an answer with feedback buttons, then the mentorscan's question again), the last set, the
question being asked, is numbered from 1 and the earlier ones get letters (a, b, ...). Images and
JSON exports are saved in ``--files`` (or only announced). ``/stop``, Ctrl-C and Ctrl-D end the
chat. The prompt is prompt_toolkit's (line editing, history of this session only); without a
terminal on stdin (a pipe, a script) lines are read as they come.

Needs nothing from Rasa: only httpx and prompt_toolkit, so no third-party warnings reach the screen.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import json
import os
import posixpath
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote_to_bytes

import httpx

BOT = "Mentorwijzer"
YOU = "Jij"
STOP_COMMANDS = {"/stop", "/quit", "/exit"}
WELCOME = ("Mentorwijzer in de terminal. Typ je vraag, of 'hoi' om te beginnen.\n"
           "Een nummer kiest een knop; /stop, Ctrl-C of Ctrl-D stopt.")
BUTTON_HINT = "(typ het nummer van een keuze, of typ gewoon je eigen tekst)"
GOODBYE = "Tot ziens!"
UNREACHABLE = "Mentorwijzer is niet bereikbaar op {url}. Draait de server (make serve)?"
SEND_FAILED = "Je bericht kwam niet aan ({reason}). Probeer het nog eens, of typ /stop."
REFUSED = "De server weigerde je bericht ({status}: {detail})."
NO_REPLY = "(geen antwoord)"
IMAGE_NOTE = "[afbeelding]"
IMAGE_SAVED = "[afbeelding opgeslagen: {path}]"
IMAGE_LINK = "[afbeelding: {url}]"
EXPORT_NOTE = "[bestand {name}: in Teams en Telegram krijg je het als bijlage]"
EXPORT_SAVED = "[bestand opgeslagen: {path}]"
UNKNOWN_CUSTOM = "[een bericht dat de terminal niet kan tonen]"
DEFAULT_EXPORT_NAME = "mentorwijzer-gegevens.json"
TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass
class Reply:
    """What to print for one bot turn and the buttons its keys (1, 2, ... and a, b, ...) now stand for."""

    lines: list[tuple[str, str]] = field(default_factory=list)  # (style, text): bot, button, note
    buttons: dict[str, Button] = field(default_factory=dict)


def choose(text: str, buttons: dict[str, Button]) -> str:
    """The message for what was typed: the bare key of a shown button is that button's payload."""
    button = buttons.get(text.strip().lower())
    return button.payload if button is not None else text


def button_keys(messages: list[Any]) -> list[list[str]]:
    """Per message, the keys of its buttons: numbers for the last message with buttons, letters before."""
    counts = [len(_buttons(message)) for message in messages]
    last = max((index for index, count in enumerate(counts) if count), default=-1)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    return [[str(n) for n in range(1, count + 1)] if index == last else [next(letters, "") for _ in range(count)]
            for index, count in enumerate(counts)]


def _buttons(message: Any) -> list[Button]:
    if not isinstance(message, dict):
        return []
    found = []
    for button in message.get("buttons") or []:
        if isinstance(button, dict):
            title = str(button.get("title") or button.get("payload") or "")
            found.append(Button(title, str(button.get("payload") or title)))
    return found


def decode_data_uri(uri: str) -> Optional[tuple[str, bytes]]:
    """``data:image/png;base64,...`` -> (extension, bytes); None for anything else."""
    match = re.match(r"data:image/([a-z0-9.+-]+)(;base64)?,", uri, re.IGNORECASE)
    if not match:
        return None
    data = uri[match.end():]
    try:
        raw = base64.b64decode(data, validate=False) if match.group(2) else unquote_to_bytes(data)
    except (binascii.Error, ValueError):
        return None
    extension = {"jpeg": "jpg", "svg+xml": "svg"}.get(match.group(1).lower(), match.group(1).lower())
    return extension, raw


class Files:
    """Where images and exports are saved (private: mode 700 directory, 600 files); None: not saved."""

    def __init__(self, directory: Optional[Path]) -> None:
        self.directory = directory

    def save(self, name: str, content: bytes) -> Optional[Path]:
        if self.directory is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        stem, extension = posixpath.splitext(posixpath.basename(name.replace("\\", "/")) or "bestand")
        path = self.directory / f"{stem}{extension}"
        counter = 1
        while path.exists():
            counter += 1
            path = self.directory / f"{stem}-{counter}{extension}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        return path


def render(messages: list[dict[str, Any]], files: Files) -> Reply:
    """The REST channel's messages as terminal lines, each message's buttons under it (button_keys)."""
    reply = Reply()
    for message, keys in zip(messages, button_keys(messages)):
        if not isinstance(message, dict):
            continue
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            reply.lines.append(("bot", text.strip()))
        for button, key in zip(_buttons(message), keys):
            if key:
                reply.buttons[key] = button
            reply.lines.append(("button", f"  {key}) {button.title}" if key else f"  - {button.title}"))
        image = message.get("image")
        if isinstance(image, str) and image:
            reply.lines.append(("note", _image_note(image, files)))
        custom = message.get("custom")
        if isinstance(custom, dict) and custom.get("type") == "export":
            reply.lines.append(("note", _export_note(custom, files)))
        elif custom is not None:
            reply.lines.append(("note", UNKNOWN_CUSTOM))
    if not reply.lines:
        reply.lines.append(("note", NO_REPLY))
    return reply


def _image_note(image: str, files: Files) -> str:
    decoded = decode_data_uri(image)
    if decoded is not None:
        extension, content = decoded
        path = files.save(f"afbeelding.{extension}", content)
        return IMAGE_SAVED.format(path=path) if path else IMAGE_NOTE
    if image.startswith(("https://", "http://")):
        return IMAGE_LINK.format(url=image)
    return IMAGE_NOTE


def _export_note(custom: dict[str, Any], files: Files) -> str:
    content = custom.get("content", "")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False, indent=2)
    name = posixpath.basename(str(custom.get("filename") or "").replace("\\", "/")) or DEFAULT_EXPORT_NAME
    path = files.save(name, content.encode("utf-8"))
    return EXPORT_SAVED.format(path=path) if path else EXPORT_NOTE.format(name=name)


class Rest:
    """The REST channel as a client: one POST per message, the replies as a list of dicts."""

    def __init__(self, url: str, sender: str) -> None:
        self.base = url.rstrip("/")
        self.sender = sender
        self.client = httpx.Client(timeout=TIMEOUT_SECONDS)

    def reachable(self) -> bool:
        try:
            return self.client.get(f"{self.base}/webhooks/rest/", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def send(self, message: str) -> list[dict[str, Any]]:
        response = self.client.post(f"{self.base}/webhooks/rest/webhook",
                                    json={"sender": self.sender, "message": message})
        if response.status_code != 200:
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise Refused(REFUSED.format(status=response.status_code, detail=str(detail)[:200]))
        body = response.json()
        return body if isinstance(body, list) else []

    def close(self) -> None:
        self.client.close()


class Refused(Exception):
    """The server answered, but not with replies (4xx/5xx); the text says why, in Dutch."""


class Screen:
    """Prints and reads: prompt_toolkit on a terminal, plain lines otherwise (pipes, scripts)."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.session = None
        if interactive:
            # Cursor position requests only size completion menus, which we have none of; without
            # them a terminal that does not answer them gets no warning.
            os.environ.setdefault("PROMPT_TOOLKIT_NO_CPR", "1")
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import InMemoryHistory
            from prompt_toolkit.styles import Style

            self.session = PromptSession(history=InMemoryHistory())
            self.style = Style.from_dict({"label": "bold ansiblue", "button": "ansicyan", "note": "italic ansigray",
                                          "you": "bold ansigreen"})

    def read(self) -> str:
        """One line; EOFError at Ctrl-D or end of input, KeyboardInterrupt at Ctrl-C."""
        if self.session is not None:
            return self.session.prompt([("class:you", f"{YOU}:"), ("", " ")], style=self.style)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        line = line.rstrip("\n")
        print(f"{YOU}: {line}", flush=True)
        return line

    def show(self, style: str, text: str) -> None:
        if style == "bot":
            first, *rest = self._wrap(text, len(BOT) + 2) or [""]
            self._print([("class:label", f"{BOT}: "), ("", first)])
            for line in rest:
                self._print([("", f"  {line}")])
        elif style == "button":
            self._print([("class:button", text)])
        elif style == "plain":
            self._print([("", text)])
        else:
            self._print([("class:note", text)])

    def _wrap(self, text: str, label_width: int) -> list[str]:
        """The lines of a message without their indent; on a terminal wrapped at word boundaries so
        that, with the label before the first and two spaces before the others, they fit its width."""
        lines = text.splitlines()
        if not self.interactive:
            return lines
        width = max(shutil.get_terminal_size().columns - 1, 30)
        wrapped: list[str] = []
        for line in lines:
            first = " " * (label_width if not wrapped else 2)
            parts = textwrap.wrap(line, width, initial_indent=first, subsequent_indent="  ",
                                  break_long_words=False, break_on_hyphens=False) or [first]
            wrapped.append(parts[0][len(first):])
            wrapped.extend(part[2:] for part in parts[1:])
        return wrapped

    def _print(self, fragments: list[tuple[str, str]]) -> None:
        if not self.interactive:
            print("".join(text for _, text in fragments), flush=True)
            return
        from prompt_toolkit import print_formatted_text
        from prompt_toolkit.formatted_text import FormattedText

        print_formatted_text(FormattedText(fragments), style=self.style)


def chat(rest: Rest, screen: Screen, files: Files) -> int:
    """The conversation loop; returns the exit status (0 also after /stop, Ctrl-C, Ctrl-D)."""
    if not rest.reachable():
        screen.show("note", UNREACHABLE.format(url=rest.base))
        return 1
    screen.show("note", WELCOME)
    buttons: dict[str, Button] = {}
    hinted = False
    while True:
        try:
            typed = screen.read()
        except (EOFError, KeyboardInterrupt):
            break
        if not typed.strip():
            continue
        if typed.strip().lower() in STOP_COMMANDS:
            break
        try:
            messages = rest.send(choose(typed, buttons))
        except KeyboardInterrupt:
            screen.show("plain", "")  # after the terminal's ^C
            break
        except Refused as refused:
            screen.show("note", str(refused))
            continue
        except httpx.HTTPError as error:
            screen.show("note", SEND_FAILED.format(reason=type(error).__name__))
            continue
        reply = render(messages, files)
        for style, text in reply.lines:
            screen.show(style, text)
        buttons = reply.buttons
        if buttons and not hinted:
            screen.show("note", BUTTON_HINT)
            hinted = True
        screen.show("plain", "")  # a blank line between turns
    screen.show("note", GOODBYE)
    return 0


def default_sender() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "mentor"
    return "terminal-" + (re.sub(r"[^A-Za-z0-9_.-]", "", user) or "mentor")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.terminal_chat", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5005", help="Rasa server (REST channel)")
    parser.add_argument("--sender", default=default_sender(),
                        help="conversation id (default: terminal-<login>; the same id continues the conversation)")
    parser.add_argument("--files", type=Path, help="save images and exports here (default: only announce them)")
    args = parser.parse_args(argv)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    rest = Rest(args.url, args.sender)
    try:
        return chat(rest, Screen(interactive), Files(args.files))
    except KeyboardInterrupt:
        print(f"\n{GOODBYE}")
        return 0
    finally:
        rest.close()


if __name__ == "__main__":
    sys.exit(main())
