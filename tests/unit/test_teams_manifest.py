"""The Teams app package: manifest for this bot, Dutch texts, icons of the sizes Teams requires."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image

from bot.settings import get_settings
from bot.teams_manifest import write_package

APP_ID = "7b3f0c2e-9a41-4d5e-8f6a-2c1b0d9e8a77"


@pytest.fixture
def teams_env(monkeypatch):
    monkeypatch.setenv("MICROSOFT_APP_ID", APP_ID)
    monkeypatch.setenv("MENTORWIJZER_PUBLIC_URL", "https://mentorwijzer.school.example.nl")
    get_settings.cache_clear()


def read(package):
    with zipfile.ZipFile(package) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_teams_manifest_package_files(teams_env, tmp_path):
    package = write_package(tmp_path / "out" / "mentorwijzer-teams.zip")

    assert package == tmp_path / "out" / "mentorwijzer-teams.zip"
    assert sorted(read(package)) == ["color.png", "manifest.json", "outline.png"]


def test_teams_manifest_bot_and_dutch_texts(teams_env, tmp_path):
    manifest = json.loads(read(write_package(tmp_path / "app.zip"))["manifest.json"])

    assert manifest["manifestVersion"] == "1.16"
    assert manifest["id"] == APP_ID
    assert manifest["bots"] == [{
        "botId": APP_ID, "scopes": ["personal"], "supportsFiles": False, "isNotificationOnly": False,
        "commandLists": manifest["bots"][0]["commandLists"],
    }]
    assert manifest["name"]["short"] == "Mentorwijzer"
    assert len(manifest["name"]["short"]) <= 30 and len(manifest["name"]["full"]) <= 100
    assert len(manifest["description"]["short"]) <= 80 and len(manifest["description"]["full"]) <= 4000
    assert "mentoren van pabostudenten" in manifest["description"]["short"]
    assert "geautomatiseerde assistent" in manifest["description"]["full"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert manifest["validDomains"] == ["mentorwijzer.school.example.nl", "token.botframework.com"]


def test_teams_manifest_developer_placeholders_marked(teams_env, tmp_path):
    manifest = json.loads(read(write_package(tmp_path / "app.zip"))["manifest.json"])

    assert all("VUL-IN" in value or "vul-in" in value for value in manifest["developer"].values())
    assert all(manifest["developer"][key].startswith("https://")
               for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl"))


def test_teams_manifest_developer_filled_in(teams_env, tmp_path):
    developer = {"name": "Opleidingsschool Noord", "websiteUrl": "https://noord.example.nl",
                 "privacyUrl": "https://noord.example.nl/privacy", "termsOfUseUrl": "https://noord.example.nl/voorwaarden"}

    manifest = json.loads(read(write_package(tmp_path / "app.zip", developer=developer))["manifest.json"])

    assert manifest["developer"] == developer


def test_teams_manifest_icon_sizes(teams_env, tmp_path):
    files = read(write_package(tmp_path / "app.zip"))

    color = Image.open(io.BytesIO(files["color.png"]))
    outline = Image.open(io.BytesIO(files["outline.png"]))
    assert (color.format, color.size) == ("PNG", (192, 192))
    assert (outline.format, outline.size) == ("PNG", (32, 32))
    # Outline: only white and transparency, as Teams requires.
    assert {pixel[:3] for pixel in outline.convert("RGBA").getdata() if pixel[3] > 0} == {(255, 255, 255)}
    assert outline.convert("RGBA").getpixel((0, 0))[3] == 0


def test_teams_manifest_needs_app_id(monkeypatch, tmp_path):
    monkeypatch.delenv("MICROSOFT_APP_ID", raising=False)
    get_settings.cache_clear()

    with pytest.raises(ValueError, match="MICROSOFT_APP_ID"):
        write_package(tmp_path / "app.zip")
    assert not (tmp_path / "app.zip").exists()


def test_teams_manifest_same_settings_same_bytes(teams_env, tmp_path):
    first = write_package(tmp_path / "a.zip").read_bytes()
    second = write_package(tmp_path / "b.zip").read_bytes()

    assert first == second
