"""Chart PNGs small enough to go inline to Teams, and large exports split into files that fit."""
from __future__ import annotations

import itertools
import json
from io import BytesIO

import pytest
from PIL import Image

from bot.channels.teams import MAX_ACTIVITY_BYTES, export_parts
from bot.charts import chart_message, data_uri, render_bars, render_png
from bot.questionnaire import load_questionnaire, results

BLUE, ORANGE = (0x2B, 0x7B, 0xB9), (0xD9, 0x82, 0x2B)
# The chart travels as base64 (4/3) inside an activity of a few hundred bytes: half the limit is ample.
CHART_BUDGET = MAX_ACTIVITY_BYTES // 2


def scan_results(pattern: str):
    """Mentorscan results with every item answered, likert values cycling through ``pattern``."""
    scan = load_questionnaire("mentorscan")
    values = itertools.cycle(pattern)
    answers = {}
    for item in scan.items:
        scale = scan.scale_of(item)
        if scale is None:
            answers[item.id] = "Meer tijd voor gesprekken met mijn student. " * 20
        elif scale.type == "likert5":
            answers[item.id] = next(values)
        elif scale.type == "yes_no":
            answers[item.id] = "nee"
        else:
            answers[item.id] = scale.options[0].value
    return results(scan, answers)


def colours(png: bytes) -> set:
    image = Image.open(BytesIO(png))
    return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=256)}


@pytest.mark.parametrize("pattern", ["3", "24", "12345", "41523"])
def test_charts_full_mentorscan_chart_fits_teams_budget(pattern):
    result = scan_results(pattern)
    scan = result.questionnaire
    likert = [s for s in scan.sections if any(getattr(scan.scale_of(i), "type", None) == "likert5" for i in s.items)]
    assert len([r for r in result.sections if r.average is not None]) == len(likert) == 7  # a bar for each

    png = render_png(result)

    assert len(data_uri(png)) < CHART_BUDGET


def test_charts_chart_is_a_palette_png_of_unchanged_size():
    png = render_png(scan_results("12345"))

    image = Image.open(BytesIO(png))
    assert image.format == "PNG" and image.mode == "P"
    assert image.width >= 700 and image.height >= 600  # same size as before: large fonts on a phone
    assert {BLUE, ORANGE, (255, 255, 255)} <= colours(png)  # bars and highlight keep their colours


def test_charts_group_report_chart_fits_teams_budget():
    """The chart of ``bot.reports.chat_report``: section ids under a school's name."""
    sections = [f"1.{i}" for i in range(1, 8)]

    png = render_bars(sections, [2.17, 4.83, 3.5, 1.33, 4.0, 2.67, 5.0],
                      "Mentorscan Openbare Basisschool De Regenboog-Zonnewijzer (Noord-Holland)")

    assert len(data_uri(png)) < CHART_BUDGET


def test_charts_chart_message_carries_png_data_uri():
    message = chart_message(scan_results("24"), "teams")

    assert message.image.startswith("data:image/png;base64,")
    assert len(message.image) < CHART_BUDGET


def export_content(runs: int) -> str:
    data = {"mentor_id": "0f0e", "name": "Juf Test", "channels": [{"channel": "teams", "sender_id": "teams:t:a"}],
            "questionnaires": [{"questionnaire": "evaluatie-mentortraining", "run": n,
                                "answers": {str(i): f"Antwoord {n}.{i}: " + "ë" * 400 for i in range(1, 8)}}
                               for n in range(runs)]}
    return json.dumps(data, ensure_ascii=False, indent=2)


def test_export_parts_fit_and_together_hold_everything():
    content = export_content(runs=12)

    parts = export_parts(content, 8000)

    assert len(parts) > 1
    assert all(len(part.encode("utf-8")) <= 8000 for part in parts)
    merged: dict = {}
    for part in parts:
        for key, value in json.loads(part).items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    assert merged == json.loads(content)


def test_export_parts_small_export_stays_one_part():
    content = export_content(runs=1)

    assert export_parts(content, 100_000) == [content]


@pytest.mark.parametrize("content", ['["geen", "object"]', "geen json", json.dumps({"answer": "x" * 9000})])
def test_export_parts_none_when_not_splittable(content):
    assert export_parts(content, 8000) is None
