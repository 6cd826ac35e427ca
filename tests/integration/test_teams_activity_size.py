"""No activity over the size limit reaches the (fake) Bot Connector: the results chart fits and still
carries its image, a large export arrives as several files, anything else too large as a short text.

Uses the fake Bot Framework and the channel set-up of tests/integration/test_teams.py.
"""
from __future__ import annotations

import base64
import json
import os

from bot.channels.teams import (
    EXPORT_IN_PARTS_TEXT,
    EXPORT_TOO_LARGE_TEXT,
    IMAGE_TOO_LARGE_TEXT,
    MAX_ACTIVITY_BYTES,
    MESSAGE_TOO_LARGE_TEXT,
    TeamsInput,
    TeamsOutput,
)
from bot.charts import chart_message
from tests.integration.test_teams import APP_ID, APP_PASSWORD, StubAgent, activity, fake, post, serve  # noqa: F401
from tests.unit.test_charts import export_content, scan_results

JSON_PREFIX = "data:application/json;base64,"


def body_bytes(recorded) -> int:
    """The size of the POST body as the connector received it."""
    return int(recorded.headers["Content-Length"])


def assert_all_under_limit(posted: list) -> None:
    sizes = [body_bytes(p) for p in posted]
    assert sizes and max(sizes) < MAX_ACTIVITY_BYTES, sizes


async def test_teams_results_chart_goes_out_under_limit_with_image(fake, serve):
    chart = chart_message(scan_results("12345"), "teams")
    agent = StubAgent(reply={"text": chart.text, "image": chart.image})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    posted = fake.posted()
    assert_all_under_limit(posted)
    text, image = posted
    assert text.body["text"] == "Je resultaten in een grafiek:"
    assert image.body["attachments"] == [{"contentType": "image/png", "contentUrl": chart.image,
                                          "name": "afbeelding.png"}]


async def test_teams_oversized_image_is_replaced_by_text(fake, serve, caplog):
    too_large = "data:image/png;base64," + base64.b64encode(os.urandom(30_000)).decode()
    agent = StubAgent(reply={"text": "Je resultaten in een grafiek:", "image": too_large})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    posted = fake.posted()
    assert_all_under_limit(posted)
    text, stand_in = posted
    assert "attachments" not in stand_in.body
    assert stand_in.body["text"] == IMAGE_TOO_LARGE_TEXT
    assert stand_in.body["conversation"] == text.body["conversation"]
    assert stand_in.body["recipient"] == text.body["recipient"]
    assert "message with image/png" in caplog.text and "over the limit of 25000" in caplog.text
    assert too_large[22:80] not in caplog.text


async def test_teams_large_export_arrives_as_files_under_limit(fake, serve):
    content = export_content(runs=20)
    assert len(content.encode("utf-8")) > MAX_ACTIVITY_BYTES
    agent = StubAgent(reply={"text": "Hier is alles als JSON-bestand (export van je gegevens):",
                             "custom": {"type": "export", "filename": "mentorwijzer-gegevens.json",
                                        "content": content}})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    posted = fake.posted()
    assert_all_under_limit(posted)
    intro, announcement, *files = posted
    assert len(files) > 1
    assert announcement.body["text"] == EXPORT_IN_PARTS_TEXT.format(parts=len(files))
    merged: dict = {}
    for number, file in enumerate(files, start=1):
        [attachment] = file.body["attachments"]
        assert attachment["name"] == f"mentorwijzer-gegevens-deel-{number}-van-{len(files)}.json"
        assert attachment["contentUrl"].startswith(JSON_PREFIX)
        part = json.loads(base64.b64decode(attachment["contentUrl"][len(JSON_PREFIX):]).decode("utf-8"))
        for key, value in part.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    assert merged == json.loads(content)  # nothing lost, nothing doubled


async def test_teams_unsplittable_export_is_replaced_by_text(fake, serve):
    content = json.dumps({"answer": "x" * 40_000})
    agent = StubAgent(reply={"custom": {"type": "export", "filename": "mentorwijzer-gegevens.json",
                                        "content": content}})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    posted = fake.posted()
    assert_all_under_limit(posted)
    [stand_in] = posted
    assert "attachments" not in stand_in.body
    assert stand_in.body["text"] == EXPORT_TOO_LARGE_TEXT


async def test_teams_oversized_text_is_never_posted_as_is(fake, serve):
    agent = StubAgent(reply={"text": "lang " * 10_000})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    posted = fake.posted()
    assert_all_under_limit(posted)
    [stand_in] = posted
    assert stand_in.body["text"] == MESSAGE_TOO_LARGE_TEXT


async def test_teams_nothing_posted_when_even_the_stand_in_is_too_large(fake, serve, monkeypatch, caplog):
    monkeypatch.setattr(TeamsOutput, "max_activity_bytes", 100)
    agent = StubAgent(reply={"text": "Hoi!"})
    url = await serve(TeamsInput(APP_ID, APP_PASSWORD), agent)

    assert await post(url, activity(fake), fake.token(APP_ID)) == 200

    assert fake.posted() == []
    assert "not sent: even its stand-in is" in caplog.text
